// Command peers runs baton and the servers people use instead of it side
// by side, in one run, through the same events, and prints one table.
//
// Every server runs the same app shape: 4 worker processes, an app that
// sleeps 50 ms per request (apps/app.py for gunicorn, uWSGI and baton's
// gunicorn row, apps/config.ru for puma, examples/hello's /sleep?ms=50 for
// the Go rows), each started from its own units under a private systemd
// user manager (internal/systemdtest), driven by bench/load (which never
// retries) from 8 clients on 127.0.0.1, with keep-alive on and off.
//
// The servers: gunicorn (sync workers; reload is SIGHUP), puma (cluster
// mode, 4 workers of 1 thread; reload is the phased restart, SIGUSR1),
// uWSGI (4 processes with lazy-apps; reload is the chain reload), the Go
// example alone as one plain service (it has no reload: a restart), baton
// running gunicorn (one gunicorn arbiter with -w 1 and --preload per baton
// worker, gunicorn reading LISTEN_FDS itself) and baton running the Go
// example. Each gets its units as its own documentation recommends.
//
// The triggers, one row each: a reload with a fast app, a reload into an
// app that takes 2 s to boot, a reload into an app that cannot boot (the
// reload command's exit status is recorded), a restart with a socket the
// server binds itself, a restart behind a .socket unit, kill -9 of the
// main process, and a self-upgrade (baton: a new binary and a reload;
// gunicorn: SIGUSR2, then SIGTERM to the old master, as its documentation
// describes; puma: its hot restart, SIGUSR2; uWSGI: its graceful reload,
// SIGHUP, which executes the binary again). The app's mode file
// (apps/hello-mode.sh reads it for the Go app) decides what the next boot
// does.
//
// Each row's server is warmed up until every worker has answered. For
// each row: failed requests by kind, requests, p99 and max, and the worst
// latency of the requests that started while the trigger ran or in the
// second after it, also as a ratio to the p99 of the requests of the same
// run that ended before its first trigger (its steady p99); the requests
// answered in the run's last second show whether the server still serves;
// the load average when the row ran.
//
//	go run ./bench/peers [-duration 12s] [-events 2] [-systems gunicorn,baton-go] [-triggers reload,kill9] [-keepalive on,off] [-csv DIR]
//
// The peers are Debian packages (gunicorn, puma, ruby-sd-notify, uwsgi,
// uwsgi-plugin-python3), installed with apt-get when missing. Results and
// how they were obtained are in docs/benchmarks.md.
package main
