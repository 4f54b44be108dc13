/**
 * Placement (CP-6): pick the node a new VM runs on. Pure and synchronous — no I/O, no clock reads
 * unless `now` is omitted (then `Date.now()`).
 *
 * Documented policy
 * -----------------
 * Filters. A node is a candidate only if it passes every filter below. When no node passes, each node
 * is counted once, under the FIRST filter it fails, in this order:
 *   1. avoided  — its name is in `req.avoid` (e.g. the node being drained);
 *   2. down     — `status === 'down'` (missed heartbeats past the grace period);
 *   3. stale    — `lastHeartbeatAt < now - staleAfterMs` (default 30 000 ms) even though status says
 *                 `ready`; a heartbeat exactly `staleAfterMs` old is still fresh;
 *   4. cordoned — `cordoned === true` (not eligible for new placements);
 *   5. label    — it lacks one of `req.labels` (each key must be present with exactly the same value;
 *                 extra node labels are ignored). The reason names, per node, the first missing
 *                 label in key order (code-unit order);
 *   6. cpu      — free CPU (`capacity.cpus - allocated.cpus`, fractions allowed) < `req.cpus`;
 *   7. memory   — free memory (`capacity.memoryMiB - allocated.memoryMiB`) < `req.memoryMiB`.
 *   "Fits" means need ≤ free + 1e-9 (absorbs float residue from summing fractional CPUs), so a
 *   request exactly equal to the free amount fits.
 *
 * Score, computed after the placement (free' = free - need, fraction = free' / capacity, 0 when the
 * capacity is 0):
 *   - `spread` (default): score = min(freeCpuFraction', freeMemFraction') — the node left with the
 *     most headroom on its tightest resource wins (placements spread out);
 *   - `binpack`: score = 1 - min(freeCpuFraction', freeMemFraction') — the fullest node that still
 *     fits wins (nodes fill up one after another).
 *   Higher is better. Ties: fewer VMs (`allocated.vms`) first, then node name ascending (code-unit
 *   order, locale-independent). The result therefore depends only on the set of nodes and the
 *   request — never on the order of the input array — and the same input always gives the same output.
 *
 * Failure: `{ ok: false, reason, filtered }`; `filtered` holds a count for every category above
 * (zeros included) and `reason` lists the non-zero ones, e.g.
 * `no node fits: 1 avoided, 2 down, 1 cordoned, 3 lack label zone=eu, 1 lacks memory (needs 512 MiB, max free 256 MiB)`
 * ("max free" is the largest free amount among the nodes counted in that category). An invalid request
 * (negative or non-finite cpus/memoryMiB) fails with reason `invalid request: ...` and no node counted.
 *
 * `Scheduler` applies exactly the same policy (it returns the same node and score as `place()` over
 * `scheduler.nodes()`), but keeps the cluster in flat typed arrays plus a cache of the nodes matching
 * each label selector, so a placement is one tight O(n) scan (O(matching nodes) for a label selector)
 * that skips the score divisions for nodes provably worse than the best so far, and a failure is
 * explained from typed arrays too. The label cache is rebuilt lazily after a node is added, removed or
 * relabelled; heartbeats (upserts with unchanged labels), commits and releases keep it. `upsertNode` replaces the
 * node's whole record, allocations included (agents report allocations including pending placements);
 * `commit`/`release` adjust allocations and the VM count between upserts; `place` never mutates.
 */

export type Policy = 'spread' | 'binpack';

export interface NodeInfo {
  name: string;
  /** `down` = missed heartbeats past the grace period. */
  status: 'ready' | 'down';
  /** Not eligible for new placements. */
  cordoned: boolean;
  labels: Record<string, string>;
  /** Total. */
  capacity: { cpus: number; memoryMiB: number };
  /** Already placed (including pending placements). */
  allocated: { cpus: number; memoryMiB: number; vms: number };
  lastHeartbeatAt: number;
}

export interface PlacementRequest {
  name: string;
  cpus: number;
  memoryMiB: number;
  /** Required node labels; all must match exactly. */
  labels: Record<string, string>;
  /** Node names to skip, e.g. the node being drained. */
  avoid?: string[];
}

export type PlacementResult =
  | { ok: true; node: string; score: number }
  | { ok: false; reason: string; filtered: Record<string, number> };

export interface PlaceOptions { policy?: Policy; now?: number; staleAfterMs?: number }

export const DEFAULT_STALE_AFTER_MS = 30_000;
/** Slack for "fits": need ≤ free + FIT_EPSILON. */
export const FIT_EPSILON = 1e-9;
/** Filter categories in evaluation order (also the order of the failure reason). */
export const FILTER_CATEGORIES = ['avoided', 'down', 'stale', 'cordoned', 'label', 'cpu', 'memory'] as const;
export type FilterCategory = (typeof FILTER_CATEGORIES)[number];

type LabelPairs = ReadonlyArray<readonly [string, string]>;

function sortedLabelPairs(labels: Record<string, string> | undefined): LabelPairs {
  if (!labels) return [];
  return Object.keys(labels).sort().map((k) => [k, labels[k] as string] as const);
}

/** Index of the first required label the node lacks, or -1 when all match. */
function firstMissingLabel(nodeLabels: Record<string, string>, pairs: LabelPairs): number {
  for (let j = 0; j < pairs.length; j++) {
    const [k, v] = pairs[j] as readonly [string, string];
    if (!Object.prototype.hasOwnProperty.call(nodeLabels, k) || nodeLabels[k] !== v) return j;
  }
  return -1;
}

function validateRequest(req: { cpus: number; memoryMiB: number }): string | null {
  if (typeof req.cpus !== 'number' || !Number.isFinite(req.cpus) || req.cpus < 0) return `cpus must be a finite number >= 0 (got ${String(req.cpus)})`;
  if (typeof req.memoryMiB !== 'number' || !Number.isFinite(req.memoryMiB) || req.memoryMiB < 0) return `memoryMiB must be a finite number >= 0 (got ${String(req.memoryMiB)})`;
  return null;
}

function emptyFiltered(): Record<FilterCategory, number> {
  return { avoided: 0, down: 0, stale: 0, cordoned: 0, label: 0, cpu: 0, memory: 0 };
}

const fmtNum = (x: number): string => String(Math.round(x * 1000) / 1000);

/** Counts nodes per filter category and builds the failure reason. */
class Tally {
  readonly filtered = emptyFiltered();
  private readonly missing: number[];
  private maxFreeCpu = 0;
  private maxFreeMem = 0;
  total = 0;

  constructor(private readonly pairs: LabelPairs, private readonly req: { cpus: number; memoryMiB: number }, private readonly staleAfterMs: number) {
    this.missing = pairs.map(() => 0);
  }

  /** First half of the classification of one node (filters 1-4); false = filtered out and counted. */
  state(avoided: boolean, down: boolean, stale: boolean, cordoned: boolean): boolean {
    this.total++;
    const f = this.filtered;
    if (avoided) { f.avoided++; return false; }
    if (down) { f.down++; return false; }
    if (stale) { f.stale++; return false; }
    if (cordoned) { f.cordoned++; return false; }
    return true;
  }

  /** Second half (filters 5-7), for a node that passed `state`; `miss` = index of its first missing label or -1. */
  fit(miss: number, freeCpu: number, freeMem: number): boolean {
    const f = this.filtered;
    if (miss >= 0) { f.label++; this.missing[miss] = (this.missing[miss] ?? 0) + 1; return false; }
    if (!(freeCpu - this.req.cpus >= -FIT_EPSILON)) { f.cpu++; if (freeCpu > this.maxFreeCpu) this.maxFreeCpu = freeCpu; return false; }
    if (!(freeMem - this.req.memoryMiB >= -FIT_EPSILON)) { f.memory++; if (freeMem > this.maxFreeMem) this.maxFreeMem = freeMem; return false; }
    return true;
  }

  failure(): PlacementResult {
    const f = this.filtered;
    const parts: string[] = [];
    if (this.total === 0) return { ok: false, reason: 'no node fits: no nodes registered', filtered: { ...f } };
    if (f.avoided) parts.push(`${f.avoided} avoided`);
    if (f.down) parts.push(`${f.down} down`);
    if (f.stale) parts.push(`${f.stale} stale (no heartbeat within ${this.staleAfterMs} ms)`);
    if (f.cordoned) parts.push(`${f.cordoned} cordoned`);
    this.pairs.forEach(([k, v], j) => {
      const c = this.missing[j] ?? 0;
      if (c) parts.push(`${c} ${c === 1 ? 'lacks' : 'lack'} label ${k}=${v}`);
    });
    if (f.cpu) parts.push(`${f.cpu} ${f.cpu === 1 ? 'lacks' : 'lack'} cpu (needs ${fmtNum(this.req.cpus)} CPU, max free ${fmtNum(Math.max(0, this.maxFreeCpu))})`);
    if (f.memory) parts.push(`${f.memory} ${f.memory === 1 ? 'lacks' : 'lack'} memory (needs ${fmtNum(this.req.memoryMiB)} MiB, max free ${fmtNum(Math.max(0, this.maxFreeMem))} MiB)`);
    return { ok: false, reason: `no node fits: ${parts.join(', ')}`, filtered: { ...f } };
  }
}

/** min(free CPU fraction, free memory fraction) after placing; `afterCpu`/`afterMem` may be -ε. */
function headroom(capCpu: number, afterCpu: number, capMem: number, afterMem: number): number {
  const c = capCpu > 0 ? (afterCpu > 0 ? afterCpu : 0) / capCpu : 0;
  const m = capMem > 0 ? (afterMem > 0 ? afterMem : 0) / capMem : 0;
  return c < m ? c : m;
}

function invalid(msg: string): PlacementResult {
  return { ok: false, reason: `invalid request: ${msg}`, filtered: { ...emptyFiltered() } };
}

/** Picks a node for `req` among `nodes` (see the policy at the top of this file). O(n); does not mutate. */
export function place(nodes: readonly NodeInfo[], req: PlacementRequest, opts: PlaceOptions = {}): PlacementResult {
  const bad = validateRequest(req);
  if (bad) return invalid(bad);
  const binpack = (opts.policy ?? 'spread') === 'binpack';
  const now = opts.now ?? Date.now();
  const staleAfterMs = opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const staleBefore = now - staleAfterMs;
  const pairs = sortedLabelPairs(req.labels);
  const avoid = req.avoid && req.avoid.length > 0 ? new Set(req.avoid) : null;
  const tally = new Tally(pairs, req, staleAfterMs);
  let best: NodeInfo | null = null;
  let bestKey = -Infinity;
  let bestHeadroom = 0;
  for (const n of nodes) {
    const freeCpu = n.capacity.cpus - n.allocated.cpus;
    const freeMem = n.capacity.memoryMiB - n.allocated.memoryMiB;
    if (!tally.state(avoid !== null && avoid.has(n.name), n.status === 'down', n.lastHeartbeatAt < staleBefore, n.cordoned)) continue;
    if (!tally.fit(pairs.length === 0 ? -1 : firstMissingLabel(n.labels, pairs), freeCpu, freeMem)) continue;
    const h = headroom(n.capacity.cpus, freeCpu - req.cpus, n.capacity.memoryMiB, freeMem - req.memoryMiB);
    const key = binpack ? -h : h;
    if (best === null || key > bestKey || (key === bestKey && (n.allocated.vms < best.allocated.vms || (n.allocated.vms === best.allocated.vms && n.name < best.name)))) {
      best = n; bestKey = key; bestHeadroom = h;
    }
  }
  if (best === null) return tally.failure();
  return { ok: true, node: best.name, score: binpack ? 1 - bestHeadroom : bestHeadroom };
}

const F_DOWN = 1;
const F_CORDONED = 2;
const F_AVOID = 4;
const LABEL_CACHE_MAX = 256;
/** Relative margins that make the pruning comparisons immune to rounding (a few ulps are ~1e-16). */
const PRUNE_LO = 1 - 1e-12;
const PRUNE_HI = 1 + 1e-12;

/** Nodes matching one label selector: their slots, and for every slot the index of its first missing label (-1 = match). */
interface SelectorMatch { slots: Int32Array; missing: Int32Array }

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!Object.prototype.hasOwnProperty.call(b, k) || a[k] !== b[k]) return false;
  return true;
}

function checkAmount(what: string, req: { cpus: number; memoryMiB: number }): void {
  const bad = validateRequest(req);
  if (bad) throw new RangeError(`${what}: ${bad}`);
}

/**
 * Cluster-wide placement index. Same policy and results as `place()`; see the header of this file.
 * Nodes live in parallel typed arrays (slot i = one node); removal swaps the last slot into the hole.
 */
export class Scheduler {
  private readonly policy: Policy;
  private readonly staleAfterMs: number;
  private size = 0;
  private names: string[] = [];
  private labels: Record<string, string>[] = [];
  private capCpu = new Float64Array(64);
  private capMem = new Float64Array(64);
  private allocCpu = new Float64Array(64);
  private allocMem = new Float64Array(64);
  private vms = new Float64Array(64);
  private hb = new Float64Array(64);
  private flags = new Uint8Array(64);
  private readonly slotOf = new Map<string, number>();
  /** Canonical label selector → its matches. Cleared on structural change (node added, removed or relabelled). */
  private readonly labelCache = new Map<string, SelectorMatch>();

  constructor(opts: { policy?: Policy; staleAfterMs?: number } = {}) {
    this.policy = opts.policy ?? 'spread';
    this.staleAfterMs = opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  }

  private grow(): void {
    const cap = this.capCpu.length * 2;
    const f64 = (a: Float64Array): Float64Array<ArrayBuffer> => { const b = new Float64Array(cap); b.set(a); return b; };
    this.capCpu = f64(this.capCpu); this.capMem = f64(this.capMem);
    this.allocCpu = f64(this.allocCpu); this.allocMem = f64(this.allocMem);
    this.vms = f64(this.vms); this.hb = f64(this.hb);
    const fl = new Uint8Array(cap); fl.set(this.flags); this.flags = fl;
  }

  /**
   * Adds a node or replaces its whole record (status, cordon, labels, capacity, allocations, heartbeat).
   * Throws (and changes nothing) on a missing name, or a negative or non-finite amount or heartbeat.
   */
  upsertNode(n: NodeInfo): void {
    if (typeof n.name !== 'string' || n.name === '') throw new TypeError('node name must be a non-empty string');
    for (const [k, v] of [['capacity.cpus', n.capacity.cpus], ['capacity.memoryMiB', n.capacity.memoryMiB], ['allocated.cpus', n.allocated.cpus],
      ['allocated.memoryMiB', n.allocated.memoryMiB], ['allocated.vms', n.allocated.vms]] as const) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`node ${n.name}: ${k} must be a finite number >= 0 (got ${String(v)})`);
    }
    if (typeof n.lastHeartbeatAt !== 'number' || !Number.isFinite(n.lastHeartbeatAt)) throw new RangeError(`node ${n.name}: lastHeartbeatAt must be a finite number`);
    let i = this.slotOf.get(n.name);
    if (i === undefined) {
      if (this.size === this.capCpu.length) this.grow();
      i = this.size++;
      this.slotOf.set(n.name, i);
      this.names[i] = n.name;
      this.labels[i] = { ...n.labels };
      this.labelCache.clear();
    } else if (!sameLabels(this.labels[i] as Record<string, string>, n.labels)) {
      this.labels[i] = { ...n.labels };
      this.labelCache.clear();
    }
    this.capCpu[i] = n.capacity.cpus; this.capMem[i] = n.capacity.memoryMiB;
    this.allocCpu[i] = n.allocated.cpus; this.allocMem[i] = n.allocated.memoryMiB; this.vms[i] = n.allocated.vms;
    this.hb[i] = n.lastHeartbeatAt;
    this.flags[i] = (n.status === 'down' ? F_DOWN : 0) | (n.cordoned ? F_CORDONED : 0);
  }

  /** Forgets a node; unknown names are ignored. */
  removeNode(name: string): void {
    const i = this.slotOf.get(name);
    if (i === undefined) return;
    const last = this.size - 1;
    if (i !== last) {
      const moved = this.names[last] as string;
      this.names[i] = moved; this.labels[i] = this.labels[last] as Record<string, string>;
      this.capCpu[i] = this.capCpu[last] as number; this.capMem[i] = this.capMem[last] as number;
      this.allocCpu[i] = this.allocCpu[last] as number; this.allocMem[i] = this.allocMem[last] as number;
      this.vms[i] = this.vms[last] as number; this.hb[i] = this.hb[last] as number; this.flags[i] = this.flags[last] as number;
      this.slotOf.set(moved, i);
    }
    this.names.length = last; this.labels.length = last;
    this.flags[last] = 0;
    this.slotOf.delete(name);
    this.size = last;
    this.labelCache.clear();
  }

  private match(pairs: LabelPairs): SelectorMatch {
    const key = JSON.stringify(pairs);
    let m = this.labelCache.get(key);
    if (m === undefined) {
      const missing = new Int32Array(this.size);
      const out: number[] = [];
      for (let i = 0; i < this.size; i++) {
        const j = firstMissingLabel(this.labels[i] as Record<string, string>, pairs);
        missing[i] = j;
        if (j < 0) out.push(i);
      }
      m = { slots: Int32Array.from(out), missing };
      if (this.labelCache.size >= LABEL_CACHE_MAX) this.labelCache.clear();
      this.labelCache.set(key, m);
    }
    return m;
  }

  /** Picks a node for `req`; does not change any allocation (call `commit` to reserve). */
  place(req: PlacementRequest, now: number = Date.now()): PlacementResult {
    const bad = validateRequest(req);
    if (bad) return invalid(bad);
    const pairs = sortedLabelPairs(req.labels);
    const sel = pairs.length > 0 ? this.match(pairs) : null;
    const avoided: number[] = [];
    if (req.avoid) {
      for (const a of req.avoid) {
        const s = this.slotOf.get(a);
        if (s !== undefined && ((this.flags[s] as number) & F_AVOID) === 0) { this.flags[s] = (this.flags[s] as number) | F_AVOID; avoided.push(s); }
      }
    }
    const staleBefore = now - this.staleAfterMs;
    let best: number;
    try {
      best = this.policy === 'binpack'
        ? this.scanBinpack(sel ? sel.slots : null, req.cpus, req.memoryMiB, staleBefore)
        : this.scanSpread(sel ? sel.slots : null, req.cpus, req.memoryMiB, staleBefore);
      if (best < 0) return this.explain(pairs, sel, req, staleBefore);
    } finally {
      for (const s of avoided) this.flags[s] = (this.flags[s] as number) & ~F_AVOID;
    }
    const h = headroom(this.capCpu[best] as number, (this.capCpu[best] as number) - (this.allocCpu[best] as number) - req.cpus,
      this.capMem[best] as number, (this.capMem[best] as number) - (this.allocMem[best] as number) - req.memoryMiB);
    return { ok: true, node: this.names[best] as string, score: this.policy === 'binpack' ? 1 - h : h };
  }

  /*
   * The hot loops: best slot among `list` (or all slots), -1 if none fits. Same filters, score and
   * tie-breaks as place(); before dividing, a node is skipped when a multiplication already proves its
   * score is strictly worse than the best so far (PRUNE_* keep the proof safe from rounding), so most
   * nodes cost no division and the result is bit-for-bit the one place() returns.
   */
  private scanSpread(list: Int32Array | null, cpus: number, mem: number, staleBefore: number): number {
    const { flags, hb, capCpu, capMem, allocCpu, allocMem, vms, names } = this;
    const m = list ? list.length : this.size;
    let best = -1;
    let bestH = -Infinity;
    for (let k = 0; k < m; k++) {
      const i = list ? (list[k] as number) : k;
      if ((flags[i] as number) !== 0 || (hb[i] as number) < staleBefore) continue;
      const cc = capCpu[i] as number;
      const ac = cc - (allocCpu[i] as number) - cpus;
      if (!(ac >= -FIT_EPSILON)) continue;
      const cm = capMem[i] as number;
      const am = cm - (allocMem[i] as number) - mem;
      if (!(am >= -FIT_EPSILON)) continue;
      if (bestH > 0) {
        // score = min(ac/cc, am/cm) < bestH for sure (a zero capacity scores 0 < bestH too)
        const t = bestH * PRUNE_LO;
        if (ac < t * cc || am < t * cm) continue;
      }
      const c = cc > 0 ? (ac > 0 ? ac : 0) / cc : 0;
      const mm = cm > 0 ? (am > 0 ? am : 0) / cm : 0;
      const h = c < mm ? c : mm;
      if (h > bestH) { best = i; bestH = h; continue; }
      if (h === bestH) {
        const v = vms[i] as number;
        const bv = vms[best] as number;
        if (v < bv || (v === bv && (names[i] as string) < (names[best] as string))) best = i;
      }
    }
    return best;
  }

  private scanBinpack(list: Int32Array | null, cpus: number, mem: number, staleBefore: number): number {
    const { flags, hb, capCpu, capMem, allocCpu, allocMem, vms, names } = this;
    const m = list ? list.length : this.size;
    let best = -1;
    let bestH = Infinity;
    for (let k = 0; k < m; k++) {
      const i = list ? (list[k] as number) : k;
      if ((flags[i] as number) !== 0 || (hb[i] as number) < staleBefore) continue;
      const cc = capCpu[i] as number;
      const ac = cc - (allocCpu[i] as number) - cpus;
      if (!(ac >= -FIT_EPSILON)) continue;
      const cm = capMem[i] as number;
      const am = cm - (allocMem[i] as number) - mem;
      if (!(am >= -FIT_EPSILON)) continue;
      if (best >= 0 && cc > 0 && cm > 0) { // (a zero capacity scores 0: never pruned here)
        // score' = min(ac/cc, am/cm) > bestH for sure → emptier than the best so far
        const u = bestH * PRUNE_HI;
        if (ac > u * cc && am > u * cm) continue;
      }
      const c = cc > 0 ? (ac > 0 ? ac : 0) / cc : 0;
      const mm = cm > 0 ? (am > 0 ? am : 0) / cm : 0;
      const h = c < mm ? c : mm;
      if (h < bestH) { best = i; bestH = h; continue; }
      if (h === bestH) {
        const v = vms[i] as number;
        const bv = vms[best] as number;
        if (v < bv || (v === bv && (names[i] as string) < (names[best] as string))) best = i;
      }
    }
    return best;
  }

  /** Failure path (O(n)): classify every node for the reason. Avoid flags are still set by the caller. */
  private explain(pairs: LabelPairs, sel: SelectorMatch | null, req: PlacementRequest, staleBefore: number): PlacementResult {
    const tally = new Tally(pairs, req, this.staleAfterMs);
    for (let i = 0; i < this.size; i++) {
      const fl = this.flags[i] as number;
      if (!tally.state((fl & F_AVOID) !== 0, (fl & F_DOWN) !== 0, (this.hb[i] as number) < staleBefore, (fl & F_CORDONED) !== 0)) continue;
      tally.fit(sel ? (sel.missing[i] as number) : -1, (this.capCpu[i] as number) - (this.allocCpu[i] as number), (this.capMem[i] as number) - (this.allocMem[i] as number));
    }
    return tally.failure();
  }

  private slotOrThrow(node: string): number {
    const i = this.slotOf.get(node);
    if (i === undefined) throw new Error(`unknown node ${node}`);
    return i;
  }

  /** Reserves `req` on `node` (after a successful placement): allocations += req, VMs += 1. Not re-checked against capacity. */
  commit(node: string, req: { cpus: number; memoryMiB: number }): void {
    checkAmount('commit', req);
    const i = this.slotOrThrow(node);
    this.allocCpu[i] = (this.allocCpu[i] as number) + req.cpus;
    this.allocMem[i] = (this.allocMem[i] as number) + req.memoryMiB;
    this.vms[i] = (this.vms[i] as number) + 1;
  }

  /** Returns `req` from `node`: allocations -= req, VMs -= 1, each clamped at 0. */
  release(node: string, req: { cpus: number; memoryMiB: number }): void {
    checkAmount('release', req);
    const i = this.slotOrThrow(node);
    this.allocCpu[i] = Math.max(0, (this.allocCpu[i] as number) - req.cpus);
    this.allocMem[i] = Math.max(0, (this.allocMem[i] as number) - req.memoryMiB);
    this.vms[i] = Math.max(0, (this.vms[i] as number) - 1);
  }

  /** Snapshot of every node (fresh objects, current allocations), sorted by name. */
  nodes(): NodeInfo[] {
    const out: NodeInfo[] = [];
    for (let i = 0; i < this.size; i++) {
      const fl = this.flags[i] as number;
      out.push({
        name: this.names[i] as string,
        status: (fl & F_DOWN) !== 0 ? 'down' : 'ready',
        cordoned: (fl & F_CORDONED) !== 0,
        labels: { ...(this.labels[i] as Record<string, string>) },
        capacity: { cpus: this.capCpu[i] as number, memoryMiB: this.capMem[i] as number },
        allocated: { cpus: this.allocCpu[i] as number, memoryMiB: this.allocMem[i] as number, vms: this.vms[i] as number },
        lastHeartbeatAt: this.hb[i] as number,
      });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}
