"""A deploy that cannot start: importing it fails, as a missing dependency
or a typo in a module would. Point the worker command at broken:app (WSGI
or ASGI) to see what baton does with a release that cannot boot."""

import a_module_this_release_forgot_to_ship  # noqa: F401

app = None
