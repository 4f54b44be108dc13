import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SloSamples, parseRetention } from './slo-samples.js';
import {
  budgetRemaining, burnRate, computeSlo, cost, costPerRequest, DEFAULT_OBJECTIVES, deployOutcome, deploySuccessRate, paging, percentile,
  type Prices,
} from '../engine/slo.js';

const HOUR = 3600_000;
const prices: Prices = { vcpuSecond: 1e-5, gibSecond: 2e-6, request: 0, currency: 'USD' };
const samples = (retentionMs = 30 * 24 * HOUR): SloSamples => new SloSamples(new Database(':memory:'), retentionMs);
const boot = (at: number, ms: number, tenant = '', app = 'web') => ({ at, ms, tenant, app, version: 'v1', node: 'local', accel: 'tcg' });

describe('SLO arithmetic (docs/slo.md)', () => {
  it('boots of 1…100 ms: p50 50, p95 95; an empty window: null', () => {
    const ms = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(ms, 50)).toBe(50);
    expect(percentile(ms, 95)).toBe(95);
    expect(percentile([], 50)).toBeNull();

    const now = Date.now();
    const s = samples();
    s.recordBoots(ms.map((v, i) => boot(now - 1000 - i, v)));
    const r = computeSlo(s, { window: '1h', now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES });
    expect([r.boot.count, r.boot.p50Ms, r.boot.p95Ms]).toEqual([100, 50, 95]);
    const empty = computeSlo(samples(), { window: '1h', now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES });
    expect([empty.boot.p50Ms, empty.boot.p95Ms, empty.boot.budgetRemaining, empty.deploys.successRate, empty.cost.perRequest]).toEqual([null, null, null, null, null]);
  });

  it('3 succeeded + 1 boot timeout + 1 build failure: 75 %, the build failure listed apart', () => {
    expect(deployOutcome('E_BOOT_TIMEOUT')).toBe('platform');
    expect(deployOutcome('E_BUILD_FAILED')).toBe('user');
    expect(deploySuccessRate({ succeeded: 3, platformFailures: 1, userErrors: 1 })).toBe(0.75);

    const now = Date.now();
    const s = samples();
    for (const code of [null, null, null, 'E_BOOT_TIMEOUT', 'E_BUILD_FAILED']) s.recordDeploy({ at: now - 60_000, tenant: '', app: 'web', outcome: deployOutcome(code), code });
    const r = computeSlo(s, { window: '24h', now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES });
    expect(r.deploys.successRate).toBe(0.75);
    expect(r.deploys.platformByCode).toEqual([{ code: 'E_BOOT_TIMEOUT', count: 1 }]);
    expect(r.deploys.userByCode).toEqual([{ code: 'E_BUILD_FAILED', count: 1 }]);
    expect([r.deploys.succeeded, r.deploys.platformFailures, r.deploys.userErrors]).toEqual([3, 1, 1]);
    // 25 % bad against a 0.5 % budget: burning 50× the budget, 49 budgets overspent
    expect(r.deploys.burnRate['1h']).toBeCloseTo(50, 9);
    expect(r.deploys.budgetRemaining).toBeCloseTo(-49, 9);
  });

  it('2 vCPUs, 512 MiB for 3,600 s at 1e-5 per vCPU-s and 2e-6 per GiB-s over 1,000 requests: 0.0756, 7.56e-5 per request', () => {
    const total = cost([{ seconds: 3600, vcpus: 2, memoryMiB: 512 }], 1000, prices);
    expect(total).toBeCloseTo(0.0756, 12);
    expect(costPerRequest(total, 1000)).toBeCloseTo(7.56e-5, 15);
    expect(costPerRequest(total, 0)).toBeNull();
    expect(costPerRequest(total, null)).toBeNull();

    const now = Date.now();
    const s = samples();
    s.vmStarted({ deployment: 'web', tenant: '', app: 'web', node: 'local', vcpus: 2, memoryMiB: 512, at: now - 3 * HOUR });
    s.vmEnded('web', now - 2 * HOUR);
    s.vmStarted({ deployment: 'api', tenant: '', app: 'api', node: 'local', vcpus: 2, memoryMiB: 512, at: now - HOUR });
    // no front yet: no request figures at all
    let r = computeSlo(s, { window: '1h', now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES });
    expect(r.cost.total).toBeCloseTo(0.0756, 12);
    expect([r.cost.requests, r.cost.perRequest, r.requests.perSecond, r.requests.note]).toEqual([null, null, null, 'no request data (requests are counted by the fronts of services: deploy with --replicas)']);
    expect(r.cost.perApp.map((a) => a.app)).toEqual(['api']);
    s.attach();
    s.count('', 'api', 1000, now - 1000);
    r = computeSlo(s, { window: '1h', now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES });
    expect(r.cost.perRequest).toBeCloseTo(7.56e-5, 15);
    expect(r.requests.perSecond).toBeCloseTo(1000 / 3600, 12);
  });

  it('requests per bucket for the chart: each bucket\'s requests over its 150 s (1h ÷ 24); null without a source', () => {
    const now = Date.now();
    const s = samples();
    let r = computeSlo(s, { window: '1h', now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES });
    expect(r.requests.series).toHaveLength(24);
    expect(r.requests.series.every((b) => b.requests === null && b.perSecond === null)).toBe(true);
    s.attach();
    r = computeSlo(s, { window: '1h', now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES });
    expect(r.requests.series.every((b) => b.requests === 0 && b.perSecond === 0)).toBe(true);
    s.count('', 'web', 300, now - HOUR + 10_000); // first bucket
    s.count('', 'web', 30, now - 1000); // last bucket
    s.count('acme', 'api', 15, now - 1000);
    r = computeSlo(s, { window: '1h', now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES });
    expect(r.requests.series[0]).toEqual({ t: now - HOUR, requests: 300, perSecond: 2 });
    expect(r.requests.series[23]).toMatchObject({ requests: 45, perSecond: 0.3 });
    expect(r.requests.series.reduce((n, b) => n + (b.requests ?? 0), 0)).toBe(r.requests.total);
    const acme = computeSlo(s, { window: '1h', now, filter: { tenant: 'acme' }, prices, objectives: DEFAULT_OBJECTIVES });
    expect(acme.requests.series.map((b) => b.requests ?? 0).filter((n) => n > 0)).toEqual([15]);
  });

  it('burn rates, budget and the multi-window page condition', () => {
    expect(burnRate(1, 100, 0.99)).toBeCloseTo(1, 12);
    expect(budgetRemaining(1, 200, 0.99)).toBeCloseTo(0.5, 12);
    expect(burnRate(0, 0, 0.99)).toBeNull();
    expect(paging(15, 20)).toBe(true);
    expect(paging(15, 10)).toBe(false);
    expect(paging(null, 20)).toBe(false);
  });

  it('boot objective: p95 ≤ 1.5 s is "95 % of boots within 1.5 s"; the series bucket the window', () => {
    const now = Date.now();
    const s = samples();
    // 90 fast boots and 10 slow ones in the last 5 minutes: 10 % bad against a 5 % budget
    s.recordBoots([...Array.from({ length: 90 }, (_, i) => boot(now - 1000 - i, 800)), ...Array.from({ length: 10 }, (_, i) => boot(now - 2000 - i, 4000))]);
    const r = computeSlo(s, { window: '1h', now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES, buckets: 12 });
    expect(r.boot.good).toBe(90);
    expect(r.boot.burnRate['5m']).toBeCloseTo(2, 12);
    expect(r.boot.budgetRemaining).toBeCloseTo(-1, 12);
    expect(r.boot.series).toHaveLength(12);
    expect(r.boot.series[11]?.count).toBe(100);
    expect(r.boot.series[0]?.p95Ms).toBeNull();
  });

  it('filters by tenant and app; old samples leave with the retention, durably', () => {
    const now = Date.now();
    const db = new Database(':memory:');
    const s = new SloSamples(db, 2 * HOUR);
    s.recordBoots([boot(now - 1000, 10, 'acme', 'web'), boot(now - 1000, 20, 'bolt', 'web'), boot(now - 3 * HOUR, 30, 'acme', 'web')]);
    const q = (filter: { tenant?: string; app?: string }) => computeSlo(s, { window: '7d', now, filter, prices, objectives: DEFAULT_OBJECTIVES }).boot.count;
    expect([q({}), q({ tenant: 'acme' }), q({ tenant: 'bolt' }), q({ tenant: 'nobody' }), q({ app: 'api' })]).toEqual([3, 2, 1, 0, 0]);
    s.prune(now);
    expect(q({})).toBe(2);
    // reopened on the same database: the samples are the table's, not the process's
    expect(computeSlo(new SloSamples(db, 2 * HOUR), { window: '7d', now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES }).boot.count).toBe(2);
  });

  it('percentiles by selection equal the sorted nearest rank, duplicates and all', () => {
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const n of [1, 2, 3, 19, 20, 21, 100, 1000, 4097]) {
      const v = Array.from({ length: n }, () => Math.floor(rnd() * (n < 50 ? 5 : 1000)));
      const sorted = [...v].sort((a, b) => a - b);
      for (const p of [50, 95, 99, 100]) expect(percentile(v, p), `n=${n} p${p}`).toBe(sorted[Math.ceil((p / 100) * n) - 1]);
    }
  });

  it('whole-millisecond boots (counted) and fractional ones (selected) give the same nearest ranks, overall and per bucket', () => {
    const now = Date.now();
    let seed = 11;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const raw = Array.from({ length: 5000 }, () => ({ at: now - 1 - Math.floor(rnd() * HOUR), ms: 100 + Math.floor(rnd() * 3000) }));
    const whole = samples();
    whole.recordBoots(raw.map((r) => boot(r.at, r.ms)));
    const frac = samples();
    frac.recordBoots(raw.map((r) => boot(r.at, r.ms + 0.5)));
    const q = (src: SloSamples) => computeSlo(src, { window: '1h', now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES, buckets: 12 }).boot;
    const [w, f] = [q(whole), q(frac)];
    const sorted = raw.map((r) => r.ms).sort((a, b) => a - b);
    expect([w.p50Ms, w.p95Ms]).toEqual([sorted[2499], sorted[4749]]);
    expect([f.p50Ms, f.p95Ms]).toEqual([(w.p50Ms as number) + 0.5, (w.p95Ms as number) + 0.5]);
    for (let k = 0; k < 12; k++) {
      const inBucket = raw.filter((r) => Math.min(11, Math.floor((r.at - (now - HOUR)) / (HOUR / 12))) === k).map((r) => r.ms).sort((a, b) => a - b);
      const at = (p: number): number | null => (inBucket.length ? (inBucket[Math.ceil((p / 100) * inBucket.length) - 1] as number) : null);
      expect([w.series[k]?.count, w.series[k]?.p50Ms, w.series[k]?.p95Ms], `bucket ${k}`).toEqual([inBucket.length, at(50), at(95)]);
      expect([f.series[k]?.p50Ms, f.series[k]?.p95Ms]).toEqual([at(50) === null ? null : (at(50) as number) + 0.5, at(95) === null ? null : (at(95) as number) + 0.5]);
    }
  });

  it('samples recorded out of time order are found by window (the columns are re-ordered once)', () => {
    const now = Date.now();
    const s = samples();
    s.recordBoots([boot(now - 10 * 60_000, 300), boot(now - 2 * HOUR, 100), boot(now - 60_000, 200), boot(now - 30 * HOUR, 900)]);
    s.recordDeploy({ at: now - 1000, tenant: '', app: 'web', outcome: 'succeeded', code: null });
    s.recordDeploy({ at: now - 2 * HOUR, tenant: '', app: 'web', outcome: 'platform', code: 'E_BOOT_TIMEOUT' });
    const q = (window: '1h' | '24h' | '7d') => computeSlo(s, { window, now, filter: {}, prices, objectives: DEFAULT_OBJECTIVES });
    expect([q('1h').boot.count, q('24h').boot.count, q('7d').boot.count]).toEqual([2, 3, 4]);
    expect([q('1h').boot.p50Ms, q('24h').boot.p50Ms, q('7d').boot.p95Ms]).toEqual([200, 200, 900]);
    expect([q('1h').deploys.successRate, q('24h').deploys.successRate]).toEqual([1, 0.5]);
    expect(q('24h').deploys.platformByCode).toEqual([{ code: 'E_BOOT_TIMEOUT', count: 1 }]);
  });

  it('--slo-retention', () => {
    expect(parseRetention('30d')).toBe(30 * 24 * HOUR);
    expect(parseRetention('90m')).toBe(90 * 60_000);
    expect(parseRetention('5m')).toBeNull();
    expect(parseRetention('soon')).toBeNull();
  });
});
