#!/usr/bin/env node
// Image-size benchmark (npm run bench:size [-- --only go,python] [--json]).
//
// For every examples/* project: copies it to a private directory, builds it with the CLI
// (`unikctl build DIR --json`, private UNIKCTL_HOME, shared kernel cache) and compares the image
// (kernel + root filesystem, as stored) with a NAIVE baseline measured in the same run on this host: the same
// app with its whole runtime copied in, plus the generic distribution kernel (Debian's cloud kernel as
// fetched by bench/boot.ts: vmlinuz + the initramfs it needs for virtio and erofs), uncompressed as it would
// sit on an ext4 disk image:
//   go      the same main package built unstripped (no -ldflags=-s -w; cgo as the host's go defaults) + the
//           libraries it loads that the base lacks + a distro base (below)
//   rust    the same binary built for the host target with symbols (CARGO_PROFILE_RELEASE_STRIP=none) + the
//           libraries the base lacks + a distro base
//   c       the binary + every shared library it loads (whole files)
//   python  the interpreter + its libraries + the WHOLE stdlib directory + site-packages with every dependency of
//           the lock (requirements file, or uv.lock / poetry.lock exported by the pack's pinned tool) + the app
//   node    the node distribution installed with the binary (the binary, its libraries the base lacks, the bundled
//           npm and corepack, the headers) + the app + node_modules with dev dependencies, installed by the
//           project's package manager (npm ci --include=dev; pnpm / yarn the way the pack runs them) + a distro base
// The distro base is what a distribution base image holds: the Debian packages of priority `required` installed
// on this host (their Installed-Size, as debootstrap --variant=minbase lays them out), measured in the run.
// The framework examples (bench/lib/apps.ts) are checked against the issue's target: naive ≥ 3× the image.
//   java    the full JDK directory + the jars (a fat jar holds every dependency)
//   dotnet  (built only where the SDK exists) the self-contained publish is already the closure: not compared
// A pack whose toolchain is missing is reported as skipped with the CLI's error; nothing is guessed.
// Writes bench/results/size-<ISO date>-<hostname>.json.
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, homedir, hostname } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { ImageManifest } from '../src/image/image.js';
import { chooseTool, installSteps, lockState, planInstall } from '../src/image/packs/node/managers.js';
import { findHostNode, toolArgv } from '../src/image/packs/node/runtime.js';
import { planInstall as planPythonInstall } from '../src/image/packs/python/install.js';
import { loadUnikYaml } from '../src/image/unikyaml.js';
import { FRAMEWORK_APPS, SIZE_RATIO_TARGET, sizeVerdict, unavailable } from './lib/apps.js';
import { CLI, fileStamp, privateHome, RESULTS_DIR, ROOT } from './lib/harness.js';
import type { Json } from './lib/json.js';
import { installCleanup, run, type RunOptions, type RunResult } from './lib/proc.js';

const SKIP_COPY = new Set(['.unikctl', 'target', 'node_modules', 'bin', 'obj', '__pycache__', '.venv', 'venv']);

function usage(code: number): never {
  (code === 0 ? process.stdout : process.stderr).write(
    'usage: npm run bench:size -- [--only NAME[,NAME...]] [--build-timeout S] [--warm-caches] [--json]\n' +
    '  --only            examples to measure (directory names or pack names, e.g. go-http or go; apps: the framework examples)\n' +
    '  --build-timeout S per-example build timeout (default 900)\n' +
    '  --warm-caches     start each copy with the toolchain caches of the in-place example build (warm build times)\n' +
    '  --json            print only the JSON result on stdout\n');
  process.exit(code);
}

function parseArgs(argv: readonly string[]): { only: string[] | null; buildTimeout: number; json: boolean; warmCaches: boolean } {
  const o: { only: string[] | null; buildTimeout: number; json: boolean; warmCaches: boolean } = { only: null, buildTimeout: 900, json: false, warmCaches: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (flag === '--json') o.json = true;
    else if (flag === '--warm-caches') o.warmCaches = true;
    else if (flag === '--only') o.only = (inline ?? argv[++i] ?? '').split(',').filter(Boolean).flatMap((x) => (x === 'apps' ? FRAMEWORK_APPS.map((a) => a.example) : [x]));
    else if (flag === '--build-timeout') o.buildTimeout = Number(inline ?? argv[++i]);
    else if (flag === '-h' || flag === '--help') usage(0);
    else { process.stderr.write(`size: unknown option ${a}\n`); usage(2); }
  }
  if (!(o.buildTimeout > 0)) { process.stderr.write('size: --build-timeout needs a positive number\n'); usage(2); }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const say = (m: string): void => { process.stderr.write(`${m}\n`); };
const MiB = (b: number): string => (Number.isFinite(b) ? `${(b / 1048576).toFixed(2)} MiB` : 'n/a');
const ratio = (a: number, b: number): number | null => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? Math.round((a / b) * 10) / 10 : null);

/**
 * --warm-caches: the copy starts with the toolchain caches (Maven repository, cargo registry and target, Go module
 * cache, package-manager stores) of a previous in-place build of the example (bench:boot --apps and the e2e tests
 * build examples/* in place), so nothing is downloaded or compiled twice; the image is the same, only the build
 * time (buildMs) is then a warm one. Java examples without their own share examples/java-http's Maven repository
 * as the e2e tests do.
 */
function seedCaches(ex: string, dir: string): void {
  const own = join(ROOT, 'examples', ex, '.unikctl', 'cache');
  const into = join(dir, '.unikctl', 'cache');
  if (existsSync(own)) cpSync(own, into, { recursive: true });
  const m2 = join(ROOT, 'examples', 'java-http', '.unikctl', 'cache', 'm2');
  if (ex.startsWith('java-') && !existsSync(join(into, 'm2')) && existsSync(m2)) {
    mkdirSync(into, { recursive: true });
    symlinkSync(m2, join(into, 'm2'));
  }
}

/** Runs argv with a timeout (default 10 minutes); never throws. */
const runT = (argv: readonly string[], o: RunOptions = {}): Promise<RunResult> => run(argv, { timeoutMs: 600_000, ...o });

/** Apparent size of a file or tree in bytes (symlinks not followed, hard links counted once). */
export function treeBytes(path: string, seen = new Set<string>()): number {
  let st;
  try { st = lstatSync(path); } catch { return 0; }
  if (st.isSymbolicLink()) return 0;
  if (st.isDirectory()) {
    let n = 0;
    for (const e of readdirSync(path)) n += treeBytes(join(path, e), seen);
    return n;
  }
  const key = `${st.dev}:${st.ino}`;
  if (seen.has(key)) return 0;
  seen.add(key);
  return st.size;
}

/** The shared libraries a binary loads (ldd), resolved to real files. */
async function libClosure(binary: string): Promise<string[]> {
  const r = await runT(['ldd', binary], { timeoutMs: 30_000 });
  if (r.code !== 0) return []; // static
  const libs = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) { try { libs.add(realpathSync(m[1])); } catch { /* vanished */ } }
  }
  return [...libs];
}

const APP_SKIP = new Set(['.unikctl', 'node_modules', 'target', '__pycache__']);
/** The project's own files (not the build output, not the naive baseline's scratch, not dependencies). */
function appBytes(dir: string, seen = new Set<string>()): number {
  let n = 0;
  for (const e of readdirSync(dir)) {
    if (APP_SKIP.has(e) || e.startsWith('.naive')) continue;
    n += treeBytes(join(dir, e), seen);
  }
  return n;
}

const fileSize = (p: string): number => { try { return statSync(p).size; } catch { return NaN; } };
interface Part { what: string; bytes: number; path?: string }
const parts = (list: ReadonlyArray<readonly [string, number, string?]>): Part[] => list.map(([what, bytes, path]) => ({ what, bytes, ...(path ? { path } : {}) }));

const libPart = (l: string): [string, number, string] => [`lib ${basename(l)}`, fileSize(l), l];

/** A naive baseline: what it holds and its parts, or why it could not be measured; totals are added after. */
interface Naive { what?: string; parts?: Part[]; error?: string; runtimeBytes?: number; kernelBytes?: number; total?: number }
/** `metadata`: the build's metadata file (JSON written by the pack: toolchain paths, artifacts). */
interface BaselineInput { dir: string; metadata: Json; env: NodeJS.ProcessEnv; manifestArtifacts: Array<{ path: string; size?: number }>; manifest: ImageManifest }

let distroBaseCache: Promise<{ what: string; bytes: number; files: Set<string> }> | null = null;
/** The Debian packages of priority required (what a minimal distribution base image holds), as installed here. */
function distroBase(): Promise<{ what: string; bytes: number; files: Set<string> }> {
  distroBaseCache ??= (async () => {
    const q = await runT(['dpkg-query', '-W', '-f', '${Package}\\t${Priority}\\t${Essential}\\t${Installed-Size}\\n']);
    const pkgs = q.stdout.split('\n').map((l) => l.split('\t')).filter(([, prio, ess]) => prio === 'required' || ess === 'yes');
    const kib = pkgs.reduce((a, [, , , size]) => a + (Number(size) || 0), 0);
    // the files they own, to count a binary's libraries from other packages (libsqlite3) on top of the base
    const files = new Set<string>();
    const l = await runT(['dpkg-query', '-L', ...pkgs.map(([name]) => name as string)]);
    for (const f of l.stdout.split('\n')) { try { files.add(realpathSync(f)); } catch { /* diversions, directories gone */ } }
    return { what: `a distro base (the ${pkgs.length} Debian packages of priority required installed here: ${(kib / 1024).toFixed(1)} MiB)`, bytes: kib * 1024, files };
  })();
  return distroBaseCache;
}

/** node_modules with dev dependencies, installed by the project's own package manager as the node pack runs it. */
async function nodeDevInstall(dir: string, env: NodeJS.ProcessEnv): Promise<{ how: string; error?: string }> {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Parameters<typeof chooseTool>[0];
  const locks = lockState(dir);
  const tool = chooseTool(pkg, locks, () => {});
  // the pack's "install everything for the build" step (planned as if there were a build script)
  const plan = { ...planInstall(pkg, locks, 'release', () => {}), build: 'naive', fullInstall: true };
  const step = installSteps(plan, join(dir, '.unikctl', 'cache'), env)[0];
  if (!step) return { how: 'nothing (no dependencies)' };
  const host = await findHostNode(env);
  const argv = [...await toolArgv(tool, host, join(dir, '.unikctl', 'cache'), env, () => {}), ...step.args];
  const r = await runT(argv, { cwd: dir, env: { ...env, ...step.env }, timeoutMs: opts.buildTimeout * 1000 });
  const how = `${tool.name} ${step.args.slice(0, 2).join(' ')} (dev dependencies included)`;
  return r.code === 0 ? { how } : { how, error: `${how}: ${r.stderr.trim().split('\n').at(-1)}` };
}

/** uv.lock / poetry.lock exported to a requirements file by the tool the python pack installed into the cache. */
async function exportedLock(dir: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const plan = planPythonInstall({ present: (f) => existsSync(join(dir, f)), declared: [], buildSystem: false, packageMode: false }, 'release', () => {});
  if (!plan.tool || !plan.lock) return undefined;
  const venvPy = join(dir, '.unikctl', 'cache', 'tools', `${plan.tool.name}-${plan.tool.version}`, 'bin', 'python');
  if (!existsSync(venvPy)) return undefined;
  const out = join(dir, '.naive-requirements.txt');
  const r = await runT([venvPy, '-m', plan.tool.module, ...plan.exportArgs(out, 'python3')], { cwd: dir, env });
  return r.code === 0 && existsSync(out) ? out : undefined;
}

// ------------------------------------------------------------------ naive baselines, one per pack

const BASELINES: Record<string, (i: BaselineInput) => Promise<Naive>> = {
  async go({ dir }) {
    const out = join(dir, '.naive-go-bin');
    // the package the image was built from (unik.yaml main:, else the project directory as `go build` takes it)
    const main = loadUnikYaml(dir)?.main;
    const pkg = main ? (main.startsWith('.') ? main : `./${main}`) : '.';
    const r = await runT(['go', 'build', '-trimpath', '-buildvcs=false', '-o', out, pkg], { cwd: dir, env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly', GOMODCACHE: join(dir, '.unikctl', 'cache', 'go-mod') } });
    if (r.code !== 0) return { error: `go build: ${r.stderr.trim().split('\n').at(-1)}` };
    const base = await distroBase();
    const libs = (await libClosure(out)).filter((l) => !base.files.has(l));
    return { what: `the same program, unstripped (go build without -ldflags=-s -w) + ${base.what}`, parts: parts([['unstripped binary', fileSize(out)], ...libs.map(libPart), ['distro base', base.bytes]]) };
  },
  async rust({ dir, manifest }) {
    const target = join(dir, '.naive-target');
    const bin = basename(manifest.run.command[0] ?? '');
    const r = await runT(['cargo', 'build', '--release', '--bin', bin, '--target-dir', target], { cwd: dir, env: { ...process.env, CARGO_HOME: join(dir, '.unikctl', 'cache', 'cargo'), CARGO_PROFILE_RELEASE_STRIP: 'none', CARGO_PROFILE_RELEASE_DEBUG: '1' }, timeoutMs: opts.buildTimeout * 1000 });
    if (r.code !== 0) return { error: `cargo build: ${r.stderr.trim().split('\n').at(-1)}` };
    const out = join(target, 'release', bin);
    const base = await distroBase();
    const libs = (await libClosure(out)).filter((l) => !base.files.has(l));
    return { what: `the same binary for the host target (glibc), with symbols and line tables, + ${base.what}`, parts: parts([['binary with symbols', fileSize(out)], ...libs.map(libPart), ['distro base', base.bytes]]) };
  },
  async c({ dir, metadata }) {
    const art = metadata?.artifacts?.[0]?.path;
    const bin = art ? (art.startsWith('/') ? art : join(dir, art)) : null;
    if (!bin || !existsSync(bin)) return { error: 'the built binary is not in the build directory' };
    const libs = await libClosure(bin);
    return { what: 'the binary + every shared library it loads (whole files)', parts: parts([['binary', fileSize(bin)], ...libs.map(libPart)]) };
  },
  async python({ dir, env }) {
    const code = 'import sys, sysconfig, json, os\n' +
      'ld = sysconfig.get_config_var("LDLIBRARY") or ""; libdir = sysconfig.get_config_var("LIBDIR") or ""\n' +
      'lib = os.path.join(libdir, ld) if ".so" in ld else None\n' +
      'print(json.dumps({"exe": os.path.realpath(sys.executable), "stdlib": sysconfig.get_paths()["stdlib"], "purelib": sysconfig.get_paths()["purelib"], "lib": lib if lib and os.path.exists(lib) else None, "version": sys.version.split()[0]}))';
    const r = await runT(['python3', '-c', code], { env });
    if (r.code !== 0) return { error: `python3: ${r.stderr.trim().split('\n').at(-1)}` };
    const info = JSON.parse(r.stdout) as { exe: string; stdlib: string; purelib: string; lib: string | null; version: string };
    // the app's dependencies as a naive `pip install -r requirements.txt` lays them out (with their own dependencies)
    const site = join(dir, '.naive-site-packages');
    let depsNote = 'site-packages: the app\'s requirements installed by pip';
    const req = ['requirements.txt', 'requirements.lock'].map((f) => join(dir, f)).find((f) => existsSync(f)) ?? await exportedLock(dir, env);
    if (req) {
      const p = await runT(['python3', '-m', 'pip', 'install', '--quiet', '--no-input', '--disable-pip-version-check', '--target', site, '-r', req], { env, timeoutMs: opts.buildTimeout * 1000 });
      if (p.code !== 0) depsNote = `site-packages: not measured (pip install failed: ${p.stderr.trim().split('\n').at(-1)})`;
    } else depsNote = 'site-packages: none (no requirements file or lock)';
    const libs = await libClosure(info.exe);
    const seen = new Set<string>();
    // the whole stdlib directory as installed (test suite, idlelib, config dir, caches), but not the host's own
    // site-packages (whatever else is installed on this machine is not the app's)
    const stdlibBytes = treeBytes(info.stdlib, seen) - (info.purelib.startsWith(`${info.stdlib}/`) ? treeBytes(info.purelib) : 0);
    const extraLib: Array<[string, number, string]> = info.lib && !libs.includes(realpathSync(info.lib)) ? [[`lib ${basename(info.lib)}`, treeBytes(realpathSync(info.lib), seen), info.lib]] : [];
    return {
      what: `CPython ${info.version} (${info.exe}): interpreter + its libraries + the whole stdlib directory (without the host's site-packages) + ${depsNote} + the app`,
      parts: parts([
        ['interpreter', fileSize(info.exe), info.exe],
        ...libs.map(libPart),
        ...extraLib,
        ['whole stdlib directory', stdlibBytes, info.stdlib],
        ['site-packages (requirements)', existsSync(site) ? treeBytes(site) : 0],
        ['app', appBytes(dir)],
      ]),
    };
  },
  async node({ dir, metadata, env }) {
    const nodeBin = metadata?.toolchain?.nodeBinary ?? (await runT(['sh', '-c', 'command -v node'])).stdout.trim();
    const exe = realpathSync(nodeBin);
    const dev = await nodeDevInstall(dir, env);
    if (dev.error) return { error: dev.error };
    // like go and rust: the libraries a distro base lacks + that base (a naive image is a distro base with node on it)
    const base = await distroBase();
    const libs = (await libClosure(exe)).filter((l) => !base.files.has(l));
    // the rest of the node distribution installed with this binary (what its release tarball and a node base image
    // hold): npm and corepack under PREFIX/lib/node_modules, the headers under PREFIX/include/node
    const prefix = dirname(dirname(exe));
    const bundled = ['npm', 'corepack'].map((t) => join(prefix, 'lib', 'node_modules', t)).filter((d) => existsSync(d));
    const headers = join(prefix, 'include', 'node');
    const seen = new Set<string>();
    const nm = treeBytes(join(dir, 'node_modules'), seen);
    return {
      what: `the node distribution (binary, its libraries, ${bundled.map((d) => basename(d)).join(' and ') || 'no bundled tools'}${existsSync(headers) ? ', headers' : ''}) + the app + node_modules from ${dev.how} + ${base.what}`,
      parts: parts([
        ['node binary', fileSize(exe), exe], ...libs.map(libPart),
        ...bundled.map((d): [string, number, string] => [`bundled ${basename(d)}`, treeBytes(d), d]),
        ...(existsSync(headers) ? [['headers', treeBytes(headers), headers] as [string, number, string]] : []),
        ['node_modules incl. dev deps', nm], ['app', appBytes(dir, seen)], ['distro base', base.bytes],
      ]),
    };
  },
  async java({ metadata, manifestArtifacts }) {
    let javaHome = metadata?.toolchain?.javaHome;
    if (!javaHome) {
      const r = await runT(['java', '-XshowSettings:properties', '-version']);
      javaHome = /java\.home = (.+)/.exec(r.stderr)?.[1]?.trim();
    }
    if (!javaHome || !existsSync(javaHome)) return { error: 'no JDK found' };
    // every jar the image holds: a fat jar (shade, Spring Boot's nested one) already carries all the dependencies
    const jars = manifestArtifacts.filter((a) => a.path.endsWith('.jar'));
    const jarBytes = jars.length > 0 ? jars.reduce((n, a) => n + (a.size ?? 0), 0) : NaN;
    return { what: `the full JDK directory (${javaHome}) + the app's jars with all their dependencies`, parts: parts([['full JDK', treeBytes(realpathSync(javaHome)), javaHome], ['jars (app + dependencies)', jarBytes]]) };
  },
};

/** The generic kernel bench/boot.ts fetched (Debian cloud kernel): vmlinuz + the initramfs it needs. */
function genericKernel() {
  const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'unikctl-bench');
  try {
    for (const d of readdirSync(cache).filter((x) => x.startsWith('linux-image-')).sort().reverse()) {
      const boot = join(cache, d, 'root', 'boot');
      const vmlinuz = readdirSync(boot).find((f) => f.startsWith('vmlinuz-'));
      if (!vmlinuz) continue;
      const initrd = readdirSync(join(cache, d)).find((f) => f.startsWith('initramfs-'));
      return { package: d, vmlinuz: join(boot, vmlinuz), vmlinuzBytes: fileSize(join(boot, vmlinuz)), initramfsBytes: initrd ? fileSize(join(cache, d, initrd)) : 0 };
    }
  } catch { /* not fetched */ }
  return null;
}

type Row =
  | { example: string; ok: false; error: string; buildMs: number; skipped?: true }
  | { example: string; ok: true; pack: string; mode: string; buildMs: number; image: Record<string, number | string>; naive: Naive; ratio: number | null; rootfsRatio: number | null; framework?: string; target?: 'PASS' | 'MISS'; targetMaxBytes?: number; missed?: string[] };

async function main(): Promise<void> {
  installCleanup();
  const { home, env } = privateHome('unikctl-size-');
  const started = new Date();
  const kernel = genericKernel();
  if (!kernel) say('size: the generic kernel is not cached (npm run bench:boot fetches it): baselines are compared without a kernel');
  const examples = readdirSync(join(ROOT, 'examples')).filter((d) => existsSync(join(ROOT, 'examples', d)) && statSync(join(ROOT, 'examples', d)).isDirectory()).sort();
  const rows: Row[] = [];
  for (const ex of examples) {
    if (opts.only && !opts.only.some((o) => o === ex || ex.startsWith(`${o}-`))) continue;
    const app = FRAMEWORK_APPS.find((a) => a.example === ex);
    const why = app ? unavailable(app, join(ROOT, 'examples', ex)) : null;
    if (why) {
      say(`size: examples/${ex} skipped: ${why}`);
      rows.push({ example: ex, ok: false, error: why, buildMs: 0, skipped: true });
      continue;
    }
    const dir = join(home, 'src', ex);
    mkdirSync(dirname(dir), { recursive: true });
    cpSync(join(ROOT, 'examples', ex), dir, { recursive: true, filter: (src) => !SKIP_COPY.has(basename(src)) || src === join(ROOT, 'examples', ex) });
    if (opts.warmCaches) seedCaches(ex, dir);
    say(`size: unikctl build examples/${ex}`);
    const t0 = performance.now();
    const b = await runT([process.execPath, CLI, 'build', dir, '--json'], { env, cwd: ROOT, timeoutMs: opts.buildTimeout * 1000 });
    const buildMs = Math.round(performance.now() - t0);
    if (b.code !== 0) {
      let err = b.stderr.trim().split('\n').filter(Boolean).at(-1) ?? `exit ${b.code}`;
      try { const j = JSON.parse(b.stdout) as Json; err = `${j.error?.code ?? ''} ${j.error?.message ?? ''}`.trim() || err; } catch { /* not JSON */ }
      say(`size:   skipped: ${err}`);
      rows.push({ example: ex, ok: false, error: err, buildMs });
      continue;
    }
    const info = JSON.parse(b.stdout) as { manifest: ImageManifest; metadata: string };
    const manifest = info.manifest;
    let metadata: Json = null;
    try { metadata = JSON.parse(readFileSync(info.metadata, 'utf8')) as Json; } catch { /* older build output */ }
    const image = { total: manifest.size, kernel: manifest.kernel.size, kernelRaw: manifest.kernel.rawSize, rootfs: manifest.rootfs.size, kernelEncoding: manifest.kernel.encoding ?? 'raw', rootfsFormat: manifest.rootfs.format };
    const fn = BASELINES[manifest.pack === 'unik.yaml' ? 'c' : manifest.pack];
    const naive: Naive = fn ? await fn({ dir, metadata, env, manifest, manifestArtifacts: metadata?.artifacts ?? [] }).catch((e: unknown) => ({ error: e instanceof Error ? e.message : String(e) })) : { error: `no naive baseline defined for the ${manifest.pack} pack` };
    if (!naive.error) {
      naive.runtimeBytes = (naive.parts ?? []).reduce((a, p) => a + (Number.isFinite(p.bytes) ? p.bytes : 0), 0);
      naive.kernelBytes = kernel ? kernel.vmlinuzBytes + kernel.initramfsBytes : 0;
      naive.total = naive.runtimeBytes + naive.kernelBytes;
    }
    const row: Row = {
      example: ex, ok: true, pack: manifest.pack, mode: manifest.mode, buildMs, image, naive,
      ratio: naive.error ? null : ratio(naive.total ?? NaN, image.total),
      rootfsRatio: naive.error ? null : ratio(naive.runtimeBytes ?? NaN, image.rootfs),
    };
    if (app) {
      const v = sizeVerdict(app, image.total, row.ratio);
      Object.assign(row, { framework: app.framework, target: v.target, ...(app.maxBytes ? { targetMaxBytes: app.maxBytes } : {}), ...(v.why.length ? { missed: v.why } : {}) });
    }
    rows.push(row);
    say(`size:   image ${MiB(image.total)} (kernel ${MiB(image.kernel)} + rootfs ${MiB(image.rootfs)}); naive ${naive.error ? `n/a (${naive.error})` : `${MiB(naive.total ?? NaN)} → ${row.ratio}× larger`}`);
  }
  const written = {
    schema: 'unikctl.bench.size/v1', startedAt: started.toISOString(), finishedAt: new Date().toISOString(),
    machine: { hostname: hostname(), cores: cpus().length }, warmCaches: opts.warmCaches,
    note: 'sizes are bytes as stored: the unikctl image is the compressed kernel (vmlinux.br; vmlinux.gz before 2026-12-03) + rootfs.erofs (compressed); the naive baseline is uncompressed files as they would sit on an ext4 disk image, plus the generic kernel',
    genericKernel: kernel, rows,
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `size-${fileStamp(started)}-${hostname()}.json`);
  writeFileSync(file, `${JSON.stringify(written, null, 2)}\n`);
  const result = { ...written, file: relative(ROOT, file) };
  if (opts.json) { process.stdout.write(`${JSON.stringify(result, null, 2)}\n`); return; }
  const L = ['', 'unikctl image size vs a naive image (same app, whole runtime copied in, generic kernel)', ''];
  const w = Math.max(14, ...rows.map((r) => r.example.length));
  L.push(`${'example'.padEnd(w)} ${'pack'.padEnd(10)} ${'unikctl image'.padStart(14)} ${'naive'.padStart(12)} ${'ratio'.padStart(7)}  ${`framework target (≥ ${SIZE_RATIO_TARGET}×, and the issue's MB bound)`}`);
  for (const r of rows) {
    if (!r.ok) { L.push(`${r.example.padEnd(w)} skipped: ${r.error}`); continue; }
    L.push(`${r.example.padEnd(w)} ${r.pack.padEnd(10)} ${MiB(Number(r.image.total)).padStart(14)} ${(r.naive.error ? 'n/a' : MiB(r.naive.total ?? NaN)).padStart(12)} ${(r.ratio ? `${r.ratio}×` : '').padStart(7)}  ${r.target ? `${r.target} (${r.framework}${r.targetMaxBytes ? `, ≤ ${r.targetMaxBytes / 1e6} MB: ${(Number(r.image.total) / 1e6).toFixed(1)} MB` : ''})${r.missed ? ` missed: ${r.missed.join('; ')}` : ''}` : ''}${r.naive.error ? `  (${r.naive.error})` : ''}`);
  }
  const missing = FRAMEWORK_APPS.filter((a) => !rows.some((r) => r.example === a.example) && (!opts.only || opts.only.includes(a.example)));
  for (const a of missing) L.push(`${a.example.padEnd(w)} not in examples/ (bench/lib/apps.ts lists it)`);
  L.push('', kernel ? `generic kernel: ${kernel.package} vmlinuz ${MiB(kernel.vmlinuzBytes)} + initramfs ${MiB(kernel.initramfsBytes)}` : 'generic kernel: not cached (run npm run bench:boot first)', `raw data: ${result.file}`);
  process.stdout.write(`${L.join('\n')}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => { say(`size: ${e instanceof Error ? e.message : e}`); process.exit(1); });
}
