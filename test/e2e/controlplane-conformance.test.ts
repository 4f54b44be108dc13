import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ROOT } from './helpers.js';
import { fakePackage } from './fake-package.js';

/**
 * Conformance of the control plane's HTTP API, against a real `unikctld serve --runner fake` (no VM is booted):
 *   (a) GET /v1/metrics is valid Prometheus text format (`promtool check metrics`), once histograms have samples;
 *   (b) Schemathesis fuzzes every operation of GET /openapi.json: no 5xx, every response's status code is one the
 *       document declares, and every documented response body matches its schema.
 * promtool and Schemathesis are test-only tools installed by scripts/ci-tools.sh (CI runs it); this test fails,
 * rather than skips, when they are missing.
 */

const SERVER_BIN = join(ROOT, 'bin', 'unikctld.js');
const ST = join(ROOT, '.venv-tools', 'bin', 'st');
const INSTALL_HINT = 'run scripts/ci-tools.sh (it installs promtool and Schemathesis into .venv-tools/; CI runs it before the tests)';
/** fixed, so that a failure reproduces: `st run … --seed <this>` generates the same requests again */
const SCHEMATHESIS_SEED = 20251125;
/** test cases per operation in the fuzzing phase (the coverage phase adds its own); about 10-20 s here */
const SCHEMATHESIS_MAX_EXAMPLES = 100;
const SCHEMATHESIS_TIMEOUT_MS = 300_000; // ~60-90 s on an idle 2-core host; generous for a loaded one

interface Run { code: number | null; signal: NodeJS.Signals | null; out: string; }

function findOnPath(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean).concat(['/usr/bin', '/usr/local/bin'])) {
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch { /* not here */ }
  }
  return null;
}

function requireTool(path: string | null, what: string): string {
  if (!path || !existsSync(path)) throw new Error(`${what} is not installed: ${INSTALL_HINT}`);
  return path;
}

/** Runs argv to completion (killed after timeoutMs), stdout and stderr interleaved in `out`. */
function runTool(argv: string[], opts: { cwd: string; input?: string; timeoutMs: number; env?: NodeJS.ProcessEnv }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    const timer = setTimeout(() => {
      chunks.push(Buffer.from(`\n[killed after ${opts.timeoutMs} ms]\n`));
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out: Buffer.concat(chunks).toString('utf8') });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** The value of the first sample of `metric` whose labels include every `labels` pair (NaN if none). */
function sample(text: string, metric: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`) && !line.startsWith(`${metric} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return NaN;
}

describe('control plane API conformance (unikctld --runner fake)', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'unikctld-conformance-'));
  const dataDir = join(scratch, 'data');
  const token = `unik_conformance_${randomBytes(16).toString('hex')}`;
  /** a tenant's credential (docs/tenants.md): the quota routes answer it 200 */
  const tenantToken = `unik_conformance_tenant_${randomBytes(16).toString('hex')}`;
  const joinToken = `unik_join_${randomBytes(16).toString('hex')}`;
  let nodeCredential = '';
  let server: ChildProcess | null = null;
  let serverLog = '';
  let base = '';
  const killServer = (): void => { server?.kill('SIGKILL'); };

  const api = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown>; text: string; type: string }> => {
    const r = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await r.text();
    let json: Record<string, unknown> = {};
    try { json = JSON.parse(text) as Record<string, unknown>; } catch { /* not JSON */ }
    return { status: r.status, json, text, type: r.headers.get('content-type') ?? '' };
  };

  /** Starts unikctld on a free port; retries with another port if the one picked was taken meanwhile. */
  async function startServer(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const env: NodeJS.ProcessEnv = { ...process.env, UNIKCTL_HOME: join(scratch, 'home'), NO_COLOR: '1' };
      delete env.UNIKCTL_CONTROL_PLANE_URL; // package references must resolve in this server's own store only
      const child = spawn(process.execPath, [
        SERVER_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--auth', join(scratch, 'auth.yaml'),
        '--runner', 'fake', '--fake-work-ms', '5', '--workers', '4', '--log-level', 'warn', '--join-token', joinToken, '--tenants', join(scratch, 'tenants.yaml'),
      ], { cwd: scratch, env, stdio: ['ignore', 'pipe', 'pipe'] });
      server = child;
      child.stdout?.on('data', (c: Buffer) => { serverLog += c.toString('utf8'); });
      child.stderr?.on('data', (c: Buffer) => { serverLog += c.toString('utf8'); });
      base = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
        try {
          const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
          if (r.status === 200) return;
        } catch { /* not listening yet */ }
        await new Promise((r) => setTimeout(r, 100));
      }
      const exited = child.exitCode !== null || child.signalCode !== null;
      child.kill('SIGKILL');
      if (!(exited && /EADDRINUSE/.test(serverLog) && attempt < 3)) {
        throw new Error(`unikctld did not become ready on ${base} (exit ${child.exitCode ?? child.signalCode ?? 'none'}):\n${serverLog}`);
      }
      serverLog = '';
    }
  }

  beforeAll(async () => {
    if (!existsSync(join(ROOT, 'dist', 'controlplane', 'server.js'))) throw new Error('dist/ is missing: run npm run build');
    writeFileSync(join(scratch, 'auth.yaml'), `tokens:\n  - name: admin\n    token: ${token}\n    scopes: [admin]\n`
      + `  - name: conf-tenant\n    token: ${tenantToken}\n    scopes: [deploy, destroy, read, logs]\n    tenant: conf\n`);
    // with tenants on, the admin (the fuzzing below) acts for everyone as before, and GET /v1/quota answers it 403
    writeFileSync(join(scratch, 'tenants.yaml'), 'tenants:\n  conf:\n    quota: { vms: 2, memory: 1G, artifacts: 10M }\n    vm: { memory: { default: 128M, max: 512M } }\n    ports: 20000-20999\n');
    fakePackage(dataDir, 'conf');
    // "0" is the first string Schemathesis's coverage phase tries for a free-form field: with a package of that
    // name, some of its generated deploys get past resolution, so the 202 response is checked against its schema too
    fakePackage(dataDir, '0');
    process.once('exit', killServer); // no orphan even if vitest dies before afterAll
    await startServer();
    // likewise a node named "0" lets the generated cordon/uncordon/drain/heartbeat requests reach their 200/202 paths
    const reg = await api('POST', '/v1/nodes/join', { name: '0', address: '127.0.0.1', capacity: { cpus: 2 } }, { authorization: `Bearer ${joinToken}` });
    expect(reg.status, reg.text).toBe(201);
    nodeCredential = String(reg.json.credential);
  });

  afterAll(async () => {
    const child = server;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    process.removeListener('exit', killServer);
    rmSync(scratch, { recursive: true, force: true });
  });

  it('serves Prometheus metrics that promtool accepts, once operations have run', async () => {
    const promtool = requireTool(findOnPath('promtool'), 'promtool (Debian package prometheus)');

    // a few operations of each outcome, so that the histogram and the counters have samples
    const first = await api('POST', '/v1/deployments', { source: { package: 'local/conf:latest' }, name: 'conf-a' }, { 'idempotency-key': 'conf-a-1' });
    expect(first.status, first.text).toBe(202);
    expect(first.json).toMatchObject({ name: 'conf-a', state: 'pending', reused: false });
    const again = await api('POST', '/v1/deployments', { source: { package: 'local/conf:latest' }, name: 'conf-a' }, { 'idempotency-key': 'conf-a-1' });
    expect(again.status, again.text).toBe(202);
    expect(again.json).toMatchObject({ operationId: first.json.operationId, reused: true });
    const conflict = await api('POST', '/v1/deployments', { source: { package: 'local/conf:latest' }, name: 'conf-b' }, { 'idempotency-key': 'conf-a-1' });
    expect(conflict.status, conflict.text).toBe(409);
    expect(conflict.json.code).toBe('E_IDEMPOTENCY_CONFLICT');
    for (let i = 0; i < 5; i++) {
      const r = await api('POST', '/v1/deployments', { source: { package: 'conf' }, nameHint: 'conf-hint', idempotencyKey: `conf-hint-${i}` });
      expect(r.status, r.text).toBe(202);
    }
    const missing = await api('POST', '/v1/deployments', { source: { package: 'local/nope:latest' } });
    expect([missing.status, missing.json.code]).toEqual([404, 'E_PACKAGE_NOT_FOUND']);
    const invalid = await api('POST', '/v1/deployments', { source: {}, bogus: true });
    expect([invalid.status, invalid.json.code]).toEqual([400, 'E_VALIDATION']);
    const anon = await fetch(`${base}/v1/status`);
    expect(anon.status).toBe(401);
    for (const [path, status] of [['/v1/nodes/heartbeat', 200], ['/v1/nodes/0/cordon', 200], ['/v1/nodes/0/uncordon', 200], ['/v1/nodes/0/drain', 202]] as const) {
      // heartbeats come from the node itself, with its own credential
      const r = path.endsWith('heartbeat') ? await api('POST', path, { name: '0', capacity: { cpus: 2 } }, { authorization: `Bearer ${nodeCredential}` }) : await api('POST', path);
      expect(r.status, `${path}: ${r.text}`).toBe(status);
    }
    expect((await api('GET', '/v1/status')).status).toBe(200);

    // wait for the queue to run the 6 deploy jobs (fake runner: ~5 ms each)
    let text = '';
    const deadline = Date.now() + 30_000;
    for (;;) {
      const m = await api('GET', '/v1/metrics');
      expect(m.status, m.text).toBe(200);
      expect(m.type).toMatch(/^text\/plain/);
      text = m.text;
      const done = sample(text, 'unikctld_operation_duration_seconds_count', { kind: 'deploy', outcome: 'succeeded' });
      if (done >= 6 && sample(text, 'unikctld_queue_operations', { state: 'queued' }) === 0 && sample(text, 'unikctld_queue_operations', { state: 'running' }) === 0) break;
      if (Date.now() > deadline) throw new Error(`the deploy jobs did not finish in 30 s:\n${text}\n--- server log ---\n${serverLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sample(text, 'unikctld_operation_duration_seconds_bucket', { le: '+Inf', kind: 'deploy', outcome: 'succeeded' })).toBeGreaterThanOrEqual(6);
    expect(sample(text, 'unikctld_http_requests_total', { method: 'POST', route: '/v1/deployments', status: '202' })).toBeGreaterThanOrEqual(7);

    const r = await runTool([promtool, 'check', 'metrics'], { cwd: scratch, input: text, timeoutMs: 60_000 });
    console.log(`promtool check metrics: exit ${r.code ?? r.signal}${r.out.trim() ? `\n${r.out.trim()}` : ' (no lint findings)'}`);
    expect(r.code, `promtool check metrics failed:\n${r.out}\n--- metrics ---\n${text}`).toBe(0);
  }, 120_000);

  /** One Schemathesis run against the served document with `who`'s token; `extra` narrows the operations. */
  async function schemathesis(who: 'admin' | 'tenant', extra: string[] = []): Promise<void> {
    const st = requireTool(ST, `Schemathesis (${ST})`);
    const bearer = who === 'admin' ? token : tenantToken;
    const argv = [
      st, 'run', `${base}/openapi.json`,
      '--header', `Authorization: Bearer ${bearer}`,
      '--checks', 'not_a_server_error,status_code_conformance,response_schema_conformance',
      '--max-examples', String(SCHEMATHESIS_MAX_EXAMPLES),
      '--seed', String(SCHEMATHESIS_SEED),
      '--workers', '1', // one worker: the same seed then gives the same request sequence
      '--generation-database', 'none', // no example database: runs do not depend on earlier ones
      '--request-timeout', '10',
      '--no-color',
      ...extra,
    ];
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.SCHEMATHESIS_HOOKS; // no user hooks from the environment
    // cwd is the scratch dir: Schemathesis writes its .schemathesis/ and .hypothesis/ folders there, not in the repo
    const r = await runTool(argv, { cwd: scratch, timeoutMs: SCHEMATHESIS_TIMEOUT_MS, env });
    const shown = argv.map((a) => (a.includes(bearer) ? `Authorization: Bearer <${who} token>` : a)).join(' ');
    // Schemathesis closes with pytest's banner ("==== 3 warnings in 114s ===="): CI reads such a line as a pytest run
    // that executed no test, so the banners are left out of what is printed (the test counts stay)
    const unbannered = (out: string): string => out.split('\n').filter((l) => !/^=+ .* =+$/.test(l.trim())).join('\n');
    if (r.code === 0) {
      const at = r.out.indexOf('= SUMMARY =');
      const summary = at < 0 ? r.out : r.out.slice(r.out.lastIndexOf('\n', at) + 1).trim();
      console.log(`${shown}\n${unbannered(summary)}`);
    } else {
      console.log(`${shown}\n${unbannered(r.out)}`);
    }
    expect(r.code, `Schemathesis failed (exit ${r.code ?? r.signal}); reproduce with the command above:\n${r.out}\n--- server log ---\n${serverLog}`).toBe(0);

    // belt and braces: the server is alive, counted no 5xx, and logged no error
    expect(server?.exitCode ?? null, serverLog).toBeNull();
    const m = await api('GET', '/v1/metrics');
    expect(m.status).toBe(200);
    const fiveXX = m.text.split('\n').filter((l) => l.startsWith('unikctld_http_requests_total{') && /status="5\d\d"/.test(l));
    expect(fiveXX, fiveXX.join('\n')).toEqual([]);
    const errors = serverLog.split('\n').filter((l) => {
      try { return ((JSON.parse(l) as { level?: number }).level ?? 0) >= 50; } catch { return false; }
    });
    expect(errors, errors.join('\n')).toEqual([]);
  }

  it('conforms to its own OpenAPI document under Schemathesis (no 5xx, declared status codes, response schemas)', async () => {
    // Nothing is excluded. POST /v1/artifacts documents no request body (it streams a raw tar), so Schemathesis
    // sends none and only its headers and error responses get exercised: that is still worth checking.
    await schemathesis('admin');
  }, 360_000);

  it('as a tenant: /v1/quota answers 200 (the admin 403 E_TENANT_REQUIRED), and quota refusals carry their details; Schemathesis stays clean', async () => {
    const asTenant = { authorization: `Bearer ${tenantToken}` };
    const admin = await api('GET', '/v1/quota');
    expect([admin.status, admin.json.code]).toEqual([403, 'E_TENANT_REQUIRED']);
    const q = await api('GET', '/v1/quota', undefined, asTenant);
    expect(q.status, q.text).toBe(200);
    expect(q.json).toMatchObject({ tenant: 'conf', quota: { vms: 2, memoryMiB: 1024, artifactBytes: 10 * 1024 * 1024 }, ports: { from: 20000, to: 20999 } });
    const big = await api('POST', '/v1/deployments', { source: { package: 'conf' }, name: 'big', memory: '1G' }, asTenant);
    expect([big.status, big.json.code, big.json.details]).toEqual([403, 'E_QUOTA_EXCEEDED', { tenant: 'conf', resource: 'vm.memory', requested: 1024, used: 0, limit: 512 }]);
    const st = await api('GET', '/v1/status', undefined, asTenant);
    expect([st.status, (st.json.quota as { tenant?: string } | undefined)?.tenant, st.json.nodes]).toEqual([200, 'conf', []]);
    // the tenant's view of the routes it acts through: quota and status, and deploys that run into its quota and port range
    await schemathesis('tenant', ['--include-path-regex', '^/v1/(quota|status|deployments)$']);
  }, 360_000);
});
