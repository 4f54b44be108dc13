import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { isUserError, UserError, type ErrorCode } from '../errors.js';
import { LIVE_STATES } from './types.js';
import type { Service } from './service-types.js';
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
  listen TEXT,
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
CREATE TABLE IF NOT EXISTS requests (
  at INTEGER NOT NULL,
  app TEXT NOT NULL,
  n INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_at ON requests(at);
CREATE TABLE IF NOT EXISTS services (
  name TEXT PRIMARY KEY,
  rev INTEGER NOT NULL,
  data TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
`;

interface DeploymentRow {
  name: string; id: string; state: string; exit_code: number | null; code: string | null; reason: string | null; spec: string;
  image: string | null; supervisor: string | null; vmm: string | null; accel: string | null; boot: string; listen: string | null;
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
    listen: parse(r.listen), createdAt: r.created_at, updatedAt: r.updated_at, startedAt: r.started_at, endedAt: r.ended_at,
  };
}
function toOperation(r: OperationRow): Operation {
  return {
    id: r.id, kind: r.kind as Operation['kind'], target: r.target, state: r.state as OperationState,
    idempotencyKey: r.idempotency_key, requestHash: r.request_hash, error: parse<OperationError>(r.error),
    createdAt: r.created_at, updatedAt: r.updated_at, endedAt: r.ended_at,
  };
}

/** Room kept next to the database for the WAL index and a few WAL frames: enough for status and several destroys. */
const RESERVE_BYTES = 2 * 1024 * 1024;

function freeBytes(dir: string): number {
  try {
    const st = statfsSync(dir);
    return st.bavail * st.bsize;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/** SQLITE_FULL, ENOSPC, or an I/O error (e.g. SQLITE_IOERR_SHMSIZE extending the -shm file) while the disk has no room. */
export function isDiskFull(e: unknown, dir: string): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') return true;
  return typeof code === 'string' && code.startsWith('SQLITE_IOERR') && freeBytes(dir) < 1024 * 1024;
}

export function diskFullError(dir: string, cause?: unknown): UserError {
  return new UserError('E_DISK_FULL', `the disk holding ${dir} is full`, {
    hint: 'free space on that filesystem, or remove deployments you no longer need with unikctl destroy NAME (status and destroy work on a full disk)',
    ...(cause === undefined ? {} : { cause }),
  });
}

const PATCH_COLUMNS: Record<keyof DeploymentPatch, string> = {
  exitCode: 'exit_code', code: 'code', reason: 'reason', image: 'image', supervisor: 'supervisor', vmm: 'vmm', accel: 'accel',
  boot: 'boot', listen: 'listen', startedAt: 'started_at', endedAt: 'ended_at',
};
const JSON_COLUMNS = new Set(['image', 'supervisor', 'vmm', 'boot', 'listen']);

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
    if (!columns.includes('listen')) db.exec('ALTER TABLE deployments ADD COLUMN listen TEXT');
  }).immediate();
}

/** The embedded store (RT-5): one SQLite file in WAL mode, safe for concurrent CLI and supervisor processes. */
export class SqliteStore implements Store {
  private db: Database.Database;
  /** No room on the disk for the shared WAL index: every call then opens its own short exclusive connection. */
  private exclusive = false;
  private inCall = false;
  private readonly dir: string;
  private readonly reserve: string;

  constructor(private readonly file: string) {
    this.dir = dirname(file);
    this.reserve = `${file}.reserve`;
    mkdirSync(this.dir, { recursive: true });
    try {
      // opening maps the WAL index (-shm, 32 KiB): on a full disk that fails unless the reserve makes room
      const shared = this.withRoom(() => this.open(false));
      if (shared) this.db = shared.value;
      else {
        this.exclusive = true;
        this.db = this.open(true);
        this.db.close();
      }
    } catch (e) {
      if (isUserError(e)) throw e;
      if (isDiskFull(e, this.dir)) throw diskFullError(this.dir, e);
      throw new UserError('E_STATE', `cannot open the state database ${file}: ${(e as Error).message}`, {
        hint: 'check that UNIKCTL_HOME is writable by this user', cause: e,
      });
    }
    this.ensureReserve();
  }

  private open(exclusive: boolean): Database.Database {
    const db = new Database(this.file);
    try {
      // set before the first access, exclusive locking keeps the WAL index in this process's memory: no -shm file to grow
      if (exclusive) db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('busy_timeout = 10000');
      db.pragma('synchronous = NORMAL');
      db.exec(SCHEMA);
      migrate(db);
      return db;
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** fn, or fn once more after giving the reserve back to the filesystem; null when the disk stays full. */
  private withRoom<T>(fn: () => T): { value: T } | null {
    try {
      return { value: fn() };
    } catch (e) {
      if (!isDiskFull(e, this.dir)) throw e;
      if (!this.releaseReserve()) return null;
      try {
        return { value: fn() };
      } catch (again) {
        if (!isDiskFull(again, this.dir)) throw again;
        return null;
      }
    }
  }

  /**
   * Runs a database call so that status, logs and destroy (the way to free space) keep working on a full disk: first
   * with the reserve released, then on a connection of its own that needs no -shm file. A write that still finds no
   * room is E_DISK_FULL, never "disk I/O error".
   */
  private guard<T>(fn: () => T): T {
    if (this.inCall) return fn(); // nested (a read inside a transaction): same connection, the outer call handles errors
    this.inCall = true;
    try {
      return this.guarded(fn);
    } finally {
      this.inCall = false;
    }
  }

  private guarded<T>(fn: () => T): T {
    if (!this.exclusive) {
      const r = this.withRoom(fn);
      if (r) return r.value;
      this.db.close();
      this.exclusive = true;
    }
    try {
      // held only for this call: other processes (supervisors, a destroy worker) wait at most that long for the lock
      this.db = this.open(true);
      return fn();
    } catch (e) {
      throw isDiskFull(e, this.dir) ? diskFullError(this.dir, e) : e;
    } finally {
      this.db.close();
    }
  }

  /** A write transaction that takes the lock at BEGIN (checks inside it cannot race another process's insert). */
  private immediate<T>(fn: () => T): T {
    return this.guard(() => this.db.transaction(fn).immediate());
  }

  private releaseReserve(): boolean {
    try {
      unlinkSync(this.reserve);
      return true;
    } catch {
      return false;
    }
  }

  /** Puts the reserve (back) in place when the disk has room for it and as much again; best effort. */
  private ensureReserve(): boolean {
    if (existsSync(this.reserve)) return true;
    if (freeBytes(this.dir) < 2 * RESERVE_BYTES) return false;
    const tmp = `${this.reserve}.${process.pid}`;
    try {
      // random bytes: zeros could be stored sparse or compressed and reserve nothing
      writeFileSync(tmp, randomBytes(RESERVE_BYTES));
      renameSync(tmp, this.reserve);
      return true;
    } catch {
      rmSync(tmp, { force: true });
      return false;
    }
  }

  requireSpace(): void {
    if (!this.ensureReserve() || freeBytes(this.dir) < RESERVE_BYTES) throw diskFullError(this.dir);
  }

  createDeployment(d: Deployment, op: Operation): void {
    this.immediate(() => {
      this.checkFree(d.name, d.spec.ports.map((p) => p.hostPort));
      this.db.prepare(`INSERT INTO deployments (name, id, state, exit_code, code, reason, spec, image, supervisor, vmm, accel, boot, listen,
        created_at, updated_at, started_at, ended_at) VALUES (@name, @id, @state, @exit_code, @code, @reason, @spec, @image, @supervisor,
        @vmm, @accel, @boot, @listen, @created_at, @updated_at, @started_at, @ended_at)`).run({
        name: d.name, id: d.id, state: d.state, exit_code: d.exitCode, code: d.code, reason: d.reason, spec: JSON.stringify(d.spec),
        image: json(d.image), supervisor: json(d.supervisor), vmm: json(d.vmm), accel: d.accel, boot: JSON.stringify(d.boot),
        listen: json(d.listen), created_at: d.createdAt, updated_at: d.updatedAt, started_at: d.startedAt, ended_at: d.endedAt,
      });
      this.insertOperation(op);
      this.insertEvent(d.name, 'state', `${d.state} (operation ${op.id})`);
    });
  }

  /** Inside an IMMEDIATE transaction: two concurrent deploys of one name or host port cannot both pass. */
  private checkFree(name: string, wanted: number[]): void {
    const exists = this.db.prepare('SELECT 1 FROM deployments WHERE name = ? UNION ALL SELECT 1 FROM services WHERE name = ?').get(name, name);
    if (exists) {
      throw new UserError('E_NAME_TAKEN', `a deployment named "${name}" already exists`, {
        hint: `pick another --name, or remove it first: unikctl destroy ${name}`,
      });
    }
    if (wanted.length === 0) return;
    const marks = wanted.map(() => '?').join(', ');
    const holder = this.db.prepare(`SELECT d.name AS name, json_extract(p.value, '$.hostPort') AS port FROM deployments d, json_each(d.spec, '$.ports') p
      WHERE d.state IN (${LIVE_STATES.map(() => '?').join(', ')}) AND json_extract(p.value, '$.hostPort') IN (${marks})
      UNION ALL SELECT s.name AS name, json_extract(p.value, '$.hostPort') AS port FROM services s, json_each(s.data, '$.ports') p
      WHERE json_extract(p.value, '$.hostPort') IN (${marks}) LIMIT 1`)
      .get(...LIVE_STATES, ...wanted, ...wanted) as { name: string; port: number } | undefined;
    if (holder) throw portInUse(holder.port, holder.name);
  }

  createService(s: Service, op: Operation): void {
    this.immediate(() => {
      this.checkFree(s.name, s.ports.map((p) => p.hostPort));
      this.db.prepare('INSERT INTO services (name, rev, data, created_at) VALUES (?, ?, ?, ?)').run(s.name, s.rev, JSON.stringify(s), s.createdAt);
      this.insertOperation(op);
      this.insertEvent(s.name, 'service', `created (operation ${op.id})`);
    });
  }

  getService(name: string): Service | null {
    const r = this.guard(() => this.db.prepare('SELECT rev, data FROM services WHERE name = ?').get(name)) as { rev: number; data: string } | undefined;
    return r ? { ...(JSON.parse(r.data) as Service), rev: r.rev } : null;
  }

  listServices(): Service[] {
    const rows = this.guard(() => this.db.prepare('SELECT rev, data FROM services ORDER BY created_at').all()) as Array<{ rev: number; data: string }>;
    return rows.map((r) => ({ ...(JSON.parse(r.data) as Service), rev: r.rev }));
  }

  updateService(s: Service): boolean {
    const next = { ...s, rev: s.rev + 1, updatedAt: Date.now() };
    const r = this.guard(() => this.db.prepare('UPDATE services SET rev = ?, data = ? WHERE name = ? AND rev = ?').run(next.rev, JSON.stringify(next), s.name, s.rev));
    return r.changes === 1;
  }

  deleteService(name: string): void {
    this.immediate(() => {
      this.db.prepare('DELETE FROM services WHERE name = ?').run(name);
      this.insertEvent(name, 'service', 'removed');
    });
  }

  recordRequests(app: string, n: number, at: number): void {
    this.guard(() => this.db.prepare('INSERT INTO requests (at, app, n) VALUES (?, ?, ?)').run(at, app, n));
  }

  countRequests(from: number, to: number, app?: string): number | null {
    return this.guard(() => {
      const any = this.db.prepare('SELECT 1 FROM requests UNION ALL SELECT 1 FROM services LIMIT 1').get();
      if (!any) return null;
      const r = (app === undefined
        ? this.db.prepare('SELECT COALESCE(SUM(n), 0) AS n FROM requests WHERE at >= ? AND at < ?').get(from, to)
        : this.db.prepare('SELECT COALESCE(SUM(n), 0) AS n FROM requests WHERE at >= ? AND at < ? AND app = ?').get(from, to, app)) as { n: number };
      return r.n;
    });
  }

  freeName(base: string): string {
    const taken = new Set(
      (this.guard(() => this.db.prepare("SELECT name FROM deployments WHERE name = ? OR name LIKE ? || '-%' UNION SELECT name FROM services WHERE name = ? OR name LIKE ? || '-%'").all(base, base, base, base)) as Array<{ name: string }>)
        .map((r) => r.name),
    );
    if (!taken.has(base)) return base;
    for (let i = 2; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
  }

  getDeployment(name: string): Deployment | null {
    const r = this.guard(() => this.db.prepare('SELECT * FROM deployments WHERE name = ?').get(name)) as DeploymentRow | undefined;
    return r ? toDeployment(r) : null;
  }

  listDeployments(): Deployment[] {
    return (this.guard(() => this.db.prepare('SELECT * FROM deployments ORDER BY created_at').all()) as DeploymentRow[]).map(toDeployment);
  }

  transition(name: string, from: readonly DeploymentState[], to: DeploymentState, patch: DeploymentPatch = {}): Deployment | null {
    return this.immediate((): Deployment | null => {
      const cur = this.getDeployment(name);
      if (!cur || !from.includes(cur.state)) return null;
      this.applyPatch(name, patch, to);
      this.insertEvent(name, 'state', patch.reason ? `${cur.state} → ${to}: ${patch.reason}` : `${cur.state} → ${to}`);
      return this.getDeployment(name);
    });
  }

  patchDeployment(name: string, patch: DeploymentPatch): void {
    this.guard(() => this.applyPatch(name, patch, null));
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
    this.immediate(() => {
      this.db.prepare('DELETE FROM deployments WHERE name = ?').run(name);
      this.insertEvent(name, 'state', 'removed');
    });
  }

  createOperation(op: Operation): void {
    this.guard(() => this.insertOperation(op));
  }

  private insertOperation(op: Operation): void {
    this.db.prepare(`INSERT INTO operations (id, kind, target, state, idempotency_key, request_hash, error, created_at, updated_at, ended_at)
      VALUES (@id, @kind, @target, @state, @idempotency_key, @request_hash, @error, @created_at, @updated_at, @ended_at)`).run({
      id: op.id, kind: op.kind, target: op.target, state: op.state, idempotency_key: op.idempotencyKey, request_hash: op.requestHash,
      error: json(op.error), created_at: op.createdAt, updated_at: op.updatedAt, ended_at: op.endedAt,
    });
  }

  findOperationByKey(key: string): Operation | null {
    const r = this.guard(() => this.db.prepare('SELECT * FROM operations WHERE idempotency_key = ?').get(key)) as OperationRow | undefined;
    return r ? toOperation(r) : null;
  }

  getOperation(id: string): Operation | null {
    const r = this.guard(() => this.db.prepare('SELECT * FROM operations WHERE id = ?').get(id)) as OperationRow | undefined;
    return r ? toOperation(r) : null;
  }

  updateOperation(id: string, state: OperationState, error: OperationError | null = null): void {
    const now = Date.now();
    const ended = state === 'succeeded' || state === 'failed' ? now : null;
    this.guard(() => this.db.prepare('UPDATE operations SET state = ?, error = ?, updated_at = ?, ended_at = COALESCE(?, ended_at) WHERE id = ?')
      .run(state, json(error), now, ended, id));
  }

  listOperations(limit: number, target?: string): Operation[] {
    const rows = this.guard(() => (target
      ? this.db.prepare('SELECT * FROM operations WHERE target = ? ORDER BY created_at DESC, id DESC LIMIT ?').all(target, limit)
      : this.db.prepare('SELECT * FROM operations ORDER BY created_at DESC, id DESC LIMIT ?').all(limit)));
    return (rows as OperationRow[]).map(toOperation);
  }

  addEvent(deployment: string, type: string, message: string): void {
    this.guard(() => this.insertEvent(deployment, type, message));
  }

  private insertEvent(deployment: string, type: string, message: string): void {
    this.db.prepare('INSERT INTO events (deployment, at, type, message) VALUES (?, ?, ?, ?)').run(deployment, Date.now(), type, message);
  }

  listEvents(deployment: string, limit: number): DeploymentEvent[] {
    return (this.guard(() => this.db.prepare('SELECT * FROM events WHERE deployment = ? ORDER BY id DESC LIMIT ?').all(deployment, limit)) as DeploymentEvent[]).reverse();
  }

  close(): void {
    this.db.close();
  }
}

/** A host port already published (raised by the store's insert, and by the admission check of a deploy). */
export const portInUse = (port: number, holder?: string): UserError =>
  new UserError('E_PORT_IN_USE', `host port ${port} is already in use${holder ? ` by deployment ${holder}` : ''}`, {
    hint: 'pick another host port with -p HOST:GUEST, or stop what holds it (unikctl status shows deployments)',
  });
