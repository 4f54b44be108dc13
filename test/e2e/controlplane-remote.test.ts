import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer } from './cp-helpers.js';
import { freePort, httpGet, ROOT, TestHome } from './helpers.js';

/** CP-5 end to end: the five commands through a real unikctld on loopback, running a real VM. */
describe('remote mode: unikctl → unikctld → VM', () => {
  const server = new TestServer({ runner: 'engine' });
  const home = new TestHome(); // the CLI side: its own (empty) local state
  let port = 0;

  const qemuOfServer = (): string[] => {
    try {
      return execFileSync('pgrep', ['-af', `qemu-system.*${server.data}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };

  beforeAll(async () => {
    port = await freePort();
    await server.start();
    Object.assign(home.env, server.cliEnv());
  });
  afterAll(async () => {
    await home.cli(['destroy', 'remote-web', '--wait']).catch(() => undefined);
    await server.stop();
    expect(qemuOfServer()).toEqual([]);
    server.cleanup();
    await home.cleanup();
  });

  it('deploy uploads the source dir, the control plane builds and boots it, HTTP reaches the app', async () => {
    const r = await home.cli(['deploy', join(ROOT, 'examples', 'go-http'), '--name', 'remote-web', '-p', `${port}:8080`, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const dep = JSON.parse(r.stdout) as { name: string; operationId: string; resolvedFrom: string };
    expect(dep.name).toBe('remote-web');
    expect(dep.resolvedFrom).toContain('(uploaded)');
    const d = await home.waitState('remote-web', ['running', 'failed'], 240_000);
    expect(d.state, d.reason ?? '').toBe('running');
    expect(await httpGet(`http://127.0.0.1:${port}/through-the-control-plane`)).toContain('hello from a unikctl VM');
    const s = await home.status();
    expect(s.operations.find((o) => o.id === dep.operationId)?.state).toBe('succeeded');
  });

  it('logs come through the API, including --follow streaming', async () => {
    let logs = '';
    for (let i = 0; i < 50 && !logs.includes('path=/through-the-control-plane'); i++) {
      logs = (await home.cli(['logs', 'remote-web'])).stdout;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(logs).toContain('request method=GET path=/through-the-control-plane');

    const follower = spawn(process.execPath, [join(ROOT, 'bin', 'unikctl.js'), 'logs', '-f', 'remote-web'], { env: home.env });
    let out = '';
    follower.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    await new Promise((r) => setTimeout(r, 1000));
    await httpGet(`http://127.0.0.1:${port}/streamed`);
    const deadline = Date.now() + 20_000;
    while (!out.includes('path=/streamed') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    follower.kill('SIGINT');
    expect(out).toContain('path=/streamed');
  });

  it('errors keep their codes in remote mode', async () => {
    const r = await home.cli(['logs', 'nope']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('E_UNKNOWN_APP');
    const miss = await home.cli(['deploy', 'no-such-pkg:v1']);
    expect(miss.stderr).toContain('E_PACKAGE_NOT_FOUND');
  });

  it('bad memory, env and ports are refused at admission (no 202), with the same codes as local mode', async () => {
    const free = await freePort();
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ memory: 'banana' }, 'E_INVALID_ARGUMENT', 'not a size'],
      [{ memory: '0' }, 'E_INVALID_ARGUMENT', 'not a size'],
      [{ memory: '100000G' }, 'E_INVALID_ARGUMENT', "host's total memory"],
      [{ env: ['A=x\u0000B=y'] }, 'E_INVALID_ARGUMENT', 'NUL'],
      [{ ports: [`${free}:80`, `127.0.0.1:${free}:81`] }, 'E_INVALID_PORT', 'published twice'],
      [{ ports: [`1.2.3.4:${free}:80`] }, 'E_INVALID_PORT', 'address not available on this host'],
      [{ ports: [`127.0.0.1:${port}:80`] }, 'E_PORT_IN_USE', 'already in use'],
    ];
    for (const [extra, code, text] of cases) {
      const r = await server.api('/v1/deployments', { json: { source: { package: 'local/go-http:latest' }, name: 'refused', ...extra } });
      const body = (await r.json()) as { code: string; message: string };
      expect(body.code, JSON.stringify(extra)).toBe(code);
      expect(r.status).toBe(code === 'E_PORT_IN_USE' ? 409 : 400);
      expect(body.message).toContain(text);
    }
    // and through the CLI in remote mode
    for (const [args, code] of [[['-m', '100000G'], 'E_INVALID_ARGUMENT'], [['-p', `1.2.3.4:${free}:8080`], 'E_INVALID_PORT']] as const) {
      const r = await home.cli(['deploy', join(ROOT, 'examples', 'c-hello'), '--name', 'refused', ...args]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(code);
    }
    expect((await home.status()).deployments.map((d) => d.name)).toEqual(['remote-web']);
  });

  it('destroy through the API stops the VM on the control plane host', async () => {
    expect(qemuOfServer()).toHaveLength(1);
    const r = await home.cli(['destroy', 'remote-web', '--wait']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('remote-web gone');
    expect(qemuOfServer()).toEqual([]);
    expect((await home.status()).deployments).toEqual([]);
  });
});
