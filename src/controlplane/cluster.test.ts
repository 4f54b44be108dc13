import Database from 'better-sqlite3';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { ArtifactRecord } from '../store/artifacts.js';
import { homeLayout } from '../paths.js';

// Fake node agents: a deploy starts a copy that reports `running` after a short delay.
const agents = vi.hoisted(() => ({ running: new Map<string, Set<string>>(), deploys: [] as Array<{ address: string; name: string; idempotencyKey?: string; env?: string[] }>, keys: [] as string[] }));
vi.mock('./agent-client.js', () => ({
  AgentClient: class {
    constructor(readonly address: string, readonly key: string) {}
    async deploy(req: { name: string; idempotencyKey?: string; env?: string[] }) {
      agents.deploys.push({ address: this.address, name: req.name, idempotencyKey: req.idempotencyKey, env: req.env });
      agents.keys.push(this.key);
      setTimeout(() => {
        const set = agents.running.get(this.address) ?? new Set<string>();
        set.add(req.name);
        agents.running.set(this.address, set);
      }, 50);
      return { name: req.name, operationId: 'op', state: 'pending', resolvedFrom: 'fake' };
    }
    async status() {
      return { deployments: [...(agents.running.get(this.address) ?? [])].map((name) => ({ name, state: 'running' })), operations: [] };
    }
    async destroy(names: string[]) {
      for (const n of names) agents.running.get(this.address)?.delete(n);
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

describe('ClusterClient.deploy of a service', () => {
  it('places all its replicas on one node; its next version goes to that node; a replayed attempt sends the same request', async () => {
    const store = new NodeRegistry(new Database(':memory:'), 60_000);
    for (const name of ['s1', 's2']) await store.join({ name, address: `http://${name}`, capacity: { cpus: 4, memoryMiB: 4096 } }, { credentialSha256: '0'.repeat(64), agentKey: `key-${name}` });
    const { cluster, rec } = await uploadedProject(store);
    const base = { target: rec.dir, name: 'svc', ports: ['8080:8080'], labels: [], debug: false, cwd: '/', cpus: 1, memory: '256M' };
    await cluster.deploy({ ...base, idempotencyKey: 'op_1', env: ['VERSION=v1'], service: { replicas: '3' } });
    const first = await store.getPlacement('svc');
    expect(first).toMatchObject({ cpus: 3, memoryMiB: 768, request: { service: { replicas: '3' }, idempotencyKey: 'op_1' } });
    agents.deploys.length = 0;
    await cluster.deploy({ ...base, idempotencyKey: 'op_1', env: ['VERSION=v1'], service: { replicas: '3' } }); // the same operation again
    await cluster.deploy({ ...base, idempotencyKey: 'op_2', env: ['VERSION=v2'], service: {} }); // the next version, count kept
    const next = await store.getPlacement('svc');
    expect(next).toMatchObject({ node: first?.node, cpus: 3, memoryMiB: 768, placedAt: first?.placedAt, request: { env: ['VERSION=v2'], idempotencyKey: 'op_2' } });
    expect(agents.deploys.map((d) => [d.address, d.idempotencyKey, d.env?.[0]])).toEqual([
      [`http://${first?.node}`, 'op_1', 'VERSION=v1'], [`http://${first?.node}`, 'op_2', 'VERSION=v2'],
    ]);
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
  return { cluster: new ClusterClient({ store, artifacts, policy: 'spread', staleAfterMs: 60_000, layout: homeLayout({ UNIKCTL_HOME: dir }) }), rec };
}
