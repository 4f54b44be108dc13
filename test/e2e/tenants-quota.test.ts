import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packBundle } from '../../src/engine/bundle.js';
import { ADMIN_TOKEN, DEPLOYER_TOKEN, TENANT_TOKENS, TestServer, writeFakePackage } from './cp-helpers.js';
import { EtcdCluster } from './etcd-helpers.js';
import { TestHome } from './helpers.js';

/**
 * Issue 12, tenants' quotas on a real `unikctld serve --tenants` on loopback, on SQLite and on etcd. No VM is named
 * here: `--runner fake` runs the operations (a destroy still gives its reservation back), which is all a quota needs.
 */

const TENANTS = `
tenants:
  acme:
    quota: { vms: 3, vcpus: 8, memory: 2G, apps: 3 }
    vm:
      memory: { default: 256M, max: 512M }
      cpus: { default: 1, max: 2 }
  beta:
    quota: { vms: 5 }
  gamma:
    ports: 20000-20099
  delta:
    quota: { artifacts: 1M, vms: 4, vcpus: 4 }
`;

interface ApiError { code: string; message: string; trace_id: string; hint?: string; details?: Record<string, unknown>; }
interface Quota { tenant: string; quota: Record<string, number>; used: { vms: number; vcpus: number; memoryMiB: number; apps: number; artifactBytes: number }; }

type Store = 'sqlite' | 'etcd';

/** The server and a way to count the journal's rows, whichever store it writes to. */
interface Setup { server: TestServer; journalRows(): Promise<number>; close(): Promise<void>; }

async function setup(store: Store, extra: string[] = []): Promise<Setup> {
  if (store === 'sqlite') {
    const server = new TestServer({ runner: 'fake', tenants: TENANTS, extra });
    writeFakePackage(server.data, 'pkg');
    await server.start();
    return {
      server,
      journalRows: async () => {
        const db = new Database(join(server.data, 'journal.db'), { readonly: true });
        try { return (db.prepare('SELECT COUNT(*) AS n FROM jobs').get() as { n: number }).n; } finally { db.close(); }
      },
      close: async () => { await server.stop(); server.cleanup(); },
    };
  }
  const etcd = new EtcdCluster();
  await etcd.start(1);
  const client = new Etcd3({ hosts: etcd.clientUrls });
  const server = new TestServer({ runner: 'fake', tenants: TENANTS, extra: ['--store', etcd.spec, ...extra] });
  writeFakePackage(server.data, 'pkg');
  await server.start();
  return {
    server,
    journalRows: () => client.getAll().prefix('/unikctl/jobs/').count(), // the store's default prefix; one key per operation
    close: async () => { await server.stop(); server.cleanup(); client.close(); await etcd.stop(); },
  };
}

const deploy = (s: TestServer, tenant: keyof typeof TENANT_TOKENS, name: string, extra: Record<string, unknown> = {}): Promise<Response> =>
  s.api('/v1/deployments', { token: TENANT_TOKENS[tenant], json: { source: { package: 'pkg' }, name, ...extra } });

async function quotaOf(s: TestServer, tenant: keyof typeof TENANT_TOKENS): Promise<Quota> {
  const r = await s.api('/v1/quota', { token: TENANT_TOKENS[tenant] });
  expect(r.status).toBe(200);
  return (await r.json()) as Quota;
}

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each<Store>(['sqlite', 'etcd'])('tenant quotas (%s store)', (store) => {
  let env: Setup | null = null;
  const s = (): TestServer => {
    if (!env) throw new Error('no server');
    return env.server;
  };
  beforeAll(async () => { env = await setup(store); }, 120_000);
  afterAll(async () => { await env?.close(); });

  it('a VM above the per-VM memory max (-m 1G against 512M) is refused before anything is journaled', async () => {
    const before = await env?.journalRows();
    const r = await deploy(s(), 'acme', 'big', { memory: '1G' });
    const body = (await r.json()) as ApiError;
    expect([r.status, body.code]).toEqual([403, 'E_QUOTA_EXCEEDED']);
    expect(body.details).toEqual({ tenant: 'acme', resource: 'vm.memory', requested: 1024, used: 0, limit: 512 });
    const cpus = await deploy(s(), 'acme', 'wide', { cpus: 3 });
    expect([cpus.status, ((await cpus.json()) as ApiError).details?.resource]).toEqual([403, 'vm.cpus']);
    expect(await env?.journalRows()).toBe(before);
    expect((await quotaOf(s(), 'acme')).used).toEqual({ vms: 0, vcpus: 0, memoryMiB: 0, apps: 0, artifactBytes: 0 });
  });

  it('vms: 3 — the 4th deploy is 403 E_QUOTA_EXCEEDED with {resource, requested, used, limit} and writes no journal row', async () => {
    for (const name of ['a1', 'a2', 'a3']) expect((await deploy(s(), 'acme', name, name === 'a3' ? { memory: '512M' } : {})).status, name).toBe(202);
    const q = await quotaOf(s(), 'acme');
    // the tenant's vm.memory.default (256M) is what a deploy without -m reserves
    expect(q.used).toEqual({ vms: 3, vcpus: 3, memoryMiB: 256 + 256 + 512, apps: 3, artifactBytes: 0 });
    const rows = await env?.journalRows();
    const r = await deploy(s(), 'acme', 'a4');
    const body = (await r.json()) as ApiError;
    expect(r.status).toBe(403);
    expect(body.code).toBe('E_QUOTA_EXCEEDED');
    // apps and vms both stand at 3/3; apps is checked first and names itself
    expect(body.details).toEqual({ tenant: 'acme', resource: 'apps', requested: 1, used: 3, limit: 3 });
    expect(body.message).toBe('tenant acme: apps quota exceeded: requested 1, used 3, limit 3');
    expect(await env?.journalRows()).toBe(rows);
    expect((await quotaOf(s(), 'acme')).used.vms).toBe(3);
    // the same refusal through an idempotency key leaves no key behind: the key still makes a new operation later
    const keyed = await s().api('/v1/deployments', { token: TENANT_TOKENS.acme, json: { source: { package: 'pkg' }, name: 'a4' }, headers: { 'idempotency-key': 'after-quota' } });
    expect(keyed.status).toBe(403);
    expect(await env?.journalRows()).toBe(rows);
  });

  it('quota usage drops when an app is destroyed (GET /v1/quota before and after), and the freed VM can be deployed again', async () => {
    const before = await quotaOf(s(), 'acme');
    expect(before.used.vms).toBe(3);
    const d = await s().api('/v1/destroy', { token: TENANT_TOKENS.acme, json: { names: ['a3'] } });
    expect(d.status).toBe(202);
    const after = await until('a3 released', async () => {
      const q = await quotaOf(s(), 'acme');
      return q.used.vms === 2 ? q : null;
    });
    expect(after.used).toEqual({ vms: 2, vcpus: 2, memoryMiB: 512, apps: 2, artifactBytes: 0 });
    const again = await s().api('/v1/deployments', { token: TENANT_TOKENS.acme, json: { source: { package: 'pkg' }, name: 'a4' }, headers: { 'idempotency-key': 'after-quota' } });
    expect([again.status, ((await again.json()) as { reused: boolean }).reused]).toEqual([202, false]);
    expect((await quotaOf(s(), 'acme')).used.vms).toBe(3);
  });

  it('20 concurrent deploys against vms: 5 accept exactly 5; the other 15 are E_QUOTA_EXCEEDED and journal nothing', async () => {
    const rows = (await env?.journalRows()) ?? 0;
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => deploy(s(), 'beta', `race-${i}`)));
    const bodies = await Promise.all(rs.map((r) => r.json() as Promise<ApiError & { operationId?: string }>));
    const statuses = rs.map((r) => r.status);
    expect(statuses.filter((x) => x === 202)).toHaveLength(5);
    expect(statuses.filter((x) => x === 403)).toHaveLength(15);
    for (const b of bodies.filter((x) => x.code !== undefined)) {
      expect(b.code).toBe('E_QUOTA_EXCEEDED');
      expect(b.details).toMatchObject({ tenant: 'beta', resource: 'vms', requested: 1, limit: 5 });
    }
    expect(await env?.journalRows()).toBe(rows + 5);
    expect((await quotaOf(s(), 'beta')).used.vms).toBe(5);
    // beta's deploys used nothing of acme's quota
    expect((await quotaOf(s(), 'acme')).used.vms).toBe(3);
  });
});

describe('tenants on one control plane: credentials, ports, the CLI usage line, reloading the tenants file', () => {
  let env: Setup | null = null;
  const home = new TestHome(); // the CLI in remote mode
  const s = (): TestServer => {
    if (!env) throw new Error('no server');
    return env.server;
  };
  // info: the tenants file's reloads and refusals are logged at that level
  beforeAll(async () => { env = await setup('sqlite', ['--log-level', 'info']); }, 120_000);
  afterAll(async () => {
    await env?.close();
    await home.cleanup();
  });

  it("a service reserves replicas + surge VMs: 3 rolling replicas take delta's 4 VMs; one more VM of any kind is refused; destroy frees all 4", async () => {
    const svc = await deploy(s(), 'delta', 'svc', { service: { replicas: '3' } });
    expect(svc.status, await svc.clone().text()).toBe(202);
    expect(((await svc.json()) as { service?: boolean }).service).toBe(true);
    expect((await quotaOf(s(), 'delta')).used).toMatchObject({ vms: 4, vcpus: 4, apps: 1 });
    const rows = await env?.journalRows();
    for (const [name, extra, requested] of [['svc2', { service: { replicas: '1' } }, 2], ['one', {}, 1], ['can', { service: { replicas: '1', strategy: 'canary' } }, 2]] as const) {
      const r = await deploy(s(), 'delta', name, extra);
      const body = (await r.json()) as ApiError;
      expect([r.status, body.code], name).toEqual([403, 'E_QUOTA_EXCEEDED']);
      expect(body.details, name).toEqual({ tenant: 'delta', resource: 'vms', requested, used: 4, limit: 4 });
    }
    expect(await env?.journalRows()).toBe(rows);
    const d = await s().api('/v1/destroy', { token: TENANT_TOKENS.delta, json: { names: ['svc'] } });
    expect(d.status).toBe(202);
    await until('the service reservation given back', async () => (await quotaOf(s(), 'delta')).used.vms === 0);
    expect((await quotaOf(s(), 'delta')).used).toMatchObject({ vms: 0, vcpus: 0, apps: 0 });
  });

  it('a credential without a tenant, or naming an undeclared one, acts for nobody; an admin has no quota of its own', async () => {
    const cases: Array<[string, string, number, string]> = [
      ['token without a tenant', DEPLOYER_TOKEN, 403, 'E_TENANT_REQUIRED'],
      ['token of an undeclared tenant', TENANT_TOKENS.ghost, 403, 'E_TENANT_UNKNOWN'],
    ];
    for (const [what, token, status, code] of cases) {
      for (const path of ['/v1/status', '/v1/quota']) {
        const r = await s().api(path, { token });
        expect([r.status, ((await r.json()) as ApiError).code], `${what} ${path}`).toEqual([status, code]);
      }
      const r = await s().api('/v1/deployments', { token, json: { source: { package: 'pkg' }, name: 'nobody' } });
      expect([r.status, ((await r.json()) as ApiError).code], what).toEqual([status, code]);
    }
    const admin = await s().api('/v1/quota', { token: ADMIN_TOKEN });
    expect([admin.status, ((await admin.json()) as ApiError).code]).toEqual([403, 'E_TENANT_REQUIRED']);
    const asAcme = await s().api('/v1/quota', { token: ADMIN_TOKEN, headers: { 'x-unikctl-tenant': 'acme' } });
    expect([asAcme.status, ((await asAcme.json()) as Quota).tenant]).toEqual([200, 'acme']);
  });

  it('a host port outside the tenant\'s range is E_PORT_NOT_ALLOWED; inside it is accepted', async () => {
    const out = await deploy(s(), 'gamma', 'web', { ports: ['8080:80'] });
    const body = (await out.json()) as ApiError;
    expect([out.status, body.code]).toEqual([403, 'E_PORT_NOT_ALLOWED']);
    expect(body.message).toContain('20000-20099');
    expect((await deploy(s(), 'gamma', 'web', { ports: ['20050:80'] })).status).toBe(202);
  });

  it('stored artifacts: an upload that takes the tenant over its quota is removed again and answered 403; the same bytes again are no new bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unikctl-art-'));
    const upload = async (content: Buffer): Promise<Response> => {
      writeFileSync(join(dir, 'blob'), content);
      const b = await packBundle(dir);
      try {
        return await fetch(`${s().url}/v1/artifacts`, { method: 'POST', headers: { authorization: `Bearer ${TENANT_TOKENS.delta}`, 'content-type': 'application/gzip' }, body: readFileSync(b.file) });
      } finally {
        b.cleanup();
      }
    };
    try {
      const blob = randomBytes(600 * 1024); // incompressible: the archive is about as large
      const first = await upload(blob);
      expect(first.status).toBe(201);
      const a = (await first.json()) as { id: string; bytes: number };
      const second = await upload(randomBytes(600 * 1024));
      const body = (await second.json()) as ApiError;
      expect([second.status, body.code]).toEqual([403, 'E_QUOTA_EXCEEDED']);
      expect(body.details).toMatchObject({ tenant: 'delta', resource: 'artifacts', used: a.bytes, limit: 1024 * 1024 });
      expect(Number(body.details?.requested)).toBeGreaterThan(600 * 1024);
      expect((await quotaOf(s(), 'delta')).used.artifactBytes).toBe(a.bytes); // the refused upload is gone
      const again = await upload(blob); // already stored: admitted without counting twice
      expect([again.status, ((await again.json()) as { id: string }).id]).toEqual([201, a.id]);
      expect((await quotaOf(s(), 'delta')).used.artifactBytes).toBe(a.bytes);
      // deleting it frees the quota
      expect((await s().api(`/v1/artifacts/${a.id}`, { method: 'DELETE', token: TENANT_TOKENS.delta })).status).toBe(204);
      expect((await quotaOf(s(), 'delta')).used.artifactBytes).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('`unikctl status` in remote mode shows the tenant\'s usage line; an admin\'s shows none', async () => {
    expect((await deploy(s(), 'acme', 'web')).status).toBe(202);
    Object.assign(home.env, s().cliEnv(TENANT_TOKENS.acme));
    const r = await home.cli(['status']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('tenant acme: vms 1/3, vcpus 1/8, memory 256/2048 MiB, apps 1/3, artifacts');
    const json = JSON.parse((await home.cli(['status', '--json'])).stdout) as { quota: Quota; operations: Array<{ target: string }> };
    expect(json.quota.used.vms).toBe(1);
    // (the fake runner makes no deployments: its operations show whose names a tenant sees) under its own name, only its own
    expect(json.operations.map((op) => op.target)).toEqual(['web']);
    expect(r.stdout).not.toContain('--web');
    Object.assign(home.env, s().cliEnv(ADMIN_TOKEN));
    const admin = await home.cli(['status']);
    expect(admin.code, admin.stderr).toBe(0);
    expect(admin.stdout).not.toMatch(/^tenant /m);
    // the operators see everyone, with the tenant's prefix
    expect(admin.stdout).toContain('acme--web');
    expect(admin.stdout).toContain('gamma--web');
  });

  it('a tenants file edit is picked up without a restart (file change and SIGHUP); a broken edit keeps the tenants in force', async () => {
    const reloads = (): number => s().log.split('\n').filter((l) => l.includes('tenants reloaded')).length;
    // a file change alone
    s().writeTenants(TENANTS.replace('vms: 3, vcpus: 8', 'vms: 4, vcpus: 8'));
    await until('the new vms limit', async () => (await quotaOf(s(), 'acme')).quota.vms === 4, 30_000);
    // SIGHUP alone: the file is unchanged, so only the signal can cause this reload
    const n = reloads();
    s().hup();
    await until('a reload on SIGHUP', async () => reloads() > n, 30_000);
    expect((await quotaOf(s(), 'acme')).quota.vms).toBe(4);
    // a broken edit: refused with a log line naming the field, the previous tenants stay (and keep being enforced)
    s().writeTenants(TENANTS.replace('vms: 3, vcpus: 8', 'vms: lots, vcpus: 8'));
    s().hup();
    const refusal = await until('the refusal in the log', async () => s().log.split('\n').find((l) => l.includes('tenants file refused')), 30_000);
    expect(refusal).toContain('tenants.acme.quota.vms');
    expect(refusal).toContain('tenants.yaml');
    const q = await quotaOf(s(), 'acme');
    expect(q.quota).toMatchObject({ vms: 4, vcpus: 8, memoryMiB: 2048, apps: 3 });
    const big = await deploy(s(), 'acme', 'big', { memory: '1G' });
    expect(((await big.json()) as ApiError).details).toMatchObject({ resource: 'vm.memory', limit: 512 });
    expect(s().proc?.exitCode).toBeNull();
  });
});
