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
 *   4b. dedicated — the node carries the label `dedicated=<tenant>` for a tenant other than `req.tenant` (a request
 *                 without a tenant never lands on a dedicated node);
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
 *   Higher is better. With `req.tenant`, a node holding fewer of that tenant's VMs (`tenantVms`) wins first, whatever
 *   the policy: one tenant's apps spread across nodes before they are packed. Ties: fewer VMs (`allocated.vms`) first, then node name ascending (code-unit
 *   order, locale-independent). The result therefore depends only on the set of nodes and the
 *   request — never on the order of the input array — and the same input always gives the same output.
 *
 * Failure: `{ ok: false, reason, filtered }`; `filtered` holds a count for every category above
 * (zeros included) and `reason` lists the non-zero ones, e.g.
 * `no node fits: 1 avoided, 2 down, 1 cordoned, 3 lack label zone=eu, 1 lacks memory (needs 512 MiB, max free 256 MiB)`
 * ("max free" is the largest free amount among the nodes counted in that category). An invalid request
 * (negative or non-finite cpus/memoryMiB) fails with reason `invalid request: ...` and no node counted.
 *
 * This is the one placement path: `ClusterClient` (cluster.ts) calls it with the registry's nodes for every
 * decision, and `bench/sched` measures this same function.
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
  /** VMs per tenant already on the node (tenant-aware spreading). */
  tenantVms?: Record<string, number>;
}

export interface PlacementRequest {
  name: string;
  cpus: number;
  memoryMiB: number;
  /** Required node labels; all must match exactly. */
  labels: Record<string, string>;
  /** Node names to skip, e.g. the node being drained. */
  avoid?: string[];
  /** The tenant asking: dedicated nodes of other tenants are filtered, and its VMs spread first. */
  tenant?: string;
}

export type PlacementResult =
  | { ok: true; node: string; score: number }
  | { ok: false; reason: string; filtered: Record<string, number> };

export interface PlaceOptions { policy?: Policy; now?: number; staleAfterMs?: number }

export const DEFAULT_STALE_AFTER_MS = 30_000;
/** Slack for "fits": need ≤ free + FIT_EPSILON. */
export const FIT_EPSILON = 1e-9;
/** Filter categories in evaluation order (also the order of the failure reason). */
export const FILTER_CATEGORIES = ['avoided', 'down', 'stale', 'cordoned', 'dedicated', 'label', 'cpu', 'memory'] as const;
/** The node label that reserves a node for one tenant's VMs. */
export const DEDICATED_LABEL = 'dedicated';
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
  return { avoided: 0, down: 0, stale: 0, cordoned: 0, dedicated: 0, label: 0, cpu: 0, memory: 0 };
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
  state(avoided: boolean, down: boolean, stale: boolean, cordoned: boolean, dedicated: boolean): boolean {
    this.total++;
    const f = this.filtered;
    if (avoided) { f.avoided++; return false; }
    if (down) { f.down++; return false; }
    if (stale) { f.stale++; return false; }
    if (cordoned) { f.cordoned++; return false; }
    if (dedicated) { f.dedicated++; return false; }
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
    if (f.dedicated) parts.push(`${f.dedicated} dedicated to another tenant`);
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
    const owner = n.labels[DEDICATED_LABEL];
    if (!tally.state(avoid !== null && avoid.has(n.name), n.status === 'down', n.lastHeartbeatAt < staleBefore, n.cordoned, owner !== undefined && owner !== req.tenant)) continue;
    if (!tally.fit(pairs.length === 0 ? -1 : firstMissingLabel(n.labels, pairs), freeCpu, freeMem)) continue;
    const h = headroom(n.capacity.cpus, freeCpu - req.cpus, n.capacity.memoryMiB, freeMem - req.memoryMiB);
    const key = binpack ? -h : h;
    const mine = req.tenant ? (n.tenantVms?.[req.tenant] ?? 0) : 0;
    const bestMine = best && req.tenant ? (best.tenantVms?.[req.tenant] ?? 0) : 0;
    if (best === null || mine < bestMine || (mine === bestMine && (key > bestKey || (key === bestKey && (n.allocated.vms < best.allocated.vms || (n.allocated.vms === best.allocated.vms && n.name < best.name)))))) {
      best = n; bestKey = key; bestHeadroom = h;
    }
  }
  if (best === null) return tally.failure();
  return { ok: true, node: best.name, score: binpack ? 1 - bestHeadroom : bestHeadroom };
}
