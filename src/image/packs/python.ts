import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, posix } from 'node:path';
import { UserError } from '../../errors.js';
import { run, which } from '../../util/exec.js';
import { DEFAULT_SEARCH_DIRS, libraryClosure, readElfInfo } from '../elf.js';
import { fileDigest, treeDigest } from '../inputs.js';
import type { BuildContext, BuildMode, Pack, PackArtifact } from '../pack.js';
import { compileFailed, hasFile, requireLock, requireTool } from './common.js';
import { dropRunpath } from './python/elfpatch.js';
import { GUEST_PYTHON, launcher, planEntry, serverModules, type EntryFile } from './python/entry.js';
import { HELPER_PY } from './python/helper.js';
import { exportFailure, planInstall, toolEnv, type PyTool } from './python/install.js';
import { checkRequirements, FREEZE_OMITS, planFreezeOmitted } from './python/requirements.js';
import { analyzeConfig, planStdlib, type FoundModule } from './python/stdlib.js';
import { planTzdata, TZ_SKIP } from './python/tzdata.js';

/**
 * Python (CPython from the host): the interpreter, its shared-library closure, ONLY the stdlib modules the app
 * can import (python/stdlib.ts), the dependencies pip installs from the pinned lock file (requirements file, or
 * uv.lock / poetry.lock exported by the pinned tool: python/install.ts), the project itself when it is a package,
 * and the app. What starts: main.py, a pyproject.toml script or unik.yaml's run.command, console scripts run
 * through the interpreter (python/entry.ts).
 *
 * Guest layout (Debian-like, prefix /usr): /usr/bin/python3, /usr/lib/x86_64-linux-gnu/libpython3.X.so.1.0
 * (a default loader directory: the interpreter's RUNPATH into the host prefix is removed), /usr/lib/python3.X
 * (pruned stdlib, lib-dynload), /usr/lib/python3.X/site-packages (dependencies), /app (the project), and
 * /usr/share/zoneinfo when the app can import zoneinfo (python/tzdata.ts).
 *
 * release: stdlib, dependencies and app modules compiled to sourceless .pyc (optimize 2 = -OO, deterministic
 *          unchecked-hash headers, guest paths in code objects) with the .py dropped (the entry script stays a
 *          .py); interpreter, libpython and extension modules stripped; runs `python3 -E -s -u -OO /app/main.py`.
 * debug:   sources kept next to unchecked-hash __pycache__ (fast start on a read-only root), symbols kept,
 *          runs `python3 -E -s -u -X dev -X faulthandler /app/main.py` (dev mode: warnings, asyncio debug...).
 *
 * pyproject.toml [tool.unikctl.python] (optional): include = ["mod", ...] extra stdlib modules the app imports
 * by a computed name; keep-sources = true keeps the app's and dependencies' .py in release; optimize = 0|1|2.
 */

const INSTALL_PYTHON = 'install CPython 3 with pip (e.g. apt-get install python3 python3-pip, or pyenv install 3.11) so that `python3 -m pip --version` works';
const GUEST_LIBDIR = '/usr/lib/x86_64-linux-gnu';
/** project directories never copied into /app (besides hidden ones and virtualenvs) */
const SKIP_DIRS = new Set(['__pycache__', 'node_modules']);

export interface PythonInfo {
  executable: string;
  version: string;
  implementation: string;
  major_minor: string;
  stdlib: string;
  dynload: string;
  shared: boolean;
  libpython: string | null;
  pip: string | null;
  stdlibRel: string;
  dynloadRel: string;
  siteGuest: string;
  pyproject: null | { error: string } | PyprojectFacts;
  /** the interpreter's compiled-in zoneinfo search path */
  tzpath: string[];
}

/** pyproject.toml as helper.py reads it */
export interface PyprojectFacts {
  dependencies: string[];
  /** [project.scripts] and [tool.poetry.scripts] console scripts */
  scripts: Record<string, string>;
  buildSystem: boolean;
  packageMode: boolean;
  unikctl: PythonToolConfig;
}

export interface PythonToolConfig { include?: unknown; 'keep-sources'?: unknown; optimize?: unknown; }

interface AnalyzeResult { modules: FoundModule[]; trace: string[]; appMissing: string[]; failed: string[]; excluded: string[]; }
interface CompileGroup { files: string[]; legacy: boolean; optimize: number; removeSources: boolean; strict?: boolean; checkOnly?: boolean; }

/** The interpreter flags of the default guest command. */
export function interpreterFlags(mode: BuildMode, optimize: number): string[] {
  if (mode === 'release') return ['-E', '-s', '-u', ...(optimize > 0 ? [`-${'O'.repeat(optimize)}`] : [])];
  return ['-E', '-s', '-u', '-X', 'dev', '-X', 'faulthandler'];
}

/**
 * What a build compiles, and how: release drops sources (sourceless .pyc), debug keeps them. The app's own code
 * is strict (a syntax error fails the build with the compiler's message); the scripts started by path (the
 * entry) are only checked; stdlib and dependencies keep what does not compile as sources.
 */
export function compilePlan(mode: BuildMode, opts: { stdlib: string[]; deps: string[]; app: string[]; scripts: string[]; optimize: number; keepSources: boolean }): CompileGroup[] {
  const release = mode === 'release';
  const optimize = release ? opts.optimize : 0;
  const dropOwn = release && !opts.keepSources;
  const groups: CompileGroup[] = [
    { files: opts.stdlib, legacy: release, optimize, removeSources: release },
    { files: opts.deps, legacy: dropOwn, optimize, removeSources: dropOwn },
    { files: opts.app, legacy: dropOwn, optimize, removeSources: dropOwn, strict: true },
    { files: opts.scripts, legacy: false, optimize, removeSources: false, strict: true, checkOnly: true },
  ];
  return groups.filter((g) => g.files.length > 0);
}

function toolConfig(info: PythonInfo): { include: string[]; keepSources: boolean; optimize: number } {
  const p = info.pyproject;
  if (p && 'error' in p) {
    throw new UserError('E_BUILD_FAILED', `pyproject.toml cannot be read: ${p.error}`, { hint: 'fix the TOML syntax of pyproject.toml' });
  }
  const t = p?.unikctl ?? {};
  const bad = (what: string): UserError => new UserError('E_BUILD_FAILED', `pyproject.toml [tool.unikctl.python] ${what}`, {
    hint: 'supported keys: include = ["module", ...], keep-sources = true|false, optimize = 0|1|2',
  });
  if (t.include !== undefined && !(Array.isArray(t.include) && t.include.every((x) => typeof x === 'string'))) throw bad('include must be a list of module names');
  if (t['keep-sources'] !== undefined && typeof t['keep-sources'] !== 'boolean') throw bad('keep-sources must be true or false');
  if (t.optimize !== undefined && t.optimize !== 0 && t.optimize !== 1 && t.optimize !== 2) throw bad('optimize must be 0, 1 or 2');
  return { include: (t.include as string[] | undefined) ?? [], keepSources: (t['keep-sources'] as boolean | undefined) ?? false, optimize: (t.optimize as number | undefined) ?? 2 };
}

/** Copies the project into `dst` (no VCS/venv/cache directories, no compiled files); returns the .py files. */
function copyProject(src: string, dst: string): string[] {
  const py: string[] = [];
  const walk = (s: string, d: string, rel: string): void => {
    mkdirSync(d, { recursive: true });
    for (const e of readdirSync(s).sort()) {
      const sp = join(s, e);
      const st = lstatSync(sp);
      const r = rel ? `${rel}/${e}` : e;
      if (st.isDirectory()) {
        if (e.startsWith('.') || SKIP_DIRS.has(e) || existsSync(join(sp, 'pyvenv.cfg'))) continue;
        walk(sp, join(d, e), r);
      } else if (st.isSymbolicLink()) {
        symlinkSync(readlinkSync(sp), join(d, e));
      } else if (st.isFile() && !/\.py[co]$/.test(e)) {
        copyFileSync(sp, join(d, e));
        chmodSync(join(d, e), st.mode & 0o111 ? 0o755 : 0o644);
        if (e.endsWith('.py')) py.push(r);
      }
    }
  };
  walk(src, dst, '');
  return py;
}

/** Regular files under `dir` whose name matches, as paths relative to `dir`, sorted. */
function listRel(dir: string, match: (name: string) => boolean, rel = ''): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    const st = lstatSync(p);
    const r = rel ? `${rel}/${e}` : e;
    if (st.isDirectory()) out.push(...listRel(p, match, r));
    else if (st.isFile() && match(e)) out.push(r);
  }
  return out;
}

const listPy = (dir: string): string[] => listRel(dir, (e) => e.endsWith('.py'));
const listFiles = (dir: string, match: (name: string) => boolean): string[] => listRel(dir, match).map((r) => join(dir, r));

function treeSize(path: string, skip: (name: string) => boolean = () => false): number {
  let st;
  try { st = lstatSync(path); } catch { return 0; }
  if (st.isDirectory()) {
    let n = 0;
    for (const e of readdirSync(path)) if (!skip(e)) n += treeSize(join(path, e), skip);
    return n;
  }
  return st.isFile() ? st.size : 0;
}

function copyInto(src: string, dst: string): void {
  mkdirSync(dirname(dst), { recursive: true });
  copyFileSync(src, dst);
  chmodSync(dst, statSync(src).mode & 0o111 ? 0o755 : 0o644);
}

/** pip's environment: wheels built from sources (sdists, the project) are zip files, which cannot date from before
 * 1980: a reproducible SOURCE_DATE_EPOCH of 0 makes hatchling/setuptools fail, 1980-01-01 does not */
const PIP_ENV = { PIP_ROOT_USER_ACTION: 'ignore', PIP_NO_INPUT: '1', SOURCE_DATE_EPOCH: '315532800' };

const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;

export const pythonPack: Pack = {
  name: 'python',
  markers: 'requirements.txt, pyproject.toml or *.py',
  detect: (dir) => hasFile(dir, 'requirements.txt') || hasFile(dir, 'pyproject.toml') || hasFile(dir, /\.py$/),
  async build(ctx, rootfs) {
    const python3 = requireTool('python3', ctx.env, INSTALL_PYTHON);
    const work = join(ctx.workDir, 'python');
    mkdirSync(work, { recursive: true });
    const helperFile = join(work, 'unikctl_python_helper.py');
    writeFileSync(helperFile, HELPER_PY);
    const helperEnv: NodeJS.ProcessEnv = { ...ctx.env, PYTHONHASHSEED: '0', PYTHONDONTWRITEBYTECODE: '1', SOURCE_DATE_EPOCH: '0' };
    let seq = 0;
    const helper = async <T>(py: string, cmd: string, cfg: unknown): Promise<T> => {
      const cfgFile = join(work, `${cmd}-${seq++}.json`);
      writeFileSync(cfgFile, JSON.stringify(cfg));
      const r = await run([py, '-I', helperFile, cmd, cfgFile], { env: helperEnv });
      if (r.code !== 0) {
        if (cmd === 'info') {
          throw new UserError('E_TOOLCHAIN_MISSING', `${python3} does not run: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join('\n')}`, { hint: INSTALL_PYTHON });
        }
        throw compileFailed(`the python pack's ${cmd} step`, r);
      }
      return JSON.parse(r.stdout) as T;
    };

    // --- toolchain
    const info = await helper<PythonInfo>(python3, 'info', { dir: ctx.dir });
    if (info.implementation !== 'cpython') {
      throw new UserError('E_TOOLCHAIN_MISSING', `python3 is ${info.implementation}; the python pack packages CPython`, { hint: INSTALL_PYTHON });
    }
    const py = info.executable;
    const tool = toolConfig(info);
    const mode = ctx.mode;

    // --- lock inputs (BLD-4): requirements file, or uv.lock / poetry.lock exported by the pinned tool (python/install.ts)
    const inputs: Record<string, string> = {};
    const project = info.pyproject && 'dependencies' in info.pyproject ? info.pyproject : null;
    const install = planInstall({
      present: (f) => existsSync(join(ctx.dir, f)),
      declared: project?.dependencies ?? [],
      buildSystem: project?.buildSystem ?? false,
      packageMode: project?.packageMode ?? true,
    }, mode, ctx.warn);
    const lockName = install.lock;
    let pipArgs: string[] = [];
    let requirements: string | null = null; // the pinned requirements file pip installs
    if (install.source === 'requirements' && lockName) {
      requirements = join(ctx.dir, lockName);
    } else if (install.tool && lockName) {
      inputs[lockName] = fileDigest(join(ctx.dir, lockName)) ?? '';
      requirements = join(work, 'requirements.exported.txt');
      const exporter = await pythonTool(install.tool, py, ctx, helperEnv);
      const args = install.exportArgs(requirements, py);
      ctx.log(`${install.tool.name} ${install.tool.version} ${args.map((a) => (a.startsWith('/') ? basename(a) : a)).join(' ')}`);
      const r = await run([...exporter, ...args], { cwd: ctx.dir, env: { ...helperEnv, ...toolEnv(install.tool, ctx.cacheDir) }, onLine: ctx.log });
      if (r.code !== 0) throw exportFailure(install.tool, lockName, `${r.stdout}\n${r.stderr}`);
    } else if (install.source === 'declared') {
      pipArgs = project?.dependencies ?? []; // debug only (planInstall refuses this in release): the declared, unpinned dependencies
    }
    if (requirements) {
      const chk = checkRequirements(requirements);
      if (install.source === 'requirements') for (const f of chk.files) inputs[posix.relative(ctx.dir, f) || basename(f)] = fileDigest(f) ?? '';
      const shown = install.tool ? `${lockName ?? ''} (exported by ${install.tool.name})` : lockName ?? '';
      requireLock(ctx, chk.unpinned.length === 0,
        `${shown} has requirements not pinned to one version (${chk.unpinned.slice(0, 5).join('; ')}${chk.unpinned.length > 5 ? '; ...' : ''})`,
        install.tool ? `depend on registry packages in pyproject.toml (path, git and editable requirements are not pinned), then \`${install.tool.name} lock\`` : `pin every requirement with == (e.g. \`pip freeze > ${lockName ?? 'requirements.lock'}\`, \`uv pip compile requirements.in -o ${lockName ?? 'requirements.lock'}\`)`);
      if (chk.pinned.length + chk.unpinned.length > 0) pipArgs = ['-r', requirements];
    }
    if (existsSync(join(ctx.dir, 'pyproject.toml'))) inputs['pyproject.toml'] = fileDigest(join(ctx.dir, 'pyproject.toml')) ?? '';
    inputs.sources = treeDigest(ctx.dir, (rel) => !/\.py[co]$/.test(rel) && !rel.split('/').some((p) => p.startsWith('.') && p.length > 1));
    const flags = interpreterFlags(mode, tool.optimize);

    // --- the app
    const root = join(work, 'root');
    const appDir = join(root, 'app');
    const appPy = copyProject(ctx.dir, appDir);

    // --- dependencies (pip, cache in .unikctl/cache/pip), then the project itself when it is a package
    const target = join(work, 'site-packages');
    const pip = async (what: string, args: string[]): Promise<void> => {
      if (!info.pip) throw new UserError('E_TOOLCHAIN_MISSING', `pip is not installed for ${py}`, { hint: 'run `python3 -m ensurepip --upgrade` or apt-get install python3-pip' });
      ctx.log(`pip install --target site-packages ${what}`);
      const r = await run([py, '-m', 'pip', 'install', '--target', target, '--no-compile', '--no-warn-script-location', '--disable-pip-version-check',
        '--no-input', '--progress-bar', 'off', '--cache-dir', join(ctx.cacheDir, 'pip'), ...args], { cwd: ctx.dir, env: { ...helperEnv, ...PIP_ENV }, onLine: ctx.log });
      if (r.code !== 0) throw compileFailed('pip install', r);
    };
    if (pipArgs.length > 0) {
      const release = mode === 'release' ? ['--no-deps'] : [];
      await pip([...release, ...pipArgs.map((a) => (a.startsWith('/') ? basename(a) : a))].join(' '), [...release, ...pipArgs]);
    }
    if (install.installProject) {
      // built from a copy: setuptools writes build/ and *.egg-info into the source tree
      const src = join(work, 'project-src');
      copyProject(ctx.dir, src);
      await pip('--no-deps . (the project: pyproject.toml has a build backend)', ['--no-deps', src]);
      // PEP 610 direct_url.json records the build directory (file:///…/work/<random>/…): not reproducible, not
      // needed. RECORD lists it with its hash: that line goes too, so RECORD still describes the files present.
      for (const d of readdirSync(target).filter((e) => e.endsWith('.dist-info') && existsSync(join(target, e, 'direct_url.json')))) {
        rmSync(join(target, d, 'direct_url.json'));
        const record = join(target, d, 'RECORD');
        if (existsSync(record)) writeFileSync(record, readFileSync(record, 'utf8').split('\n').filter((l) => !l.startsWith(`${d}/direct_url.json,`)).join('\n'));
      }
    }
    rmSync(join(target, 'bin'), { recursive: true, force: true }); // console scripts with host shebangs: useless without a shell (python/entry.ts)
    if (mode === 'release' && existsSync(target)) {
      let chk = await helper<{ missing: Array<{ name: string; requiredBy: string }> }>(py, 'check-deps', { target });
      if (chk.missing.length > 0 && install.source === 'requirements') {
        // `pip freeze` leaves setuptools/pip/wheel out: install the host interpreter's own version of those
        const q = await run([py, '-c', `import importlib.metadata as m, json\nv = {}\nfor n in ${JSON.stringify(FREEZE_OMITS)}:\n  try: v[n] = m.version(n)\n  except Exception: pass\nprint(json.dumps(v))`], { env: helperEnv });
        const host = q.code === 0 ? JSON.parse(q.stdout.trim() || '{}') as Record<string, string> : {};
        const plan = planFreezeOmitted(chk.missing, host);
        if (plan.implicit.length > 0) {
          for (const i of plan.implicit) {
            ctx.warn(`${lockName ?? 'requirements.txt'} does not pin ${i.name} (required by ${i.requiredBy.map((m) => m.requiredBy).join(', ')}; \`pip freeze\` leaves it out): installing ${i.name}==${i.version}, the version of the build's python`);
            inputs[`implicit:${i.name}`] = i.version;
          }
          const pins = plan.implicit.map((i) => `${i.name}==${i.version}`);
          await pip(`--no-deps ${pins.join(' ')}`, ['--no-deps', ...pins]);
          rmSync(join(target, 'bin'), { recursive: true, force: true });
          chk = await helper<{ missing: Array<{ name: string; requiredBy: string }> }>(py, 'check-deps', { target });
        }
      }
      if (chk.missing.length > 0) {
        throw new UserError('E_LOCK_REQUIRED', `${lockName ?? 'the lock file'} is not complete: ${chk.missing.map((m) => `${m.name} (required by ${m.requiredBy})`).join(', ')} is not pinned`, {
          hint: install.tool ? `run \`${install.tool.name} lock\` and commit ${lockName ?? 'the lock file'}` : 'a release build installs exactly the lock file (pip --no-deps): pin the whole dependency tree, e.g. `pip freeze` in a venv, `pip-compile` or `uv pip compile`',
        });
      }
    }

    // --- entry point: a script file, a console script (run.command or pyproject.toml), or an explicit argv
    const configured = ctx.config?.run.command ?? null;
    const facts = await helper<{ consoleScripts: Record<string, string>; files: EntryFile[] }>(py, 'entry', {
      target, dir: ctx.dir, files: ['main.py', 'app.py'].filter((f) => existsSync(join(ctx.dir, f))),
    });
    const entry = planEntry({ configured, files: facts.files, projectScripts: project?.scripts ?? {}, consoleScripts: facts.consoleScripts, flags, serverModules: serverModules(appPy) });
    ctx.log(`entry point: ${entry.describe}`);
    const command = entry.command;
    // scripts started by path stay sources: the entry, anything the command names, and files no import can reach
    // by name (gunicorn.conf.py, settings loaded by path): they are read as .py files
    // (a relative argument counts too: the working directory is /app, and a Procfile names `python app.py`)
    const named = new Set(command.map((a) => (a.startsWith('/app/') ? a.slice('/app/'.length) : a)));
    const keepAsScript = new Set(appPy.filter((f) => named.has(f) || !importable(f)));
    const depsPy = listPy(target);

    // --- stdlib pruning
    ctx.log('computing the stdlib modules the app can import (startup trace + modulefinder)');
    const analysis = await helper<AnalyzeResult>(py, 'analyze', analyzeConfig({
      stdlib: info.stdlib, dynload: info.dynload, appDir, appFiles: appPy, depsDir: existsSync(target) ? target : null,
      flags, include: tool.include, usesDashM: entry.usesDashM,
    }));
    if (analysis.appMissing.length > 0) {
      ctx.warn(`the app imports modules that are neither in the stdlib nor installed from the lock file: ${analysis.appMissing.join(', ')} (fine if optional; otherwise add them to ${lockName ?? 'requirements.txt'})`);
    }
    const bad = analysis.failed.filter((f) => tool.include.includes(f.split(':')[0] ?? ''));
    if (bad.length > 0) ctx.warn(`[tool.unikctl.python] include: cannot import ${bad.join(', ')}`);
    const plan = planStdlib(analysis.modules, info.stdlib, info.dynload);
    const guestStdlib = `/usr/${info.stdlibRel}`;
    const guestDynload = `/usr/${info.dynloadRel}`;
    for (const f of plan.files) copyInto(join(info.stdlib, f), join(root, guestStdlib, f));
    mkdirSync(join(root, guestDynload), { recursive: true }); // exec_prefix landmark, even when empty
    for (const f of plan.extensions) copyInto(join(info.dynload, f), join(root, guestDynload, f));
    if (existsSync(target)) {
      mkdirSync(join(root, info.siteGuest), { recursive: true });
      copyTree(target, join(root, info.siteGuest));
    }
    // --- the time zone database, when the app can import zoneinfo (python/tzdata.ts)
    const tz = planTzdata({
      modules: plan.modules, tzpath: info.tzpath, siteHasTzdata: existsSync(join(target, 'tzdata', 'zoneinfo')),
      isDir: (p) => { try { return statSync(p).isDirectory(); } catch { return false; } },
    });
    if (tz === 'missing') {
      ctx.warn(`the app can import zoneinfo but this host has no time zone database (searched ${info.tzpath.join(', ') || 'no TZPATH'}): ZoneInfo("Region/City") will fail in the VM; add tzdata to ${lockName ?? 'requirements.txt'} or install the host's tzdata package`);
    } else if (tz) {
      for (const e of readdirSync(tz.host).sort()) {
        if (TZ_SKIP.has(e)) continue;
        const s = join(tz.host, e);
        const d = join(root, tz.guest, e);
        const st = lstatSync(s);
        if (st.isDirectory()) copyTree(s, d);
        else if (st.isSymbolicLink()) {
          // localtime → /etc/localtime is the host's own setting: not the guest's
          const to = readlinkSync(s);
          if (to.startsWith('/')) continue;
          mkdirSync(dirname(d), { recursive: true });
          symlinkSync(to, d);
        }
        else if (st.isFile()) copyInto(s, d);
      }
    }

    // --- interpreter and libpython
    copyInto(py, join(root, GUEST_PYTHON));
    symlinkSync('python3', join(root, '/usr/bin/python'));
    symlinkSync('python3', join(root, `/usr/bin/python${info.major_minor}`));
    const nativeOwn = [join(root, GUEST_PYTHON), ...plan.extensions.map((f) => join(root, guestDynload, f))];
    let libGuest: string | null = null;
    if (info.libpython) {
      const soname = readElfInfo(info.libpython).soname ?? basename(info.libpython);
      libGuest = `${GUEST_LIBDIR}/${soname}`;
      copyInto(info.libpython, join(root, libGuest));
      nativeOwn.push(join(root, libGuest));
    }

    // --- compile (release: sourceless -OO .pyc; debug: __pycache__ next to the sources)
    const rel = (guestDir: string, files: string[]): string[] => files.map((f) => posix.join(guestDir, f).slice(1));
    const groups = compilePlan(mode, {
      stdlib: rel(guestStdlib, plan.files.filter((f) => f.endsWith('.py'))),
      deps: rel(info.siteGuest, depsPy),
      app: rel('/app', appPy.filter((f) => !keepAsScript.has(f))),
      scripts: rel('/app', appPy.filter((f) => keepAsScript.has(f))),
      optimize: tool.optimize,
      keepSources: tool.keepSources,
    });
    const compiled = await helper<{ compiled: number; failed: string[]; errors: string[]; removed: number }>(py, 'compile', { root, groups });
    if (compiled.errors.length > 0) {
      throw compileFailed('python byte-compilation of the app', { code: 1, signal: null, stdout: '', stderr: compiled.errors.join('\n') });
    }
    if (compiled.failed.length > 0) ctx.warn(`kept ${compiled.failed.length} dependency file(s) as sources, they do not compile: ${compiled.failed.slice(0, 3).join('; ')}`);

    // --- native files: strip (release), no RUNPATH into the host prefix
    if (mode === 'release') {
      const strip = which('strip', ctx.env);
      if (!strip) ctx.warn('strip (binutils) is not on PATH: the interpreter is not stripped (install binutils for a smaller image)');
      else {
        const r = await run([strip, '--strip-unneeded', ...nativeOwn]);
        if (r.code !== 0) throw compileFailed('strip', r);
        // wheels' extension modules often carry their debug info (uvloop: 13.6 MB, 1.9 MB without). Debug sections
        // only: the symbol tables stay. Files with a RUNPATH were rewritten by auditwheel's patchelf, which some
        // strip versions corrupt: those stay as they are.
        const deps = listFiles(join(root, info.siteGuest), (f) => /\.so(\.[\d.]+)?$/.test(f)).filter((f) => {
          const e = readElfInfo(f);
          return e.isElf && e.runpath.length === 0 && e.rpath.length === 0;
        });
        const before = deps.reduce((n, f) => n + statSync(f).size, 0);
        if (deps.length > 0) {
          const d = await run([strip, '--strip-debug', ...deps]);
          if (d.code !== 0) throw compileFailed('strip', d);
          ctx.log(`stripped debug info from ${deps.length} extension module(s) of the dependencies: ${mb(before)} → ${mb(deps.reduce((n, f) => n + statSync(f).size, 0))}`);
        }
      }
    }
    for (const f of nativeOwn) dropRunpath(f);

    // --- into the root filesystem, with the shared-library closure
    rootfs.addTree(join(root, 'usr'), '/usr');
    rootfs.addTree(appDir, '/app');
    if (tz && tz !== 'missing' && !tz.guest.startsWith('/usr/')) rootfs.addTree(join(root, tz.guest), tz.guest);
    const elfs = [...rootfs.elfFilesUnder('/usr'), ...rootfs.elfFilesUnder('/app')].map((g) => rootfs.hostPath(g));
    const closure = libraryClosure(elfs, { searchDirs: [rootfs.hostPath(GUEST_LIBDIR), ...DEFAULT_SEARCH_DIRS] });
    let libs = 0;
    for (const e of closure) {
      if (e.guestPath.startsWith(rootfs.stagingDir)) continue; // ours (libpython, $ORIGIN libs of wheels)
      rootfs.addFile(e.hostPath, e.guestPath);
      libs++;
    }
    // glibc dlopens libgcc_s for pthread_exit/pthread_cancel (a thread ending during interpreter shutdown)
    for (const d of DEFAULT_SEARCH_DIRS) {
      if (existsSync(join(d, 'libgcc_s.so.1'))) {
        rootfs.addFile(join(d, 'libgcc_s.so.1'), `${d}/libgcc_s.so.1`);
        libs++;
        break;
      }
    }

    // --- report
    const stdlibFull = treeSize(info.stdlib, (n) => n === 'site-packages' || n === 'dist-packages');
    const sizeOf = (g: string): number => treeSize(rootfs.hostPath(g));
    const stdlibSize = sizeOf(guestStdlib) - (existsSync(target) && info.siteGuest.startsWith(guestStdlib) ? sizeOf(info.siteGuest) : 0);
    const naive = statSync(py).size + (info.libpython ? statSync(info.libpython).size : 0) + stdlibFull + treeSize(target);
    ctx.log(`stdlib: kept ${plan.modules.length} modules (${plan.files.length} files, ${plan.extensions.length} extensions, ${mb(stdlibSize)}) of ${mb(stdlibFull)}; ${libs} shared libraries`);
    if (tz && tz !== 'missing') ctx.log(`time zone database: ${tz.host} → ${tz.guest} (${mb(sizeOf(tz.guest))}; the app can import zoneinfo)`);
    ctx.log(`python closure: ${mb(sizeOf('/usr'))} uncompressed (a naive interpreter + whole stdlib + site-packages tree: ${mb(naive)})`);

    const artifacts: PackArtifact[] = [
      { path: GUEST_PYTHON, size: sizeOf(GUEST_PYTHON) },
      ...(libGuest ? [{ path: libGuest, size: sizeOf(libGuest) }] : []),
      { path: guestStdlib, size: stdlibSize },
      ...(existsSync(target) ? [{ path: info.siteGuest, size: sizeOf(info.siteGuest) }] : []),
      ...(tz && tz !== 'missing' ? [{ path: tz.guest, size: sizeOf(tz.guest) }] : []),
      { path: '/app', size: sizeOf('/app') },
    ];
    return {
      commandFromConfig: entry.rewritten,
      run: {
        command,
        workdir: '/app',
        memoryMiB: 128,
        // for a run.command without -E (unik.yaml): the same behaviour through the environment
        env: { PYTHONUNBUFFERED: '1', ...(mode === 'debug' ? { PYTHONDEVMODE: '1', PYTHONFAULTHANDLER: '1' } : {}) },
      },
      toolchain: { python: info.version, ...(info.pip ? { pip: info.pip } : {}) },
      programs: {
        ...Object.fromEntries(Object.entries(consoleScripts(target)).map(([n, t]) => [n, consoleScriptArgv([GUEST_PYTHON, ...flags], n, t)])),
        ...Object.fromEntries(['python', 'python3', `python${info.major_minor}`].map((n) => [n, [GUEST_PYTHON, ...flags]])),
      },
      inputs,
      artifacts,
    };
  },
};

/**
 * The console scripts pip would have written to bin/ (removed: their shebangs name the host's python), read from
 * the installed distributions' entry_points.txt: name → `module:attr`.
 */
export function consoleScripts(siteDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  let dists: string[];
  try { dists = readdirSync(siteDir).filter((d) => d.endsWith('.dist-info')).sort(); } catch { return out; }
  for (const d of dists) {
    let text: string;
    try { text = readFileSync(join(siteDir, d, 'entry_points.txt'), 'utf8'); } catch { continue; }
    let section = '';
    for (const raw of text.split(/\r?\n/)) {
      const line = raw.trim();
      const s = /^\[(.+)\]$/.exec(line);
      if (s) { section = s[1]!.trim(); continue; }
      const m = /^([^=\s]+)\s*=\s*([\w.]+)\s*:\s*([\w.]+)/.exec(line);
      if (section === 'console_scripts' && m) out[m[1]!] = `${m[2]}:${m[3]}`;
    }
  }
  return out;
}

/** What pip's generated script does, without the script: `gunicorn app:app` → python3 … -c '<import, call>' app:app. */
export function consoleScriptArgv(python: string[], name: string, target: string): string[] {
  return [...python, '-c', launcher(name, target)];
}

/** Can `import` reach this app file by a module name? (gunicorn.conf.py cannot: it is loaded by path, as source) */
export function importable(rel: string): boolean {
  return rel.replace(/\.py$/, '').split('/').every((p) => /^[A-Za-z_]\w*$/.test(p));
}

/**
 * `python -m uv|poetry` from a virtualenv of the pinned tool under the pack's cache dir, created on first use
 * (pip from PyPI, the host interpreter). Created under a temporary name and renamed: a concurrent build uses its
 * own or the first one finished; the venv's python finds its site-packages from pyvenv.cfg next to it, so the
 * rename is safe where console-script shebangs would not be.
 */
async function pythonTool(tool: PyTool, py: string, ctx: BuildContext, env: NodeJS.ProcessEnv): Promise<string[]> {
  const venv = join(ctx.cacheDir, 'tools', `${tool.name}-${tool.version}`);
  const python = (dir: string): string => join(dir, 'bin', 'python');
  if (!existsSync(join(venv, '.complete'))) {
    const tmp = `${venv}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(dirname(tmp), { recursive: true });
    ctx.log(`installing ${tool.packages.join(' ')} from PyPI into .unikctl/cache/tools`);
    const steps = [[py, '-m', 'venv', tmp], [python(tmp), '-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--progress-bar', 'off', '--cache-dir', join(ctx.cacheDir, 'pip'), ...tool.packages]];
    for (const argv of steps) {
      const r = await run(argv, { env: { ...env, PIP_NO_INPUT: '1' }, onLine: ctx.log });
      if (r.code !== 0) {
        rmSync(tmp, { recursive: true, force: true });
        throw new UserError('E_TOOLCHAIN_MISSING', `cannot install ${tool.name} ${tool.version} from PyPI: ${`${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-5).join(' ')}`, {
          hint: `check that PyPI is reachable (pip install ${tool.packages.join(' ')}) and that ${py} has the venv module (apt-get install python3-venv)`,
        });
      }
    }
    writeFileSync(join(tmp, '.complete'), `${tool.packages.join('\n')}\n`);
    try {
      renameSync(tmp, venv);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another build installed it first: theirs is as good as ours
    }
  }
  return [python(venv), '-m', tool.module];
}

/** Copies a directory tree (pip's output: regular files and directories). */
function copyTree(src: string, dst: string): void {
  mkdirSync(dst, { recursive: true });
  for (const e of readdirSync(src).sort()) {
    const s = join(src, e);
    const st = lstatSync(s);
    if (st.isDirectory()) copyTree(s, join(dst, e));
    else if (st.isSymbolicLink()) symlinkSync(readlinkSync(s), join(dst, e));
    else if (st.isFile()) copyInto(s, join(dst, e));
  }
}

