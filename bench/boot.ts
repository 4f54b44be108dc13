#!/usr/bin/env node
// Boot benchmark (npm run bench:boot [-- --runs N] [--json] [--quick] [--apps[=NAME,...]]).
//
// --apps: instead of the series below, deploy → first HTTP response of every framework example
// (bench/lib/apps.ts, one entry per example), N deploys each, p50/p95 per app (bench/lib/apps-boot.ts).
//
// 1. builds examples/go-http with the CLI;
// 2. the real path: `unikctl deploy` of the package N times (sequentially), reading the boot figures the
//    runtime records (deploy → first app output, VMM start → app start), destroying each deployment;
// 3. the baseline, measured in the same run: the SAME rootfs booted by QEMU spawned directly with the
//    runtime's own argv (src/runtime/qemu.ts qemuArgs: microvm, same devices, -accel tcg) with
//    (a) the unikctl vmlinux and (b) Debian's generic cloud kernel, N times each, interleaved, timing
//    QEMU spawn → first app line on the serial console. Any flag the generic kernel needs changed is
//    detected, used, and printed;
// 4. prints p50/p95/min/max, the generic/unikctl ratios, image sizes and the issue's targets (PASS/MISS);
// 5. writes every raw sample to bench/results/boot-<ISO date>-<hostname>.json.
// Every QEMU process and deployment it starts is stopped on exit, on error and on Ctrl-C.
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, homedir, hostname } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { materializeKernel, readImage } from '../src/image/image.js';
import { kernelCmdline } from '../src/runtime/cmdline.js';
import { qemuArgs } from '../src/runtime/qemu.js';
import type { VmmStartOptions } from '../src/runtime/vmm.js';
import { runApps } from './lib/apps-boot.js';
import { argvDiff } from './lib/argv-diff.js';
import { prepareGenericKernel } from './lib/generic-kernel.js';
import { freePort, installCleanup, killByEnv, onExit, run, runSync, sleep } from './lib/proc.js';
import { CLI, fileStamp, privateHome, RESULTS_DIR, ROOT } from './lib/harness.js';
import type { Json } from './lib/json.js';
import { bootOnce, QEMU, type BootResult } from './lib/qemu-boot.js';
import { summarize, type Summary } from './lib/stats.js';

const EXAMPLE = join(ROOT, 'examples', 'go-http');
const PACKAGE_REF = 'local/go-http:latest';
const GUEST_PORT = 8080;
const ACCEL: 'tcg' | 'kvm' = 'tcg'; // KVM hangs guests on the machines this was written for; absolute figures are TCG
const TARGETS = { p50Ms: 1500, speedup: 3, imageBytes: 6_000_000 };
const BOOT_TIMEOUT_MS = 120_000;
function usage(code: number): never {
  (code === 0 ? process.stdout : process.stderr).write(
    'usage: npm run bench:boot -- [--runs N] [--quick] [--json] [--apps[=NAME,...]]\n' +
    '  --apps     deploy → first HTTP response of the framework examples (bench/lib/apps.ts) instead\n' +
    '  --runs N   boots per series (default 10; at least 10 unless --quick)\n' +
    '  --quick    allow fewer runs (default 3) for a smoke test; the figures are then not a measurement\n' +
    '  --json     print only the JSON result on stdout\n');
  process.exit(code);
}

function parseArgs(argv: readonly string[]): { runs: number; json: boolean; quick: boolean; apps: string[] | null | false } {
  const o: { runs: number | null; json: boolean; quick: boolean; apps: string[] | null | false } = { runs: null, json: false, quick: false, apps: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--json') o.json = true;
    else if (a === '--apps') o.apps = null;
    else if (a.startsWith('--apps=')) o.apps = a.slice(7).split(',').filter(Boolean);
    else if (a === '--quick') o.quick = true;
    else if (a === '--runs' || a.startsWith('--runs=')) {
      const v = a.includes('=') ? a.slice(7) : argv[++i];
      if (!/^\d+$/.test(v ?? '')) { process.stderr.write(`bench: --runs needs a positive integer, got ${v}\n`); usage(2); }
      o.runs = Number(v);
    } else if (a === '-h' || a === '--help') usage(0);
    else { process.stderr.write(`bench: unknown option ${a}\n`); usage(2); }
  }
  const runs = o.runs ?? (o.quick ? 3 : 10);
  if (runs < 1 || (!o.quick && runs < 10)) {
    process.stderr.write(`bench: --runs ${runs} is too few for p95 (at least 10; use --quick for a smoke test)\n`);
    process.exit(2);
  }
  return { ...o, runs };
}

const opts = parseArgs(process.argv.slice(2));
const say = (m: string): void => { process.stderr.write(`${m}\n`); };
const fmtS = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : 'n/a');
const MiB = (b: number): string => `${(b / 1048576).toFixed(2)} MiB`;
const MB = (b: number): string => `${(b / 1e6).toFixed(2)} MB`;
const ratio = (a: number, b: number): number => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? Math.round((a / b) * 100) / 100 : NaN);

function machine() {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  return { hostname: hostname(), cpuModel: model, cores: cpus().length, accel: ACCEL, accelLabel: 'TCG (software emulation, no KVM)' };
}

async function apps(only: string[] | null): Promise<void> {
  installCleanup();
  const m = machine();
  say(`bench: framework apps, ${opts.runs} deploys each on ${m.cpuModel} (${m.cores} cores), ${m.accelLabel}`);
  const { file, results } = await runApps({ runs: opts.runs, accel: ACCEL, only, say });
  if (opts.json) { process.stdout.write(`${JSON.stringify({ file: relative(ROOT, file), results }, null, 2)}\n`); return; }
  const w = Math.max(...results.map((r) => r.example.length), 7);
  const out = ['', `deploy → first HTTP response (framework route), ${m.accelLabel}, ${opts.runs} deploys per app${opts.quick ? ' (--quick: a smoke test)' : ''}`, '',
    `${'example'.padEnd(w)} ${'image'.padStart(10)} ${'n'.padStart(3)} ${'p50'.padStart(8)} ${'p95'.padStart(8)} ${'max'.padStart(8)} ${'load'.padStart(11)}  framework`];
  for (const r of results) {
    out.push(r.error ? `${r.example.padEnd(w)} skipped: ${r.error}`
      : `${r.example.padEnd(w)} ${MiB(r.imageBytes ?? NaN).padStart(10)} ${String(r.summary.n).padStart(3)} ${fmtS(r.summary.p50).padStart(8)} ${fmtS(r.summary.p95).padStart(8)} ${fmtS(r.summary.max).padStart(8)} ${(r.loadAvg ? `${r.loadAvg.before.toFixed(1)}→${r.loadAvg.after.toFixed(1)}` : '').padStart(11)}  ${r.framework}`);
  }
  out.push('', 'load: the host\'s 1-minute load average before → after the app\'s deploys', `raw samples: ${relative(ROOT, file)}`);
  process.stdout.write(`${out.join('\n')}\n`);
  if (results.some((r) => (r.error && !r.skipped) || r.samples.some((s) => !s.ok))) process.exitCode = 1;
}

async function main(): Promise<void> {
  if (opts.apps !== false) return apps(opts.apps);
  installCleanup();
  // a private state directory: the benchmark never touches the user's deployments; kernels come from the shared cache
  const { home, env, cli } = privateHome('unikctl-bench-', ACCEL);
  const qemuVersion = (await run([QEMU, '--version'])).stdout.split('\n')[0]?.trim() ?? 'unknown';
  const started = new Date();
  const m = machine();
  say(`bench: ${opts.runs} runs per series on ${m.cpuModel} (${m.cores} cores), ${m.accelLabel}, ${qemuVersion}`);

  // 1. the image
  say(`bench: unikctl build ${relative(ROOT, EXAMPLE)}`);
  const built = await cli(['build', EXAMPLE]);
  if (built.code !== 0) throw new Error(`unikctl build failed:\n${built.stderr}${built.stdout}`);
  // freeze this run's image: a concurrent rebuild of the example cannot change what the series boot
  const imageDir = join(home, 'bench-image');
  cpSync(join(EXAMPLE, '.unikctl', 'image'), imageDir, { recursive: true });
  const manifest = readImage(imageDir, { verify: true });
  const vmlinux = materializeKernel(imageDir, manifest, join(home, 'cache'));
  const rootfs = join(imageDir, manifest.rootfs.file);

  // 2. the real path through the CLI
  const live = new Set<string>();
  // on exit (LIFO): destroy what is still deployed, then kill anything left that runs with our private home
  onExit(() => {
    const left = killByEnv('UNIKCTL_HOME', home);
    if (left.length) say(`bench: killed leftover processes ${left.join(' ')}`);
  });
  onExit(() => { for (const n of live) runSync([process.execPath, CLI, 'destroy', n, '--wait'], { env }); });
  const deployOnce = async (name: string): Promise<Json> => {
    const port = await freePort();
    live.add(name); // before the call: an interrupt during deploy must still destroy it
    const t0 = performance.now();
    const d = await cli(['deploy', PACKAGE_REF, '-p', `${port}:${GUEST_PORT}`, '--name', name, '--json']);
    const deployCliMs = performance.now() - t0;
    if (d.code !== 0) throw new Error(`unikctl deploy failed: ${d.stderr || d.stdout}`);
    const deadline = Date.now() + BOOT_TIMEOUT_MS;
    let dep: Json = null; // `status --json` output
    await sleep(600);
    while (Date.now() < deadline) {
      const s = await cli(['status', name, '--json']);
      dep = s.code === 0 ? (JSON.parse(s.stdout) as Json).deployments?.find((x: Json) => x.name === name) : null;
      if (dep && (dep.boot?.deployToFirstOutputMs !== undefined || ['exited', 'failed'].includes(dep.state))) break;
      await sleep(400); // sparse polling: each status call is a Node process competing with the guest for the CPUs
    }
    const x = await cli(['destroy', name, '--wait', '--json']);
    if (x.code === 0) live.delete(name);
    else say(`bench: destroy ${name} failed: ${x.stderr.trim()}`);
    const b = dep?.boot ?? {};
    const ok = b.deployToFirstOutputMs !== undefined;
    return {
      ok, name, deployCliMs: Math.round(deployCliMs), state: dep?.state ?? 'unknown',
      deployToFirstOutputMs: b.deployToFirstOutputMs ?? null, vmmStartToAppStartMs: b.vmmStartToAppStartMs ?? null,
      vmmStartToFirstOutputMs: b.vmmStartToFirstOutputMs ?? null, guestUptimeAtAppStartMs: b.guestUptimeAtAppStartMs ?? null,
      ...(ok ? {} : { error: dep?.reason ?? `no first output within ${BOOT_TIMEOUT_MS} ms (state ${dep?.state})` }),
    };
  };
  say('bench: warm-up deploy (not counted)');
  const cliWarmup = await deployOnce('bench-warmup');
  const cliSamples = [];
  for (let i = 1; i <= opts.runs; i++) {
    const r = await deployOnce(`bench-${i}`);
    cliSamples.push(r);
    say(`bench: deploy ${i}/${opts.runs}: ${r.ok ? `deploy→first output ${r.deployToFirstOutputMs} ms, VMM start→app start ${r.vmmStartToAppStartMs} ms` : `FAILED: ${r.error}`}`);
  }

  // 3. identical-QEMU comparison
  const cacheDir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'unikctl-bench');
  mkdirSync(cacheDir, { recursive: true });
  const generic = await prepareGenericKernel({ cacheDir, log: (l) => say(`bench: ${l}`) });
  say(`bench: generic kernel ${generic.package} ${generic.version}: ${Object.entries(generic.facts.options).map(([k, v]) => `${k}=${v}`).join(' ')}` +
    `, VIRTIO_MMIO_CMDLINE_DEVICES=${generic.facts.virtioMmioCmdlineDevices ? 'y' : 'n'}, IP_PNP=${generic.facts.ipPnp ? 'y' : 'n'}`);

  const baseOpts = (memoryMiB: number, port: number): Omit<VmmStartOptions, 'cmdline'> => ({
    name: `bench-${process.pid}`, kernel: vmlinux, rootfs, memoryMiB, cpus: 1, accel: ACCEL,
    ports: [{ hostAddress: '127.0.0.1', hostPort: port, guestPort: GUEST_PORT, protocol: 'tcp' }],
  });
  const guestCmdline = (nonce: string): string => kernelCmdline({
    accel: ACCEL, debug: false, network: true,
    guest: { argv: manifest.run.command, env: manifest.run.env, workdir: manifest.run.workdir, nonce, hostname: 'bench', hostTimeMs: Date.now(), debug: false },
  });
  const unikArgv = (o: Omit<VmmStartOptions, 'cmdline'>, cmdline: string): string[] => qemuArgs({ ...o, cmdline });
  // The generic kernel: same argv, with its bzImage, its initramfs (rdinit=/loader) and the machine changes it needs.
  const genericArgv = (o: Omit<VmmStartOptions, 'cmdline'>, cmdline: string, machineChanges: Record<string, string>): string[] => {
    const argv = qemuArgs({ ...o, kernel: generic.vmlinuz, cmdline: generic.rdinit ? `${cmdline} rdinit=${generic.rdinit}` : cmdline });
    const k = argv.indexOf('-kernel');
    if (generic.initrd) argv.splice(k + 2, 0, '-initrd', generic.initrd);
    const mi = argv.indexOf('-M') + 1;
    for (const [key, val] of Object.entries(machineChanges)) {
      argv[mi] = (argv[mi] ?? '').split(',').map((p) => (p.split('=')[0] === key ? `${key}=${val}` : p)).join(',');
    }
    return argv;
  };
  const boot = async (kind: 'unikctl' | 'generic', memoryMiB: number, machineChanges: Record<string, string> = {}): Promise<BootResult & { memoryMiB: number; qemuArgv: string[] | undefined }> => {
    const nonce = randomBytes(8).toString('hex');
    const o = baseOpts(memoryMiB, await freePort());
    const cmdline = guestCmdline(nonce);
    const qemuArgv = kind === 'unikctl' ? unikArgv(o, cmdline) : genericArgv(o, cmdline, machineChanges);
    const r = await bootOnce({ qemuArgv, nonce, timeoutMs: BOOT_TIMEOUT_MS });
    const round = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);
    return { ...r, spawnToAppStartMs: round(r.spawnToAppStartMs), spawnToFirstOutputMs: round(r.spawnToFirstOutputMs), memoryMiB, qemuArgv };
  };

  // Machine settings the generic kernel needs: without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES it cannot see the
  // virtio-mmio disk from the command line QEMU writes, only from ACPI tables, so microvm's ACPI goes on.
  const machineChanges: Record<string, string> = {};
  const why: string[] = [];
  if (!generic.facts.virtioMmioCmdlineDevices) {
    machineChanges.acpi = 'on';
    why.push('acpi=on: the generic kernel lacks CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so it finds the virtio-mmio devices only through ACPI (with acpi=off /dev/vda never appears)');
  }
  // Find the memory the generic kernel boots in, starting from the image's default (what deploy uses), and
  // check that its bzImage boots with the runtime's x-option-roms=off (microvm's qboot firmware loads it).
  const probes: Array<{ memoryMiB: number; machineChanges: Record<string, string>; ok: boolean; spawnToFirstOutputMs: number | null; error: string | null; consoleTail: string[] | undefined }> = [];
  let memoryMiB: number | null = null;
  const candidates = [...new Set([manifest.run.memoryMiB, 128, 256])].sort((a, b) => a - b);
  const variants: Array<{ mem: number; changes: Record<string, string> }> = [...candidates.map((mem) => ({ mem, changes: machineChanges })), { mem: 256, changes: { ...machineChanges, 'x-option-roms': 'on' } }];
  for (const variant of variants) {
    say(`bench: probing the generic kernel at ${variant.mem} MiB (${Object.entries(variant.changes).map(([k, v]) => `${k}=${v}`).join(', ') || 'runtime flags'})`);
    const r = await boot('generic', variant.mem, variant.changes);
    probes.push({ memoryMiB: variant.mem, machineChanges: variant.changes, ok: r.ok, spawnToFirstOutputMs: r.spawnToFirstOutputMs, error: r.error, consoleTail: r.consoleTail });
    if (r.ok) {
      memoryMiB = variant.mem;
      Object.assign(machineChanges, variant.changes);
      if (variant.changes['x-option-roms'] === 'on') why.push('x-option-roms=on: the bzImage does not boot with option ROMs off');
      break;
    }
    say(`bench:   failed: ${r.error}${r.consoleTail?.length ? ` (console: ${r.consoleTail.filter((l) => l.trim()).slice(-1)[0] ?? ''})` : ''}`);
  }
  if (memoryMiB === null) throw new Error(`the generic kernel does not boot the image: ${JSON.stringify(probes.at(-1))}`);
  if (memoryMiB !== manifest.run.memoryMiB) {
    const fail = probes.find((p) => p.memoryMiB === manifest.run.memoryMiB);
    why.push(`-m ${memoryMiB}M for BOTH kernels: the generic kernel does not boot in the image's ${manifest.run.memoryMiB} MiB (${fail?.error ?? 'failed'}${fail?.consoleTail?.some((l) => /panic/i.test(l)) ? `; ${(fail.consoleTail.find((l) => /panic/i.test(l)) ?? '').replace(/^\w+: (\[[^\]]*\] )?/, '')}` : ''})`);
  }
  say('bench: warm-up direct boot of the unikctl kernel (not counted)');
  const unikWarmup = await boot('unikctl', memoryMiB);
  if (!unikWarmup.ok) throw new Error(`the unikctl kernel does not boot directly: ${unikWarmup.error}\n${(unikWarmup.consoleTail ?? []).join('\n')}`);

  const direct: Record<'unikctl' | 'generic', Array<Awaited<ReturnType<typeof boot>>>> = { unikctl: [], generic: [] };
  for (let i = 0; i < opts.runs; i++) {
    // interleaved, alternating which goes first, so drift on the host hits both series alike
    for (const kind of i % 2 === 0 ? ['unikctl', 'generic'] as const : ['generic', 'unikctl'] as const) {
      const r = await boot(kind, memoryMiB, machineChanges);
      direct[kind].push(r);
      say(`bench: direct ${kind} ${i + 1}/${opts.runs}: ${r.ok ? `spawn→first output ${r.spawnToFirstOutputMs} ms` : `FAILED: ${r.error}`}`);
    }
  }

  // the two argvs for the same boot request (same nonce, port, host time), so only real differences show
  const sameOpts = baseOpts(memoryMiB, 8080);
  const sameCmdline = guestCmdline('0123456789abcdef');
  const refArgv = unikArgv(sameOpts, sameCmdline);
  const genArgv = genericArgv(sameOpts, sameCmdline, machineChanges);
  const label = (opt: string, v: string): string => (opt === '-kernel' ? (v === vmlinux ? 'unikctl vmlinux (ELF, PVH entry)' : `${v.split('/').pop()} (bzImage)`) : opt === '-initrd' ? `${v.split('/').pop()} (${MiB(generic.sizes.initramfs)})` : v);
  const flagDiffs = argvDiff(refArgv, genArgv, label);

  // 4. summary
  const S = {
    deployToFirstOutput: summarize(cliSamples.map((s) => s.deployToFirstOutputMs)),
    vmmStartToAppStart: summarize(cliSamples.map((s) => s.vmmStartToAppStartMs)),
    vmmStartToFirstOutput: summarize(cliSamples.map((s) => s.vmmStartToFirstOutputMs)),
    deployCli: summarize(cliSamples.map((s) => s.deployCliMs)),
    unikctl: summarize(direct.unikctl.map((s) => s.spawnToFirstOutputMs)),
    generic: summarize(direct.generic.map((s) => s.spawnToFirstOutputMs)),
    unikctlAppStart: summarize(direct.unikctl.map((s) => s.spawnToAppStartMs)),
    genericAppStart: summarize(direct.generic.map((s) => s.spawnToAppStartMs)),
  };
  const ratios = { p50: ratio(S.generic.p50, S.unikctl.p50), p95: ratio(S.generic.p95, S.unikctl.p95) };
  const imageSizes = {
    unikctlImage: manifest.size, unikctlKernelGz: manifest.kernel.size, rootfs: manifest.rootfs.size, unikctlVmlinux: manifest.kernel.rawSize,
    genericVmlinuz: generic.sizes.vmlinuz, genericInitramfs: generic.sizes.initramfs, genericModules: generic.sizes.modules, genericLoader: generic.sizes.loader,
  };
  const sizes = { ...imageSizes, genericImage: imageSizes.genericVmlinuz + imageSizes.genericInitramfs + imageSizes.rootfs };
  const failures = cliSamples.filter((s) => !s.ok).length + direct.unikctl.filter((s) => !s.ok).length + direct.generic.filter((s) => !s.ok).length;
  const verdict = (ok: boolean): string => (ok ? 'PASS' : 'MISS');
  const targets = [
    { target: 'p50 ≤ 1.5 s (unikctl deploy → first app output)', value: fmtS(S.deployToFirstOutput.p50), pass: S.deployToFirstOutput.p50 <= TARGETS.p50Ms },
    { target: '≥ 3× faster than the generic kernel (p50, spawn → first output)', value: `${ratios.p50}×`, pass: ratios.p50 >= TARGETS.speedup },
    { target: 'Go hello image (kernel + rootfs) ≤ 6 MB', value: `${MB(sizes.unikctlImage)} (${MiB(sizes.unikctlImage)})`, pass: sizes.unikctlImage <= TARGETS.imageBytes },
  ].map((t) => ({ ...t, verdict: verdict(t.pass) }));

  const result = {
    schema: 'unikctl.bench.boot/v1',
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { ...m, qemu: qemuVersion, node: process.version },
    note: `absolute times are ${m.accelLabel} on ${m.cpuModel} (${m.cores} cores); ratios are the portable figure`,
    runs: opts.runs, quick: opts.quick, failures,
    image: { ref: PACKAGE_REF, example: relative(ROOT, EXAMPLE), manifest: { name: manifest.name, pack: manifest.pack, mode: manifest.mode, kernel: manifest.kernel, rootfs: manifest.rootfs, size: manifest.size, memoryMiB: manifest.run.memoryMiB } },
    generic: { package: generic.package, version: generic.version, release: generic.release, facts: generic.facts, modules: generic.modules, sizes: generic.sizes, machineChanges, why, probes },
    comparison: { memoryMiB, cpus: 1, accel: ACCEL, flagDiffs, unikctlArgv: refArgv, genericArgv: genArgv },
    summaryMs: S, ratios, sizes, targets,
    samples: {
      cliWarmup, cli: cliSamples,
      directWarmup: unikWarmup && { ...unikWarmup, qemuArgv: undefined },
      unikctl: direct.unikctl.map((s) => ({ ...s, qemuArgv: undefined })),
      generic: direct.generic.map((s) => ({ ...s, qemuArgv: undefined })),
    },
  };

  // 5. raw samples
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `boot-${fileStamp(started)}-${m.hostname}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

  if (opts.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const row = (name: string, s: Summary): string => `${name.padEnd(54)} ${String(s.n).padStart(3)} ${fmtS(s.min).padStart(8)} ${fmtS(s.p50).padStart(8)} ${fmtS(s.p95).padStart(8)} ${fmtS(s.max).padStart(8)}`;
    const out = [
      '',
      `unikctl boot benchmark — ${PACKAGE_REF} (${manifest.pack}, ${manifest.mode}), ${opts.runs} runs per series${opts.quick ? ' (--quick: a smoke test, not a measurement)' : ''}`,
      `machine: ${m.cpuModel}, ${m.cores} cores, ${m.accelLabel}, ${qemuVersion}; absolute times are TCG figures, the ratios carry over`,
      '',
      `${'series'.padEnd(54)} ${'n'.padStart(3)} ${'min'.padStart(8)} ${'p50'.padStart(8)} ${'p95'.padStart(8)} ${'max'.padStart(8)}`,
      row('unikctl deploy → first app output (CLI, real)', S.deployToFirstOutput),
      row('unikctl VMM start → app start (CLI, real)', S.vmmStartToAppStart),
      row('unikctl VMM start → first app output (CLI)', S.vmmStartToFirstOutput),
      row('unikctl deploy command returns (CLI)', S.deployCli),
      row(`unikctl kernel: QEMU spawn → first output (${memoryMiB} MiB)`, S.unikctl),
      row(`generic kernel: QEMU spawn → first output (${memoryMiB} MiB)`, S.generic),
      row('  unikctl kernel: QEMU spawn → app start', S.unikctlAppStart),
      row('  generic kernel: QEMU spawn → app start', S.genericAppStart),
      '',
      `generic / unikctl (spawn → first output): p50 ${ratios.p50}×, p95 ${ratios.p95}×`,
      '',
      'sizes',
      `  unikctl image: kernel (vmlinux.br or .gz) ${MiB(sizes.unikctlKernelGz)} + rootfs.erofs ${MiB(sizes.rootfs)} = ${MiB(sizes.unikctlImage)} (${MB(sizes.unikctlImage)})`,
      `  unikctl raw vmlinux (what QEMU loads): ${MiB(sizes.unikctlVmlinux)}`,
      `  generic: vmlinuz ${MiB(sizes.genericVmlinuz)} + initramfs ${MiB(sizes.genericInitramfs)} (${generic.modules.length} modules ${MiB(sizes.genericModules)}, loader ${MiB(sizes.genericLoader)}) + same rootfs = ${MiB(sizes.genericImage)} (${MB(sizes.genericImage)})`,
      '',
      'targets (from the issue)',
      ...targets.map((t) => `  ${t.verdict}  ${t.target.padEnd(66)} ${t.value}`),
      '',
      `generic kernel: ${generic.package} ${generic.version} (bzImage, ${generic.facts.compression.replace('KERNEL_', '').toLowerCase()}), booted through an initramfs: bench/generic-kernel/loader.c loads ${generic.modules.map((x) => x.name).join(', ')}, mounts the erofs root, execs /init`,
      'QEMU argv differences, generic vs unikctl (everything else identical):',
      ...flagDiffs.map((d) => `  ${d}`),
      ...why.map((w) => `  why ${w}`),
      ...(failures ? ['', `${failures} boot(s) FAILED — see the JSON file`] : []),
      '',
      `raw samples: ${relative(ROOT, file)}`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  }
  if (failures) process.exitCode = 1;
}

main().catch((e) => {
  say(`bench: ${e instanceof Error ? (process.env.UNIKCTL_DEBUG ? e.stack : e.message) : e}`);
  process.exit(1);
});
