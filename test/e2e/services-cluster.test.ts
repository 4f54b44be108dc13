/**
 * A service spread over cluster nodes (docs/services.md, Cluster mode): `unikctld --nodes agents` with two real node
 * agents (127.0.0.2 and 127.0.0.3), a 2-replica service of examples/go-service → one replica per node, each node's
 * front answering on that node's address; a redeploy to v2 rolls one shard after the other while a client loop
 * against both fronts sees no failed request. Kept short (TCG boots are slow): two replicas, one rollout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homeLayout } from '../../src/paths.js';
import { which } from '../../src/util/exec.js';
import { JOIN_TOKEN, TestServer } from './cp-helpers.js';
import { exampleCopy, freePort, httpGet, qemuUnder, removeNodeDirs, ROOT, shareBuildCache } from './helpers.js';
import type { ServiceDeployJson, ServiceStatusJson } from './service-helpers.js';

const PKG = 'local/go-service:latest';
const CHECK = 'http:8080/healthz,interval=1s,timeout=1s,grace=2s,failures=2';
const BUILD_TIMEOUT = 900_000;
/** one shard after the other: two boots per version under TCG */
const T = 600_000;

const front = which('haproxy') ?? (existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : null);
if (!front) console.log('services-cluster e2e skipped: haproxy (the services\' front) is not installed (apt-get install haproxy)');

const { home, app } = exampleCopy('go-service', /\/\.unikctl(\/|$)/);
shareBuildCache(app, 'go-http');

describe.skipIf(!front)('a service spread over cluster nodes: one shard per node, rolled out shard by shard', () => {
  const server = new TestServer({ runner: 'engine', extra: ['--nodes', 'agents', '--join-token', JOIN_TOKEN, '--node-grace-ms', '10000'] });
  const nodes = [
    { name: 'a2', ip: '127.0.0.2' },
    { name: 'a3', ip: '127.0.0.3' },
  ].map((n) => ({ ...n, data: mkdtempSync(join(tmpdir(), `unikctl-agent-${n.name}-`)), proc: null as ChildProcess | null }));
  let port = 0;

  const nodeList = async (): Promise<Array<{ name: string; status: string }>> => ((await home.status()) as unknown as { nodes?: Array<{ name: string; status: string }> }).nodes ?? [];

  beforeAll(async () => {
    const r = await home.cli(['build', app, '--json']);
    expect(r.code, r.stderr).toBe(0);
    port = await freePort();
    await server.start();
    Object.assign(home.env, server.cliEnv());
    for (const n of nodes) {
      const agentPort = await freePort();
      n.proc = spawn(process.execPath, [join(ROOT, 'bin', 'unikctld.js'), 'agent', '--control-plane', server.url, '--name', n.name, '--join-token', JOIN_TOKEN,
        '--listen', `${n.ip}:${agentPort}`, '--data', n.data, '--heartbeat-ms', '1000', '--cpus', '4', '--memory', '4096', '--log-level', 'warn'],
      { env: { ...process.env, UNIKCTL_KERNEL_DIR: homeLayout(process.env).kernels, UNIKCTL_ACCEL: process.env.UNIKCTL_ACCEL ?? 'tcg', UNIKCTL_STOP_GRACE_MS: '3000' }, stdio: 'ignore' });
    }
    const deadline = Date.now() + 30_000;
    while ((await nodeList()).filter((n) => n.status === 'ready').length < 2) {
      if (Date.now() > deadline) throw new Error(`agents not ready: ${JSON.stringify(await nodeList())}`);
      await new Promise((res) => setTimeout(res, 500));
    }
  }, BUILD_TIMEOUT);

  afterAll(async () => {
    await home.cli(['destroy', 'sweb', '--wait', '--timeout', '60']).catch(() => undefined);
    for (const n of nodes) n.proc?.kill('SIGKILL');
    await server.stop();
    await removeNodeDirs(nodes.map((n) => n.data));
    server.cleanup();
  });

  const deploy = async (env: string): Promise<{ code: number; out: ServiceDeployJson; text: string }> => {
    const args = ['deploy', PKG, '--name', 'sweb', '-p', `${port}:8080`, '--replicas', '2', '--check', CHECK, '--min-healthy', '1s', '-e', env, '--wait', '--timeout', String(T / 1000 - 60), '--json'];
    const t0 = Date.now();
    const r = await home.cli(args);
    const text = `unikctl ${args.join(' ')} → exit ${r.code} in ${((Date.now() - t0) / 1000).toFixed(1)} s\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nserver: ${server.log.slice(-3000)}`;
    console.log(text.split('\n')[0]);
    return { code: r.code, out: JSON.parse(r.stdout || 'null') as ServiceDeployJson, text };
  };

  it('2 replicas on 2 agents: one per node, each node fronts its own; v2 rolls both shards with no failed request', async () => {
    const v1 = await deploy('VERSION=v1');
    expect(v1.code, v1.text).toBe(0);
    let s = await home.json<ServiceStatusJson>(['status', 'sweb']);
    let svc = s.services.find((x) => x.name === 'sweb');
    expect(svc?.desired, JSON.stringify(svc)).toBe(2);
    expect(svc?.replicas.map((r) => r.node).sort(), JSON.stringify(svc)).toEqual(['a2', 'a3']);
    expect(svc?.shards?.map((x) => `${x.node}:${x.desired}`).sort()).toEqual(['a2:1', 'a3:1']);
    // each node's front on its own address answers with its own replica
    const fronts = nodes.map((n) => `http://${n.ip}:${port}/`);
    for (const f of fronts) expect((await httpGet(f, 30_000)).trim()).toMatch(/^version=v1 replica=sweb\.1$/);

    // a client loop against both fronts for the whole rollout
    let stop = false;
    const tally = { ok: 0, failed: 0, v2: 0, errors: [] as string[] };
    const loop = (async () => {
      for (let i = 0; !stop; i++) {
        const f = fronts[i % 2] as string;
        try {
          const r = await fetch(f, { signal: AbortSignal.timeout(10_000) });
          const body = (await r.text()).trim();
          if (r.ok && /^version=v[12] replica=sweb\.\d+$/.test(body)) {
            tally.ok++;
            if (body.startsWith('version=v2')) tally.v2++;
          } else {
            tally.failed++;
            tally.errors.push(`${f}: ${r.status} ${body.slice(0, 80)}`);
          }
        } catch (e) {
          tally.failed++;
          tally.errors.push(`${f}: ${(e as Error).message}`);
        }
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    const v2 = await deploy('VERSION=v2');
    stop = true;
    await loop;
    console.log(`rollout to v2 across 2 nodes: ${tally.ok} requests ok (${tally.v2} from v2), ${tally.failed} failed ${tally.errors.slice(0, 5).join('; ')}`);
    expect(v2.code, v2.text).toBe(0);
    expect(tally.failed, tally.errors.join('\n')).toBe(0);
    expect(tally.ok).toBeGreaterThan(20);
    for (const f of fronts) expect((await httpGet(f, 30_000)).trim()).toMatch(/^version=v2 replica=sweb\.\d+$/);
    s = await home.json<ServiceStatusJson>(['status', 'sweb']);
    svc = s.services.find((x) => x.name === 'sweb');
    expect(svc?.shards?.map((x) => `${x.node}:${x.current}:${x.rollout}`).sort(), JSON.stringify(svc?.shards)).toEqual(['a2:2:succeeded', 'a3:2:succeeded']);
    expect(s.operations.filter((o) => o.kind === 'deploy').map((o) => o.state)).toEqual(['succeeded', 'succeeded']);

    const d = await home.cli(['destroy', 'sweb', '--wait', '--json']);
    expect(d.code, `${d.stdout}\n${d.stderr}`).toBe(0);
    for (const n of nodes) {
      const deadline = Date.now() + 60_000;
      while (qemuUnder(n.data).length > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 500));
      expect(qemuUnder(n.data)).toEqual([]);
    }
  }, 3 * T);
});
