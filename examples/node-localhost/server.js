// node-localhost: listens where many development servers do by default, on 127.0.0.1 (HOST unset). Inside a VM
// that address is unreachable from the published port: unikctl's listener check says so in `status` and `logs`,
// and `deploy --wait` fails with E_LISTENING_LOCALHOST_ONLY. `deploy -e HOST=0.0.0.0` is the fix it suggests.
// The port is PORT's (the published guest port, set by unikctl), 3000 without it.
'use strict';

const http = require('node:http');

const port = Number(process.env.PORT || 3000);
const host = process.env.HOST || '127.0.0.1';

const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end(`hello from node-localhost (bound to ${host}:${port})\n`);
});

server.listen(port, host, () => console.log(`node-localhost listening on http://${host}:${port}`));

process.on('SIGTERM', () => server.close(() => process.exit(0)));
