import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../errors.js';
import { which } from '../../util/exec.js';
import { readElfInfo } from '../elf.js';
import type { BuildContext, BuildMode } from '../pack.js';
import { RootfsBuilder } from '../rootfs.js';
import type { UnikYaml } from '../unikyaml.js';
import { binaryName, goPack, selectMainPackage, type GoPackage } from './go.js';

const hasGo = which('go') !== null;
const hasCc = which('gcc') !== null;

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-go-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function project(files: Record<string, string>, name = 'proj'): string {
  const dir = join(tmp, name);
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

// one Go build cache for every test of this file and every run: compiling the standard library (twice: with
// and without cgo) is most of a build's time, and the cache is safe to share
const GO_CACHE = join(tmpdir(), 'unikctl-go-unit-cache');

function ctxFor(dir: string, mode: BuildMode, config: UnikYaml | null = null): BuildContext & { logs: string[]; warnings: string[] } {
  const logs: string[] = [];
  const warnings: string[] = [];
  const workDir = join(dir, '.unikctl', 'work');
  mkdirSync(workDir, { recursive: true });
  mkdirSync(GO_CACHE, { recursive: true });
  return { dir, mode, cacheDir: GO_CACHE, workDir, config, env: process.env, log: (l) => logs.push(l), warn: (w) => warnings.push(w), logs, warnings };
}

async function errorOf(p: Promise<unknown>): Promise<UserError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }
  throw new Error('expected the build to fail');
}

const yaml = (y: Partial<UnikYaml>): UnikYaml => ({ run: { env: {} }, ...y });

describe('go pack: which main package', () => {
  const pkg = (rel: string, name = 'main', importPath = `example.com/ws/${rel}`): GoPackage => ({ name, importPath, dir: rel === '.' ? '/p' : `/p/${rel}` });
  const ws = [pkg('api'), pkg('admin'), pkg('greet', 'greet'), pkg('tools/cmd/migrate')];

  it('binary names as go build gives them', () => {
    expect(binaryName('example.com/ws/api')).toBe('api');
    expect(binaryName('example.com/ws/tools/cmd/migrate')).toBe('migrate');
    expect(binaryName('example.com/svc/v2')).toBe('svc');
    expect(binaryName('hello')).toBe('hello');
  });

  it('the project directory itself when it is a main package, else the only one', () => {
    expect(selectMainPackage([pkg('.', 'main', 'example.com/app'), pkg('cmd/tool')], { dir: '/p' })).toMatchObject({ binary: 'app', pkg: { dir: '/p' } });
    expect(selectMainPackage([pkg('lib', 'lib'), pkg('cmd/server')], { dir: '/p' })).toMatchObject({ binary: 'server', others: [] });
  });

  it('unik.yaml main: by directory (./api, api/), import path or binary name', () => {
    for (const main of ['./api', 'api', 'api/', 'example.com/ws/api']) {
      expect(selectMainPackage(ws, { dir: '/p', main }).pkg.dir).toBe('/p/api');
    }
    expect(selectMainPackage(ws, { dir: '/p', main: 'migrate' }).pkg.dir).toBe('/p/tools/cmd/migrate');
    // main: wins over the root main package
    expect(selectMainPackage([pkg('.', 'main', 'example.com/app'), ...ws], { dir: '/p', main: './admin' }).binary).toBe('admin');
  });

  it('several candidates and nothing chosen: E_ENTRY_AMBIGUOUS naming each and the unik.yaml field', () => {
    let err: unknown;
    try { selectMainPackage(ws, { dir: '/p' }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).code).toBe('E_ENTRY_AMBIGUOUS');
    expect((err as UserError).message).toBe('the Go project has several main packages: ./admin (binary admin), ./api (binary api), ./tools/cmd/migrate (binary migrate); which one is the app?');
    expect((err as UserError).hint).toBe('add main: ./admin (or another of them) to unik.yaml');
    // run.command naming one binary is a choice too (as for the rust pack)
    expect(selectMainPackage(ws, { dir: '/p', runCommand: ['/app/api', '--flag'] }).binary).toBe('api');
  });

  it('main: naming no main package lists the candidates; a name two packages share asks for the directory', () => {
    expect(() => selectMainPackage(ws, { dir: '/p', main: './greet' })).toThrow('unik.yaml main: "./greet" is not a main package of the project; the main packages are: ./admin (binary admin), ./api (binary api), ./tools/cmd/migrate (binary migrate)');
    let err: unknown;
    try { selectMainPackage([pkg('a/server'), pkg('b/server')], { dir: '/p', main: 'server' }); } catch (e) { err = e; }
    expect((err as UserError).code).toBe('E_ENTRY_AMBIGUOUS');
    expect((err as UserError).hint).toBe('name the package by its directory, e.g. main: ./a/server');
  });

  it('no main package at all', () => {
    expect(() => selectMainPackage([pkg('.', 'lib')], { dir: '/p' })).toThrow(/no main package/);
  });
});

const MAIN_GO = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hi") }\n';

describe.skipIf(!hasGo)('go pack: real builds', () => {
  it('a go.work workspace with two programs: E_ENTRY_AMBIGUOUS before anything is built; main: builds the one named', async () => {
    const files = {
      'go.work': 'go 1.22\n\nuse (\n\t./api\n\t./admin\n\t./lib\n)\n',
      'api/go.mod': 'module example.com/api\n\ngo 1.22\n',
      'api/main.go': 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/lib"\n)\n\nfunc main() { fmt.Println(lib.Name) }\n',
      'admin/go.mod': 'module example.com/admin\n\ngo 1.22\n',
      'admin/main.go': MAIN_GO,
      'lib/go.mod': 'module example.com/lib\n\ngo 1.22\n',
      'lib/lib.go': 'package lib\n\nconst Name = "lib"\n',
    };
    const dir = project(files);
    expect(goPack.detect(dir, null)).toBe(true);
    const err = await errorOf(goPack.build(ctxFor(dir, 'release'), new RootfsBuilder(join(tmp, 'stage0'))));
    expect(err.code).toBe('E_ENTRY_AMBIGUOUS');
    expect(err.message).toContain('./admin (binary admin), ./api (binary api)');
    expect(err.hint).toContain('main: ./admin');

    const ctx = ctxFor(dir, 'release', yaml({ main: './api' }));
    const stage = join(tmp, 'stage');
    const r = await goPack.build(ctx, new RootfsBuilder(stage));
    expect(r.run.command).toEqual(['/app/api']);
    expect(r.toolchain.cgo).toBe('off');
    expect(Object.keys(r.inputs).sort()).toEqual(['admin/go.mod', 'api/go.mod', 'go.work', 'lib/go.mod', 'sources']);
    expect(ctx.logs).toContain('main package ./api (unik.yaml main:); also in the workspace: ./admin');
    expect(readElfInfo(join(stage, 'app', 'api'))).toMatchObject({ interp: null, needed: [] }); // pure Go: static
    expect(existsSync(join(stage, 'lib64'))).toBe(false);
  }, 300_000);

  it('release: a workspace module that requires modules without its go.sum is E_LOCK_REQUIRED naming it', async () => {
    const dir = project({
      'go.work': 'go 1.22\n\nuse ./svc\n',
      'svc/go.mod': 'module example.com/svc\n\ngo 1.22\n\nrequire github.com/go-chi/chi/v5 v5.5.0\n',
      'svc/main.go': MAIN_GO,
    });
    const err = await errorOf(goPack.build(ctxFor(dir, 'release'), new RootfsBuilder(join(tmp, 'stage'))));
    expect(err.code).toBe('E_LOCK_REQUIRED');
    expect(err.message).toContain('svc/go.mod requires modules but there is no go.sum');
    expect(err.hint).toContain('in svc');
  }, 120_000);

  it.skipIf(!hasCc)('cgo: a package importing "C" is built with cgo and shipped with the loader and its DT_NEEDED libraries', async () => {
    const dir = project({
      'go.mod': 'module example.com/cgoapp\n\ngo 1.22\n',
      'main.go': 'package main\n\n// #cgo LDFLAGS: -lm\n// #include <math.h>\nimport "C"\n\nimport "fmt"\n\nfunc main() { fmt.Println(float64(C.cbrt(27))) }\n',
    });
    const ctx = ctxFor(dir, 'release');
    const stage = join(tmp, 'stage');
    const r = await goPack.build(ctx, new RootfsBuilder(stage));
    expect(r.toolchain.cgo).toBe('on');
    expect(ctx.logs.join('\n')).toMatch(/cgo: example\.com\/cgoapp import "C": building with CGO_ENABLED=1/);
    const info = readElfInfo(join(stage, 'app', 'cgoapp'));
    expect(info.interp).toBe('/lib64/ld-linux-x86-64.so.2');
    expect(info.needed).toEqual(expect.arrayContaining(['libc.so.6']));
    expect(existsSync(join(stage, 'lib64', 'ld-linux-x86-64.so.2'))).toBe(true);
    const libs = readdirSync(join(stage, 'lib', 'x86_64-linux-gnu'));
    expect(libs).toEqual(expect.arrayContaining(['libc.so.6', ...(info.needed.includes('libm.so.6') ? ['libm.so.6'] : [])]));
    // nothing but the closure: every library is one the binary (or a library of it) needs
    expect(libs.every((l) => l.startsWith('libc.') || l.startsWith('libm.'))).toBe(true);
  }, 300_000);
});
