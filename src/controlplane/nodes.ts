import type Database from 'better-sqlite3';
import { UserError } from '../errors.js';

export interface NodeRecord {
  name: string;
  address: string;
  labels: Record<string, string>;
  capacity: Record<string, number>;
  cordoned: boolean;
  lastHeartbeatAt: number;
  status: 'ready' | 'down';
}

interface NodeRow { name: string; address: string; labels: string; capacity: string; cordoned: number; last_heartbeat: number; }

/** Node inventory (CP-6): agents register and heartbeat; a node silent for longer than the grace period is `down`. */
export class NodeRegistry {
  constructor(private readonly db: Database.Database, private readonly graceMs = 30_000) {
    db.exec(`CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY, address TEXT NOT NULL, labels TEXT NOT NULL,
      capacity TEXT NOT NULL, cordoned INTEGER NOT NULL DEFAULT 0, last_heartbeat INTEGER NOT NULL)`);
  }

  private toRecord(r: NodeRow, now: number): NodeRecord {
    return {
      name: r.name, address: r.address, labels: JSON.parse(r.labels) as Record<string, string>, capacity: JSON.parse(r.capacity) as Record<string, number>,
      cordoned: r.cordoned === 1, lastHeartbeatAt: r.last_heartbeat, status: now - r.last_heartbeat > this.graceMs ? 'down' : 'ready',
    };
  }

  register(n: { name: string; address?: string; labels?: Record<string, string>; capacity?: Record<string, number> }): NodeRecord {
    const now = Date.now();
    this.db.prepare(`INSERT INTO nodes (name, address, labels, capacity, cordoned, last_heartbeat) VALUES (?, ?, ?, ?, 0, ?)
      ON CONFLICT(name) DO UPDATE SET address = excluded.address, labels = excluded.labels, capacity = excluded.capacity, last_heartbeat = excluded.last_heartbeat`)
      .run(n.name, n.address ?? '', JSON.stringify(n.labels ?? {}), JSON.stringify(n.capacity ?? {}), now);
    return this.get(n.name) as NodeRecord;
  }

  heartbeat(n: { name: string; capacity?: Record<string, number> }): NodeRecord {
    const r = this.db.prepare('UPDATE nodes SET last_heartbeat = ?, capacity = COALESCE(?, capacity) WHERE name = ?')
      .run(Date.now(), n.capacity ? JSON.stringify(n.capacity) : null, n.name);
    if (r.changes === 0) throw new UserError('E_UNKNOWN_NODE', `node ${n.name} is not registered`, { hint: 'register it first (POST /v1/nodes/register)' });
    return this.get(n.name) as NodeRecord;
  }

  setCordoned(name: string, cordoned: boolean): NodeRecord {
    const r = this.db.prepare('UPDATE nodes SET cordoned = ? WHERE name = ?').run(cordoned ? 1 : 0, name);
    if (r.changes === 0) throw new UserError('E_UNKNOWN_NODE', `node ${name} is not registered`);
    return this.get(name) as NodeRecord;
  }

  get(name: string): NodeRecord | null {
    const r = this.db.prepare('SELECT * FROM nodes WHERE name = ?').get(name) as NodeRow | undefined;
    return r ? this.toRecord(r, Date.now()) : null;
  }

  list(): NodeRecord[] {
    const now = Date.now();
    return (this.db.prepare('SELECT * FROM nodes ORDER BY name').all() as NodeRow[]).map((r) => this.toRecord(r, now));
  }
}
