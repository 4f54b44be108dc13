// Renders the merged benchmark results (bench/index.ts) as Markdown plus SVG charts (bench/lib/svg.ts).
// Every figure is shown next to the baseline measured in the same run, as a ratio; absolute times carry the
// accelerator and the machine they were measured on.
import type { Json } from './json.js';
import { percentile } from './stats.js';
import { barChart, boxPlot, lineChart, stackedBarChart } from './svg.js';

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const f1 = (x: unknown): string => (isNum(x) ? (Math.round(x * 10) / 10).toString() : 'n/a');
const f2 = (x: unknown): string => (isNum(x) ? (Math.round(x * 100) / 100).toString() : 'n/a');
const ms = (x: unknown): string => (isNum(x) ? `${Math.round(x)} ms` : 'n/a');
const mib = (b: unknown): string => (isNum(b) ? `${(b / 1048576).toFixed(2)} MiB` : 'n/a');
const ratio = (a: unknown, b: unknown): string => (isNum(a) && isNum(b) && b > 0 ? `${(Math.round((a / b) * 100) / 100).toString()}×` : 'n/a');
const verdict = (pass: boolean | null | undefined): string => (pass === true ? '**PASS**' : pass === false ? '**MISS**' : 'not run');

/** Markdown table; the first `left` columns are left-aligned (text), the rest right-aligned (figures). */
function table(head: readonly string[], rows: ReadonlyArray<ReadonlyArray<unknown>>, left = 1): string {
  return [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i < left ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
const ordinal = (n: unknown): string => (isNum(n) ? `${n}${n % 100 >= 11 && n % 100 <= 13 ? 'th' : (({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th')}` : '?');

export interface Stats { n: number; p50: number; p95: number; p99: number; min: number; max: number }

/** p50/p95/p99/min/max of raw samples (ms). */
export function stats(values: readonly unknown[]): Stats {
  const v = values.filter(isNum).sort((a, b) => a - b);
  if (!v.length) return { n: 0, p50: NaN, p95: NaN, p99: NaN, min: NaN, max: NaN };
  return { n: v.length, p50: percentile(v, 50), p95: percentile(v, 95), p99: percentile(v, 99), min: v[0] as number, max: v[v.length - 1] as number };
}

// ------------------------------------------------------------------------------------------ boot

/** What the sections collect while rendering: charts by key, the targets table, notes. */
interface Ctx {
  svgs: Record<string, string>;
  svgFile: (key: string) => string;
  targets: Array<{ part: string; target: string; value: string; pass: boolean | null; extrapolated?: boolean }>;
  absent: Record<string, string>;
  kvmNote: string;
  recommendations: string;
}

function bootSection(boot: Json, ctx: Ctx): string[] {
  const out = ['## Boot latency', ''];
  if (!boot) return [...out, '_not run_', ''];
  const s = boot.samples ?? {};
  const series = [
    { key: 'cliDeploy', name: 'unikctl deploy → first app output (CLI, real path)', values: (s.cli ?? []).map((x: Json) => x.deployToFirstOutputMs) },
    { key: 'cliVmm', name: 'unikctl VMM start → app start (CLI, real path)', values: (s.cli ?? []).map((x: Json) => x.vmmStartToAppStartMs) },
    { key: 'unik', name: `unikctl kernel: QEMU spawn → first output`, values: (s.unikctl ?? []).map((x: Json) => x.spawnToFirstOutputMs) },
    { key: 'generic', name: `generic kernel: QEMU spawn → first output`, values: (s.generic ?? []).map((x: Json) => x.spawnToFirstOutputMs) },
    { key: 'unikApp', name: 'unikctl kernel: QEMU spawn → app start', values: (s.unikctl ?? []).map((x: Json) => x.spawnToAppStartMs) },
    { key: 'genericApp', name: 'generic kernel: QEMU spawn → app start', values: (s.generic ?? []).map((x: Json) => x.spawnToAppStartMs) },
  ].map((x) => ({ ...x, st: stats(x.values) }));
  const by = Object.fromEntries(series.map((x) => [x.key, x.st])) as Record<'cliDeploy' | 'cliVmm' | 'unik' | 'generic' | 'unikApp' | 'genericApp', Stats>;
  const m = boot.machine ?? {};
  const label = `${(m.accel ?? 'tcg').toUpperCase()} (no KVM) · ${m.cpuModel ?? ''} (${m.cores ?? '?'} cores) · QEMU ${/version ([\d.]+)/.exec(m.qemu ?? '')?.[1] ?? '?'}`;
  ctx.svgs.boot = boxPlot({
    title: 'Boot latency: specialized kernel vs Debian generic cloud kernel (same QEMU argv)',
    subtitle: label, unit: 'ms', xLabel: 'milliseconds (TCG, this machine)',
    series: series.slice(0, 4).map((x, i) => ({ name: x.name, values: x.values, color: ['#1f77b4', '#17becf', '#2ca02c', '#d62728'][i] })),
  });
  out.push(`Accelerator: **${m.accelLabel ?? 'TCG'}**, ${m.cpuModel ?? '?'}, ${m.cores ?? '?'} cores, ${m.qemu ?? ''}. ${ctx.kvmNote}`, '');
  out.push(`Method: \`bench/boot.ts\`, ${boot.runs} boots per series${boot.quick ? ' (**--quick: a smoke test, not a measurement**)' : ''}. The real path deploys \`${boot.image?.ref ?? 'local/go-http'}\` through the CLI and reads the boot figures the runtime records (RT-7); the baseline boots the *same* root filesystem with QEMU spawned directly from the runtime's own argv, once with the unikctl kernel and once with Debian's generic cloud kernel (${boot.generic?.package ?? ''} ${boot.generic?.version ?? ''}), interleaved. Guest memory for both: ${boot.comparison?.memoryMiB ?? '?'} MiB.`, '');
  out.push(`![boot latency](${ctx.svgFile('boot')})`, '');
  out.push(table(['series', 'n', 'p50', 'p95', 'p99', 'min', 'max'], series.map((x) => [x.name, x.st.n, ms(x.st.p50), ms(x.st.p95), ms(x.st.p99), ms(x.st.min), ms(x.st.max)])));
  out.push('');
  out.push(`**Generic / unikctl kernel** (QEMU spawn → first output, same argv, same rootfs, same run): p50 **${ratio(by.generic.p50, by.unik.p50)}**, p95 **${ratio(by.generic.p95, by.unik.p95)}**, p99 **${ratio(by.generic.p99, by.unik.p99)}**; to app start: p50 ${ratio(by.genericApp.p50, by.unikApp.p50)}.`, '');
  if (boot.comparison?.flagDiffs?.length) {
    out.push('QEMU argv differences, generic vs unikctl (everything else identical):', '', ...boot.comparison.flagDiffs.map((d: Json) => `- \`${d}\``), ...(boot.generic?.why ?? []).map((w: Json) => `- why: ${w}`), '');
  }
  const sz = boot.sizes;
  if (sz) out.push(`Sizes in this run: unikctl image ${mib(sz.unikctlImage)} (compressed kernel ${mib(sz.unikctlKernelGz)} + rootfs ${mib(sz.rootfs)}); generic vmlinuz ${mib(sz.genericVmlinuz)} + initramfs ${mib(sz.genericInitramfs)}.`, '');
  const failures = boot.failures ?? 0;
  if (failures) out.push(`**${failures} boot(s) failed** — see the raw file.`, '');
  ctx.targets.push(...(boot.targets ?? []).map((t: Json) => ({ part: 'boot', target: t.target, value: t.value, pass: t.pass })));
  ctx.targets.push({ part: 'boot', target: 'p50/p95/p99 over ≥ 20 boots', value: `${by.cliDeploy.n} CLI boots, ${by.unik.n} + ${by.generic.n} direct`, pass: by.cliDeploy.n >= 20 && by.unik.n >= 20 });
  return out;
}

// ------------------------------------------------------------------------------------------ density

function densitySection(d: Json, ctx: Ctx): string[] {
  const out = ['## Density: idle Go VMs', ''];
  if (!d) return [...out, '_not run_', ''];
  const m = d.machine ?? {};
  const label = `${(m.accel ?? 'tcg').toUpperCase()} · ${m.cpuModel ?? ''} (${m.cores} cores, ${f1((m.memTotalMiB ?? NaN) / 1024)} GiB) · QEMU ${/version ([\d.]+)/.exec(m.qemu ?? '')?.[1] ?? '?'}`;
  const s = d.summary ?? {};
  const fin = d.final;
  const base = d.baseline && !d.baseline.skipped ? d.baseline : null;
  out.push(`Method: \`bench/density.ts\`${d.quick ? ' (**--quick: a smoke test, not a measurement**)' : ''}: \`unikctl deploy ${d.image?.ref} --name d-N --wait\` one after another (${d.image?.memoryMiB} MiB guests, no ports, private UNIKCTL_HOME) until ${d.options?.max} VMs, MemAvailable < ${d.options?.minAvailableGiB} GiB or a failure; stopped: **${d.stopReason}**. Each VM costs two host processes: its **QEMU** and its **supervisor** (a detached Node process); both are measured from \`/proc/PID/smaps_rollup\` (RSS counts shared pages in full, PSS divides them among the processes sharing them, USS is what killing the process frees). After a ${d.options?.settle} s settle, idle CPU is sampled from \`/proc/PID/stat\` over ${d.options?.idleSeconds} s. Baseline in the same run: the same Go program as a plain host process. Machine: ${label}; shared with other work while measured.`, '');
  if (fin) {
    const steps = (d.steps ?? []).filter((x: Json) => x.ok);
    const pts = (f: Json) => steps.map((x: Json) => [x.n, f(x)]);
    ctx.svgs.densityMem = lineChart({
      title: 'Host memory per idle VM vs number of VMs', subtitle: label, integerX: true, xLabel: 'VMs running', yLabel: 'MiB per VM',
      series: [
        { name: 'QEMU RSS', points: pts((x: Json) => x.avgAll.qemuRss), color: '#1f77b4', dash: '5 3' },
        { name: 'QEMU PSS', points: pts((x: Json) => x.avgAll.qemuPss), color: '#1f77b4' },
        { name: 'supervisor RSS', points: pts((x: Json) => x.avgAll.supRss), color: '#ff7f0e', dash: '5 3' },
        { name: 'supervisor PSS', points: pts((x: Json) => x.avgAll.supPss), color: '#ff7f0e' },
        { name: 'QEMU + supervisor PSS', points: pts((x: Json) => x.avgAll.qemuPss + (x.avgAll.supPss ?? 0)), color: '#d62728' },
        ...(base ? [{ name: 'baseline: host process RSS', points: steps.map((x: Json) => [x.n, base.mem.rss]), color: '#2ca02c' }] : []),
      ],
      hlines: [{ y: 64, name: 'target: idle VM RSS ≤ 64 MiB', color: '#888' }],
    });
    ctx.svgs.densityTime = lineChart({
      title: 'Time to start the N-th VM (deploy → first app output)', subtitle: `${label}; earlier VMs idle`, integerX: true, xLabel: 'N', yLabel: 'ms',
      series: [
        { name: 'deploy → first app output (runtime record)', points: steps.map((x: Json) => [x.n, x.boot?.deployToFirstOutputMs]), color: '#1f77b4' },
        { name: 'deploy --wait returns (CLI wall clock)', points: steps.map((x: Json) => [x.n, x.deployWaitMs]), color: '#9467bd', dash: '5 3' },
      ],
    });
    out.push(`![memory per VM](${ctx.svgFile('densityMem')})`, '');
    const row = (name: Json, x: Json) => [name, f1(x?.rss), f1(x?.pss), f1(x?.uss)];
    out.push(table(['per VM, after settling (MiB)', 'RSS', 'PSS', 'USS'], [
      row('QEMU', fin.qemu), row('supervisor (Node)', fin.supervisor),
      ['**QEMU + supervisor**', f1(fin.qemu.rss + fin.supervisor.rss), `**${f1(fin.perVmTotalPss)}**`, f1(fin.qemu.uss + fin.supervisor.uss)],
      ...(base ? [row('baseline: same program as a host process', base.mem)] : []),
    ]));
    out.push('');
    if (base) out.push(`Versus the host process (same run): QEMU PSS **${ratio(fin.qemu.pss, base.mem.pss)}**, QEMU + supervisor PSS **${ratio(fin.perVmTotalPss, base.mem.pss)}**; start: deploy → first output of the ${ordinal(s.nthVm?.n)} VM ${ms(s.nthVm?.deployToFirstOutputMs)} vs ${ms(base.spawnToFirstOutputMs)} for the process (${ratio(s.nthVm?.deployToFirstOutputMs, base.spawnToFirstOutputMs)}).`, '');
    out.push(`QEMU detail (PSS): anonymous ${f1(fin.qemu.pssAnon)} MiB of which transparent huge pages ${f1(fin.qemu.anonHuge)} MiB (TCG translation cache + touched guest RAM), file-backed ${f1(fin.qemu.pssFile)} MiB (QEMU binary, libraries, the kernel file QEMU keeps mapped; shared by all VMs). Shared pages per QEMU (RSS − USS): ${f1(fin.qemu.sharedPerProcess)} MiB; per supervisor: ${f1(fin.supervisor.sharedPerProcess)} MiB.`, '');
    out.push(`Idle CPU (${fin.idle.seconds} s, ${fin.vms} VMs): QEMU **${f2(fin.idle.qemuTotalCpuPctOfCore)} %** + supervisors **${f2(fin.idle.supervisorTotalCpuPctOfCore)} %** of one core (${f2(fin.idle.qemuPerVmCpuPct)} % + ${f2(fin.idle.supervisorPerVmCpuPct)} % per VM; ${f1(fin.idle.qemuWakeupsPerSecPerVm)} QEMU wake-ups/s per VM); the host process baseline: ${f2(base?.idleCpuPctOfCore)} %. Whole machine busy during the window: ${f1(fin.idle.hostBusyPctOfMachine)} % (includes other users).`, '');
    out.push(`![time to N-th VM](${ctx.svgFile('densityTime')})`, '');
    out.push(`Time to the N-th VM: 1st ${ms(s.nthVm?.firstVmMs)}, ${ordinal(s.nthVm?.n)} ${ms(s.nthVm?.deployToFirstOutputMs)}. MemAvailable fell by ${f1(fin.memAvailableDropMiB)} MiB for ${fin.vms} VMs (${f1(fin.memAvailableDropMiB / fin.vms)} MiB per VM; includes page cache and other users' activity).`, '');
    out.push(`**Extrapolation** (N × USS + the shared pages once): 100 idle VMs need ≈ **${f2(s.hostGiBFor100)} GiB** with the current runtime (QEMU alone: ${f2(s.hostGiBFor100QemuOnly)} GiB); their idle CPU ≈ ${f2(s.idleCpuFor100PctOfCore)} % of one core. ${fin.vms >= 100 ? '' : `**100 VMs were not run** on this shared machine (${fin.vms} were).`}`, '');
  }
  // flag experiments
  if (d.flags?.length) {
    const ok = d.flags.filter((x: Json) => x.ok);
    ctx.svgs.densityFlags = stackedBarChart({
      title: 'QEMU memory per idle VM by configuration (direct QEMU)', subtitle: `${d.options?.flagVms} VM(s) per variant · ${label}`,
      categories: ok.map((x: Json) => x.id), unit: 'MiB (QEMU PSS per VM)',
      parts: [
        { name: 'anonymous (TCG cache, QEMU heap, touched guest RAM)', values: ok.map((x: Json) => x.perVm.pssAnon), color: '#1f77b4' },
        { name: 'guest RAM in memfd (4 KiB pages)', values: ok.map((x: Json) => x.perVm.pssShmem), color: '#2ca02c' },
        { name: 'file-backed (shared at scale)', values: ok.map((x: Json) => x.perVm.pssFile), color: '#c7c7c7' },
      ],
      notes: ok.map((x: Json) => `RSS ${f1(x.perVm.rss)}`),
      vline: { x: 64, name: 'target 64 MiB' },
    });
    out.push('### What reduces the per-VM cost', '');
    out.push(`Each change below was applied alone to the runtime's own argv (\`dist/runtime/qemu.js\` \`qemuArgs\`, kernel command line from \`dist/runtime/cmdline.js\`), QEMU spawned directly, ${d.options?.flagVms} VM(s) each, measured ${d.options?.flagSettle ?? d.options?.settle} s after boot. Idle CPU and wake-ups depend on the guest's timer set-up (see 4. below) and on how busy the host was while a VM booted (see the contention experiment), so compare them within one run. With few VMs the shared file pages are split among few processes, so compare **USS** (private) and the anonymous/guest parts; boot p50 is from an interleaved series of ${d.options?.bootRuns} boots per variant.`, '');
    out.push(`![flags](${ctx.svgFile('densityFlags')})`, '');
    out.push(table(['variant', 'change', 'RSS', 'USS', 'PSS', 'anon (THP)', 'guest memfd', 'idle % core', 'wake-ups/s', 'boot p50'],
      d.flags.map((x: Json) => (x.ok ? [x.id, `\`${x.change}\``, f1(x.perVm.rss), f1(x.perVm.uss), f1(x.perVm.pss), `${f1(x.perVm.pssAnon)} (${f1(x.perVm.anonHuge)})`, f1(x.perVm.pssShmem), f2(x.idleCpuPctOfCorePerVm), f1(x.wakeupsPerSecPerVm), d.flagBoot?.[x.id] ? ms(d.flagBoot[x.id].summary.p50) : ''] : [x.id, `\`${x.change}\``, 'failed', x.error ?? '', '', '', '', '', '', ''])), 2));
    out.push('');
    if (d.contended?.length) {
      out.push('Under host CPU contention (every core saturated by a busy loop while the VMs boot, then idle):', '');
      out.push(table(['variant', 'TSC marked unstable', 'idle % core per VM', 'wake-ups/s per VM'], d.contended.map((c: Json) => [`${c.id} (\`${c.change}\`)`, `${c.tscMarkedUnstable}/${c.vms}`, f2(c.idleCpuPctOfCorePerVm), f1(c.wakeupsPerSecPerVm)])));
      out.push('');
    }
    if (d.ksm && !d.ksm.skipped) out.push(`Kernel same-page merging (host setting, root: \`/sys/kernel/mm/ksm/run=1\`, pages_to_scan 1000; ${d.ksm.vms} VMs with anonymous guest RAM, 60 s): QEMU PSS per VM ${f1(d.ksm.pssPerVmBefore)} → **${f1(d.ksm.pssPerVmAfter)} MiB**, USS ${f1(d.ksm.ussPerVmBefore)} → ${f1(d.ksm.ussPerVmAfter)} MiB; ksmd used ${f2(d.ksm.ksmdCpuPctOfCore)} % of a core. Restored afterwards.`, '');
    else if (d.ksm?.skipped) out.push(`KSM: skipped (${d.ksm.skipped}).`, '');
    if (ctx.recommendations) out.push(ctx.recommendations, '');
  }
  if (fin?.metering) {
    const md = fin.metering.deployments ?? [];
    out.push('### Metering (CP-8, RT-7)', '');
    out.push(`\`unikctl status --json\` reported, for ${md.length} deployments: ${fin.metering.allReported ? '**cpuSeconds, rssBytes (QEMU), supervisorRssBytes, boot latency and imageBytes for every one**' : '**incomplete metering**'}. First three:`, '');
    out.push(table(['deployment', 'cpuSeconds', 'rssBytes', 'supervisorRssBytes', 'deploy → first output', 'imageBytes'], md.slice(0, 3).map((x: Json) => [x.name, f2(x.cpuSeconds), mib(x.rssBytes), x.supervisorRssBytes === undefined ? 'n/a' : mib(x.supervisorRssBytes), ms(x.deployToFirstOutputMs), mib(x.imageBytes)])));
    out.push('', md[0] && md[0].supervisorRssBytes !== undefined
      ? 'The supervisor that owns each VM is metered apart: `metrics.supervisorRssBytes` (`unikctld_deployment_supervisor_memory_bytes`).'
      : 'Not yet metered (this result predates it): the supervisor process (≈ the second row of the table above).', '');
  }
  out.push(d.cleanup?.verifiedNoQemuLeft ? 'Clean-up: every deployment destroyed; no QEMU process left (verified through /proc).' : '**Clean-up: QEMU processes were left behind** (see the raw file).', '');
  ctx.targets.push(...(d.targets ?? []).map((t: Json) => ({ part: 'density', target: t.target, value: t.value, pass: /concurrent idle/.test(t.target) && t.extrapolated ? null : t.pass, extrapolated: t.extrapolated })));
  return out;
}

// ------------------------------------------------------------------------------------------ size

function sizeSection(sz: Json, ctx: Ctx): string[] {
  const out = ['## Image size', ''];
  if (!sz) return [...out, '_not run_', ''];
  const rows = sz.rows ?? [];
  const ok = rows.filter((r: Json) => r.ok && r.naive && !r.naive.error);
  out.push(`Method: \`bench/size.ts\`: every \`examples/*\` is built with \`unikctl build DIR --json\`; the image is what the manifest stores (compressed kernel ${'`vmlinux.br`'} + ${'`rootfs.erofs`'}). The naive baseline, measured on this host in the same run, is the same app with its whole runtime copied in, uncompressed, plus the generic kernel (${sz.genericKernel ? `${sz.genericKernel.package}: vmlinuz ${mib(sz.genericKernel.vmlinuzBytes)} + initramfs ${mib(sz.genericKernel.initramfsBytes)}` : 'not cached: compared without a kernel'}).`, '');
  if (ok.length) {
    ctx.svgs.size = barChart({
      title: 'Image size per pack vs its naive baseline', subtitle: 'naive = whole runtime + generic kernel, uncompressed', log: true, unit: 'MiB',
      categories: ok.map((r: Json) => `${r.example} (${r.pack})`),
      series: [
        { name: 'unikctl image (kernel + rootfs)', values: ok.map((r: Json) => r.image.total / 1048576), color: '#1f77b4' },
        { name: 'naive baseline', values: ok.map((r: Json) => r.naive.total / 1048576), color: '#d62728' },
      ],
      notes: ok.map((r: Json) => `${r.ratio}× smaller`), fmt: (v) => `${v.toFixed(v < 10 ? 2 : 1)} MiB`,
    });
    out.push(`![image sizes](${ctx.svgFile('size')})`, '');
  }
  out.push(table(['example', 'pack', 'unikctl image', 'kernel + rootfs', 'naive baseline', 'naive / unikctl', 'runtime only: naive / rootfs'], rows.map((r: Json) => (r.ok
    ? [r.example, r.pack, mib(r.image.total), `${mib(r.image.kernel)} + ${mib(r.image.rootfs)}`, r.naive?.error ? `n/a (${r.naive.error})` : mib(r.naive.total), r.ratio ? `**${r.ratio}×**` : 'n/a', r.rootfsRatio ? `${r.rootfsRatio}×` : 'n/a']
    : [r.example, '—', `skipped: ${String(r.error).slice(0, 120)}`, '', '', '', ''])), 2));
  out.push('');
  out.push('Naive baselines:', '', ...ok.map((r: Json) => `- ${r.example}: ${r.naive.what} (${r.naive.parts.slice(0, 6).map((p: Json) => `${p.what} ${mib(p.bytes)}`).join(', ')}${r.naive.parts.length > 6 ? ', …' : ''})`), '');
  const go = rows.find((r: Json) => r.ok && r.pack === 'go');
  if (go && !ctx.targets.some((t) => t.target.startsWith('Go hello image'))) ctx.targets.push({ part: 'size', target: 'Go hello image (kernel + rootfs) ≤ 6 MB', value: `${(go.image.total / 1e6).toFixed(2)} MB`, pass: go.image.total <= 6_000_000 });
  return out;
}

// ------------------------------------------------------------------------------------------ api / sched (written by other engineers; rendered defensively)

function apiSection(api: Json, ctx: Ctx): string[] {
  const out = ['## Control-plane API', ''];
  if (!api) return [...out, ctx.absent.api ?? '_not run_', ''];
  try {
    const b = api.baseline;
    const e = api.enqueue;
    out.push(`Method: \`bench/api.ts\` (${api.note ?? ''}); ${api.options?.concurrency} keep-alive clients, ${api.options?.duration} s per phase. Baseline in the same run: \`GET /healthz\`.`, '');
    out.push(table(['endpoint', 'req/s', 'p50', 'p95', 'p99', 'errors'], [b, e].map((x) => [`\`${x.endpoint}\``, f1(x.rps), `${f2(x.latencyMs?.p50)} ms`, `${f2(x.latencyMs?.p95)} ms`, `${f2(x.latencyMs?.p99)} ms`, `${x.errors}/${x.requests}`])));
    out.push('', `Deploy/baseline: ${f1((api.ratios?.rps ?? NaN) * 100)} % of the /healthz rate, p99 ${f2(api.ratios?.p99)}× the /healthz p99.`, '');
    if (api.targets && api.pass) {
      ctx.targets.push({ part: 'api', target: `≥ ${api.targets.enqueuesPerSecond} enqueues/s`, value: `${f1(e.rps)}/s`, pass: api.pass.throughput });
      ctx.targets.push({ part: 'api', target: `p99 < ${api.targets.p99Ms} ms`, value: `${f2(e.latencyMs?.p99)} ms`, pass: api.pass.p99 });
    }
  } catch (err) {
    out.push(`_result format not recognized (${err instanceof Error ? err.message : String(err)}); see the raw file_`, '');
  }
  return out;
}

function schedSection(sc: Json, ctx: Ctx): string[] {
  const out = ['## Scheduler', ''];
  if (!sc) return [...out, ctx.absent.sched ?? '_not run_', ''];
  try {
    // The measured implementation is the series without a ratio: `place` (what production runs) since the
    // Scheduler class was removed, `index` (that class) in older results, which measured `scan` (= place) as a baseline.
    const first = (sc.placement ?? [])[0];
    const subject = Object.keys(first?.series ?? {}).find((k) => !first?.ratios?.[k]) ?? 'place';
    const baselines = subject === 'index' ? 'a linear scan (`place()`) and a sort-all implementation' : 'a sort-all implementation';
    out.push(`Method: \`bench/sched.ts\`${sc.quick ? ' (--quick)' : ''}: ${sc.method ?? ''}. Measured: \`${subject}\`. Baselines in the same run: ${baselines} making the same decisions.`, '');
    const rows = [];
    for (const p of sc.placement ?? []) {
      for (const [kind, s] of Object.entries<Json>(p.series ?? {})) {
        const thr = s.decisionsPerSec ?? s.decisionsPerSecond ?? s.throughput ?? s.perSecond;
        rows.push([`${p.nodes.toLocaleString('en')} nodes`, kind, `${f2(s.latencyMs?.p50)} ms`, `${f2(s.latencyMs?.p99)} ms`, isNum(thr) ? f1(thr) : 'n/a', kind === subject ? '—' : `p99 ×${p.ratios?.[kind]?.p99 ?? 'n/a'}`]);
      }
    }
    out.push(table(['cluster', 'implementation', 'p50 / placement', 'p99 / placement', 'decisions/s', `vs ${subject}`], rows, 2), '');
    if (sc.drain?.series) out.push(`Drain (${sc.drain.deployments} deployments off one node, ${sc.drain.nodes} nodes): ${Object.entries<Json>(sc.drain.series).map(([k, v]) => `${k} ${f2(v.medianMs)} ms`).join(', ')}.`, '');
    const t = sc.targets?.p99MsAt10k;
    if (t) ctx.targets.push({ part: 'sched', target: `placement p99 ≤ ${t.target} ms at 10,000 nodes`, value: `${f2(t.measured)} ms`, pass: t.pass });
  } catch (err) {
    out.push(`_result format not recognized (${err instanceof Error ? err.message : String(err)}); see the raw file_`, '');
  }
  return out;
}

/** What each applied density setting is worth (the variant that undoes it, same run), and what else was tried. */
export function recommendations(d: Json): string {
  if (!d?.flags) return '';
  const by = Object.fromEntries(d.flags.filter((x: Json) => x.ok).map((x: Json) => [x.id, x]));
  const cur = by.current;
  if (!cur) return '';
  const worth = (id: Json, k = 'rss') => (by[id] ? f1(by[id].perVm[k] - cur.perVm[k]) : 'n/a');
  const boot = (id: Json) => (d.flagBoot?.[id] ? ms(d.flagBoot[id].summary.p50) : 'n/a');
  const idle = (id: Json) => (by[id] ? `${f2(by[id].idleCpuPctOfCorePerVm)} % of a core and ${f1(by[id].wakeupsPerSecPerVm)} wake-ups/s` : 'n/a');
  const cont = Object.fromEntries((d.contended ?? []).map((c: Json) => [c.id, c]));
  const L = ['**Applied by default** — what each setting is worth, measured by undoing it alone (this run, per VM):', ''];
  L.push(`1. **No transparent huge pages for QEMU** (host/launch.c: \`PR_SET_THP_DISABLE\`, inherited by QEMU): QEMU madvises guest RAM and the TCG cache for huge pages, so with THP=madvise a touched 4 KiB guest page costs a 2 MiB host page. Undoing it: RSS +${worth('thp')} MiB, USS +${worth('thp', 'uss')} MiB.`);
  L.push(`2. **Lean kernel ELF** (src/kernel/elf-lean.ts) and **page-aligned entry text** (kernel/patches/0002): the linked vmlinux carries 2 MiB alignment padding that QEMU copies into guest RAM and keeps mapped. Booting the ELF as linked: RSS +${worth('fat-kernel')} MiB, boot p50 ${boot('fat-kernel')} vs ${boot('current')}.`);
  L.push(`3. **erofs without a compressed-page cache** (\`rootflags=cache_strategy=disabled\`): RSS +${worth('erofs-cache')} MiB when the cache is on; boot p50 ${boot('erofs-cache')} with it vs ${boot('current')}.`);
  L.push(`4. **The guest is told its APIC timer rate** (\`lapic_timer_khz=1000000\`, kernel/patches/0001; TCG has no TSC-deadline timer): no PIT calibration at boot and a tickless idle. Current ${idle('current')} per idle VM; with PIT clock events (\`UNIKCTL_TCG_TIMER=pit\`, the previous default) ${idle('pit')}; letting the guest calibrate costs boot p50 ${boot('calibrate')} vs ${boot('current')} (PIT: ${boot('pit')}).${cont.current && cont.pit ? ` Booted on a saturated host: TSC marked unstable in ${cont.current.tscMarkedUnstable}/${cont.current.vms} VMs (then ${f2(cont.current.idleCpuPctOfCorePerVm)} % and ${f1(cont.current.wakeupsPerSecPerVm)} wake-ups/s per idle VM) vs ${cont.pit.tscMarkedUnstable}/${cont.pit.vms} with PIT timers (${f2(cont.pit.idleCpuPctOfCorePerVm)} %, ${f1(cont.pit.wakeupsPerSecPerVm)}/s).` : ''}`);
  L.push(`5. **A small TCG translation cache** (src/runtime/qemu.ts: 8 MiB for guests of ≤ 64 MiB, guest/4 within 16–64 MiB above; QEMU's default grows to ~60 MiB, and every page it ever filled stays resident): 16 MiB costs ${worth('tb16')} MiB RSS and boots in ${boot('tb16')} vs ${boot('current')}; 4 MiB would save ${by.tb4 ? f1(cur.perVm.rss - by.tb4.perVm.rss) : 'n/a'} MiB but boots in ${boot('tb4')}.`);
  const delta = (id: Json) => (by[id] ? `${by[id].perVm.rss - cur.perVm.rss >= 0 ? '+' : '−'}${f1(Math.abs(by[id].perVm.rss - cur.perVm.rss))} MiB RSS` : 'n/a');
  L.push('', `Tried, not applied: guest RAM from a memfd (${delta('memfd')}: with THP off it buys nothing, and it stops KSM from merging), guest \`-m 48M\` (${delta('mem48')}: only touched guest pages cost host memory), \`MALLOC_ARENA_MAX=1\` (${delta('malloc')}).`);
  L.push(`Not a QEMU flag: the **supervisor** (one Node process per VM) costs ${f1(d.final?.supervisor.uss)} MiB USS + ${f1(d.final?.supervisor.sharedPerProcess)} MiB shared per VM; V8 flags change little (measured by hand: \`--max-semi-space-size=1 --max-old-space-size=32 --v8-pool-size=1\` −0.5 MiB, \`--jitless\` −1 MiB). Only one supervisor process for many VMs (or a small native supervisor) removes it.`);
  return L.join('\n');
}

function sloSection(r: Json, ctx: Ctx): string[] {
  const out = ['## SLO API (`GET /v1/slo`)', ''];
  if (!r) return [...out, ctx.absent.slo ?? '_not run_', ''];
  try {
    out.push(`Method: \`bench/slo.ts\`: ${r.method ?? ''}; ${(r.options?.samples ?? 0).toLocaleString('en')} stored samples (${(r.bootsIn30d ?? 0).toLocaleString('en')} boots in the 30-day window), loaded by the daemon in ${ms(r.serverStartMs)}.`, '');
    const rows = Object.entries(r.perWindow ?? {}).map(([w, x]) => [w, String((x as Json).n), ms((x as Json).p50), ms((x as Json).p95), ms((x as Json).p99)]);
    out.push(table(['window', 'requests', 'p50', 'p95', 'p99'], [...rows, ['all', String(r.latencyMs?.n), ms(r.latencyMs?.p50), ms(r.latencyMs?.p95), ms(r.latencyMs?.p99)]]), '');
    ctx.targets.push({ part: 'slo', target: `/v1/slo p99 ≤ ${r.target?.p99Ms} ms with ${(r.options?.samples ?? 0).toLocaleString('en')} samples`, value: `${f1(r.latencyMs?.p99)} ms`, pass: r.pass ?? null });
  } catch (err) {
    out.push(`_result format not recognized (${err instanceof Error ? err.message : String(err)}); see the raw file_`, '');
  }
  return out;
}

/**
 * merged: { startedAt, machine, kvm, parts: { boot, density, size, api, sched, slo } } → { markdown, svgs }.
 * svgFile(key) names the SVG file for a chart key (relative to the Markdown file).
 */
export function renderReport(merged: Json, { svgFile }: { svgFile: (key: string) => string }): { markdown: string; svgs: Record<string, string> } {
  const p = merged.parts ?? {};
  const ctx: Ctx = { svgs: {}, svgFile, targets: [], absent: merged.absent ?? {}, kvmNote: merged.kvm?.note ?? '', recommendations: recommendations(p.density?.result) };
  const m = merged.machine ?? {};
  const body = [
    ...bootSection(p.boot?.result, ctx),
    ...densitySection(p.density?.result, ctx),
    ...sizeSection(p.size?.result, ctx),
    ...apiSection(p.api?.result, ctx),
    ...schedSection(p.sched?.result, ctx),
    ...sloSection(p.slo?.result, ctx),
  ];
  const head = [
    `# unikctl benchmark report — ${merged.startedAt?.slice(0, 10)} on \`${m.hostname}\``, '',
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${f1(m.memTotalMiB / 1024)} GiB, Linux ${m.hostKernel}, ${m.qemu}, Node ${m.node}. **Accelerator: ${m.accelLabel}.** ${merged.kvm?.note ?? ''}`, '',
    'Absolute times are TCG times on this (shared) machine; the ratios against the baselines measured in the same run are the portable figures.', '',
    '| part | run | raw data |', '|---|---|---|',
    ...['boot', 'density', 'size', 'api', 'sched', 'slo'].map((k) => `| ${k} | ${p[k] ? `${p[k].reused ? `reused from an earlier run (${p[k].result?.startedAt ?? p[k].result?.at ?? '?'})` : 'this run'}${p[k].failed ? ', **exited with an error**' : ''}` : (ctx.absent[k] ?? 'not run')} | ${p[k]?.file ? `\`${p[k].file}\`` : ''} |`),
    '',
    '## Targets', '',
    table(['part', 'target', 'measured', 'verdict'], ctx.targets.map((t) => [t.part, t.target, t.value, `${verdict(t.pass)}${t.extrapolated && t.pass !== null ? ' (extrapolated)' : ''}`]), 4),
    '',
  ];
  return { markdown: [...head, ...body, '## Reproduce', '', '```sh', 'npm ci && npm run build', 'npm run bench                        # everything: boot, density, size, api, sched, slo', 'npm run bench -- --only density      # one part (boot|density|size|api|sched|slo, comma-separated)', 'npm run bench:density -- --max 100   # more VMs, if the machine is yours', '```', ''].join('\n'), svgs: ctx.svgs };
}
