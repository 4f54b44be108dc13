import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, httpGet, listImage, ROOT, TestHome } from './helpers.js';

const RUST_HTTP = join(ROOT, 'examples', 'rust-http');
/** a std-only Rust server: a static musl binary (or glibc + 3 libraries) and the kernel */
const SIZE_TARGET = 6 * 1024 * 1024;


describe('rust pack: examples/rust-http on a real VM', () => {
  const home = new TestHome();
  let port = 0;

  beforeAll(async () => {
    port = await freePort();
  });
  afterAll(async () => {
    await home.cleanup();
    expect(home.qemuProcesses()).toEqual([]);
  });

  it('builds a release image, reports its size, records the rust toolchain and Cargo.lock', async () => {
    const r = await home.cli(['build', RUST_HTTP]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('cargo build --release --locked');
    expect(r.stdout).toMatch(/total\s+[\d.]+ (KiB|MiB)/);

    const j = await home.cli(['build', RUST_HTTP, '--json']);
    expect(j.code, j.stderr).toBe(0);
    const out = JSON.parse(j.stdout) as { pack: string; manifest: { size: number; rootfs: { sha256: string }; run: { command: string[]; memoryMiB: number } } };
    expect(out.pack).toBe('rust');
    expect(out.manifest.run.command).toEqual(['/app/rust-http']);
    expect(out.manifest.size).toBeLessThan(SIZE_TARGET);

    const meta = JSON.parse(readFileSync(join(RUST_HTTP, '.unikctl', 'native', 'pack-metadata.json'), 'utf8')) as {
      pack: string; mode: string; toolchain: Record<string, string>; inputs: Record<string, string>;
    };
    expect(meta.pack).toBe('rust');
    expect(meta.mode).toBe('release');
    expect(meta.toolchain.cargo).toMatch(/^cargo \d/);
    expect(meta.inputs['Cargo.lock']).toMatch(/^sha256:/);

    // only init, config files, the binary and (for a glibc build) its closure
    const files = listImage(join(RUST_HTTP, '.unikctl', 'image', 'rootfs.erofs'));
    const base = ['/app/rust-http', '/etc/group', '/etc/hosts', '/etc/nsswitch.conf', '/etc/passwd', '/etc/resolv.conf', '/init'];
    if (meta.toolchain.target === 'x86_64-unknown-linux-musl') expect(files).toEqual(base);
    else expect(files.filter((f) => !f.startsWith('/lib'))).toEqual(base);
    expect(files.some((f) => /\/(sh|busybox)$/.test(f))).toBe(false);
  });

  it('deploys with -p, serves HTTP, logs the request, reports running', async () => {
    const r = await home.cli(['deploy', 'local/rust-http', '-p', `${port}:8080`, '--name', 'rusty', '-e', 'GREETING=hi from rust e2e', '--json']);
    expect(r.code, r.stderr).toBe(0);
    await home.waitState('rusty', ['running']);
    const body = await httpGet(`http://127.0.0.1:${port}/e2e-rust`);
    expect(body).toContain('hi from rust e2e');
    expect(body).toContain('path /e2e-rust');

    const s = await home.status('rusty');
    expect(s.deployments[0]?.state).toBe('running');
    expect(s.deployments[0]?.ports).toEqual([`${port}->8080/tcp`]);

    let logs = '';
    for (let i = 0; i < 50 && !logs.includes('path=/e2e-rust'); i++) {
      logs = (await home.cli(['logs', 'rusty'])).stdout;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(logs).toContain('rust-http listening on 0.0.0.0:8080');
    expect(logs).toContain('request method=GET path=/e2e-rust');
  });

  it('destroy stops the VM and leaves no QEMU behind', async () => {
    const r = await home.cli(['destroy', 'rusty', '--wait', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject([{ name: 'rusty', state: 'gone' }]);
    expect(home.qemuProcesses()).toEqual([]);
    expect((await home.status()).deployments).toEqual([]);
  });
});
