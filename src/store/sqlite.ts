import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { UserError, type ErrorCode } from '../errors.js';
import type {
  Deployment, DeploymentEvent, DeploymentPatch, DeploymentState, Operation, OperationError, OperationState, Store,
} from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS deployments (
  name TEXT PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL,
  exit_code INTEGER,
  code TEXT,
  reason TEXT,
  spec TEXT NOT NULL,
  image TEXT,
  supervisor TEXT,
  vmm TEXT,
  accel TEXT,
  boot TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER
);
CREATE TABLE IF NOT EXISTS operations (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  target TEXT NOT NULL,
  state TEXT NOT NULL,
  idempotency_key TEXT UNIQUE,
  request_hash TEXT,
  error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  ended_at INTEGER
);
CREATE INDEX IF NOT EXISTS operations_created ON operations(created_at);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  deployment TEXT NOT NULL,
  at INTEGER NOT NULL,
  type TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_deployment ON events(deployment, id);
`;

interface DeploymentRow {
  name: string; id: string; state: string; exit_code: number | null; code: string | null; reason: string | null; spec: string;
  image: string | null; supervisor: string | null; vmm: string | null; accel: string | null; boot: string;
  created_at: number; updated_at: number; started_at: number | null; ended_at: number | null;
}
interface OperationRow {
  id: string; kind: string; target: string; state: string; idempotency_key: string | null; request_hash: string | null;
  error: string | null; created_at: number; updated_at: number; ended_at: number | null;
}

const json = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));
const parse = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));

function toDeployment(r: DeploymentRow): Deployment {
  return {
    name: r.name, id: r.id, state: r.state as DeploymentState, exitCode: r.exit_code, code: r.code as ErrorCode | null, reason: r.reason,
    spec: JSON.parse(r.spec) as Deployment['spec'], image: parse(r.image), supervisor: parse(r.supervisor), vmm: parse(r.vmm),
    accel: r.accel as Deployment['accel'], boot: JSON.parse(r.boot) as Deployment['boot'],
    createdAt: r.created_at, updatedAt: r.updated_at, startedAt: r.started_at, endedAt: r.ended_at,
  };
}
function toOperation(r: OperationRow): Operation {
  return {
    id: r.id, kind: r.kind as Operation['kind'], target: r.target, state: r.state as OperationState,
    idempotencyKey: r.idempotency_key, requestHash: r.request_hash, error: parse<OperationError>(r.error),
    createdAt: r.created_at, updatedAt: r.updated_at, endedAt: r.ended_at,
  };
}

const PATCH_COLUMNS: Record<keyof DeploymentPatch, string> = {
  exitCode: 'exit_code', code: 'code', reason: 'reason', image: 'image', supervisor: 'supervisor', vmm: 'vmm', accel: 'accel',
  boot: 'boot', startedAt: 'started_at', endedAt: 'ended_at',
};
const JSON_COLUMNS = new Set(['image', 'supervisor', 'vmm', 'boot']);

/**
 * Schema changes of existing state databases, each idempotent (every process runs this on open; the first one
 * that opens an old file changes it, in one transaction, the rest find nothing to do).
 */
function migrate(db: Database.Database): void {
  db.transaction(() => {
    const columns = (db.prepare('PRAGMA table_info(deployments)').all() as Array<{ name: string }>).map((c) => c.name);
    if (!columns.includes('code')) {
      db.exec('ALTER TABLE deployments ADD COLUMN code TEXT');
      // rows written before the column existed carried their code as a "E_X: " prefix of the reason: move it, once
      db.exec(`UPDATE deployments SET code = substr(reason, 1, instr(reason, ':') - 1), reason = ltrim(substr(reason, instr(reason, ':') + 1))
        WHERE reason GLOB 'E_[A-Z_]*: *' AND instr(substr(reason, 1, instr(reason, ':') - 1), ' ') = 0`);
    }
  }).immediate();
}

/** The embedded store (RT-5): one SQLite file in WAL mode, safe for concurrent CLI and supervisor processes. */
export class SqliteStore implements Store {
  private readonly db: Database.Database;

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true });
    try {
      this.db = new Database(file);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('busy_timeout = 10000');
      this.db.pragma('synchronous = NORMAL');
      this.db.exec(SCHEMA);
      migrate(this.db);
    } catch (e) {
      throw new UserError('E_STATE', `cannot open the state database ${file}: ${(e as Error).message}`, {
        hint: 'check that UNIKCTL_HOME is writable by this user', cause: e,
      });
    }
  }

  createDeployment(d: Deployment, op: Operation): void {
    const tx = this.db.transaction(() => {
      const exists = this.db.prepare('SELECT 1 FROM deployments WHERE name = ?').get(d.name);
      if (exists) {
        throw new UserError('E_NAME_TAKEN', `a deployment named "${d.name}" already exists`, {
          hint: `pick another --name, or remove it first: unikctl destroy ${d.name}`,
        });
      }
      this.db.prepare(`INSERT INTO deployments (name, id, state, exit_code, code, reason, spec, image, supervisor, vmm, accel, boot,
        created_at, updated_at, started_at, ended_at) VALUES (@name, @id, @state, @exit_code, @code, @reason, @spec, @image, @supervisor,
        @vmm, @accel, @boot, @created_at, @updated_at, @started_at, @ended_at)`).run({
        name: d.name, id: d.id, state: d.state, exit_code: d.exitCode, code: d.code, reason: d.reason, spec: JSON.stringify(d.spec),
        image: json(d.image), supervisor: json(d.supervisor), vmm: json(d.vmm), accel: d.accel, boot: JSON.stringify(d.boot),
        created_at: d.createdAt, updated_at: d.updatedAt, started_at: d.startedAt, ended_at: d.endedAt,
      });
      this.insertOperation(op);
      this.insertEvent(d.name, 'state', `${d.state} (operation ${op.id})`);
    });
    tx.immediate();
  }

  freeName(base: string): string {
    const taken = new Set(
      (this.db.prepare("SELECT name FROM deployments WHERE name = ? OR name LIKE ? || '-%'").all(base, base) as Array<{ name: string }>)
        .map((r) => r.name),
    );
    if (!taken.has(base)) return base;
    for (let i = 2; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
  }

  getDeployment(name: string): Deployment | null {
    const r = this.db.prepare('SELECT * FROM deployments WHERE name = ?').get(name) as DeploymentRow | undefined;
    return r ? toDeployment(r) : null;
  }

  listDeployments(): Deployment[] {
    return (this.db.prepare('SELECT * FROM deployments ORDER BY created_at').all() as DeploymentRow[]).map(toDeployment);
  }

  transition(name: string, from: readonly DeploymentState[], to: DeploymentState, patch: DeploymentPatch = {}): Deployment | null {
    const tx = this.db.transaction((): Deployment | null => {
      const cur = this.getDeployment(name);
      if (!cur || !from.includes(cur.state)) return null;
      this.applyPatch(name, patch, to);
      this.insertEvent(name, 'state', patch.reason ? `${cur.state} → ${to}: ${patch.reason}` : `${cur.state} → ${to}`);
      return this.getDeployment(name);
    });
    return tx.immediate();
  }

  patchDeployment(name: string, patch: DeploymentPatch): void {
    this.applyPatch(name, patch, null);
  }

  private applyPatch(name: string, patch: DeploymentPatch, state: DeploymentState | null): void {
    const sets = ['updated_at = @updated_at'];
    const params: Record<string, unknown> = { name, updated_at: Date.now() };
    if (state) { sets.push('state = @state'); params.state = state; }
    for (const [key, column] of Object.entries(PATCH_COLUMNS)) {
      const value = (patch as Record<string, unknown>)[key];
      if (value === undefined) continue;
      sets.push(`${column} = @${column}`);
      params[column] = JSON_COLUMNS.has(column) ? json(value) : value;
    }
    this.db.prepare(`UPDATE deployments SET ${sets.join(', ')} WHERE name = @name`).run(params);
  }

  deleteDeployment(name: string): void {
    this.db.prepare('DELETE FROM deployments WHERE name = ?').run(name);
    this.insertEvent(name, 'state', 'removed');
  }

  createOperation(op: Operation): void {
    this.insertOperation(op);
  }

  private insertOperation(op: Operation): void {
    this.db.prepare(`INSERT INTO operations (id, kind, target, state, idempotency_key, request_hash, error, created_at, updated_at, ended_at)
      VALUES (@id, @kind, @target, @state, @idempotency_key, @request_hash, @error, @created_at, @updated_at, @ended_at)`).run({
      id: op.id, kind: op.kind, target: op.target, state: op.state, idempotency_key: op.idempotencyKey, request_hash: op.requestHash,
      error: json(op.error), created_at: op.createdAt, updated_at: op.updatedAt, ended_at: op.endedAt,
    });
  }

  findOperationByKey(key: string): Operation | null {
    const r = this.db.prepare('SELECT * FROM operations WHERE idempotency_key = ?').get(key) as OperationRow | undefined;
    return r ? toOperation(r) : null;
  }

  getOperation(id: string): Operation | null {
    const r = this.db.prepare('SELECT * FROM operations WHERE id = ?').get(id) as OperationRow | undefined;
    return r ? toOperation(r) : null;
  }

  updateOperation(id: string, state: OperationState, error: OperationError | null = null): void {
    const now = Date.now();
    const ended = state === 'succeeded' || state === 'failed' ? now : null;
    this.db.prepare('UPDATE operations SET state = ?, error = ?, updated_at = ?, ended_at = COALESCE(?, ended_at) WHERE id = ?')
      .run(state, json(error), now, ended, id);
  }

  listOperations(limit: number, target?: string): Operation[] {
    const rows = target
      ? this.db.prepare('SELECT * FROM operations WHERE target = ? ORDER BY created_at DESC, id DESC LIMIT ?').all(target, limit)
      : this.db.prepare('SELECT * FROM operations ORDER BY created_at DESC, id DESC LIMIT ?').all(limit);
    return (rows as OperationRow[]).map(toOperation);
  }

  addEvent(deployment: string, type: string, message: string): void {
    this.insertEvent(deployment, type, message);
  }

  private insertEvent(deployment: string, type: string, message: string): void {
    this.db.prepare('INSERT INTO events (deployment, at, type, message) VALUES (?, ?, ?, ?)').run(deployment, Date.now(), type, message);
  }

  listEvents(deployment: string, limit: number): DeploymentEvent[] {
    return (this.db.prepare('SELECT * FROM events WHERE deployment = ? ORDER BY id DESC LIMIT ?').all(deployment, limit) as DeploymentEvent[]).reverse();
  }

  close(): void {
    this.db.close();
  }
}
