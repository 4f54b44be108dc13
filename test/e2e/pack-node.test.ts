import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, httpGet, listImage, ROOT, TestHome } from './helpers.js';

const NODE_HTTP = join(ROOT, 'examples', 'node-http');
/**
 * The target for a Node image is 50 MB. The host node binary alone is 86 MB stripped (V8 + full ICU
 * data); with lz4hc in 64 KiB clusters kernel + root come to ~44 MB. The bound also catches a regression
 * (a dev dependency, an unstripped node, a stray node_modules).
 */
const SIZE_BOUND = 50_000_000;


interface BuildJson { ref: string; pack: string; manifest: { size: number; rootfs: { sha256: string; size: number }; kernel: { size: number }; run: { command: string[]; env: Record<string, string>; memoryMiB: number; ports: number[] } } }

describe('node pack: examples/node-http on a real VM', () => {
  const home = new TestHome();
  let port = 0;
  const scratch = mkdtempSync(join(tmpdir(), 'unikctl-node-e2e-'));

  beforeAll(async () => {
    port = await freePort();
  });
  afterAll(async () => {
    await home.cleanup();
    rmSync(scratch, { recursive: true, force: true });
    expect(home.qemuProcesses()).toEqual([]);
  });

  it('builds a release image with npm ci --omit=dev and reports its size', async () => {
    const r = await home.cli(['build', NODE_HTTP]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('npm ci --omit=dev');
    expect(r.stderr).toMatch(/image content: node [\d.]+ MiB \(stripped from [\d.]+ MiB\), \d+ shared libraries/);
    expect(r.stdout).toMatch(/total\s+[\d.]+ MiB/);
    expect(r.stdout).toContain('command   /usr/bin/node /app/server.js');

    const out = JSON.parse((await home.cli(['build', NODE_HTTP, '--json'])).stdout) as BuildJson;
    expect(out.ref).toBe('local/node-http:latest');
    expect(out.pack).toBe('node');
    expect(out.manifest.run).toMatchObject({ command: ['/usr/bin/node', '/app/server.js'], env: { NODE_ENV: 'production' }, memoryMiB: 256, ports: [8080] });
    expect(out.manifest.size).toBe(out.manifest.kernel.size + out.manifest.rootfs.size);
    expect(out.manifest.size).toBeLessThan(SIZE_BOUND);

    const meta = JSON.parse(readFileSync(join(NODE_HTTP, '.unikctl', 'native', 'pack-metadata.json'), 'utf8')) as { pack: string; toolchain: Record<string, string>; inputs: Record<string, string>; artifacts: Array<{ path: string; size: number }> };
    expect(meta.pack).toBe('node');
    expect(meta.toolchain.node).toMatch(/^v\d+\./);
    expect(meta.toolchain.npm).toMatch(/^\d+\./);
    expect(meta.inputs['package-lock.json']).toMatch(/^sha256:/);
    expect(meta.artifacts.map((a) => a.path)).toEqual(expect.arrayContaining(['/usr/bin/node', '/app', '/app/node_modules']));
    expect(existsSync(join(NODE_HTTP, '.unikctl', 'cache', 'npm'))).toBe(true);

    // reproducible: the same inputs give the same root filesystem
    const again = JSON.parse((await home.cli(['build', NODE_HTTP, '--json'])).stdout) as BuildJson;
    expect(again.manifest.rootfs.sha256).toBe(out.manifest.rootfs.sha256);
  });

  it('the image holds node, its libraries, the app and production node_modules only', () => {
    const files = listImage(join(NODE_HTTP, '.unikctl', 'image', 'rootfs.erofs'));
    expect(files).toEqual(expect.arrayContaining([
      '/init', '/usr/bin/node', '/lib64/ld-linux-x86-64.so.2', '/lib/x86_64-linux-gnu/libc.so.6', '/lib/x86_64-linux-gnu/libstdc++.so.6',
      '/app/server.js', '/app/package.json', '/app/node_modules/ms/index.js',
    ]));
    // the dev dependency is not in the image, nor npm, a shell, or the project's tooling files
    expect(files.filter((f) => f.includes('is-number'))).toEqual([]);
    expect(files.filter((f) => /\/(sh|bash|npm|npx|ls)$/.test(f) || f.includes('/npm/'))).toEqual([]);
    expect(files.filter((f) => f.includes('.unikctl') || f.endsWith('unik.yaml') || f.endsWith('.npmrc'))).toEqual([]);
    // everything outside /app and /etc is node and its shared-library closure
    expect(files.filter((f) => !f.startsWith('/app/') && !f.startsWith('/etc/') && f !== '/init' && f !== '/usr/bin/node').every((f) => /^\/lib(64)?\//.test(f))).toBe(true);
  });

  it('deploys with -p, serves HTTP, logs the request, reports running, and destroys', async () => {
    const r = await home.cli(['deploy', 'local/node-http', '-p', `${port}:8080`, '--name', 'nodeweb', '-e', 'GREETING=hi from node e2e', '--json']);
    expect(r.code, r.stderr).toBe(0);
    await home.waitState('nodeweb', ['running']);
    // node waits for the guest's entropy pool before it runs any JavaScript: allow for a slow TCG boot
    const body = await httpGet(`http://127.0.0.1:${port}/e2e-node`, 90_000);
    expect(body).toContain('hi from node e2e');
    expect(body).toContain('env production');
    expect(body).toContain('host nodeweb');

    const s = await home.status('nodeweb');
    expect(s.deployments[0]?.state).toBe('running');
    expect(s.deployments[0]?.ports).toEqual([`${port}->8080/tcp`]);

    let logs = '';
    for (let i = 0; i < 50 && !logs.includes('path=/e2e-node'); i++) {
      logs = (await home.cli(['logs', 'nodeweb'])).stdout;
      await new Promise((res) => setTimeout(res, 100));
    }
    // server.listen(port) falls back from :: to 0.0.0.0 in the IPv4-only guest
    expect(logs).toContain('node-http listening on 0.0.0.0:8080 (NODE_ENV=production)');
    expect(logs).toContain('request method=GET path=/e2e-node');

    const d = await home.cli(['destroy', 'nodeweb', '--wait', '--json']);
    expect(d.code, d.stderr).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject([{ name: 'nodeweb', state: 'gone' }]);
    expect(home.qemuProcesses()).toEqual([]);
    await expect(httpGet(`http://127.0.0.1:${port}/`, 1000)).rejects.toThrow();
  });

  it('bad input: no lock in release is E_LOCK_REQUIRED; a syntax error shows node\'s output and keeps the previous image', async () => {
    const app = join(scratch, 'node-app');
    cpSync(NODE_HTTP, app, { recursive: true, filter: (p) => !p.includes('.unikctl') });

    const good = await home.cli(['build', app, '--json']);
    expect(good.code, good.stderr).toBe(0);
    const before = readFileSync(join(app, '.unikctl', 'image', 'manifest.json'), 'utf8');

    writeFileSync(join(app, 'server.js'), `${readFileSync(join(app, 'server.js'), 'utf8')}\nconst broken = ;\n`);
    const bad = await home.cli(['build', app]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('E_BUILD_FAILED');
    expect(bad.stderr).toContain('node --check server.js');
    expect(bad.stderr).toContain('SyntaxError');
    expect(readFileSync(join(app, '.unikctl', 'image', 'manifest.json'), 'utf8')).toBe(before);

    rmSync(join(app, 'package-lock.json'));
    const unlocked = await home.cli(['build', app]);
    expect(unlocked.code).not.toBe(0);
    expect(unlocked.stderr).toContain('E_LOCK_REQUIRED');
    expect(unlocked.stderr).toContain('npm install --package-lock-only');
  });
});
