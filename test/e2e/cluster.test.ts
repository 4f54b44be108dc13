import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homeLayout } from '../../src/paths.js';
import { ADMIN_TOKEN, JOIN_TOKEN, TestServer } from './cp-helpers.js';
import { freePort, httpGet, qemuUnder, removeNodeDirs, ROOT, TestHome, type DeploymentJson } from './helpers.js';

type ClusterDeployment = DeploymentJson & { node?: string };

/** CP-6 on real VMs: three node agents on 127.0.0.2/3/4, placement, drain, and a killed agent. */
describe('cluster: agents, scheduler, drain, node failure', () => {
  // n5 serves its agent API over HTTPS with a self-signed certificate that the control plane trusts
  const tlsDir = mkdtempSync(join(tmpdir(), 'unikctl-agent-tls-'));
  const tls = { cert: join(tlsDir, 'cert.pem'), key: join(tlsDir, 'key.pem') };
  const server = new TestServer({ runner: 'engine', extra: ['--nodes', 'agents', '--join-token', JOIN_TOKEN, '--node-grace-ms', '4000'], env: { NODE_EXTRA_CA_CERTS: tls.cert } });
  const home = new TestHome();
  const nodes = [
    { name: 'n2', ip: '127.0.0.2', labels: 'zone=a', tls: false },
    { name: 'n3', ip: '127.0.0.3', labels: 'zone=b', tls: false },
    { name: 'n4', ip: '127.0.0.4', labels: 'zone=b', tls: false },
    { name: 'n5', ip: '127.0.0.5', labels: 'zone=c', tls: true }, // started by the TLS test, last
  ].map((n) => ({ ...n, data: mkdtempSync(join(tmpdir(), `unikctl-agent-${n.name}-`)), proc: null as ChildProcess | null, port: 0 }));
  const ports = new Map<string, number>();

  const startAgent = async (n: (typeof nodes)[number]): Promise<void> => {
    const port = await freePort();
    n.port = port;
    // the join token is used on the first start only; a restarted agent uses the credential kept in its data dir
    n.proc = spawn(process.execPath, [join(ROOT, 'bin', 'unikctld.js'), 'agent', '--control-plane', server.url, '--name', n.name, '--join-token', JOIN_TOKEN,
      '--listen', `${n.ip}:${port}`, '--labels', n.labels, '--data', n.data, '--heartbeat-ms', '1000', '--cpus', '8', '--memory', '8192', '--log-level', 'warn',
      ...(n.tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : [])],
    { env: { ...process.env, UNIKCTL_KERNEL_DIR: homeLayout(process.env).kernels, UNIKCTL_ACCEL: process.env.UNIKCTL_ACCEL ?? 'tcg', UNIKCTL_STOP_GRACE_MS: '3000' }, stdio: 'ignore' });
  };
  const cluster = async (): Promise<{ deployments: ClusterDeployment[]; nodes: Array<{ name: string; status: string; cordoned: boolean }> }> =>
    (await home.status()) as unknown as { deployments: ClusterDeployment[]; nodes: Array<{ name: string; status: string; cordoned: boolean }> };
  const until = async <T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 240_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await cluster())}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const addressOf = (d: ClusterDeployment): string => {
    const m = /^([\d.]+):(\d+)->8080/.exec(d.ports[0] ?? '');
    if (!m) throw new Error(`no published port on ${d.name}: ${JSON.stringify(d)}`);
    return `http://${m[1]}:${m[2]}`;
  };

  beforeAll(async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', tls.key, '-out', tls.cert, '-days', '1', '-subj', '/CN=127.0.0.5', '-addext', 'subjectAltName=IP:127.0.0.5'], { stdio: 'ignore' });
    await server.start();
    const build = await home.cli(['build', join(ROOT, 'examples', 'go-http')]); // a local package, uploaded by deploy
    expect(build.code, build.stderr).toBe(0);
    Object.assign(home.env, server.cliEnv());
    for (const n of nodes.filter((x) => !x.tls)) await startAgent(n);
    await until('3 ready nodes', async () => (await cluster()).nodes?.filter((n) => n.status === 'ready').length === 3, 30_000);
  });

  afterAll(async () => {
    const s = await cluster().catch(() => null);
    const names = s?.deployments?.map((d) => d.name) ?? [];
    if (names.length) await home.cli(['destroy', ...names, '--wait', '--timeout', '1']).catch(() => undefined);
    for (const n of nodes) n.proc?.kill('SIGKILL');
    await server.stop();
    await removeNodeDirs(nodes.map((n) => n.data));
    server.cleanup();
    await home.cleanup();
    rmSync(tlsDir, { recursive: true, force: true });
  });

  it('places 6 VMs by policy (spread) and labels; each answers through the node that runs it', async () => {
    const order = ['w6', 'w1', 'w2', 'w3', 'w4', 'w5'];
    for (const name of order) {
      ports.set(name, await freePort());
      const r = await home.cli(['deploy', 'local/go-http', '--name', name, '-p', `${ports.get(name)}:8080`, ...(name === 'w6' ? ['--label', 'zone=a'] : [])]);
      expect(r.code, r.stderr).toBe(0);
    }
    const s = await until('6 running VMs', async () => {
      const c = await cluster();
      return c.deployments.filter((d) => d.state === 'running').length === 6 ? c : null;
    });
    const byNode: Record<string, string[]> = {};
    for (const d of s.deployments) (byNode[d.node ?? '?'] ??= []).push(d.name);
    expect(s.deployments.find((d) => d.name === 'w6')?.node).toBe('n2'); // the only zone=a node
    expect(Object.values(byNode).map((v) => v.length).sort()).toEqual([2, 2, 2]); // spread
    for (const d of s.deployments) {
      const nodeIp = nodes.find((n) => n.name === d.node)?.ip;
      expect(addressOf(d)).toBe(`http://${nodeIp}:${ports.get(d.name)}`);
      expect(await httpGet(`${addressOf(d)}/${d.name}`)).toContain(`host ${d.name}`);
    }
  });

  it('node identity: a name cannot be taken over, and a node credential or the join token opens no agent', async () => {
    const n2 = nodes[0];
    if (!n2) throw new Error('no n2');
    const post = (url: string, token: string, json: unknown): Promise<Response> =>
      fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(json) });
    const impostor = await post(`${server.url}/v1/nodes/join`, JOIN_TOKEN, { name: 'n2', address: 'http://127.0.0.9:1' });
    expect([impostor.status, ((await impostor.json()) as { code: string }).code]).toEqual([409, 'E_NODE_NAME_TAKEN']);
    const n3 = JSON.parse(readFileSync(join(nodes[1]?.data ?? '', 'node-identity.json'), 'utf8')) as { credential: string };
    const asN2 = await post(`${server.url}/v1/nodes/register`, n3.credential, { name: 'n2', address: 'http://127.0.0.9:1' });
    expect([asN2.status, ((await asN2.json()) as { code: string }).code]).toEqual([403, 'E_NODE_IDENTITY']);
    const agentUrl = `http://${n2.ip}:${n2.port}/v1/agent/deploy`;
    const body = { name: 'evil', source: { artifact: 'art_0000000000000000', kind: 'project' }, ports: [], env: [], debug: false, labels: [], idempotencyKey: 'evil' };
    for (const token of [n3.credential, JOIN_TOKEN, ADMIN_TOKEN]) expect((await post(agentUrl, token, body)).status).toBe(401);
    // n2 kept its name and address
    expect((await cluster()).nodes.find((n) => n.name === 'n2')?.status).toBe('ready');
  });

  it('drain moves every workload of a node elsewhere; they answer there and the drained node runs nothing', async () => {
    const before = (await cluster()).deployments.filter((d) => d.node === 'n3').map((d) => d.name);
    expect(before).toHaveLength(2);
    const r = await server.api('/v1/nodes/n3/drain', { method: 'POST' });
    expect(r.status).toBe(202);
    expect(((await r.json()) as { moved: string[] }).moved.sort()).toEqual([...before].sort());
    const s = await until('n3 drained', async () => {
      const c = await cluster();
      const moved = c.deployments.filter((d) => before.includes(d.name));
      return moved.every((d) => d.node !== 'n3' && d.state === 'running') ? c : null;
    });
    for (const d of s.deployments.filter((x) => before.includes(x.name))) expect(await httpGet(`${addressOf(d)}/after-drain`)).toContain(`host ${d.name}`);
    await until('no VM left on n3', async () => qemuUnder(nodes[1]?.data ?? '').length === 0, 60_000);
    expect(s.nodes.find((n) => n.name === 'n3')?.cordoned).toBe(true);
  });

  it('kill -9 of an agent: its node goes down after the grace period and its workloads are rescheduled', async () => {
    const victims = (await cluster()).deployments.filter((d) => d.node === 'n4').map((d) => d.name);
    expect(victims.length).toBeGreaterThan(0);
    const n4 = nodes[2];
    n4?.proc?.kill('SIGKILL');
    const t0 = Date.now();
    await until('n4 down', async () => (await cluster()).nodes.find((n) => n.name === 'n4')?.status === 'down', 30_000);
    const downAfter = Date.now() - t0;
    const s = await until('n4 workloads rescheduled', async () => {
      const c = await cluster();
      return c.deployments.filter((d) => victims.includes(d.name)).every((d) => d.node === 'n2' && d.state === 'running') ? c : null;
    });
    console.log(`n4 marked down after ${downAfter} ms; its ${victims.length} workloads rescheduled ${Date.now() - t0} ms after the kill`);
    for (const d of s.deployments.filter((x) => victims.includes(x.name))) expect(await httpGet(`${addressOf(d)}/after-failure`)).toContain(`host ${d.name}`);
  });

  it('the killed agent comes back: its stale copies (rescheduled, or destroyed meanwhile) are destroyed, the live ones keep running', async () => {
    const n4 = nodes[2];
    if (!n4) throw new Error('no n4');
    // the VMs of a killed agent outlive it (detached supervisors): the copies that now also run on n2
    const stale = qemuUnder(n4.data);
    expect(stale.length).toBeGreaterThan(1);
    // one of the rescheduled apps is destroyed while n4 is still away: its copy on n4 must go too
    const gone = (await cluster()).deployments.find((d) => d.node === 'n2' && stale.some((l) => l.includes(`unikctl-${d.name},`)));
    if (!gone) throw new Error('no rescheduled workload on n2');
    expect((await home.cli(['destroy', gone.name, '--wait'])).code).toBe(0);
    await startAgent(n4);
    await until('n4 ready again', async () => (await cluster()).nodes.find((n) => n.name === 'n4')?.status === 'ready', 30_000);
    const t0 = Date.now();
    await until('stale copies on n4 destroyed', async () => qemuUnder(n4.data).length === 0, 60_000);
    console.log(`n4 back: ${stale.length} stale copies (one of an app destroyed meanwhile) destroyed ${Date.now() - t0} ms after it was ready again`);
    const onN2 = (await cluster()).deployments.filter((d) => d.node === 'n2');
    expect(onN2.length).toBeGreaterThan(0);
    for (const d of onN2) {
      expect(d.state).toBe('running');
      expect(await httpGet(`${addressOf(d)}/after-return`)).toContain(`host ${d.name}`);
    }
  });

  it('an agent served over HTTPS: registration, forwarded deploy, status, logs and destroy work through TLS', async () => {
    const n5 = nodes[3];
    if (!n5) throw new Error('no n5');
    await startAgent(n5);
    await until('n5 ready', async () => (await cluster()).nodes.find((n) => n.name === 'n5')?.status === 'ready', 30_000);
    const port = await freePort();
    ports.set('tls1', port);
    const r = await home.cli(['deploy', 'local/go-http', '--name', 'tls1', '-p', `${port}:8080`, '--label', 'zone=c']);
    expect(r.code, r.stderr).toBe(0);
    const d = await until('tls1 running on n5', async () => (await cluster()).deployments.find((x) => x.name === 'tls1' && x.state === 'running'));
    expect(d.node).toBe('n5');
    expect(await httpGet(`${addressOf(d)}/over-tls`)).toContain('host tls1');
    const logs = await until('tls1 logs through the agent', async () => {
      const l = await home.cli(['logs', 'tls1']);
      return l.stdout.includes('/over-tls') ? l : null;
    }, 30_000);
    expect(logs.code).toBe(0);
    expect((await home.cli(['destroy', 'tls1', '--wait'])).code).toBe(0);
    await until('tls1 gone from n5', async () => qemuUnder(n5.data).length === 0, 30_000);
  });
});
