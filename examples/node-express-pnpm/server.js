// node-express-pnpm: an Express app whose dependencies are locked by pnpm-lock.yaml. unikctl installs them
// with `pnpm install --prod --frozen-lockfile` (pnpm@9.15.9, from "packageManager") into a hoisted node_modules.
// `is-number` is a dev dependency and must not reach the image.
'use strict';

const os = require('node:os');
const express = require('express');

const port = Number(process.env.PORT || 8080);
const app = express();

app.use((req, res, next) => {
  const t0 = process.hrtime.bigint();
  res.on('finish', () => {
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    console.log(`request method=${req.method} path=${req.originalUrl} status=${res.statusCode} duration=${us.toFixed(0)}us`);
  });
  next();
});

// a framework route: the :name parameter comes from Express's router
app.get('/hello/:name', (req, res) => {
  res.json({ hello: req.params.name, framework: 'express', host: os.hostname(), node: process.version, env: process.env.NODE_ENV });
});

app.get('/', (req, res) => res.type('text').send('node-express-pnpm: try /hello/world\n'));

const server = app.listen(port, () => {
  const addr = server.address();
  console.log(`node-express-pnpm listening on ${addr.address}:${addr.port} (express, NODE_ENV=${process.env.NODE_ENV})`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    console.log(`node-express-pnpm: ${sig}, shutting down`);
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
