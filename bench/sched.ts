#!/usr/bin/env node
// Scheduler benchmark (npm run bench:sched [-- --quick] [--json]). In-process, no servers, no I/O but
// the result file.
// It measures `place()`, the function production runs for every placement (ClusterClient in
// src/controlplane/cluster.ts calls it with the registry's nodes), not a separate benchmark-only scheduler.
//
// 1. placement: simulated clusters of 1,000 and 10,000 nodes (seeded random capacities and
//    allocations, ~3% down, ~2% cordoned, ~1% stale heartbeats, zone/arch/gpu/disk label sets);
//    5,000 seeded requests (~half with label selectors, ~1% unsatisfiable), each placed and, on
//    success, committed. Per-placement latency (p50/p99) and decisions per second (placements /
//    wall time of the place+commit loop) for:
//      - place:    `place()` from src/controlplane/scheduler.ts over an array of NodeInfo objects (what
//                  production runs; a commit adds the request to the chosen node's allocations);
//      - sort-all: filter, score and sort all candidate nodes per placement (naive baseline).
//    Both run the same requests from the same starting cluster and must make identical decisions
//    (checked, mismatches reported). A warm-up run on a copy precedes each measured run.
// 2. drain: a 1,000-node cluster plus a cordoned node holding 500 deployments; reschedule them all
//    (place with avoid=[drained], commit on the target, release from the drained node), timed in ms,
//    median of several runs, for each implementation.
// Prints the ratios baseline/place and the target (p99 ≤ 5 ms per placement at 10,000 nodes,
// PASS/MISS), and writes the raw samples to bench/results/sched-<ISO date>-<hostname>.json.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FIT_EPSILON, place, type NodeInfo, type PlacementRequest, type PlacementResult, type Policy } from '../src/controlplane/scheduler.js';
import { fileStamp, RESULTS_DIR, ROOT } from './lib/harness.js';
import { percentile } from './lib/stats.js';

const TARGET_P99_MS = 5;
const NOW = 1_700_000_000_000;

function usage(code: number): never {
  (code === 0 ? process.stdout : process.stderr).write(
    'usage: npm run bench:sched -- [--quick] [--json]\n' +
    '  --quick  1,000 placements per series and 3 drain runs (a smoke test, not a measurement)\n' +
    '  --json   print only the JSON result on stdout\n');
  process.exit(code);
}

const opts = { quick: false, json: false };
for (const a of process.argv.slice(2)) {
  if (a === '--quick') opts.quick = true;
  else if (a === '--json') opts.json = true;
  else if (a === '-h' || a === '--help') usage(0);
  else { process.stderr.write(`bench: unknown option ${a}\n`); usage(2); }
}
const PLACEMENTS = opts.quick ? 1_000 : 5_000;
const WARMUP = opts.quick ? 300 : 1_000;
const SIZES = [1_000, 10_000];
const DRAIN_NODES = 1_000;
const DRAIN_DEPLOYMENTS = 500;
const DRAIN_RUNS = opts.quick ? 3 : 9;

const say = (m: string): void => { if (!opts.json) process.stdout.write(`${m}\n`); };
const r4 = (x: number): number => (Number.isFinite(x) ? Math.round(x * 1e4) / 1e4 : x);
const r3 = (x: number): number => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : x);
const ratio = (a: number, b: number): number => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? Math.round((a / b) * 10) / 10 : NaN);
const fmtMs = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`);

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const picker = (rand: () => number) => <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;

function makeCluster(n: number, seed: number): NodeInfo[] {
  const rand = rng(seed);
  const pick = picker(rand);
  const nodes: NodeInfo[] = [];
  for (let i = 0; i < n; i++) {
    const c = pick([4, 8, 16, 32, 64]);
    const m = pick([8192, 16384, 32768, 65536, 131072]);
    const used = rand() * 0.6;
    const labels: Record<string, string> = { zone: pick(['eu-west', 'eu-central', 'us-east', 'us-west', 'ap-south']), arch: rand() < 0.8 ? 'amd64' : 'arm64', disk: pick(['ssd', 'hdd']) };
    if (rand() < 0.05) labels.gpu = 'true';
    const x = rand();
    nodes.push({
      name: `node-${String(i).padStart(5, '0')}`,
      status: x < 0.03 ? 'down' : 'ready',
      cordoned: x >= 0.03 && x < 0.05,
      labels,
      capacity: { cpus: c, memoryMiB: m },
      allocated: { cpus: Math.round(c * used * 4) / 4, memoryMiB: Math.round(m * used), vms: Math.floor(used * 20) },
      lastHeartbeatAt: NOW - (x >= 0.05 && x < 0.06 ? 120_000 : Math.floor(rand() * 20_000)),
    });
  }
  return nodes;
}

function makeRequests(count: number, seed: number): PlacementRequest[] {
  const rand = rng(seed);
  const pick = picker(rand);
  const reqs: PlacementRequest[] = [];
  for (let i = 0; i < count; i++) {
    const x = rand();
    let labels: Record<string, string> = {};
    if (x < 0.25) labels = { zone: pick(['eu-west', 'eu-central', 'us-east', 'us-west', 'ap-south']) };
    else if (x < 0.4) labels = { zone: pick(['eu-west', 'us-east']), arch: pick(['amd64', 'arm64']) };
    else if (x < 0.45) labels = { arch: 'arm64', disk: 'ssd' };
    else if (x < 0.48) labels = { gpu: 'true' };
    else if (x < 0.49) labels = { zone: 'mars' }; // unsatisfiable: exercises the failure path
    reqs.push({ name: `app-${i}`, cpus: pick([0.25, 0.5, 1, 1, 2, 4]), memoryMiB: pick([128, 256, 512, 512, 1024, 2048]), labels });
  }
  return reqs;
}

const clone = (nodes: readonly NodeInfo[]): NodeInfo[] => nodes.map((n) => ({ ...n, labels: { ...n.labels }, capacity: { ...n.capacity }, allocated: { ...n.allocated } }));

/** Naive baseline: filter with the same rules, score every candidate, sort them all, take the first. */
function placeSortAll(nodes: readonly NodeInfo[], req: PlacementRequest, { policy = 'spread', now, staleAfterMs = 30_000 }: { policy?: Policy; now: number; staleAfterMs?: number }): PlacementResult {
  const avoid = new Set(req.avoid ?? []);
  const keys = Object.keys(req.labels);
  const cands: Array<{ n: NodeInfo; h: number; key: number }> = [];
  for (const n of nodes) {
    if (avoid.has(n.name) || n.status === 'down' || n.lastHeartbeatAt < now - staleAfterMs || n.cordoned) continue;
    if (!keys.every((k) => Object.prototype.hasOwnProperty.call(n.labels, k) && n.labels[k] === req.labels[k])) continue;
    const ac = n.capacity.cpus - n.allocated.cpus - req.cpus;
    const am = n.capacity.memoryMiB - n.allocated.memoryMiB - req.memoryMiB;
    if (!(ac >= -FIT_EPSILON) || !(am >= -FIT_EPSILON)) continue;
    const c = n.capacity.cpus > 0 ? Math.max(ac, 0) / n.capacity.cpus : 0;
    const m = n.capacity.memoryMiB > 0 ? Math.max(am, 0) / n.capacity.memoryMiB : 0;
    const h = Math.min(c, m);
    cands.push({ n, h, key: policy === 'binpack' ? -h : h });
  }
  cands.sort((a, b) => b.key - a.key || a.n.allocated.vms - b.n.allocated.vms || (a.n.name < b.n.name ? -1 : a.n.name > b.n.name ? 1 : 0));
  const best = cands[0];
  if (!best) return { ok: false, reason: 'no node fits', filtered: {} };
  return { ok: true, node: best.n.name, score: policy === 'binpack' ? 1 - best.h : best.h };
}

type Kind = 'place' | 'sort-all';
type Amount = { cpus: number; memoryMiB: number };

/** The implementations behind one interface: place(req) → result, commit/release by node name. */
function impl(kind: Kind, nodes: readonly NodeInfo[]): { place: (r: PlacementRequest) => PlacementResult; commit: (node: string, r: Amount) => void; release: (node: string, r: Amount) => void } {
  const arr = clone(nodes);
  const byName = new Map(arr.map((n) => [n.name, n]));
  const allocated = (node: string): NodeInfo['allocated'] => {
    const n = byName.get(node);
    if (!n) throw new Error(`unknown node ${node}`);
    return n.allocated;
  };
  const commit = (node: string, r: Amount): void => { const a = allocated(node); a.cpus += r.cpus; a.memoryMiB += r.memoryMiB; a.vms += 1; };
  const release = (node: string, r: Amount): void => {
    const a = allocated(node);
    a.cpus = Math.max(0, a.cpus - r.cpus); a.memoryMiB = Math.max(0, a.memoryMiB - r.memoryMiB); a.vms = Math.max(0, a.vms - 1);
  };
  const fn = kind === 'place' ? place : placeSortAll;
  return { place: (r) => fn(arr, r, { now: NOW }), commit, release };
}

const KINDS: readonly Kind[] = ['place', 'sort-all'];
const BASELINES = ['sort-all'] as const;

interface Series {
  kind: Kind; placements: number; placed: number; failed: number; wallMs: number; decisionsPerSec: number;
  latencyMs: { p50: number; p99: number; max: number; mean: number };
  decisions?: Array<string | null>; raw: number[];
}

function runPlacements(kind: Kind, nodes: readonly NodeInfo[], reqs: readonly PlacementRequest[]): Series & { decisions: Array<string | null> } {
  const im = impl(kind, nodes);
  const lat = new Float64Array(reqs.length);
  const decisions: Array<string | null> = new Array<string | null>(reqs.length);
  let ok = 0;
  const t0 = performance.now();
  for (let i = 0; i < reqs.length; i++) {
    const r = reqs[i] as PlacementRequest;
    const a = performance.now();
    const res = im.place(r);
    lat[i] = performance.now() - a;
    if (res.ok) { im.commit(res.node, r); ok++; decisions[i] = res.node; } else decisions[i] = null;
  }
  const wallMs = performance.now() - t0;
  const sorted = Array.from(lat).sort((x, y) => x - y);
  return {
    kind, placements: reqs.length, placed: ok, failed: reqs.length - ok, wallMs: r3(wallMs),
    decisionsPerSec: Math.round(reqs.length / (wallMs / 1000)),
    latencyMs: { p50: r4(percentile(sorted, 50)), p99: r4(percentile(sorted, 99)), max: r4(sorted[sorted.length - 1] as number), mean: r4(sorted.reduce((s, x) => s + x, 0) / sorted.length) },
    decisions, raw: Array.from(lat, r4),
  };
}

function agreement(a: ReadonlyArray<string | null>, b: ReadonlyArray<string | null>): number {
  let diff = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) diff++;
  return diff;
}

function machine() {
  let model = cpus()[0]?.model ?? 'unknown';
  try { model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? model; } catch { /* not Linux */ }
  return { hostname: hostname(), cpuModel: model, cores: cpus().length, node: process.version, loadavgAtStart: loadavg().map((x) => r3(x)) };
}

const started = new Date();
const m = machine();
say(`scheduler bench — ${m.cpuModel}, ${m.cores} cores, Node ${m.node}, load average ${m.loadavgAtStart.join(' ')}${opts.quick ? ' (--quick: smoke test)' : ''}`);
if ((m.loadavgAtStart[0] ?? 0) > m.cores) say('  note: the machine is busier than its core count; tail latencies include time the OS ran other processes');

// 1. placement throughput and latency
type Ratios = Record<string, { p50: number; p99: number; throughput: number }>;
const placement: Array<{ nodes: number; placements: number; warmup: number; series: Record<Kind, Series>; ratios: Ratios; mismatches: Record<string, number> }> = [];
for (const size of SIZES) {
  const nodes = makeCluster(size, 42 + size);
  const reqs = makeRequests(PLACEMENTS, 7 + size);
  const warm = makeRequests(WARMUP, 99 + size);
  const measured = KINDS.map((kind) => {
    runPlacements(kind, nodes, warm); // warm-up (JIT) on a separate copy
    return runPlacements(kind, nodes, reqs);
  });
  const series = Object.fromEntries(measured.map((s) => [s.kind, s])) as Record<Kind, ReturnType<typeof runPlacements>>;
  const ix = series.place;
  const mismatches: Record<string, number> = Object.fromEntries(BASELINES.map((kind) => [kind, agreement(ix.decisions, series[kind].decisions)]));
  say(`\n[placement] ${size.toLocaleString('en')} nodes, ${PLACEMENTS.toLocaleString('en')} placements with commit (${ix.placed} placed, ${ix.failed} found no node)`);
  say(`  ${'impl'.padEnd(9)} ${'decisions/s'.padStart(12)} ${'p50'.padStart(10)} ${'p99'.padStart(10)} ${'max'.padStart(10)}`);
  for (const kind of KINDS) {
    const s = series[kind];
    say(`  ${kind.padEnd(9)} ${s.decisionsPerSec.toLocaleString('en').padStart(12)} ${fmtMs(s.latencyMs.p50).padStart(10)} ${fmtMs(s.latencyMs.p99).padStart(10)} ${fmtMs(s.latencyMs.max).padStart(10)}`);
  }
  const ratios: Ratios = {};
  for (const kind of BASELINES) {
    const s = series[kind];
    const r = { p50: ratio(s.latencyMs.p50, ix.latencyMs.p50), p99: ratio(s.latencyMs.p99, ix.latencyMs.p99), throughput: ratio(ix.decisionsPerSec, s.decisionsPerSec) };
    ratios[kind] = r;
    say(`  ${kind}/place: p50 ×${r.p50}, p99 ×${r.p99}, throughput place is ×${r.throughput}; decisions differing from place: ${mismatches[kind]}`);
  }
  placement.push({ nodes: size, placements: PLACEMENTS, warmup: WARMUP, series, ratios, mismatches });
}

// 2. drain: reschedule 500 deployments off one node onto the rest of a 1,000-node cluster
function drainCluster(seed: number): { nodes: NodeInfo[]; deployments: PlacementRequest[] } {
  const nodes = makeCluster(DRAIN_NODES, seed);
  const rand = rng(seed + 1);
  const pick = picker(rand);
  const deployments: PlacementRequest[] = [];
  for (let i = 0; i < DRAIN_DEPLOYMENTS; i++) {
    const x = rand();
    const labels: Record<string, string> = x < 0.3 ? { zone: 'eu-west' } : x < 0.4 ? { zone: 'eu-west', arch: 'amd64' } : {};
    deployments.push({ name: `dep-${i}`, cpus: pick([0.25, 0.5, 1, 2]), memoryMiB: pick([128, 256, 512, 1024]), labels });
  }
  const used = deployments.reduce((a, d) => ({ cpus: a.cpus + d.cpus, memoryMiB: a.memoryMiB + d.memoryMiB }), { cpus: 0, memoryMiB: 0 });
  nodes.push({
    name: 'node-drained', status: 'ready', cordoned: true, labels: { zone: 'eu-west', arch: 'amd64', disk: 'ssd' },
    capacity: { cpus: 1024, memoryMiB: 2_097_152 }, allocated: { ...used, vms: DRAIN_DEPLOYMENTS }, lastHeartbeatAt: NOW,
  });
  return { nodes, deployments };
}

function runDrain(kind: Kind, seed: number): { ms: number; failed: number; moved: Array<string | null> } {
  const { nodes, deployments } = drainCluster(seed);
  const im = impl(kind, nodes);
  const moved: Array<string | null> = [];
  let failed = 0;
  const t0 = performance.now();
  for (const d of deployments) {
    const res = im.place({ ...d, avoid: ['node-drained'] });
    if (!res.ok) { failed++; moved.push(null); continue; }
    im.commit(res.node, d);
    im.release('node-drained', d);
    moved.push(res.node);
  }
  return { ms: performance.now() - t0, failed, moved };
}

const drainRaw: Record<Kind, { rawMs: number[]; failed: number; moves: Array<string | null> }> = { place: { rawMs: [], failed: 0, moves: [] }, 'sort-all': { rawMs: [], failed: 0, moves: [] } };
for (const kind of KINDS) runDrain(kind, 1); // warm-up
for (let run = 0; run < DRAIN_RUNS; run++) {
  for (const kind of KINDS) { // interleaved so drift hits every implementation alike
    const r = runDrain(kind, 500 + run);
    drainRaw[kind].rawMs.push(r3(r.ms));
    drainRaw[kind].failed += r.failed;
    drainRaw[kind].moves.push(...r.moved);
  }
}
const drainSeries = (kind: Kind): { rawMs: number[]; failed: number; medianMs: number; minMs: number; maxMs: number } => {
  const { rawMs, failed } = drainRaw[kind];
  const sorted = [...rawMs].sort((a, b) => a - b);
  return { rawMs, failed, medianMs: r3(percentile(sorted, 50)), minMs: sorted[0] ?? NaN, maxMs: sorted[sorted.length - 1] ?? NaN };
};
const drainBySeries = { place: drainSeries('place'), 'sort-all': drainSeries('sort-all') };
const drain = {
  nodes: DRAIN_NODES, deployments: DRAIN_DEPLOYMENTS, runs: DRAIN_RUNS, series: drainBySeries,
  mismatches: Object.fromEntries(BASELINES.map((kind) => [kind, agreement(drainRaw.place.moves, drainRaw[kind].moves)])) as Record<string, number>,
  ratios: Object.fromEntries(BASELINES.map((kind) => [kind, ratio(drainBySeries[kind].medianMs, drainBySeries.place.medianMs)])) as Record<string, number>,
};
say(`\n[drain] reschedule ${DRAIN_DEPLOYMENTS} deployments off a cordoned node onto ${DRAIN_NODES.toLocaleString('en')} nodes (place avoid=[drained], commit, release); median of ${DRAIN_RUNS} runs`);
for (const kind of KINDS) {
  const s = drain.series[kind];
  say(`  ${kind.padEnd(9)} ${`${s.medianMs.toFixed(2)} ms`.padStart(11)}  (min ${s.minMs.toFixed(2)}, max ${s.maxMs.toFixed(2)}; ${s.failed / DRAIN_RUNS} unplaced per run)`);
}
say(`  ${BASELINES.map((kind) => `${kind}/place ×${drain.ratios[kind]}`).join(', ')}; moves differing from place: ${BASELINES.map((kind) => `${kind} ${drain.mismatches[kind]}`).join(', ')}`);

// targets
const at10k = placement.find((p) => p.nodes === 10_000)?.series.place.latencyMs.p99 ?? NaN;
const allAgree = [...placement.map((p) => p.mismatches), drain.mismatches].every((mm) => Object.values(mm).every((n) => n === 0));
const targets = { p99MsAt10k: { target: TARGET_P99_MS, measured: at10k, pass: at10k <= TARGET_P99_MS }, identicalDecisions: allAgree };
say(`\n[target] place() p99 per placement at 10,000 nodes ≤ ${TARGET_P99_MS} ms: ${fmtMs(at10k)} → ${targets.p99MsAt10k.pass ? 'PASS' : 'MISS'}`);
say(`[check]  all implementations made identical decisions: ${allAgree ? 'yes' : 'NO'}`);

for (const p of placement) for (const s of Object.values(p.series)) delete s.decisions; // the raw latencies stay
const result = {
  bench: 'sched', quick: opts.quick, startedAt: started.toISOString(), finishedAt: new Date().toISOString(), machine: m,
  method: 'in-process; latency = performance.now() around each place() call; decisions/s = placements / wall time of the place+commit loop; warm-up run first',
  placement, drain, targets, loadavgAtEnd: loadavg().map((x) => r3(x)),
};
mkdirSync(RESULTS_DIR, { recursive: true });
const file = join(RESULTS_DIR, `sched-${fileStamp(started)}-${m.hostname}.json`);
writeFileSync(file, `${JSON.stringify(result)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify({ ...result, placement: result.placement.map((p) => ({ ...p, series: Object.fromEntries(Object.entries(p.series).map(([k, v]) => [k, { ...v, raw: undefined }])) })) }, null, 2)}\n`);
say(`\nraw results: ${relative(ROOT, file)}`);
