#!/usr/bin/env node
// Traffic front benchmark (npm run bench:front [-- --duration S] [--concurrency N] [--vm] [--json]).
//
// What the services' front (src/runtime/haproxy-front.ts) costs a request, against a host-process HTTP backend (a
// node http server in its own process on loopback, small answer, keep-alive):
//   a. direct: the load generator talks to the backend;
//   b. front: through our HaproxyFront (http mode, 1 slot ready), driven — as in production — by another process
//      (a child of this script, `--front-child`) that also ingests the front's request log over UDP;
//   b0. the same front whose controller does not ingest the request log (HAProxy still sends it): what the log
//      ingestion in the controller costs, on a machine whose cores the load generator and backend already fill;
//   c. plain HAProxy: the same haproxy binary with a minimal config forwarding to the same backend (no log, no
//      retries, no runtime-API slots): what a front without our features would cost.
// Each case runs two phases after an unmeasured warm-up, in interleaved rounds (a b c a b c) so a change in the
// host's load hits every case alike: `latency` (1 client, sequential requests: what one hop adds to a request)
// and `throughput` (--concurrency kept-alive clients, closed loop: requests/s at saturation).
// With --vm: also deploys examples/go-http as a VM (the CLI, a private UNIKCTL_HOME) and compares QEMU's direct
// port forward with the front in front of that forward (d1, d2).
// Prints req/s and p50/p99 of every case, what the front adds (vs direct and vs plain HAProxy), the ratio of
// front/HAProxy req/s, and the targets (≤ 0.3 ms p50 and ≤ 2 ms p99 added over plain HAProxy at one client,
// ≥ 80 % of plain HAProxy's req/s); writes bench/results/front-<ISO date>-<hostname>.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { haproxyFront, maxConnections } from '../src/runtime/haproxy-front.js';
import { which } from '../src/util/exec.js';
import { closedLoop, latencySummary, procCpuSeconds, type LatencySummary } from './lib/api-load.js';
import { CLI, fileStamp, privateHome, RESULTS_DIR, ROOT } from './lib/harness.js';
import { freePort, installCleanup, killByEnv, onExit, runSync, sleep, track } from './lib/proc.js';

const TARGETS = { addedP50Ms: 0.3, addedP99Ms: 2, rpsShareOfHaproxy: 0.8 };
const SELF = fileURLToPath(import.meta.url);

function usage(code: number): never {
  (code === 0 ? process.stdout : process.stderr).write(
    'usage: npm run bench:front -- [--duration S] [--warmup S] [--concurrency N] [--rounds N] [--vm] [--json]\n' +
    '  --duration S      measured seconds per case, split over the rounds and the two phases (default 10)\n' +
    '  --warmup S        unmeasured seconds per case before the first round (default 1)\n' +
    '  --concurrency N   kept-alive clients of the throughput phase (default 16)\n' +
    '  --rounds N        interleaved rounds (default 2)\n' +
    '  --vm              also measure a real VM (examples/go-http, deployed with the CLI): QEMU forward vs the front\n' +
    '  --json            print only the JSON result on stdout\n');
  process.exit(code);
}

interface Options { duration: number; warmup: number; concurrency: number; rounds: number; vm: boolean; json: boolean }
function parseArgs(argv: readonly string[]): Options {
  const o: Options = { duration: 10, warmup: 1, concurrency: 16, rounds: 2, vm: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!(v >= 0)) { process.stderr.write(`bench: ${a} needs a number\n`); usage(2); }
      return v;
    };
    if (a === '--duration') o.duration = num();
    else if (a === '--warmup') o.warmup = num();
    else if (a === '--concurrency') o.concurrency = num();
    else if (a === '--rounds') o.rounds = num();
    else if (a === '--vm') o.vm = true;
    else if (a === '--json') o.json = true;
    else if (a === '-h' || a === '--help') usage(0);
    else { process.stderr.write(`bench: unknown option ${a}\n`); usage(2); }
  }
  if (!(o.duration > 0) || !Number.isInteger(o.concurrency) || o.concurrency < 1 || !Number.isInteger(o.rounds) || o.rounds < 1) usage(2);
  return o;
}

// ------------------------------------------------------------------------------------------ child processes

/** The backend: a node http server in its own process (so it does not share the load generator's event loop). */
const BACKEND_JS = `
const http = require('node:http');
const body = Buffer.from('hello from the bench backend\\n');
const s = http.createServer((req, res) => { req.resume(); res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }); res.end(body); });
s.keepAliveTimeout = 120000;
s.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: s.address().port }) + '\\n'));
`;

/** Reads the first JSON line a child prints (its port or its front record). */
function firstLine(child: ChildProcess, what: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (c: Buffer) => { err += c.toString(); });
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.once('line', (l) => { try { resolve(JSON.parse(l) as Record<string, unknown>); } catch { reject(new Error(`${what}: ${l}`)); } });
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}): ${err}`)));
  });
}

async function startBackend(): Promise<{ child: ChildProcess; port: number }> {
  const child = track(spawn(process.execPath, ['-e', BACKEND_JS], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const { port } = await firstLine(child, 'backend');
  return { child, port: port as number };
}

/**
 * `--front-child DIR HOSTPORT TARGETPORT`: the controller's side of a front, in its own process as in production:
 * starts the front, points slot 1 at the target and makes it ready, counts the request log; on stdin's end prints
 * how many request lines it received, stops the front and exits.
 */
async function frontChild(dir: string, hostPort: number, targetPort: number, ingest: boolean): Promise<void> {
  const ports = [{ hostAddress: '127.0.0.1', hostPort, guestPort: 8080, mode: 'http' as const }];
  const front = await haproxyFront.start({ dir, ports, slots: 1 });
  let logged = 0;
  let sumMs = 0;
  front.onRequest((r) => { logged++; sumMs += r.totalMs; });
  await front.setTarget(1, { address: '127.0.0.1', ports: { 8080: targetPort }, weight: 1 });
  await front.setState(1, 'ready');
  // without ingestion: HAProxy still formats and sends every line; the kernel drops them (nothing bound)
  if (!ingest) await front.detach();
  process.stdout.write(`${JSON.stringify({ pid: front.record.pid })}\n`);
  process.stdin.resume();
  await new Promise((r) => process.stdin.once('end', r));
  const counters = Object.fromEntries(await front.counters());
  await front.stop();
  process.stdout.write(`${JSON.stringify({ ingest, logged, meanLoggedMs: logged ? sumMs / logged : null, counters })}\n`);
}

async function startFront(dir: string, targetPort: number, ingest = true): Promise<{ port: number; pid: number; controllerPid: number; stop: () => Promise<Record<string, unknown>> }> {
  const port = await freePort();
  const child = track(spawn(process.execPath, [SELF, '--front-child', dir, String(port), String(targetPort), ingest ? 'ingest' : 'no-ingest'], { stdio: ['pipe', 'pipe', 'pipe'] }));
  const ready = await firstLine(child, 'front');
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const last = new Promise<Record<string, unknown>>((r) => lines.on('line', (l) => r(JSON.parse(l) as Record<string, unknown>)));
  return {
    port, pid: ready.pid as number, controllerPid: child.pid as number,
    stop: async () => { child.stdin?.end(); return await last; },
  };
}

/** A plain HAProxy: the smallest config that forwards one port to the backend (nothing of ours). */
async function startPlainHaproxy(dir: string, targetPort: number): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const cfg = join(dir, 'plain.cfg');
  writeFileSync(cfg, [
    'global', `  maxconn ${maxConnections()}`, // the same bound as the front's, so both run with the same fd table
    'defaults', '  mode http', '  timeout connect 2s', '  timeout client 60s', '  timeout server 60s',
    'frontend f', `  bind 127.0.0.1:${port}`, '  default_backend b',
    'backend b', `  server s1 127.0.0.1:${targetPort}`, '',
  ].join('\n'));
  const child = track(spawn('haproxy', ['-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  child.stderr?.on('data', (c: Buffer) => { out += c.toString(); });
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`plain haproxy exited: ${out}`);
    try {
      await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(500) });
      return { port, child };
    } catch { await sleep(50); }
  }
  throw new Error(`plain haproxy did not answer on ${port}: ${out}`);
}

// ------------------------------------------------------------------------------------------ measuring

interface Phase { rps: number; ok: number; errors: number; errorKinds: Record<string, number>; latencyMs: LatencySummary; serverCores: number | null; controllerCores: number | null; raw: number[]; elapsedS: number }
/** pid: the proxy process; controllerPid: the process that drives the front and ingests its request log */
interface Case { key: string; label: string; port: number; pid?: number; controllerPid?: number; latency: Phase[]; throughput: Phase[] }

async function phase(port: number, concurrency: number, durationMs: number, pid?: number, controllerPid?: number): Promise<Phase> {
  const c0 = controllerPid ? procCpuSeconds(controllerPid) : null;
  const r = await closedLoop({ base: `http://127.0.0.1:${port}`, concurrency, durationMs, makeRequest: () => ({ method: 'GET', path: '/' }), okStatus: 200, ...(pid ? { serverPid: pid } : {}) });
  const c1 = controllerPid ? procCpuSeconds(controllerPid) : null;
  const elapsedS = r.elapsedS ?? 0;
  return {
    rps: r.rps ?? 0, ok: r.ok, errors: r.errors, errorKinds: r.errorKinds, latencyMs: r.latencyMs, serverCores: r.cpu.serverCores,
    controllerCores: c0 !== null && c1 !== null && elapsedS > 0 ? (c1 - c0) / elapsedS : null, raw: r.rawLatenciesMs, elapsedS,
  };
}

/** The rounds of one phase merged: requests/s over the real elapsed time, percentiles over every sample. */
function merge(runs: Phase[]): { rps: number; ok: number; errors: number; latencyMs: LatencySummary; proxyCores: number | null; controllerCores: number | null } {
  const elapsed = runs.reduce((n, r) => n + r.elapsedS, 0);
  const ok = runs.reduce((n, r) => n + r.ok, 0);
  const cores = (k: 'serverCores' | 'controllerCores'): number | null => (runs.every((r) => r[k] !== null) ? Math.round((runs.reduce((n, r) => n + (r[k] ?? 0) * r.elapsedS, 0) / elapsed) * 100) / 100 : null);
  return { rps: Math.round(ok / elapsed), ok, errors: runs.reduce((n, r) => n + r.errors, 0), latencyMs: latencySummary(runs.flatMap((r) => r.raw)), proxyCores: cores('serverCores'), controllerCores: cores('controllerCores') };
}

const fmt = (x: number | null | undefined, d = 2): string => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));

async function measure(o: Options, cases: Case[], say: (s: string) => void): Promise<void> {
  const perPhaseMs = (o.duration * 1000) / o.rounds / 2;
  for (const c of cases) {
    if (o.warmup > 0) await phase(c.port, o.concurrency, o.warmup * 1000);
  }
  for (let round = 1; round <= o.rounds; round++) {
    for (const c of cases) {
      c.latency.push(await phase(c.port, 1, perPhaseMs, c.pid, c.controllerPid));
      c.throughput.push(await phase(c.port, o.concurrency, perPhaseMs, c.pid, c.controllerPid));
      const l = c.latency.at(-1) as Phase;
      const t = c.throughput.at(-1) as Phase;
      say(`  round ${round} ${c.label.padEnd(34)} 1 client: ${fmt(l.rps, 0).padStart(6)} req/s p50 ${fmt(l.latencyMs.p50)} ms p99 ${fmt(l.latencyMs.p99)} ms` +
        ` | ${o.concurrency} clients: ${fmt(t.rps, 0).padStart(6)} req/s p50 ${fmt(t.latencyMs.p50)} ms p99 ${fmt(t.latencyMs.p99)} ms` +
        `${l.errors + t.errors ? `  ERRORS ${l.errors + t.errors} ${JSON.stringify({ ...l.errorKinds, ...t.errorKinds })}` : ''}`);
    }
  }
}

// ------------------------------------------------------------------------------------------ the VM (--vm)

/** Deploys examples/go-http with the CLI in a private home; resolves the host port of QEMU's forward. */
async function deployVm(say: (s: string) => void): Promise<{ port: number; destroy: () => Promise<void> }> {
  const { home, env, cli } = privateHome('unikctl-bench-front-');
  const name = 'front-bench';
  onExit(() => { killByEnv('UNIKCTL_HOME', home); });
  onExit(() => { runSync([process.execPath, CLI, 'destroy', name, '--wait'], { env }); });
  const port = await freePort();
  say(`front: deploying examples/go-http as a VM (127.0.0.1:${port} -> 8080)`);
  const d = await cli(['deploy', join(ROOT, 'examples', 'go-http'), '-p', `127.0.0.1:${port}:8080`, '--name', name, '--wait', '--timeout', '240']);
  if (d.code !== 0) throw new Error(`unikctl deploy failed:\n${d.stderr}${d.stdout}`);
  return { port, destroy: async () => { await cli(['destroy', name, '--wait']); } };
}

// ------------------------------------------------------------------------------------------ main

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--front-child') return frontChild(argv[1] as string, Number(argv[2]), Number(argv[3]), argv[4] === 'ingest');
  const o = parseArgs(argv);
  installCleanup();
  const say = (s: string): void => { if (!o.json) process.stdout.write(`${s}\n`); };
  if (which('haproxy') === null) throw new Error('haproxy is not installed (apt-get install haproxy, or make setup)');
  const scratch = mkdtempSync(join(tmpdir(), 'unik-front-bench-'));
  onExit(() => rmSync(scratch, { recursive: true, force: true }));
  const nCpu = cpus().length;
  const la = loadavg();
  say(`front benchmark: ${o.duration} s per case (${o.rounds} interleaved rounds × {1 client, ${o.concurrency} kept-alive clients}), +${o.warmup} s warm-up`);
  say(`note: the load generator, the backend, the proxies and the front's controller share this machine's ${nCpu} core(s); ` +
    `load average before the run: ${la.map((x) => x.toFixed(2)).join(' ')}${(la[0] ?? 0) > nCpu / 2 ? ' (other processes are busy: figures are noisy)' : ''}`);

  const backend = await startBackend();
  const front = await startFront(join(scratch, 'front'), backend.port);
  const quiet = await startFront(join(scratch, 'front-no-log'), backend.port, false);
  const plain = await startPlainHaproxy(scratch, backend.port);
  const cases: Case[] = [
    { key: 'direct', label: 'a. direct to the backend', port: backend.port, latency: [], throughput: [] },
    { key: 'front', label: 'b. through our front (HaproxyFront)', port: front.port, pid: front.pid, controllerPid: front.controllerPid, latency: [], throughput: [] },
    { key: 'frontNoLog', label: 'b0. our front, log not ingested', port: quiet.port, pid: quiet.pid, controllerPid: quiet.controllerPid, latency: [], throughput: [] },
    { key: 'haproxy', label: 'c. through a plain HAProxy', port: plain.port, ...(plain.child.pid ? { pid: plain.child.pid } : {}), latency: [], throughput: [] },
  ];
  await measure(o, cases, say);
  const frontEnd = await front.stop();
  await quiet.stop();
  plain.child.kill('SIGTERM');

  let vm: { cases: Case[] } | null = null;
  if (o.vm) {
    const v = await deployVm(say);
    const vmFront = await startFront(join(scratch, 'vm-front'), v.port);
    const vmCases: Case[] = [
      { key: 'vmDirect', label: 'd1. VM through QEMU\'s forward', port: v.port, latency: [], throughput: [] },
      { key: 'vmFront', label: 'd2. VM through the front + forward', port: vmFront.port, pid: vmFront.pid, controllerPid: vmFront.controllerPid, latency: [], throughput: [] },
    ];
    try {
      await measure(o, vmCases, say);
    } finally {
      await vmFront.stop();
      await v.destroy();
    }
    vm = { cases: vmCases };
  }

  const summary = Object.fromEntries([...cases, ...(vm?.cases ?? [])].map((c) => [c.key, { label: c.label, latency: merge(c.latency), throughput: merge(c.throughput) }]));
  const s = summary as Record<string, { label: string; latency: ReturnType<typeof merge>; throughput: ReturnType<typeof merge> }>;
  const d = s.direct!; const f = s.front!; const h = s.haproxy!;
  const added = (a: LatencySummary, b: LatencySummary) => ({ p50: (a.p50 ?? NaN) - (b.p50 ?? NaN), p99: (a.p99 ?? NaN) - (b.p99 ?? NaN) });
  const vsDirect = added(f.latency.latencyMs, d.latency.latencyMs);
  const vsHaproxy = added(f.latency.latencyMs, h.latency.latencyMs);
  const haproxyVsDirect = added(h.latency.latencyMs, d.latency.latencyMs);
  const rpsRatio = f.throughput.rps / h.throughput.rps;
  say('');
  say(`${'case'.padEnd(40)} ${'1 client: req/s'.padStart(15)} ${'p50'.padStart(7)} ${'p99'.padStart(7)} | ${`${o.concurrency} clients: req/s`.padStart(18)} ${'p50'.padStart(7)} ${'p99'.padStart(7)}  CPU: proxy + controller  errors`);
  for (const [, c] of Object.entries(s)) {
    say(`${c.label.padEnd(40)} ${String(c.latency.rps).padStart(15)} ${fmt(c.latency.latencyMs.p50).padStart(7)} ${fmt(c.latency.latencyMs.p99).padStart(7)} | ${String(c.throughput.rps).padStart(18)} ${fmt(c.throughput.latencyMs.p50).padStart(7)} ${fmt(c.throughput.latencyMs.p99).padStart(7)}  ` +
      `${c.throughput.proxyCores === null ? '   -' : fmt(c.throughput.proxyCores)} + ${c.throughput.controllerCores === null ? '-   ' : fmt(c.throughput.controllerCores)} cores  ${c.latency.errors + c.throughput.errors}`);
  }
  say('');
  say(`added latency (1 client): front vs direct p50 +${fmt(vsDirect.p50, 3)} ms, p99 +${fmt(vsDirect.p99, 3)} ms; ` +
    `plain HAProxy vs direct p50 +${fmt(haproxyVsDirect.p50, 3)} ms, p99 +${fmt(haproxyVsDirect.p99, 3)} ms; front vs plain HAProxy p50 ${vsHaproxy.p50 >= 0 ? '+' : ''}${fmt(vsHaproxy.p50, 3)} ms, p99 ${vsHaproxy.p99 >= 0 ? '+' : ''}${fmt(vsHaproxy.p99, 3)} ms`);
  const q = s.frontNoLog!;
  const qAdded = added(q.latency.latencyMs, h.latency.latencyMs);
  say(`without ingesting its request log (b0): vs plain HAProxy p50 ${qAdded.p50 >= 0 ? '+' : ''}${fmt(qAdded.p50, 3)} ms, p99 ${qAdded.p99 >= 0 ? '+' : ''}${fmt(qAdded.p99, 3)} ms; ${q.throughput.rps} req/s = ${fmt((q.throughput.rps / h.throughput.rps) * 100, 1)} % of plain HAProxy; the controller ingesting the log used ${fmt(f.throughput.controllerCores)} cores at ${f.throughput.rps} req/s`);
  say(`throughput (${o.concurrency} clients): front ${f.throughput.rps} req/s = ${fmt(rpsRatio * 100, 1)} % of plain HAProxy (${h.throughput.rps}), ${fmt((f.throughput.rps / d.throughput.rps) * 100, 1)} % of direct (${d.throughput.rps})`);
  const counted = (frontEnd.counters as Record<string, { requests: number }> | undefined)?.['1']?.requests;
  say(`front's request log: ${String(frontEnd.logged)} request lines reached its controller over UDP; HAProxy counted ${String(counted)} requests on slot 1 (warm-up included)`);
  if (vm) {
    const vd = s.vmDirect!; const vf = s.vmFront!;
    const vmAdded = added(vf.latency.latencyMs, vd.latency.latencyMs);
    say(`VM: front + forward vs forward: p50 +${fmt(vmAdded.p50, 3)} ms, p99 +${fmt(vmAdded.p99, 3)} ms (1 client); ${vf.throughput.rps} vs ${vd.throughput.rps} req/s = ${fmt((vf.throughput.rps / vd.throughput.rps) * 100, 1)} % (${o.concurrency} clients)`);
  }
  const pass = {
    addedP50: vsHaproxy.p50 <= TARGETS.addedP50Ms,
    addedP99: vsHaproxy.p99 <= TARGETS.addedP99Ms,
    rps: rpsRatio >= TARGETS.rpsShareOfHaproxy,
    noErrors: Object.values(s).every((c) => c.latency.errors + c.throughput.errors === 0),
  };
  say(`target: the front adds <= ${TARGETS.addedP50Ms} ms p50 over plain HAProxy: ${pass.addedP50 ? 'PASS' : 'MISS'} (${fmt(vsHaproxy.p50, 3)} ms)`);
  say(`target: the front adds <= ${TARGETS.addedP99Ms} ms p99 over plain HAProxy:   ${pass.addedP99 ? 'PASS' : 'MISS'} (${fmt(vsHaproxy.p99, 3)} ms)`);
  say(`target: front >= ${TARGETS.rpsShareOfHaproxy * 100} % of plain HAProxy's req/s:      ${pass.rps ? 'PASS' : 'MISS'} (${fmt(rpsRatio * 100, 1)} %)`);
  say(`errors: ${pass.noErrors ? 'none' : 'SOME (see above)'}`);

  const file = join(RESULTS_DIR, `front-${fileStamp(new Date())}-${hostname()}.json`);
  const r = {
    benchmark: 'front', at: new Date().toISOString(), host: hostname(), cpus: nCpu, cpuModel: cpus()[0]?.model ?? null, node: process.version,
    loadavgBefore: la, options: o, targets: TARGETS, pass, summary,
    added: { frontVsDirect: vsDirect, frontVsHaproxy: vsHaproxy, haproxyVsDirect, frontNoLogVsHaproxy: qAdded }, rpsFrontOverHaproxy: Math.round(rpsRatio * 1000) / 1000,
    frontLog: frontEnd,
    raw: Object.fromEntries([...cases, ...(vm?.cases ?? [])].map((c) => [c.key, { latency: c.latency.map((p) => p.raw), throughput: c.throughput.map((p) => p.raw) }])),
  };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(r)}\n`);
  say(`raw results: ${relative(process.cwd(), file)}`);
  if (o.json) process.stdout.write(`${JSON.stringify({ ...r, raw: undefined }, null, 2)}\n`);
  backend.child.kill('SIGTERM');
}

await main();
