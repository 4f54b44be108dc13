import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import { UserError } from '../errors.js';
import type { OperationError, OperationKind, OperationState } from '../store/types.js';
import type { NewOperation, OperationJournal, QueuedOperation } from './operation-journal.js';
import { statementCache } from './statements.js';
import { checkQuota, deploymentNameTaken, emptyUsage, subtractUsage, type QuotaCheck, type TenantUsage } from './tenants.js';

interface OperationRow {
  id: string; kind: string; target: string; state: string; idempotency_key: string | null; request_hash: string; request: string;
  attempts: number; max_attempts: number; next_run_at: number; lease_owner: string | null; result: string | null; error: string | null;
  trace_id: string; created_at: number; updated_at: number; ended_at: number | null; seq: number;
}

const fromRow = (r: OperationRow): QueuedOperation => ({
  id: r.id, kind: r.kind as OperationKind, target: r.target, state: r.state as OperationState, idempotencyKey: r.idempotency_key,
  requestHash: r.request_hash, request: JSON.parse(r.request) as unknown, attempts: r.attempts, maxAttempts: r.max_attempts,
  nextRunAt: r.next_run_at, leaseOwner: r.lease_owner, result: r.result ? (JSON.parse(r.result) as unknown) : null,
  error: r.error ? (JSON.parse(r.error) as OperationError) : null, traceId: r.trace_id, createdAt: r.created_at, updatedAt: r.updated_at, endedAt: r.ended_at,
});

/**
 * The control plane's operation journal (CP-2): every deploy/destroy is a row written before the API answers.
 * Workers claim rows (queued → running), finish them, or put them back with a retry time. After a crash,
 * `recover()` requeues what was running, so every operation is replayed until it finishes.
 */
/** Runs in a worker thread: a passive checkpoint every 500 ms, truncating the WAL when it grows large. */
const CHECKPOINTER = `
const { workerData } = require('node:worker_threads');
const Database = require(${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))});
const db = new Database(workerData.file);
db.pragma('busy_timeout = 100');
setInterval(() => {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    if (r && r.log > 20000) db.pragma('wal_checkpoint(TRUNCATE)');
  } catch {}
}, 500);
`;

export class Journal implements OperationJournal {
  private readonly db: Database.Database;
  private readonly checkpointer: Worker;
  private readonly stmt: (sql: string) => Database.Statement;

  constructor(file: string, opts: { synchronous?: 'NORMAL' | 'FULL' } = {}) {
    mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.stmt = statementCache(this.db);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 10000');
    this.db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
    // WAL checkpoints (which fsync) run on a worker thread, so they never stall the API's event loop
    this.db.pragma('wal_autocheckpoint = 0');
    this.checkpointer = new Worker(CHECKPOINTER, { eval: true, workerData: { file } });
    this.checkpointer.unref();
    this.db.exec(`
      -- the table kept its first name (jobs) so journals written before the operation rename still open
      CREATE TABLE IF NOT EXISTS jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        state TEXT NOT NULL,
        idempotency_key TEXT UNIQUE,
        request_hash TEXT NOT NULL,
        request TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        next_run_at INTEGER NOT NULL,
        lease_owner TEXT,
        result TEXT,
        error TEXT,
        trace_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        ended_at INTEGER
      );
      CREATE INDEX IF NOT EXISTS jobs_ready ON jobs(state, next_run_at, seq);
      CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, seq);
      CREATE INDEX IF NOT EXISTS jobs_lane ON jobs(state, kind, seq);
      CREATE INDEX IF NOT EXISTS jobs_target ON jobs(target, seq);
      CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS fake_effects (job_id TEXT PRIMARY KEY, runs INTEGER NOT NULL, at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS reservations (name TEXT PRIMARY KEY, tenant TEXT NOT NULL, vcpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, created_at INTEGER NOT NULL);
      -- nothing reads reservations by tenant any more (tenant_usage below): one index less to write per deploy
      DROP INDEX IF EXISTS reservations_tenant;
    `);
    // one transaction (another process may open the journal at the same time): the reservations' VM count, then the
    // per-tenant sums and their triggers, rebuilt from the reservations (a journal written before they existed, or a
    // crash between versions)
    this.db.transaction(() => {
      // a service reserves its rollout's worst case of VMs (replicas + surge): a journal from before has one VM per row
      if (!(this.db.pragma('table_info(reservations)') as Array<{ name: string }>).some((c) => c.name === 'vms')) {
        this.db.exec('ALTER TABLE reservations ADD COLUMN vms INTEGER NOT NULL DEFAULT 1');
      }
      this.db.exec(`
        -- each tenant's sums, kept by triggers in the writing transaction: a quota check reads one row instead of
        -- summing all of a tenant's reservations on every deploy (bench:api --tenants: that sum doubled an enqueue's cost)
        DROP TRIGGER IF EXISTS reservations_add;
        DROP TRIGGER IF EXISTS reservations_remove;
        DROP TABLE IF EXISTS tenant_usage;
        CREATE TABLE tenant_usage (tenant TEXT PRIMARY KEY, apps INTEGER NOT NULL, vms INTEGER NOT NULL, vcpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL);
        CREATE TRIGGER reservations_add AFTER INSERT ON reservations BEGIN
          INSERT INTO tenant_usage (tenant, apps, vms, vcpus, memory_mib) VALUES (NEW.tenant, 1, NEW.vms, NEW.vcpus, NEW.memory_mib)
            ON CONFLICT (tenant) DO UPDATE SET apps = apps + 1, vms = vms + NEW.vms, vcpus = vcpus + NEW.vcpus, memory_mib = memory_mib + NEW.memory_mib;
        END;
        CREATE TRIGGER reservations_remove AFTER DELETE ON reservations BEGIN
          UPDATE tenant_usage SET apps = apps - 1, vms = vms - OLD.vms, vcpus = vcpus - OLD.vcpus, memory_mib = memory_mib - OLD.memory_mib WHERE tenant = OLD.tenant;
        END;
        INSERT INTO tenant_usage (tenant, apps, vms, vcpus, memory_mib) SELECT tenant, COUNT(*), SUM(vms), SUM(vcpus), SUM(memory_mib) FROM reservations GROUP BY tenant;
      `);
    }).immediate();
  }

  get database(): Database.Database {
    return this.db;
  }

  /**
   * Writes a new operation, or returns the operation already recorded under the same idempotency key (same request) —
   * a different request under a used key is E_IDEMPOTENCY_CONFLICT.
   */
  async enqueue(j: NewOperation, quota?: QuotaCheck): Promise<{ op: QueuedOperation; created: boolean }> {
    const tx = this.db.transaction(() => {
      if (j.idempotencyKey) {
        const prior = this.byKeySync(j.idempotencyKey);
        if (prior) {
          if (prior.requestHash !== j.requestHash || prior.kind !== j.kind) {
            throw new UserError('E_IDEMPOTENCY_CONFLICT', `idempotency key "${j.idempotencyKey}" was used by operation ${prior.id} with a different request`, {
              hint: 'use a new idempotency key for a different request',
            });
          }
          return { op: prior, created: false };
        }
      }
      if (quota) {
        // inside the immediate transaction: no other writer can add a reservation between this sum and the insert
        const prior = this.stmt('SELECT vms, vcpus, memory_mib AS mem FROM reservations WHERE name = ?').get(quota.name) as { vms: number; vcpus: number; mem: number } | undefined;
        if (prior && !quota.replace) throw deploymentNameTaken(quota.name);
        // a service's next deploy: its reservation is replaced, so it is checked against the usage without the old one
        const used = this.usageSync(quota.tenant);
        checkQuota(quota, prior ? subtractUsage(used, { vms: prior.vms, vcpus: prior.vcpus, memoryMiB: prior.mem }) : used);
        if (prior) this.stmt('DELETE FROM reservations WHERE name = ?').run(quota.name);
        this.stmt('INSERT INTO reservations (name, tenant, vcpus, memory_mib, vms, created_at) VALUES (?, ?, ?, ?, ?, ?)')
          .run(quota.name, quota.tenant, quota.reservation.vcpus, quota.reservation.memoryMiB, quota.reservation.vms ?? 1, j.createdAt);
      }
      this.stmt(`INSERT INTO jobs (id, kind, target, state, idempotency_key, request_hash, request, attempts, max_attempts, next_run_at,
        trace_id, created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, 0, ?, ?, ?, ?, ?)`).run(
        j.id, j.kind, j.target, j.idempotencyKey, j.requestHash, JSON.stringify(j.request), j.maxAttempts, j.createdAt, j.traceId, j.createdAt, j.createdAt,
      );
      const op: QueuedOperation = { ...j, state: 'queued', attempts: 0, nextRunAt: j.createdAt, leaseOwner: null, result: null, error: null, updatedAt: j.createdAt, endedAt: null };
      return { op, created: true };
    });
    return tx.immediate();
  }

  async usage(tenant: string): Promise<TenantUsage> {
    return this.usageSync(tenant);
  }

  private usageSync(tenant: string): TenantUsage {
    const r = this.stmt('SELECT apps, vms, vcpus, memory_mib AS mem FROM tenant_usage WHERE tenant = ?').get(tenant) as { apps: number; vms: number; vcpus: number; mem: number } | undefined;
    return r ? { vms: r.vms, apps: r.apps, vcpus: r.vcpus, memoryMiB: r.mem } : emptyUsage();
  }

  async reserved(name: string): Promise<boolean> {
    return this.stmt('SELECT 1 FROM reservations WHERE name = ?').get(name) !== undefined;
  }

  async byKey(key: string): Promise<QueuedOperation | null> {
    return this.byKeySync(key);
  }

  private byKeySync(key: string): QueuedOperation | null {
    const r = this.stmt('SELECT * FROM jobs WHERE idempotency_key = ?').get(key) as OperationRow | undefined;
    return r ? fromRow(r) : null;
  }

  async get(id: string): Promise<QueuedOperation | null> {
    return this.getSync(id);
  }

  private getSync(id: string): QueuedOperation | null {
    const r = this.stmt('SELECT * FROM jobs WHERE id = ?').get(id) as OperationRow | undefined;
    return r ? fromRow(r) : null;
  }

  /** Takes the oldest ready operation (queued, due; of `kinds` when given) and marks it running for `owner`. */
  async claim(owner: string, now = Date.now(), kinds?: readonly OperationKind[]): Promise<QueuedOperation | null> {
    const tx = this.db.transaction((): QueuedOperation | null => {
      // walk the queue in order and stop at the first due operation (not: sort every due operation per claim); a lane walks
      // only its kinds' part of the index, so a short lane does not step over thousands of queued deploys
      const r = (kinds
        ? this.stmt(`SELECT * FROM jobs INDEXED BY jobs_lane WHERE state = 'queued' AND kind IN (${kinds.map(() => '?').join(', ')}) AND next_run_at <= ? ORDER BY seq LIMIT 1`).get(...kinds, now)
        : this.stmt("SELECT * FROM jobs INDEXED BY jobs_queue WHERE state = 'queued' AND next_run_at <= ? ORDER BY seq LIMIT 1").get(now)) as OperationRow | undefined;
      if (!r) return null;
      this.stmt("UPDATE jobs SET state = 'running', lease_owner = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?").run(owner, now, r.id);
      return this.getSync(r.id);
    });
    return tx.immediate();
  }

  /** Marks an operation done; only the worker holding it may (a replayed duplicate loses). */
  async finish(id: string, owner: string, outcome: { result?: unknown; error?: OperationError; release?: boolean }): Promise<boolean> {
    const now = Date.now();
    const state: OperationState = outcome.error ? 'failed' : 'succeeded';
    const tx = this.db.transaction((): boolean => {
      const r = this.stmt("UPDATE jobs SET state = ?, result = ?, error = ?, lease_owner = NULL, updated_at = ?, ended_at = ? WHERE id = ? AND state = 'running' AND lease_owner = ?")
        .run(state, outcome.result === undefined ? null : JSON.stringify(outcome.result), outcome.error ? JSON.stringify(outcome.error) : null, now, now, id, owner);
      if (r.changes !== 1) return false;
      const op = this.getSync(id);
      if (op && ((op.kind === 'destroy' && state === 'succeeded') || (op.kind === 'deploy' && outcome.release))) {
        this.stmt('DELETE FROM reservations WHERE name = ?').run(op.target);
      }
      return true;
    });
    return tx.immediate();
  }

  /** Puts a running operation back in the queue to be retried at `runAt`. */
  async retry(id: string, owner: string, runAt: number, error: OperationError): Promise<boolean> {
    const r = this.stmt("UPDATE jobs SET state = 'queued', next_run_at = ?, error = ?, lease_owner = NULL, updated_at = ? WHERE id = ? AND state = 'running' AND lease_owner = ?")
      .run(runAt, JSON.stringify(error), Date.now(), id, owner);
    return r.changes === 1;
  }

  async release(id: string, owner: string): Promise<boolean> {
    const now = Date.now();
    const r = this.stmt("UPDATE jobs SET state = 'queued', next_run_at = ?, attempts = MAX(attempts - 1, 0), lease_owner = NULL, updated_at = ? WHERE id = ? AND state = 'running' AND lease_owner = ?")
      .run(now, now, id, owner);
    return r.changes === 1;
  }

  /** After a restart: every operation left running by a dead process goes back to the queue (replay). */
  async recover(deadOwners?: string[]): Promise<number> {
    const now = Date.now();
    if (deadOwners) {
      let n = 0;
      for (const o of deadOwners) n += this.stmt("UPDATE jobs SET state = 'queued', lease_owner = NULL, updated_at = ? WHERE state = 'running' AND lease_owner = ?").run(now, o).changes;
      return n;
    }
    return this.stmt("UPDATE jobs SET state = 'queued', lease_owner = NULL, updated_at = ? WHERE state = 'running'").run(now).changes;
  }

  async counts(): Promise<Record<OperationState, number>> {
    const out: Record<OperationState, number> = { queued: 0, running: 0, succeeded: 0, failed: 0 };
    for (const r of this.stmt('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state').all() as Array<{ state: OperationState; n: number }>) out[r.state] = r.n;
    return out;
  }

  async recent(limit: number, target?: string): Promise<QueuedOperation[]> {
    const rows = target
      ? this.stmt('SELECT * FROM jobs WHERE target = ? ORDER BY seq DESC LIMIT ?').all(target, limit)
      : this.stmt('SELECT * FROM jobs ORDER BY seq DESC LIMIT ?').all(limit);
    return (rows as OperationRow[]).map(fromRow);
  }

  /** Deploy operations not finished yet (their deployments may not exist on a node yet). */
  async pendingDeploys(): Promise<QueuedOperation[]> {
    return (this.stmt("SELECT * FROM jobs WHERE kind = 'deploy' AND state IN ('queued', 'running') ORDER BY seq").all() as OperationRow[]).map(fromRow);
  }

  async hasPendingDeploy(target: string): Promise<boolean> {
    return this.stmt("SELECT 1 FROM jobs WHERE target = ? AND kind = 'deploy' AND state IN ('queued', 'running') LIMIT 1").get(target) !== undefined;
  }

  async nextDueAt(): Promise<number | null> {
    const r = this.stmt("SELECT MIN(next_run_at) AS t FROM jobs WHERE state = 'queued'").get() as { t: number | null };
    return r.t;
  }

  async recordEffect(opId: string): Promise<void> {
    this.stmt('INSERT INTO fake_effects (job_id, runs, at) VALUES (?, 1, ?) ON CONFLICT(job_id) DO UPDATE SET runs = runs + 1').run(opId, Date.now());
  }

  async close(): Promise<void> {
    await this.checkpointer.terminate();
    this.db.pragma('wal_checkpoint(PASSIVE)');
    this.db.close();
  }
}
