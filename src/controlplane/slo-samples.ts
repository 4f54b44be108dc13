import type Database from 'better-sqlite3';
import type { RequestCounter } from './request-counter.js';
import { statementCache } from './statements.js';
import {
  OUTCOME_CODE, overlapSeconds, type AppUse, type BootColumns, type DeployColumns, type DeployOutcome, type SampleFilter, type SloSource,
} from '../engine/slo.js';

export interface BootSample { at: number; tenant: string; app: string; version: string; node: string; accel: string; ms: number; }
export interface DeploySample { at: number; tenant: string; app: string; outcome: DeployOutcome; code: string | null; }
export interface VmStart { deployment: string; tenant: string; app: string; node: string; vcpus: number; memoryMiB: number; at: number; }

/** A growable column of numbers (a million samples stay a few typed arrays, scanned in milliseconds). */
class Column<T extends Float64Array | Int32Array | Uint8Array> {
  length = 0;
  constructor(public data: T, private readonly make: (n: number) => T) {}
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = this.make(Math.max(1024, this.data.length * 2));
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  clear(): void { this.length = 0; }
}
const f64 = (): Column<Float64Array> => new Column(new Float64Array(1024), (n) => new Float64Array(n));
const i32 = (): Column<Int32Array> => new Column(new Int32Array(1024), (n) => new Int32Array(n));
const u8 = (): Column<Uint8Array> => new Column(new Uint8Array(1024), (n) => new Uint8Array(n));

/** The values of `src` at `idx`, in a new array of the same kind. */
function gather<T extends Float64Array | Int32Array | Uint8Array>(src: T, idx: Int32Array): T {
  const out = new (src.constructor as new (n: number) => T)(idx.length);
  for (let j = 0; j < idx.length; j++) out[j] = src[idx[j] as number] as number;
  return out;
}

/** Strings (tenants, apps, codes) as small integers, so filtering compares numbers. */
class Interner {
  private readonly ids = new Map<string, number>();
  readonly names: string[] = [];
  id(s: string): number {
    let i = this.ids.get(s);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(s);
      this.ids.set(s, i);
    }
    return i;
  }
  find(s: string | undefined): number | undefined {
    return s === undefined ? undefined : (this.ids.get(s) ?? -1);
  }
}


/**
 * The SLO samples (docs/slo.md), durable in SQLite: every boot, every finished deploy operation, every VM's life
 * (for VM-seconds), and the request counts a front feeds. On the SQLite store they live in the journal's database;
 * on etcd each replica keeps its own samples.db (the replica that ran an operation recorded it). Percentiles are
 * computed from the raw samples, held as columns in memory too (loaded at start) so a 30-day query over a million
 * samples is one scan. Samples older than the retention are deleted at start and hourly.
 */
export class SloSamples implements SloSource, RequestCounter {
  private readonly names = new Interner();
  private readonly boot = { at: f64(), ms: f64(), tenant: i32(), app: i32() };
  private readonly dep = { at: f64(), outcome: u8(), code: i32(), tenant: i32(), app: i32() };
  private source = false;
  private bootSorted = true;
  private depSorted = true;

  private readonly stmt: (sql: string) => Database.Statement;

  constructor(private readonly db: Database.Database, readonly retentionMs: number) {
    this.stmt = statementCache(db);
    db.exec(`
      CREATE TABLE IF NOT EXISTS slo_boots (at INTEGER NOT NULL, tenant TEXT NOT NULL, app TEXT NOT NULL, version TEXT NOT NULL, node TEXT NOT NULL, accel TEXT NOT NULL, ms REAL NOT NULL);
      CREATE INDEX IF NOT EXISTS slo_boots_at ON slo_boots(at);
      CREATE TABLE IF NOT EXISTS slo_deploys (at INTEGER NOT NULL, tenant TEXT NOT NULL, app TEXT NOT NULL, outcome TEXT NOT NULL, code TEXT);
      CREATE INDEX IF NOT EXISTS slo_deploys_at ON slo_deploys(at);
      CREATE TABLE IF NOT EXISTS slo_vms (id INTEGER PRIMARY KEY AUTOINCREMENT, deployment TEXT NOT NULL, tenant TEXT NOT NULL, app TEXT NOT NULL, node TEXT NOT NULL,
        vcpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER);
      CREATE INDEX IF NOT EXISTS slo_vms_open ON slo_vms(deployment, ended_at);
      CREATE TABLE IF NOT EXISTS slo_requests (at INTEGER NOT NULL, tenant TEXT NOT NULL, app TEXT NOT NULL, n INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS slo_requests_at ON slo_requests(at);
    `);
    this.prune();
  }

  /** Deletes samples older than the retention (VMs that ended before it) and reloads the in-memory columns. */
  prune(now = Date.now()): void {
    const cut = now - this.retentionMs;
    this.db.transaction(() => {
      this.stmt('DELETE FROM slo_boots WHERE at < ?').run(cut);
      this.stmt('DELETE FROM slo_deploys WHERE at < ?').run(cut);
      this.stmt('DELETE FROM slo_vms WHERE ended_at IS NOT NULL AND ended_at < ?').run(cut);
      this.stmt('DELETE FROM slo_requests WHERE at < ?').run(cut);
    })();
    for (const c of [...Object.values(this.boot), ...Object.values(this.dep)]) c.clear();
    this.bootSorted = true;
    this.depSorted = true;
    for (const r of this.stmt('SELECT at, tenant, app, ms FROM slo_boots ORDER BY at').iterate() as IterableIterator<{ at: number; tenant: string; app: string; ms: number }>) this.pushBoot(r);
    for (const r of this.stmt('SELECT at, tenant, app, outcome, code FROM slo_deploys ORDER BY at').iterate() as IterableIterator<{ at: number; tenant: string; app: string; outcome: DeployOutcome; code: string | null }>) this.pushDeploy(r);
  }

  private pushBoot(s: { at: number; tenant: string; app: string; ms: number }): void {
    if (this.boot.at.length > 0 && s.at < (this.boot.at.data[this.boot.at.length - 1] as number)) this.bootSorted = false;
    this.boot.at.push(s.at);
    this.boot.ms.push(s.ms);
    this.boot.tenant.push(this.names.id(s.tenant));
    this.boot.app.push(this.names.id(s.app));
  }

  private pushDeploy(s: { at: number; tenant: string; app: string; outcome: DeployOutcome; code: string | null }): void {
    if (this.dep.at.length > 0 && s.at < (this.dep.at.data[this.dep.at.length - 1] as number)) this.depSorted = false;
    this.dep.at.push(s.at);
    this.dep.outcome.push(OUTCOME_CODE[s.outcome]);
    this.dep.code.push(this.names.id(s.code ?? ''));
    this.dep.tenant.push(this.names.id(s.tenant));
    this.dep.app.push(this.names.id(s.app));
  }

  recordBoot(s: BootSample): void {
    this.stmt('INSERT INTO slo_boots (at, tenant, app, version, node, accel, ms) VALUES (?, ?, ?, ?, ?, ?, ?)').run(s.at, s.tenant, s.app, s.version, s.node, s.accel, s.ms);
    this.pushBoot(s);
  }

  /** Whether a boot of this app that started at `at` is recorded (a replica's boot is recorded once, whenever seen). */
  hasBoot(tenant: string, app: string, at: number): boolean {
    return this.stmt('SELECT 1 FROM slo_boots WHERE at = ? AND tenant = ? AND app = ?').get(at, tenant, app) !== undefined;
  }

  /** Many boots in one transaction (benchmarks and imports). */
  recordBoots(list: readonly BootSample[]): void {
    this.db.transaction(() => { for (const s of list) this.stmt('INSERT INTO slo_boots (at, tenant, app, version, node, accel, ms) VALUES (?, ?, ?, ?, ?, ?, ?)').run(s.at, s.tenant, s.app, s.version, s.node, s.accel, s.ms); })();
    for (const s of list) this.pushBoot(s);
  }

  recordDeploy(s: DeploySample): void {
    this.stmt('INSERT INTO slo_deploys (at, tenant, app, outcome, code) VALUES (?, ?, ?, ?, ?)').run(s.at, s.tenant, s.app, s.outcome, s.code);
    this.pushDeploy(s);
  }

  /** Many deploy outcomes in one transaction (benchmarks and imports). */
  recordDeploys(list: readonly DeploySample[]): void {
    this.db.transaction(() => { for (const s of list) this.stmt('INSERT INTO slo_deploys (at, tenant, app, outcome, code) VALUES (?, ?, ?, ?, ?)').run(s.at, s.tenant, s.app, s.outcome, s.code); })();
    for (const s of list) this.pushDeploy(s);
  }

  /**
   * A VM came up: its VM-seconds count from now until vmEnded (a replayed start of the same life is ignored).
   * Returns whether this was a new life.
   */
  vmStarted(v: VmStart): boolean {
    if (this.stmt('SELECT 1 FROM slo_vms WHERE deployment = ? AND ended_at IS NULL').get(v.deployment) !== undefined) return false;
    this.stmt('INSERT INTO slo_vms (deployment, tenant, app, node, vcpus, memory_mib, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(v.deployment, v.tenant, v.app, v.node, v.vcpus, v.memoryMiB, v.at);
    return true;
  }

  /** Deployments whose VM life is open (started, not ended). */
  openLives(): string[] {
    return (this.stmt('SELECT deployment FROM slo_vms WHERE ended_at IS NULL').all() as Array<{ deployment: string }>).map((r) => r.deployment);
  }

  /** The size of the last VM recorded for an app (a service's next replica after a restart of unikctld), or null. */
  lastSize(tenant: string, app: string): { vcpus: number; memoryMiB: number } | null {
    const r = this.stmt('SELECT vcpus, memory_mib FROM slo_vms WHERE tenant = ? AND app = ? ORDER BY id DESC LIMIT 1').get(tenant, app) as { vcpus: number; memory_mib: number } | undefined;
    return r ? { vcpus: r.vcpus, memoryMiB: r.memory_mib } : null;
  }

  vmEnded(deployment: string, at: number): void {
    this.stmt('UPDATE slo_vms SET ended_at = ? WHERE deployment = ? AND ended_at IS NULL').run(at, deployment);
  }

  get attached(): boolean { return this.source; }
  attach(): void { this.source = true; }
  count(tenant: string, app: string, n: number, at: number): void {
    this.stmt('INSERT INTO slo_requests (at, tenant, app, n) VALUES (?, ?, ?, ?)').run(at, tenant, app, n);
  }

  /**
   * Columns stay ordered by time (loaded ORDER BY at; new samples are the newest), so a window is a binary-searched
   * range. A sample recorded out of order (an import) makes the next read sort the columns once.
   */
  private ordered<C extends Record<string, Column<Float64Array | Int32Array | Uint8Array>>>(cols: C & { at: Column<Float64Array> }, flag: 'bootSorted' | 'depSorted'): void {
    if (this[flag]) return;
    const n = cols.at.length;
    const at = cols.at.data;
    const idx = Int32Array.from({ length: n }, (_, i) => i).sort((x, y) => (at[x] as number) - (at[y] as number));
    for (const c of Object.values(cols)) {
      const copy = c.data.slice(0, n);
      for (let i = 0; i < n; i++) c.data[i] = copy[idx[i] as number] as number;
    }
    this[flag] = true;
  }

  /** Index range [lo, hi) of the samples with from ≤ at < to in a time-ordered column. */
  private static range(at: Float64Array, length: number, from: number, to: number): [number, number] {
    const lower = (x: number): number => {
      let lo = 0;
      let hi = length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((at[mid] as number) < x) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    return [lower(from), lower(to)];
  }

  /** Indices in [lo, hi) of the samples the filter keeps (an unknown tenant or app keeps none). */
  private kept(cols: { tenant: Column<Int32Array>; app: Column<Int32Array> }, lo: number, hi: number, f: SampleFilter): Int32Array {
    const t = this.names.find(f.tenant) ?? -2;
    const a = this.names.find(f.app) ?? -2;
    const td = cols.tenant.data;
    const ad = cols.app.data;
    const out = new Int32Array(hi - lo);
    let k = 0;
    for (let i = lo; i < hi; i++) if ((t === -2 || td[i] === t) && (a === -2 || ad[i] === a)) out[k++] = i;
    return out.subarray(0, k);
  }

  boots(from: number, to: number, f: SampleFilter): BootColumns {
    this.ordered(this.boot, 'bootSorted');
    const { at, ms } = this.boot;
    const [lo, hi] = SloSamples.range(at.data, at.length, from, to);
    // views, not copies: the figures only read them (and the next append may reallocate, never rewrite, the arrays)
    if (f.tenant === undefined && f.app === undefined) return { at: at.data.subarray(lo, hi), ms: ms.data.subarray(lo, hi) };
    const idx = this.kept(this.boot, lo, hi, f);
    return { at: gather(at.data, idx), ms: gather(ms.data, idx) };
  }

  deploys(from: number, to: number, f: SampleFilter): DeployColumns {
    this.ordered(this.dep, 'depSorted');
    const { at, outcome, code } = this.dep;
    const [lo, hi] = SloSamples.range(at.data, at.length, from, to);
    const codeName = (id: number): string => this.names.names[id] ?? '';
    if (f.tenant === undefined && f.app === undefined) return { at: at.data.subarray(lo, hi), outcome: outcome.data.subarray(lo, hi), code: code.data.subarray(lo, hi), codeName };
    const idx = this.kept(this.dep, lo, hi, f);
    return { at: gather(at.data, idx), outcome: gather(outcome.data, idx), code: gather(code.data, idx), codeName };
  }

  vmUses(from: number, to: number, f: SampleFilter): AppUse[] {
    const rows = this.stmt('SELECT tenant, app, vcpus, memory_mib, started_at, ended_at FROM slo_vms WHERE started_at < ? AND (ended_at IS NULL OR ended_at > ?)')
      .all(to, from) as Array<{ tenant: string; app: string; vcpus: number; memory_mib: number; started_at: number; ended_at: number | null }>;
    return rows
      .filter((r) => (f.tenant === undefined || r.tenant === f.tenant) && (f.app === undefined || r.app === f.app))
      .map((r) => ({ tenant: r.tenant, app: r.app, vcpus: r.vcpus, memoryMiB: r.memory_mib, seconds: overlapSeconds(r.started_at, r.ended_at, from, to) }));
  }

  requests(from: number, to: number, f: SampleFilter): number | null {
    if (!this.source) return null;
    const r = this.stmt(`SELECT COALESCE(SUM(n), 0) AS n FROM slo_requests WHERE at >= ? AND at < ?${f.tenant !== undefined ? ' AND tenant = ?' : ''}${f.app !== undefined ? ' AND app = ?' : ''}`)
      .get(from, to, ...(f.tenant !== undefined ? [f.tenant] : []), ...(f.app !== undefined ? [f.app] : [])) as { n: number };
    return r.n;
  }
}

/** The samples' retention, `--slo-retention`: `30d`, `12h`, `90m` (at least one hour: the burn-rate window). */
export function parseRetention(v: string): number | null {
  const m = /^(\d+)(m|h|d)$/.exec(v.trim());
  if (!m) return null;
  const ms = Number(m[1]) * ({ m: 60_000, h: 3600_000, d: 86_400_000 } as const)[m[2] as 'm' | 'h' | 'd'];
  return ms >= 3600_000 ? ms : null;
}
