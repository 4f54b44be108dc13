import Database from 'better-sqlite3';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { ArtifactRecord } from '../store/artifacts.js';
import { homeLayout } from '../paths.js';

// Fake node agents: a deploy starts a copy that reports `running` after a short delay. A service's deploy is a node
// operation (idempotent per key) that ends after a short delay: failed when its env is in `failEnv` for that node.
type FakeOp = { id: string; state: 'running' | 'succeeded' | 'failed'; error: { code: string; message: string } | null };
type FakeService = { env: string; replicas: number; version: number };
const agents = vi.hoisted(() => ({
  running: new Map<string, Set<string>>(), deploys: [] as Array<{ address: string; name: string; idempotencyKey?: string; env?: string[]; replicas?: string }>, keys: [] as string[],
  services: new Map<string, Map<string, FakeService>>(), ops: new Map<string, Map<string, FakeOp>>(), events: [] as string[], failEnv: new Set<string>(), destroyed: [] as string[], opMs: 30, opSeq: 0,
}));
vi.mock('./agent-client.js', () => ({
  AgentClient: class {
    constructor(readonly address: string, readonly key: string) {}
    async deploy(req: { name: string; idempotencyKey?: string; env?: string[]; service?: { replicas?: string } }) {
      agents.deploys.push({ address: this.address, name: req.name, idempotencyKey: req.idempotencyKey, env: req.env, ...(req.service ? { replicas: req.service.replicas } : {}) });
      agents.keys.push(this.key);
      if (req.service) {
        const ops = agents.ops.get(this.address) ?? new Map<string, FakeOp>();
        agents.ops.set(this.address, ops);
        const prior = ops.get(req.idempotencyKey ?? '');
        if (prior) return { name: req.name, operationId: prior.id, state: 'pending', resolvedFrom: 'fake', service: true };
        const op: FakeOp = { id: `nop_${++agents.opSeq}`, state: 'running', error: null };
        ops.set(req.idempotencyKey ?? '', op);
        const services = agents.services.get(this.address) ?? new Map<string, FakeService>();
        agents.services.set(this.address, services);
        const env = req.env?.[0] ?? '';
        const prev = services.get(req.name);
        const node = this.address.replace('http://', '');
        agents.events.push(`start ${node} ${env}`);
        services.set(req.name, { env: prev?.env ?? env, replicas: Number(req.service.replicas), version: (prev?.version ?? 0) + (prev?.env === env ? 0 : 1) });
        setTimeout(() => {
          const fail = agents.failEnv.has(`${node}|${env}`);
          op.state = fail ? 'failed' : 'succeeded';
          op.error = fail ? { code: 'E_ROLLOUT_FAILED', message: 'v did not become healthy; reverted' } : null;
          const s = services.get(req.name);
          if (s && !fail) s.env = env;
          agents.events.push(`end ${node} ${env} ${op.state}`);
        }, agents.opMs);
        return { name: req.name, operationId: op.id, state: 'pending', resolvedFrom: 'fake', service: true };
      }
      setTimeout(() => {
        const set = agents.running.get(this.address) ?? new Set<string>();
        set.add(req.name);
        agents.running.set(this.address, set);
      }, 50);
      return { name: req.name, operationId: 'op', state: 'pending', resolvedFrom: 'fake' };
    }
    async status(name?: string) {
      const svcs = [...(agents.services.get(this.address) ?? new Map<string, FakeService>()).entries()].filter(([n]) => name === undefined || n === name);
      return {
        deployments: [...(agents.running.get(this.address) ?? [])].filter((n) => name === undefined || n === name).map((n) => ({ name: n, state: 'running' })),
        operations: [...(agents.ops.get(this.address) ?? new Map<string, FakeOp>()).values()],
        services: svcs.map(([n, v]) => ({
          name: n, id: `svc_${n}`, desired: v.replicas, destroying: false, current: v.version, ports: [], rollout: null, versions: [], restarts: 0, crashLoop: null, controller: null,
          traffic: { [String(v.version)]: { connections: 1, requests: 10, bytesIn: 0, bytesOut: 0, errors: 0, latency: { buckets: [1, 0], count: 1, sumMs: 1 } } },
          replicas: Array.from({ length: v.replicas }, (_, i) => ({ name: `${n}.${i + 1}`, version: v.version, state: 'running', health: 'healthy' })),
          env: v.env,
        })),
      };
    }
    async *logs(req: { name: string }) {
      const node = this.address.replace('http://', '');
      const t = node === 'a' ? [1, 3] : [2, 4];
      for (const x of t) yield { t: x, s: 'app', m: `line ${x} of ${req.name}`, src: `${req.name}.1` };
    }
    async destroy(names: string[]) {
      for (const n of names) {
        agents.running.get(this.address)?.delete(n);
        if (agents.services.get(this.address)?.delete(n)) agents.destroyed.push(`${this.address.replace('http://', '')} ${n}`);
      }
      return [];
    }
  },
}));

const { ClusterClient } = await import('./cluster.js');
const { NodeRegistry } = await import('./nodes.js');
const { ArtifactStore } = await import('../store/artifacts.js');
const { packBundle } = await import('../engine/bundle.js');

describe('ClusterClient.move', () => {
  it('concurrent moves off a failed node never fill the same free slot twice', async () => {
    const store = new NodeRegistry(new Database(':memory:'), 60_000);
    // b and c can each take exactly one 256 MiB workload
    for (const [name, memoryMiB] of [['a', 4096], ['b', 256], ['c', 256]] as const) {
      await store.join({ name, address: `http://${name}`, capacity: { cpus: 4, memoryMiB } }, { credentialSha256: '0'.repeat(64), agentKey: `key-${name}` });
    }
    for (const w of ['w1', 'w2']) {
      await store.setPlacement({ deployment: w, node: 'a', cpus: 1, memoryMiB: 256, request: { name: w, labels: [], source: { artifact: `art_${w}`, kind: 'project' } }, placedAt: Date.now() - 1000 });
      await store.grantArtifact({ node: 'a', deployment: w, artifact: `art_${w}` });
    }
    const dir = mkdtempSync(join(tmpdir(), 'unikctl-cluster-'));
    const cluster = new ClusterClient({
      store, artifacts: new ArtifactStore({ dir, maxUploadBytes: 1024, maxExtractedBytes: 1024, maxEntries: 10 }), policy: 'spread',
      staleAfterMs: 60_000, layout: homeLayout({ UNIKCTL_HOME: dir }),
    });
    const moves = await Promise.all(['w1', 'w2'].map((w) => cluster.move(w, 'a', { sourceDown: true, graceMs: 0 })));
    expect(moves.map((m) => m?.to).sort()).toEqual(['b', 'c']);
    expect((await store.listPlacements()).map((p) => `${p.deployment}@${p.node}`).sort()).toEqual(moves.map((m) => `${m?.name}@${m?.to}`).sort());
    // each artifact follows its workload: the target may fetch it, the node it left no longer can
    for (const m of moves) {
      expect(await store.artifactGranted(m?.to ?? '', `art_${m?.name}`)).toBe(true);
      expect(await store.artifactGranted('a', `art_${m?.name}`)).toBe(false);
    }
    // and the agent of each target was called with that node's own key, learnt at join
    expect(agents.keys.sort()).toEqual(['key-b', 'key-c']);
    // a third move finds no room: b and c are full once both copies are placed
    await store.setPlacement({ deployment: 'w3', node: 'a', cpus: 1, memoryMiB: 256, request: { name: 'w3', labels: [], source: { artifact: 'art_w3', kind: 'project' } }, placedAt: Date.now() });
    await expect(cluster.move('w3', 'a', { sourceDown: true, graceMs: 0 })).rejects.toMatchObject({ code: 'E_NO_CAPACITY' });
  });

  it('a deploy lets only the node it is placed on fetch its artifact, and destroy takes that back', async () => {
    const store = new NodeRegistry(new Database(':memory:'), 60_000);
    for (const name of ['x', 'y']) await store.join({ name, address: `http://${name}`, capacity: { cpus: 4, memoryMiB: 4096 } }, { credentialSha256: '0'.repeat(64), agentKey: `key-${name}` });
    const { cluster, rec } = await uploadedProject(store);
    await cluster.deploy({ target: rec.dir, name: 'web', idempotencyKey: 'k1', ports: [], env: ['SECRET=1'], labels: [], debug: false, cwd: '/' });
    const on = (await store.getPlacement('web'))?.node ?? '';
    const other = on === 'x' ? 'y' : 'x';
    expect([await store.artifactGranted(on, rec.id), await store.artifactGranted(other, rec.id)]).toEqual([true, false]);
    await cluster.destroy(['web'], { graceMs: 0 });
    expect(await store.artifactGranted(on, rec.id)).toBe(false);
  });
});

describe('ClusterClient.deploy of a tenant\'s deployment', () => {
  it('places the tenant with the request the agent gets (and a move reuses)', async () => {
    const store = new NodeRegistry(new Database(':memory:'), 60_000);
    await store.join({ name: 'n1', address: 'http://n1', capacity: { cpus: 4, memoryMiB: 4096 } }, { credentialSha256: '0'.repeat(64), agentKey: 'key-n1' });
    const { cluster, rec } = await uploadedProject(store);
    const tenant = { name: 'acme', cpus: 2, memoryMiB: 1024 };
    await cluster.deploy({ target: rec.dir, name: 'api', idempotencyKey: 'k2', ports: [], env: [], labels: [], debug: false, cwd: '/', tenant });
    expect((await store.getPlacement('api'))?.request).toMatchObject({ name: 'api', tenant });
  });
});

describe('ClusterClient.deploy of a package', () => {
  it('sends the package directory admission resolved (not only a reference) to the agent as an artifact', async () => {
    const store = new NodeRegistry(new Database(':memory:'), 60_000);
    await store.join({ name: 'p1', address: 'http://p1', capacity: { cpus: 4, memoryMiB: 4096 } }, { credentialSha256: '0'.repeat(64), agentKey: 'key-p1' });
    const { cluster } = await uploadedProject(store);
    const pkg = mkdtempSync(join(tmpdir(), 'unikctl-cluster-pkg-'));
    writeFileSync(join(pkg, 'manifest.json'), '{}');
    writeFileSync(join(pkg, 'rootfs.erofs'), 'x');
    await cluster.deploy({ target: pkg, name: 'boxed', idempotencyKey: 'k-pkg', ports: [], env: [], labels: [], debug: false, cwd: '/' });
    const placed = await store.getPlacement('boxed');
    const source = (placed?.request as { source?: { artifact: string; kind: string } } | undefined)?.source;
    expect(source?.kind).toBe('package');
    expect(await store.artifactGranted('p1', source?.artifact ?? '')).toBe(true);
    rmSync(pkg, { recursive: true, force: true });
  });
});

describe('ClusterClient.deployService: replicas spread over nodes, rolled out one node at a time', () => {
  const reset = (): void => {
    agents.deploys.length = 0; agents.events.length = 0; agents.destroyed.length = 0; agents.failEnv.clear(); agents.services.clear(); agents.ops.clear();
  };
  const nodes = async (names: string[]): Promise<InstanceType<typeof NodeRegistry>> => {
    const store = new NodeRegistry(new Database(':memory:'), 60_000);
    for (const name of names) await store.join({ name, address: `http://${name}`, capacity: { cpus: 4, memoryMiB: 4096 } }, { credentialSha256: '0'.repeat(64), agentKey: `key-${name}` });
    return store;
  };
  const base = { name: 'svc', ports: ['8080:8080'], labels: [], debug: false, cwd: '/', cpus: 1, memory: '256M' };
  const sent = (): string[] => agents.deploys.map((d) => `${d.address.replace('http://', '')} ${d.idempotencyKey} ${d.env?.[0]} x${d.replicas}`);

  it('3 replicas on 3 nodes: one each, each node asked for its shard under the operation id and its name', async () => {
    reset();
    const store = await nodes(['a', 'b', 'c']);
    const { cluster, rec } = await uploadedProject(store);
    const r = await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_1', env: ['V=1'], service: { replicas: '3' } });
    expect(r.shards).toEqual([{ node: 'a', replicas: 1 }, { node: 'b', replicas: 1 }, { node: 'c', replicas: 1 }]);
    expect(sent()).toEqual(['a op_1:a V=1 x1', 'b op_1:b V=1 x1', 'c op_1:c V=1 x1']);
    expect(await store.getPlacement('svc')).toMatchObject({ node: 'a', cpus: 1, memoryMiB: 256, shards: r.shards, rollout: { key: 'op_1', previous: null, from: [] } });
    // each node may fetch the artifact; status merges the shards: desired is the total, each replica names its node
    for (const n of ['a', 'b', 'c']) expect(await store.artifactGranted(n, rec.id)).toBe(true);
    const v = (await cluster.status('svc')).services?.[0];
    expect([v?.desired, v?.replicas.map((x) => `${x.name}@${x.node}`), v?.shards?.map((x) => `${x.node}:${x.desired}`)]).toEqual([3, ['svc.1@a', 'svc.1@b', 'svc.1@c'], ['a:1', 'b:1', 'c:1']]);
    expect(v?.traffic['1']?.requests).toBe(30);
    // logs: every node's lines merged by time, each naming replica and node; following them, or one replica's by name, is refused
    const lines: string[] = [];
    const signal = new AbortController().signal;
    for await (const e of cluster.logs({ name: 'svc', follow: false, signal })) lines.push(`${e.t} ${e.src}`);
    expect(lines).toEqual(['1 svc.1@a', '2 svc.1@b', '2 svc.1@c', '3 svc.1@a', '4 svc.1@b', '4 svc.1@c']);
    const drain = async (name: string, follow: boolean): Promise<unknown> => {
      for await (const e of cluster.logs({ name, follow, signal })) void e;
      return null;
    };
    await expect(drain('svc', true)).rejects.toMatchObject({ code: 'E_NOT_IMPLEMENTED' });
    await expect(drain('svc.1', false)).rejects.toMatchObject({ code: 'E_NOT_IMPLEMENTED' });
    const all = await cluster.status();
    expect(all.services?.map((x) => [x.name, x.desired])).toEqual([['svc', 3]]);
    // a node not asked yet (or silent): the plan's total stays desired, and the shard says it did not report
    const { mergeShards } = await import('./cluster.js');
    const only = mergeShards(r.shards, [{ node: 'a', view: v as NonNullable<typeof v> }].map((x) => ({ ...x, view: { ...x.view, desired: 1, replicas: x.view.replicas.filter((y) => y.node === 'a') } })));
    expect([only.desired, only.replicas.length, only.shards?.map((x) => `${x.node}:${x.desired}:${x.reported}`)]).toEqual([3, 1, ['a:1:true', 'b:1:false', 'c:1:false']]);
  });

  it('4 replicas on 2 nodes: 2 + 2 (spread counts each placed replica before the next)', async () => {
    reset();
    const store = await nodes(['a', 'b']);
    const { cluster, rec } = await uploadedProject(store);
    const r = await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_1', env: ['V=1'], service: { replicas: '4' } });
    expect(r.shards).toEqual([{ node: 'a', replicas: 2 }, { node: 'b', replicas: 2 }]);
    expect(sent()).toEqual(['a op_1:a V=1 x2', 'b op_1:b V=1 x2']);
    // a replica that fits nowhere is refused before any node is asked
    agents.deploys.length = 0;
    await expect(cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_2', env: ['V=1'], memory: '1G', service: { replicas: '9' } })).rejects.toMatchObject({ code: 'E_NO_CAPACITY' });
    expect(agents.deploys).toEqual([]);
  });

  it('the next version goes to one shard at a time, each followed to its end; a replayed attempt sends the same keys', async () => {
    reset();
    const store = await nodes(['a', 'b', 'c']);
    const { cluster, rec } = await uploadedProject(store);
    await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_1', env: ['V=1'], service: { replicas: '3' } });
    agents.deploys.length = 0; agents.events.length = 0;
    const r = await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_2', env: ['V=2'], service: { replicas: '3' } });
    expect(agents.events).toEqual(['start a V=2', 'end a V=2 succeeded', 'start b V=2', 'end b V=2 succeeded', 'start c V=2', 'end c V=2 succeeded']);
    expect(sent()).toEqual(['a op_2:a V=2 x1', 'b op_2:b V=2 x1', 'c op_2:c V=2 x1']);
    expect((await store.getPlacement('svc'))?.rollout).toMatchObject({ key: 'op_2', previous: { env: ['V=1'] }, from: r.shards });
    // the operation replayed (after a crash): every node gets the same request and answers with its first operation
    agents.deploys.length = 0; agents.events.length = 0;
    const again = await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_2', env: ['V=2'], service: { replicas: '3' } });
    expect(sent()).toEqual(['a op_2:a V=2 x1', 'b op_2:b V=2 x1', 'c op_2:c V=2 x1']);
    expect(agents.events).toEqual([]); // no node started anything
    expect(again.nodeOperationId).toBe(r.nodeOperationId);
    expect([...agents.services.values()].map((m) => m.get('svc')?.version)).toEqual([2, 2, 2]);
  });

  it('a shard that fails: the shards already moved get the previous version again, and the operation fails E_ROLLOUT_FAILED', async () => {
    reset();
    const store = await nodes(['a', 'b', 'c']);
    const { cluster, rec } = await uploadedProject(store);
    await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_1', env: ['V=1'], service: { replicas: '3' } });
    agents.deploys.length = 0; agents.events.length = 0;
    agents.failEnv.add('b|V=2');
    const e = await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_2', env: ['V=2'], service: { replicas: '3' } }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'E_ROLLOUT_FAILED' });
    expect(String((e as Error).message)).toMatch(/node b: .*nodes a were sent the previous version again/);
    // c never got v2; a got v1 back (its own key), after b's failure
    expect(sent()).toEqual(['a op_2:a V=2 x1', 'b op_2:b V=2 x1', 'a op_2:a:revert V=1 x1']);
    expect(agents.events).toEqual(['start a V=2', 'end a V=2 succeeded', 'start b V=2', 'end b V=2 failed', 'start a V=1', 'end a V=1 succeeded']);
    expect([...agents.services.values()].map((m) => m.get('svc')?.env)).toEqual(['V=1', 'V=1', 'V=1']);
    // the placement names what runs (a move recreates v1), the plan keeps the version the operation rolled
    expect(await store.getPlacement('svc')).toMatchObject({ request: { env: ['V=1'] }, rollout: { key: 'op_2', request: { env: ['V=2'] } } });
  });

  it('scale 3 → 1 keeps one shard and removes the others; a later scale up spreads again; destroy removes every shard', async () => {
    reset();
    const store = await nodes(['a', 'b', 'c']);
    const { cluster, rec } = await uploadedProject(store);
    await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_1', env: ['V=1'], service: { replicas: '3' } });
    agents.deploys.length = 0;
    const r = await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_2', env: ['V=1'], service: { replicas: '1' } });
    expect(r.shards).toEqual([{ node: 'a', replicas: 1 }]);
    expect(sent()).toEqual(['a op_2:a V=1 x1']);
    expect(agents.destroyed.sort()).toEqual(['b svc', 'c svc']);
    for (const [n, granted] of [['a', true], ['b', false], ['c', false]] as const) expect(await store.artifactGranted(n, rec.id)).toBe(granted);
    expect((await cluster.placementsOn('b')).map((p) => p.deployment)).toEqual([]);
    agents.deploys.length = 0;
    const up = await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_3', env: ['V=1'], service: { replicas: '4' } });
    expect(up.shards).toEqual([{ node: 'a', replicas: 2 }, { node: 'b', replicas: 1 }, { node: 'c', replicas: 1 }]);
    agents.destroyed.length = 0;
    await cluster.destroy(['svc'], { graceMs: 0 });
    expect(agents.destroyed.sort()).toEqual(['a svc', 'b svc', 'c svc']);
    expect(await store.getPlacement('svc')).toBeNull();
  });

  it('a drained node\'s shard moves to the other nodes (the rest stay), with keys of the move', async () => {
    reset();
    const store = await nodes(['a', 'b', 'c']);
    const { cluster, rec } = await uploadedProject(store);
    await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_1', env: ['V=1'], service: { replicas: '4' } });
    expect((await store.getPlacement('svc'))?.shards).toEqual([{ node: 'a', replicas: 2 }, { node: 'b', replicas: 1 }, { node: 'c', replicas: 1 }]);
    expect((await cluster.placementsOn('a')).map((p) => p.deployment)).toEqual(['svc']);
    const placedAt = (await store.getPlacement('svc'))?.placedAt;
    agents.deploys.length = 0; agents.destroyed.length = 0;
    await store.setCordoned('a', true);
    const m = await cluster.move('svc', 'a', { sourceDown: false, graceMs: 0 });
    expect(m).toMatchObject({ name: 'svc', from: 'a', to: 'b,c' });
    expect((await store.getPlacement('svc'))?.shards).toEqual([{ node: 'b', replicas: 2 }, { node: 'c', replicas: 2 }]);
    expect(sent()).toEqual([`b move:svc:a:${placedAt}:b V=1 x2`, `c move:svc:a:${placedAt}:c V=1 x2`]);
    expect(agents.destroyed).toEqual(['a svc']);
    expect(await store.artifactGranted('a', rec.id)).toBe(false);
    expect(await cluster.move('svc', 'a', { sourceDown: false, graceMs: 0 })).toBeNull(); // replayed: already moved
  });

  it('a service placed before spreading (all replicas on one node) is read and spread by its next deploy', async () => {
    reset();
    const store = await nodes(['a', 'b']);
    const { cluster, rec } = await uploadedProject(store);
    const old = { name: 'svc', source: { artifact: rec.id, kind: 'project' }, ports: [], env: ['V=1'], debug: false, labels: [], idempotencyKey: 'op_0', service: { replicas: '2' } };
    await store.setPlacement({ deployment: 'svc', node: 'b', cpus: 2, memoryMiB: 512, request: old, placedAt: 1 });
    expect((await cluster.placementsOn('b')).map((p) => p.deployment)).toEqual(['svc']);
    const r = await cluster.deployService({ ...base, target: rec.dir, idempotencyKey: 'op_1', env: ['V=2'], service: { replicas: '2' } });
    expect(r.shards).toEqual([{ node: 'b', replicas: 2 }]); // the count did not change: its node keeps it
    expect(sent()).toEqual(['b op_1:b V=2 x2']);
    // a plain deployment of the name is not a service to spread
    await store.setPlacement({ deployment: 'plain', node: 'a', cpus: 1, memoryMiB: 128, request: { ...old, name: 'plain', service: undefined }, placedAt: 1 });
    await expect(cluster.deployService({ ...base, name: 'plain', target: rec.dir, idempotencyKey: 'op_2', env: [], service: {} })).rejects.toMatchObject({ code: 'E_NAME_TAKEN' });
  });
});

/** A cluster over `store` and one uploaded Go project (its artifact record). */
async function uploadedProject(store: InstanceType<typeof NodeRegistry>): Promise<{ cluster: InstanceType<typeof ClusterClient>; rec: ArtifactRecord }> {
  const dir = mkdtempSync(join(tmpdir(), 'unikctl-cluster-'));
  writeFileSync(join(dir, 'main.go'), 'package main');
  const artifacts = new ArtifactStore({ dir: join(dir, 'artifacts'), maxUploadBytes: 1 << 20, maxExtractedBytes: 1 << 20, maxEntries: 10 });
  const bundle = await packBundle(dir, { exclude: ['artifacts'] });
  const rec = await artifacts.put(createReadStream(bundle.file));
  bundle.cleanup();
  return { cluster: new ClusterClient({ store, artifacts, policy: 'spread', staleAfterMs: 60_000, layout: homeLayout({ UNIKCTL_HOME: dir }), pollMs: 5 }), rec };
}
