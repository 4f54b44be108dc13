#!/usr/bin/env node
// `npm run bench [-- --only boot|density|size|api|sched|slo[,...]] [--quick] [--runs N] [--max N] [--ksm] [--reuse] [--render-only]`
//
// Runs every benchmark part as a child process, merges their results with the machine description and a KVM
// probe into bench/results/<date>-<host>.json and renders bench/results/<date>-<host>.md with SVG charts.
// Options: see USAGE below (`npm run bench -- --help`).
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { materializeKernel, readImage } from '../src/image/image.js';
import { kernelCmdline } from '../src/runtime/cmdline.js';
import { qemuArgs } from '../src/runtime/qemu.js';
import { fileStamp, privateHome, RESULTS_DIR as RESULTS, ROOT } from './lib/harness.js';
import type { Json } from './lib/json.js';
import { installCleanup, track } from './lib/proc.js';
import { bootOnce } from './lib/qemu-boot.js';
import { renderReport } from './lib/report.js';

/** The compiled parts (dist-bench/bench/<part>.js) sit next to this compiled file. */
const PART_DIR = dirname(fileURLToPath(import.meta.url));
const ORDER = ['boot', 'size', 'density', 'api', 'sched', 'slo'] as const;
type PartName = (typeof ORDER)[number];
const USAGE = [
  'usage: npm run bench [-- --only boot|density|size|api|sched|slo[,...]] [--quick] [--runs N] [--max N] [--ksm] [--reuse] [--render-only]',
  '',
  'Runs every benchmark part as a child process (node dist-bench/bench/<part>.js --json ...; a part whose script does',
  'not exist yet is skipped with a note), merges their results with the machine description and a KVM probe',
  'into bench/results/<date>-<host>.json (raw samples included), and renders bench/results/<date>-<host>.md',
  'with SVG charts bench/results/<date>-<host>-<chart>.svg (bench/lib/report.ts, bench/lib/svg.ts).',
  '  --only LIST     run only these parts',
  '  --reuse         fill the parts not run with the newest earlier result of each (labelled as reused)',
  '  --render-only   run nothing: re-render from the newest result of every part',
  '  --render FILE   run nothing: re-render the report of an earlier merged result (bench/results/<date>-<host>.json)',
  '  --quick         smoke-test settings for every part (figures are then not a measurement)',
  '  --runs N        boots per series for the boot part (default 20)',
  '  --max N         VMs for the density part (default 100)',
  '  --ksm           let the density part measure KSM (root; toggles /sys/kernel/mm/ksm briefly)',
  '',
].join('\n');

function usage(code: number): never {
  (code === 0 ? process.stdout : process.stderr).write(USAGE);
  process.exit(code);
}

interface Options { only: string[] | null; quick: boolean; runs: string | null; max: string | null; ksm: boolean; reuse: boolean; renderOnly: boolean; render: string | null }

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { only: null, quick: false, runs: null, max: null, ksm: false, reuse: false, renderOnly: false, render: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const val = (): string => inline ?? argv[++i] ?? '';
    if (flag === '--only') o.only = val().split(/[,|]/).filter(Boolean);
    else if (flag === '--quick') o.quick = true;
    else if (flag === '--runs') o.runs = val();
    else if (flag === '--max') o.max = val();
    else if (flag === '--ksm') o.ksm = true;
    else if (flag === '--reuse') o.reuse = true;
    else if (flag === '--render-only') o.renderOnly = true;
    else if (flag === '--render') o.render = val();
    else if (flag === '-h' || flag === '--help') usage(0);
    else { process.stderr.write(`bench: unknown option ${a}\n`); usage(2); }
  }
  const bad = (o.only ?? []).filter((p) => !(ORDER as readonly string[]).includes(p));
  if (bad.length) { process.stderr.write(`bench: unknown part(s) ${bad.join(', ')} (parts: ${ORDER.join(', ')})\n`); process.exit(2); }
  for (const k of ['runs', 'max'] as const) if (o[k] !== null && !/^\d+$/.test(o[k] ?? '')) { process.stderr.write(`bench: --${k} needs a positive integer\n`); process.exit(2); }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const say = (m: string): void => { process.stderr.write(`${m}\n`); };

const PARTS: Record<PartName, { script: string; args: () => string[] }> = {
  boot: { script: 'boot.js', args: () => ['--json', '--runs', opts.runs ?? (opts.quick ? '3' : '20'), ...(opts.quick ? ['--quick'] : [])] },
  size: { script: 'size.js', args: () => ['--json'] },
  density: { script: 'density.js', args: () => ['--json', ...(opts.max ? ['--max', opts.max] : []), ...(opts.quick ? ['--quick'] : []), ...(opts.ksm ? ['--ksm'] : [])] },
  api: { script: 'api.js', args: () => ['--json', ...(opts.quick ? ['--duration', '2', '--warmup', '1'] : [])] },
  sched: { script: 'sched.js', args: () => ['--json', ...(opts.quick ? ['--quick'] : [])] },
  slo: { script: 'slo.js', args: () => ['--json', ...(opts.quick ? ['--samples', '100000', '--requests', '48'] : [])] },
};

/** The newest bench/results/<part>-*.json (optionally written after `since`). */
function newestResult(part: PartName, since = 0): string | null {
  if (!existsSync(RESULTS)) return null;
  const files = readdirSync(RESULTS).filter((f) => f.startsWith(`${part}-`) && f.endsWith('.json'))
    .map((f) => ({ f, t: statSync(join(RESULTS, f)).mtimeMs })).filter((x) => x.t >= since).sort((a, b) => b.t - a.t);
  return files[0] ? join(RESULTS, files[0].f) : null;
}

function parseJson(text: string): Json {
  const i = text.indexOf('{');
  if (i < 0) return null;
  try { return JSON.parse(text.slice(i)) as Json; } catch { return null; }
}

interface PartRun { absent?: string; error?: string; result?: Json; file?: string | null; exitCode?: number | null; failed?: boolean }

/** Runs one part; its progress (stderr) streams through, its JSON (stdout) is kept. */
function runPart(name: PartName): Promise<PartRun> {
  const p = PARTS[name];
  const script = join(PART_DIR, p.script);
  if (!existsSync(script)) return Promise.resolve({ absent: `${relative(ROOT, script)} does not exist yet: skipped` });
  const since = Date.now() - 1000;
  say(`\nbench: ===== ${name}: node ${relative(ROOT, script)} ${p.args().join(' ')}`);
  return new Promise((resolve) => {
    const child = track(spawn(process.execPath, [script, ...p.args()], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
    const out: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => process.stderr.write(c));
    child.on('close', (code) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const file = newestResult(name, since);
      // the part's own file is the complete record (some parts leave raw samples out of --json)
      let result: Json = null;
      if (file) { try { result = JSON.parse(readFileSync(file, 'utf8')) as Json; } catch { /* partial file */ } }
      result ??= parseJson(stdout);
      if (!result) { resolve({ error: `exited ${code} without a result`, exitCode: code }); return; }
      resolve({ result, file: file ? relative(ROOT, file) : null, exitCode: code, failed: code !== 0 });
    });
  });
}

function machine(qemu: string): { hostname: string; cpuModel: string; cores: number; memTotalMiB: number; hostKernel: string; qemu: string; node: string; accel: string; accelLabel: string } {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  const memTotalMiB = Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? NaN) / 1024;
  return {
    hostname: hostname(), cpuModel: model, cores: cpus().length, memTotalMiB: Math.round(memTotalMiB),
    hostKernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), qemu, node: process.version,
    accel: 'tcg', accelLabel: 'TCG (software emulation, no KVM)',
  };
}

/** Is KVM usable here? One direct boot of examples/go-http with -accel kvm, 20 s at most. */
async function probeKvm(): Promise<{ available: boolean | null; note: string; spawnToFirstOutputMs?: number | null; error?: string | null }> {
  try { accessSync('/dev/kvm', constants.R_OK | constants.W_OK); } catch { return { available: false, note: 'KVM: /dev/kvm is missing or not accessible, so no KVM figures.' }; }
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) return { available: null, note: 'KVM: not probed (run npm run build).' };
  const { home, cli } = privateHome('unikctl-kvmprobe-');
  const b = await cli(['build', join(ROOT, 'examples', 'go-http'), '--json']);
  const info = b.code === 0 ? parseJson(b.stdout) : null;
  if (!info) return { available: null, note: 'KVM: not probed (the go-http build failed).' };
  const imageDir = join(home, 'image');
  cpSync(info.imageDir, imageDir, { recursive: true });
  const manifest = readImage(imageDir);
  const vmlinux = materializeKernel(imageDir, manifest, join(home, 'cache'));
  const nonce = Math.random().toString(16).slice(2, 18).padEnd(16, '0');
  const cmdline = kernelCmdline({ accel: 'kvm', debug: false, network: true, guest: { argv: manifest.run.command, env: manifest.run.env, workdir: manifest.run.workdir, nonce, hostname: 'kvmprobe', hostTimeMs: Date.now(), debug: false } });
  const argv = qemuArgs({ name: `kvmprobe-${process.pid}`, kernel: vmlinux, rootfs: join(imageDir, manifest.rootfs.file), memoryMiB: manifest.run.memoryMiB, cpus: 1, accel: 'kvm', ports: [], cmdline });
  const r = await bootOnce({ qemuArgv: argv, nonce, timeoutMs: 20_000 });
  if (r.ok) return { available: true, spawnToFirstOutputMs: r.spawnToFirstOutputMs, note: `KVM: a probe boot worked (${Math.round(r.spawnToFirstOutputMs ?? NaN)} ms to first output) but the parts measure TCG; run them with UNIKCTL_ACCEL=kvm for KVM figures.` };
  return { available: false, error: r.error, note: `KVM: /dev/kvm exists but does not run this guest (probe: ${r.error}), so every figure is TCG.` };
}

/** Writes <base>.md and its SVG charts for a merged result. */
function writeReport(merged: Json, base: string): { mdFile: string; charts: number } {
  const svgName = (key: string): string => `${base}-${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}.svg`;
  const { markdown, svgs } = renderReport(merged, { svgFile: svgName });
  for (const [key, svg] of Object.entries(svgs)) writeFileSync(join(RESULTS, svgName(key)), svg);
  const mdFile = join(RESULTS, `${base}.md`);
  writeFileSync(mdFile, markdown);
  return { mdFile, charts: Object.keys(svgs).length };
}

async function main(): Promise<void> {
  installCleanup();
  if (opts.render) {
    const merged = JSON.parse(readFileSync(opts.render, 'utf8')) as Json;
    const { mdFile, charts } = writeReport(merged, (opts.render.split('/').pop() ?? '').replace(/\.json$/, ''));
    say(`bench: report ${relative(ROOT, mdFile)} (+ ${charts} SVG charts)`);
    process.stdout.write(`${relative(ROOT, mdFile)}\n`);
    return;
  }
  const started = new Date();
  const stamp = fileStamp(started);
  mkdirSync(RESULTS, { recursive: true });
  const qemu = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0]?.trim() ?? 'QEMU not found';
  const m = machine(qemu);
  const selected = opts.renderOnly ? [] : ORDER.filter((p) => !opts.only || opts.only.includes(p));
  const kvm: Awaited<ReturnType<typeof probeKvm>> = opts.renderOnly ? { available: null, note: '' } : await probeKvm();
  say(`bench: ${m.cpuModel}, ${m.cores} cores, ${(m.memTotalMiB / 1024).toFixed(1)} GiB; ${m.accelLabel}. ${kvm.note}`);

  const parts: Partial<Record<PartName, PartRun & { reused: boolean }>> = {};
  const absent: Partial<Record<PartName, string>> = {};
  for (const name of ORDER) {
    if (selected.includes(name)) {
      const r = await runPart(name);
      if (r.absent) { absent[name] = r.absent; say(`bench: ${r.absent}`); continue; }
      if (r.error) { absent[name] = `failed: ${r.error}`; say(`bench: ${name} ${r.error}`); continue; }
      parts[name] = { ...r, reused: false };
      if (r.failed) say(`bench: ${name} exited with code ${r.exitCode} (its result is kept and marked)`);
    } else if (opts.reuse || opts.renderOnly) {
      const file = newestResult(name);
      if (file) {
        try { parts[name] = { result: JSON.parse(readFileSync(file, 'utf8')) as Json, file: relative(ROOT, file), reused: true }; } catch { absent[name] = `newest result ${relative(ROOT, file)} is unreadable`; }
      } else absent[name] = existsSync(join(PART_DIR, PARTS[name].script)) ? 'not run' : `${relative(ROOT, join(PART_DIR, PARTS[name].script))} does not exist yet`;
    }
  }
  if (!Object.keys(parts).length) throw new Error('no part produced a result');

  const merged = {
    schema: 'unikctl.bench/v1', startedAt: started.toISOString(), finishedAt: new Date().toISOString(),
    machine: m, kvm, options: opts, absent, parts,
  };
  const base = `${stamp}-${m.hostname}`;
  const jsonFile = join(RESULTS, `${base}.json`);
  writeFileSync(jsonFile, `${JSON.stringify(merged)}\n`);
  const { mdFile, charts } = writeReport(merged, base);
  say(`\nbench: results ${relative(ROOT, jsonFile)}\nbench: report  ${relative(ROOT, mdFile)} (+ ${charts} SVG charts)`);
  process.stdout.write(`${relative(ROOT, mdFile)}\n`);
  if (Object.values(parts).some((p) => p.failed)) process.exitCode = 1;
}

main().catch((e) => {
  say(`bench: ${e instanceof Error ? (process.env.UNIKCTL_DEBUG ? e.stack : e.message) : e}`);
  process.exit(1);
});
