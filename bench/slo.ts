#!/usr/bin/env node
// SLO API benchmark (npm run bench:slo [-- --samples N] [--requests N] [--json]).
//
// 1. writes N stored samples (default 1,000,000: 80 % boots, 20 % finished deploys with the error table's mix of
//    outcomes) spread over 30 days, 20 tenants × 10 apps, into a fresh data directory's journal database, through
//    the same SloSamples class the daemon uses; plus 200 VM lives for the cost figures;
// 2. starts `unikctld serve --runner fake` on that directory (it loads the samples at start, as after a restart);
// 3. one client sends GET /v1/slo sequentially over every window (1h, 24h, 7d, 30d) × filter (all tenants, one
//    tenant, one app), --requests times in all after an unmeasured warm-up, and records each latency;
// 4. prints p50/p95/p99 overall and per window, the start-up (load) time, and the target (p99 ≤ 100 ms: PASS/MISS);
//    writes the figures and raw latencies to bench/results/slo-<ISO date>-<hostname>.json.
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SloSamples, type BootSample, type DeploySample } from '../src/controlplane/slo-samples.js';
import { deployOutcome } from '../src/engine/slo.js';
import { fileStamp, RESULTS_DIR, ROOT } from './lib/harness.js';
import { freePort, installCleanup, onExit, sleep, track } from './lib/proc.js';
import { percentile } from './lib/stats.js';

const TARGET_P99_MS = 100;
const DAY = 86_400_000;
const SERVER_BIN = join(ROOT, 'bin', 'unikctld.js');

function usage(code: number): never {
  (code === 0 ? process.stdout : process.stderr).write(
    'usage: npm run bench:slo -- [--samples N] [--requests N] [--json]\n' +
    '  --samples N    stored samples (default 1000000)\n' +
    '  --requests N   measured GET /v1/slo requests (default 240)\n' +
    '  --json         print only the JSON result on stdout\n');
  process.exit(code);
}

const opts = { samples: 1_000_000, requests: 240, json: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--samples') opts.samples = Number(argv[++i]);
  else if (a === '--requests') opts.requests = Number(argv[++i]);
  else if (a === '--json') opts.json = true;
  else if (a === '--help' || a === '-h') usage(0);
  else usage(2);
}
if (!(opts.samples > 0) || !(opts.requests > 0)) usage(2);
const say = (m: string): void => { if (!opts.json) process.stdout.write(`${m}\n`); };

/** A seeded generator (mulberry32), so every run stores the same samples. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fill(file: string, n: number, now: number): number {
  const t0 = performance.now();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  const s = new SloSamples(db, 31 * DAY);
  const r = rng(42);
  const tenants = Array.from({ length: 20 }, (_, i) => `t${i}`);
  const apps = Array.from({ length: 10 }, (_, i) => `app${i}`);
  const pick = <T>(list: T[]): T => list[Math.floor(r() * list.length)] as T;
  const codes = [null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, 'E_BOOT_TIMEOUT', 'E_BUILD_FAILED', 'E_INVALID_ARGUMENT'];
  const batch = 50_000;
  for (let done = 0; done < n; done += batch) {
    const boots: BootSample[] = [];
    const deploys: DeploySample[] = [];
    for (let i = done; i < Math.min(n, done + batch); i++) {
      const at = now - Math.floor(r() * 30 * DAY);
      const tenant = pick(tenants);
      const app = pick(apps);
      if (i % 5 === 4) {
        const code = pick(codes);
        deploys.push({ at, tenant, app, outcome: deployOutcome(code), code });
      } else {
        // a log-normal-ish boot time around 400 ms with a tail
        boots.push({ at, tenant, app, version: 'v1', node: `n${i % 8}`, accel: 'kvm', ms: Math.round(200 + 300 * Math.exp(r() * 2 - 1) * (r() < 0.03 ? 5 : 1)) });
      }
    }
    s.recordBoots(boots);
    s.recordDeploys(deploys);
  }
  for (let i = 0; i < 200; i++) {
    const tenant = tenants[i % 20] as string;
    const name = `${tenant}--${apps[i % 10] as string}`;
    s.vmStarted({ deployment: name, tenant, app: apps[i % 10] as string, node: `n${i % 8}`, vcpus: 1 + (i % 4), memoryMiB: 128 << (i % 4), at: now - Math.floor(r() * 30 * DAY) });
  }
  db.close();
  return performance.now() - t0;
}

async function startServer(data: string, auth: string): Promise<{ child: ChildProcess; base: string; startMs: number }> {
  const port = await freePort();
  const t0 = performance.now();
  const child = track(spawn(process.execPath, [SERVER_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', data, '--auth', auth, '--runner', 'fake', '--log-level', 'warn'],
    { env: { ...process.env, UNIKCTL_HOME: join(data, 'home') }, stdio: ['ignore', 'ignore', 'pipe'] }));
  let log = '';
  child.stderr?.on('data', (c: Buffer) => { log += c.toString(); });
  const base = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 120_000; Date.now() < deadline && child.exitCode === null;) {
    if (await fetch(`${base}/healthz`).then((x) => x.ok, () => false)) return { child, base, startMs: performance.now() - t0 };
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`unikctld did not start:\n${log}`);
}

async function main(): Promise<void> {
  installCleanup();
  const started = new Date();
  const scratch = mkdtempSync(join(tmpdir(), 'unikctld-bench-slo-'));
  onExit(() => rmSync(scratch, { recursive: true, force: true }));
  const data = join(scratch, 'data');
  mkdirSync(data, { recursive: true });
  const token = `unik_bench_${randomBytes(16).toString('hex')}`;
  writeFileSync(join(scratch, 'auth.yaml'), `tokens:\n  - { name: bench, token: ${token}, scopes: [admin] }\n`);

  const now = Date.now();
  say(`storing ${opts.samples.toLocaleString('en')} samples over 30 days (20 tenants × 10 apps) …`);
  const fillMs = fill(join(data, 'journal.db'), opts.samples, now);
  say(`  stored in ${(fillMs / 1000).toFixed(1)} s`);
  const { child, base, startMs } = await startServer(data, join(scratch, 'auth.yaml'));
  say(`unikctld up in ${(startMs / 1000).toFixed(1)} s (loads the samples at start)`);

  const windows = ['1h', '24h', '7d', '30d'] as const;
  const filters = ['', '&tenant=t3', '&app=app7'];
  const combos = windows.flatMap((w) => filters.map((f) => ({ window: w, query: `window=${w}${f}` })));
  const get = async (q: string): Promise<number> => {
    const t0 = performance.now();
    const r = await fetch(`${base}/v1/slo?${q}`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await r.json()) as { boot?: { count: number } };
    if (r.status !== 200 || !body.boot) throw new Error(`GET /v1/slo?${q}: ${r.status} ${JSON.stringify(body).slice(0, 300)}`);
    return performance.now() - t0;
  };
  let counted = 0;
  for (const c of combos) counted = Math.max(counted, await fetch(`${base}/v1/slo?${c.query}`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json() as Promise<{ boot: { count: number } }>).then((b) => b.boot.count));
  say(`the 30-day window holds ${counted.toLocaleString('en')} boots; warming up …`);
  for (const c of combos) await get(c.query);

  const samples: Array<{ window: string; query: string; ms: number }> = [];
  for (let i = 0; i < opts.requests; i++) {
    const c = combos[i % combos.length] as (typeof combos)[number];
    samples.push({ window: c.window, query: c.query, ms: await get(c.query) });
  }
  child.kill('SIGTERM');

  const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
  const stats = (xs: number[]): { n: number; p50: number; p95: number; p99: number; max: number } => {
    const s = sorted(xs);
    return { n: s.length, p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN };
  };
  const all = stats(samples.map((x) => x.ms));
  const perWindow = Object.fromEntries(windows.map((w) => [w, stats(samples.filter((x) => x.window === w).map((x) => x.ms))]));
  const pass = all.p99 <= TARGET_P99_MS;
  say('');
  say('window  requests   p50 ms   p95 ms   p99 ms');
  for (const w of windows) {
    const s = perWindow[w] as ReturnType<typeof stats>;
    say(`${w.padEnd(6)}  ${String(s.n).padStart(8)}  ${s.p50.toFixed(1).padStart(7)}  ${s.p95.toFixed(1).padStart(7)}  ${s.p99.toFixed(1).padStart(7)}`);
  }
  say(`all     ${String(all.n).padStart(8)}  ${all.p50.toFixed(1).padStart(7)}  ${all.p95.toFixed(1).padStart(7)}  ${all.p99.toFixed(1).padStart(7)}`);
  say(`target: p99 ≤ ${TARGET_P99_MS} ms with ${opts.samples.toLocaleString('en')} stored samples: ${pass ? 'PASS' : 'MISS'} (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}, ${cpus().length} cores)`);

  const result = {
    part: 'slo', startedAt: started.toISOString(), hostname: hostname(), cores: cpus().length, loadavg: loadavg(),
    method: 'sequential GET /v1/slo over 4 windows × 3 filters against unikctld --runner fake with the samples stored in its journal database',
    options: opts, fillMs, serverStartMs: startMs, bootsIn30d: counted, latencyMs: all, perWindow, target: { p99Ms: TARGET_P99_MS }, pass, raw: samples,
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `slo-${fileStamp(started)}-${hostname()}.json`);
  writeFileSync(file, `${JSON.stringify(result)}\n`);
  say(`raw results: ${relative(process.cwd(), file)}`);
  if (opts.json) process.stdout.write(`${JSON.stringify({ ...result, raw: undefined }, null, 2)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:slo: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
