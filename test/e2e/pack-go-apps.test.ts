/**
 * Real-world Go apps on a real VM: a Gin app whose visit counter is SQLite through cgo (a dynamically linked
 * binary: the image carries the dynamic loader, libc and libsqlite3 found from its DT_NEEDED entries), and a
 * go.work workspace with two programs where unik.yaml's `main:` picks the chi API (without it the build stops
 * with E_ENTRY_AMBIGUOUS naming both). Each: build, image content, deploy with -p, an HTTP answer from a
 * framework route, the request in the logs, destroy. The Go caches are examples/go-http's (golden.test.ts).
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deployServeDestroy, exampleCopy, listImage, shareBuildCache, type TestHome } from './helpers.js';

const MiB = 1024 * 1024;
const BASE = ['/etc/group', '/etc/hosts', '/etc/nsswitch.conf', '/etc/passwd', '/etc/resolv.conf', '/init'];
/** a cold build compiles Gin's dependency tree (and the standard library with cgo) under a loaded TCG host */
const BUILD_TIMEOUT = 1_200_000;

interface Example {
  dir: string;
  command: string[];
  /** the image's files besides BASE, exactly */
  files: string[];
  maxBytes: number;
  buildLines: RegExp[];
  cgo: 'on' | 'off';
  route: string;
  answer: (body: string, name: string) => void;
  logLine: RegExp;
  listening: string;
  more?: (home: TestHome, app: string) => void;
}

function exampleOnVm(ex: Example): { home: TestHome; app: string } {
  const copy = exampleCopy(ex.dir, /\/\.unikctl(\/|$)/);
  const { home, app } = copy;
  shareBuildCache(app, 'go-http');
  const name = ex.dir.replace(/^go-/, '').slice(0, 20);

  it('builds a release image: the chosen program and exactly its run-time closure', async () => {
    const r = await home.cli(['build', app, '--json']);
    expect(r.code, r.stderr).toBe(0);
    for (const line of ex.buildLines) expect(r.stderr).toMatch(line);
    const out = JSON.parse(r.stdout) as { pack: string; manifest: { size: number; run: { command: string[] } } };
    expect(out.pack).toBe('go');
    expect(out.manifest.run.command).toEqual(ex.command);
    expect(out.manifest.size).toBeLessThan(ex.maxBytes);
    console.log(`${ex.dir}: image ${(out.manifest.size / MiB).toFixed(1)} MiB`);

    const meta = JSON.parse(readFileSync(join(app, '.unikctl', 'native', 'pack-metadata.json'), 'utf8')) as { toolchain: Record<string, string>; inputs: Record<string, string> };
    expect(meta.toolchain.cgo).toBe(ex.cgo);
    expect(Object.keys(meta.inputs).filter((k) => k.endsWith('go.sum')).length).toBeGreaterThan(0);
    expect(listImage(join(app, '.unikctl', 'image', 'rootfs.erofs'))).toEqual([...BASE, ...ex.files].sort());
  }, BUILD_TIMEOUT);

  it('deploys with -p, answers on a framework route, logs the request, and destroys', async () => {
    const { body, logs } = await deployServeDestroy(home, { dir: ex.dir, name, route: ex.route, logLine: ex.logLine, timeoutMs: 120_000 });
    ex.answer(body, name);
    expect(logs).toContain(ex.listening);
  });
  return copy;
}

const hasSqliteDev = existsSync('/usr/include/sqlite3.h');
if (!hasSqliteDev) console.log('go-gin-sqlite skipped: /usr/include/sqlite3.h is missing (apt-get install libsqlite3-dev; scripts/ci-tools.sh installs it)');

describe.skipIf(!hasSqliteDev)('go pack: examples/go-gin-sqlite (Gin + libsqlite3 through cgo) on a real VM', () => {
  exampleOnVm({
    dir: 'go-gin-sqlite',
    command: ['/app/go-gin-sqlite'],
    // the loader and the DT_NEEDED closure: libsqlite3 (and libm, which it needs) next to libc
    files: ['/app/go-gin-sqlite', '/lib64/ld-linux-x86-64.so.2', '/lib/x86_64-linux-gnu/libc.so.6', '/lib/x86_64-linux-gnu/libm.so.6', '/lib/x86_64-linux-gnu/libsqlite3.so.0'],
    maxBytes: 16 * MiB,
    buildLines: [/cgo: example\.com\/go-gin-sqlite\/visits import "C": building with CGO_ENABLED=1/, /added 4 shared libraries \(the ELF closure of the cgo binary\)/],
    cgo: 'on',
    route: '/hello/e2e',
    answer: (body, name) => {
      // the count comes back from SQLite: the C library was loaded and works in the guest
      expect(JSON.parse(body)).toMatchObject({ hello: 'e2e', framework: 'gin', host: name, visits: 1, sqlite: expect.stringMatching(/^3\.\d+\.\d+$/) as unknown });
    },
    logLine: /request method=GET path=\/hello\/e2e status=200/,
    listening: 'go-gin-sqlite listening on :8080 (gin v1.12.0, sqlite 3.',
  });
});

describe('go pack: examples/go-workspace (go.work: chi API + admin tool + shared module) on a real VM', () => {
  const { home, app } = exampleOnVm({
    dir: 'go-workspace',
    command: ['/app/api'],
    files: ['/app/api'],
    maxBytes: 6 * MiB,
    buildLines: [/main package \.\/api \(unik\.yaml main:\); also in the workspace: \.\/admin/, /go build .* -o api \.\/api/],
    cgo: 'off',
    route: '/hello/e2e',
    answer: (body, name) => {
      expect(JSON.parse(body)).toEqual({ hello: 'e2e', greeting: 'hello, e2e', framework: 'chi', host: name, program: 'api' });
    },
    logLine: /request method=GET path=\/hello\/e2e/,
    listening: 'go-workspace api listening on :8080',
  });

  it('without unik.yaml main: the build stops, naming both main packages and the field', async () => {
    rmSync(join(app, 'unik.yaml'));
    const r = await home.cli(['build', app, '--json']);
    expect(r.code).toBe(1);
    const err = (JSON.parse(r.stdout) as { error: { code: string; message: string; hint: string } }).error;
    expect(err.code).toBe('E_ENTRY_AMBIGUOUS');
    expect(err.message).toBe('the Go project has several main packages: ./admin (binary admin), ./api (binary api); which one is the app?');
    expect(err.hint).toBe('add main: ./admin (or another of them) to unik.yaml');
  });
});
