import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../store/sqlite.js';
import type { Service } from '../store/service-types.js';
import type { Deployment } from '../store/types.js';
import { LocalSloSource } from './local-slo.js';
import { computeSlo, loadSloConfig, NO_REQUEST_SOURCE } from './slo.js';

let tmp: string;
let store: SqliteStore;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-local-slo-'));
  store = new SqliteStore(join(tmp, 'state.db'));
});
afterEach(() => {
  store.close();
  rmSync(tmp, { recursive: true, force: true });
});

const service: Service = {
  name: 'web', id: 'svc_1', desired: 'run', ports: [], health: {}, traffic: {}, versions: [], current: null, rollout: null, restarts: [],
  nextReplica: 1, controller: null, front: null, createdAt: 1, updatedAt: 1, rev: 0,
  policy: { replicas: 1, check: null, restart: 'on-failure', rollout: { strategy: 'rolling', maxSurge: 1, maxUnavailable: 0, canary: 1, minHealthyMs: 0, healthyDeadlineMs: 1, autoRevert: true } },
};

describe('local SLO figures: requests from the services\' fronts', () => {
  it('no service ever: no request source, the figures say why', () => {
    const r = computeSlo(new LocalSloSource(store), { window: '1h', now: Date.now(), filter: {}, ...loadSloConfig(undefined) });
    expect([r.requests.total, r.requests.perSecond, r.requests.note]).toEqual([null, null, NO_REQUEST_SOURCE]);
  });

  it('what the fronts recorded in the window gives requests per second and cost per request, per app', () => {
    const now = Date.now();
    store.createService(service, { id: 'op_1', kind: 'deploy', target: 'web', state: 'running', idempotencyKey: null, requestHash: null, error: null, createdAt: 1, updatedAt: 1, endedAt: null });
    store.recordRequests('web', 3000, now - 10 * 60_000);
    store.recordRequests('web', 600, now - 2 * 3_600_000); // outside the 1h window
    store.recordRequests('api', 400, now - 60_000);
    const all = computeSlo(new LocalSloSource(store), { window: '1h', now, filter: {}, ...loadSloConfig(undefined) });
    expect(all.requests.total).toBe(3400);
    expect(all.requests.perSecond).toBeCloseTo(3400 / 3600, 3);
    expect(all.requests.note).toBeNull();
    const web = computeSlo(new LocalSloSource(store), { window: '1h', now, filter: { app: 'web' }, ...loadSloConfig(undefined) });
    expect(web.requests.total).toBe(3000);
    expect(web.cost.perRequest).toBe(web.cost.total / 3000);
  });

  it('a service\'s replicas count under the service: its boots and VM-seconds, divided by its requests', () => {
    const now = Date.now();
    store.createService(service, { id: 'op_1', kind: 'deploy', target: 'web', state: 'running', idempotencyKey: null, requestHash: null, error: null, createdAt: 1, updatedAt: 1, endedAt: null });
    const replica = (name: string, i: number): Deployment => ({
      name, id: `dep_${i}`, state: 'running', exitCode: null, code: null, reason: null,
      spec: { source: { kind: 'package', dir: '/pkgs/web', ref: 'local/web:latest' }, resolvedFrom: 'local/web:latest', ports: [], memoryMiB: 1024, cpus: 2, env: {}, debug: false, labels: {}, service: { app: 'web', version: 1 } },
      image: null, supervisor: null, vmm: null, accel: null, boot: { vmmStartToAppStartMs: 100 * i }, listen: null,
      createdAt: now - 3_600_000, updatedAt: now, startedAt: now - 1_800_000, endedAt: null,
    });
    for (const i of [1, 2]) store.createDeployment(replica(`web.${i}`, i), { id: `op_r${i}`, kind: 'deploy', target: `web.${i}`, state: 'succeeded', idempotencyKey: null, requestHash: null, error: null, createdAt: 1, updatedAt: 1, endedAt: 1 });
    store.recordRequests('web', 1000, now - 60_000);
    const prices = { vcpuSecond: 1e-5, gibSecond: 2e-6, request: 0, currency: 'USD' };
    const web = computeSlo(new LocalSloSource(store), { window: '1h', now, filter: { app: 'web' }, prices, objectives: loadSloConfig(undefined).objectives });
    expect([web.boot.count, web.boot.p50Ms, web.boot.p95Ms]).toEqual([2, 100, 200]);
    expect(web.cost.perApp.map((a) => [a.app, Math.round(a.vmSeconds)])).toEqual([['web', 3600]]);
    // 2 replicas × 1,800 s × (2 vCPUs × 1e-5 + 1 GiB × 2e-6) = 0.0792, over 1,000 requests
    expect(web.cost.total).toBeCloseTo(0.0792, 6);
    expect(web.cost.perRequest).toBeCloseTo(0.0792 / 1000, 9);
    expect(web.requests.series.reduce((n, b) => n + (b.requests ?? 0), 0)).toBe(1000);
  });
});
