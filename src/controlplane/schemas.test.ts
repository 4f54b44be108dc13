import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import type { StatusResult } from '../engine/client.js';
import { deployBodySchema, deployResultSchema, statusSchema } from './schemas.js';

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

describe('services in the API schemas', () => {
  it('status carries a service view whole (policy, rollout, replicas, traffic with its latency buckets)', async () => {
    const service = {
      name: 'web', id: 'svc_1', desired: 2, destroying: false, current: 2, ports: ['8080:8080'],
      policy: { replicas: 2, check: { kind: 'http', port: 8080, path: '/healthz', intervalMs: 1000, timeoutMs: 1000, graceMs: 2000, failures: 2 }, restart: 'on-failure', rollout: { strategy: 'rolling', maxSurge: 1, maxUnavailable: 0, canary: 1, minHealthyMs: 1000, healthyDeadlineMs: 300000, autoRevert: true } },
      rollout: { from: 1, to: 2, strategy: 'rolling', phase: 'succeeded', startedAt: 1, updatedAt: 2, operationId: 'op_1', code: null, reason: null },
      versions: [{ version: 2, state: 'active', code: null, reason: null, createdAt: '2026-01-01T00:00:00.000Z', image: 'local/x:latest', healthy: 2, running: 2, total: 2 }],
      replicas: [{ name: 'web.3', version: 2, state: 'running', health: 'healthy', healthDetail: null, pid: 12, exitCode: null, code: null, reason: null }],
      restarts: 1, crashLoop: null, controller: { pid: 5 },
      traffic: { 2: { connections: 1, requests: 5, bytesIn: 10, bytesOut: 20, errors: 0, latency: { buckets: [0, 5, 0], count: 5, sumMs: 7.5 } } },
    };
    const app = Fastify();
    app.get('/s', { schema: { response: { 200: statusSchema } } }, async () => ({ deployments: [], operations: [], services: [service] }));
    const res = await app.inject({ method: 'GET', url: '/s' });
    await app.close();
    expect(res.json<StatusResult>().services).toEqual([service]);
  });

  it('a deploy body takes the service flags and supersede, nothing else', async () => {
    // the API's validator settings (http.ts): unknown fields are refused, not dropped; no type coercion
    const app = Fastify({ ajv: { customOptions: { removeAdditional: false, coerceTypes: false } } });
    app.post('/d', { schema: { body: deployBodySchema, response: { 200: deployResultSchema } } }, async () => ({ name: 'web', operationId: 'op', state: 'pending', resolvedFrom: 'x', reused: false, service: true }));
    const send = (body: unknown) => app.inject({ method: 'POST', url: '/d', payload: body as Record<string, unknown> });
    const ok = await send({ source: { package: 'x' }, service: { replicas: '2', check: 'http:8080/healthz', autoRevert: false }, supersede: true });
    expect(ok.statusCode).toBe(200);
    expect(ok.json<{ service: boolean }>().service).toBe(true);
    expect((await send({ source: { package: 'x' }, service: { replicas: '2', bogus: '1' } })).statusCode).toBe(400);
    expect((await send({ source: { package: 'x' }, service: { replicas: 'x'.repeat(300) } })).statusCode).toBe(400);
    expect((await send({ source: { package: 'x' }, service: { autoRevert: 'yes' } })).statusCode).toBe(400);
    await app.close();
  });
});
