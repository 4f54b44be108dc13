import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, httpGet, ROOT, TestHome } from './helpers.js';

const PROCFILE_APP = join(ROOT, 'examples', 'procfile-python');
const CONFIG_APP = join(ROOT, 'examples', 'go-config');
const GUNICORN_APP = join(ROOT, 'examples', 'procfile-gunicorn');

describe('platform conventions (Procfile, PORT, run-time files) on real VMs', () => {
  const home = new TestHome();
  const scratch = mkdtempSync(join(tmpdir(), 'unikctl-conventions-'));

  afterAll(async () => {
    await home.cleanup();
    rmSync(scratch, { recursive: true, force: true });
    expect(home.qemuProcesses()).toEqual([]);
  });

  it('a Procfile web: process using $PORT and ${GREETING:-…} answers on the published port, unchanged', async () => {
    const port = await freePort();
    const r = await home.cli(['deploy', PROCFILE_APP, '-p', `${port}:8000`, '--name', 'procfile', '-e', 'GREETING=hi from -e', '--json']);
    expect(r.code, r.stderr).toBe(0);
    await home.waitState('procfile', ['running'], 240_000);
    const body = await httpGet(`http://127.0.0.1:${port}/`, 90_000);
    expect(body).toBe('hi from -e (port 8000, PORT=8000)\n');
    const logs = await home.cli(['logs', 'procfile']);
    expect(logs.stdout).toContain('procfile-python listening on :8000');
    // the build's warnings are in the deployment's log file (build stream), not in `unikctl logs`
    expect(readFileSync(join(home.dir, 'deployments', 'procfile', 'console.log'), 'utf8')).toContain('Procfile release: (line 3) is not run');
    const d = await home.cli(['destroy', 'procfile', '--wait']);
    expect(d.code, d.stderr).toBe(0);
  });

  it('web: gunicorn app:app --bind 0.0.0.0:$PORT runs the installed console script with the image\'s python', async () => {
    const port = await freePort();
    const r = await home.cli(['deploy', GUNICORN_APP, '-p', `${port}:8000`, '--name', 'guni', '--json']);
    expect(r.code, r.stderr).toBe(0);
    await home.waitState('guni', ['running'], 240_000);
    expect(await httpGet(`http://127.0.0.1:${port}/`, 90_000)).toBe('hello from gunicorn\n');
    expect((await home.cli(['logs', 'guni'])).stdout).toContain('Listening at: http://0.0.0.0:8000');
    const d = await home.cli(['destroy', 'guni', '--wait']);
    expect(d.code, d.stderr).toBe(0);
  });

  it('a Go binary finds its config.toml and static/ in its working directory (copied by default) and listens where the file says', async () => {
    const port = await freePort();
    const r = await home.cli(['deploy', CONFIG_APP, '-p', `${port}:9090`, '--name', 'goconf', '--json']);
    expect(r.code, r.stderr).toBe(0);
    await home.waitState('goconf', ['running'], 240_000);
    expect(await httpGet(`http://127.0.0.1:${port}/`, 60_000)).toBe('hello from config.toml (listening on 0.0.0.0:9090)\n');
    expect(await httpGet(`http://127.0.0.1:${port}/static/hello.txt`, 10_000)).toBe('a static file next to the binary\n');
    const d = await home.cli(['destroy', 'goconf', '--wait']);
    expect(d.code, d.stderr).toBe(0);
  });

  it('a Procfile line that needs a shell fails the build at once with E_PROCFILE_INVALID naming the line and the fix', async () => {
    const dir = join(scratch, 'shelly');
    cpSync(PROCFILE_APP, dir, { recursive: true, filter: (src) => !src.includes('.unikctl') });
    writeFileSync(join(dir, 'Procfile'), 'web: python app.py --port $PORT | tee /tmp/log\n');
    const r = await home.cli(['build', dir]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('E_PROCFILE_INVALID');
    expect(r.stderr).toContain('Procfile web: (line 1)');
    expect(r.stderr).toContain('run.command');
    // deploy refuses it before accepting the request (no VM, no deployment left behind)
    const d = await home.cli(['deploy', dir, '--name', 'shelly']);
    expect(d.code).not.toBe(0);
    expect(d.stderr).toContain('E_PROCFILE_INVALID');
    expect((await home.status()).deployments.map((x) => x.name)).not.toContain('shelly');
  });
});
