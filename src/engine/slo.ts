import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { errorSpec, UserError } from '../errors.js';

/**
 * The SLO definitions of docs/slo.md, as pure functions over raw samples: the control plane (/v1/slo, the page),
 * local mode (`unikctl status --slo`) and the tests all compute the figures here, so there is one meaning of each.
 */

export const SLO_WINDOWS = { '5m': 5 * 60_000, '1h': 3600_000, '24h': 24 * 3600_000, '7d': 7 * 24 * 3600_000, '30d': 30 * 24 * 3600_000 } as const;
/** The windows an operator asks for (5m is only the short burn-rate window). */
export type SloWindow = '1h' | '24h' | '7d' | '30d';
export const API_WINDOWS: readonly SloWindow[] = ['1h', '24h', '7d', '30d'];

/** 0-based index of the nearest-rank p-th percentile among n values: rank ⌈p/100 · n⌉. */
const rankIndex = (n: number, p: number): number => Math.min(n, Math.max(1, Math.ceil((p / 100) * n))) - 1;

/**
 * The k-th smallest of a[lo, hi) (0-based k within the range), found in place by quickselect (Hoare partition,
 * middle pivot): O(n), where sorting a million samples per request would not fit the dashboard's latency budget.
 */
function select(a: Float64Array, lo: number, hi: number, k: number): number {
  let l = lo;
  let r = hi - 1;
  const target = lo + k;
  while (l < r) {
    const pivot = a[(l + r) >>> 1] as number;
    let i = l;
    let j = r;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i] = a[j] as number;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) r = j;
    else if (target >= i) l = i;
    else break;
  }
  return a[target] as number;
}

/** Nearest-rank percentile (p in 0…100) of raw values; null for none. 1…100 → p50 = 50, p95 = 95. */
export function percentile(values: ArrayLike<number>, p: number): number | null {
  const n = values.length;
  if (n === 0) return null;
  return select(Float64Array.from(values), 0, n, rankIndex(n, p));
}

/** p50 and p95 of a[lo, hi), reordering that range in place. */
export function percentiles(a: Float64Array, lo = 0, hi = a.length): { p50: number | null; p95: number | null } {
  const n = hi - lo;
  if (n <= 0) return { p50: null, p95: null };
  const p95 = select(a, lo, hi, rankIndex(n, 95));
  // after selecting p95 everything at or below its index is ≤ it: p50 lies in that part
  return { p50: select(a, lo, lo + rankIndex(n, 95) + 1, rankIndex(n, 50)), p95 };
}

export type DeployOutcome = 'succeeded' | 'platform' | 'user';

/** A finished deploy operation's class: its error code's fault in the error table decides (src/errors.ts). */
export function deployOutcome(code: string | null): DeployOutcome {
  if (code === null) return 'succeeded';
  return errorSpec(code).fault === 'platform' ? 'platform' : 'user';
}

export interface DeployCounts {
  succeeded: number;
  platformFailures: number;
  /** bad input, build failures, cancellations: shown apart, never in the rate */
  userErrors: number;
}

/** succeeded ÷ (succeeded + platform failures); null when neither happened. */
export function deploySuccessRate(c: DeployCounts): number | null {
  const valid = c.succeeded + c.platformFailures;
  return valid === 0 ? null : c.succeeded / valid;
}

export interface Prices {
  /** per vCPU-second */
  vcpuSecond: number;
  /** per GiB-second of VM memory */
  gibSecond: number;
  /** per request through the front */
  request: number;
  currency: string;
}
export const DEFAULT_PRICES: Prices = { vcpuSecond: 0, gibSecond: 0, request: 0, currency: 'USD' };

/** One VM's use: how long it ran in the window with which size. */
export interface VmUse { seconds: number; vcpus: number; memoryMiB: number; }

/** Σ VM-seconds × (vCPUs × price per vCPU-second + GiB × price per GiB-second) + requests × price per request. */
export function cost(uses: readonly VmUse[], requests: number | null, prices: Prices): number {
  let c = 0;
  for (const u of uses) c += u.seconds * (u.vcpus * prices.vcpuSecond + (u.memoryMiB / 1024) * prices.gibSecond);
  return c + (requests ?? 0) * prices.request;
}

/** cost ÷ requests; null when there were none (or no request source exists yet). */
export function costPerRequest(total: number, requests: number | null): number | null {
  return requests === null || requests === 0 ? null : total / requests;
}

export interface Objectives {
  /** boot p95 objective in ms: the boot SLI counts a boot good when it took at most this long */
  bootP95Ms: number;
  /** deploy success objective (0…1) */
  deploySuccess: number;
}
export const DEFAULT_OBJECTIVES: Objectives = { bootP95Ms: 1500, deploySuccess: 0.995 };
/** "p95 ≤ X" as an SLI: at least 95 % of boots take ≤ X, so 5 % is the boot error budget. */
export const BOOT_GOOD_FRACTION = 0.95;

/**
 * Burn rate = the bad fraction ÷ the budget (1 − objective): 1 spends the budget exactly over the SLO period;
 * null without valid events.
 */
export function burnRate(bad: number, valid: number, objective: number): number | null {
  if (valid === 0) return null;
  return bad / valid / (1 - objective);
}

/** The share of the error budget not yet spent in the window: 1 − bad fraction ÷ budget (negative: overspent). */
export function budgetRemaining(bad: number, valid: number, objective: number): number | null {
  const b = burnRate(bad, valid, objective);
  return b === null ? null : 1 - b;
}

/** SRE workbook page alert: both the 1 h and the 5 min burn rate above 14.4 (2 % of a 30-day budget in 1 h). */
export const PAGE_BURN_RATE = 14.4;
export function paging(burn1h: number | null, burn5m: number | null): boolean {
  return burn1h !== null && burn5m !== null && burn1h > PAGE_BURN_RATE && burn5m > PAGE_BURN_RATE;
}

/** Seconds of [start, end ?? now] inside [from, to]. */
export function overlapSeconds(start: number, end: number | null, from: number, to: number): number {
  const a = Math.max(start, from);
  const b = Math.min(end ?? to, to);
  return b > a ? (b - a) / 1000 : 0;
}

/** Which samples a figure covers: undefined = every tenant / app; a tenant's credential always sets its tenant. */
export interface SampleFilter { tenant?: string; app?: string; }

/** Boot samples as columns (a dashboard reads up to millions of them per request). */
export interface BootColumns { at: Float64Array; ms: Float64Array; }
/** `code[i]` is an id the source's `codeName` turns into the error code ('' for a success). */
export interface DeployColumns { at: Float64Array; outcome: Uint8Array; code: Int32Array; codeName(id: number): string; }
export const OUTCOME_CODE: Record<DeployOutcome, number> = { succeeded: 0, platform: 1, user: 2 };
export interface AppUse extends VmUse { tenant: string; app: string; }

/**
 * Where the figures come from: the control plane's durable samples (slo-samples.ts), or local mode's store.
 * Requests come from the services' traffic fronts (local mode: src/runtime/service-controller.ts records what each
 * front served; the control plane: request-feed.ts counts its services' fronts); `requests` answers null where no service ever ran.
 */
export interface SloSource {
  boots(from: number, to: number, f: SampleFilter): BootColumns;
  deploys(from: number, to: number, f: SampleFilter): DeployColumns;
  vmUses(from: number, to: number, f: SampleFilter): AppUse[];
  requests(from: number, to: number, f: SampleFilter): number | null;
}

export interface SloQuery { window: SloWindow; now: number; filter: SampleFilter; prices: Prices; objectives: Objectives; buckets?: number; }

export interface SloReport {
  window: SloWindow;
  from: number;
  to: number;
  filter: { tenant: string | null; app: string | null };
  boot: {
    count: number; p50Ms: number | null; p95Ms: number | null;
    objective: { p95Ms: number; goodFraction: number };
    /** boots within the objective's time */
    good: number;
    budgetRemaining: number | null;
    burnRate: { '1h': number | null; '5m': number | null };
    series: Array<{ t: number; count: number; p50Ms: number | null; p95Ms: number | null }>;
  };
  deploys: {
    succeeded: number; platformFailures: number; userErrors: number; successRate: number | null;
    objective: number; budgetRemaining: number | null;
    burnRate: { '1h': number | null; '5m': number | null };
    platformByCode: Array<{ code: string; count: number }>;
    userByCode: Array<{ code: string; count: number }>;
    series: Array<{ t: number; succeeded: number; platformFailures: number; userErrors: number; successRate: number | null }>;
  };
  cost: {
    currency: string; prices: Prices; total: number; vmSeconds: number; requests: number | null; perRequest: number | null;
    perApp: Array<{ tenant: string; app: string; vmSeconds: number; cost: number }>;
  };
  requests: {
    total: number | null; perSecond: number | null; note: string | null;
    /** per bucket: requests in it and their rate over the bucket (null without a request source) */
    series: Array<{ t: number; requests: number | null; perSecond: number | null }>;
  };
}

export const NO_REQUEST_SOURCE = 'no request data (requests are counted by the fronts of services: deploy with --replicas)';

const byCode = (m: Map<number, number>, name: (id: number) => string): Array<{ code: string; count: number }> =>
  [...m].map(([id, count]) => ({ code: name(id), count })).sort((a, b) => b.count - a.count || a.code.localeCompare(b.code));

/** Every figure of docs/slo.md for one window. */
export function computeSlo(src: SloSource, q: SloQuery): SloReport {
  const span = SLO_WINDOWS[q.window];
  const to = q.now;
  const from = to - span;
  const nb = q.buckets ?? 24;
  const width = span / nb;
  const bucketOf = (at: number): number => Math.min(nb - 1, Math.max(0, Math.floor((at - from) / width)));

  // boots: percentiles overall and per bucket. Boot times are whole milliseconds in practice: then one pass counts
  // them into per-bucket histograms and the nearest rank is read off the counts (exact, O(n + buckets × max)).
  // Otherwise (fractions, huge values) the values are grouped by bucket and selected (quickselect, O(n)).
  const b = src.boots(from, to, q.filter);
  const n = b.ms.length;
  let good = 0;
  let max = 0;
  let whole = true;
  for (let i = 0; i < n; i++) {
    const v = b.ms[i] as number;
    if (v <= q.objectives.bootP95Ms) good++;
    if (v > max) max = v;
    if (whole && !(Number.isInteger(v) && v >= 0)) whole = false;
  }
  const size = max + 1;
  let series: SloReport['boot']['series'];
  let all: { p50: number | null; p95: number | null };
  if (whole && size * (nb + 1) <= Math.max(1 << 16, 4 * n)) {
    const hist = new Uint32Array(size * (nb + 1)); // bucket k at k·size; the whole window at nb·size
    const counts = new Int32Array(nb + 1);
    for (let i = 0; i < n; i++) {
      const k = bucketOf(b.at[i] as number);
      const v = b.ms[i] as number;
      (hist[k * size + v] as number)++;
      (hist[nb * size + v] as number)++;
      (counts[k] as number)++;
    }
    counts[nb] = n;
    const fromCounts = (k: number): { p50: number | null; p95: number | null } => {
      const c = counts[k] as number;
      if (c === 0) return { p50: null, p95: null };
      const r50 = rankIndex(c, 50);
      const r95 = rankIndex(c, 95);
      let p50: number | null = null;
      let seen = 0;
      for (let v = 0; v < size; v++) {
        seen += hist[k * size + v] as number;
        if (p50 === null && seen > r50) p50 = v;
        if (seen > r95) return { p50, p95: v };
      }
      return { p50, p95: max };
    };
    series = Array.from({ length: nb }, (_, k) => ({ t: from + k * width, count: counts[k] as number, ...((p) => ({ p50Ms: p.p50, p95Ms: p.p95 }))(fromCounts(k)) }));
    all = fromCounts(nb);
  } else {
    const starts = new Int32Array(nb + 1);
    for (let i = 0; i < n; i++) (starts[bucketOf(b.at[i] as number) + 1] as number)++;
    for (let k = 0; k < nb; k++) starts[k + 1] = (starts[k + 1] as number) + (starts[k] as number);
    const grouped = new Float64Array(n);
    const fillAt = starts.slice(0, nb);
    for (let i = 0; i < n; i++) grouped[(fillAt[bucketOf(b.at[i] as number)] as number)++] = b.ms[i] as number;
    series = Array.from({ length: nb }, (_, k) => {
      const p = percentiles(grouped, starts[k] as number, starts[k + 1] as number);
      return { t: from + k * width, count: (starts[k + 1] as number) - (starts[k] as number), p50Ms: p.p50, p95Ms: p.p95 };
    });
    all = percentiles(grouped); // a permutation of every value in the window: selection does not care about order
  }
  const bootBurn = (w: number): number | null => {
    const c = w === span ? b : src.boots(to - w, to, q.filter);
    let bad = 0;
    for (let i = 0; i < c.ms.length; i++) if ((c.ms[i] as number) > q.objectives.bootP95Ms) bad++;
    return burnRate(bad, c.ms.length, BOOT_GOOD_FRACTION);
  };

  const d = src.deploys(from, to, q.filter);
  const counts: DeployCounts = { succeeded: 0, platformFailures: 0, userErrors: 0 };
  const dSeries = Array.from({ length: nb }, (_, i) => ({ t: from + i * width, succeeded: 0, platformFailures: 0, userErrors: 0, successRate: null as number | null }));
  const platformCodes = new Map<number, number>();
  const userCodes = new Map<number, number>();
  for (let i = 0; i < d.outcome.length; i++) {
    const s = dSeries[bucketOf(d.at[i] as number)] as (typeof dSeries)[number];
    const o = d.outcome[i];
    const code = d.code[i] as number;
    if (o === OUTCOME_CODE.succeeded) { counts.succeeded++; s.succeeded++; }
    else if (o === OUTCOME_CODE.platform) { counts.platformFailures++; s.platformFailures++; platformCodes.set(code, (platformCodes.get(code) ?? 0) + 1); }
    else { counts.userErrors++; s.userErrors++; userCodes.set(code, (userCodes.get(code) ?? 0) + 1); }
  }
  for (const s of dSeries) s.successRate = deploySuccessRate(s);
  const deployBurn = (w: number): number | null => {
    const c = w === span ? d : src.deploys(to - w, to, q.filter);
    let ok = 0;
    let bad = 0;
    for (const o of c.outcome) {
      if (o === OUTCOME_CODE.succeeded) ok++;
      else if (o === OUTCOME_CODE.platform) bad++;
    }
    return burnRate(bad, ok + bad, q.objectives.deploySuccess);
  };

  const uses = src.vmUses(from, to, q.filter);
  const requests = src.requests(from, to, q.filter);
  const perApp = new Map<string, { tenant: string; app: string; vmSeconds: number; cost: number }>();
  for (const u of uses) {
    const k = `${u.tenant}\0${u.app}`;
    const e = perApp.get(k) ?? { tenant: u.tenant, app: u.app, vmSeconds: 0, cost: 0 };
    e.vmSeconds += u.seconds;
    e.cost += cost([u], null, q.prices);
    perApp.set(k, e);
  }
  const total = cost(uses, requests, q.prices);

  return {
    window: q.window, from, to, filter: { tenant: q.filter.tenant ?? null, app: q.filter.app ?? null },
    boot: {
      count: n, p50Ms: all.p50, p95Ms: all.p95, objective: { p95Ms: q.objectives.bootP95Ms, goodFraction: BOOT_GOOD_FRACTION }, good,
      budgetRemaining: budgetRemaining(n - good, n, BOOT_GOOD_FRACTION),
      burnRate: { '1h': bootBurn(SLO_WINDOWS['1h']), '5m': bootBurn(SLO_WINDOWS['5m']) },
      series,
    },
    deploys: {
      ...counts, successRate: deploySuccessRate(counts), objective: q.objectives.deploySuccess,
      budgetRemaining: budgetRemaining(counts.platformFailures, counts.succeeded + counts.platformFailures, q.objectives.deploySuccess),
      burnRate: { '1h': deployBurn(SLO_WINDOWS['1h']), '5m': deployBurn(SLO_WINDOWS['5m']) },
      platformByCode: byCode(platformCodes, d.codeName), userByCode: byCode(userCodes, d.codeName), series: dSeries,
    },
    cost: {
      currency: q.prices.currency, prices: q.prices, total, vmSeconds: uses.reduce((n, u) => n + u.seconds, 0), requests, perRequest: costPerRequest(total, requests),
      perApp: [...perApp.values()].sort((x, y) => y.cost - x.cost || x.app.localeCompare(y.app)),
    },
    requests: {
      total: requests, perSecond: requests === null ? null : requests / (span / 1000), note: requests === null ? NO_REQUEST_SOURCE : null,
      // per bucket only when the window has requests at all (else every bucket is 0, or null without a source)
      series: Array.from({ length: nb }, (_, k) => {
        const a = from + k * width;
        const r = requests === null ? null : requests === 0 ? 0 : src.requests(a, k === nb - 1 ? to : a + width, q.filter);
        return { t: a, requests: r, perSecond: r === null ? null : r / (width / 1000) };
      }),
    },
  };
}

export interface SloConfig { prices: Prices; objectives: Objectives; }

/**
 * `--slo-config FILE` (YAML or JSON): the price table and the objectives, e.g.
 *   prices: { vcpuSecond: 0.000024, gibSecond: 0.0000025, request: 0.0000004, currency: USD }
 *   objectives: { bootP95Ms: 1500, deploySuccess: 0.995 }
 * Absent fields keep their defaults (prices 0: cost figures are 0 until an operator sets them).
 */
export function parseSloConfig(doc: unknown, where: string): SloConfig {
  const bad = (msg: string): UserError => new UserError('E_INVALID_ARGUMENT', `${where}: ${msg}`, { hint: 'see docs/slo.md for the --slo-config fields' });
  const obj = (v: unknown, name: string): Record<string, unknown> => {
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw bad(`${name} must be a mapping`);
    return v as Record<string, unknown>;
  };
  const root = obj(doc, 'the file');
  for (const k of Object.keys(root)) if (k !== 'prices' && k !== 'objectives') throw bad(`${k} is not a known field (known: prices, objectives)`);
  const num = (o: Record<string, unknown>, k: string, dflt: number, ok: (n: number) => boolean, what: string): number => {
    const v = o[k];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw bad(`${k} must be ${what}`);
    return v;
  };
  const p = obj(root.prices, 'prices');
  const o = obj(root.objectives, 'objectives');
  for (const k of Object.keys(p)) if (!['vcpuSecond', 'gibSecond', 'request', 'currency'].includes(k)) throw bad(`prices.${k} is not a known field`);
  for (const k of Object.keys(o)) if (!['bootP95Ms', 'deploySuccess'].includes(k)) throw bad(`objectives.${k} is not a known field`);
  const price = (k: string): number => num(p, k, 0, (n) => n >= 0, 'a number ≥ 0');
  const currency = p.currency ?? DEFAULT_PRICES.currency;
  if (typeof currency !== 'string' || !/^[A-Za-z]{1,8}$/.test(currency)) throw bad('prices.currency must be a currency code such as USD');
  return {
    prices: { vcpuSecond: price('vcpuSecond'), gibSecond: price('gibSecond'), request: price('request'), currency },
    objectives: {
      bootP95Ms: num(o, 'bootP95Ms', DEFAULT_OBJECTIVES.bootP95Ms, (n) => n > 0, 'a number of milliseconds > 0'),
      deploySuccess: num(o, 'deploySuccess', DEFAULT_OBJECTIVES.deploySuccess, (n) => n > 0 && n < 1, 'a fraction between 0 and 1 (e.g. 0.995)'),
    },
  };
}

/** The price table and objectives of a --slo-config file (unikctld) or UNIKCTL_SLO_CONFIG (local mode); defaults without one. */
export function loadSloConfig(file: string | undefined): SloConfig {
  if (file === undefined) return { prices: DEFAULT_PRICES, objectives: DEFAULT_OBJECTIVES };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError('E_INVALID_ARGUMENT', `--slo-config ${file} cannot be read: ${e instanceof Error ? e.message : String(e)}`);
  }
  let doc: unknown;
  try {
    doc = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new UserError('E_INVALID_ARGUMENT', `--slo-config ${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return parseSloConfig(doc, `--slo-config ${file}`);
}
