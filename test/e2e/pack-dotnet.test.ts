import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { which } from '../../src/util/exec.js';
import { freePort, httpGet, ROOT, TestHome } from './helpers.js';

const DOTNET_HTTP = join(ROOT, 'examples', 'dotnet-http');
/** kernel + a trimmed self-contained .NET runtime, the app and the host libraries it needs */
const SIZE_TARGET = 48 * 1024 * 1024;

const hasDotnet = which('dotnet') !== null;
const SKIP_REASON = 'skipping: dotnet is not installed on this machine (install the .NET 8 SDK to run the dotnet pack e2e test)';
if (!hasDotnet) console.log(SKIP_REASON);

describe('dotnet pack: examples/dotnet-http on a real VM', () => {
  const home = new TestHome();
  let port = 0;
  let app = '';

  beforeAll(async () => {
    port = await freePort();
    if (!hasDotnet) return;
    // Build a copy: the example's hand-written packages.lock.json has no packages, but a trimmed publish adds the
    // SDK's own Microsoft.NET.ILLink.Tasks (its version follows the installed SDK): refresh the lock for this SDK.
    app = join(mkdtempSync(join(tmpdir(), 'unikctl-dotnet-')), 'dotnet-http');
    cpSync(DOTNET_HTTP, app, { recursive: true, filter: (src) => !/[/\\](\.unikctl|bin|obj)$/.test(src) });
    execFileSync('dotnet', ['restore', '-r', 'linux-x64', '-p:SelfContained=true', '-p:PublishTrimmed=true', '--force-evaluate'], {
      cwd: app, env: { ...process.env, DOTNET_CLI_TELEMETRY_OPTOUT: '1', DOTNET_NOLOGO: '1', NUGET_PACKAGES: join(app, '.unikctl', 'cache', 'nuget') }, stdio: 'inherit',
    });
  });
  afterAll(async () => {
    await home.cleanup();
    expect(home.qemuProcesses()).toEqual([]);
    if (app) rmSync(join(app, '..'), { recursive: true, force: true });
  });

  it.skipIf(!hasDotnet)('builds a release image (locked restore, trimmed self-contained publish) and reports its size', async () => {
    const r = await home.cli(['build', app]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('--locked-mode');
    expect(r.stderr).toContain('-p:PublishTrimmed=true');
    expect(r.stdout).toMatch(/total\s+[\d.]+ (KiB|MiB)/);
    const j = JSON.parse((await home.cli(['build', app, '--json'])).stdout) as { pack: string; manifest: { size: number; run: { command: string[]; memoryMiB: number; env: Record<string, string> } } };
    expect(j.pack).toBe('dotnet');
    expect(j.manifest.run.command).toEqual(['/app/dotnet-http']);
    expect(j.manifest.run.memoryMiB).toBe(256);
    expect(j.manifest.run.env.DOTNET_SYSTEM_GLOBALIZATION_INVARIANT).toBe('1');
    expect(j.manifest.size).toBeLessThan(SIZE_TARGET);

    const meta = JSON.parse(readFileSync(join(app, '.unikctl', 'native', 'pack-metadata.json'), 'utf8')) as { pack: string; toolchain: Record<string, string>; inputs: Record<string, string> };
    expect(meta.toolchain.dotnet).toMatch(/^\d+\.\d+\.\d+/);
    expect(meta.inputs['packages.lock.json']).toMatch(/^sha256:/);

    const dir = mkdtempSync(join(tmpdir(), 'unikctl-list-'));
    try {
      execFileSync('fsck.erofs', [`--extract=${join(dir, 'root')}`, join(app, '.unikctl', 'image', 'rootfs.erofs')]);
      const files = readdirSync(join(dir, 'root', 'app'));
      expect(files).toEqual(expect.arrayContaining(['dotnet-http', 'dotnet-http.dll', 'libcoreclr.so', 'libhostfxr.so']));
      expect(files.some((f) => f.endsWith('.pdb'))).toBe(false); // release: DebugType=None
      expect(readdirSync(join(dir, 'root'))).not.toContain('bin'); // no shell, no coreutils
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!hasDotnet)('deploys with -p, serves HTTP, logs the request, reports running', async () => {
    const r = await home.cli(['deploy', 'local/dotnet-http', '-p', `${port}:8080`, '--name', 'dotty', '-e', 'GREETING=hi from dotnet e2e']);
    expect(r.code, r.stderr).toBe(0);
    await home.waitState('dotty', ['running']);
    const body = await httpGet(`http://127.0.0.1:${port}/e2e-dotnet`, 120_000); // the runtime starts slowly under TCG
    expect(body).toContain('hi from dotnet e2e');

    const s = await home.status('dotty');
    expect(s.deployments[0]?.state).toBe('running');
    let logs = '';
    for (let i = 0; i < 50 && !logs.includes('path=/e2e-dotnet'); i++) {
      logs = (await home.cli(['logs', 'dotty'])).stdout;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(logs).toContain('dotnet-http listening on 0.0.0.0:8080');
    expect(logs).toContain('request method=GET path=/e2e-dotnet');
  });

  it.skipIf(!hasDotnet)('destroy stops the VM and leaves no QEMU behind', async () => {
    const r = await home.cli(['destroy', 'dotty', '--wait', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(home.qemuProcesses()).toEqual([]);
    expect((await home.status()).deployments).toEqual([]);
  });
});
