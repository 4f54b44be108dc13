import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { UserError } from '../../errors.js';
import { run } from '../../util/exec.js';
import { fileDigest, treeDigest } from '../inputs.js';
import type { BuildContext, Pack } from '../pack.js';
import { addRuntimeFiles } from '../runtime-files.js';
import { compileFailed, requireLock, requireTool } from './common.js';

const INSTALL_GO = 'install Go from https://go.dev/dl/ (or apt-get install golang) and make sure `go version` works';

/** One package as `go list` reports it. */
export interface GoPackage {
  name: string;
  importPath: string;
  /** absolute directory */
  dir: string;
}

export interface MainChoice {
  pkg: GoPackage;
  /** the binary's name: what `go build` calls it (the last element of the import path, without a /vN suffix) */
  binary: string;
  /** the other main packages, for the build log */
  others: GoPackage[];
}

/** `go build`'s default name for a main package's binary: example.com/x/cmd/api → api, example.com/x/v2 → x. */
export function binaryName(importPath: string): string {
  const parts = importPath.split('/').filter(Boolean);
  const last = parts.at(-1) ?? 'app';
  return /^v\d+$/.test(last) && parts.length > 1 ? (parts.at(-2) as string) : last;
}

/** How a package is named to the user: its directory relative to the project (./api, . for the root). */
export function packageLabel(pkg: GoPackage, projectDir: string): string {
  const rel = relative(projectDir, pkg.dir);
  if (rel === '') return '.';
  return rel.startsWith('..') || isAbsolute(rel) ? rel : `./${rel}`;
}

const normalizeRef = (s: string): string => s.replace(/^\.\/+/, '').replace(/\/+$/, '') || '.';

/**
 * The main package to build. unik.yaml `main:` chooses (a directory relative to the project, an import path or
 * a binary name); without it: the package in the project directory itself when it is a main package (what
 * `go build .` builds), else the only main package of the module or workspace, else the one whose binary
 * unik.yaml's run.command starts. Several candidates and nothing to choose → E_ENTRY_AMBIGUOUS naming them.
 */
export function selectMainPackage(packages: GoPackage[], o: { dir: string; main?: string | undefined; runCommand?: string[] | undefined }): MainChoice {
  const mains = packages.filter((p) => p.name === 'main').sort((a, b) => (a.dir < b.dir ? -1 : a.dir > b.dir ? 1 : 0));
  const choose = (pkg: GoPackage): MainChoice => ({ pkg, binary: binaryName(pkg.importPath), others: mains.filter((p) => p !== pkg) });
  const list = mains.map((p) => `${packageLabel(p, o.dir)} (binary ${binaryName(p.importPath)})`).join(', ');
  if (o.main !== undefined) {
    const want = normalizeRef(o.main);
    const hits = mains.filter((p) => normalizeRef(packageLabel(p, o.dir)) === want || p.importPath === want || binaryName(p.importPath) === want);
    if (hits.length === 1) return choose(hits[0] as GoPackage);
    if (hits.length > 1) {
      throw new UserError('E_ENTRY_AMBIGUOUS', `unik.yaml main: "${o.main}" matches several main packages: ${hits.map((p) => packageLabel(p, o.dir)).join(', ')}`, {
        hint: `name the package by its directory, e.g. main: ${packageLabel(hits[0] as GoPackage, o.dir)}`,
      });
    }
    throw new UserError('E_UNIKYAML_INVALID', `unik.yaml main: "${o.main}" is not a main package of the project; ${mains.length ? `the main packages are: ${list}` : 'it has no main package'}`, {
      hint: mains.length ? `set main: to one of ${mains.map((p) => packageLabel(p, o.dir)).join(', ')}` : 'add a package main with a func main() (e.g. ./cmd/server/main.go)',
    });
  }
  const root = mains.find((p) => p.dir === o.dir);
  if (root) return choose(root);
  if (mains.length === 1) return choose(mains[0] as GoPackage);
  if (mains.length === 0) {
    throw new UserError('E_INVALID_ARGUMENT', 'the Go project has no main package (package main with func main()): there is nothing to run', {
      hint: 'add a main package (e.g. ./cmd/server/main.go), or point unikctl at the module that builds the server',
    });
  }
  const wanted = o.runCommand?.[0]?.split('/').pop();
  const byCommand = wanted ? mains.filter((p) => binaryName(p.importPath) === wanted) : [];
  if (byCommand.length === 1) return choose(byCommand[0] as GoPackage);
  throw new UserError('E_ENTRY_AMBIGUOUS', `the Go project has several main packages: ${list}; which one is the app?`, {
    hint: `add main: ${packageLabel(mains[0] as GoPackage, o.dir)} (or another of them) to unik.yaml`,
  });
}

/** The project's modules: the go.work `use` directories in a workspace, else the module itself. */
async function moduleDirs(ctx: BuildContext, go: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  const r = await run([go, 'list', '-m', '-f', '{{.Dir}}'], { cwd: ctx.dir, env });
  if (r.code !== 0) throw compileFailed('go list -m (reading go.mod / go.work)', r);
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** Every package of the modules (patterns ./mod/... relative to the project: `./...` alone stops at a workspace root). */
async function listPackages(ctx: BuildContext, go: string, env: NodeJS.ProcessEnv, modules: string[]): Promise<GoPackage[]> {
  const patterns = modules.map((d) => {
    const rel = relative(ctx.dir, d);
    return rel === '' ? './...' : rel.startsWith('..') ? `${rel}/...` : `./${rel}/...`;
  });
  // -e: a package with errors is still listed (the compiler reports them, with its own words, when it is built)
  const r = await run([go, 'list', '-e', '-f', '{{.Name}}\t{{.ImportPath}}\t{{.Dir}}', ...patterns], { cwd: ctx.dir, env });
  if (r.code !== 0) throw compileFailed('go list (finding the main package)', r);
  return r.stdout.split('\n').filter(Boolean).map((l) => {
    const [name = '', importPath = '', dir = ''] = l.split('\t');
    return { name, importPath, dir };
  });
}

/** Non-standard packages in the build of `pkg` that use cgo (import "C"): the binary then links C libraries. */
async function cgoPackages(ctx: BuildContext, go: string, env: NodeJS.ProcessEnv, pkg: string): Promise<string[]> {
  const r = await run([go, 'list', '-deps', '-f', '{{if and .CgoFiles (not .Standard)}}{{.ImportPath}}{{end}}', pkg], { cwd: ctx.dir, env: { ...env, CGO_ENABLED: '1' } });
  if (r.code !== 0) throw compileFailed('go list -deps (looking for cgo)', r);
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

/**
 * Go: one main package of the module or go.work workspace, built with -trimpath; release strips symbols, debug
 * keeps them and disables optimizations. Pure Go builds with CGO off (a static binary, nothing else in the
 * image); when the build has packages that import "C" it is built with cgo and the image gets the binary's
 * shared-library closure (the dynamic loader and its DT_NEEDED libraries).
 */
export const goPack: Pack = {
  name: 'go',
  markers: 'go.mod or go.work',
  detect: (dir) => existsSync(join(dir, 'go.mod')) || existsSync(join(dir, 'go.work')),
  async build(ctx, rootfs) {
    const go = requireTool('go', ctx.env, INSTALL_GO);
    const env: NodeJS.ProcessEnv = {
      ...ctx.env,
      GOOS: 'linux', GOARCH: 'amd64', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly',
      GOCACHE: join(ctx.cacheDir, 'go-build'), GOMODCACHE: join(ctx.cacheDir, 'go-mod'),
    };
    delete env.CGO_ENABLED; // decided below from the packages themselves
    const workspace = existsSync(join(ctx.dir, 'go.work'));
    const modules = await moduleDirs(ctx, go, env);
    for (const m of modules) {
      const gomod = join(m, 'go.mod');
      const hasDeps = existsSync(gomod) && /^\s*require\b/m.test(readFileSync(gomod, 'utf8'));
      const where = relative(ctx.dir, m) || '.';
      requireLock(ctx, !hasDeps || existsSync(join(m, 'go.sum')), `${where === '.' ? 'go.mod' : `${where}/go.mod`} requires modules but there is no go.sum`, `run \`go mod tidy\`${where === '.' ? '' : ` in ${where}`} and commit go.sum`);
    }

    const choice = selectMainPackage(await listPackages(ctx, go, env, modules), { dir: ctx.dir, main: ctx.config?.main, runCommand: ctx.config?.run.command });
    const target = packageLabel(choice.pkg, ctx.dir);
    if (choice.others.length > 0) {
      ctx.log(`main package ${target}${ctx.config?.main ? ' (unik.yaml main:)' : ''}; also in the ${workspace ? 'workspace' : 'module'}: ${choice.others.map((p) => packageLabel(p, ctx.dir)).join(', ')}`);
    }
    const cgo = await cgoPackages(ctx, go, env, target);
    if (cgo.length > 0) {
      const cc = (await run([go, 'env', 'CC'], { cwd: ctx.dir, env })).stdout.trim() || 'gcc';
      requireTool(cc.split(/\s+/)[0] as string, env, `${cgo.join(', ')} use${cgo.length === 1 ? 's' : ''} cgo (import "C") and need${cgo.length === 1 ? 's' : ''} a C compiler: apt-get install gcc (and the C libraries' -dev packages)`);
      ctx.log(`cgo: ${cgo.join(', ')} import "C": building with CGO_ENABLED=1 (a dynamically linked binary, shipped with its shared libraries)`);
    }
    env.CGO_ENABLED = cgo.length > 0 ? '1' : '0';

    const name = choice.binary;
    const out = join(ctx.workDir, name);
    const flags = ctx.mode === 'release'
      ? ['-trimpath', '-buildvcs=false', '-ldflags=-s -w -buildid=']
      : ['-trimpath', '-buildvcs=false', '-gcflags=all=-N -l', '-ldflags=-buildid='];
    ctx.log(`go build ${flags.join(' ')} -o ${name} ${target}`);
    const r = await run([go, 'build', ...flags, '-o', out, target], { cwd: ctx.dir, env, onLine: ctx.log });
    if (r.code !== 0) throw compileFailed('go build', r);
    const guest = `/app/${name}`;
    rootfs.addFile(out, guest);
    if (cgo.length > 0) {
      const libs = rootfs.addLibraryClosure([guest]);
      ctx.log(`added ${libs} shared libraries (the ELF closure of the cgo binary)`);
    }
    addRuntimeFiles(ctx, rootfs, '/app', ['.go']);
    const version = (await run([go, 'env', 'GOVERSION'], { env })).stdout.trim();
    const lockFiles = modules.flatMap((m) => ['go.mod', 'go.sum'].map((f) => join(m, f))).concat(workspace ? [join(ctx.dir, 'go.work'), join(ctx.dir, 'go.work.sum')] : []);
    return {
      run: { command: [guest], workdir: '/app', memoryMiB: 64 },
      toolchain: { go: version, cgo: cgo.length > 0 ? 'on' : 'off' },
      inputs: {
        ...Object.fromEntries(lockFiles.filter((f) => existsSync(f)).map((f) => [relative(ctx.dir, f), fileDigest(f) ?? ''])),
        sources: treeDigest(ctx.dir, (rel) => /\.(go|c|h|s|S|cc|cpp|hh|hpp|syso)$/.test(rel) || /(^|\/)go\.(mod|sum|work|work\.sum)$/.test(rel)),
      },
      artifacts: [{ path: guest, size: statSync(out).size }],
      programs: { [name]: [guest] },
    };
  },
};
