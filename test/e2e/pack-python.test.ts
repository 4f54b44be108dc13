import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, httpGet, ROOT, TestHome } from './helpers.js';

const APP = join(ROOT, 'examples', 'python-http');
const TARGET_BYTES = 25 * 1024 * 1024;

describe('python pack: examples/python-http on a real VM', () => {
  const home = new TestHome();
  let port = 0;

  beforeAll(async () => {
    port = await freePort();
  });
  afterAll(async () => {
    await home.cleanup();
    expect(home.qemuProcesses()).toEqual([]);
  });

  it('builds a release image below 25 MB: interpreter + pruned stdlib + pinned dependencies, reproducibly', async () => {
    const human = await home.cli(['build', APP]);
    expect(human.code, human.stderr).toBe(0);
    expect(`${human.stdout}\n${human.stderr}`).toMatch(/total\s+[\d.]+ MiB/); // the size is reported
    expect(human.stderr).toContain('pip install');
    expect(human.stderr).toMatch(/stdlib: kept \d+ modules/);

    const r = await home.cli(['build', APP, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { ref: string; pack: string; manifest: { size: number; rootfs: { sha256: string }; run: { command: string[]; memoryMiB: number; ports: number[] } } };
    expect(out.ref).toBe('local/python-http:latest');
    expect(out.pack).toBe('python');
    expect(out.manifest.run.command).toEqual(['/usr/bin/python3', '-E', '-s', '-u', '-OO', '/app/main.py']);
    expect(out.manifest.run.ports).toEqual([8080]);
    expect(out.manifest.size).toBeLessThan(TARGET_BYTES);

    const meta = JSON.parse(readFileSync(join(APP, '.unikctl', 'native', 'pack-metadata.json'), 'utf8')) as { pack: string; mode: string; toolchain: Record<string, string>; inputs: Record<string, string>; artifacts: Array<{ path: string; size: number }> };
    expect(meta.pack).toBe('python');
    expect(meta.mode).toBe('release');
    expect(meta.toolchain.python).toMatch(/^3\.\d+\.\d+$/);
    expect(meta.inputs['requirements.txt']).toMatch(/^sha256:/);
    expect(meta.artifacts.map((a) => a.path)).toContain('/usr/bin/python3');

    // same inputs, same image (the first build above produced the same bytes)
    const again = JSON.parse((await home.cli(['build', APP, '--json'])).stdout) as typeof out;
    expect(again.manifest.rootfs.sha256).toBe(out.manifest.rootfs.sha256);
  });

  it('the image holds the interpreter closure and the app only: no shell, no unused stdlib, no sources in release', () => {
    const dir = mkdtempSync(join(tmpdir(), 'unikctl-pylist-'));
    try {
      execFileSync('fsck.erofs', [`--extract=${join(dir, 'root')}`, join(APP, '.unikctl', 'image', 'rootfs.erofs')]);
      const files: string[] = [];
      const walk = (d: string, rel: string): void => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
          const p = `${rel}/${e.name}`;
          if (e.isDirectory()) walk(join(d, e.name), p);
          else files.push(p);
        }
      };
      walk(join(dir, 'root'), '');
      const stdlib = files.find((f) => /^\/usr\/lib\/python3\.\d+\/os\.pyc$/.test(f))?.replace('/os.pyc', '');
      expect(stdlib).toBeDefined();
      expect(files).toContain('/usr/bin/python3');
      expect(files).toContain('/app/main.py');
      expect(files).toContain(`${stdlib}/http/server.pyc`);
      expect(files).toContain(`${stdlib}/site-packages/six.pyc`);
      expect(files.some((f) => f.startsWith(`${stdlib}/site-packages/markupsafe/_speedups.`) && f.endsWith('.so'))).toBe(true);
      expect(files.some((f) => /\/libpython3\.\d+\.so/.test(f))).toBe(true);
      expect(files.filter((f) => /\/(sh|bash|busybox|pip\d*|ls)$/.test(f))).toEqual([]);
      for (const pruned of ['tkinter', 'unittest', 'idlelib', 'lib2to3', 'test', 'ensurepip', 'pydoc_data', 'sqlite3']) {
        expect(files.filter((f) => f.startsWith(`${stdlib}/${pruned}/`)), pruned).toEqual([]);
      }
      expect(files.filter((f) => f.startsWith(stdlib ?? '?') && f.endsWith('.py'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('deploys, serves HTTP on the published port, logs each request, reports running, destroys cleanly', async () => {
    const r = await home.cli(['deploy', 'local/python-http', '-p', `${port}:8080`, '--name', 'pyweb', '-e', 'GREETING=hi from python e2e', '--json']);
    expect(r.code, r.stderr).toBe(0);
    await home.waitState('pyweb', ['running']);
    const body = await httpGet(`http://127.0.0.1:${port}/e2e-path?name=<b>`, 60_000);
    expect(body).toContain('hi from python e2e');
    expect(body).toContain('host pyweb');
    expect(body).toContain('name &lt;b&gt;'); // escaped by MarkupSafe (from requirements.txt)
    expect(body).toContain('six 1.16.0');

    const s = await home.status('pyweb');
    expect(s.deployments[0]?.state).toBe('running');
    expect(s.deployments[0]?.ports).toEqual([`${port}->8080/tcp`]);

    let logs = '';
    for (let i = 0; i < 50 && !logs.includes('path=/e2e-path'); i++) {
      logs = (await home.cli(['logs', 'pyweb'])).stdout;
      await new Promise((res) => setTimeout(res, 200));
    }
    expect(logs).toContain('python-http listening on :8080');
    expect(logs).toContain('request method=GET path=/e2e-path');
    expect(logs).not.toMatch(/Traceback|Error/);

    const d = await home.cli(['destroy', 'pyweb', '--wait', '--json']);
    expect(d.code, d.stderr).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject([{ name: 'pyweb', state: 'gone' }]);
    expect(home.qemuProcesses()).toEqual([]);
    await expect(httpGet(`http://127.0.0.1:${port}/`, 1000)).rejects.toThrow();
  });
});
