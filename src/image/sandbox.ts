/**
 * Sandboxed builds: how a control plane or an agent builds code it received from a client.
 *
 * A remote build runs the client's compilers, package-manager scripts and unik.yaml build.command, so it is
 * treated as hostile. It runs:
 *   - as the unprivileged build user (`unikctl-build`, made by the set-up), never as the daemon's user;
 *   - in bubblewrap: new mount, pid, ipc, uts and network namespaces; the root holds the host's system and
 *     toolchain directories read-only, the unikctl installation read-only, and writable only /build (its own copy
 *     of the project, its work and output directories, its HOME), its per-app cache, and a size-limited /tmp.
 *     The daemon's data directory, auth and TLS files and $UNIKCTL_HOME are not there (masked if below a bound tree);
 *   - with a scrubbed environment: PATH, locale and the toolchains' own variables (GO*, CARGO_*, RUSTUP_*, PIP_*,
 *     npm_config_*, JAVA_HOME, …) pass; no UNIKCTL* / UNIKCTLD* variable and nothing named like a credential does;
 *   - in a cgroup bounding memory (no swap), CPU and tasks; a wall-clock limit and a disk limit (the writable
 *     directories are measured every few seconds) kill the whole sandbox;
 *   - on a private network (slirp4netns, user-mode TCP/IP) that reaches the outside — the package registries —
 *     but not the host's loopback addresses (the daemon's API, etcd, agents on 127.0.0.1); or with no network.
 * Only the packed root filesystem and the run configuration come back; the daemon checks both and adds its own
 * kernel, so the build never writes into the package store, the deployment or the uploaded artifact.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, copyFileSync, existsSync, fstatSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, UserError, type ErrorCode } from '../errors.js';
import { locateKernel } from '../kernel/kernel.js';
import { guestInitPath, projectRoot, type HomeLayout } from '../paths.js';
import { ResourceGroup } from '../util/cgroup.js';
import { lookupUser } from '../util/users.js';
import { which } from '../util/exec.js';
import { processStartTime } from '../util/proc.js';
import type { BuildSandboxPolicy } from '../store/types.js';
import type { BuildProgress } from './build.js';
import type { KeyObject } from 'node:crypto';
import { attestImage, defaultBuilderId, type BuildFacts } from './attest.js';
import { writeImage, type ImageManifest, type RunConfig } from './image.js';
import type { BuildMode } from './pack.js';
import type { SandboxJob } from './sandbox-main.js';

export const DEFAULT_BUILD_SANDBOX: Omit<BuildSandboxPolicy, 'hide'> = {
  memoryMiB: 4096, cpus: 2, pids: 2048, timeoutSeconds: 1800, diskMiB: 8192, network: 'isolated',
};

export const BUILD_USER = 'unikctl-build';
const ENTRY = fileURLToPath(new URL('./sandbox-main.js', import.meta.url));
const INSIDE = '/build';
const DISK_POLL_MS = 2000;
const MAX_LINE = 4000;
const SETUP_HINT = 'run make setup on this host (it installs bubblewrap and slirp4netns and creates the unikctl-build user), or start the daemon with --build-sandbox off (unsafe: builds then run as the daemon user)';

/** Variables a toolchain needs, by exact name or prefix; everything else is dropped. */
const PASS_NAMES = new Set([
  'LANG', 'LANGUAGE', 'TZ', 'JAVA_HOME', 'GOROOT', 'MAVEN_OPTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'SOURCE_DATE_EPOCH',
  // npm's registry settings; not the npm_config_* that `npm run` exports (its cache and prefix are host paths)
  'npm_config_registry', 'npm_config_nodedir', 'npm_config_cafile', 'npm_config_strict_ssl',
]);
const PASS_PREFIXES = ['LC_', 'GO', 'CARGO_', 'RUSTUP_', 'PIP_', 'PYENV_', 'UV_', 'POETRY_'];
const CREDENTIAL = /TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|PRIVATE|_KEY|APIKEY|COOKIE/i;

/** The build's environment: toolchain variables of the daemon's environment, none of its secrets. */
export function sandboxEnv(env: NodeJS.ProcessEnv, visible: (dir: string) => boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || CREDENTIAL.test(k) || k.startsWith('UNIKCTL')) continue;
    if (PASS_NAMES.has(k) || PASS_PREFIXES.some((p) => k.startsWith(p))) out[k] = v;
  }
  // toolchain homes that default to $HOME/… on the host: the build's HOME is its own, so name them explicitly
  const home = env.HOME;
  if (home) {
    for (const [k, d] of [['RUSTUP_HOME', '.rustup'], ['PYENV_ROOT', '.pyenv']] as const) {
      if (out[k] === undefined && visible(join(home, d))) out[k] = join(home, d);
    }
  }
  const path = (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':').filter((d) => d.startsWith('/') && visible(d));
  out.PATH = [...new Set([...path, '/usr/local/bin', '/usr/bin', '/bin'])].join(':');
  out.HOME = `${INSIDE}/home`;
  out.TMPDIR = '/tmp';
  out.USER = BUILD_USER;
  return out;
}

/** Directories of the daemon user's home that hold toolchains named by PATH (~/.cargo/bin → ~/.cargo) and their homes. */
export function toolchainDirs(env: NodeJS.ProcessEnv): string[] {
  const home = env.HOME;
  const out = new Set<string>();
  const add = (p: string | undefined): void => { if (p && existsSync(p)) out.add(resolve(p)); };
  for (const d of (env.PATH ?? '').split(':')) {
    if (home && d.startsWith(`${home}/`)) add(join(home, d.slice(home.length + 1).split('/')[0] ?? ''));
  }
  if (home && out.has(join(home, '.cargo'))) add(env.RUSTUP_HOME ?? join(home, '.rustup'));
  if (home && out.has(join(home, '.pyenv'))) add(env.PYENV_ROOT ?? join(home, '.pyenv'));
  for (const k of ['JAVA_HOME', 'GOROOT', 'RUSTUP_HOME', 'PYENV_ROOT']) add(env[k]);
  for (const p of (env.UNIKCTL_BUILD_SANDBOX_BIND ?? '').split(':')) if (p) add(p);
  return [...out];
}

const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc', '/opt'];

function lookupBuildUser(): { uid: number; gid: number } {
  const u = lookupUser(BUILD_USER);
  if (!u) throw new UserError('E_SANDBOX_UNAVAILABLE', `the build user ${BUILD_USER} does not exist on this host`, { hint: SETUP_HINT });
  return u;
}

/** Why sandboxed builds cannot run on this host, or null when they can. */
export function sandboxUnavailable(policy: Pick<BuildSandboxPolicy, 'network'>): string | null {
  if (process.getuid?.() !== 0) return 'the daemon does not run as root (it needs root to start builds as the build user and to make their cgroup)';
  for (const tool of ['bwrap', 'setpriv', ...(policy.network === 'isolated' ? ['slirp4netns'] : [])]) {
    if (!which(tool)) return `${tool} is not installed`;
  }
  const cg = ResourceGroup.detect();
  if ('unavailable' in cg) return cg.unavailable;
  return null;
}

const under = (p: string, root: string): boolean => p === root || p.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);

function bwrapArgs(o: {
  sandboxDir: string; cacheDir: string; rootfsDir: string | undefined; policy: BuildSandboxPolicy; layout: HomeLayout; env: NodeJS.ProcessEnv;
  user: { uid: number; gid: number }; resolvConf: string | null; job: SandboxJob;
}): { args: string[]; env: Record<string, string> } {
  const a: string[] = ['--die-with-parent', '--new-session', '--unshare-ipc', '--unshare-pid', '--unshare-uts', '--unshare-cgroup-try', '--unshare-net', '--hostname', 'build'];
  const bound: string[] = [];
  for (const d of SYSTEM_DIRS) {
    if (!existsSync(d)) continue;
    const st = lstatSync(d);
    if (st.isSymbolicLink()) a.push('--symlink', readlinkSync(d), d);
    else {
      a.push('--ro-bind', d, d);
      bound.push(d);
    }
  }
  const extra = [projectRoot, ...toolchainDirs(o.env)];
  // an installation whose node_modules is a symlink (a worktree sharing one) needs the target bound too
  const modules = join(projectRoot, 'node_modules');
  if (existsSync(modules)) {
    const real = realpathSync(modules);
    if (!under(real, projectRoot)) extra.push(real);
  }
  const init = guestInitPath();
  if (!under(init, projectRoot)) extra.push(init);
  // the fresh /tmp comes before the installation and toolchain binds: an installation below /tmp (a CI clone) would
  // otherwise be covered by it
  a.push('--proc', '/proc', '--dev', '/dev', '--perms', '1777', '--size', String(256 * 1024 * 1024), '--tmpfs', '/tmp');
  const made = new Set<string>(['/tmp']);
  for (const d of extra) {
    if (bound.some((b) => under(d, b))) continue;
    // bubblewrap would make missing parents 0700 (root only): the build user must be able to pass through them
    const parts = d.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const parent = `/${parts.slice(0, i).join('/')}`;
      if (made.has(parent) || bound.some((b) => under(parent, b))) continue;
      a.push('--perms', '0755', '--dir', parent);
      made.add(parent);
    }
    a.push('--ro-bind', d, d);
    bound.push(d);
  }
  // the daemon's own state, even where it lies below a bound tree (e.g. a data directory inside the installation)
  for (const h of [o.layout.home, ...o.policy.hide]) {
    const p = resolve(h);
    if (existsSync(p) && bound.some((b) => under(p, b))) {
      if (statSync(p).isDirectory()) a.push('--tmpfs', p);
      else a.push('--ro-bind', '/dev/null', p);
    }
  }
  if (o.resolvConf) a.push('--ro-bind', o.resolvConf, '/etc/resolv.conf');
  a.push('--bind', o.sandboxDir, INSIDE, '--bind', o.cacheDir, `${INSIDE}/cache`);
  if (o.rootfsDir) a.push('--ro-bind', o.rootfsDir, `${INSIDE}/rootfs-extra`);
  a.push('--chdir', `${INSIDE}/src`, '--clearenv');
  const visible = (d: string): boolean => bound.some((b) => under(d, b));
  const env = sandboxEnv(o.env, visible);
  for (const [k, v] of Object.entries(env)) a.push('--setenv', k, v);
  // bubblewrap runs as root only to set up the mounts; the build itself runs as the build user without capabilities
  a.push('--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID', '--',
    'setpriv', `--reuid=${o.user.uid}`, `--regid=${o.user.gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--',
    process.execPath, ENTRY, JSON.stringify(o.job));
  return { args: a, env };
}

/** Bytes under `dirs` (du counts each hard-linked file once). */
function diskUse(dirs: string[]): number {
  const r = spawnSync('du', ['-s', '-B1', '-x', ...dirs], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').reduce((n, l) => n + (Number(l.split('\t')[0]) || 0), 0);
}

function readJsonLine(child: ChildProcess, fd: 3): Promise<{ 'child-pid': number }> {
  return new Promise((res, rej) => {
    const s = child.stdio[fd] as NodeJS.ReadableStream | null;
    if (!s) return rej(new Error('no info fd'));
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      buf += c;
      try {
        res(JSON.parse(buf) as { 'child-pid': number });
      } catch { /* more to come */ }
    });
    s.on('end', () => rej(new Error(`bubblewrap did not start: ${buf}`)));
  });
}

/** Starts slirp4netns for the sandbox's network namespace; resolves once the interface is configured. */
function startNetwork(childPid: number): Promise<ChildProcess> {
  return new Promise((res, rej) => {
    const p = spawn('slirp4netns', ['--configure', '--mtu=65520', '--disable-host-loopback', '--ready-fd=3', String(childPid), 'tap0'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    let err = '';
    p.stderr?.setEncoding('utf8').on('data', (c: string) => { err += c; });
    (p.stdio[3] as NodeJS.ReadableStream).once('data', () => res(p));
    p.once('exit', (code) => rej(new Error(`slirp4netns exited (${code}): ${err.trim()}`)));
  });
}

/** The run configuration a sandboxed build reported, checked field by field (it comes from untrusted code). */
export function checkRun(v: unknown): RunConfig {
  const r = v as Partial<RunConfig> | null;
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
  const ok = r !== null && typeof r === 'object' && strings(r.command) && r.command.length > 0
    && typeof r.env === 'object' && r.env !== null && Object.values(r.env).every((s) => typeof s === 'string')
    && typeof r.workdir === 'string' && r.workdir.startsWith('/')
    && Number.isInteger(r.memoryMiB) && (r.memoryMiB ?? 0) > 0 && (r.memoryMiB ?? 0) <= 1024 * 1024
    && Array.isArray(r.ports) && r.ports.every((p) => Number.isInteger(p) && p > 0 && p < 65536)
    && (r.expand === undefined || typeof r.expand === 'boolean')
    && (r.envTemplates === undefined || (typeof r.envTemplates === 'object' && r.envTemplates !== null && Object.values(r.envTemplates).every((s) => typeof s === 'string')));
  if (!ok) throw new UserError('E_BUILD_FAILED', 'the sandboxed build reported an invalid run configuration');
  // expand (a Procfile command's $VAR templates) only makes the host fill the guest's argv from the guest's own env
  return { command: r.command as string[], env: r.env as Record<string, string>, workdir: r.workdir as string, memoryMiB: r.memoryMiB as number, ports: r.ports as number[], ...(r.expand ? { expand: true } : {}),
    ...(r.envTemplates ? { envTemplates: r.envTemplates } : {}) };
}

/** Copies a regular file the build user wrote, refusing symlinks and special files (opened without following links). */
function importFile(src: string, dst: string, maxBytes: number): void {
  let fd: number;
  try {
    fd = openSync(src, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    throw new UserError('E_BUILD_FAILED', `the sandboxed build did not produce ${basename(src)} (${(e as NodeJS.ErrnoException).code})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UserError('E_BUILD_FAILED', `the sandboxed build's ${basename(src)} is not a regular file`);
    if (st.size > maxBytes) throw new UserError('E_BUILD_LIMIT', `the root filesystem (${st.size} bytes) exceeds the build's disk limit`);
    copyFileSync(`/proc/self/fd/${fd}`, dst);
  } finally {
    closeSync(fd);
  }
}

/** Work roots and cgroups of builds whose daemon process died (a destroy kills a building worker outright). */
async function sweepStale(buildsRoot: string): Promise<void> {
  for (const e of readdirSync(buildsRoot)) {
    const pid = Number(e.split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || processStartTime(pid) !== null) continue;
    await ResourceGroup.existing(e).remove();
    rmSync(join(buildsRoot, e), { recursive: true, force: true });
  }
}

/** A map of short strings reported by the sandboxed build (anything else is dropped). */
function stringMap(v: unknown): Record<string, string> {
  if (!v || typeof v !== 'object') return {};
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string').slice(0, 64).map(([k, x]) => [k.slice(0, 64), x.slice(0, 256)]));
}

export interface SandboxedBuildResult { imageDir: string; manifest: ImageManifest; workRoot: string; peakMemoryBytes: number | null; }

/**
 * Builds `projectDir` in a sandbox (see the top of this file) into an image directory under `workRoot`; the caller
 * copies it where it belongs and then removes `workRoot`.
 */
export async function sandboxedBuild(o: {
  layout: HomeLayout; projectDir: string; rootfsDir?: string; mode: BuildMode; cacheKey: string; policy: BuildSandboxPolicy;
  progress: BuildProgress; env: NodeJS.ProcessEnv; signal?: AbortSignal;
  /** the daemon's signing key: the image is signed here, outside the sandbox (the build never sees the key) */
  signKey?: KeyObject | null;
}): Promise<SandboxedBuildResult> {
  const started = new Date();
  const why = sandboxUnavailable(o.policy);
  if (why) throw new UserError('E_SANDBOX_UNAVAILABLE', `cannot sandbox the build: ${why}`, { hint: SETUP_HINT });
  const user = lookupBuildUser();
  const kernel = locateKernel(o.layout, o.mode);

  const buildsRoot = join(o.layout.home, 'builds');
  mkdirSync(buildsRoot, { recursive: true, mode: 0o700 });
  await sweepStale(buildsRoot);
  const workRoot = mkdtempSync(join(buildsRoot, `${process.pid}-`));
  const sandboxDir = join(workRoot, 'sandbox');
  const cacheDir = join(o.layout.home, 'build-cache', o.cacheKey);
  let group: ResourceGroup | null = null;
  let net: ChildProcess | null = null;
  try {
    for (const d of ['src', 'work', 'out', 'home']) mkdirSync(join(sandboxDir, d), { recursive: true });
    // the build works on its own copy: the uploaded artifact stays exactly as it was stored
    const cp = spawnSync('cp', ['-R', '--preserve=mode,timestamps', '--no-dereference', `${o.projectDir}/.`, join(sandboxDir, 'src')], { encoding: 'utf8' });
    if (cp.status !== 0) throw new UserError('E_INTERNAL', `copying the project for the build failed: ${cp.stderr.trim()}`);
    mkdirSync(cacheDir, { recursive: true });
    for (const d of [sandboxDir, cacheDir]) {
      if (d === cacheDir && statSync(d).uid === user.uid) continue;
      const ch = spawnSync('chown', ['-R', '--no-dereference', `${user.uid}:${user.gid}`, d], { encoding: 'utf8' });
      if (ch.status !== 0) throw new UserError('E_INTERNAL', `chown of the build directory failed: ${ch.stderr.trim()}`);
    }
    let resolvConf: string | null = null;
    if (o.policy.network === 'isolated') {
      resolvConf = join(workRoot, 'resolv.conf');
      writeFileSync(resolvConf, 'nameserver 10.0.2.3\n'); // slirp4netns's DNS forwarder
    }
    const job: SandboxJob = {
      dir: `${INSIDE}/src`, mode: o.mode, cacheDir: `${INSIDE}/cache`, workDir: `${INSIDE}/work`, outDir: `${INSIDE}/out`, defaultName: o.cacheKey,
      ...(o.rootfsDir ? { rootfsDir: `${INSIDE}/rootfs-extra` } : {}),
    };
    const { args } = bwrapArgs({ sandboxDir, cacheDir, rootfsDir: o.rootfsDir, policy: o.policy, layout: o.layout, env: o.env, user, resolvConf, job });

    try {
      group = ResourceGroup.create(basename(workRoot), { memoryBytes: o.policy.memoryMiB * 1048576, cpus: o.policy.cpus, pids: o.policy.pids });
    } catch (e) {
      throw new UserError('E_SANDBOX_UNAVAILABLE', `cannot make the build's cgroup: ${(e as Error).message}`, { hint: SETUP_HINT });
    }
    const child = spawn('bwrap', ['--info-fd', '3', '--block-fd', '4', ...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    // fds 3 and 4 are socket pairs: bubblewrap closing its end may surface as ECONNRESET, which is not an error here
    for (const fd of [3, 4]) (child.stdio[fd] as NodeJS.EventEmitter | null)?.on('error', () => {});
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('close', (code, signal) => res({ code, signal })));
    let events: Array<Record<string, unknown>> = [];
    let partial = '';
    const onEvent = (line: string): void => {
      let ev: Record<string, unknown>;
      try { ev = JSON.parse(line) as Record<string, unknown>; } catch { o.progress.line(line.slice(0, MAX_LINE)); return; }
      const m = String(ev.m ?? '').slice(0, MAX_LINE);
      if (ev.t === 'step') o.progress.step(m);
      else if (ev.t === 'line') o.progress.line(m);
      else if (ev.t === 'warn') o.progress.warn(m);
      else events = [...events.slice(-1), ev]; // result / error: only the last one counts
    };
    child.stdout?.setEncoding('utf8').on('data', (c: string) => {
      const lines = (partial + c).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) if (l) onEvent(l);
    });
    // the last lines on stderr name what failed when the build ends without reporting (bwrap, setpriv, node itself)
    const stderrTail: string[] = [];
    child.stderr?.setEncoding('utf8').on('data', (c: string) => {
      for (const l of c.split('\n')) {
        if (!l.trim()) continue;
        o.progress.line(l.slice(0, MAX_LINE));
        stderrTail.push(l.slice(0, MAX_LINE));
        if (stderrTail.length > 3) stderrTail.shift();
      }
    });

    let limit: string | null = null;
    const stop = (why: string): void => {
      limit ??= why;
      void group?.killAll();
      child.kill('SIGKILL');
    };
    try {
      const info = await readJsonLine(child, 3);
      group.add(child.pid ?? 0);
      group.add(info['child-pid']);
      if (o.policy.network === 'isolated') net = await startNetwork(info['child-pid']);
    } catch (e) {
      child.kill('SIGKILL');
      await exited;
      throw new UserError('E_SANDBOX_UNAVAILABLE', `the build sandbox did not start: ${(e as Error).message}`, { hint: SETUP_HINT });
    }
    (child.stdio[4] as NodeJS.WritableStream).end('go');

    const timer = setTimeout(() => stop(`the build ran longer than its time limit (${o.policy.timeoutSeconds} s)`), o.policy.timeoutSeconds * 1000);
    const baseline = diskUse([cacheDir]);
    const diskTimer = setInterval(() => {
      const used = diskUse([sandboxDir]) + Math.max(0, diskUse([cacheDir]) - baseline);
      if (used > o.policy.diskMiB * 1048576) stop(`the build wrote more than its disk limit (${o.policy.diskMiB} MiB)`);
    }, DISK_POLL_MS);
    const onAbort = (): void => stop('cancelled');
    o.signal?.addEventListener('abort', onAbort);
    const res = await exited;
    clearTimeout(timer);
    clearInterval(diskTimer);
    o.signal?.removeEventListener('abort', onAbort);
    if (partial) onEvent(partial);
    const peak = group.peakMemoryBytes();

    if (limit === 'cancelled') throw new UserError('E_CANCELLED', 'the build was cancelled');
    if (group.oomKills() > 0) limit ??= `the build used more than its memory limit (${o.policy.memoryMiB} MiB)`;
    if (limit) throw new UserError('E_BUILD_LIMIT', limit, { hint: 'make the build smaller, or ask the operator to raise the build limits (unikctld --build-memory, --build-timeout, --build-disk)' });
    const last = events.at(-1);
    if (last?.t === 'error') {
      const code = typeof last.code === 'string' && last.code in ERROR_CODES ? (last.code as ErrorCode) : 'E_BUILD_FAILED';
      const hint = typeof last.hint === 'string' ? last.hint.slice(0, MAX_LINE) : undefined;
      throw new UserError(code, String(last.message ?? 'the build failed').slice(0, MAX_LINE), hint ? { hint } : {});
    }
    if (last?.t !== 'result' || res.code !== 0) {
      throw new UserError('E_BUILD_FAILED', `the build ended without a result (exit ${res.code ?? res.signal})${stderrTail.length ? `: ${stderrTail.join(' | ')}` : ''}`);
    }
    const run = checkRun(last.run);
    const name = typeof last.name === 'string' ? last.name.slice(0, 63) : o.cacheKey;
    const pack = typeof last.pack === 'string' ? last.pack.slice(0, 32) : 'unknown';

    // only the root filesystem comes back; the kernel is the daemon's own
    const imported = join(workRoot, 'rootfs.erofs');
    importFile(join(sandboxDir, 'out', 'rootfs.erofs'), imported, o.policy.diskMiB * 1048576);
    const imageDir = join(workRoot, 'image');
    // the build reports its toolchain and input digests; the SBOM's files and dependencies are read here, from the
    // imported root filesystem and the stored project, never from the sandbox's word
    const facts: BuildFacts = {
      builderId: defaultBuilderId(process.env), toolchain: stringMap(last.toolchain), inputs: stringMap(last.inputs), projectDir: o.projectDir, startedOn: started,
    };
    const manifest = await writeImage({
      outDir: imageDir, rootfs: { erofsFile: imported }, kernel, name, pack, mode: o.mode, run,
      finish: async (d, m) => { await attestImage(d, m, { facts, key: o.signKey ?? null, scratch: workRoot }); },
    });
    return { imageDir, manifest, workRoot, peakMemoryBytes: peak };
  } catch (e) {
    rmSync(workRoot, { recursive: true, force: true });
    throw e;
  } finally {
    net?.kill('SIGKILL');
    await group?.remove();
  }
}

