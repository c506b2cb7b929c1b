// An HTTP server for baton's Node recipe (docs/workers/node.md), with no
// dependencies beyond Node itself and systemd-notify(1).
//
// GET /               "hello from worker N generation G pid P": which worker
//                     answered, so that tests can tell workers apart
// GET /sleep?ms=N     answers after N milliseconds; &flush=1 sends the
//                     headers and a first line at once, so a client knows a
//                     worker holds its request before it finishes
//
// Run under baton: node examples/node/server.js
'use strict';

const http = require('node:http');
const { execFile } = require('node:child_process');

const whoami = () =>
  `worker ${process.env.BATON_WORKER || '-'} generation ${process.env.BATON_GENERATION || '-'} pid ${process.pid}`;

// sd_notify(3) through systemd-notify(1): Node has no datagram unix
// sockets. systemd-notify is a child of this process, which baton counts
// as this worker, and it waits until baton has read the message.
function notify(...fields) {
  if (!process.env.NOTIFY_SOCKET) return; // not supervised, or exec readiness
  execFile('systemd-notify', fields, (err) => {
    if (err) console.error(`systemd-notify ${fields.join(' ')}: ${err.message}`);
  });
}

// sd_listen_fds(3): the sockets are at fds 3.. when LISTEN_PID is ours.
function listenFDs() {
  if (process.env.LISTEN_PID !== String(process.pid)) return 0;
  return parseInt(process.env.LISTEN_FDS || '0', 10);
}

let draining = false;

const server = http.createServer((req, res) => {
  // While draining, every answer closes its connection, so that keep-alive
  // clients reconnect to a worker that stays.
  if (draining) res.setHeader('Connection', 'close');
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`hello from ${whoami()}\n`);
    return;
  }
  if (url.pathname === '/sleep') {
    const ms = Number.parseInt(url.searchParams.get('ms') || '', 10);
    if (!(ms >= 0)) {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end('want ?ms=N\n');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    if (url.searchParams.get('flush') === '1') res.write('sleeping\n');
    setTimeout(() => res.end(`slept ${ms}ms in ${whoami()}\n`), ms);
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found\n');
});

server.on('listening', () => {
  notify('--ready', '--status=serving');
  // sd_watchdog_enabled(3): pings from the event loop, so they stop when
  // the loop is blocked.
  const usec = parseInt(process.env.WATCHDOG_USEC || '0', 10);
  const pid = process.env.WATCHDOG_PID;
  if (usec > 0 && (!pid || pid === String(process.pid))) {
    setInterval(() => notify('WATCHDOG=1'), usec / 1000 / 3).unref();
  }
});

// A worker whose baton died has no reader on its stdout and stderr: a
// write then fails with EPIPE, which must not throw and end the drain.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

// Graceful stop: stop accepting (the shared socket's queue stays with the
// other workers), finish what was accepted, then exit. Without a handler,
// SIGTERM kills Node at once and fails every request in flight.
process.on('SIGTERM', () => {
  // A repeated SIGTERM is the same request: a worker whose baton died
  // (kill -9 under ExitType=cgroup) gets one per exiting baton thread, and
  // a second server.close() would call back at once and exit mid-drain.
  if (draining) return;
  console.log('SIGTERM: draining');
  draining = true;
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});

if (listenFDs() > 0) {
  // fd 3 is the first socket baton (or systemd) passed. Node calls
  // listen() on it again with its own backlog (511 unless given here).
  server.listen({ fd: 3, backlog: parseInt(process.env.BACKLOG || '511', 10) });
} else {
  server.listen(parseInt(process.env.PORT || '8080', 10), '127.0.0.1');
}
