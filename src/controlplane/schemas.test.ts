import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import type { StatusResult } from '../engine/client.js';
import { statusSchema } from './schemas.js';

describe('the status schema (the API serializes responses through it: a field it lacks is dropped)', () => {
  it('carries a running app\'s listener health, listeners and warning to remote clients', async () => {
    const listen = {
      health: 'localhost-only' as const, ports: [3000], listeners: [{ address: '127.0.0.1', port: 3000 }], since: 1_700_000_000_000,
      warning: { code: 'E_LISTENING_LOCALHOST_ONLY' as const, message: 'the app listens on 127.0.0.1:3000 only', fix: 'bind 0.0.0.0' },
    };
    const checking = { health: 'checking' as const, ports: [8080], listeners: null, warning: null, since: 1 };
    const body = { deployments: [{ name: 'lo', state: 'running', listen }, { name: 'w', state: 'running', listen: checking }, { name: 'x', state: 'exited', listen: null }], operations: [] };
    const app = Fastify();
    app.get('/s', { schema: { response: { 200: statusSchema } } }, async () => body);
    const res = await app.inject({ method: 'GET', url: '/s' });
    await app.close();
    const got = res.json<StatusResult>();
    expect(got.deployments.map((d) => d.listen)).toEqual([listen, checking, null]);
  });
});
