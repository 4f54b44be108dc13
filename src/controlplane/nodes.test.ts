import { describe, expect, it } from 'vitest';
import { orphanedDeployments } from './nodes.js';
import type { Placement } from './node-store.js';

const placed = (deployment: string, node: string, placedAt: number): [string, Placement] =>
  [deployment, { deployment, node, cpus: 1, memoryMiB: 64, request: {}, placedAt }];

describe('orphanedDeployments', () => {
  const now = 1_000_000;
  const placements = new Map([
    placed('here', 'n1', 500_000),
    placed('moved-away', 'n2', 900_000), // rescheduled to n2 at t=900 s
    placed('moving-in', 'n3', 100_000), // placement still on n3: a move to n1 is in progress
  ]);

  it('names copies whose placement moved to another node after they were created', () => {
    const reported = [
      { name: 'here', ageMs: 600_000 },
      { name: 'moved-away', ageMs: 400_000 }, // created at t=600 s, before the move
      { name: 'moving-in', ageMs: 5_000 }, // created at t=995 s, after its placement was last set
      { name: 'unplaced', ageMs: 10_000 },
    ];
    expect(orphanedDeployments('n1', reported, placements, now)).toEqual(['moved-away']);
  });

  it('keeps everything placed on the node, and anything the control plane has no placement for', () => {
    expect(orphanedDeployments('n2', [{ name: 'moved-away', ageMs: 1 }], placements, now)).toEqual([]);
    expect(orphanedDeployments('n1', [{ name: 'unknown', ageMs: 999_999 }], new Map(), now)).toEqual([]);
  });

  it('names unplaced copies whose name was destroyed after they were created, keeps everything else unplaced', () => {
    const ops = new Map([
      ['destroyed', { kind: 'destroy', state: 'succeeded', createdAt: 950_000 }],
      ['destroying', { kind: 'destroy', state: 'running', createdAt: 950_000 }],
      ['redeployed', { kind: 'destroy', state: 'succeeded', createdAt: 900_000 }], // the copy is newer than the destroy
      ['deployed', { kind: 'deploy', state: 'succeeded', createdAt: 950_000 }],
    ]);
    const reported = ['destroyed', 'destroying', 'deployed', 'no-journal'].map((name) => ({ name, ageMs: 200_000 }))
      .concat([{ name: 'redeployed', ageMs: 10_000 }]);
    expect(orphanedDeployments('n1', reported, new Map(), now, ops)).toEqual(['destroyed']);
  });

  it('keeps a copy created after the move (a later move back to this node)', () => {
    expect(orphanedDeployments('n1', [{ name: 'moved-away', ageMs: 50_000 }], placements, now)).toEqual([]);
  });
});

describe('spread services in the node registry', () => {
  it('a shard on the node is not an orphan; a node the service left is', () => {
    const p: Placement = { deployment: 'svc', node: 'n1', cpus: 1, memoryMiB: 64, request: {}, placedAt: 900_000, shards: [{ node: 'n1', replicas: 1 }, { node: 'n2', replicas: 2 }] };
    const placements = new Map([['svc', p]]);
    const reported = [{ name: 'svc', ageMs: 400_000 }];
    expect(orphanedDeployments('n2', reported, placements, 1_000_000)).toEqual([]);
    expect(orphanedDeployments('n3', reported, placements, 1_000_000)).toEqual(['svc']);
  });

  it('reads placements written before the shard column existed (one node), and keeps a shard map', async () => {
    const Database = (await import('better-sqlite3')).default;
    const { NodeRegistry } = await import('./nodes.js');
    const db = new Database(':memory:');
    db.exec(`CREATE TABLE placements (deployment TEXT PRIMARY KEY, node TEXT NOT NULL, cpus REAL NOT NULL, memory_mib INTEGER NOT NULL,
      request TEXT NOT NULL, placed_at INTEGER NOT NULL)`);
    db.prepare('INSERT INTO placements VALUES (?, ?, ?, ?, ?, ?)').run('old', 'n1', 3, 768, JSON.stringify({ service: { replicas: '3' } }), 5);
    const reg = new NodeRegistry(db);
    expect(await reg.getPlacement('old')).toEqual({ deployment: 'old', node: 'n1', cpus: 3, memoryMiB: 768, request: { service: { replicas: '3' } }, placedAt: 5 });
    const spread: Placement = { deployment: 'new', node: 'n2', cpus: 1, memoryMiB: 256, request: {}, placedAt: 6, shards: [{ node: 'n2', replicas: 2 }], rollout: { key: 'op_9', previous: null, from: [], request: {} } };
    await reg.setPlacement(spread);
    expect(await reg.getPlacement('new')).toEqual(spread);
  });
});
