// node-http: a tiny HTTP server for the unikctl node pack. It logs one line per request to stdout,
// which reaches `unikctl logs` through the VM's serial console. `ms` is its one production dependency;
// `is-number` (used only by test.js) is a dev dependency and must not end up in the image.
'use strict';

const http = require('node:http');
const os = require('node:os');
const ms = require('ms');

const port = Number(process.env.PORT || 8080);
const greeting = process.env.GREETING || 'hello from a unikctl VM';
const started = Date.now();

const server = http.createServer((req, res) => {
  const t0 = process.hrtime.bigint();
  const uptime = ms(Date.now() - started, { long: true });
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end(`${greeting} (host ${os.hostname()}, path ${req.url}, node ${process.version}, env ${process.env.NODE_ENV}, up ${uptime}, rss ${(process.memoryUsage().rss / 1048576).toFixed(1)} MiB)\n`);
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  console.log(`request method=${req.method} path=${req.url} remote=${req.socket.remoteAddress} duration=${us.toFixed(0)}us`);
});

// No host argument: Node tries :: first and falls back to 0.0.0.0 when the kernel has no IPv6 (as in a unikctl VM).
server.listen(port, () => {
  const addr = server.address();
  console.log(`node-http listening on ${addr.address}:${addr.port} (NODE_ENV=${process.env.NODE_ENV})`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    console.log(`node-http: ${sig}, shutting down`);
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
