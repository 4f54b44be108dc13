import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packBundle } from '../../src/engine/bundle.js';
import { homeLayout } from '../../src/paths.js';
import { ADMIN_TOKEN, JOIN_TOKEN, signJwt, TENANT_TOKENS, TestServer } from './cp-helpers.js';
import { freePort, httpGet, qemuUnder, removeNodeDirs, ROOT, TestHome } from './helpers.js';

/**
 * Issue 12, the cross-tenant attacks: tenant beta's credential against tenant acme's objects, on a real control plane
 * on loopback placing real VMs on two real node agents — n1 is dedicated to acme (`dedicated=acme`, and the larger
 * node, so that only the dedication keeps beta off it), n2 is shared. acme's VM (examples/go-http) must keep
 * answering HTTP through every attack, and nothing of acme's may change. beta's 404s must be the very bytes of the
 * 404 for a name or id that never existed (only the trace id differs).
 */

const TENANTS = `
tenants:
  acme:
    nodes: [dedicated=acme]
  beta:
    quota: { vms: 3 }
`;

interface ApiError { code: string; message: string; trace_id: string; hint?: string; details?: Record<string, unknown>; }
interface View { name: string; id: string; state: string; node?: string; reason: string | null; ports: string[]; }
interface Status { deployments: View[]; operations: Array<{ id: string; kind: string; target: string; state: string; idempotencyKey: string | null; error: { code: string; message: string } | null }>; nodes?: Array<{ name: string; status: string }>; }

type Who = 'acme' | 'beta';

describe('tenants: beta against acme on a cluster with a node dedicated to acme (real VMs)', () => {
  const server = new TestServer({ runner: 'engine', tenants: TENANTS, extra: ['--nodes', 'agents', '--join-token', JOIN_TOKEN, '--node-grace-ms', '10000'] });
  const builder = new TestHome(); // builds examples/go-http into its own package store
  const nodes = [
    { name: 'n1', ip: '127.0.0.2', labels: 'dedicated=acme', cpus: 32, memory: 16384 },
    { name: 'n2', ip: '127.0.0.3', labels: 'zone=shared', cpus: 8, memory: 8192 },
  ].map((n) => ({ ...n, data: mkdtempSync(join(tmpdir(), `unikctl-tenant-${n.name}-`)), proc: null as ChildProcess | null }));
  const art: Record<Who, string> = { acme: '', beta: '' };
  const port: Record<Who, number> = { acme: 0, beta: 0 };
  /** beta's answers for names and ids that exist nowhere, taken before acme deployed anything */
  const baseline = new Map<string, { status: number; body: string }>();
  let acmeWeb: View | null = null;
  let acmeOp = '';

  const api = (who: Who | 'admin', path: string, init: { method?: string; json?: unknown; headers?: Record<string, string> } = {}): Promise<Response> =>
    server.api(path, { ...init, token: who === 'admin' ? ADMIN_TOKEN : TENANT_TOKENS[who] });
  const status = async (who: Who | 'admin', headers: Record<string, string> = {}): Promise<Status> => {
    const r = await api(who, '/v1/status', { headers });
    expect(r.status).toBe(200);
    return (await r.json()) as Status;
  };
  /** A response as compared with another: its status and its body without the trace id (which differs per request). */
  const answer = async (r: Response): Promise<{ status: number; body: string }> => {
    const text = await r.text();
    const { trace_id: trace, ...rest } = JSON.parse(text) as ApiError;
    expect(trace).toBe(r.headers.get('x-trace-id'));
    return { status: r.status, body: JSON.stringify(rest) };
  };
  const until = async <T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 300_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await status('admin'))}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const upload = async (who: Who, file: string): Promise<string> => {
    const r = await fetch(`${server.url}/v1/artifacts`, { method: 'POST', headers: { authorization: `Bearer ${TENANT_TOKENS[who]}`, 'content-type': 'application/gzip' }, body: readFileSync(file) });
    expect(r.status).toBe(201);
    return ((await r.json()) as { id: string }).id;
  };
  const deployBody = (who: Who, name: string, extra: Record<string, unknown> = {}): Record<string, unknown> =>
    ({ source: { artifact: art[who], kind: 'package' }, name, ports: [`${port[who]}:8080`], env: [`GREETING=${who}'s web`], ...extra });

  /** acme's VM is the one it was, still running on n1, and still answers HTTP with acme's greeting. */
  const acmeIntact = async (what: string): Promise<void> => {
    const s = await status('acme');
    const web = s.deployments.find((d) => d.name === 'web');
    expect(web, what).toMatchObject({ id: acmeWeb?.id, state: 'running', node: 'n1' });
    expect(s.operations.filter((o) => o.kind !== 'deploy'), `${what}: no operation but acme's deploy`).toEqual([]);
    expect(await httpGet(`http://127.0.0.2:${port.acme}/${what.replaceAll(' ', '-')}`), what).toContain("acme's web");
  };

  beforeAll(async () => {
    await server.start();
    const build = await builder.cli(['build', join(ROOT, 'examples', 'go-http')]);
    expect(build.code, build.stderr).toBe(0);
    for (const n of nodes) {
      const p = await freePort();
      n.proc = spawn(process.execPath, [join(ROOT, 'bin', 'unikctld.js'), 'agent', '--control-plane', server.url, '--name', n.name, '--join-token', JOIN_TOKEN,
        '--listen', `${n.ip}:${p}`, '--labels', n.labels, '--data', n.data, '--heartbeat-ms', '1000', '--cpus', String(n.cpus), '--memory', String(n.memory), '--log-level', 'warn'],
      { env: { ...process.env, UNIKCTL_KERNEL_DIR: homeLayout(process.env).kernels, UNIKCTL_ACCEL: process.env.UNIKCTL_ACCEL ?? 'tcg', UNIKCTL_STOP_GRACE_MS: '3000' }, stdio: 'ignore' });
    }
    await until('2 ready nodes', async () => (await status('admin')).nodes?.filter((n) => n.status === 'ready').length === 2, 60_000);
    // the same bytes uploaded by each tenant: two artifacts, two ids
    const bundle = await packBundle(join(builder.dir, 'packages', 'local', 'go-http', 'latest'));
    try {
      art.acme = await upload('acme', bundle.file);
      art.beta = await upload('beta', bundle.file);
    } finally {
      bundle.cleanup();
    }
    port.acme = await freePort();
    port.beta = await freePort();
  }, 600_000);

  afterAll(async () => {
    const names = (await status('admin').catch(() => null))?.deployments.map((d) => d.name) ?? [];
    if (names.length) await api('admin', '/v1/destroy', { json: { names } }).catch(() => undefined);
    await until('no VM left', async () => nodes.every((n) => qemuUnder(n.data).length === 0), 120_000).catch(() => undefined);
    for (const n of nodes) n.proc?.kill('SIGKILL');
    await server.stop();
    await removeNodeDirs(nodes.map((n) => n.data));
    server.cleanup();
    await builder.cleanup();
  });

  it('the same bytes are two artifacts for two tenants; beta\'s not-found answers before acme has anything', async () => {
    expect(art.acme).toMatch(/^art_[0-9a-f]{16}$/);
    expect(art.beta).toMatch(/^art_[0-9a-f]{16}$/);
    expect(art.beta).not.toBe(art.acme);
    baseline.set('destroy web', await answer(await api('beta', '/v1/destroy', { json: { names: ['web'] } })));
    baseline.set('logs web', await answer(await api('beta', '/v1/logs/web')));
    baseline.set('status web', await answer(await api('beta', '/v1/status?app=web')));
    for (const [what, a] of baseline) expect([what, a.status]).toEqual([what, 404]);
  });

  it('acme deploys web: placed on its dedicated node n1, it answers HTTP', async () => {
    const r = await api('acme', '/v1/deployments', { json: deployBody('acme', 'web'), headers: { 'idempotency-key': 'k1' } });
    expect(r.status).toBe(202);
    const res = (await r.json()) as { name: string; operationId: string };
    expect(res.name).toBe('web');
    acmeOp = res.operationId;
    acmeWeb = await until('acme web running', async () => (await status('acme')).deployments.find((d) => d.name === 'web' && d.state === 'running'));
    expect(acmeWeb.node).toBe('n1');
    expect(await httpGet(`http://127.0.0.2:${port.acme}/`, 120_000)).toContain("acme's web");
    // the operators see it under its stored name
    expect((await status('admin')).deployments.map((d) => d.name)).toEqual(['acme--web']);
  });

  it('destroy, logs and status of acme\'s web by beta: 404, byte for byte the answer for a name that never existed', async () => {
    const attacks: Array<[string, () => Promise<Response>]> = [
      ['destroy web', () => api('beta', '/v1/destroy', { json: { names: ['web'] } })],
      ['logs web', () => api('beta', '/v1/logs/web')],
      ['status web', () => api('beta', '/v1/status?app=web')],
    ];
    for (const [what, attack] of attacks) expect(await answer(await attack()), what).toEqual(baseline.get(what));
    // the stored name, as if beta knew the prefix: looked up under beta's own prefix, as unknown as any other name
    const never = async (path: string, json?: unknown): Promise<{ status: number; body: string }> => {
      const a = await answer(await api('beta', path.replace('NAME', 'acme--web'), json ? { json: JSON.parse(JSON.stringify(json).replace('NAME', 'acme--web')) as unknown } : {}));
      const b = await answer(await api('beta', path.replace('NAME', 'nope--web'), json ? { json: JSON.parse(JSON.stringify(json).replace('NAME', 'nope--web')) as unknown } : {}));
      expect(a.status).toBe(404);
      expect(a.body.replaceAll('acme--web', 'nope--web')).toBe(b.body);
      return a;
    };
    await never('/v1/destroy', { names: ['NAME'] });
    await never('/v1/logs/NAME');
    await never('/v1/status?app=NAME');
    const s = await status('beta');
    expect(s.deployments).toEqual([]);
    expect(s.operations).toEqual([]);
    expect(s.nodes).toEqual([]); // the nodes (and so acme's dedicated one) are the operators'
    await acmeIntact('after destroy logs status');
  });

  it('metrics: beta sees none of acme\'s series; acme sees its own under its own names', async () => {
    const text = async (who: Who): Promise<string> => {
      const r = await api(who, '/v1/metrics');
      expect(r.status).toBe(200);
      return r.text();
    };
    const acme = await text('acme');
    expect(acme).toContain('tenant="acme"');
    expect(acme).not.toContain('acme--');
    expect(acme).not.toContain('unikctld_http_requests_total'); // everyone's series are the operators'
    expect(await text('beta')).not.toContain('acme');
    await acmeIntact('after metrics');
  });

  it('artifact reuse by id: beta can neither deploy, delete nor download acme\'s artifact, and is told what it is told for an id never uploaded', async () => {
    const neverId = 'art_00000000deadbeef';
    const both = async (what: string, req: (id: string) => Promise<Response>): Promise<void> => {
      const theirs = await answer(await req(art.acme));
      const never = await answer(await req(neverId));
      expect(theirs.status, what).toBe(never.status);
      expect(theirs.body.replaceAll(art.acme, neverId), what).toBe(never.body);
    };
    await both('deploy', (id) => api('beta', '/v1/deployments', { json: { ...deployBody('beta', 'stolen'), source: { artifact: id, kind: 'package' } } }));
    await both('delete', (id) => api('beta', `/v1/artifacts/${id}`, { method: 'DELETE' }));
    await both('download', (id) => api('beta', `/v1/artifacts/${id}`));
    const r = await api('beta', '/v1/deployments', { json: { ...deployBody('beta', 'stolen'), source: { artifact: art.acme, kind: 'package' } } });
    expect([r.status, ((await r.json()) as ApiError).code]).toEqual([404, 'E_UNKNOWN_ARTIFACT']);
    // acme's artifact is still there for acme (a delete refused as in use: its deployment's placement needs it)
    const del = await api('acme', `/v1/artifacts/${art.acme}`, { method: 'DELETE' });
    expect([del.status, ((await del.json()) as ApiError).code]).toEqual([409, 'E_ARTIFACT_IN_USE']);
    expect((await status('beta')).operations).toEqual([]);
    await acmeIntact('after artifact reuse');
  });

  it('forged and re-signed JWTs claiming acme, and the tenant header from a non-admin, are refused', async () => {
    const claims = { tenant: 'acme', scope: 'deploy destroy read logs' };
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const algNone = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, sub: 'x', iss: 'unikctl-tests', aud: 'unikctld', exp: now + 300 })}.`;
    const betaJwt = await signJwt({ tenant: 'beta', scope: 'deploy destroy read logs' });
    const [h, p, sig] = betaJwt.split('.') as [string, string, string];
    const edited = `${h}.${b64({ ...(JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>), tenant: 'acme' })}.${sig}`;
    const forged: Array<[string, string]> = [
      ['signed with another secret', await signJwt(claims, { secret: 'not-the-secret-of-this-server-0123456789' })],
      ['alg none', algNone],
      ["beta's valid JWT edited to say acme", edited],
    ];
    for (const [what, token] of forged) {
      for (const [path, json] of [['/v1/destroy', { names: ['web'] }], ['/v1/status', undefined], ['/v1/logs/web', undefined]] as const) {
        const r = await server.api(path, { token, ...(json ? { json } : {}) });
        expect([r.status, ((await r.json()) as ApiError).code], `${what} ${path}`).toEqual([401, 'E_TOKEN_INVALID']);
      }
    }
    // the JWT path itself works: beta's own JWT acts for beta, and so finds no web
    expect(((await (await server.api('/v1/quota', { token: betaJwt })).json()) as { tenant: string }).tenant).toBe('beta');
    expect(await answer(await server.api('/v1/destroy', { token: betaJwt, json: { names: ['web'] } }))).toEqual(baseline.get('destroy web'));
    // the tenant header is an admin's; from beta it is refused, whatever it names
    for (const [path, json] of [['/v1/destroy', { names: ['web'] }], ['/v1/status', undefined], ['/v1/logs/web', undefined], ['/v1/metrics', undefined]] as const) {
      const r = await api('beta', path, { headers: { 'x-unikctl-tenant': 'acme' }, ...(json ? { json } : {}) });
      expect([r.status, ((await r.json()) as ApiError).code], path).toEqual([403, 'E_FORBIDDEN']);
    }
    // an admin with the header does act as acme
    expect((await status('admin', { 'x-unikctl-tenant': 'acme' })).deployments.map((d) => d.name)).toEqual(['web']);
    await acmeIntact('after forged credentials');
  });

  it('beta asking for acme\'s dedicated pool is never placed there: it stays pending on E_NO_CAPACITY naming the dedication, and its destroy gives the quota back', async () => {
    const r = await api('beta', '/v1/deployments', { json: deployBody('beta', 'pool', { labels: ['dedicated=acme'] }) });
    expect(r.status).toBe(202);
    const opId = ((await r.json()) as { operationId: string }).operationId;
    // unplaceable is a platform condition (a node may yet appear): the deploy waits, retrying, with the reason shown
    const pool = await until('the pool deploy to be refused a node', async () => (await status('beta')).deployments.find((d) => d.name === 'pool' && (d.reason ?? '').includes('E_NO_CAPACITY')), 120_000);
    expect(pool.state).toBe('pending');
    expect(pool.reason).toContain('1 dedicated to another tenant');
    expect((await status('beta')).operations.find((o) => o.id === opId)?.error?.code).toBe('E_NO_CAPACITY');
    expect(qemuUnder(nodes[0]?.data ?? '')).toHaveLength(1); // acme's VM alone
    expect(((await (await api('beta', '/v1/quota')).json()) as { used: { vms: number } }).used.vms).toBe(1);
    expect((await api('beta', '/v1/destroy', { json: { names: ['pool'] } })).status).toBe(202);
    await until('pool gone and its reservation released', async () => {
      const q = (await (await api('beta', '/v1/quota')).json()) as { used: { vms: number } };
      return q.used.vms === 0 && !(await status('beta')).deployments.some((d) => d.name === 'pool');
    }, 120_000);
    expect(qemuUnder(nodes[0]?.data ?? '')).toHaveLength(1);
    await acmeIntact('after the pool attempt');
  });

  it('beta reusing acme\'s idempotency key and app name gets its own operation and its own web, on the shared node', async () => {
    const r = await api('beta', '/v1/deployments', { json: deployBody('beta', 'web'), headers: { 'idempotency-key': 'k1' } });
    expect(r.status).toBe(202);
    const res = (await r.json()) as { name: string; operationId: string; reused: boolean };
    expect(res).toMatchObject({ name: 'web', reused: false });
    expect(res.operationId).not.toBe(acmeOp);
    // beta's key now answers with beta's operation; acme's with acme's
    const again = (await (await api('beta', '/v1/deployments', { json: deployBody('beta', 'web'), headers: { 'idempotency-key': 'k1' } })).json()) as { operationId: string; reused: boolean };
    expect(again).toMatchObject({ operationId: res.operationId, reused: true });
    const acmeAgain = (await (await api('acme', '/v1/deployments', { json: deployBody('acme', 'web'), headers: { 'idempotency-key': 'k1' } })).json()) as { operationId: string; reused: boolean };
    expect(acmeAgain).toMatchObject({ operationId: acmeOp, reused: true });
    const web = await until('beta web running', async () => (await status('beta')).deployments.find((d) => d.name === 'web' && d.state === 'running'));
    // n1 has more room (spread would pick it) but is acme's
    expect(web.node).toBe('n2');
    expect(await httpGet(`http://127.0.0.3:${port.beta}/`, 120_000)).toContain("beta's web");
    const s = await status('beta');
    expect(s.deployments.map((d) => d.name)).toEqual(['web']);
    expect(s.operations.every((o) => o.target === 'web' || o.target === 'pool')).toBe(true);
    expect((await status('admin')).deployments.map((d) => d.name).sort()).toEqual(['acme--web', 'beta--web']);
    // beta's destroy of web is its own web's
    const d = await api('beta', '/v1/destroy', { json: { names: ['web'] } });
    expect(d.status).toBe(202);
    await until('beta web gone', async () => !(await status('beta')).deployments.some((x) => x.name === 'web'), 120_000);
    await acmeIntact('after beta had its own web');
    expect(qemuUnder(nodes[1]?.data ?? '')).toEqual([]);
    // now that beta has series of its own: still none of acme's
    const metrics = await (await api('beta', '/v1/metrics')).text();
    expect(metrics).toContain('tenant="beta"');
    expect(metrics).not.toContain('acme');
  });
});
