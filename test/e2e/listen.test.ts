import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TestServer } from './cp-helpers.js';
import { freePort, httpGet, ROOT, TestHome, type DeploymentJson } from './helpers.js';

/**
 * The listener check on real VMs: the guest init reports what the app listens on, the supervisor holds it against
 * the published guest ports. Each example is copied (builds write .unikctl/ into the project) and built once.
 */
interface Listen { health: string; ports: number[]; listeners: Array<{ address: string; port: number }> | null; warning: { code: string; message: string; fix: string } | null; }
type WithListen = DeploymentJson & { listen: Listen | null };

const scratch = mkdtempSync(join(tmpdir(), 'unikctl-listen-'));
const copy = (dir: string, as = dir): string => {
  const to = join(scratch, as);
  cpSync(join(ROOT, 'examples', dir), to, { recursive: true, filter: (p) => !/\/(\.unikctl|node_modules|target)(\/|$)/.test(p) });
  return to;
};

/** The home for apps expected to listen: a deadline far above a slow TCG boot, so a late listener never fails them. */
const home = new TestHome();
home.env.UNIKCTL_LISTEN_TIMEOUT_MS = '240000';
/** The never-listening app's home: a short deadline keeps the test short. */
const shortHome = new TestHome();
shortHome.env.UNIKCTL_LISTEN_TIMEOUT_MS = '20000';

async function view(h: TestHome, name: string): Promise<WithListen> {
  const s = await h.status(name);
  const d = s.deployments.find((x) => x.name === name);
  if (!d) throw new Error(`no deployment ${name} in ${JSON.stringify(s)}`);
  return d as WithListen;
}

/** Polls the logs (the app's and unikctl's lines are written as they come) until `re` matches. */
async function logsMatching(h: TestHome, name: string, re: RegExp): Promise<string> {
  let logs = '';
  for (let i = 0; i < 100 && !re.test(logs); i++) {
    logs = (await h.cli(['logs', name])).stdout;
    if (!re.test(logs)) await new Promise((r) => setTimeout(r, 300));
  }
  return logs;
}

describe('listener check: what the app listens on against the published ports (real VMs)', () => {
  afterAll(async () => {
    await home.cleanup();
    await shortHome.cleanup();
    rmSync(scratch, { recursive: true, force: true });
    expect(home.qemuProcesses()).toEqual([]);
    expect(shortHome.qemuProcesses()).toEqual([]);
  });

  it('an app bound to 127.0.0.1: deploy --wait fails with E_LISTENING_LOCALHOST_ONLY, status and logs show the warning and the fix; -e HOST=0.0.0.0 fixes it, and the app reads PORT', async () => {
    const t0 = Date.now();
    const port = await freePort();
    const r = await home.cli(['deploy', copy('node-localhost'), '-p', `${port}:3000`, '--name', 'lo', '--wait', '--timeout', '600', '--json']);
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as { state: string; health: string; code: string; reason: string; listen: Listen };
    expect(out).toMatchObject({ state: 'running', health: 'localhost-only', code: 'E_LISTENING_LOCALHOST_ONLY' });
    expect(out.reason).toContain('127.0.0.1:3000 only');
    console.log(`node-localhost: deploy --wait → localhost-only verdict ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // status --json: the state stays running (RT-3), the listeners and the warning with its code are fields
    const d = await view(home, 'lo');
    expect(d.state).toBe('running');
    expect(d.listen).toMatchObject({ health: 'localhost-only', ports: [3000], listeners: [{ address: '127.0.0.1', port: 3000 }], warning: { code: 'E_LISTENING_LOCALHOST_ONLY' } });
    expect(d.listen?.warning?.fix).toContain('HOST=0.0.0.0');
    // the human view: a HEALTH column and the warning with its fix line
    const human = (await home.cli(['status', 'lo'])).stdout;
    expect(human).toMatch(/lo\s+running\s+localhost-only/);
    expect(human).toContain('WARNINGS');
    expect(human).toContain('lo: E_LISTENING_LOCALHOST_ONLY: the app listens on 127.0.0.1:3000 only');
    expect(human).toMatch(/ {2}fix: listen on all interfaces: .*HOST=0\.0\.0\.0/);
    // logs: the app's own line, then unikctl's (marked, not the app's)
    const logs = await logsMatching(home, 'lo', /unikctl: fix:/);
    expect(logs).toContain('node-localhost listening on http://127.0.0.1:3000');
    expect(logs).toContain('unikctl: warning E_LISTENING_LOCALHOST_ONLY: the app listens on 127.0.0.1:3000 only');
    expect(logs).toMatch(/unikctl: fix: .*HOST=0\.0\.0\.0/);
    expect((await home.cli(['destroy', 'lo', '--wait'])).code).toBe(0);

    // the suggested fix, on the image the first deploy stored, published on another guest port: the app reads PORT
    // (5000, not its default 3000) and HOST; listening, served, deploy --wait succeeds
    const port2 = await freePort();
    const ok = await home.cli(['deploy', 'local/node-localhost', '-p', `${port2}:5000`, '--name', 'lo2', '-e', 'HOST=0.0.0.0', '--wait', '--timeout', '600']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^lo2 running, listening/);
    expect(await httpGet(`http://127.0.0.1:${port2}/`, 60_000)).toBe('hello from node-localhost (bound to 0.0.0.0:5000)\n');
    expect((await view(home, 'lo2')).listen).toMatchObject({ health: 'listening', ports: [5000], listeners: [{ address: '0.0.0.0', port: 5000 }], warning: null });
    expect(await logsMatching(home, 'lo2', /listening on/)).toContain('node-localhost listening on http://0.0.0.0:5000');
    expect((await home.cli(['destroy', 'lo2', '--wait'])).code).toBe(0);
  });

  it('an app that never listens on its published port: deploy --wait ends with E_NOT_LISTENING after the listen deadline, not "running"', async () => {
    const t0 = Date.now();
    const port = await freePort();
    const r = await shortHome.cli(['deploy', copy('node-worker'), '-p', `${port}:8080`, '--name', 'worker', '--wait', '--timeout', '600']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^worker running, not listening.*: nothing listens on guest port 8080 20 s after the app started; the app listens on no TCP port/);
    expect(r.stderr).toContain('[E_NOT_LISTENING]');
    expect(r.stderr).toContain('fix: make the app listen on 0.0.0.0:$PORT');
    console.log(`node-worker: deploy --wait → not-listening verdict ${((Date.now() - t0) / 1000).toFixed(1)} s (deadline 20 s after the app start)`);

    const d = await view(shortHome, 'worker');
    expect(d).toMatchObject({ state: 'running', listen: { health: 'not-listening', listeners: [], warning: { code: 'E_NOT_LISTENING' } } });
    const logs = await logsMatching(shortHome, 'worker', /unikctl: fix:/);
    expect(logs).toContain('node-worker started: polling for jobs, no HTTP server');
    expect(logs).toContain('unikctl: warning E_NOT_LISTENING: nothing listens on guest port 8080');
    expect((await shortHome.cli(['destroy', 'worker', '--wait'])).code).toBe(0);
  });

  it('a Rust app whose app.toml (a run-time file next to the binary) sets the address and port', async () => {
    const port = await freePort();
    const r = await home.cli(['deploy', copy('rust-config'), '-p', `${port}:8000`, '--name', 'rustconf', '--wait', '--timeout', '600', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ state: 'running', health: 'listening' });
    expect(await httpGet(`http://127.0.0.1:${port}/`, 60_000)).toBe('hello from app.toml (listening on 0.0.0.0:8000)\n');
    expect((await view(home, 'rustconf')).listen).toMatchObject({ health: 'listening', listeners: [{ address: '0.0.0.0', port: 8000 }] });
    expect(await logsMatching(home, 'rustconf', /listening on/)).toContain('rust-config listening on 0.0.0.0:8000 (from app.toml)');
    expect((await home.cli(['destroy', 'rustconf', '--wait'])).code).toBe(0);
  });

  it('through the control plane: deploy --wait, status --json and logs carry the same listener view and code', async () => {
    const server = new TestServer({ runner: 'engine', env: { UNIKCTL_LISTEN_TIMEOUT_MS: '240000' } });
    const remote = new TestHome(); // the CLI side: its own (empty) local state
    try {
      await server.start();
      Object.assign(remote.env, server.cliEnv());
      const port = await freePort();
      const r = await remote.cli(['deploy', copy('node-localhost', 'node-localhost-remote'), '-p', `${port}:3000`, '--name', 'rlo', '--wait', '--timeout', '600', '--json']);
      expect(r.code, `${r.stderr}\n${server.log}`).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({ state: 'running', health: 'localhost-only', code: 'E_LISTENING_LOCALHOST_ONLY' });
      expect((await view(remote, 'rlo')).listen).toMatchObject({
        health: 'localhost-only', ports: [3000], listeners: [{ address: '127.0.0.1', port: 3000 }], warning: { code: 'E_LISTENING_LOCALHOST_ONLY' },
      });
      expect(await logsMatching(remote, 'rlo', /unikctl: fix:/)).toContain('unikctl: warning E_LISTENING_LOCALHOST_ONLY');
      expect(await (await server.api('/v1/metrics')).text()).toContain('unikctld_deployment_listening{deployment="rlo",tenant=""} 0');
      expect((await remote.cli(['destroy', 'rlo', '--wait'])).code).toBe(0);
    } finally {
      // a failed assertion above must not leave the VM running: its supervisor is detached from the server
      await remote.cli(['destroy', 'rlo', '--wait']).catch(() => undefined);
      await server.stop();
      server.cleanup();
      await remote.cleanup();
    }
  });
});
