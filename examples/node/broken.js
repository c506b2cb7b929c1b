// A deploy that cannot start: it throws while loading, as a dependency
// missing from node_modules or a typo would. Point the worker command at
// broken.js instead of server.js to see what baton does with a release that
// cannot boot.
'use strict';

require('a-module-this-release-forgot-to-ship');
