#!/usr/bin/env node
// Density benchmark (npm run bench:density [-- --max N] [--json] [--quick] ...).
//
// 1. builds examples/go-http with the CLI (private UNIKCTL_HOME, shared kernel cache);
// 2. the baseline, in the same run: the same Go program as a plain host process (built with the pack's own
//    flags), measured like the VMs (RSS/PSS/USS, idle CPU, wake-ups, spawn → first output);
// 3. the real path: `unikctl deploy local/go-http --name d-N --wait`, one VM after another (64 MiB guests,
//    no ports) until --max, until host MemAvailable < --min-available-gib, until the idle VMs already use
//    --max-idle-cpu of one core, or until a VM fails. After each VM: its QEMU and its supervisor (the
//    detached Node process that owns it) are found through /proc, and every running VM's memory is sampled
//    (so per-VM cost vs VM count is charted), with MemAvailable. After the last one: settle, a final sample,
//    idle CPU of all QEMU and supervisor processes over --idle-seconds, and `status --json` (metering);
// 4. flag experiments: QEMU spawned directly with the runtime's own argv (src/runtime/qemu.ts qemuArgs) and
//    one change at a time (TCG translation-cache size, guest RAM without transparent huge pages, guest
//    clocksource watchdog, erofs compressed-page cache, and all of them together), --flag-vms VMs each,
//    memory and idle CPU measured the same way, plus an interleaved boot-latency series per variant; and the
//    same pair (current vs tsc=reliable) booted while the host CPUs are saturated, which is what trips the
//    guest's clocksource watchdog on a crowded host; optional (--ksm, root): kernel same-page merging;
// 5. writes every raw sample to bench/results/density-<ISO date>-<hostname>.json and prints a summary.
// Everything is destroyed at the end, also on Ctrl-C and on error, and the absence of left-over QEMU
// processes is verified.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { freePort, installCleanup, killByEnv, onExit, run, runSync, sleep, track } from './lib/proc.js';
import { materializeKernel, readImage, type ImageManifest } from '../src/image/image.js';
import { kernelCmdline } from '../src/runtime/cmdline.js';
import { ConsoleParser } from '../src/runtime/console.js';
import { launchCommand, qemuArgs } from '../src/runtime/qemu.js';
import { CLI, fileStamp, privateHome, RESULTS_DIR, ROOT } from './lib/harness.js';
import type { Json } from './lib/json.js';
import { summarize, type Summary } from './lib/stats.js';

const EXAMPLE = join(ROOT, 'examples', 'go-http');
const PACKAGE_REF = 'local/go-http';
const QEMU = 'qemu-system-x86_64';
const ACCEL: 'tcg' | 'kvm' = 'tcg';
const TARGETS = { idleRssMiB: 64, vms: 100, idleCpuPctOfCore: 25 };

function usage(code: number): never {
  (code === 0 ? process.stdout : process.stderr).write(
    'usage: npm run bench:density -- [options]\n' +
    '  --max N                 VMs to start through the CLI (default 100, the target; stops earlier when memory runs short)\n' +
    '  --min-available-gib G   stop when host MemAvailable drops below G GiB (default 2)\n' +
    '  --max-idle-cpu PCT      stop when the running VMs use PCT % of one core while idle (default 100)\n' +
    '  --settle S              seconds to let the VMs (and their Node supervisors, whose V8 heap shrinks for ~30 s) settle before the final sample (default 45)\n' +
    '  --flag-settle S         the same for the direct-QEMU flag experiments (no supervisor; default 15)\n' +
    '  --idle-seconds S        idle CPU sampling window (default 10)\n' +
    '  --flag-vms K            VMs per variant in the QEMU flag experiments (default 3)\n' +
    '  --boot-runs R           boots per variant in the flag boot-latency series (default 6)\n' +
    '  --no-flags              skip the flag experiments\n' +
    '  --no-contend            skip the experiment that saturates the host CPUs while VMs boot\n' +
    '  --ksm                   also measure kernel same-page merging (root; toggles /sys/kernel/mm/ksm for ~1 min, then restores it)\n' +
    '  --quick                 smoke test: --max 3, 1 VM per variant, short windows (not a measurement)\n' +
    '  --json                  print only the JSON result on stdout\n');
  process.exit(code);
}

type NumericOption = 'max' | 'minAvailableGiB' | 'maxIdleCpu' | 'settle' | 'flagSettle' | 'idleSeconds' | 'flagVms' | 'bootRuns';
type Options = Record<NumericOption, number> & { flags: boolean; contend: boolean; ksm: boolean; quick: boolean; json: boolean };

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { max: 100, minAvailableGiB: 2, maxIdleCpu: 100, settle: 45, flagSettle: 15, idleSeconds: 10, flagVms: 3, bootRuns: 6, flags: true, contend: true, ksm: false, quick: false, json: false };
  const numeric: Record<string, NumericOption> = { '--max': 'max', '--min-available-gib': 'minAvailableGiB', '--max-idle-cpu': 'maxIdleCpu', '--settle': 'settle', '--flag-settle': 'flagSettle', '--idle-seconds': 'idleSeconds', '--flag-vms': 'flagVms', '--boot-runs': 'bootRuns' };
  const set = new Set<NumericOption>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (flag === '--json') o.json = true;
    else if (flag === '--quick') o.quick = true;
    else if (flag === '--no-flags') o.flags = false;
    else if (flag === '--no-contend') o.contend = false;
    else if (flag === '--ksm') o.ksm = true;
    else if (flag === '-h' || flag === '--help') usage(0);
    else if (numeric[flag]) {
      const key = numeric[flag];
      const v = inline ?? argv[++i];
      if (!/^\d+(\.\d+)?$/.test(v ?? '')) { process.stderr.write(`density: ${flag} needs a number, got ${v}\n`); usage(2); }
      o[key] = Number(v);
      set.add(key);
    } else { process.stderr.write(`density: unknown option ${a}\n`); usage(2); }
  }
  if (o.quick) {
    const quick: Array<[NumericOption, number]> = [['max', 3], ['settle', 5], ['flagSettle', 5], ['idleSeconds', 5], ['flagVms', 1], ['bootRuns', 2]];
    for (const [k, v] of quick) if (!set.has(k)) o[k] = v;
  }
  if (!Number.isInteger(o.max) || o.max < 1) { process.stderr.write('density: --max must be a positive integer\n'); usage(2); }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const say = (m: string): void => { process.stderr.write(`${m}\n`); };
/** Rounded to 0.1 / 0.01; null for NaN (and for a missing value: the JSON fields are null then). */
const r1 = (x: number | null | undefined): number | null => (x !== null && x !== undefined && Number.isFinite(x) ? Math.round(x * 10) / 10 : null);
const r2 = (x: number | null | undefined): number | null => (x !== null && x !== undefined && Number.isFinite(x) ? Math.round(x * 100) / 100 : null);
const finite = (a: ReadonlyArray<number | null | undefined>): number[] => a.filter((x): x is number => x !== null && x !== undefined && Number.isFinite(x));
const avg = (a: ReadonlyArray<number | null | undefined>): number => { const v = finite(a); return v.length ? v.reduce((x, y) => x + y, 0) / v.length : NaN; };
const sum = (a: ReadonlyArray<number | null | undefined>): number => finite(a).reduce((x, y) => x + y, 0);
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

// ---------------------------------------------------------------- /proc readers

type MemKey = 'rss' | 'pss' | 'pssAnon' | 'pssFile' | 'pssShmem' | 'uss' | 'anonHuge';
/** MiB, rounded; null where /proc did not say. */
export type Mem = Record<MemKey, number | null>;

/** Memory of one process from /proc/PID/smaps_rollup, in MiB. USS = private pages (what killing it frees). */
export function procMem(pid: number): Mem | null {
  try {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const g = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t)?.[1] ?? NaN) / 1024;
    const m: Record<MemKey, number> = {
      rss: g('Rss'), pss: g('Pss'), pssAnon: g('Pss_Anon'), pssFile: g('Pss_File'), pssShmem: g('Pss_Shmem'),
      uss: g('Private_Clean') + g('Private_Dirty'), anonHuge: g('AnonHugePages'),
    };
    return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, r2(v)])) as Mem;
  } catch {
    return null;
  }
}

/** CPU ticks (utime + stime) of a process, all threads. */
export function procTicks(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}

/** Voluntary context switches per thread (tid → count): how often each thread woke up from sleep. */
export function procWakeups(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        const s = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
        m.set(t, Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(s)?.[1] ?? 0));
      } catch { /* thread gone */ }
    }
  } catch { /* process gone */ }
  return m;
}

/** Wake-ups between two procWakeups() snapshots: threads that exited in between are not counted, new ones fully. */
const wakeupDelta = (a: Map<string, number>, b: Map<string, number>): number => [...b.entries()].reduce((acc, [tid, n]) => acc + (n - (a.get(tid) ?? 0)), 0);

export function memAvailableMiB(): number {
  const t = readFileSync('/proc/meminfo', 'utf8');
  return Number(/^MemAvailable:\s+(\d+) kB/m.exec(t)?.[1] ?? NaN) / 1024;
}

function memTotalMiB(): number {
  return Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? NaN) / 1024;
}

/** Whole-host CPU counters (all cores) from /proc/stat: busy and total jiffies. */
function hostCpu(): { busy: number; total: number } {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] || 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export interface DeploymentProcs { qemu: number | null; supervisor: number | null }

/**
 * The processes behind each deployment of a private UNIKCTL_HOME: the QEMU (`-name unikctl-NAME,...`) and the
 * supervisor (`node .../worker.js deploy NAME OPID`), told apart by their command lines; only processes whose
 * environment holds UNIKCTL_HOME=home count, so nothing of another user or test is ever touched.
 */
export function findDeploymentProcs(home: string): Map<string, DeploymentProcs> {
  const needle = Buffer.from(`\0UNIKCTL_HOME=${home}\0`);
  const out = new Map<string, DeploymentProcs>();
  const entry = (n: string): DeploymentProcs => { let e = out.get(n); if (!e) { e = { qemu: null, supervisor: null }; out.set(n, e); } return e; };
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const env = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${d}/environ`), Buffer.from([0])]);
      if (!env.includes(needle)) continue;
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const pid = Number(d);
      if (argv[0]?.endsWith(QEMU)) {
        const nameArg = argv[argv.indexOf('-name') + 1] ?? '';
        const m = /^unikctl-([^,]+)/.exec(nameArg);
        if (m?.[1]) entry(m[1]).qemu = pid;
      } else {
        const w = argv.findIndex((a) => a.endsWith('worker.js'));
        const dep = argv[w + 2];
        if (w >= 0 && argv[w + 1] === 'deploy' && dep) entry(dep).supervisor = pid;
      }
    } catch { /* gone, or not ours */ }
  }
  return out;
}

/** The deployments whose QEMU was found, with its pid. */
function withQemu(procs: Map<string, DeploymentProcs>): Array<[string, { qemu: number; supervisor: number | null }]> {
  return [...procs.entries()].flatMap(([n, p]) => (p.qemu ? [[n, { qemu: p.qemu, supervisor: p.supervisor }] as [string, { qemu: number; supervisor: number | null }]] : []));
}

/** QEMU processes of this run's direct boots that are still alive (should be none). */
function directQemuLeft(): number[] {
  const re = new RegExp(`^unikctl-d(flag|boot|cont|ksm)-${process.pid}-`);
  const left: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith(QEMU) && re.test(argv[argv.indexOf('-name') + 1] ?? '')) left.push(Number(d));
    } catch { /* gone */ }
  }
  return left;
}

interface IdleWindow { seconds: number | null; cpuPctOfCore: Array<number | null>; wakeupsPerSec: Array<number | null>; totalCpuPctOfCore: number | null; hostBusyPctOfMachine: number | null }

/** CPU % of one core and wake-ups/s of a set of processes over a window. */
async function idleWindow(pids: readonly number[], seconds: number): Promise<IdleWindow> {
  const t0 = performance.now();
  const c0 = pids.map(procTicks);
  const w0 = pids.map(procWakeups);
  const h0 = hostCpu();
  await sleep(seconds * 1000);
  const dt = (performance.now() - t0) / 1000;
  const c1 = pids.map(procTicks);
  const w1 = pids.map(procWakeups);
  const h1 = hostCpu();
  const cpuPct = pids.map((_, i) => (((c1[i] ?? NaN) - (c0[i] ?? NaN)) / CLK_TCK / dt) * 100);
  const wakeups = pids.map((_, i) => wakeupDelta(w0[i] ?? new Map(), w1[i] ?? new Map()) / dt);
  const hostBusyPctOfMachine = ((h1.busy - h0.busy) / Math.max(1, h1.total - h0.total)) * 100;
  return { seconds: r2(dt), cpuPctOfCore: cpuPct.map(r2), wakeupsPerSec: wakeups.map(r1), totalCpuPctOfCore: r2(sum(cpuPct)), hostBusyPctOfMachine: r1(hostBusyPctOfMachine) };
}

function machine(): { hostname: string; cpuModel: string; cores: number; memTotalMiB: number; accel: string; accelLabel: string; hostKernel: string; transparentHugepage: string; ksmRun: number | null } {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  let thp = 'unknown';
  try { thp = /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? thp; } catch { /* no THP */ }
  let ksm: number | null = null;
  try { ksm = Number(readFileSync('/sys/kernel/mm/ksm/run', 'utf8')); } catch { /* no KSM */ }
  const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  return { hostname: hostname(), cpuModel: model, cores: cpus().length, memTotalMiB: Math.round(memTotalMiB()), accel: ACCEL, accelLabel: 'TCG (software emulation, no KVM)', hostKernel: kernel, transparentHugepage: thp, ksmRun: ksm };
}

// ---------------------------------------------------------------- the baseline: the same program on the host

interface HostBaseline { skipped?: string; what?: string; binaryBytes?: number; spawnToFirstOutputMs?: number | null; mem?: Mem | null; idleCpuPctOfCore?: number | null; wakeupsPerSec?: number | null; window?: IdleWindow }

async function hostBaseline(workDir: string): Promise<HostBaseline> {
  const goBin = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (goBin.status !== 0) return { skipped: 'go is not installed: the host-process baseline needs the Go toolchain' };
  const out = join(workDir, 'go-http-host');
  // the go pack's release flags (src/image/packs/go.ts): static, trimmed, stripped
  const b = await run(['go', 'build', '-trimpath', '-buildvcs=false', '-ldflags=-s -w -buildid=', '-o', out, '.'], {
    cwd: EXAMPLE, env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' },
  });
  if (b.code !== 0) return { skipped: `go build failed: ${b.stderr.trim().split('\n').at(-1)}` };
  const port = await freePort();
  const t0 = performance.now();
  const child = track(spawn(out, [], { env: { PATH: process.env.PATH, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let firstOutputMs: number | null = null;
  await new Promise<void>((resolve) => {
    const onData = (): void => { if (firstOutputMs === null) { firstOutputMs = performance.now() - t0; resolve(); } };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData); // log.Printf writes to stderr
    child.on('exit', () => resolve());
    setTimeout(resolve, 10_000);
  });
  if (firstOutputMs === null) { child.kill('SIGKILL'); return { skipped: 'the host binary did not start' }; }
  await sleep(Math.min(opts.settle, 10) * 1000);
  const pid = child.pid ?? 0;
  const mem = procMem(pid);
  const idle = await idleWindow([pid], opts.idleSeconds);
  child.kill('SIGKILL');
  return {
    what: 'examples/go-http built with the go pack\'s release flags, run directly on the host (no VM, no supervisor)',
    binaryBytes: Number(spawnSync('stat', ['-c', '%s', out], { encoding: 'utf8' }).stdout.trim()),
    spawnToFirstOutputMs: r1(firstOutputMs), mem, idleCpuPctOfCore: idle.cpuPctOfCore[0] ?? null, wakeupsPerSec: idle.wakeupsPerSec[0] ?? null, window: idle,
  };
}

// ---------------------------------------------------------------- direct QEMU boots (flag experiments)

/** One change to the runtime's QEMU argv or kernel command line (see BASE_VARIANTS). */
interface Variant {
  id: string; label: string; change: string;
  launcher?: 'setpriv'; kernel?: 'raw'; strip?: string[]; append?: string; needs?: string; accel?: string; memfd?: boolean; memoryMiB?: number;
  env?: Record<string, string>; extraArgs?: string[];
}

/** A directly spawned QEMU of the flag experiments. */
interface DirectVm { child: ChildProcess; pid: number; argv: string[]; kernelLines: string[]; firstOutputMs: number | null; error: string | null; exited?: boolean }

interface Direct {
  argvFor: (v: Variant, name: string, nonce: string) => string[];
  start: (v: Variant, name: string, o?: { keepKernelLines?: boolean }) => Promise<DirectVm>;
  stop: (vms: DirectVm[]) => Promise<void>;
}

function makeDirect({ manifest, vmlinux, rawKernel, rootfs }: { manifest: ImageManifest; vmlinux: string; rawKernel?: string | null; rootfs: string }): Direct {
  /** Applies a variant to the runtime's argv and cmdline; returns the argv. */
  const argvFor = (v: Variant, name: string, nonce: string): string[] => {
    let cmdline = kernelCmdline({
      accel: ACCEL, debug: false, network: true,
      guest: { argv: manifest.run.command, env: manifest.run.env, workdir: manifest.run.workdir, nonce, hostname: name, hostTimeMs: Date.now(), debug: false },
    });
    const strip = v.strip;
    if (strip) cmdline = cmdline.split(' ').filter((t) => !strip.some((p) => tokenMatches(t, p))).join(' ');
    if (v.append) cmdline = `${cmdline} ${v.append}`;
    const memoryMiB = v.memoryMiB ?? manifest.run.memoryMiB;
    const argv = qemuArgs({ name, kernel: v.kernel === 'raw' && rawKernel ? rawKernel : vmlinux, rootfs, memoryMiB, cpus: 1, accel: ACCEL, ports: [], cmdline });
    if (v.accel) argv[argv.indexOf('-accel') + 1] = v.accel;
    if (v.memfd) argv.push('-object', `memory-backend-memfd,id=ram,size=${memoryMiB}M,share=on`, '-machine', 'memory-backend=ram');
    if (v.extraArgs) argv.push(...v.extraArgs);
    return argv;
  };
  /** Boots one VM and keeps it running; resolves at the app's first output (or failure). */
  const start = (v: Variant, name: string, { keepKernelLines = false } = {}): Promise<DirectVm> => new Promise((resolve) => {
    const nonce = randomBytes(8).toString('hex');
    const argv = argvFor(v, name, nonce);
    const t0 = performance.now();
    // the thp variant asks the runtime's own launch rule for huge pages (it then starts QEMU through setpriv)
    const launch = launchCommand(argv, undefined, undefined, v.launcher === 'setpriv' ? { ...process.env, UNIKCTL_GUEST_THP: 'on' } : process.env);
    const child = track(spawn(launch.file, launch.args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...(v.env ?? {}) } }));
    child.stdin.on('error', () => {});
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr = (stderr + c).slice(-2000); });
    const vm: DirectVm = { child, pid: child.pid ?? 0, argv, kernelLines: [], firstOutputMs: null, error: null };
    let started = false;
    let done = false;
    const finish = (): void => { if (!done) { done = true; clearTimeout(timer); resolve(vm); } };
    const parser = new ConsoleParser(nonce, {
      line: (l) => {
        if (keepKernelLines && l.stream === 'kernel') vm.kernelLines.push(l.text);
        if (l.stream === 'app' && started && vm.firstOutputMs === null) { vm.firstOutputMs = r1(performance.now() - t0); finish(); }
      },
      event: (e) => { if (e.event === 'start') started = true; },
    });
    child.stdout.on('data', (c: Buffer) => parser.push(c));
    child.on('exit', (code, sig) => { vm.exited = true; vm.error ??= `QEMU exited (${sig ?? code})${stderr.trim() ? `: ${stderr.trim().split('\n').at(-1)}` : ''}`; finish(); });
    const timer = setTimeout(() => { vm.error = 'no app output within 120 s'; finish(); }, 120_000);
  });
  const stop = async (vms: DirectVm[]): Promise<void> => {
    for (const vm of vms) { try { vm.child.kill('SIGKILL'); } catch { /* gone */ } }
    await Promise.all(vms.map((vm) => (vm.exited ? null : new Promise<void>((r) => { vm.child.once('exit', () => r()); setTimeout(r, 5000); }))));
  };
  return { argvFor, start, stop };
}

/**
 * Each variant undoes one of the runtime's density settings, or tries one more, on top of the current argv.
 * `strip` removes kernel command-line tokens (an entry ending in "=" matches by prefix); `needs` drops the variant
 * when the current command line lacks that token.
 */
const BASE_VARIANTS: readonly Variant[] = [
  { id: 'current', label: 'current runtime argv (src/runtime/qemu.ts qemuArgs, launched through host/launch.c)', change: '(none)' },
  { id: 'thp', label: 'transparent huge pages back on', change: 'QEMU started by setpriv instead of host/launch.c (no PR_SET_THP_DISABLE)', launcher: 'setpriv' },
  { id: 'fat-kernel', label: 'the kernel ELF as linked', change: '-kernel: the vmlinux as linked (2 MiB alignment padding) instead of the lean copy', kernel: 'raw' },
  { id: 'erofs-cache', label: 'erofs compressed-page cache on', change: 'kernel cmdline: − rootflags=cache_strategy=disabled', strip: ['rootflags=cache_strategy=disabled'], needs: 'rootflags=cache_strategy=disabled' },
  { id: 'calibrate', label: 'guest calibrates its APIC timer', change: 'kernel cmdline: − lapic_timer_khz', strip: ['lapic_timer_khz='], needs: 'lapic_timer_khz=' },
  { id: 'pit', label: 'PIT clock events (UNIKCTL_TCG_TIMER=pit)', change: 'kernel cmdline: − lapic_timer_khz, + noapictimer', strip: ['lapic_timer_khz='], append: 'noapictimer', needs: 'lapic_timer_khz=' },
  { id: 'tb16', label: 'TCG translation cache 16 MiB', change: '-accel tcg,tb-size=16 (the default before: guest/4)', accel: 'tcg,tb-size=16' },
  { id: 'tb4', label: 'TCG translation cache 4 MiB', change: '-accel tcg,tb-size=4', accel: 'tcg,tb-size=4' },
  { id: 'memfd', label: 'guest RAM from a memfd', change: '-object memory-backend-memfd,id=ram,size=<mem>M,share=on -machine memory-backend=ram', memfd: true },
  { id: 'mem48', label: 'guest -m 48M', change: '-m 48M (instead of the image\'s 64M)', memoryMiB: 48 },
  { id: 'malloc', label: 'MALLOC_ARENA_MAX=1 for QEMU', change: 'QEMU env MALLOC_ARENA_MAX=1', env: { MALLOC_ARENA_MAX: '1' } },
];
const CURRENT = BASE_VARIANTS[0] as Variant;
let VARIANTS = BASE_VARIANTS;

const tokenMatches = (token: string, pattern: string): boolean => (pattern.endsWith('=') ? token.startsWith(pattern) : token === pattern);

/** Drops the variants that do not apply to this runtime (a token it does not add, a kernel file that is missing). */
function resolveVariants(currentCmdline: string, rawKernel: string | null): void {
  const tokens = currentCmdline.split(' ');
  VARIANTS = BASE_VARIANTS.filter((v) => { const needs = v.needs; return (!needs || tokens.some((t) => tokenMatches(t, needs))) && (v.kernel !== 'raw' || rawKernel !== null); });
}

/** One flag experiment: the variant's memory and idle CPU per VM, or why its VMs did not boot. */
type FlagRow =
  | (Omit<Variant, 'env'> & { env: undefined; ok: false; error: string | null })
  | { id: string; label: string; change: string; ok: true; vms: number; bootMs: Array<number | null>; perVm: Record<MemKey, number | null>;
    idleCpuPctOfCorePerVm: number | null; wakeupsPerSecPerVm: number | null; window: IdleWindow; samples: Array<Mem | null> };

async function flagExperiments(direct: Direct): Promise<FlagRow[]> {
  const results: FlagRow[] = [];
  for (const v of VARIANTS) {
    say(`density: flags: ${v.id} (${v.change}): ${opts.flagVms} VM(s)`);
    const vms: DirectVm[] = [];
    for (let i = 0; i < opts.flagVms; i++) vms.push(await direct.start(v, `dflag-${process.pid}-${v.id}-${i}`));
    const failed = vms.find((vm) => vm.firstOutputMs === null);
    if (failed) {
      await direct.stop(vms);
      results.push({ ...v, env: undefined, ok: false, error: failed.error });
      say(`density:   failed: ${failed.error}`);
      continue;
    }
    await sleep(opts.flagSettle * 1000);
    const mems = vms.map((vm) => procMem(vm.pid));
    const idle = await idleWindow(vms.map((vm) => vm.pid), opts.idleSeconds);
    await direct.stop(vms);
    const m = (k: MemKey): number | null => r2(avg(mems.map((x) => x?.[k])));
    const row: FlagRow & { ok: true } = {
      id: v.id, label: v.label, change: v.change, ok: true, vms: vms.length,
      bootMs: vms.map((vm) => vm.firstOutputMs),
      perVm: { rss: m('rss'), pss: m('pss'), uss: m('uss'), pssAnon: m('pssAnon'), pssShmem: m('pssShmem'), pssFile: m('pssFile'), anonHuge: m('anonHuge') },
      idleCpuPctOfCorePerVm: r2(avg(idle.cpuPctOfCore)), wakeupsPerSecPerVm: r1(avg(idle.wakeupsPerSec)), window: idle, samples: mems,
    };
    results.push(row);
    say(`density:   QEMU per VM: RSS ${row.perVm.rss} MiB, USS ${row.perVm.uss} MiB, PSS ${row.perVm.pss} MiB (anon ${row.perVm.pssAnon}, guest-RAM shmem ${row.perVm.pssShmem}, THP ${row.perVm.anonHuge}); idle ${row.idleCpuPctOfCorePerVm} % of a core, ${row.wakeupsPerSecPerVm} wake-ups/s`);
  }
  return results;
}

/** Interleaved boot series (spawn → first app output) for the variants whose boot time might change. */
async function flagBootSeries(direct: Direct, ids: string[]): Promise<Record<string, { samples: Array<number | null>; summary: Summary }>> {
  const series: Record<string, Array<number | null>> = Object.fromEntries(ids.map((id) => [id, []]));
  for (let i = 0; i < opts.bootRuns; i++) {
    const order = i % 2 ? [...ids].reverse() : ids;
    for (const id of order) {
      const v = VARIANTS.find((x) => x.id === id);
      if (!v) continue;
      const vm = await direct.start(v, `dboot-${process.pid}-${id}`);
      await direct.stop([vm]);
      (series[id] ??= []).push(vm.firstOutputMs);
    }
  }
  say(`density: flags: boot series (${opts.bootRuns} each, interleaved): ${ids.map((id) => `${id} p50 ${summarize(series[id] ?? []).p50} ms`).join(', ')}`);
  return Object.fromEntries(ids.map((id) => [id, { samples: series[id] ?? [], summary: summarize(series[id] ?? []) }]));
}

interface ContendedRow {
  id: string; change: string; vms: number; booted: number; tscMarkedUnstable: number;
  idleCpuPctOfCorePerVm: number | null; wakeupsPerSecPerVm: number | null; window: IdleWindow; clocksourceLines: string[];
}

/**
 * The same VMs booted while every host core is saturated by a busy loop (what a crowded host looks like):
 * the guest's clocksource watchdog, whose reference is jiffies, sees the TSC "skew" when the vCPU thread is
 * descheduled, marks the TSC unstable and falls back to jiffies; the guest then keeps a periodic tick.
 * The kernel console goes to loglevel 5 here (warnings) to catch that message.
 */
async function contendedExperiment(direct: Direct): Promise<ContendedRow[]> {
  const pairs = [VARIANTS.find((v) => v.id === 'current'), VARIANTS.find((v) => v.id === 'pit')].filter((v): v is Variant => v !== undefined);
  const out: ContendedRow[] = [];
  for (const base of pairs) {
    const v = { ...base, append: [base.append, 'loglevel=5'].filter(Boolean).join(' ') };
    const hogs = Array.from({ length: cpus().length + 1 }, () => track(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' })));
    const vms: DirectVm[] = [];
    try {
      for (let i = 0; i < opts.flagVms; i++) vms.push(await direct.start(v, `dcont-${process.pid}-${base.id}-${i}`, { keepKernelLines: true }));
      await sleep(3000); // the watchdog runs every 0.5 s
    } finally {
      for (const h of hogs) h.kill('SIGKILL');
    }
    await sleep(opts.flagSettle * 1000);
    const ok = vms.filter((vm) => vm.firstOutputMs !== null && !vm.exited);
    const idle = await idleWindow(ok.map((vm) => vm.pid), opts.idleSeconds);
    const lines = vms.flatMap((vm) => vm.kernelLines);
    await direct.stop(vms);
    const unstable = vms.filter((vm) => vm.kernelLines.some((l) => /Marking clocksource '[^']*' as unstable|Marking TSC unstable|TSC found unstable|Switched to clocksource (refined-)?jiffies/.test(l))).length;
    const row = {
      id: base.id, change: base.change, vms: vms.length, booted: ok.length, tscMarkedUnstable: unstable,
      idleCpuPctOfCorePerVm: r2(avg(idle.cpuPctOfCore)), wakeupsPerSecPerVm: r1(avg(idle.wakeupsPerSec)), window: idle,
      clocksourceLines: [...new Set(lines.filter((l) => /clocksource|TSC|tsc/.test(l)).map((l) => l.replace(/^\[\s*[\d.]+\]\s*/, '')))].slice(0, 12),
    };
    out.push(row);
    say(`density: contended boots, ${base.id}: TSC marked unstable in ${unstable}/${vms.length} VM(s); afterwards idle ${row.idleCpuPctOfCorePerVm} % of a core and ${row.wakeupsPerSecPerVm} wake-ups/s per VM`);
  }
  return out;
}

/** KSM over identical guests, or why it was not measured. */
interface KsmResult {
  skipped?: string; variant?: string; vms?: number; settingsDuring?: { run: number; pages_to_scan: number }; restored?: { run: string; pages_to_scan: string };
  pagesSharing?: number; pssPerVmBefore?: number | null; pssPerVmAfter?: number | null; ussPerVmBefore?: number | null; ussPerVmAfter?: number | null;
  ksmdCpuPctOfCore?: number | null; windowSeconds?: number;
}

/** Kernel same-page merging across identical guests (opt-in, root): enable KSM, wait, measure, restore. */
async function ksmExperiment(direct: Direct): Promise<KsmResult> {
  const base = '/sys/kernel/mm/ksm';
  const read = (f: string): string => readFileSync(join(base, f), 'utf8').trim();
  let prior: { run: string; pages_to_scan: string };
  try { prior = { run: read('run'), pages_to_scan: read('pages_to_scan') }; } catch { return { skipped: 'no /sys/kernel/mm/ksm' }; }
  const v = VARIANTS.find((x) => x.id === 'current'); // anonymous guest RAM (KSM cannot merge the memfd's shared pages)
  if (!v) return { skipped: 'no current variant' };
  const n = Math.max(2, opts.flagVms);
  const vms: DirectVm[] = [];
  for (let i = 0; i < n; i++) vms.push(await direct.start(v, `dksm-${process.pid}-${i}`));
  await sleep(opts.flagSettle * 1000);
  const before = vms.map((vm) => procMem(vm.pid));
  const ksmd = spawnSync('pgrep', ['-x', 'ksmd'], { encoding: 'utf8' }).stdout.trim().split('\n')[0];
  const k0 = ksmd ? procTicks(Number(ksmd)) : NaN;
  const t0 = performance.now();
  try {
    writeFileSync(join(base, 'pages_to_scan'), '1000');
    writeFileSync(join(base, 'run'), '1');
  } catch (e) {
    await direct.stop(vms);
    const err = e as NodeJS.ErrnoException;
    return { skipped: `cannot enable KSM (${err.code ?? err.message}): needs root` };
  }
  onExit(() => { try { writeFileSync(join(base, 'run'), '2'); writeFileSync(join(base, 'run'), prior.run); writeFileSync(join(base, 'pages_to_scan'), prior.pages_to_scan); } catch { /* best effort */ } });
  await sleep(60_000);
  const after = vms.map((vm) => procMem(vm.pid));
  const ksmdCpuPct = ((procTicks(Number(ksmd)) - k0) / CLK_TCK / ((performance.now() - t0) / 1000)) * 100;
  const pagesSharing = Number(read('pages_sharing'));
  writeFileSync(join(base, 'run'), '2'); // unmerge
  await sleep(2000);
  writeFileSync(join(base, 'run'), prior.run);
  writeFileSync(join(base, 'pages_to_scan'), prior.pages_to_scan);
  await direct.stop(vms);
  const res = {
    variant: v.change, vms: n, settingsDuring: { run: 1, pages_to_scan: 1000 }, restored: prior, pagesSharing,
    pssPerVmBefore: r2(avg(before.map((m) => m?.pss))), pssPerVmAfter: r2(avg(after.map((m) => m?.pss))),
    ussPerVmBefore: r2(avg(before.map((m) => m?.uss))), ussPerVmAfter: r2(avg(after.map((m) => m?.uss))),
    ksmdCpuPctOfCore: r2(ksmdCpuPct), windowSeconds: 60,
  };
  say(`density: KSM over ${n} VMs: PSS per VM ${res.pssPerVmBefore} → ${res.pssPerVmAfter} MiB, ksmd ${res.ksmdCpuPctOfCore} % of a core`);
  return res;
}

// ---------------------------------------------------------------- main

type N = number | null;
/** null counts as 0 in the sums below, as it did when this file was JavaScript (a missing /proc figure). */
const z = (x: N | undefined): number => x ?? 0;

interface Step {
  n: number; name: string; ok: boolean; error?: string; deployWaitMs?: N;
  /** the deployment's boot record from `status --json` */
  boot?: Json;
  qemuPid?: number | null; supervisorPid?: number | null; memAvailableMiB?: N; running?: number;
  self?: { name: string; qemu: Mem | null; supervisor: Mem | null } | null;
  avgAll?: Record<'qemuRss' | 'qemuPss' | 'qemuUss' | 'supRss' | 'supPss' | 'supUss', N>;
  olderIdleCpuPct?: N;
}

interface Final {
  vms: number; memAvailableMiB: N; memAvailableDropMiB: N;
  qemu: Record<'rss' | 'pss' | 'uss' | 'pssAnon' | 'pssFile' | 'pssShmem' | 'anonHuge' | 'sharedPerProcess', N>;
  supervisor: Record<'rss' | 'pss' | 'uss' | 'pssAnon' | 'pssFile' | 'sharedPerProcess', N>;
  idle: {
    seconds: N; qemuTotalCpuPctOfCore: N; qemuPerVmCpuPct: N; supervisorTotalCpuPctOfCore: N; supervisorPerVmCpuPct: N;
    qemuWakeupsPerSecPerVm: N; hostBusyPctOfMachine: N; perProcess: { qemu: N[]; supervisor: N[] };
  };
  perVm: Array<{ name: string; qemuPid: number; supervisorPid: number | null; qemu: Mem | null; supervisor: Mem | null }>;
  /** per deployment, from `status --json` */
  metering: { source: string; deployments: Json[]; allReported: boolean };
  perVmTotalPss?: N;
}

async function main(): Promise<void> {
  installCleanup();
  // a private state directory: the benchmark never touches the user's deployments; kernels come from the shared cache
  const { home, env, cli } = privateHome('unikctl-density-', ACCEL);
  const started = new Date();
  const m = machine();
  const qemuVersion = (await run([QEMU, '--version'])).stdout.split('\n')[0]?.trim() ?? 'unknown';
  say(`density: up to ${opts.max} VMs on ${m.cpuModel} (${m.cores} cores, ${(m.memTotalMiB / 1024).toFixed(1)} GiB), ${m.accelLabel}, ${qemuVersion}; host THP ${m.transparentHugepage}`);

  // every deployment of this run is destroyed on exit; anything left with our private home is killed
  const live = new Set<string>();
  onExit(() => {
    const left = killByEnv('UNIKCTL_HOME', home);
    if (left.length) say(`density: killed leftover processes ${left.join(' ')}`);
  });
  onExit(() => { if (live.size) runSync([process.execPath, CLI, 'destroy', ...live, '--wait', '--timeout', '2'], { env, timeoutMs: 120_000 }); });

  // 1. the image
  say(`density: unikctl build ${relative(ROOT, EXAMPLE)}`);
  const built = await cli(['build', EXAMPLE, '--json']);
  if (built.code !== 0) throw new Error(`unikctl build failed:\n${built.stderr}${built.stdout}`);
  const buildInfo = JSON.parse(built.stdout) as { imageDir?: string };
  const imageDir = join(home, 'bench-image');
  cpSync(buildInfo.imageDir ?? join(EXAMPLE, '.unikctl', 'image'), imageDir, { recursive: true });
  const manifest = readImage(imageDir, { verify: true });
  const vmlinux = materializeKernel(imageDir, manifest, join(home, 'cache'));
  const rootfs = join(imageDir, manifest.rootfs.file);

  // 2. the host-process baseline
  say('density: baseline: the same Go program as a host process');
  const baseline = await hostBaseline(home);
  if (baseline.skipped) say(`density:   skipped: ${baseline.skipped}`);
  else say(`density:   host process: RSS ${baseline.mem?.rss} MiB, PSS ${baseline.mem?.pss} MiB, idle ${baseline.idleCpuPctOfCore} % of a core, first output after ${baseline.spawnToFirstOutputMs} ms`);

  // 3. the real path
  const memStart = memAvailableMiB();
  const steps: Step[] = [];
  let stopReason = `reached --max ${opts.max}`;
  let prevTicks: { at: number; ticks: Record<number, number> } | null = null;
  for (let i = 1; i <= opts.max; i++) {
    const avail = memAvailableMiB();
    if (avail < opts.minAvailableGiB * 1024) { stopReason = `host MemAvailable ${Math.round(avail)} MiB < ${opts.minAvailableGiB} GiB`; break; }
    const name = `d-${i}`;
    live.add(name);
    const t0 = performance.now();
    const d = await cli(['deploy', PACKAGE_REF, '--name', name, '--wait', '--timeout', '120', '--json']);
    const deployWaitMs = performance.now() - t0;
    const st = await cli(['status', name, '--json']);
    const dep: Json = st.code === 0 ? (JSON.parse(st.stdout) as Json).deployments?.find((x: Json) => x.name === name) : null;
    if (d.code !== 0 || dep?.state !== 'running') {
      stopReason = `VM ${i} failed: ${dep?.reason ?? (d.stderr.trim() || d.stdout.trim()).split('\n').at(-1)} (state ${dep?.state ?? 'unknown'})`;
      say(`density: ${stopReason}`);
      steps.push({ n: i, name, ok: false, error: stopReason });
      break;
    }
    // wait for the first app output (the runtime's boot record), which --wait does not include
    let boot: Json = dep.boot ?? {};
    for (let k = 0; k < 40 && boot.deployToFirstOutputMs === undefined; k++) {
      await sleep(250);
      const s2 = await cli(['status', name, '--json']);
      boot = (s2.code === 0 ? (JSON.parse(s2.stdout) as Json).deployments?.find((x: Json) => x.name === name)?.boot : null) ?? boot;
    }
    const procs = findDeploymentProcs(home);
    const all = withQemu(procs);
    const samples = all.map(([n, p]) => ({ name: n, qemu: procMem(p.qemu), supervisor: p.supervisor ? procMem(p.supervisor) : null }));
    const mine = samples.find((s) => s.name === name);
    // idle CPU of the VMs started before this one, since the previous step (a headroom check, not the final figure)
    const older = all.filter(([n]) => n !== name).map(([, p]) => p.qemu);
    const ticksNow: { at: number; ticks: Record<number, number> } = { at: performance.now(), ticks: Object.fromEntries(older.map((pid) => [pid, procTicks(pid)])) };
    let olderIdleCpuPct: N = null;
    const prev = prevTicks;
    if (prev && older.length) {
      const dt = (ticksNow.at - prev.at) / 1000;
      olderIdleCpuPct = r2(sum(older.map((pid) => { const a = prev.ticks[pid]; const b = ticksNow.ticks[pid]; return a !== undefined && b !== undefined ? (b - a) / CLK_TCK / dt * 100 : NaN; })));
    }
    prevTicks = { at: performance.now(), ticks: Object.fromEntries(all.map(([, p]) => [p.qemu, procTicks(p.qemu)])) };
    const step: Step = {
      n: i, name, ok: true, deployWaitMs: r1(deployWaitMs), boot, qemuPid: procs.get(name)?.qemu ?? null, supervisorPid: procs.get(name)?.supervisor ?? null,
      memAvailableMiB: r1(memAvailableMiB()), running: samples.length,
      self: mine ?? null,
      avgAll: {
        qemuRss: r2(avg(samples.map((s) => s.qemu?.rss))), qemuPss: r2(avg(samples.map((s) => s.qemu?.pss))), qemuUss: r2(avg(samples.map((s) => s.qemu?.uss))),
        supRss: r2(avg(samples.map((s) => s.supervisor?.rss))), supPss: r2(avg(samples.map((s) => s.supervisor?.pss))), supUss: r2(avg(samples.map((s) => s.supervisor?.uss))),
      },
      olderIdleCpuPct,
    };
    steps.push(step);
    say(`density: VM ${i}: deploy→first output ${boot.deployToFirstOutputMs ?? '?'} ms (deploy --wait ${Math.round(deployWaitMs)} ms); QEMU RSS ${mine?.qemu?.rss} / PSS ${mine?.qemu?.pss} MiB, supervisor RSS ${mine?.supervisor?.rss} / PSS ${mine?.supervisor?.pss} MiB; MemAvailable ${Math.round(z(step.memAvailableMiB))} MiB${olderIdleCpuPct !== null ? `; older VMs idle ${olderIdleCpuPct} % of a core` : ''}`);
    if (olderIdleCpuPct !== null && olderIdleCpuPct > opts.maxIdleCpu) { stopReason = `the idle VMs already use ${olderIdleCpuPct} % of one core (> --max-idle-cpu ${opts.maxIdleCpu})`; break; }
  }
  const upCount = steps.filter((s) => s.ok).length;

  // final sample after settling, idle CPU, metering
  let final: Final | null = null;
  if (upCount > 0) {
    say(`density: ${upCount} VMs up; settling ${opts.settle} s`);
    await sleep(opts.settle * 1000);
    const procs = findDeploymentProcs(home);
    const entries = withQemu(procs);
    const mem = entries.map(([n, p]) => ({ name: n, qemuPid: p.qemu, supervisorPid: p.supervisor, qemu: procMem(p.qemu), supervisor: p.supervisor ? procMem(p.supervisor) : null }));
    const qemuPids = entries.map(([, p]) => p.qemu);
    const supPids = entries.map(([, p]) => p.supervisor).filter((pid): pid is number => Boolean(pid));
    say(`density: idle CPU over ${opts.idleSeconds} s`);
    const both = await idleWindow([...qemuPids, ...supPids], opts.idleSeconds);
    const q = both.cpuPctOfCore.slice(0, qemuPids.length);
    const s = both.cpuPctOfCore.slice(qemuPids.length);
    const st = await cli(['status', '--json']);
    const deployments: Json[] = st.code === 0 ? (JSON.parse(st.stdout) as Json).deployments ?? [] : [];
    const metering = deployments.map((x: Json) => ({ name: x.name, state: x.state, imageBytes: x.imageBytes, bootMs: x.bootMs, deployToFirstOutputMs: x.boot?.deployToFirstOutputMs ?? null, cpuSeconds: x.metrics?.cpuSeconds ?? null, rssBytes: x.metrics?.rssBytes ?? null, supervisorRssBytes: x.metrics?.supervisorRssBytes ?? null }));
    const k = (arr: Array<Mem | null>, key: MemKey): N => r2(avg(arr.map((x) => x?.[key])));
    const qm = mem.map((x) => x.qemu);
    const sm = mem.map((x) => x.supervisor);
    const sharedOnce = (arr: Array<Mem | null>): N => r2(avg(arr.map((x) => (x ? z(x.rss) - z(x.uss) : NaN))));
    final = {
      vms: mem.length, memAvailableMiB: r1(memAvailableMiB()), memAvailableDropMiB: r1(memStart - memAvailableMiB()),
      qemu: { rss: k(qm, 'rss'), pss: k(qm, 'pss'), uss: k(qm, 'uss'), pssAnon: k(qm, 'pssAnon'), pssFile: k(qm, 'pssFile'), pssShmem: k(qm, 'pssShmem'), anonHuge: k(qm, 'anonHuge'), sharedPerProcess: sharedOnce(qm) },
      supervisor: { rss: k(sm, 'rss'), pss: k(sm, 'pss'), uss: k(sm, 'uss'), pssAnon: k(sm, 'pssAnon'), pssFile: k(sm, 'pssFile'), sharedPerProcess: sharedOnce(sm) },
      idle: {
        seconds: both.seconds, qemuTotalCpuPctOfCore: r2(sum(q)), qemuPerVmCpuPct: r2(avg(q)), supervisorTotalCpuPctOfCore: r2(sum(s)), supervisorPerVmCpuPct: r2(avg(s)),
        qemuWakeupsPerSecPerVm: r1(avg(both.wakeupsPerSec.slice(0, qemuPids.length))), hostBusyPctOfMachine: both.hostBusyPctOfMachine,
        perProcess: { qemu: q, supervisor: s },
      },
      perVm: mem,
      metering: {
        source: 'unikctl status --json (deployments[].metrics, boot, imageBytes)',
        deployments: metering,
        allReported: metering.length === mem.length && metering.every((x) => x.cpuSeconds !== null && x.rssBytes !== null && x.supervisorRssBytes !== null && x.deployToFirstOutputMs !== null && x.imageBytes !== null),
      },
    };
    final.perVmTotalPss = r2(z(final.qemu.pss) + (final.supervisor.pss ?? 0));
    say(`density: per VM after settling: QEMU RSS ${final.qemu.rss} / PSS ${final.qemu.pss} / USS ${final.qemu.uss} MiB; supervisor RSS ${final.supervisor.rss} / PSS ${final.supervisor.pss} / USS ${final.supervisor.uss} MiB; idle CPU: QEMU ${final.idle.qemuTotalCpuPctOfCore} % + supervisors ${final.idle.supervisorTotalCpuPctOfCore} % of one core for ${mem.length} VMs`);
  }

  // destroy everything, then verify that nothing is left
  const names = [...live];
  const cleanup: { destroyed: string[]; leftover: Array<{ name: string } & DeploymentProcs>; destroyMs?: number; verifiedNoQemuLeft?: boolean; verifiedNoDirectQemuLeft?: boolean } = { destroyed: [], leftover: [] };
  if (names.length) {
    say(`density: destroying ${names.length} deployments`);
    const t0 = performance.now();
    const x = await cli(['destroy', ...names, '--wait', '--timeout', '5', '--json']);
    cleanup.destroyMs = Math.round(performance.now() - t0);
    if (x.code === 0) { cleanup.destroyed = names; live.clear(); } else say(`density: destroy failed: ${x.stderr.trim()}`);
  }
  await sleep(500);
  const leftProcs = [...findDeploymentProcs(home).entries()].filter(([, p]) => p.qemu || p.supervisor);
  if (leftProcs.length) {
    cleanup.leftover = leftProcs.map(([n, p]) => ({ name: n, ...p }));
    const killed = killByEnv('UNIKCTL_HOME', home);
    say(`density: WARNING: ${leftProcs.length} deployment(s) had processes left after destroy; killed ${killed.join(' ')}`);
  }
  cleanup.verifiedNoQemuLeft = [...findDeploymentProcs(home).values()].every((p) => !p.qemu);

  // 4. flag experiments
  let flags: FlagRow[] | null = null;
  let flagBoot: Awaited<ReturnType<typeof flagBootSeries>> | null = null;
  let contended: ContendedRow[] | null = null;
  let ksm: KsmResult | null = null;
  if (opts.flags) {
    // the kernel as linked, next to the lean copy the runtime boots (for the fat-kernel variant)
    const linked = join(env.UNIKCTL_KERNEL_DIR ?? '', `release-${manifest.kernel.configHash}`, 'vmlinux');
    const rawKernel = existsSync(linked) ? linked : null;
    const direct = makeDirect({ manifest, vmlinux, rawKernel, rootfs });
    const cur = direct.argvFor(CURRENT, 'x', '0123456789abcdef');
    resolveVariants(cur[cur.indexOf('-append') + 1] ?? '', rawKernel);
    flags = await flagExperiments(direct);
    flagBoot = await flagBootSeries(direct, ['current', 'calibrate', 'pit', 'erofs-cache', 'fat-kernel', 'tb16', 'tb4'].filter((id) => VARIANTS.some((v) => v.id === id)));
    if (opts.contend) contended = await contendedExperiment(direct);
    if (opts.ksm) ksm = await ksmExperiment(direct);
    cleanup.verifiedNoDirectQemuLeft = directQemuLeft().length === 0;
  }

  // 5. summary, extrapolation, targets
  const summary = summarizeDensity({ steps, final, baseline, upCount });
  const written = {
    schema: 'unikctl.bench.density/v1',
    startedAt: started.toISOString(), finishedAt: new Date().toISOString(),
    machine: { ...m, qemu: qemuVersion, node: process.version },
    note: `absolute figures are ${m.accelLabel} on ${m.cpuModel} (${m.cores} cores, ${(m.memTotalMiB / 1024).toFixed(1)} GiB), a machine shared with other work; memory per VM carries over to other hosts, CPU and times do not`,
    options: opts, quick: opts.quick,
    image: { ref: PACKAGE_REF, pack: manifest.pack, mode: manifest.mode, size: manifest.size, memoryMiB: manifest.run.memoryMiB },
    currentArgv: makeDirect({ manifest, vmlinux, rootfs }).argvFor(CURRENT, 'NAME', '0123456789abcdef'),
    variants: VARIANTS.map((v) => ({ id: v.id, change: v.change })),
    baseline, stopReason, memAvailableAtStartMiB: r1(memStart), steps, final, cleanup, flags, flagBoot, contended, ksm, summary, targets: summary.targets,
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `density-${fileStamp(started)}-${m.hostname}.json`);
  writeFileSync(file, `${JSON.stringify(written, null, 2)}\n`);
  const result = { ...written, file: relative(ROOT, file) };
  if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${textReport(result)}\n`);
  if (!cleanup.verifiedNoQemuLeft) process.exitCode = 1;
}

interface DensityTarget { target: string; value: string; pass: boolean | null; extrapolated?: boolean; verdict: string }
interface DensitySummary {
  vmsStarted: number;
  timeToNth: Array<{ n: number; deployToFirstOutputMs: N; deployWaitMs: N | undefined }>;
  targets: DensityTarget[];
  perVm?: Record<string, N | undefined>;
  hostGiBFor100?: N; hostGiBFor100QemuOnly?: N; idleCpuFor100PctOfCore?: N;
  nthVm?: { n: number | undefined; deployToFirstOutputMs: N; firstVmMs: N };
  vsHostProcess?: Record<string, N | undefined>;
}

/** Per-VM cost, extrapolation to 100 VMs and the issue's targets. */
export function summarizeDensity({ steps, final, baseline, upCount }: { steps: Step[]; final: Final | null; baseline: HostBaseline | null; upCount: number }): DensitySummary {
  const ok = steps.filter((s) => s.ok);
  const last = ok.at(-1);
  const timeToNth = ok.map((s) => ({ n: s.n, deployToFirstOutputMs: s.boot?.deployToFirstOutputMs ?? null, deployWaitMs: s.deployWaitMs }));
  const out: DensitySummary = { vmsStarted: upCount, timeToNth, targets: [] };
  if (!final) return out;
  // host memory for N VMs = N × private (USS) + the shared pages once (QEMU binary, libraries, the kernel file, node)
  const need = (n: number, q: Final['qemu'], s: Final['supervisor'] | null): number => (n * (z(q.uss) + (s?.uss ?? 0)) + z(q.sharedPerProcess) + (s?.sharedPerProcess ?? 0)) / 1024;
  out.perVm = {
    qemuRss: final.qemu.rss, qemuPss: final.qemu.pss, qemuUss: final.qemu.uss,
    supervisorRss: final.supervisor.rss, supervisorPss: final.supervisor.pss, supervisorUss: final.supervisor.uss,
    totalPss: final.perVmTotalPss, totalUss: r2(z(final.qemu.uss) + (final.supervisor.uss ?? 0)),
  };
  out.hostGiBFor100 = r2(need(100, final.qemu, final.supervisor));
  out.hostGiBFor100QemuOnly = r2(need(100, final.qemu, null));
  const idleCpuFor100 = r2(((z(final.idle.qemuTotalCpuPctOfCore) + z(final.idle.supervisorTotalCpuPctOfCore)) / final.vms) * 100);
  out.idleCpuFor100PctOfCore = idleCpuFor100;
  out.nthVm = { n: last?.n, deployToFirstOutputMs: last?.boot?.deployToFirstOutputMs ?? null, firstVmMs: ok[0]?.boot?.deployToFirstOutputMs ?? null };
  const bm = baseline?.mem;
  if (baseline && !baseline.skipped && bm) {
    out.vsHostProcess = {
      qemuPssRatio: r1(z(final.qemu.pss) / z(bm.pss)), totalPssRatio: r1(z(final.perVmTotalPss) / z(bm.pss)), qemuRssRatio: r1(z(final.qemu.rss) / z(bm.rss)),
      hostProcessRss: bm.rss, hostProcessPss: bm.pss,
      startRatio: last?.boot?.deployToFirstOutputMs ? r1(last.boot.deployToFirstOutputMs / z(baseline.spawnToFirstOutputMs)) : null,
    };
  }
  const rssCur = z(final.qemu.rss);
  const targets: Array<Omit<DensityTarget, 'verdict'>> = [
    { target: `idle VM host RSS ≤ ${TARGETS.idleRssMiB} MiB (QEMU process RSS)`, value: `${rssCur} MiB RSS (PSS ${final.qemu.pss}, USS ${final.qemu.uss}); + supervisor RSS ${final.supervisor.rss} (PSS ${final.supervisor.pss}); host MemAvailable fell ${r1(z(final.memAvailableDropMiB) / final.vms)} MiB per VM`, pass: rssCur <= TARGETS.idleRssMiB },
    { target: `≥ ${TARGETS.vms} concurrent idle Go VMs`, value: upCount >= TARGETS.vms ? `${upCount} ran` : `${upCount} ran (not run at 100 on this shared machine); 100 would need ≈ ${out.hostGiBFor100} GiB host memory (QEMU + supervisors) of ${(memTotalMiB() / 1024).toFixed(1)} GiB`, pass: upCount >= TARGETS.vms ? true : null, extrapolated: upCount < TARGETS.vms },
    { target: `host CPU while ${TARGETS.vms} VMs idle ≤ ${TARGETS.idleCpuPctOfCore} % of one core`, value: `${out.idleCpuFor100PctOfCore} % (${final.vms >= TARGETS.vms ? 'measured over' : 'extrapolated from'} ${final.vms} VMs: QEMU ${final.idle.qemuTotalCpuPctOfCore} % + supervisors ${final.idle.supervisorTotalCpuPctOfCore} %)`, pass: z(idleCpuFor100) <= TARGETS.idleCpuPctOfCore, extrapolated: final.vms < TARGETS.vms },
  ];
  out.targets = targets.map((t) => ({ ...t, verdict: t.pass === null ? 'NOT RUN' : t.pass ? 'PASS' : 'MISS' }));
  return out;
}

/** What the text summary reads of the result. */
interface DensityReportInput {
  image: { ref: string; memoryMiB: number }; machine: { accelLabel: string; cpuModel: string; cores: number }; quick: boolean; stopReason: string;
  summary: DensitySummary; final: Final | null; baseline: HostBaseline; flags: FlagRow[] | null; flagBoot: Record<string, { summary: Summary }> | null;
  contended: ContendedRow[] | null; ksm: KsmResult | null; targets: DensityTarget[]; cleanup: { verifiedNoQemuLeft?: boolean }; file: string;
}

function textReport(r: DensityReportInput): string {
  const s = r.summary;
  const L = [];
  L.push('', `unikctl density benchmark — ${r.image.ref} (${r.image.memoryMiB} MiB guests), ${r.machine.accelLabel}, ${r.machine.cpuModel}, ${r.machine.cores} cores${r.quick ? ' (--quick: a smoke test, not a measurement)' : ''}`);
  L.push(`stopped: ${r.stopReason}; ${s.vmsStarted} VMs ran at once`);
  if (r.final) {
    const f = r.final;
    L.push('', 'per VM after settling (MiB)          RSS      PSS      USS');
    L.push(`  QEMU                            ${String(f.qemu.rss).padStart(7)}  ${String(f.qemu.pss).padStart(7)}  ${String(f.qemu.uss).padStart(7)}`);
    L.push(`  supervisor (node)               ${String(f.supervisor.rss).padStart(7)}  ${String(f.supervisor.pss).padStart(7)}  ${String(f.supervisor.uss).padStart(7)}`);
    if (r.baseline && !r.baseline.skipped) L.push(`  baseline: same app, host process ${String(r.baseline.mem?.rss).padStart(7)}  ${String(r.baseline.mem?.pss).padStart(7)}  ${String(r.baseline.mem?.uss).padStart(7)}`);
    L.push(`idle CPU (${f.idle.seconds} s): QEMU ${f.idle.qemuTotalCpuPctOfCore} % + supervisors ${f.idle.supervisorTotalCpuPctOfCore} % of one core for ${f.vms} VMs (${f.idle.qemuWakeupsPerSecPerVm} QEMU wake-ups/s per VM); host busy ${f.idle.hostBusyPctOfMachine} % of the machine (includes other work)`);
    L.push(`time to the N-th VM (deploy → first output): 1st ${s.nthVm?.firstVmMs} ms, #${s.nthVm?.n} ${s.nthVm?.deployToFirstOutputMs} ms; MemAvailable dropped ${f.memAvailableDropMiB} MiB`);
    L.push(`100 VMs would need ≈ ${s.hostGiBFor100} GiB (N × USS + shared pages once); idle CPU ≈ ${s.idleCpuFor100PctOfCore} % of one core`);
    L.push(`metering (status --json): ${f.metering.allReported ? 'cpuSeconds, rssBytes, supervisorRssBytes, boot and imageBytes reported for every deployment' : 'INCOMPLETE'}`);
  }
  if (r.flags) {
    L.push('', 'QEMU flag experiments (direct QEMU, per VM, MiB)                    RSS     USS     PSS   idle%  wk/s  boot p50');
    for (const f of r.flags) {
      if (!f.ok) { L.push(`  ${f.id.padEnd(16)} FAILED: ${f.error}`); continue; }
      L.push(`  ${f.id.padEnd(16)} ${f.change.slice(0, 50).padEnd(50)} ${String(f.perVm.rss).padStart(6)}  ${String(f.perVm.uss).padStart(6)}  ${String(f.perVm.pss).padStart(6)}  ${String(f.idleCpuPctOfCorePerVm).padStart(5)}  ${String(f.wakeupsPerSecPerVm).padStart(4)}  ${r.flagBoot?.[f.id]?.summary.p50 ?? ''}`);
    }
  }
  if (r.contended) for (const c of r.contended) L.push(`  under CPU contention, ${c.id}: TSC marked unstable in ${c.tscMarkedUnstable}/${c.vms}; then idle ${c.idleCpuPctOfCorePerVm} % of a core, ${c.wakeupsPerSecPerVm} wake-ups/s per VM`);
  if (r.ksm && !r.ksm.skipped) L.push(`  KSM (${r.ksm.vms} VMs, 60 s): PSS per VM ${r.ksm.pssPerVmBefore} → ${r.ksm.pssPerVmAfter} MiB; ksmd ${r.ksm.ksmdCpuPctOfCore} % of a core`);
  L.push('', 'targets (from the issue)');
  for (const t of r.targets) L.push(`  ${t.verdict}${t.extrapolated ? '*' : ' '} ${t.target}: ${t.value}`);
  L.push('  * extrapolated, not run at that scale', '', `cleanup: ${r.cleanup.verifiedNoQemuLeft ? 'no QEMU left' : 'QEMU LEFT BEHIND'}`, `raw samples: ${r.file}`);
  return L.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    say(`density: ${e instanceof Error ? (process.env.UNIKCTL_DEBUG ? e.stack : e.message) : e}`);
    process.exit(1);
  });
}
