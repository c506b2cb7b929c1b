// Command scale measures what baton itself costs as the pool grows: for N
// workers of examples/hello (1, 10, 100 and 1,000 by default) under a
// private systemd user manager (internal/systemdtest), started from a
// .socket unit and a Type=notify service,
//
//   - the time from `systemctl start` to all N workers ready (baton says
//     READY=1 once every worker has, so start returns then);
//   - baton's resident memory, threads, open fds and CPU (a share of one
//     core, from /proc/PID/stat over a fixed window) at steady state, and
//     the workers' memory (the sum of their proportional set sizes);
//   - a full reload of the N workers with surge 1 and with a larger surge
//     (100 by default), timed by `systemctl reload` (baton reload --wait),
//     with a light fixed-rate load running that counts failed requests;
//   - reloaded (surge 1) into every worker sending WATCHDOG=1 twice a
//     second (watchdog-timeout = "1s"; the example, on package serve,
//     pings at half WATCHDOG_USEC): the reload, baton's CPU, and how many
//     workers missed the watchdog (each one is killed and replaced);
//   - the time `systemctl stop` takes.
//
// For comparison it runs gunicorn with 100 sync workers the same way
// (ready when every worker ran its post_worker_init hook; reload is
// SIGHUP, done when N new workers are ready and the old ones are gone).
//
// With -profile DIR it also builds baton with a pprof endpoint (a file
// added to cmd/baton at build time with go build -overlay, never in the
// tree), takes a CPU profile of baton at steady state, during the large
// reload and with the watchdog, writes them to DIR and prints the top
// functions of each.
//
// At 1,000 workers the units raise what would stop them: LimitNOFILE=
// (baton holds a few fds per worker), TasksMax=infinity (each Go worker
// has several threads), TimeoutStartSec=infinity (systemd bounds a reload
// command by it too) and boot-timeout (all workers boot at once at start).
// The benchmark checks kernel.pid_max against what the pool needs and
// says so when it is too small.
//
//	go run ./bench/scale [-workers 1,10,100,1000] [-surge 100] [-window 10s] [-gunicorn 100] [-profile DIR] [-csv DIR]
//
// Results and how they were obtained are in docs/benchmarks.md.
package main
