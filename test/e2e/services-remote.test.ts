/**
 * Services through the control plane (issue 13, remote mode): `unikctl deploy --replicas … --check … --wait` with
 * UNIKCTL_CONTROL_PLANE_URL set goes to a real `unikctld serve` on loopback, which runs the replicas and the front on
 * its own host. examples/go-service is built once in the CLI's home and uploaded as a package. Kept short: two
 * replicas, one rollout (TCG boots are slow).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { which } from '../../src/util/exec.js';
import { TENANT_TOKENS, TestServer } from './cp-helpers.js';
import { exampleCopy, freePort, httpGet, shareBuildCache } from './helpers.js';
import { brief, describeFailures, portFree, sleep, startLoad, type ServiceDeployJson, type ServiceStatusJson } from './service-helpers.js';

const PKG = 'local/go-service:latest';
const CHECK = 'http:8080/healthz,interval=1s,timeout=1s,grace=2s,failures=2';
const BUILD_TIMEOUT = 900_000;
/** two replicas boot under TCG, then a rollout replaces them one by one */
const T = 480_000;

/** Polls `f` until it answers something (or throws after `timeoutMs`, naming `what`). */
async function waitFor<T>(f: () => Promise<T | null>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

const front = which('haproxy') ?? (existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : null);
if (!front) console.log('services-remote e2e skipped: haproxy (the services\' front) is not installed (apt-get install haproxy)');

const { home, app } = exampleCopy('go-service', /\/\.unikctl(\/|$)/);
shareBuildCache(app, 'go-http');

/** The pids of a user's processes whose command line matches `pattern` (a tenant's VMs run as its own user). */
function pidsOfUser(user: string, pattern: string): number[] {
  try {
    return execFileSync('pgrep', ['-u', user, '-f', pattern], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Processes whose command line names the server's data directory (its VMs' and fronts' files live under it). */
function processesOf(dir: string, pattern: string): string[] {
  try {
    return execFileSync('pgrep', ['-af', `${pattern}.*${dir}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** Stops the server, kills any VM or front left under its data directory (then fails: none may be left), removes it. */
async function stopAndSweep(server: TestServer): Promise<void> {
  await server.stop();
  const left = [...processesOf(server.data, 'qemu-system'), ...processesOf(server.data, 'haproxy')];
  for (const line of left) {
    try { process.kill(Number(line.split(' ')[0]), 'SIGKILL'); } catch { /* gone */ }
  }
  server.cleanup();
  expect(left).toEqual([]);
}

describe.skipIf(!front)('services in remote mode: unikctl → unikctld → replicas behind a front', () => {
  const server = new TestServer({ runner: 'engine' });
  let port = 0;

  beforeAll(async () => {
    const t0 = Date.now();
    const r = await home.cli(['build', app, '--json']);
    expect(r.code, r.stderr).toBe(0);
    console.log(`go-service: built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    port = await freePort();
    await server.start();
    Object.assign(home.env, server.cliEnv());
  }, BUILD_TIMEOUT);

  afterAll(async () => {
    await home.cli(['destroy', 'rweb', '--wait']).catch(() => undefined);
    await stopAndSweep(server);
  });

  const deploy = async (env: string): Promise<{ code: number; out: ServiceDeployJson; text: string }> => {
    const args = ['deploy', PKG, '--name', 'rweb', '-p', `${port}:8080`, '--replicas', '2', '--check', CHECK, '--min-healthy', '1s', '-e', env, '--wait', '--timeout', String(T / 1000 - 60), '--json'];
    const t0 = Date.now();
    const r = await home.cli(args);
    const text = `unikctl ${args.join(' ')} → exit ${r.code} in ${((Date.now() - t0) / 1000).toFixed(1)} s\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
    console.log(text.split('\n')[0]);
    return { code: r.code, out: JSON.parse(r.stdout || 'null') as ServiceDeployJson, text };
  };

  it('deploy --replicas 2 --check … --wait, traffic through the published port, a rollout to v2, metrics, destroy', async () => {
    const v1 = await deploy('VERSION=v1');
    expect(v1.code, v1.text).toBe(0);
    expect(v1.out.state, v1.text).toBe('running');
    expect(v1.out.rollout?.phase, v1.text).toBe('succeeded');
    let s = await home.json<ServiceStatusJson>(['status', 'rweb']);
    const svc = s.services.find((x) => x.name === 'rweb');
    expect(svc?.desired).toBe(2);
    expect(svc?.replicas.filter((r) => r.health === 'healthy')).toHaveLength(2);
    // the replicas are deployments of their own in the status the API returns
    expect(s.deployments.map((d) => d.name).sort()).toEqual(svc?.replicas.map((r) => r.name).sort());

    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const body = (await httpGet(`http://127.0.0.1:${port}/`, 20_000)).trim();
      expect(body).toMatch(/^version=v1 replica=rweb\.\d+$/);
      seen.add(body);
    }
    expect(seen.size, [...seen].join(', ')).toBe(2);

    const v2 = await deploy('VERSION=v2');
    expect(v2.code, v2.text).toBe(0);
    expect(v2.out.rollout?.phase, v2.text).toBe('succeeded');
    expect(v2.out.rollout?.to, v2.text).toBe(2);
    expect((await httpGet(`http://127.0.0.1:${port}/`, 20_000)).trim()).toMatch(/^version=v2 replica=rweb\.\d+$/);
    s = await home.json<ServiceStatusJson>(['status', 'rweb']);
    expect(s.services.find((x) => x.name === 'rweb')?.current).toBe(2);
    const ops = s.operations.filter((o) => o.kind === 'deploy');
    expect(ops.map((o) => o.state)).toEqual(['succeeded', 'succeeded']);

    // unikctld killed (-9) in the middle of the rollout to v3: the node's controller is a process of its own and
    // carries on; the restarted daemon replays the operation, which follows the same rollout (the operation's id is
    // the node's idempotency key: no second version) and ends with it; the front serves throughout
    const load = startLoad(port, { workers: 4 });
    const v3 = await home.cli(['deploy', PKG, '--name', 'rweb', '-p', `${port}:8080`, '--replicas', '2', '--check', CHECK, '--min-healthy', '1s', '-e', 'VERSION=v3', '--json']);
    expect(v3.code, v3.stderr).toBe(0);
    const v3op = (JSON.parse(v3.stdout) as { operationId: string }).operationId;
    const rolling = await waitFor(async () => {
      const svc3 = (await home.json<ServiceStatusJson>(['status', 'rweb'])).services.find((x) => x.name === 'rweb');
      return svc3?.rollout?.to === 3 && ['progressing', 'canary'].includes(svc3.rollout.phase) ? svc3 : null;
    }, T, 'the rollout to v3 to start on the node');
    await server.kill9();
    console.log(`unikctld killed (-9) during the rollout to v3 (${brief(rolling)})`);
    await server.start();
    const ended = await waitFor(async () => {
      const st = await home.json<ServiceStatusJson>(['status', 'rweb']);
      const op = st.operations.find((o) => o.id === v3op);
      return op && (op.state === 'succeeded' || op.state === 'failed') ? { st, op } : null;
    }, T, 'the replayed operation to end');
    const served = await load.stop();
    expect(ended.op.state, JSON.stringify(ended.op)).toBe('succeeded');
    const after = ended.st.services.find((x) => x.name === 'rweb');
    expect(after?.current, brief(after)).toBe(3);
    expect(after?.versions.map((v) => v.version), brief(after)).not.toContain(4); // the replay started no second version
    expect(served.failures, describeFailures(served.failures)).toEqual([]);
    expect(served.answers.some((a) => a.version === 'v3')).toBe(true);

    // logs of the app merge its replicas (and its controller), each line with its source
    const logs = await home.cli(['logs', 'rweb', '--json']);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(/"source":"rweb\.\d+"/);

    // the front's traffic in the control plane's metrics (the controller adds it up every few seconds)
    let metrics = '';
    for (let i = 0; i < 40 && !/unikctld_front_requests_total\{app="rweb",version="2"/.test(metrics); i++) {
      await httpGet(`http://127.0.0.1:${port}/`, 20_000);
      metrics = await (await server.api('/v1/metrics')).text();
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(metrics).toMatch(/unikctld_front_requests_total\{app="rweb",version="1",tenant=""\} [1-9]/);
    expect(metrics).toMatch(/unikctld_front_requests_total\{app="rweb",version="2",tenant=""\} [1-9]/);
    expect(metrics).toContain('unikctld_service_replicas{app="rweb",tenant="",state="desired"} 2');

    const d = await home.cli(['destroy', 'rweb', '--wait', '--json']);
    expect(d.code, `${d.stdout}\n${d.stderr}`).toBe(0);
    s = await home.json<ServiceStatusJson>(['status']);
    expect(s.deployments.filter((x) => x.name.startsWith('rweb'))).toEqual([]);
    expect((s.services ?? []).filter((x) => x.name === 'rweb')).toEqual([]);
    expect(processesOf(server.data, 'qemu-system')).toEqual([]);
    expect(processesOf(server.data, 'haproxy')).toEqual([]);
    expect(await portFree(port)).toBe(true);
  }, 2 * T);
});

/**
 * A tenant's service through the control plane (docs/tenants.md, "Services"): tenant acme deploys 2 replicas (a
 * rolling service reserves replicas + max-surge = 3 VMs of its quota of 4), a scale to 4 (5 VMs at worst) is refused
 * at admission while the service keeps serving, and tenant beta sees nothing of it.
 */
const TENANTS = `
tenants:
  acme:
    quota: { vms: 4, memory: 1G }
    vm:
      memory: { default: 64M, max: 128M }
  beta:
    quota: { vms: 4 }
`;

interface ApiError { code: string; message: string; details?: Record<string, unknown>; }
/** the check with a boot-sized grace: under TCG on a loaded host a replica's port may reset connections for seconds after start */
const TENANT_CHECK = 'http:8080/healthz,interval=1s,timeout=1s,grace=30s,failures=3';

describe.skipIf(!front)("a tenant's service: replicas under the tenant's user, quotas counting surge replicas, invisible to other tenants", () => {
  const server = new TestServer({ runner: 'engine', tenants: TENANTS });
  let port = 0;
  // the CLI's environment names the credential: the tenant's own token, as a tenant's user would have it
  const cli = (args: string[]): ReturnType<typeof home.cli> => {
    Object.assign(home.env, server.cliEnv(TENANT_TOKENS.acme));
    return home.cli(args);
  };

  beforeAll(async () => {
    // the package is built locally (the block above pointed the CLI at its own server, stopped since; cached build)
    delete home.env.UNIKCTL_CONTROL_PLANE_URL;
    delete home.env.UNIKCTL_TOKEN;
    const r = await home.cli(['build', app, '--json']);
    expect(r.code, r.stderr).toBe(0);
    port = await freePort();
    await server.start();
  }, BUILD_TIMEOUT);

  afterAll(async () => {
    await cli(['destroy', 'tweb', '--wait']).catch(() => undefined);
    await stopAndSweep(server);
  });

  const deploy = async (replicas: number): Promise<{ code: number; out: ServiceDeployJson & { error?: ApiError }; text: string }> => {
    const args = ['deploy', PKG, '--name', 'tweb', '-p', `${port}:8080`, '--replicas', String(replicas), '--check', TENANT_CHECK, '--min-healthy', '1s', '--wait', '--timeout', String(T / 1000 - 60), '--json'];
    const t0 = Date.now();
    const r = await cli(args);
    const text = `unikctl ${args.join(' ')} → exit ${r.code} in ${((Date.now() - t0) / 1000).toFixed(1)} s\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
    console.log(text.split('\n')[0]);
    return { code: r.code, out: JSON.parse(r.stdout || 'null') as ServiceDeployJson & { error?: ApiError }, text };
  };
  const used = async (tenant: 'acme' | 'beta'): Promise<Record<string, number>> => ((await (await server.api('/v1/quota', { token: TENANT_TOKENS[tenant] })).json()) as { used: Record<string, number> }).used;

  it('acme deploys 2 replicas that answer through the front; a scale past its quota (4 + 1 surge > 4 VMs) is refused while it keeps serving; beta sees nothing', async () => {
    // the tenant user's VMs (left by nothing else under the e2e lock, but counted from here to be sure)
    const before = pidsOfUser('unikctl-t-acme', 'qemu-system').length;
    const v1 = await deploy(2);
    expect(v1.code, v1.text).toBe(0);
    expect(v1.out.rollout?.phase, v1.text).toBe('succeeded');
    // the quota holds the rollout's worst case: 2 replicas + 1 surge, 64M each
    expect(await used('acme')).toMatchObject({ vms: 3, apps: 1, vcpus: 3, memoryMiB: 192 });
    for (let i = 0; i < 4; i++) expect((await httpGet(`http://127.0.0.1:${port}/`, 20_000)).trim()).toMatch(/^version=v1 replica=\S+$/);
    // the tenant's names, without the prefix: the service, its replicas (and their deployments)
    const s = JSON.parse((await cli(['status', 'tweb', '--json'])).stdout) as ServiceStatusJson;
    const svc = s.services.find((x) => x.name === 'tweb');
    expect(svc?.replicas.map((r) => r.name).sort()).toEqual(['tweb.1', 'tweb.2']);
    expect(s.deployments.map((d) => d.name).sort()).toEqual(['tweb.1', 'tweb.2']);
    // every replica VM runs as the tenant's user (in its cgroup), like a plain tenant deployment
    expect(pidsOfUser('unikctl-t-acme', 'qemu-system').length).toBe(before + 2);
    const logs = await cli(['logs', 'tweb', '--json']);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(/"source":"tweb\.\d+"/);
    // every line's source is the tenant's own name (the app's own text may say what it likes, e.g. its hostname)
    expect([...logs.stdout.matchAll(/"source":"([^"]*)"/g)].map((m) => m[1]).filter((x) => x?.startsWith('acme--'))).toEqual([]);

    // 4 replicas + 1 surge = 5 VMs > 4: refused at admission (the service's own 3 are replaced, not added: used 0)
    const big = await deploy(4);
    expect(big.code, big.text).not.toBe(0);
    expect(big.out.error?.code, big.text).toBe('E_QUOTA_EXCEEDED');
    // (the CLI adds the request's trace id to the API's message)
    expect(big.out.error?.message, big.text).toMatch(/^tenant acme: vms quota exceeded: requested 5, used 0, limit 4 \(trace [0-9a-f]+\)$/);
    expect(await used('acme')).toMatchObject({ vms: 3, apps: 1 });
    const after = JSON.parse((await cli(['status', 'tweb', '--json'])).stdout) as ServiceStatusJson;
    expect(after.services.find((x) => x.name === 'tweb')?.desired).toBe(2);
    expect(after.operations.filter((o) => o.kind === 'deploy')).toHaveLength(1); // nothing journaled for the refused one
    for (let i = 0; i < 4; i++) expect((await httpGet(`http://127.0.0.1:${port}/`, 20_000)).trim()).toMatch(/^version=v1 replica=\S+$/);

    // beta: acme's service answers exactly like a name that never existed
    const api = (path: string, init: Parameters<TestServer['api']>[1] = {}): Promise<Response> => server.api(path, { token: TENANT_TOKENS.beta, ...init });
    const same = async (f: (name: string) => Promise<Response>): Promise<void> => {
      const [a, n] = [await f('tweb'), await f('never')];
      const [ja, jn] = [(await a.json()) as ApiError, (await n.json()) as ApiError];
      expect([a.status, ja.code, ja.message.replaceAll('tweb', 'X')]).toEqual([n.status, jn.code, jn.message.replaceAll('never', 'X')]);
      expect(a.status).toBe(404);
    };
    await same((n) => api(`/v1/status?app=${n}`));
    await same((n) => api(`/v1/logs/${n}`));
    await same((n) => api('/v1/destroy', { json: { names: [n] } }));
    const all = (await (await api('/v1/status')).json()) as ServiceStatusJson;
    expect([all.deployments, all.services ?? []]).toEqual([[], []]);
    expect(await used('beta')).toMatchObject({ vms: 0, apps: 0 });
    // beta cannot borrow acme's scope with the admin's header
    const hdr = await api('/v1/status?app=tweb', { headers: { 'x-unikctl-tenant': 'acme' } });
    expect([hdr.status, ((await hdr.json()) as ApiError).code]).toEqual([403, 'E_FORBIDDEN']);
    expect((await httpGet(`http://127.0.0.1:${port}/`, 20_000)).trim()).toMatch(/^version=v1 replica=\S+$/);

    // destroy gives every reserved VM back
    const d = await cli(['destroy', 'tweb', '--wait', '--json']);
    expect(d.code, `${d.stdout}\n${d.stderr}`).toBe(0);
    for (let i = 0; i < 100 && (await used('acme')).vms !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await used('acme')).toMatchObject({ vms: 0, apps: 0, vcpus: 0, memoryMiB: 0 });
    expect(pidsOfUser('unikctl-t-acme', 'qemu-system').length).toBe(before);
    expect(await portFree(port)).toBe(true);
  }, 2 * T);
});
