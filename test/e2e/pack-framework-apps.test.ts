/**
 * Framework apps that stress what static analysis cannot see, on a real VM:
 * - examples/python-django: Django + gunicorn from a Procfile, pinned hashed requirements.txt. Django imports by
 *   name (settings, apps, middleware, template backends and tag libraries, the sqlite3 database backend): the pruned
 *   stdlib must still hold everything a template render and an ORM query need, and TIME_ZONE = Europe/Paris needs
 *   the time zone database (python/tzdata.ts).
 * - examples/python-numpy: numpy's compiled extensions and the OpenBLAS/gfortran libraries its wheel bundles in
 *   numpy.libs/ (found through the extensions' RUNPATH), exercised by a LAPACK solve in a Starlette route.
 * - examples/node-next: Next.js `next build` with output: 'standalone'; the image is the standalone server and its
 *   traced node_modules (no SWC compiler, no full `next` package).
 * Each: build once, image content, deploy with -p, an HTTP answer from a framework route, the request in the logs,
 * destroy. Package caches (pip, npm) are shared with the examples' own .unikctl/cache across runs.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deployServeDestroy, exampleCopy, listImage, shareBuildCache } from './helpers.js';

const MiB = 1024 * 1024;
const SITE = '/usr/lib/python3\\.\\d+/site-packages';

interface App {
  dir: string;
  /** regression bound for the image (measured sizes are in the examples' READMEs) */
  maxBytes: number;
  buildLines: RegExp[];
  command: (argv: string[]) => void;
  present: RegExp[];
  absent: RegExp;
  route: string;
  answer: (body: string, name: string) => void;
  logLine: RegExp;
  whileUp?: (base: string) => Promise<void>;
  /** first HTTP answer: a cold Next/Django start under TCG on a shared host is slow */
  timeoutMs: number;
}

function appOnVm(ex: App): void {
  const { home, app } = exampleCopy(ex.dir, /\/(\.unikctl|\.venv|__pycache__|node_modules|\.next)(\/|$)/);
  shareBuildCache(app, ex.dir);
  const name = ex.dir.slice(0, 20);

  it('builds a release image: the framework, its compiled parts and their libraries, nothing of the build', async () => {
    const r = await home.cli(['build', app, '--json']);
    expect(r.code, r.stderr).toBe(0);
    for (const line of ex.buildLines) expect(r.stderr).toMatch(line);
    const out = JSON.parse(r.stdout) as { manifest: { size: number; run: { command: string[] } } };
    ex.command(out.manifest.run.command);
    console.log(`${ex.dir}: image ${(out.manifest.size / MiB).toFixed(1)} MiB`);
    expect(out.manifest.size).toBeLessThan(ex.maxBytes);
    const files = listImage(join(app, '.unikctl', 'image', 'rootfs.erofs'));
    for (const p of ex.present) expect(files.some((f) => p.test(f)), String(p)).toBe(true);
    expect(files.filter((f) => ex.absent.test(f))).toEqual([]);
  }, 900_000); // npm ci + next build, or pip + byte-compilation, on a shared 2-core host

  it('deploys with -p, answers on a framework route, logs the request, and destroys', async () => {
    // one attempt may take long: the first request makes the app import its framework (Django's apps, a Next render)
    const { body, logs } = await deployServeDestroy(home, { dir: ex.dir, name, route: ex.route, logLine: ex.logLine, timeoutMs: ex.timeoutMs, requestMs: 90_000, ...(ex.whileUp ? { whileUp: ex.whileUp } : {}) });
    ex.answer(body, name);
    expect(logs).not.toMatch(/Traceback|ModuleNotFoundError|ImportError|ZoneInfoNotFoundError|Cannot find module|ERR_MODULE_NOT_FOUND/);
  }, ex.timeoutMs + 120_000);
}

const json = async (url: string): Promise<Record<string, unknown>> => {
  const r = await fetch(url, { signal: AbortSignal.timeout(60_000) });
  expect(r.status, url).toBe(200);
  return (await r.json()) as Record<string, unknown>;
};

describe('python pack: examples/python-django (Django + gunicorn from a Procfile) on a real VM', () => {
  appOnVm({
    dir: 'python-django',
    maxBytes: 40 * MiB,
    buildLines: [/start command from the Procfile web/, /pip install --target site-packages --no-deps -r requirements\.txt/, /time zone database: .* → \/usr\/share\/zoneinfo/],
    command: (argv) => {
      expect(argv.slice(0, 6)).toEqual(['/usr/bin/python3', '-E', '-s', '-u', '-OO', '-c']);
      expect(argv[6]).toMatch(/from gunicorn\.app\.wsgiapp import run/);
      expect(argv.slice(7, 9)).toEqual(['mysite.wsgi', '--bind']);
    },
    present: [
      /^\/app\/mysite\/settings\.pyc$/,
      /^\/app\/hello\/templates\/hello\/index\.html$/,
      new RegExp(`^${SITE}/django/db/backends/sqlite3/base\\.pyc$`), // imported by name from DATABASES
      new RegExp(`^${SITE}/django/contrib/humanize/templatetags/humanize\\.pyc$`), // {% load humanize %}
      /^\/usr\/lib\/python3\.\d+\/lib-dynload\/_sqlite3\.cpython-\d+-x86_64-linux-gnu\.so$/,
      /\/libsqlite3\.so\.0$/,
      /^\/usr\/share\/zoneinfo\/Europe\/Paris$/,
    ],
    absent: /\/(pip\d*|sh|bash)$|\/site-packages\/(pip|setuptools)\/|\/zoneinfo\/(right|posix)\/|\/zoneinfo\/localtime$|\/tkinter\/|\/idlelib\//,
    route: '/hello/e2e/',
    // a template render: filters (title, length), a tag library loaded by name (humanize), {% url %}
    answer: (body) => {
      expect(body).toContain('<h1>Hello, E2e!</h1>');
      expect(body).toContain('Rendered by a Django template for /hello/e2e/; 1,234,567 visits; 3 letters.');
      expect(body).toContain('<a href="/">back</a>');
    },
    logLine: /"GET \/hello\/e2e\/ HTTP\/1\.1" 200/,
    whileUp: async (base) => {
      // an ORM connection (sqlite3 backend) and an aware datetime in Europe/Paris (zoneinfo + the tz database)
      const info = await json(`${base}/api/info`);
      expect(info).toMatchObject({ framework: 'django', django: expect.stringMatching(/^5\.2\./), sqlite: expect.stringMatching(/^3\./), time_zone: 'Europe/Paris', hello_url: '/hello/you/' });
      expect(info.now).toMatch(/\+0[12]:00$/);
    },
    timeoutMs: 240_000,
  });
});

describe('python pack: examples/python-numpy (numpy + its bundled OpenBLAS, Starlette, uvicorn) on a real VM', () => {
  appOnVm({
    dir: 'python-numpy',
    maxBytes: 45 * MiB,
    buildLines: [/entry point: unik\.yaml run\.command: console script uvicorn = uvicorn\.main:main/],
    command: (argv) => {
      expect(argv[6]).toMatch(/from uvicorn\.main import main/);
      expect(argv.slice(7)).toEqual(['app:app', '--host', '0.0.0.0', '--port', '8080', '--no-use-colors']);
    },
    present: [
      new RegExp(`^${SITE}/numpy/_core/_multiarray_umath\\.cpython-\\d+-x86_64-linux-gnu\\.so$`),
      new RegExp(`^${SITE}/numpy/linalg/_umath_linalg\\.cpython-\\d+-x86_64-linux-gnu\\.so$`),
      // the wheel's own copies of its libraries (auditwheel), loaded through $ORIGIN/../../numpy.libs
      new RegExp(`^${SITE}/numpy\\.libs/libscipy_openblas64_-[0-9a-f]+\\.so$`),
      new RegExp(`^${SITE}/numpy\\.libs/libgfortran-[0-9a-f-]+\\.so\\.[\\d.]+$`),
      /^\/app\/app\.pyc$/,
    ],
    absent: /\/(pip\d*|sh|bash)$|\/site-packages\/(pip|setuptools)\/|\/site-packages\/numpy\/(tests|_core\/tests)\/.*\.py$/,
    route: '/solve',
    answer: (body) => expect(JSON.parse(body)).toMatchObject({ x: [2, 3], check: true, blas: 'scipy-openblas' }),
    logLine: /"GET \/solve HTTP\/1\.1" 200/,
    whileUp: async (base) => {
      expect(await json(`${base}/stats?values=3,1,2,10`)).toEqual({ framework: 'starlette', n: 4, mean: 4, std: 3.5355339059327378, sorted: [1, 2, 3, 10] });
    },
    timeoutMs: 180_000,
  });
});

describe('node pack: examples/node-next (Next.js standalone output) on a real VM', () => {
  appOnVm({
    dir: 'node-next',
    maxBytes: 64 * MiB,
    buildLines: [/package manager: npm/, /build: next build: npm run build/, /build output: Next\.js standalone output \.next\/standalone\/server\.js, with \.next\/static and public copied in/,
      /install production dependencies: skipped/, /start: server\.js/],
    command: (argv) => expect(argv).toEqual(['/usr/bin/node', '/app/server.js']),
    present: [/^\/app\/server\.js$/, /^\/app\/\.next\/BUILD_ID$/, /^\/app\/\.next\/static\/chunks\/.+\.js$/, /^\/app\/public\/robots\.txt$/, /^\/app\/node_modules\/next\/package\.json$/,
      /^\/app\/node_modules\/react-dom\/package\.json$/],
    // the compiler (SWC, ≈100 MiB), the build cache and package-manager state stay out
    absent: /\/@next\/swc-|\/\.next\/cache\/|\/next\/dist\/compiled\/webpack\/|\/\.npmrc$|\/unik\.yaml$|\/app\/app\/page\.js$/,
    route: '/hello/e2e',
    answer: (body, name) => {
      const html = body.replaceAll('<!-- -->', ''); // React's separators between adjacent text nodes
      expect(html).toContain('<h1>Hello, e2e!</h1>');
      expect(html).toContain(`Server-rendered by Next.js on ${name} with node v`);
    },
    logLine: /page \/hello\/e2e rendered/,
    whileUp: async (base) => {
      expect(await json(`${base}/api/hello/e2e`)).toEqual({ hello: 'e2e', framework: 'next', host: 'node-next', env: 'production' });
      const r = await fetch(`${base}/robots.txt`, { signal: AbortSignal.timeout(60_000) });
      expect(await r.text()).toContain('User-agent: *'); // public/, copied next to the standalone server
    },
    timeoutMs: 300_000,
  });
});
