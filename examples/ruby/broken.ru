# A deploy that cannot start: loading it fails, as a gem missing from the
# bundle or a typo would. Point puma at broken.ru instead of config.ru to see
# what baton does with a release that cannot boot.
require 'a_gem_this_release_forgot_to_ship'

run ->(_env) { [200, {}, ["unreachable\n"]] }
