/**
 * Real-world Python apps on a real VM: a FastAPI app served by uvicorn (uvloop, httptools, pydantic-core: compiled
 * extensions) locked with uv, started from its [project.scripts] entry; a Flask app served by gunicorn locked
 * with poetry, started from unik.yaml's run.command. Each: build (the lock exported by the pinned tool from PyPI,
 * installed exactly), image content (compiled extensions in, dev dependencies and tools out), deploy with -p, an
 * HTTP answer from a framework route (the pruned stdlib suffices at run time), the request in the logs, destroy.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deployServeDestroy, exampleCopy, listImage, type TestHome } from './helpers.js';

const MiB = 1024 * 1024;

interface Example {
  dir: string;
  /** the bound for this image */
  maxBytes: number;
  buildLines: RegExp[];
  /** the start command's interpreter part, then what follows -c's code */
  command: { launcher: RegExp; args: string[] };
  present: Array<string | RegExp>;
  absent: RegExp;
  /** a framework route and what its answer holds (name: the deployment's host name) */
  route: string;
  answer: (body: string, name: string) => void;
  logLine: RegExp;
  /** more checks on the built project copy, after the VM is gone */
  after?: (home: TestHome, app: string) => Promise<void>;
}

function exampleOnVm(ex: Example): void {
  // the committed example only: no cache, build output or virtualenv from a local run
  const { home, app } = exampleCopy(ex.dir, /\/(\.unikctl|\.venv|__pycache__)(\/|$)/);
  const name = ex.dir.replace(/^python-/, '').slice(0, 20);

  it('builds a release image from the lock file, exported by the pinned tool and installed exactly, reproducibly', async () => {
    const r = await home.cli(['build', app, '--json']);
    expect(r.code, r.stderr).toBe(0);
    for (const line of ex.buildLines) expect(r.stderr).toMatch(line);
    const out = JSON.parse(r.stdout) as { manifest: { size: number; rootfs: { sha256: string }; run: { command: string[] } } };
    const [py, ...rest] = out.manifest.run.command;
    const c = rest.indexOf('-c');
    expect(py).toBe('/usr/bin/python3');
    expect(rest.slice(0, c)).toEqual(['-E', '-s', '-u', '-OO']);
    expect(rest[c + 1]).toMatch(ex.command.launcher);
    expect(rest.slice(c + 2)).toEqual(ex.command.args);
    expect(out.manifest.size).toBeLessThan(ex.maxBytes);
    const naive = /a naive interpreter \+ whole stdlib \+ site-packages tree: ([\d.]+ MB)/.exec(r.stderr)?.[1];
    console.log(`${ex.dir}: image ${(out.manifest.size / MiB).toFixed(1)} MiB (naive closure ${naive ?? '?'} uncompressed)`);

    const files = listImage(join(app, '.unikctl', 'image', 'rootfs.erofs'));
    for (const p of ex.present) {
      if (typeof p === 'string') expect(files).toContain(p);
      else expect(files.some((f) => p.test(f)), String(p)).toBe(true);
    }
    expect(files.filter((f) => ex.absent.test(f))).toEqual([]);

    // same inputs, same image (the project's wheel, the exported lock and the pip install leave no build paths)
    const again = JSON.parse((await home.cli(['build', app, '--json'])).stdout) as typeof out;
    expect(again.manifest.rootfs.sha256).toBe(out.manifest.rootfs.sha256);
  });

  it('deploys with -p, answers on a framework route, logs the request, and destroys', async () => {
    const { body, logs } = await deployServeDestroy(home, { dir: ex.dir, name, route: ex.route, logLine: ex.logLine, timeoutMs: 180_000 });
    ex.answer(body, name);
    expect(logs).not.toMatch(/Traceback|ModuleNotFoundError|ImportError/);
  });

  if (ex.after) it('refuses what the lock does not pin', () => ex.after?.(home, app));
}

const SITE = /^\/usr\/lib\/python3\.\d+\/site-packages/;

describe('python pack: examples/python-fastapi-uv (FastAPI + uvicorn, uv.lock) on a real VM', () => {
  exampleOnVm({
    dir: 'python-fastapi-uv',
    maxBytes: 30 * MiB, // the target for FastAPI
    buildLines: [/installing uv==0\.13\.9 from PyPI/, /uv 0\.13\.9 export --locked --no-default-groups --no-emit-project/, /pip install --target site-packages --no-deps -r requirements\.exported\.txt/,
      /pip install --target site-packages --no-deps \. \(the project/, /entry point: pyproject\.toml script fastapi-uv = fastapi_uv\.main:serve/],
    command: { launcher: /^import sys; from fastapi_uv\.main import serve; sys\.argv\[0\] = "fastapi-uv"; sys\.exit\(serve\(\)\)$/, args: [] },
    present: [
      new RegExp(`${SITE.source}/pydantic_core/_pydantic_core\\.cpython-\\d+-x86_64-linux-gnu\\.so$`),
      new RegExp(`${SITE.source}/uvloop/loop\\.cpython-\\d+-x86_64-linux-gnu\\.so$`),
      new RegExp(`${SITE.source}/httptools/parser/parser\\.cpython-\\d+-x86_64-linux-gnu\\.so$`),
      new RegExp(`${SITE.source}/fastapi_uv/main\\.pyc$`),
      new RegExp(`${SITE.source}/fastapi_uv-0\\.1\\.0\\.dist-info/entry_points\\.txt$`),
      /^\/usr\/lib\/python3\.\d+\/asyncio\/base_events\.pyc$/,
    ],
    absent: /\/(uv|poetry|pip\d*|sh|bash)$|\/site-packages\/(pip|uv|setuptools)\/|\/direct_url\.json$|\/tkinter\/|\/idlelib\//,
    route: '/items/42?q=e2e',
    answer: (body) => expect(JSON.parse(body)).toEqual({ item_id: 42, q: 'e2e' }),
    logLine: /"GET \/items\/42\?q=e2e HTTP\/1\.1" 200/,
    after: async (home, app) => {
      // a dependency added to pyproject.toml without `uv lock`: uv export --locked refuses, the build says how to fix it
      const pyproject = join(app, 'pyproject.toml');
      writeFileSync(pyproject, readFileSync(pyproject, 'utf8').replace('"httptools>=0.6",', '"httptools>=0.6",\n    "itsdangerous>=2",'));
      const r = await home.cli(['build', app]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('E_LOCK_REQUIRED');
      expect(r.stderr).toContain('run `uv lock` and commit uv.lock');
    },
  });
});

describe('python pack: examples/python-flask-poetry (Flask + gunicorn, poetry.lock) on a real VM', () => {
  exampleOnVm({
    dir: 'python-flask-poetry',
    maxBytes: 25 * MiB,
    buildLines: [/installing poetry==2\.5\.1 poetry-plugin-export==1\.10\.1 from PyPI/, /poetry 2\.5\.1 export --only main/,
      /pip install --target site-packages --no-deps -r requirements\.exported\.txt/, /entry point: unik\.yaml run\.command: console script gunicorn = gunicorn\.app\.wsgiapp:run/],
    command: { launcher: /^import sys; from gunicorn\.app\.wsgiapp import run; sys\.argv\[0\] = "gunicorn"; sys\.exit\(run\(\)\)$/, args: ['app:app'] },
    present: [
      '/app/app.pyc',
      '/app/gunicorn.conf.py', // loaded by path: stays a source
      new RegExp(`${SITE.source}/markupsafe/_speedups\\.cpython-\\d+-x86_64-linux-gnu\\.so$`),
      new RegExp(`${SITE.source}/gunicorn/workers/sync\\.pyc$`), // imported by name at run time
      new RegExp(`${SITE.source}/flask/app\\.pyc$`),
    ],
    absent: /\/site-packages\/(pytest|_pytest|pluggy|iniconfig|pygments)\/|\/(poetry|pip\d*|sh|bash)$|\/app\/app\.py$/, // the dev group stays out
    route: '/hello/e2e',
    answer: (body) => expect(body).toMatch(/^hello, e2e! \(user agent /),
    logLine: /"GET \/hello\/e2e HTTP\/1\.1" 200/,
  });
});
