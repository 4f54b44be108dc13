// node-fastify-ts-yarn: a Fastify app in TypeScript. unikctl installs every dependency with
// `yarn install --immutable` (yarn@4.9.4, from "packageManager"), runs the `build` script (tsc → dist/),
// then installs production dependencies only: typescript and @types/node never reach the image.
import os from 'node:os';
import Fastify from 'fastify';

const port = Number(process.env.PORT ?? 8080);
// Fastify's own logger writes one JSON line per request to stdout, which `unikctl logs` shows
const app = Fastify({ logger: true });

interface HelloParams { name: string }

// a framework route: Fastify's router fills params and serializes the reply
app.get<{ Params: HelloParams }>('/hello/:name', async (req) => ({
  hello: req.params.name,
  framework: 'fastify',
  language: 'typescript',
  host: os.hostname(),
  node: process.version,
  env: process.env.NODE_ENV,
}));

app.get('/', async () => 'node-fastify-ts-yarn: try /hello/world\n');

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    app.log.info(`${sig}, shutting down`);
    void app.close().then(() => process.exit(0));
  });
}

// 0.0.0.0: the guest has IPv4 only, and Fastify's default host is localhost
const address = await app.listen({ port, host: '0.0.0.0' });
console.log(`node-fastify-ts-yarn listening on ${address} (fastify, NODE_ENV=${process.env.NODE_ENV})`);
