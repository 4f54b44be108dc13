import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, httpGet, listImage, ROOT, TestHome } from './helpers.js';

const GO_HTTP = join(ROOT, 'examples', 'go-http');

describe('golden path: examples/go-http on a real VM', () => {
  const home = new TestHome();
  let port = 0;

  beforeAll(async () => {
    port = await freePort();
  });
  afterAll(async () => {
    await home.cleanup();
    expect(home.qemuProcesses()).toEqual([]);
  });

  it('builds a release image: kernel + erofs root + manifest, recorded in the package store', async () => {
    const r = await home.cli(['build', GO_HTTP, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { ref: string; manifest: { size: number; rootfs: { sha256: string; size: number }; kernel: { sha256: string; variant: string }; run: { command: string[] } } };
    expect(out.ref).toBe('local/go-http:latest');
    expect(out.manifest.kernel.variant).toBe('release');
    expect(out.manifest.run.command).toEqual(['/app/go-http']);
    expect(out.manifest.size).toBeLessThan(6 * 1024 * 1024);
    // progress went to stderr, stdout is only JSON
    expect(r.stderr).toContain('go build');

    const meta = JSON.parse(readFileSync(join(GO_HTTP, '.unikctl', 'native', 'pack-metadata.json'), 'utf8')) as { pack: string; mode: string; toolchain: { go: string }; inputs: Record<string, string> };
    expect(meta.pack).toBe('go');
    expect(meta.mode).toBe('release');
    expect(meta.toolchain.go).toMatch(/^go1\./);
    expect(meta.inputs.sources).toMatch(/^sha256:/);

    // reproducible: the same inputs give the same digests
    const again = JSON.parse((await home.cli(['build', GO_HTTP, '--json'])).stdout) as typeof out;
    expect(again.manifest.rootfs.sha256).toBe(out.manifest.rootfs.sha256);
    expect(again.manifest.kernel.sha256).toBe(out.manifest.kernel.sha256);
    expect(existsSync(join(home.dir, 'packages', 'local', 'go-http', 'latest', 'manifest.json'))).toBe(true);
  });

  it('the image holds only init, the app and config files: no shell, no coreutils', () => {
    const files = listImage(join(GO_HTTP, '.unikctl', 'image', 'rootfs.erofs'));
    expect(files).toEqual(['/app/go-http', '/etc/group', '/etc/hosts', '/etc/nsswitch.conf', '/etc/passwd', '/etc/resolv.conf', '/init']);
  });

  it('deploys asynchronously, serves HTTP on the published port, logs the request, reports running', async () => {
    const t0 = Date.now();
    const r = await home.cli(['deploy', 'local/go-http', '-p', `${port}:8080`, '--name', 'web', '-e', 'GREETING=hi from e2e', '--json']);
    const elapsed = Date.now() - t0;
    expect(r.code, r.stderr).toBe(0);
    const dep = JSON.parse(r.stdout) as { name: string; operationId: string; resolvedFrom: string; state: string };
    expect(dep.name).toBe('web');
    expect(dep.operationId).toMatch(/^op_/);
    expect(dep.state).toBe('pending');
    expect(dep.resolvedFrom).toBe('local package store local/go-http:latest');
    // the CLI returns before the VM boots (the contract is 0.5 s; allow for a loaded CI host)
    expect(elapsed).toBeLessThan(2000);

    await home.waitState('web', ['running']);
    const body = await httpGet(`http://127.0.0.1:${port}/e2e-path`);
    expect(body).toContain('hi from e2e');
    expect(body).toContain('host web');

    const s = await home.status('web');
    const d = s.deployments[0];
    expect(d?.state).toBe('running');
    expect(d?.ports).toEqual([`${port}->8080/tcp`]);
    expect(d?.accel).toBe(process.env.UNIKCTL_ACCEL === 'kvm' ? 'kvm' : 'tcg');
    expect(d?.bootMs).toBeGreaterThan(0);
    // metering (CP-8): the VM process and the supervisor that owns it, measured apart
    expect(d?.metrics?.cpuSeconds).toBeGreaterThan(0);
    expect(d?.metrics?.rssBytes).toBeGreaterThan(16 * 1024 * 1024);
    expect(d?.metrics?.supervisorRssBytes).toBeGreaterThan(16 * 1024 * 1024);
    expect(s.operations.find((o) => o.id === dep.operationId)?.state).toBe('succeeded');

    let logs = '';
    for (let i = 0; i < 50 && !logs.includes('path=/e2e-path'); i++) {
      logs = (await home.cli(['logs', 'web'])).stdout;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(logs).toContain('go-http listening on :8080');
    expect(logs).toContain('request method=GET path=/e2e-path');
    expect(logs).not.toMatch(/^\[\s*\d+\.\d+\]/m); // no kernel messages in a release deployment
    const tail = await home.cli(['logs', 'web', '--tail', '1']);
    expect(tail.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('a package archive (tar.gz of the image) deploys too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unikctl-archive-'));
    try {
      const archive = join(dir, 'go-http.tgz');
      execFileSync('tar', ['czf', archive, '-C', join(GO_HTTP, '.unikctl', 'image'), '.']);
      const r = await home.cli(['deploy', archive, '--name', 'from-archive', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as { resolvedFrom: string }).resolvedFrom).toBe(`package archive ${archive}`);
      expect((await home.waitState('from-archive', ['running', 'failed'])).state).toBe('running');
      expect((await home.cli(['destroy', 'from-archive', '--wait'])).code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('destroy stops the VM, frees the port and removes its files', async () => {
    expect(home.qemuProcesses()).toHaveLength(1);
    const r = await home.cli(['destroy', 'web', '--wait', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject([{ name: 'web', state: 'gone' }]);
    expect(home.qemuProcesses()).toEqual([]);
    expect(existsSync(join(home.dir, 'deployments', 'web'))).toBe(false);
    const s = await home.status();
    expect(s.deployments).toEqual([]);
    expect(s.operations.filter((o) => o.kind === 'destroy' && o.target === 'web').map((o) => o.state)).toEqual(['succeeded']);
    // destroy is idempotent in effect: the name is gone, a second destroy says so clearly
    const again = await home.cli(['destroy', 'web']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('E_UNKNOWN_APP');
    await expect(httpGet(`http://127.0.0.1:${port}/`, 1000)).rejects.toThrow();
  });
});
