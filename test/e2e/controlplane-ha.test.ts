import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOIN_TOKEN, TestServer, writeFakePackage } from './cp-helpers.js';
import { EtcdCluster } from './etcd-helpers.js';

/**
 * CP-7 without VMs: a 3-member etcd cluster (Debian's etcd-server, on loopback) and two unikctld replicas
 * (`--store etcd://…`, `--runner fake`). Both serve the API and write jobs into etcd; only the elected leader runs
 * the queue. The leader is killed with SIGKILL in the middle of 200 operations: the other replica must take over
 * and every operation must complete exactly once. etcd is installed by scripts/ci-tools.sh (CI runs it); this test
 * fails, rather than skips, when it is missing.
 */

const PREFIX = '/unikctl/'; // the store's default key prefix
interface StoredJob { id: string; state: string; attempts: number; leaseOwner: string | null; }

describe('control plane HA: etcd (3 members) and 2 replicas with leader election', () => {
  const etcd = new EtcdCluster();
  const replicas: Record<'r1' | 'r2', TestServer | null> = { r1: null, r2: null };
  let client: Etcd3 | null = null;
  const killOrphans = (): void => {
    etcd.killAllSync();
    for (const s of Object.values(replicas)) if (s?.proc && s.proc.exitCode === null) s.proc.kill('SIGKILL');
  };

  beforeAll(async () => {
    process.once('exit', killOrphans); // no orphans even if the runner dies
    await etcd.start(3);
    client = new Etcd3({ hosts: etcd.clientUrls });
  }, 60_000);

  afterAll(async () => {
    for (const s of Object.values(replicas)) {
      if (!s) continue;
      await s.stop();
      s.cleanup();
    }
    client?.close();
    await etcd.stop();
    process.removeListener('exit', killOrphans);
  });

  const kv = (): Etcd3 => {
    if (!client) throw new Error('no etcd client');
    return client;
  };
  const count = (state: string): Promise<number> => kv().getAll().prefix(`${PREFIX}state/${state}/`).count();
  const leader = async (): Promise<string | null> => (await kv().namespace(PREFIX).election('unikctld').leader()) ?? null;

  it('kill -9 the leader mid-queue: the other replica takes over and each of 200 operations completes exactly once', async () => {
    for (const id of ['r1', 'r2'] as const) {
      const s = new TestServer({ runner: 'fake', workers: 4, extra: ['--store', etcd.spec, '--replica-id', id, '--fake-work-ms', '40', '--join-token', JOIN_TOKEN] });
      writeFakePackage(s.data, 'pkg'); // each replica validates a deploy against its own local node
      replicas[id] = s;
      await s.start();
    }
    const r1 = replicas.r1 as TestServer;
    const r2 = replicas.r2 as TestServer;
    const first = await leader();
    expect(['r1', 'r2']).toContain(first);

    // a node joins through r1; its identity lives in etcd, so r2 knows it (and refuses an impostor for its name)
    const joined = await r1.api('/v1/nodes/join', { token: JOIN_TOKEN, json: { name: 'ha-node', address: 'http://127.0.0.1:1', capacity: { cpus: 1 } } });
    expect(joined.status, await joined.clone().text()).toBe(201);
    const { credential } = (await joined.json()) as { credential: string };
    const heartbeat = (s: TestServer): Promise<Response> => s.api('/v1/nodes/heartbeat', { token: credential, json: { name: 'ha-node', capacity: { cpus: 1 } } });
    expect((await heartbeat(r2)).status).toBe(200);
    expect((await r2.api('/v1/nodes/join', { token: JOIN_TOKEN, json: { name: 'ha-node', address: 'http://127.0.0.9:1' } })).status).toBe(409);

    // 200 deploys, 20 at a time, spread over both replicas (followers write into etcd themselves)
    const ids: string[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? r1 : r2).api('/v1/deployments', { json: { source: { package: 'pkg' }, name: `job-${batch * 20 + i}` } })));
      for (const r of rs) {
        expect(r.status, await r.clone().text()).toBe(202);
        ids.push(((await r.json()) as { operationId: string }).operationId);
      }
    }
    expect(new Set(ids).size).toBe(200);

    // let some finish, then kill the leader in the middle of the queue
    const deadline = Date.now() + 30_000;
    while ((await count('succeeded')) < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    const leaderId = (await leader()) as 'r1' | 'r2';
    expect(leaderId).toBe(first);
    const runningAtKill = (await kv().getAll().prefix(`${PREFIX}state/running/`).json()) as Record<string, StoredJob>;
    for (const j of Object.values(runningAtKill)) expect(j.leaseOwner, 'only the leader runs jobs').toBe(leaderId);
    const dead = replicas[leaderId] as TestServer;
    const survivorId = leaderId === 'r1' ? 'r2' : 'r1';
    const survivor = replicas[survivorId] as TestServer;
    const killedAt = Date.now();
    await dead.kill9();
    const atKill = await count('succeeded');
    expect(atKill).toBeGreaterThan(0);
    expect(atKill).toBeLessThan(200);

    // the other replica takes over: etcd names it the leader once the dead one's lease expires, and jobs finish again
    let tookOverAt = 0;
    let resumedAt = 0;
    const deadline2 = Date.now() + 60_000;
    for (;;) {
      if (!tookOverAt && (await leader()) === survivorId) tookOverAt = Date.now();
      if (tookOverAt && !resumedAt && (await count('succeeded')) > atKill) resumedAt = Date.now();
      if ((await count('succeeded')) >= 200 || Date.now() > deadline2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const doneAt = Date.now();
    expect(tookOverAt, `${survivorId} did not become the leader:\n${survivor.log}`).toBeGreaterThan(0);
    // the survivor still serves the API
    expect((await survivor.api('/healthz', { token: null })).status).toBe(200);
    // the node's credential works on the survivor until an administrator removes the node there
    expect((await heartbeat(survivor)).status).toBe(200);
    expect((await survivor.api('/v1/nodes/ha-node', { method: 'DELETE' })).status).toBe(200);
    expect((await heartbeat(survivor)).status).toBe(401);

    const jobs = Object.values((await kv().getAll().prefix(`${PREFIX}jobs/`).json()) as Record<string, StoredJob>);
    const effects = (await kv().getAll().prefix(`${PREFIX}effects/`).json()) as Record<string, { runs: number }>;
    const runs = new Map(Object.entries(effects).map(([k, v]) => [k.slice(`${PREFIX}effects/`.length), v.runs]));
    const states: Record<string, number> = {};
    for (const j of jobs) states[j.state] = (states[j.state] ?? 0) + 1;
    expect(states).toEqual({ succeeded: 200 });
    expect(await Promise.all(['queued', 'running', 'succeeded', 'failed'].map(count))).toEqual([0, 0, 200, 0]);
    expect(jobs.map((j) => j.id).sort()).toEqual([...ids].sort()); // none lost, none duplicated
    expect([...runs.keys()].sort()).toEqual([...ids].sort()); // every job's effect happened
    // a job's effect ran twice only when it was in flight on the dead leader (at most one per worker), and then
    // its claim count shows the replay
    const replayed = jobs.filter((j) => (runs.get(j.id) ?? 0) > 1);
    expect(replayed.length).toBeLessThanOrEqual(4);
    for (const j of replayed) expect(runs.get(j.id)).toBeLessThanOrEqual(j.attempts);

    const line = `HA takeover: ${leaderId} killed with ${atKill}/200 done and ${Object.keys(runningAtKill).length} in flight; ` +
      `${survivorId} leader after ${tookOverAt - killedAt} ms, first job finished after ${resumedAt - killedAt} ms, ` +
      `all 200 done ${doneAt - killedAt} ms after the kill; ${replayed.length} in-flight job(s) replayed`;
    console.log(line);
  }, 180_000);
});
