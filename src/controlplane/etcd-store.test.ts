import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUserError } from '../errors.js';
import { EtcdElection, EtcdJournal, EtcdNodeStore, etcdClient, parseEtcdSpec } from './etcd-store.js';
import { Journal } from './journal.js';
import type { QueuedOperation, OperationJournal, NewOperation } from './operation-journal.js';
import { NodeRegistry } from './nodes.js';
import { emptyUsage, type QuotaCheck } from './tenants.js';
import type { NodeIdentity, NodeStore, PlacementStore } from './node-store.js';
import { which } from '../util/exec.js';

/**
 * The etcd store against a real single-member etcd (Debian's etcd-server; scripts/ci-tools.sh installs it), and
 * the JobStore/NodeStore contract run against both implementations, SQLite and etcd, so they keep the same
 * semantics. Fails, rather than skips, when etcd is not installed.
 */

const freePort = (): Promise<number> => new Promise((res, rej) => {
  const srv = createServer();
  srv.once('error', rej);
  srv.listen(0, '127.0.0.1', () => {
    const a = srv.address();
    srv.close(() => res(typeof a === 'object' && a ? a.port : 0));
  });
});

let etcd: ChildProcess | null = null;
let etcdLog = '';
let dir = '';
let endpoint = '';
const clients: Etcd3[] = [];
const client = (): Etcd3 => {
  const c = etcdClient([`http://${endpoint}`]);
  clients.push(c);
  return c;
};
const prefix = (): string => `/t-${randomBytes(4).toString('hex')}/`;

beforeAll(async () => {
  const bin = which('etcd', { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/bin:/usr/local/bin` });
  if (!bin) throw new Error('etcd is not installed: run scripts/ci-tools.sh (it installs Debian\'s etcd-server; CI runs it before the tests)');
  dir = mkdtempSync(join(tmpdir(), 'unikctl-etcd-unit-'));
  const [cp, pp] = [await freePort(), await freePort()];
  endpoint = `127.0.0.1:${cp}`;
  etcd = spawn(bin, ['--name', 'u1', '--data-dir', join(dir, 'u1'), '--listen-client-urls', `http://${endpoint}`, '--advertise-client-urls', `http://${endpoint}`,
    '--listen-peer-urls', `http://127.0.0.1:${pp}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${pp}`, '--initial-cluster', `u1=http://127.0.0.1:${pp}`,
    '--initial-cluster-state', 'new', '--logger', 'zap', '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'pipe'] });
  etcd.stdout?.on('data', (c: Buffer) => { etcdLog += c.toString(); });
  etcd.stderr?.on('data', (c: Buffer) => { etcdLog += c.toString(); });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (etcd.exitCode !== null) throw new Error(`etcd exited (${etcd.exitCode}):\n${etcdLog}`);
    const ok = await fetch(`http://${endpoint}/health`).then(async (r) => r.ok && ((await r.json()) as { health?: string }).health === 'true', () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`etcd did not come up:\n${etcdLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.close();
  const p = etcd;
  if (p && p.exitCode === null) {
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let n = 0;
const newJob = (o: Partial<NewOperation> = {}): NewOperation => {
  n++;
  return {
    id: o.id ?? `op_${n}_${randomBytes(3).toString('hex')}`, kind: o.kind ?? 'deploy', target: o.target ?? `app-${n}`, idempotencyKey: o.idempotencyKey ?? null,
    requestHash: o.requestHash ?? 'h1', request: o.request ?? { target: 'pkg', n }, maxAttempts: o.maxAttempts ?? 5, traceId: o.traceId ?? `t${n}`, createdAt: o.createdAt ?? Date.now(),
  };
};
const code = async (p: Promise<unknown>): Promise<string> => p.then(() => 'resolved', (e: unknown) => (isUserError(e) ? e.code : String(e)));
/** the parts of an operation that do not depend on the implementation's clock */
const shape = (j: QueuedOperation | null): unknown => j && { id: j.id, kind: j.kind, target: j.target, state: j.state, idempotencyKey: j.idempotencyKey, requestHash: j.requestHash,
  request: j.request, attempts: j.attempts, maxAttempts: j.maxAttempts, leaseOwner: j.leaseOwner, result: j.result, error: j.error, traceId: j.traceId, ended: j.endedAt !== null };

const identity = (k: string): NodeIdentity => ({ credentialSha256: k.repeat(64).slice(0, 64), agentKey: `key-${k}` });

type Impl = { name: string; operations: () => OperationJournal; nodes: (graceMs?: number) => NodeStore & PlacementStore };
const impls: Impl[] = [
  { name: 'sqlite', operations: () => new Journal(join(mkdtempSync(join(tmpdir(), 'unikctl-journal-')), 'journal.db')),
    nodes: (g) => new NodeRegistry(new Journal(join(mkdtempSync(join(tmpdir(), 'unikctl-journal-')), 'journal.db')).database, g) },
  { name: 'etcd', operations: () => new EtcdJournal(client(), prefix()), nodes: (g) => new EtcdNodeStore(client(), prefix(), g) },
];

describe.each(impls)('JobStore contract: $name', (impl) => {
  it('enqueue: an operation is queued; the same idempotency key returns it again, a different request under it is E_IDEMPOTENCY_CONFLICT', async () => {
    const s = impl.operations();
    const a = await s.enqueue(newJob({ idempotencyKey: 'k1', request: { x: [1, 2] } }));
    expect(a.created).toBe(true);
    expect(shape(a.op)).toMatchObject({ state: 'queued', attempts: 0, leaseOwner: null, result: null, error: null, ended: false, request: { x: [1, 2] } });
    expect(a.op.nextRunAt).toBe(a.op.createdAt);
    const again = await s.enqueue(newJob({ idempotencyKey: 'k1' }));
    expect([again.created, again.op.id]).toEqual([false, a.op.id]);
    expect(await code(s.enqueue(newJob({ idempotencyKey: 'k1', requestHash: 'other' })))).toBe('E_IDEMPOTENCY_CONFLICT');
    expect(await code(s.enqueue(newJob({ idempotencyKey: 'k1', kind: 'destroy' })))).toBe('E_IDEMPOTENCY_CONFLICT');
    expect(shape(await s.byKey('k1'))).toEqual(shape(a.op));
    expect(shape(await s.get(a.op.id))).toEqual(shape(a.op));
    expect(await s.get('op_nope')).toBeNull();
    expect(await s.byKey('nope')).toBeNull();
    await s.close();
  });

  it('20 concurrent enqueues with one key make one operation', async () => {
    const s = impl.operations();
    const rs = await Promise.all(Array.from({ length: 20 }, () => s.enqueue(newJob({ idempotencyKey: 'same' }))));
    expect(new Set(rs.map((r) => r.op.id)).size).toBe(1);
    expect(rs.filter((r) => r.created)).toHaveLength(1);
    expect((await s.counts()).queued).toBe(1);
    await s.close();
  });

  it('claim takes the oldest due operation; retry/finish only by the owner holding it; recover requeues', async () => {
    const s = impl.operations();
    const t0 = Date.now();
    const [a, b, c] = [newJob({ createdAt: t0 }), newJob({ createdAt: t0 }), newJob({ createdAt: t0 + 60_000 })];
    for (const j of [a, b, c]) await s.enqueue(j);
    expect(await s.nextDueAt()).toBe(t0);
    const ca = await s.claim('w1', t0);
    expect(shape(ca)).toMatchObject({ id: a.id, state: 'running', leaseOwner: 'w1', attempts: 1 });
    expect(await s.retry(a.id, 'w2', t0 + 30_000, { code: 'E_TRANSIENT', message: 'x' })).toBe(false);
    expect(await s.retry(a.id, 'w1', t0 + 30_000, { code: 'E_TRANSIENT', message: 'x' })).toBe(true);
    expect(shape(await s.get(a.id))).toMatchObject({ state: 'queued', leaseOwner: null, attempts: 1, error: { code: 'E_TRANSIENT', message: 'x' } });
    expect(await s.retry(a.id, 'w1', t0, { code: 'E_TRANSIENT', message: 'x' })).toBe(false); // not running any more
    // a is not due before t0+30s: b is next; c only after a (seq order once both are due)
    expect((await s.claim('w1', t0))?.id).toBe(b.id);
    expect(await s.claim('w1', t0)).toBeNull();
    expect((await s.claim('w2', t0 + 61_000))?.id).toBe(a.id);
    expect((await s.get(a.id))?.attempts).toBe(2);
    expect(await s.finish(b.id, 'w2', { result: { ok: 1 } })).toBe(false);
    expect(await s.finish(b.id, 'w1', { result: { ok: 1 } })).toBe(true);
    expect(await s.finish(b.id, 'w1', { result: { ok: 2 } })).toBe(false);
    expect(shape(await s.get(b.id))).toMatchObject({ state: 'succeeded', result: { ok: 1 }, leaseOwner: null, ended: true });
    expect(await s.finish(a.id, 'w2', { error: { code: 'E_DEPLOY_FAILED', message: 'no' } })).toBe(true);
    expect(shape(await s.get(a.id))).toMatchObject({ state: 'failed', error: { code: 'E_DEPLOY_FAILED', message: 'no' }, result: null });
    const cc = await s.claim('w3', t0 + 61_000);
    expect(cc?.id).toBe(c.id);
    expect(await s.recover(['w1', 'w2'])).toBe(0);
    expect(await s.recover(['w3'])).toBe(1);
    expect(shape(await s.get(c.id))).toMatchObject({ state: 'queued', leaseOwner: null, attempts: 1 });
    await s.claim('w4', t0 + 61_000);
    expect(await s.recover()).toBe(1);
    expect(await s.counts()).toEqual({ queued: 1, running: 0, succeeded: 1, failed: 1 });
    expect(await s.finish(c.id, 'w4', {})).toBe(false); // recovered: w4 lost it
    expect(await s.nextDueAt()).toBe(t0 + 60_000);
    await s.close();
  });

  it('a lane claims only its kinds, in order; release requeues a running operation at once without counting its attempt', async () => {
    const s = impl.operations();
    const t0 = Date.now();
    const d1 = newJob({ createdAt: t0 });
    const x1 = newJob({ kind: 'destroy', createdAt: t0 });
    const d2 = newJob({ createdAt: t0 });
    const x2 = newJob({ kind: 'destroy', createdAt: t0 });
    for (const j of [d1, x1, d2, x2]) await s.enqueue(j);
    expect((await s.claim('short', t0, ['destroy']))?.id).toBe(x1.id);
    expect((await s.claim('short', t0, ['destroy']))?.id).toBe(x2.id);
    expect(await s.claim('short', t0, ['destroy'])).toBeNull(); // only deploys left: not this lane's
    const claimed = await s.claim('w1', t0);
    expect(claimed?.id).toBe(d1.id);
    expect(await s.release(d1.id, 'w2')).toBe(false); // only the lease holder releases
    expect(await s.release(d1.id, 'w1')).toBe(true);
    expect(shape(await s.get(d1.id))).toMatchObject({ state: 'queued', leaseOwner: null, attempts: 0 });
    expect(await s.release(d1.id, 'w1')).toBe(false); // not running any more
    expect(await s.finish(d1.id, 'w1', { result: {} })).toBe(false); // the released holder's late result is dropped
    expect((await s.claim('w2', Date.now()))?.id).toBe(d1.id); // due at once
    await s.close();
  });

  it('quota: a deploy reserves in its enqueue; over a limit or on a reserved name nothing is written; a destroy or a released deploy gives it back', async () => {
    const s = impl.operations();
    const quota = (name: string, limits: QuotaCheck['quota'] = { vms: 2, vcpus: 3 }, vcpus = 1): QuotaCheck => ({ tenant: 'acme', name, quota: limits, reservation: { vcpus, memoryMiB: 256 } });
    const deploy = (name: string, o: Partial<NewOperation> = {}): NewOperation => newJob({ target: name, ...o });
    expect(await s.usage('acme')).toEqual(emptyUsage());
    await s.enqueue(deploy('acme--a'), quota('acme--a'));
    await s.enqueue(deploy('acme--b'), quota('acme--b', undefined, 2));
    expect(await s.usage('acme')).toEqual({ vms: 2, apps: 2, vcpus: 3, memoryMiB: 512 });
    expect(await s.usage('beta')).toEqual(emptyUsage());
    expect([await s.reserved('acme--a'), await s.reserved('acme--c')]).toEqual([true, false]);
    const before = await s.counts();
    expect(await code(s.enqueue(deploy('acme--c'), quota('acme--c')))).toBe('E_QUOTA_EXCEEDED');
    expect(await code(s.enqueue(deploy('acme--c', { idempotencyKey: 'acme/k' }), quota('acme--c')))).toBe('E_QUOTA_EXCEEDED');
    expect(await code(s.enqueue(deploy('acme--a'), quota('acme--a', {})))).toBe('E_NAME_TAKEN');
    expect([await s.counts(), await s.byKey('acme/k'), await s.reserved('acme--c')]).toEqual([before, null, false]);
    // a failed deploy keeps its reservation (its VM still holds the name) unless the runner releases it
    for (const [target, outcome] of [['acme--a', { error: { code: 'E_DEPLOY_FAILED', message: 'x' } }], ['acme--b', { error: { code: 'E_DEPLOY_FAILED', message: 'x' }, release: true }]] as const) {
      const op = (await s.recent(1, target))[0];
      const claimed = await s.claim('w1', Date.now() + 1000);
      expect(claimed?.id).toBe(op?.id);
      expect(await s.finish(claimed?.id ?? '', 'w1', outcome)).toBe(true);
    }
    expect(await s.usage('acme')).toEqual({ vms: 1, apps: 1, vcpus: 1, memoryMiB: 256 });
    // a destroy gives it back when it succeeds, not when it fails
    await s.enqueue(newJob({ kind: 'destroy', target: 'acme--a' }));
    const x = await s.claim('w1', Date.now() + 1000);
    expect(await s.finish(x?.id ?? '', 'w1', { error: { code: 'E_TRANSIENT', message: 'x' } })).toBe(true);
    expect((await s.usage('acme')).vms).toBe(1);
    await s.enqueue(newJob({ kind: 'destroy', target: 'acme--a' }));
    const y = await s.claim('w1', Date.now() + 1000);
    expect(await s.finish(y?.id ?? '', 'w1', {})).toBe(true);
    expect([await s.usage('acme'), await s.reserved('acme--a')]).toEqual([{ vms: 0, apps: 0, vcpus: 0, memoryMiB: 0 }, false]);
    await s.close();
  });

  it("quota: a service reserves its VMs (replicas + surge); its next deploy replaces the reservation, checked without it; a destroy gives it all back", async () => {
    const s = impl.operations();
    const limits = { vms: 6, vcpus: 6, memoryMiB: 1536 };
    // 2 replicas + 1 surge of 1 vCPU / 256 MiB
    const svc = (vms: number, replace = true): QuotaCheck => ({ tenant: 'acme', name: 'acme--web', quota: limits, reservation: { vms, vcpus: vms, memoryMiB: 256 * vms }, ...(replace ? { replace } : {}) });
    await s.enqueue(newJob({ target: 'acme--plain' }), { tenant: 'acme', name: 'acme--plain', quota: limits, reservation: { vcpus: 1, memoryMiB: 256 } });
    await s.enqueue(newJob({ target: 'acme--web' }), svc(3, false));
    expect(await s.usage('acme')).toEqual({ vms: 4, apps: 2, vcpus: 4, memoryMiB: 1024 });
    // a scale to 4 (+1 surge = 5 VMs): 1 + 5 = 6 ≤ 6 — the old 3 are not added to it
    await s.enqueue(newJob({ target: 'acme--web' }), svc(5));
    expect(await s.usage('acme')).toEqual({ vms: 6, apps: 2, vcpus: 6, memoryMiB: 1536 });
    // a scale to 5 (+1 = 6 VMs): 1 + 6 > 6, refused naming the first resource over, with the usage without the service's own reservation
    const e = await s.enqueue(newJob({ target: 'acme--web' }), svc(6)).then(() => null, (x: unknown) => x as { code: string; details: unknown });
    expect(e?.code).toBe('E_QUOTA_EXCEEDED');
    expect(e?.details).toEqual({ tenant: 'acme', resource: 'vms', requested: 6, used: 1, limit: 6 });
    expect(await s.usage('acme')).toEqual({ vms: 6, apps: 2, vcpus: 6, memoryMiB: 1536 }); // the refused one changed nothing
    // without replace (a new deploy of a reserved name), the name is still taken
    expect(await code(s.enqueue(newJob({ target: 'acme--web' }), svc(2, false)))).toBe('E_NAME_TAKEN');
    // a scale down frees the difference at once
    await s.enqueue(newJob({ target: 'acme--web' }), svc(2));
    expect(await s.usage('acme')).toEqual({ vms: 3, apps: 2, vcpus: 3, memoryMiB: 768 });
    // replace of a name not reserved yet (a service the journal never reserved): a plain insert
    await s.enqueue(newJob({ target: 'acme--new' }), { ...svc(2), name: 'acme--new' });
    expect((await s.usage('acme')).vms).toBe(5);
    // claim and finish every queued deploy, then destroy the service: all its VMs come back
    for (let op = await s.claim('w1', Date.now() + 1000); op; op = await s.claim('w1', Date.now() + 1000)) await s.finish(op.id, 'w1', { result: {} });
    await s.enqueue(newJob({ kind: 'destroy', target: 'acme--web' }));
    const d = await s.claim('w1', Date.now() + 1000);
    expect(await s.finish(d?.id ?? '', 'w1', {})).toBe(true);
    expect(await s.usage('acme')).toEqual({ vms: 3, apps: 2, vcpus: 3, memoryMiB: 768 });
    expect(await s.reserved('acme--web')).toBe(false);
    await s.close();
  });

  it('quota: 20 concurrent deploys of one tenant against vms: 5 reserve exactly 5', async () => {
    const s = impl.operations();
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => code(s.enqueue(newJob({ target: `acme--r${i}` }), { tenant: 'acme', name: `acme--r${i}`, quota: { vms: 5 }, reservation: { vcpus: 1, memoryMiB: 64 } }))));
    expect(rs.filter((r) => r === 'resolved')).toHaveLength(5);
    expect(rs.filter((r) => r === 'E_QUOTA_EXCEEDED')).toHaveLength(15);
    expect([(await s.counts()).queued, (await s.usage('acme')).vms]).toEqual([5, 5]);
    await s.close();
  });

  it('recent (all or one target, newest first), pendingDeploys (in order), counts, recordEffect', async () => {
    const s = impl.operations();
    const t0 = Date.now() - 1000;
    const operations = [newJob({ target: 'x' }), newJob({ target: 'y' }), newJob({ target: 'x', kind: 'destroy' }), newJob({ target: 'x' })].map((j) => ({ ...j, createdAt: t0 }));
    for (const j of operations) await s.enqueue(j);
    expect((await s.recent(3)).map((j) => j.id)).toEqual([operations[3]?.id, operations[2]?.id, operations[1]?.id]);
    expect((await s.recent(10, 'x')).map((j) => j.id)).toEqual([operations[3]?.id, operations[2]?.id, operations[0]?.id]);
    expect(await s.recent(10, 'nope')).toEqual([]);
    const first = await s.claim('w');
    await s.finish(first?.id ?? '', 'w', { result: null });
    await s.claim('w');
    expect((await s.pendingDeploys()).map((j) => [j.id, j.state])).toEqual([[operations[1]?.id, 'running'], [operations[3]?.id, 'queued']]);
    expect(await s.counts()).toEqual({ queued: 2, running: 1, succeeded: 1, failed: 0 });
    await s.recordEffect('op_a');
    await s.recordEffect('op_a');
    await s.recordEffect('op_b');
    await s.close();
  });
});

describe.each(impls)('NodeStore + PlacementStore contract: $name', (impl) => {
  it('join, register, heartbeat, cordon (kept across re-registration), list by name, down after the grace period; placements', async () => {
    const s = impl.nodes(200);
    expect(await code(s.heartbeat({ name: 'n1' }))).toBe('E_UNKNOWN_NODE');
    expect(await code(s.setCordoned('n1', true))).toBe('E_UNKNOWN_NODE');
    expect(await code(s.register({ name: 'n1' }))).toBe('E_UNKNOWN_NODE'); // only a joined node registers
    const r = await s.join({ name: 'n2', address: 'http://10.0.0.2:7070', labels: { zone: 'a' }, capacity: { cpus: 4 } }, identity('2'));
    expect(r).toMatchObject({ name: 'n2', address: 'http://10.0.0.2:7070', labels: { zone: 'a' }, capacity: { cpus: 4 }, cordoned: false, status: 'ready' });
    await s.join({ name: 'n1' }, identity('1'));
    expect((await s.setCordoned('n2', true)).cordoned).toBe(true);
    expect((await s.register({ name: 'n2', capacity: { cpus: 8 } }))).toMatchObject({ cordoned: true, capacity: { cpus: 8 }, labels: {}, address: '' });
    expect((await s.heartbeat({ name: 'n2' })).capacity).toEqual({ cpus: 8 });
    expect((await s.heartbeat({ name: 'n2', capacity: { cpus: 2 } })).capacity).toEqual({ cpus: 2 });
    expect((await s.list()).map((x) => x.name)).toEqual(['n1', 'n2']);
    expect(await s.get('n3')).toBeNull();
    await new Promise((res) => setTimeout(res, 300));
    expect((await s.get('n1'))?.status).toBe('down');
    expect((await s.heartbeat({ name: 'n1' })).status).toBe('ready');

    const p = { deployment: 'web', node: 'n1', cpus: 0.5, memoryMiB: 128, request: { target: 'pkg', env: ['A=1'] }, placedAt: 1 };
    await s.setPlacement(p);
    await s.setPlacement({ ...p, deployment: 'api', node: 'n2' });
    expect(await s.getPlacement('web')).toEqual(p);
    await s.setPlacement({ ...p, node: 'n2' });
    expect((await s.getPlacement('web'))?.node).toBe('n2');
    expect((await s.listPlacements()).map((x) => x.deployment)).toEqual(['api', 'web']);
    await s.deletePlacement('web');
    expect(await s.getPlacement('web')).toBeNull();
    expect(await s.listPlacements()).toHaveLength(1);
    // a spread service keeps its shard map and the rollout that set it; the records above (without) read as one node
    const spread = { ...p, deployment: 'svc', shards: [{ node: 'n1', replicas: 2 }, { node: 'n2', replicas: 1 }], rollout: { key: 'op_1', previous: null, from: [], request: { env: ['V=1'] } } };
    await s.setPlacement(spread);
    expect(await s.getPlacement('svc')).toEqual(spread);
    expect((await s.getPlacement('api'))?.shards).toBeUndefined();
  });

  it('identities: a joined name cannot be joined again (even concurrently), survives a reopen, and goes with remove', async () => {
    const s = impl.nodes();
    await s.join({ name: 'a', address: 'http://a' }, identity('a'));
    expect(await s.identity('a')).toEqual(identity('a'));
    expect(await s.identity('b')).toBeNull();
    const e = await s.join({ name: 'a', address: 'http://evil' }, identity('e')).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'E_NODE_NAME_TAKEN' });
    expect((await s.get('a'))?.address).toBe('http://a');
    expect(await s.identity('a')).toEqual(identity('a'));
    // two joins racing for one name: exactly one wins
    const race = await Promise.all(['1', '2', '3'].map((k) => code(s.join({ name: 'b' }, identity(k)))));
    expect(race.filter((c) => c === 'resolved')).toHaveLength(1);
    expect(race.filter((c) => c === 'E_NODE_NAME_TAKEN')).toHaveLength(2);
    // grants: per node, revoked per node or for every node
    await s.grantArtifact({ node: 'a', deployment: 'web', artifact: 'art_1' });
    await s.grantArtifact({ node: 'b', deployment: 'web', artifact: 'art_1' });
    await s.grantArtifact({ node: 'b', deployment: 'api', artifact: 'art_2' });
    expect([await s.artifactGranted('a', 'art_1'), await s.artifactGranted('a', 'art_2'), await s.artifactGranted('b', 'art_2')]).toEqual([true, false, true]);
    await s.revokeArtifacts('web', 'a');
    expect([await s.artifactGranted('a', 'art_1'), await s.artifactGranted('b', 'art_1')]).toEqual([false, true]);
    await s.revokeArtifacts('web');
    expect(await s.artifactGranted('b', 'art_1')).toBe(false);
    expect(await s.remove('b')).toBe(true);
    expect([await s.identity('b'), await s.get('b'), await s.artifactGranted('b', 'art_2')]).toEqual([null, null, false]);
    expect(await s.remove('b')).toBe(false);
    // the name is free again: a new identity can join under it
    expect((await s.join({ name: 'b' }, identity('4'))).name).toBe('b');
    expect(await s.identity('b')).toEqual(identity('4'));
  });
});

describe('identities survive a restart', () => {
  it('sqlite: a reopened journal has the identity; a pre-identity journal gains the columns', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'unikctl-journal-')), 'journal.db');
    const j1 = new Journal(file);
    // the nodes table as it was before identities
    j1.database.exec(`CREATE TABLE nodes (name TEXT PRIMARY KEY, address TEXT NOT NULL, labels TEXT NOT NULL, capacity TEXT NOT NULL, cordoned INTEGER NOT NULL DEFAULT 0, last_heartbeat INTEGER NOT NULL);
      INSERT INTO nodes VALUES ('old', 'http://old', '{}', '{}', 0, 0)`);
    const s1 = new NodeRegistry(j1.database);
    expect(await s1.identity('old')).toBeNull();
    await s1.join({ name: 'old' }, identity('o')); // a record without an identity is claimed by its first join
    await j1.close();
    const j2 = new Journal(file);
    expect(await new NodeRegistry(j2.database).identity('old')).toEqual(identity('o'));
    await j2.close();
  });

  it('sqlite: a reopened journal has its tenants\' usage; one written before the per-tenant sums gets them rebuilt', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'unikctl-journal-')), 'journal.db');
    const j1 = new Journal(file);
    for (const name of ['acme--a', 'acme--b']) await j1.enqueue(newJob({ target: name }), { tenant: 'acme', name, quota: {}, reservation: { vcpus: 2, memoryMiB: 128 } });
    // as the first tenants version left it: reservations without the sums
    j1.database.exec('DROP TRIGGER reservations_add; DROP TRIGGER reservations_remove; DROP TABLE tenant_usage');
    await j1.close();
    const j2 = new Journal(file);
    expect(await j2.usage('acme')).toEqual({ vms: 2, apps: 2, vcpus: 4, memoryMiB: 256 });
    await j2.close();
  });

  it('etcd: another store on another client (a second replica) sees the identity', async () => {
    const p = prefix();
    await new EtcdNodeStore(client(), p).join({ name: 'x' }, identity('x'));
    expect(await new EtcdNodeStore(client(), p).identity('x')).toEqual(identity('x'));
  });
});

describe('etcd store specifics', () => {
  it('parses etcd:// specs', () => {
    expect(parseEtcdSpec('etcd://h1:2379,10.0.0.2:2380')).toEqual({ hosts: ['http://h1:2379', 'http://10.0.0.2:2380'], prefix: '/unikctl/' });
    expect(parseEtcdSpec('etcd://h1:2379/team/a/')).toEqual({ hosts: ['http://h1:2379'], prefix: '/team/a/' });
    for (const bad of ['etcd://', 'etcd://h1', 'etcd://h1:2379,,x', 'etcd:h1:2379']) expect(() => parseEtcdSpec(bad), bad).toThrow(/etcd:\/\/host:port/);
  });

  it('two stores on two clients claim 60 operations with 4 workers each: every operation exactly once', async () => {
    const p = prefix();
    const [s1, s2] = [new EtcdJournal(client(), p), new EtcdJournal(client(), p)];
    const ids = new Set<string>();
    for (let i = 0; i < 60; i++) ids.add((await s1.enqueue(newJob())).op.id);
    const claimed: string[] = [];
    const worker = async (s: EtcdJournal, owner: string): Promise<void> => {
      for (;;) {
        const j = await s.claim(owner);
        if (!j) return;
        claimed.push(j.id);
        expect(await s.finish(j.id, owner, { result: null })).toBe(true);
      }
    };
    await Promise.all([0, 1, 2, 3].flatMap((i) => [worker(s1, `a${i}`), worker(s2, `b${i}`)]));
    expect(claimed).toHaveLength(60);
    expect(new Set(claimed)).toEqual(ids);
    expect(await s2.counts()).toEqual({ queued: 0, running: 0, succeeded: 60, failed: 0 });
  }, 60_000);

  it('reads past one page: claim skips 70 operations that are not due, pendingDeploys/nextDueAt/counts see all 521', async () => {
    const s = new EtcdJournal(client(), prefix());
    const later = Date.now() + 3_600_000;
    for (let i = 0; i < 70; i++) await s.enqueue(newJob({ createdAt: later }));
    const due = (await s.enqueue(newJob())).op;
    for (let b = 0; b < 9; b++) await Promise.all(Array.from({ length: 50 }, () => s.enqueue(newJob({ createdAt: later }))));
    expect((await s.claim('w'))?.id).toBe(due.id);
    const pending = await s.pendingDeploys();
    expect(pending).toHaveLength(521);
    expect(pending[70]?.id).toBe(due.id);
    expect(await s.nextDueAt()).toBe(later);
    expect(await s.recover()).toBe(1);
    expect(await s.counts()).toEqual({ queued: 521, running: 0, succeeded: 0, failed: 0 });
  }, 60_000);

  it('recordEffect counts runs per operation', async () => {
    const p = prefix();
    const c = client();
    const s = new EtcdJournal(c, p);
    await Promise.all([s.recordEffect('op_a'), s.recordEffect('op_a'), s.recordEffect('op_b')]);
    const effects = await c.getAll().prefix(`${p}effects/`).json() as Record<string, { runs: number }>;
    expect(Object.fromEntries(Object.entries(effects).map(([k, v]) => [k.slice(p.length), v.runs]))).toEqual({ 'effects/op_a': 2, 'effects/op_b': 1 });
  });

  it('leader election: one leader, fenced claims (a deposed leader cannot claim), takeover when the leader key goes', async () => {
    const p = prefix();
    const [c1, c2] = [client(), client()];
    const e1 = new EtcdElection(c1, p, 'r1', 2);
    const e2 = new EtcdElection(c2, p, 'r2', 2);
    const changes: string[] = [];
    const became = (e: EtcdElection, id: string): Promise<void> => new Promise((res) => {
      void e.start((l) => {
        changes.push(`${id}:${l}`);
        if (l) res();
      });
    });
    const l1 = became(e1, 'r1');
    await l1;
    const l2 = became(e2, 'r2');
    await new Promise((r) => setTimeout(r, 300));
    expect([e1.isLeader(), e2.isLeader(), await e1.leader(), await e2.leader()]).toEqual([true, false, 'r1', 'r1']);

    const [s1, s2] = [new EtcdJournal(c1, p, () => e1.fence()), new EtcdJournal(c2, p, () => e2.fence())];
    await s2.enqueue(newJob());
    await s2.enqueue(newJob());
    expect(await s2.claim('r2')).toBeNull(); // not the leader
    expect((await s1.claim('r1'))?.leaseOwner).toBe('r1');

    // a deposed leader that has not noticed yet cannot claim: delete its election key behind its back
    const fence = e1.fence();
    expect(fence).not.toBeNull();
    await c1.delete().key(fence?.key ?? '').exec();
    expect(await s1.claim('r1')).toBeNull();
    await l2;
    expect(await e2.leader()).toBe('r2');
    expect((await s2.claim('r2'))?.leaseOwner).toBe('r2');
    await e1.stop();

    await e2.stop();
  }, 30_000);

  it('a leader killed with SIGKILL loses its leadership when its lease expires: the other replica takes over', async () => {
    const p = prefix();
    // the dead leader is another process: etcd3's Election with the same name and key layout as EtcdElection
    const script = `import('etcd3').then(({ Etcd3 }) => new Etcd3({ hosts: ['http://${endpoint}'] }).namespace('${p}').election('unikctld', 2)
      .campaign('dead').on('elected', () => console.log('elected')))`;
    const child = spawn(process.execPath, ['-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((res, rej) => {
        child.stdout?.on('data', (c: Buffer) => { if (c.toString().includes('elected')) res(); });
        child.once('exit', (code) => rej(new Error(`the campaigning child exited (${code})`)));
      });
      const e = new EtcdElection(client(), p, 'alive', 2);
      let elected = 0;
      const became = new Promise<void>((res) => { void e.start((l) => { if (l) { elected = Date.now(); res(); } }); });
      await new Promise((r) => setTimeout(r, 500));
      expect([e.isLeader(), await e.leader()]).toEqual([false, 'dead']);
      const gone = new Promise((r) => child.once('exit', r));
      const killed = Date.now();
      child.kill('SIGKILL');
      await gone;
      await became;
      expect(await e.leader()).toBe('alive');
      expect(elected - killed).toBeLessThan(2000 + 2500); // the TTL, plus etcd's expiry check and the watch
      expect(e.fence()).not.toBeNull();
      await e.stop();
      expect(await e.leader()).toBeNull(); // resigned: no candidate left
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 30_000);
});

describe('Journal (SQLite): a journal from before services reserved VMs', () => {
  it('opens with one VM per old reservation and keeps apps and VMs apart from then on', async () => {
    const d = mkdtempSync(join(tmpdir(), 'unikctl-journal-upgrade-'));
    try {
      const file = join(d, 'journal.db');
      const old = new Journal(file);
      // the old shape: no vms column, a tenant_usage without apps, triggers adding 1 VM per row
      old.database.exec(`DROP TRIGGER reservations_add; DROP TRIGGER reservations_remove; DROP TABLE tenant_usage; DROP TABLE reservations;
        CREATE TABLE reservations (name TEXT PRIMARY KEY, tenant TEXT NOT NULL, vcpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, created_at INTEGER NOT NULL);
        CREATE TABLE tenant_usage (tenant TEXT PRIMARY KEY, vms INTEGER NOT NULL, vcpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL);
        INSERT INTO reservations VALUES ('acme--a', 'acme', 2, 512, 1), ('acme--b', 'acme', 1, 256, 1);`);
      await old.close();
      const j = new Journal(file);
      expect(await j.usage('acme')).toEqual({ vms: 2, apps: 2, vcpus: 3, memoryMiB: 768 });
      await j.enqueue(newJob({ target: 'acme--web' }), { tenant: 'acme', name: 'acme--web', quota: {}, reservation: { vms: 3, vcpus: 3, memoryMiB: 768 } });
      expect(await j.usage('acme')).toEqual({ vms: 5, apps: 3, vcpus: 6, memoryMiB: 1536 });
      await j.close();
      // reopened: the sums rebuilt from the rows are the same
      const again = new Journal(file);
      expect(await again.usage('acme')).toEqual({ vms: 5, apps: 3, vcpus: 6, memoryMiB: 1536 });
      await again.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
