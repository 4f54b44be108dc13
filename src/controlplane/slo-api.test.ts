import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client, DeploymentView } from '../engine/client.js';
import { DEFAULT_OBJECTIVES, type Prices } from '../engine/slo.js';
import { homeLayout } from '../paths.js';
import { ArtifactStore } from '../store/artifacts.js';
import { buildApp } from './app.js';
import { Authenticator, hashToken } from './auth.js';
import { Journal } from './journal.js';
import { Metrics } from './metrics.js';
import { NodeAuthenticator } from './node-identity.js';
import { NodeRegistry } from './nodes.js';
import { Queue } from './queue.js';
import { ControlPlane } from './service.js';
import { SloSamples } from './slo-samples.js';
import { TenantRegistry, type TenantSpec } from './tenants.js';

/** GET /v1/slo through the real app (inject): tenant scoping, the admin's filter, validation, and the page's files. */
const ADMIN = 'unik_test_admin_0123456789abcdef';
const ACME = 'unik_test_acme_0123456789abcdef';
const prices: Prices = { vcpuSecond: 1e-5, gibSecond: 2e-6, request: 0, currency: 'USD' };
const tenant = (name: string): TenantSpec => ({ name, quota: {}, vm: { memoryMiB: {}, cpus: {} }, ports: null, selector: {} });
const view = (name: string, bootMs: number): DeploymentView => ({
  name, id: name, state: 'running', exitCode: null, code: null, reason: null, ports: [], imageBytes: null, image: null, pack: null, mode: null, accel: 'tcg',
  bootMs, boot: {}, uptimeMs: 1, createdAt: '', startedAt: null, endedAt: null, metrics: { cpuSeconds: null, rssBytes: null, supervisorRssBytes: null }, signedBy: null, trust: null,
});

let dir: string;
let journal: Journal;
let app: FastifyInstance;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'unikctl-slo-api-'));
  journal = new Journal(join(dir, 'journal.db'));
  const nodes = new NodeRegistry(journal.database, 60_000);
  const artifacts = new ArtifactStore({ dir: join(dir, 'artifacts'), maxUploadBytes: 1 << 20, maxExtractedBytes: 1 << 22, maxEntries: 100 });
  const node = { status: async () => ({ deployments: [view('acme--web', 800), view('bolt--api', 2000)], operations: [] }), close() {} } as unknown as Client;
  const queue = new Queue(journal, { run: async () => null, holds: async () => false }, { concurrency: 1, owner: 'test' });
  const cp = new ControlPlane({ journal, queue, node, fleet: null, host: null, nodeLayout: homeLayout({ UNIKCTL_HOME: dir }), artifacts, maxAttempts: 1 });
  const auth = new Authenticator({ tokens: [{ name: 'admin', sha256: hashToken(ADMIN), scopes: ['admin'] }, { name: 'acme', sha256: hashToken(ACME), scopes: ['read'], tenant: 'acme' }] });
  const samples = new SloSamples(journal.database, 30 * 86_400_000);
  const now = Date.now();
  samples.recordBoots([
    { at: now - 1000, tenant: 'acme', app: 'web', version: 'v1', node: 'local', accel: 'tcg', ms: 800 },
    { at: now - 1000, tenant: 'bolt', app: 'api', version: 'v1', node: 'local', accel: 'tcg', ms: 2000 },
  ]);
  samples.recordDeploy({ at: now - 1000, tenant: 'bolt', app: 'api', outcome: 'user', code: 'E_BUILD_FAILED' });
  app = await buildApp({
    cp, auth, artifacts, metrics: new Metrics(journal, node), nodes, nodeAuth: new NodeAuthenticator(nodes, null), version: 'test',
    tenants: TenantRegistry.fixed([tenant('acme'), tenant('bolt')]), slo: { source: samples, config: { prices, objectives: DEFAULT_OBJECTIVES } },
  });
});

afterAll(async () => {
  await app.close();
  await journal.close();
  rmSync(dir, { recursive: true, force: true });
});

const get = (url: string, token: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });

describe('GET /v1/slo', () => {
  it('a tenant sees only its own samples, apps and no nodes; another tenant is 403', async () => {
    const r = await get('/v1/slo?window=24h', ACME);
    expect(r.statusCode).toBe(200);
    const s = r.json();
    expect(s.filter).toEqual({ tenant: 'acme', app: null });
    expect([s.boot.count, s.boot.p95Ms, s.deploys.userErrors]).toEqual([1, 800, 0]);
    expect(s.apps.map((a: { tenant: string; name: string }) => `${a.tenant}/${a.name}`)).toEqual(['acme/web']);
    expect(s.nodes).toEqual([]);
    expect(JSON.stringify(s)).not.toContain('bolt');
    expect((await get('/v1/slo?tenant=bolt', ACME)).statusCode).toBe(403);
  });

  it('an admin sees every tenant, or one with tenant=; bad windows are 400', async () => {
    const all = (await get('/v1/slo', ADMIN)).json();
    expect([all.window, all.boot.count, all.boot.p50Ms, all.boot.p95Ms, all.deploys.userErrors]).toEqual(['1h', 2, 800, 2000, 1]);
    expect(all.nodes).toEqual([{ name: 'local', status: 'ready', cordoned: false }]);
    const bolt = (await get('/v1/slo?tenant=bolt&window=7d', ADMIN)).json();
    expect([bolt.boot.count, bolt.deploys.userByCode]).toEqual([1, [{ code: 'E_BUILD_FAILED', count: 1 }]]);
    expect(bolt.apps.map((a: { name: string }) => a.name)).toEqual(['api']);
    expect((await get('/v1/slo?window=2h', ADMIN)).json().code).toBe('E_VALIDATION');
    expect((await app.inject({ method: 'GET', url: '/v1/slo' })).statusCode).toBe(401);
  });

  it('serves the page with a strict CSP and uPlot from its package, without a token', async () => {
    const page = await app.inject({ method: 'GET', url: '/ui/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).not.toMatch(/<script>|style=/);
    const uplot = await app.inject({ method: 'GET', url: '/ui/uPlot.iife.min.js' });
    expect([uplot.statusCode, uplot.headers['content-type']]).toEqual([200, 'text/javascript; charset=utf-8']);
    // only the page's own files: nothing else of the repository through the wildcard
    expect((await app.inject({ method: 'GET', url: '/ui/%2e%2e/package.json' })).statusCode).not.toBe(200);
    expect((await app.inject({ method: 'GET', url: '/ui/index.html.bak' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/ui/../package.json' })).statusCode).not.toBe(200);
  });
});
