import { existsSync, readFileSync, readdirSync, rmSync, statSync, type Dirent } from 'node:fs';
import { basename, extname, join, posix, relative } from 'node:path';
import { UserError, isUserError } from '../../errors.js';
import { run, which } from '../../util/exec.js';
import { EM_X86_64, isElfFile, libraryClosure, readElfInfo } from '../elf.js';
import { fileDigest, treeDigest } from '../inputs.js';
import type { Pack, PackArtifact } from '../pack.js';
import type { RootfsBuilder } from '../rootfs.js';
import { compileFailed, hasFile } from './common.js';
import { installSteps, lockState, planInstall, toolLabel } from './node/managers.js';
import { DEFAULT_MEMORY_MIB, GUEST_APP, GUEST_NODE, guestCommand, modeRuntime, resolveEntry, type PackageJson } from './node/plan.js';
import { findHostNode, formatSize, npmEnv, preparedNode, sha256OfFile, stageApp, toolArgv, treeSize } from './node/runtime.js';
import { completeStandalone, findStandalone, type StandaloneOutput } from './node/standalone.js';

/**
 * Node.js: the host's node binary (stripped in release) with its shared-library closure at /usr/bin/node, and
 * the app with its PRODUCTION node_modules at /app. The project's own node_modules is never copied: the app is
 * staged without it and the project's package manager (npm, pnpm or yarn: node/managers.ts) installs into the
 * staging copy from its lock file, frozen: first every dependency when package.json has a `build` script (which
 * then runs: tsc, bundlers), then production dependencies only, from nothing. Caches are in .unikctl/cache. Release runs `node` plainly with NODE_ENV=production; debug adds
 * --enable-source-maps (and warning/uncaught traces) with NODE_ENV=development and keeps node's symbol table.
 */
export const nodePack: Pack = {
  name: 'node',
  markers: 'package.json',
  detect: (dir) => hasFile(dir, 'package.json'),
  async build(ctx, rootfs) {
    const host = await findHostNode(ctx.env);
    const pkgFile = join(ctx.dir, 'package.json');
    let pkg: PackageJson;
    try {
      const parsed: unknown = JSON.parse(readFileSync(pkgFile, 'utf8'));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('the document is not an object');
      pkg = parsed as PackageJson;
    } catch (e) {
      throw new UserError('E_BUILD_FAILED', `package.json is not valid: ${(e as Error).message}`, { hint: 'fix package.json (check it with `npm pkg get name`)' });
    }
    const locks = lockState(ctx.dir);
    const plan = planInstall(pkg, locks, ctx.mode, ctx.warn);
    const env = npmEnv(ctx.env, host.binary);

    // 1. the app, staged without node_modules/.git/.unikctl (and without the extra-root directory of unik.yaml)
    let app = join(ctx.workDir, 'app');
    const extraRoot = ctx.config?.rootfs ? posix.normalize(ctx.config.rootfs).replace(/\/+$/, '') : null;
    stageApp(ctx.dir, app, extraRoot ? [extraRoot] : []);

    // 2. [all dependencies, the build script,] production dependencies only
    ctx.log(`package manager: ${toolLabel(plan.tool)} (${plan.tool.source})${plan.lock ? `, frozen to ${plan.lock}` : ''}`);
    const steps = installSteps(plan, ctx.cacheDir, env);
    if (!plan.production && plan.build === null) ctx.log('no production dependencies: nothing to install');
    const argv = steps.length > 0 ? await toolArgv(plan.tool, host, ctx.cacheDir, env, ctx.log) : [];
    let standalone: StandaloneOutput | null = null;
    for (const step of steps) {
      if (standalone && step.kind === 'production') {
        ctx.log(`${step.what}: skipped (the standalone output carries the traced node_modules its server needs)`);
        continue;
      }
      if (step.clean) rmSync(join(app, 'node_modules'), { recursive: true, force: true });
      const stepEnv: NodeJS.ProcessEnv = { ...env, ...step.env };
      if (step.dropNodeEnv) delete stepEnv.NODE_ENV;
      const label = `${plan.tool.name} ${step.args.join(' ')}`;
      ctx.log(`${step.what}: ${label}`);
      let r;
      try {
        r = await run([...argv, ...step.args], { cwd: app, env: stepEnv, onLine: ctx.log });
      } catch (e) {
        throw new UserError('E_TOOLCHAIN_MISSING', `cannot run ${argv.join(' ')}: ${(e as Error).message}`, { hint: 'install npm (apt-get install npm, or Node.js from https://nodejs.org)' });
      }
      if (r.code !== 0) throw compileFailed(label, r);
      if (step.kind === 'build') {
        standalone = findStandalone(app);
        if (standalone) {
          ctx.log(`build output: ${standalone.describe}${standalone.copies.length > 0 ? `, with ${standalone.copies.map((c) => c.from).join(' and ')} copied in` : ''}: it is /app`);
          app = completeStandalone(app, standalone);
        }
      }
    }
    // the build's dev dependencies (and caches it left in node_modules) never reach the image
    if (!plan.production && !standalone) rmSync(join(app, 'node_modules'), { recursive: true, force: true });
    // install-time configuration (registry tokens!), the package managers' own state and unikctl's files do not belong in the image
    for (const f of ['.npmrc', '.yarnrc', '.yarnrc.yml', '.pnpmfile.cjs', '.yarn', 'unik.yaml', 'unik.yml']) rmSync(join(app, f), { recursive: true, force: true });

    // 3. how it starts
    const runtime = modeRuntime(ctx.mode);
    let command: string[];
    let runEnv: Record<string, string>;
    if (ctx.config?.run.command) {
      command = ctx.config.run.command;
      runEnv = runtime.env;
      ctx.log(`start: unik.yaml run.command ${command.join(' ')}`);
    } else if (standalone) {
      // the standalone server.js reads PORT and HOSTNAME (default 0.0.0.0) itself
      const entry = { script: standalone.server, nodeArgs: [], args: [], env: {}, source: standalone.describe };
      ctx.log(`start: ${entry.script} (from the ${entry.source})`);
      ({ command, env: runEnv } = guestCommand(entry, ctx.mode));
    } else {
      const entry = resolveEntry(app, pkg, ctx.warn);
      ctx.log(`start: ${entry.script} (from ${entry.source})`);
      if (['.js', '.cjs', '.mjs'].includes(extname(entry.script))) {
        // the closest thing to a compile step for plain JavaScript: a syntax error fails the build, not the boot
        const r = await run([host.binary, '--check', entry.script], { cwd: app, env });
        if (r.code !== 0) throw compileFailed(`node --check ${entry.script}`, r);
      }
      ({ command, env: runEnv } = guestCommand(entry, ctx.mode));
    }

    // 4. the runtime: node and its shared-library closure
    const nodeSha = await sha256OfFile(host.binary);
    const nodeFile = await preparedNode(host.binary, ctx.mode, ctx.workDir, ctx.env, ctx.warn);
    rootfs.addFile(nodeFile, GUEST_NODE);
    rootfs.addLibraryClosure([GUEST_NODE]);

    // 5. the app, and the closure of native addons built for this platform
    const pruned = pruneForeignPrebuilds(join(app, 'node_modules'));
    if (pruned.length > 0) ctx.log(`left out ${pruned.length} prebuilt addon(s) for other platforms: ${pruned.slice(0, 5).join(', ')}${pruned.length > 5 ? ', …' : ''}`);
    if (ctx.mode === 'release') {
      for (const f of nativeAddons(elfFilesIn(app), (p) => p).native) await stripAddon(f, ctx.env);
    }
    rootfs.addTree(app, GUEST_APP);
    const addons = nativeAddons(rootfs.elfFilesUnder(GUEST_APP), (g) => rootfs.hostPath(g));
    if (addons.foreign.length > 0) ctx.log(`${addons.foreign.length} ELF file(s) for other machines are left as they are (never loaded here)`);
    addAddonClosure(rootfs, addons.native, ctx.warn);
    if (addons.native.length > 0) ctx.log(`native code: ${addons.native.join(', ')}`);

    // 6. what went in (BLD-6, and the composition in the build output)
    const artifacts = composition(rootfs.stagingDir);
    const nodeSize = statSync(nodeFile).size;
    const libs = artifacts.filter((a) => !a.path.startsWith(GUEST_APP) && a.path !== GUEST_NODE);
    const libBytes = libs.reduce((n, a) => n + a.size, 0);
    const nm = treeSize(join(app, 'node_modules'));
    const appBytes = treeSize(app).bytes;
    const packages = countPackages(app);
    ctx.log(`image content: node ${formatSize(nodeSize)}${nodeFile === host.binary ? '' : ` (${ctx.mode === 'release' ? 'stripped' : 'debug info stripped'} from ${formatSize(statSync(host.binary).size)})`}, ` +
      `${libs.length} shared libraries ${formatSize(libBytes)}, app ${formatSize(appBytes - nm.bytes)} + production node_modules ${formatSize(nm.bytes)} (${packages} package${packages === 1 ? '' : 's'})`);

    return {
      run: { command, env: runEnv, workdir: GUEST_APP, memoryMiB: DEFAULT_MEMORY_MIB },
      toolchain: { node: host.version, npm: host.npmVersion, nodeBinary: host.binary, ...(plan.tool.pkg ? { packageManager: toolLabel(plan.tool) } : {}) },
      inputs: {
        'package.json': fileDigest(pkgFile) ?? '',
        ...(plan.lock ? { [plan.lock]: fileDigest(join(ctx.dir, plan.lock)) ?? '' } : {}),
        sources: treeDigest(ctx.dir),
        node: `sha256:${nodeSha}`,
      },
      // no npm/yarn in the guest: a Procfile runs node itself (web: node server.js)
      programs: { node: [GUEST_NODE], nodejs: [GUEST_NODE] },
      artifacts: [
        { path: GUEST_NODE, size: nodeSize },
        ...libs,
        { path: GUEST_APP, size: appBytes },
        { path: `${GUEST_APP}/node_modules`, size: nm.bytes },
      ],
    };
  },
};

/** x86-64 ELF files (native addons, bundled executables) vs. prebuilt binaries for other machines. */
function nativeAddons(elfs: string[], hostPath: (g: string) => string): { native: string[]; foreign: string[] } {
  const native: string[] = [];
  const foreign: string[] = [];
  for (const g of elfs) {
    let ok = false;
    try {
      const info = readElfInfo(hostPath(g));
      ok = info.is64 && info.machine === EM_X86_64 && info.type !== 'other';
    } catch {
      ok = false;
    }
    (ok ? native : foreign).push(g);
  }
  return { native, foreign };
}

/** Release: drop the symbols a native addon does not need to load (best effort, on the staged copy). */
async function stripAddon(file: string, env: NodeJS.ProcessEnv): Promise<void> {
  const strip = which('strip', env);
  if (strip) await run([strip, '--strip-unneeded', file], { env });
}

/** ELF files under a host directory (regular files only; symlinks are copies of something else). */
function elfFilesIn(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && isElfFile(p)) out.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** A directory's entries; none when it does not exist (node_modules is optional everywhere). */
function dirEntries(d: string): Dirent[] {
  try {
    return readdirSync(d, { withFileTypes: true });
  } catch {
    return [];
  }
}

/**
 * prebuildify/node-gyp-build layout: node_modules/<pkg>/prebuilds/<platform>-<arch[+arch]>/. Only linux-x64
 * can load in the guest; the folders for other platforms are removed from the staged copy (BLD-9).
 */
export function pruneForeignPrebuilds(nodeModules: string): string[] {
  const removed: string[] = [];
  const walk = (d: string): void => {
    for (const e of dirEntries(d)) {
      if (!e.isDirectory()) continue;
      const p = join(d, e.name);
      if (e.name === 'prebuilds') {
        for (const t of readdirSync(p, { withFileTypes: true })) {
          const m = /^([a-z0-9]+)-([a-z0-9_+]+)$/i.exec(t.name);
          if (!t.isDirectory() || !m) continue;
          const dir = join(p, t.name);
          if (m[1] === 'linux' && m[2]!.split('+').includes('x64')) {
            // the guest has glibc: musl-tagged builds (node.napi.musl.node) can never load
            for (const f of readdirSync(dir)) {
              if (/(^|\.)musl\./.test(f)) {
                rmSync(join(dir, f), { recursive: true, force: true });
                removed.push(relative(nodeModules, join(dir, f)));
              }
            }
            continue;
          }
          rmSync(dir, { recursive: true, force: true });
          removed.push(relative(nodeModules, dir));
        }
      } else {
        walk(p);
      }
    }
  };
  walk(nodeModules);
  return removed.sort();
}

/**
 * The libraries native addons need beyond what node already loads. An addon is dlopen()ed into node, so a
 * NEEDED name node's closure already provides (libc.so.6, ld-linux...) is satisfied by the loaded copy and is
 * not added again under another directory. A missing library is a warning: prebuilt binaries for another libc
 * (e.g. *.musl.node) sit next to the one that loads.
 */
function addAddonClosure(rootfs: RootfsBuilder, guestPaths: string[], warn: (m: string) => void): void {
  if (guestPaths.length === 0) return;
  const have = new Set(libraryClosure([rootfs.hostPath(GUEST_NODE)]).map((e) => basename(e.guestPath)));
  for (const g of guestPaths) {
    let closure;
    try {
      closure = libraryClosure([rootfs.hostPath(g)]);
    } catch (e) {
      if (!isUserError(e) || e.code !== 'E_LIBRARY_MISSING') throw e;
      warn(`${g}: ${e.message}; it will fail to load if the app uses it`);
      continue;
    }
    for (const entry of closure) {
      if (entry.guestPath.startsWith(rootfs.stagingDir) || have.has(basename(entry.guestPath))) continue;
      rootfs.addFile(entry.hostPath, entry.guestPath);
      have.add(basename(entry.guestPath));
    }
  }
}

/** Every file outside /app, /etc and /init (node and its libraries), with sizes, sorted. */
function composition(stagingDir: string): PackArtifact[] {
  const out: PackArtifact[] = [];
  const walk = (host: string, guest: string): void => {
    for (const e of readdirSync(host, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const g = posix.join(guest, e.name);
      if (g === GUEST_APP || g === '/etc' || g === '/init') continue;
      const p = join(host, e.name);
      if (e.isDirectory()) walk(p, g);
      else if (e.isFile()) out.push({ path: g, size: statSync(p).size });
    }
  };
  walk(stagingDir, '/');
  return out;
}

/**
 * Packages in node_modules, whichever tool installed them: directories holding a package.json at
 * node_modules/<name> or node_modules/@scope/<name>, nested node_modules included.
 */
function countPackages(app: string): number {
  let n = 0;
  const walk = (nm: string): void => {
    for (const e of dirEntries(nm)) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      const dirs = e.name.startsWith('@') ? dirEntries(join(nm, e.name)).filter((d) => d.isDirectory()).map((d) => join(nm, e.name, d.name)) : [join(nm, e.name)];
      for (const d of dirs) {
        if (existsSync(join(d, 'package.json'))) n++;
        walk(join(d, 'node_modules'));
      }
    }
  };
  walk(join(app, 'node_modules'));
  return n;
}
