/**
 * A real-world Rust app on a real VM: a Cargo workspace whose `api` crate is an axum server on tokio, next to an
 * `admin` binary and a shared library crate; unik.yaml's `main: api` picks the binary (without it the build
 * stops with E_ENTRY_AMBIGUOUS naming both). Build (Cargo.lock, --locked), image content (the one binary and,
 * for a glibc build, its closure), the 5 MB bound, deploy with -p, an HTTP answer from an axum route,
 * the request in the logs, destroy. The cargo home and target directory are examples/rust-http's (pack-rust).
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deployServeDestroy, exampleCopy, listImage, shareBuildCache } from './helpers.js';

const MiB = 1024 * 1024;
/** the target for the axum image (kernel + root filesystem) */
const AXUM_MAX_BYTES = 5_000_000;
/** a cold build compiles tokio, hyper and axum with LTO on a loaded host */
const BUILD_TIMEOUT = 1_200_000;
const DIR = 'rust-axum-workspace';

describe('rust pack: examples/rust-axum-workspace (axum + tokio in a Cargo workspace) on a real VM', () => {
  const { home, app } = exampleCopy(DIR, /\/(\.unikctl|target)(\/|$)/);
  shareBuildCache(app, 'rust-http');

  it('builds the binary unik.yaml main: names, with exactly its closure, within 5 MB', async () => {
    const r = await home.cli(['build', app, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/cargo build --release --locked --target \S+ --bin api\n/);
    const out = JSON.parse(r.stdout) as { pack: string; manifest: { size: number; run: { command: string[] } } };
    expect(out.pack).toBe('rust');
    expect(out.manifest.run.command).toEqual(['/app/api']);
    console.log(`${DIR}: image ${(out.manifest.size / MiB).toFixed(2)} MiB (${(out.manifest.size / 1e6).toFixed(2)} MB)`);
    expect(out.manifest.size).toBeLessThanOrEqual(AXUM_MAX_BYTES);

    const meta = JSON.parse(readFileSync(join(app, '.unikctl', 'native', 'pack-metadata.json'), 'utf8')) as { toolchain: Record<string, string>; inputs: Record<string, string> };
    expect(meta.inputs['Cargo.lock']).toMatch(/^sha256:/);
    const files = listImage(join(app, '.unikctl', 'image', 'rootfs.erofs'));
    const base = ['/app/api', '/etc/group', '/etc/hosts', '/etc/nsswitch.conf', '/etc/passwd', '/etc/resolv.conf', '/init'];
    if (meta.toolchain.target === 'x86_64-unknown-linux-musl') expect(files).toEqual(base);
    else {
      expect(files.filter((f) => !/^\/lib(64)?\//.test(f))).toEqual(base);
      expect(files).toEqual(expect.arrayContaining(['/lib64/ld-linux-x86-64.so.2', '/lib/x86_64-linux-gnu/libc.so.6']));
    }
    expect(files).not.toContain('/app/admin');
  }, BUILD_TIMEOUT);

  it('deploys with -p, answers on an axum route, logs the request, and destroys', async () => {
    const { body, logs } = await deployServeDestroy(home, { dir: DIR, name: 'axum', route: '/hello/e2e', logLine: /request method=GET path=\/hello\/e2e status=200/, timeoutMs: 120_000 });
    expect(JSON.parse(body)).toEqual({ hello: 'e2e', greeting: 'hello, e2e', framework: 'axum', runtime: 'tokio', host: 'axum' });
    expect(logs).toContain('rust-axum-workspace api listening on 0.0.0.0:8080 (axum, tokio)');
  });

  it('without unik.yaml main: the build stops, naming both binaries and the field', async () => {
    rmSync(join(app, 'unik.yaml'));
    const r = await home.cli(['build', app, '--json']);
    expect(r.code).toBe(1);
    const err = (JSON.parse(r.stdout) as { error: { code: string; message: string; hint: string } }).error;
    expect(err.code).toBe('E_ENTRY_AMBIGUOUS');
    expect(err.message).toBe('the Cargo workspace has several binary targets: admin, api; which one is the app?');
    expect(err.hint).toMatch(/^add main: admin \(or another of them\) to unik\.yaml/);
  });
});
