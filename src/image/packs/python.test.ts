import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../errors.js';
import { which } from '../../util/exec.js';
import { readElfInfo } from '../elf.js';
import type { BuildContext, BuildMode } from '../pack.js';
import { RootfsBuilder } from '../rootfs.js';
import { compilePlan, consoleScriptArgv, consoleScripts, interpreterFlags, pythonPack } from './python.js';
import { dropRunpath } from './python/elfpatch.js';
import { HELPER_PY } from './python/helper.js';
import { checkRequirements, logicalLines } from './python/requirements.js';
import { analyzeConfig, planStdlib, type FoundModule } from './python/stdlib.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-python-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const PYTHON = which('python3');
const hostPython = PYTHON ? execFileSync(PYTHON, ['-c', 'import os, sys; print(os.path.realpath(sys.executable))'], { encoding: 'utf8' }).trim() : null;
const hostPaths = hostPython
  ? (JSON.parse(execFileSync(hostPython, ['-I', '-c', 'import json, os, sysconfig; p = sysconfig.get_paths()["stdlib"]; print(json.dumps([os.path.realpath(p), os.path.realpath(sysconfig.get_config_var("DESTSHARED") or p + "/lib-dynload")]))'], { encoding: 'utf8' })) as [string, string])
  : null;

function project(files: Record<string, string>): string {
  const dir = join(tmp, 'proj');
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  return dir;
}

function ctxFor(dir: string, mode: BuildMode, env: NodeJS.ProcessEnv = process.env): BuildContext & { warnings: string[]; lines: string[] } {
  const warnings: string[] = [];
  const lines: string[] = [];
  const workDir = join(dir, '.unikctl', 'work');
  mkdirSync(workDir, { recursive: true });
  return { dir, mode, cacheDir: join(dir, '.unikctl', 'cache'), workDir, config: null, env, log: (l) => lines.push(l), warn: (m) => warnings.push(m), warnings, lines };
}

async function buildError(ctx: BuildContext): Promise<UserError> {
  try {
    await pythonPack.build(ctx, new RootfsBuilder(join(tmp, 'stage')));
  } catch (e) {
    if (e instanceof UserError) return e;
    throw e;
  }
  throw new Error('the build did not fail');
}

describe('python pack: detection (BLD-1)', () => {
  it.each([['requirements.txt', 'six==1.16.0\n'], ['pyproject.toml', '[project]\nname = "x"\n'], ['server.py', 'print(1)\n']])('detects %s', (name, content) => {
    expect(pythonPack.detect(project({ [name]: content }), null)).toBe(true);
  });
  it('ignores a directory without Python markers', () => {
    expect(pythonPack.detect(project({ 'README.md': 'hi' }), null)).toBe(false);
  });
});

describe('python pack: pinned requirements (BLD-4)', () => {
  it('accepts pins with extras, markers and hashes (continuation lines), follows -r includes', () => {
    const dir = project({
      'requirements.txt': '# a comment\n--index-url https://pypi.org/simple\nsix==1.16.0  # trailing comment\nrequests[socks]==2.31.0 ; python_version >= "3.8"\nMarkupSafe==2.1.5 \\\n    --hash=sha256:aaaa \\\n    --hash=sha256:bbbb\n-r more.txt\n',
      'more.txt': 'attrs===23.1.0\n',
    });
    const r = checkRequirements(join(dir, 'requirements.txt'));
    expect(r.unpinned).toEqual([]);
    expect(r.pinned.map((p) => `${p.name}@${p.version}`)).toEqual(['six@1.16.0', 'requests@2.31.0', 'MarkupSafe@2.1.5', 'attrs@23.1.0']);
    expect(r.files.map((f) => f.split('/').pop())).toEqual(['requirements.txt', 'more.txt']);
  });

  it('reports every line that does not pin exactly one version', () => {
    const dir = project({ 'requirements.txt': 'six\nflask>=2\nattrs==23.*\n-e .\ngit+https://example.com/x.git\nrequests==2.31.0,<3\n-r missing.txt\n' });
    const r = checkRequirements(join(dir, 'requirements.txt'));
    expect(r.pinned).toEqual([]);
    expect(r.unpinned).toHaveLength(7);
    expect(r.unpinned[0]).toBe('requirements.txt:1: six');
  });

  it('joins continuation lines the way pip does', () => {
    expect(logicalLines('a==1 \\\n  --hash=x\n\n# c\nb==2\n')).toEqual([{ no: 1, text: 'a==1    --hash=x' }, { no: 5, text: 'b==2' }]);
  });
});

// these run the host interpreter (and pip): allow for a loaded machine
const SLOW = { timeout: 90_000 };

describe.skipIf(!PYTHON)('python pack: build inputs and toolchain', SLOW, () => {
  it('release refuses unpinned requirements with E_LOCK_REQUIRED', async () => {
    const e = await buildError(ctxFor(project({ 'main.py': 'import six\n', 'requirements.txt': 'six>=1\n' }), 'release'));
    expect(e.code).toBe('E_LOCK_REQUIRED');
    expect(e.message).toContain('requirements.txt:1: six>=1');
  });

  it('debug warns, then a failing pip install shows pip\'s own output (E_BUILD_FAILED)', async () => {
    const links = join(tmp, 'no-wheels');
    mkdirSync(links);
    const ctx = ctxFor(project({ 'main.py': 'import six\n', 'requirements.txt': 'six>=1\n' }), 'debug', { ...process.env, PIP_NO_INDEX: '1', PIP_FIND_LINKS: links });
    const e = await buildError(ctx);
    expect(ctx.warnings.join('\n')).toContain('E_LOCK_REQUIRED');
    expect(e.code).toBe('E_BUILD_FAILED');
    expect(e.message).toMatch(/pip install failed[\s\S]*six/);
  });

  it('release refuses a Pipfile.lock (not read), naming the export command', async () => {
    const e = await buildError(ctxFor(project({ 'main.py': 'print(1)\n', 'Pipfile.lock': '{}\n' }), 'release'));
    expect(e.code).toBe('E_LOCK_REQUIRED');
    expect(e.hint).toContain('pipenv requirements');
  });

  it('release refuses pyproject.toml dependencies without a lock file', async () => {
    const e = await buildError(ctxFor(project({ 'main.py': 'print(1)\n', 'pyproject.toml': '[project]\nname = "x"\ndependencies = ["six"]\n' }), 'release'));
    expect(e.code).toBe('E_LOCK_REQUIRED');
  });

  it('a missing python3 is E_TOOLCHAIN_MISSING naming what to install', async () => {
    const empty = join(tmp, 'empty-bin');
    mkdirSync(empty);
    const e = await buildError(ctxFor(project({ 'main.py': 'print(1)\n' }), 'release', { ...process.env, PATH: empty }));
    expect(e.code).toBe('E_TOOLCHAIN_MISSING');
    expect(e.message).toContain('python3');
    expect(e.hint).toContain('pip');
  });

  it('a syntax error in the app fails the build with the compiler\'s message (E_BUILD_FAILED)', async () => {
    const e = await buildError(ctxFor(project({ 'main.py': 'import util\n', 'util.py': 'def f(:\n    pass\n' }), 'release'));
    expect(e.code).toBe('E_BUILD_FAILED');
    expect(e.message).toContain('File "/app/util.py", line 1');
    expect(e.message).toContain('SyntaxError');
  });

  it('without main.py, app.py or run.command there is nothing to start', async () => {
    const e = await buildError(ctxFor(project({ 'lib.py': 'X = 1\n' }), 'release'));
    expect(e.code).toBe('E_BUILD_FAILED');
    expect(e.hint).toContain('run.command');
  });
});

describe('python pack: command and compile plan (BLD-3)', () => {
  it('release runs -OO unbuffered without env/user site; debug adds dev mode and faulthandler', () => {
    expect(interpreterFlags('release', 2)).toEqual(['-E', '-s', '-u', '-OO']);
    expect(interpreterFlags('release', 0)).toEqual(['-E', '-s', '-u']);
    expect(interpreterFlags('debug', 2)).toEqual(['-E', '-s', '-u', '-X', 'dev', '-X', 'faulthandler']);
  });

  it('release compiles sourceless .pyc and drops sources; debug keeps them next to __pycache__', () => {
    const files = { stdlib: ['usr/lib/python3.11/os.py'], deps: ['usr/lib/python3.11/site-packages/six.py'], app: ['app/util.py'], scripts: ['app/main.py'], optimize: 2 };
    expect(compilePlan('release', { ...files, keepSources: false })).toEqual([
      { files: ['usr/lib/python3.11/os.py'], legacy: true, optimize: 2, removeSources: true },
      { files: ['usr/lib/python3.11/site-packages/six.py'], legacy: true, optimize: 2, removeSources: true },
      { files: ['app/util.py'], legacy: true, optimize: 2, removeSources: true, strict: true },
      { files: ['app/main.py'], legacy: false, optimize: 2, removeSources: false, strict: true, checkOnly: true },
    ]);
    // keep-sources: the app and its dependencies keep their .py next to __pycache__/*.opt-2.pyc; the stdlib does not
    expect(compilePlan('release', { ...files, keepSources: true }).map((g) => [g.legacy, g.removeSources])).toEqual([[true, true], [false, false], [false, false], [false, false]]);
    expect(compilePlan('debug', { ...files, keepSources: false })).toEqual([
      { files: ['usr/lib/python3.11/os.py'], legacy: false, optimize: 0, removeSources: false },
      { files: ['usr/lib/python3.11/site-packages/six.py'], legacy: false, optimize: 0, removeSources: false },
      { files: ['app/util.py'], legacy: false, optimize: 0, removeSources: false, strict: true },
      { files: ['app/main.py'], legacy: false, optimize: 0, removeSources: false, strict: true, checkOnly: true },
    ]);
  });
});

describe('python pack: stdlib pruning', () => {
  it('planStdlib keeps stdlib sources and lib-dynload extensions only, plus the os.py landmark', () => {
    const S = '/py/lib/python3.11';
    const found: FoundModule[] = [
      { name: 'http', file: `${S}/http/__init__.py`, package: true },
      { name: 'http.server', file: `${S}/http/server.py`, package: false },
      { name: '_socket', file: `${S}/lib-dynload/_socket.cpython-311-x86_64-linux-gnu.so`, package: false },
      { name: 'sys', file: null, package: false }, // builtin
      { name: 'six', file: '/tmp/deps/six.py', package: false }, // a dependency: comes from pip
      { name: 'flask', file: `${S}/site-packages/flask/__init__.py`, package: true }, // host site-packages: never
      { name: 'main', file: '/tmp/app/main.py', package: false },
    ];
    expect(planStdlib(found, S, `${S}/lib-dynload`)).toEqual({
      files: ['http/__init__.py', 'http/server.py', 'os.py'],
      extensions: ['_socket.cpython-311-x86_64-linux-gnu.so'],
      modules: ['_socket', 'http', 'http.server'],
    });
  });

  it.skipIf(!hostPython)('the host analysis keeps what the app and its dependencies import, and what the stdlib imports by name', SLOW, () => {
    const [stdlib, dynload] = hostPaths as [string, string];
    const app = join(tmp, 'app');
    const deps = join(tmp, 'deps');
    mkdirSync(join(app, 'pkg'), { recursive: true });
    mkdirSync(join(deps, 'dep'), { recursive: true });
    writeFileSync(join(app, 'main.py'), 'import http.server\nfrom pkg import helpers\nimport dep\n');
    writeFileSync(join(app, 'pkg', '__init__.py'), '');
    writeFileSync(join(app, 'pkg', 'helpers.py'), 'import json\n');
    writeFileSync(join(deps, 'dep', '__init__.py'), '');
    writeFileSync(join(deps, 'dep', 'lazy.py'), 'def f():\n    import csv\n'); // never imported by the app: still analysed
    const analyze = (extra: Partial<{ include: string[]; mainSource: string }> = {}): Set<string> => {
      if (extra.mainSource) writeFileSync(join(app, 'main.py'), extra.mainSource);
      const cfgFile = join(tmp, 'cfg.json');
      const helper = join(tmp, 'helper.py');
      writeFileSync(helper, HELPER_PY);
      writeFileSync(cfgFile, JSON.stringify(analyzeConfig({ stdlib, dynload, appDir: app, appFiles: ['main.py', 'pkg/__init__.py', 'pkg/helpers.py'], depsDir: deps, flags: interpreterFlags('release', 2), include: extra.include ?? [] })));
      const r = spawnSync(hostPython as string, ['-I', helper, 'analyze', cfgFile], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { modules: FoundModule[] };
      return new Set(planStdlib(out.modules, stdlib, dynload).modules);
    };
    const kept = analyze();
    // what the app, its own package and the dependency import (transitively)
    for (const m of ['http.server', 'http.client', 'socketserver', 'email.parser', 'json', 'json.decoder', 'csv']) expect(kept, m).toContain(m);
    // what the interpreter imports at startup and what the stdlib imports by computed names
    for (const m of ['encodings', 'encodings.utf_8', 'encodings.aliases', 'encodings.latin_1', 'encodings.idna', '_strptime', 'codecs']) expect(kept, m).toContain(m);
    // pruned: development packages, CJK codecs, anything nobody imports
    for (const m of ['tkinter', 'unittest', 'pydoc', 'doctest', 'idlelib', 'lib2to3', 'test', 'ensurepip', 'encodings.big5', 'sqlite3', 'xml.dom.minidom', 'asyncio', 'curses']) expect(kept, m).not.toContain(m);
    // a direct import of an otherwise excluded package keeps it; include adds modules imported by name
    const again = analyze({ mainSource: 'import unittest\n', include: ['sqlite3'] });
    expect(again).toContain('unittest');
    expect(again).toContain('unittest.case');
    expect(again).toContain('sqlite3');
    expect(again).toContain('_sqlite3');
  });
});

describe.skipIf(!hostPython)('python pack: release lock completeness', () => {
  it('check-deps reports a dependency of an installed distribution that the lock file does not pin', () => {
    const target = join(tmp, 'site');
    mkdirSync(join(target, 'foo-1.0.dist-info'), { recursive: true });
    writeFileSync(join(target, 'foo-1.0.dist-info', 'METADATA'), 'Metadata-Version: 2.1\nName: foo\nVersion: 1.0\nRequires-Dist: bar>=1\nRequires-Dist: baz; extra == "fast"\nRequires-Dist: qux; python_version < "3"\n');
    const helper = join(tmp, 'helper.py');
    writeFileSync(helper, HELPER_PY);
    writeFileSync(join(tmp, 'cfg.json'), JSON.stringify({ target }));
    const r = spawnSync(hostPython as string, ['-I', helper, 'check-deps', join(tmp, 'cfg.json')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { missing: unknown[] }).missing).toEqual([{ name: 'bar', requiredBy: 'foo', spec: 'bar>=1' }]);
  });
});

describe.skipIf(!hostPython)('python pack: entry facts and pyproject.toml (helper)', () => {
  const helper = (cmd: string, cfg: unknown): unknown => {
    writeFileSync(join(tmp, 'helper.py'), HELPER_PY);
    writeFileSync(join(tmp, 'cfg.json'), JSON.stringify(cfg));
    const r = spawnSync(hostPython as string, ['-I', join(tmp, 'helper.py'), cmd, join(tmp, 'cfg.json')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };

  it('finds the installed console scripts, and whether main.py/app.py do anything when run', () => {
    const target = join(tmp, 'site');
    mkdirSync(join(target, 'gunicorn-23.0.0.dist-info'), { recursive: true });
    writeFileSync(join(target, 'gunicorn-23.0.0.dist-info', 'METADATA'), 'Metadata-Version: 2.1\nName: gunicorn\nVersion: 23.0.0\n');
    writeFileSync(join(target, 'gunicorn-23.0.0.dist-info', 'entry_points.txt'), '[console_scripts]\ngunicorn = gunicorn.app.wsgiapp:run\n\n[paste.server_runner]\nmain = gunicorn.app.pasterapp:serve\n');
    const dir = project({
      'app.py': '"""doc"""\nimport os\nfrom flask import Flask\napp = Flask(__name__)\n\n@app.get("/")\ndef index():\n    return "hi"\n',
      'main.py': 'import uvicorn\nfrom fastapi import FastAPI\napi: FastAPI = FastAPI()\nif __name__ == "__main__":\n    uvicorn.run(api)\n',
    });
    expect(helper('entry', { target, dir, files: ['main.py', 'app.py'] })).toEqual({
      consoleScripts: { gunicorn: 'gunicorn.app.wsgiapp:run' },
      files: [
        { name: 'main.py', runnable: true, apps: [{ name: 'api', framework: 'FastAPI' }] },
        { name: 'app.py', runnable: false, apps: [{ name: 'app', framework: 'Flask' }] },
      ],
    });
  });

  it('reads scripts, the build backend and poetry\'s package-mode from pyproject.toml', () => {
    const dir = project({
      'pyproject.toml': '[project]\nname = "x"\ndependencies = ["flask==3.1.3"]\n[project.scripts]\nserve = "x.main:serve"\n'
        + '[tool.poetry]\npackage-mode = false\n[tool.poetry.dependencies]\npython = ">=3.11"\ngunicorn = "^23"\n[tool.poetry.scripts]\nold = "x.old:main"\nskip = { reference = "x.sh", type = "file" }\n'
        + '[build-system]\nrequires = ["poetry-core"]\nbuild-backend = "poetry.core.masonry.api"\n',
    });
    expect((helper('info', { dir }) as { pyproject: unknown }).pyproject).toEqual({
      dependencies: ['flask==3.1.3', 'gunicorn'], scripts: { old: 'x.old:main', serve: 'x.main:serve' }, buildSystem: true, packageMode: false, unikctl: {},
    });
  });
});

describe.skipIf(!hostPython)('python pack: ELF patching', () => {
  it('dropRunpath removes RUNPATH/RPATH and keeps the rest of the dynamic section', () => {
    const copy = join(tmp, 'python3');
    copyFileSync(hostPython as string, copy);
    const before = readElfInfo(copy);
    const removed = dropRunpath(copy);
    const after = readElfInfo(copy);
    expect(removed).toBe(before.runpath.length > 0 || before.rpath.length > 0 ? 1 : 0);
    expect(after.runpath).toEqual([]);
    expect(after.rpath).toEqual([]);
    expect(after.needed).toEqual(before.needed);
    expect(after.interp).toBe(before.interp);
    expect(dropRunpath(copy)).toBe(0);
  });
});

describe.skipIf(!hostPython)('python pack: a stdlib-only release build (no VM)', SLOW, () => {
  it('stages the interpreter, libpython, a pruned sourceless stdlib and the app; the closure imports what the app needs', async () => {
    const dir = project({
      'main.py': 'import http.server\nimport util\nprint(util.answer())\n',
      'util.py': 'import json\n\ndef answer():\n    """docstring dropped by -OO"""\n    return json.dumps({"a": 1})\n',
      '.git/config': 'x',
      '__pycache__/old.cpython-311.pyc': 'x',
    });
    const ctx = ctxFor(dir, 'release');
    const stage = join(tmp, 'stage');
    const rootfs = new RootfsBuilder(stage);
    const res = await pythonPack.build(ctx, rootfs);
    expect(res.run.command).toEqual(['/usr/bin/python3', '-E', '-s', '-u', '-OO', '/app/main.py']);
    expect(res.run.workdir).toBe('/app');
    expect(res.toolchain.python).toMatch(/^3\.\d+\.\d+$/);
    expect(res.inputs.sources).toMatch(/^sha256:/);
    const S = join(stage, 'usr/lib', `python${res.toolchain.python?.split('.').slice(0, 2).join('.')}`);
    expect(existsSync(join(stage, 'usr/bin/python3'))).toBe(true);
    expect(readElfInfo(join(stage, 'usr/bin/python3')).runpath).toEqual([]);
    expect(existsSync(join(S, 'os.pyc'))).toBe(true); // prefix landmark, sourceless
    expect(existsSync(join(S, 'os.py'))).toBe(false);
    expect(existsSync(join(S, 'http/server.pyc'))).toBe(true);
    expect(existsSync(join(S, 'tkinter'))).toBe(false);
    expect(existsSync(join(S, 'unittest'))).toBe(false);
    expect(existsSync(join(S, 'lib-dynload'))).toBe(true);
    expect(existsSync(join(stage, 'app/main.py'))).toBe(true); // the entry script stays a source
    expect(existsSync(join(stage, 'app/util.pyc'))).toBe(true);
    expect(existsSync(join(stage, 'app/util.py'))).toBe(false);
    expect(existsSync(join(stage, 'app/.git'))).toBe(false);
    expect(existsSync(join(stage, 'app/__pycache__'))).toBe(false);
    // the pyc carries the guest path, not the build directory
    expect(readFileSync(join(stage, 'app/util.pyc')).includes(Buffer.from('/app/util.py'))).toBe(true);
    expect(readFileSync(join(stage, 'app/util.pyc')).includes(Buffer.from(ctx.workDir))).toBe(false);
    // the pruned stdlib suffices: the host interpreter, restricted to the staged tree, imports the app
    const probe = `import sys; sys.path[:] = ['${join(stage, 'app')}', '${S}', '${join(S, 'lib-dynload')}']; import util; print(util.answer()); import http.server; print(http.server.__file__)`;
    const r = spawnSync(hostPython as string, ['-I', '-S', '-OO', '-c', probe], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('{"a": 1}');
    expect(r.stdout).toContain(join(S, 'http/server.pyc'));
    expect(ctx.lines.join('\n')).toMatch(/stdlib: kept \d+ modules/);
  });
});

describe('console scripts (a Procfile web: gunicorn app:app)', () => {
  it('reads [console_scripts] from the installed distributions and runs one as pip\'s script would', () => {
    const site = mkdtempSync(join(tmpdir(), 'unik-py-scripts-'));
    try {
      mkdirSync(join(site, 'fakeweb-1.0.dist-info'));
      writeFileSync(join(site, 'fakeweb-1.0.dist-info', 'entry_points.txt'), '[console_scripts]\nfakeweb = fakeweb.app.cli:Runner.main [extra]\n\n[gui_scripts]\nfakegui = fakeweb:gui\n');
      mkdirSync(join(site, 'other-2.0.dist-info'));
      mkdirSync(join(site, 'fakeweb', 'app'), { recursive: true });
      writeFileSync(join(site, 'fakeweb', '__init__.py'), '');
      writeFileSync(join(site, 'fakeweb', 'app', '__init__.py'), '');
      writeFileSync(join(site, 'fakeweb', 'app', 'cli.py'), 'import sys\nclass Runner:\n    @staticmethod\n    def main():\n        print(" ".join(sys.argv))\n        return 3\n');
      expect(consoleScripts(site)).toEqual({ fakeweb: 'fakeweb.app.cli:Runner.main' });
      const argv = consoleScriptArgv(['python3', '-E', '-s'], 'fakeweb', 'fakeweb.app.cli:Runner.main');
      const r = spawnSync(argv[0]!, [...argv.slice(1), 'app:app', '--bind', '0.0.0.0:8000'], { cwd: site, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
      expect(r.stdout).toBe('fakeweb app:app --bind 0.0.0.0:8000\n');
      expect(r.status).toBe(3);
    } finally {
      rmSync(site, { recursive: true, force: true });
    }
  });
});
