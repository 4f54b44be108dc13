import type Database from 'better-sqlite3';
import { UserError } from '../errors.js';
import { nodesOf, type ArtifactGrant, type LastOperation, type NodeIdentity, type NodeInput, type NodeRecord, type NodeStore, type Placement, type PlacementStore, type ReportedDeployment } from './node-store.js';

/** A join for a name another node holds (E_NODE_NAME_TAKEN, 409). */
export const nameTaken = (name: string): UserError => new UserError('E_NODE_NAME_TAKEN', `node ${name} has already joined with another credential`, {
  hint: `pick another --name, or have an administrator remove the node first (DELETE /v1/nodes/${name})`,
});

interface PlacementRow { deployment: string; node: string; cpus: number; memory_mib: number; request: string; placed_at: number; shards: string | null; }
const toPlacement = (r: PlacementRow): Placement => {
  // `shards` (a spread service's shard map and rollout) is null in rows written before services were spread
  const extra = r.shards ? JSON.parse(r.shards) as Pick<Placement, 'shards' | 'rollout'> : {};
  return {
    deployment: r.deployment, node: r.node, cpus: r.cpus, memoryMiB: r.memory_mib, request: JSON.parse(r.request) as unknown, placedAt: r.placed_at,
    ...(extra.shards ? { shards: extra.shards } : {}), ...(extra.rollout ? { rollout: extra.rollout } : {}),
  };
};

interface NodeRow { name: string; address: string; labels: string; capacity: string; cordoned: number; last_heartbeat: number; credential_sha256: string | null; agent_key: string | null; }

/**
 * The local copies an agent should remove, for a node that comes back after being unreachable:
 *  - copies whose placement moved to another node after the copy was created (rescheduled while it was down);
 *  - copies without a placement whose newest operation is a succeeded destroy issued after the copy was created
 *    (destroyed while the node could not be reached).
 * A copy created after its placement was last set is a move in progress towards this node and is kept; so is a
 * copy the control plane knows nothing about (a control plane that lost its store must not wipe its nodes).
 */
export function orphanedDeployments(
  node: string, reported: ReportedDeployment[], placements: ReadonlyMap<string, Placement>, now: number,
  lastOperations: ReadonlyMap<string, LastOperation> = new Map(),
): string[] {
  return reported.filter((r) => {
    const createdAt = now - r.ageMs;
    const p = placements.get(r.name);
    if (p) return !nodesOf(p).includes(node) && createdAt < p.placedAt;
    const op = lastOperations.get(r.name);
    return op !== undefined && op.kind === 'destroy' && op.state === 'succeeded' && createdAt < op.createdAt;
  }).map((r) => r.name);
}

export class NodeRegistry implements NodeStore, PlacementStore {
  constructor(private readonly db: Database.Database, private readonly graceMs = 30_000) {
    db.exec(`CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY, address TEXT NOT NULL, labels TEXT NOT NULL,
      capacity TEXT NOT NULL, cordoned INTEGER NOT NULL DEFAULT 0, last_heartbeat INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS placements (deployment TEXT PRIMARY KEY, node TEXT NOT NULL, cpus REAL NOT NULL, memory_mib INTEGER NOT NULL,
      request TEXT NOT NULL, placed_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS artifact_grants (node TEXT NOT NULL, deployment TEXT NOT NULL, artifact TEXT NOT NULL, PRIMARY KEY (node, deployment))`);
    // journals written before nodes had identities: add the columns (their nodes join once to claim their names)
    const columns = new Set((db.prepare('PRAGMA table_info(nodes)').all() as Array<{ name: string }>).map((c) => c.name));
    for (const c of ['credential_sha256', 'agent_key']) if (!columns.has(c)) db.exec(`ALTER TABLE nodes ADD COLUMN ${c} TEXT`);
    // journals written before services were spread over nodes: placements gain the shard map (null: one node)
    const placementColumns = new Set((db.prepare('PRAGMA table_info(placements)').all() as Array<{ name: string }>).map((c) => c.name));
    if (!placementColumns.has('shards')) db.exec('ALTER TABLE placements ADD COLUMN shards TEXT');
  }

  private toRecord(r: NodeRow, now: number): NodeRecord {
    return {
      name: r.name, address: r.address, labels: JSON.parse(r.labels) as Record<string, string>, capacity: JSON.parse(r.capacity) as Record<string, number>,
      cordoned: r.cordoned === 1, lastHeartbeatAt: r.last_heartbeat, status: now - r.last_heartbeat > this.graceMs ? 'down' : 'ready',
    };
  }

  async join(n: NodeInput, identity: NodeIdentity): Promise<NodeRecord> {
    this.db.transaction(() => {
      const prior = this.db.prepare('SELECT credential_sha256 FROM nodes WHERE name = ?').get(n.name) as { credential_sha256: string | null } | undefined;
      if (prior?.credential_sha256) throw nameTaken(n.name);
      this.db.prepare(`INSERT INTO nodes (name, address, labels, capacity, cordoned, last_heartbeat, credential_sha256, agent_key) VALUES (?, ?, ?, ?, 0, ?, ?, ?)
        ON CONFLICT(name) DO UPDATE SET address = excluded.address, labels = excluded.labels, capacity = excluded.capacity, last_heartbeat = excluded.last_heartbeat,
        credential_sha256 = excluded.credential_sha256, agent_key = excluded.agent_key`)
        .run(n.name, n.address ?? '', JSON.stringify(n.labels ?? {}), JSON.stringify(n.capacity ?? {}), Date.now(), identity.credentialSha256, identity.agentKey);
    }).immediate();
    return this.getSync(n.name) as NodeRecord;
  }

  async register(n: NodeInput): Promise<NodeRecord> {
    const r = this.db.prepare('UPDATE nodes SET address = ?, labels = ?, capacity = ?, last_heartbeat = ? WHERE name = ?')
      .run(n.address ?? '', JSON.stringify(n.labels ?? {}), JSON.stringify(n.capacity ?? {}), Date.now(), n.name);
    if (r.changes === 0) throw new UserError('E_UNKNOWN_NODE', `node ${n.name} is not registered`, { hint: 'the node joins first (POST /v1/nodes/join with the join token)' });
    return this.getSync(n.name) as NodeRecord;
  }

  async identity(name: string): Promise<NodeIdentity | null> {
    const r = this.db.prepare('SELECT credential_sha256, agent_key FROM nodes WHERE name = ?').get(name) as Pick<NodeRow, 'credential_sha256' | 'agent_key'> | undefined;
    return r?.credential_sha256 && r.agent_key ? { credentialSha256: r.credential_sha256, agentKey: r.agent_key } : null;
  }

  async remove(name: string): Promise<boolean> {
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM artifact_grants WHERE node = ?').run(name);
      return this.db.prepare('DELETE FROM nodes WHERE name = ?').run(name).changes > 0;
    }).immediate();
  }

  async heartbeat(n: { name: string; capacity?: Record<string, number> }): Promise<NodeRecord> {
    const r = this.db.prepare('UPDATE nodes SET last_heartbeat = ?, capacity = COALESCE(?, capacity) WHERE name = ?')
      .run(Date.now(), n.capacity ? JSON.stringify(n.capacity) : null, n.name);
    if (r.changes === 0) throw new UserError('E_UNKNOWN_NODE', `node ${n.name} is not registered`, { hint: 'the node joins first (POST /v1/nodes/join with the join token)' });
    return this.getSync(n.name) as NodeRecord;
  }

  async setCordoned(name: string, cordoned: boolean): Promise<NodeRecord> {
    const r = this.db.prepare('UPDATE nodes SET cordoned = ? WHERE name = ?').run(cordoned ? 1 : 0, name);
    if (r.changes === 0) throw new UserError('E_UNKNOWN_NODE', `node ${name} is not registered`);
    return this.getSync(name) as NodeRecord;
  }

  async get(name: string): Promise<NodeRecord | null> {
    return this.getSync(name);
  }

  private getSync(name: string): NodeRecord | null {
    const r = this.db.prepare('SELECT * FROM nodes WHERE name = ?').get(name) as NodeRow | undefined;
    return r ? this.toRecord(r, Date.now()) : null;
  }

  async list(): Promise<NodeRecord[]> {
    const now = Date.now();
    return (this.db.prepare('SELECT * FROM nodes ORDER BY name').all() as NodeRow[]).map((r) => this.toRecord(r, now));
  }

  async setPlacement(p: Placement): Promise<void> {
    const extra = p.shards ? JSON.stringify({ shards: p.shards, ...(p.rollout ? { rollout: p.rollout } : {}) }) : null;
    this.db.prepare('INSERT OR REPLACE INTO placements (deployment, node, cpus, memory_mib, request, placed_at, shards) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(p.deployment, p.node, p.cpus, p.memoryMiB, JSON.stringify(p.request), p.placedAt, extra);
  }

  async getPlacement(deployment: string): Promise<Placement | null> {
    const r = this.db.prepare('SELECT * FROM placements WHERE deployment = ?').get(deployment) as PlacementRow | undefined;
    return r ? toPlacement(r) : null;
  }

  async listPlacements(): Promise<Placement[]> {
    return (this.db.prepare('SELECT * FROM placements ORDER BY deployment').all() as PlacementRow[]).map(toPlacement);
  }

  async deletePlacement(deployment: string): Promise<void> {
    this.db.prepare('DELETE FROM placements WHERE deployment = ?').run(deployment);
  }

  async grantArtifact(g: ArtifactGrant): Promise<void> {
    this.db.prepare('INSERT OR REPLACE INTO artifact_grants (node, deployment, artifact) VALUES (?, ?, ?)').run(g.node, g.deployment, g.artifact);
  }

  async artifactGranted(node: string, artifact: string): Promise<boolean> {
    return this.db.prepare('SELECT 1 FROM artifact_grants WHERE node = ? AND artifact = ? LIMIT 1').get(node, artifact) !== undefined;
  }

  async revokeArtifacts(deployment: string, node?: string): Promise<void> {
    if (node === undefined) this.db.prepare('DELETE FROM artifact_grants WHERE deployment = ?').run(deployment);
    else this.db.prepare('DELETE FROM artifact_grants WHERE deployment = ? AND node = ?').run(deployment, node);
  }
}
