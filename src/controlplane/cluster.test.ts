import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { homeLayout } from '../paths.js';

// Fake node agents: a deploy starts a copy that reports `running` after a short delay.
const agents = vi.hoisted(() => ({ running: new Map<string, Set<string>>(), deploys: [] as Array<{ address: string; name: string }> }));
vi.mock('./agent-client.js', () => ({
  AgentClient: class {
    constructor(readonly address: string) {}
    async deploy(req: { name: string }) {
      agents.deploys.push({ address: this.address, name: req.name });
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
    async destroy() { return []; }
  },
}));

const { ClusterClient } = await import('./cluster.js');
const { NodeRegistry } = await import('./nodes.js');
const { ArtifactStore } = await import('../store/artifacts.js');

describe('ClusterClient.move', () => {
  it('concurrent moves off a failed node never fill the same free slot twice', async () => {
    const store = new NodeRegistry(new Database(':memory:'), 60_000);
    // b and c can each take exactly one 256 MiB workload
    for (const [name, memoryMiB] of [['a', 4096], ['b', 256], ['c', 256]] as const) {
      await store.register({ name, address: `http://${name}`, capacity: { cpus: 4, memoryMiB } });
    }
    for (const w of ['w1', 'w2']) {
      await store.setPlacement({ deployment: w, node: 'a', cpus: 1, memoryMiB: 256, request: { name: w, labels: [] }, placedAt: Date.now() - 1000 });
    }
    const dir = mkdtempSync(join(tmpdir(), 'unikctl-cluster-'));
    const cluster = new ClusterClient({
      store, artifacts: new ArtifactStore({ dir, maxUploadBytes: 1024, maxExtractedBytes: 1024, maxEntries: 10 }), nodeToken: 't', policy: 'spread',
      staleAfterMs: 60_000, layout: homeLayout({ UNIKCTL_HOME: dir }),
    });
    const moves = await Promise.all(['w1', 'w2'].map((w) => cluster.move(w, 'a', { sourceDown: true, graceMs: 0 })));
    expect(moves.map((m) => m?.to).sort()).toEqual(['b', 'c']);
    expect((await store.listPlacements()).map((p) => `${p.deployment}@${p.node}`).sort()).toEqual(moves.map((m) => `${m?.name}@${m?.to}`).sort());
    // a third move finds no room: b and c are full once both copies are placed
    await store.setPlacement({ deployment: 'w3', node: 'a', cpus: 1, memoryMiB: 256, request: { name: 'w3', labels: [] }, placedAt: Date.now() });
    await expect(cluster.move('w3', 'a', { sourceDown: true, graceMs: 0 })).rejects.toMatchObject({ code: 'E_NO_CAPACITY' });
  });
});
