import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileFixture, ROOT, TestHome } from './helpers.js';

const C_HELLO = join(ROOT, 'examples', 'c-hello');

describe('exit codes, guest crashes, unik.yaml apps and bare binaries on real VMs', () => {
  const home = new TestHome();
  const bins = mkdtempSync(join(tmpdir(), 'unikctl-bins-'));
  const staticProbe = compileFixture('probe.c', join(bins, 'probe-static'), ['-static']);
  const dynamicProbe = compileFixture('probe.c', join(bins, 'probe-dynamic'), []);

  afterAll(async () => {
    await home.cleanup();
    expect(home.qemuProcesses()).toEqual([]);
  });

  it('a unik.yaml C app (universal pack) runs, logs stdout and stderr, sees a read-only root and no shell, exits 3', async () => {
    const r = await home.cli(['deploy', C_HELLO, '--name', 'c-three', '-e', 'EXIT_CODE=3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = await home.waitState('c-three', ['exited', 'failed']);
    expect(d.state).toBe('exited');
    expect(d.exitCode).toBe(3);
    expect(d.code).toBe('E_APP_EXITED'); // a typed field next to the exit code
    const logs = (await home.cli(['logs', 'c-three'])).stdout;
    expect(logs).toContain('c-hello: hello from C in a unikctl VM (argc=1)');
    expect(logs).toContain('c-hello: write to / failed: Read-only file system');
    expect(logs).toContain('c-hello: /bin/sh absent');
    expect(logs).toContain('c-hello: write to /tmp succeeded');
    expect(logs).toContain('c-hello: this line went to stderr');
    // logs outlive the VM until destroy
    const status = (await home.cli(['status', 'c-three'])).stdout;
    expect(status).toMatch(/c-three\s+exited\(3\)/);
  });

  it('the debug variant shows kernel messages in logs', async () => {
    const r = await home.cli(['deploy', C_HELLO, '--name', 'c-debug', '--debug']);
    expect(r.code, r.stderr).toBe(0);
    const d = await home.waitState('c-debug', ['exited', 'failed']);
    expect(d.exitCode).toBe(0);
    const logs = (await home.cli(['logs', 'c-debug'])).stdout;
    expect(logs).toMatch(/^\[\s*\d+\.\d+\] Linux version 6\.1/m);
    expect(logs).toContain('c-hello: hello from C');
    const s = await home.status('c-debug');
    expect(s.deployments[0]?.boot).toBeDefined();
  });

  it('a prebuilt static ELF binary deploys directly', async () => {
    const r = await home.cli(['deploy', staticProbe, '--name', 'static-bin', '-e', 'EXIT_CODE=0']);
    expect(r.code, r.stderr).toBe(0);
    const d = await home.waitState('static-bin', ['exited', 'failed']);
    expect([d.state, d.exitCode, d.code]).toEqual(['exited', 0, null]);
    expect((await home.cli(['logs', 'static-bin'])).stdout).toContain('probe: started with 1 args');
  });

  it('a dynamic ELF binary deploys with its shared-library closure', async () => {
    const r = await home.cli(['deploy', dynamicProbe, '--name', 'dynamic-bin', '-e', 'EXIT_CODE=7']);
    expect(r.code, r.stderr).toBe(0);
    const d = await home.waitState('dynamic-bin', ['exited', 'failed']);
    expect([d.state, d.exitCode]).toEqual(['exited', 7]);
    expect((await home.cli(['logs', 'dynamic-bin'])).stdout).toContain('probe: started with 1 args');
  });

  it('a program that crashes the guest ends as failed with a reason', async () => {
    const r = await home.cli(['deploy', staticProbe, '--name', 'crasher', '-e', 'PROBE_MODE=crash']);
    expect(r.code, r.stderr).toBe(0);
    const d = await home.waitState('crasher', ['exited', 'failed']);
    expect(d.state).toBe('failed');
    expect(d.reason).toMatch(/guest crash/);
    expect(d.code).toBe('E_GUEST_CRASHED');
    expect((await home.cli(['logs', 'crasher'])).stdout).toContain('probe: crashing the guest');
  });

  it('a VM whose QEMU is killed shows failed, never running', async () => {
    const r = await home.cli(['deploy', staticProbe, '--name', 'victim', '-e', 'PROBE_MODE=sleep']);
    expect(r.code, r.stderr).toBe(0);
    await home.waitState('victim', ['running']);
    const qemu = home.qemuProcesses().find((l) => l.includes('unikctl-victim'));
    expect(qemu).toBeDefined();
    process.kill(Number(qemu?.split(' ')[0]), 'SIGKILL');
    const d = await home.waitState('victim', ['failed', 'exited'], 30_000);
    expect(d.state).toBe('failed');
    expect(d.reason).toMatch(/SIGKILL/);
    expect(d.code).toBe('E_QEMU_FAILED');
  });

  it('a destroy during a build leaves nothing in the project, and the next build sweeps its work directory', async () => {
    const proj = mkdtempSync(join(tmpdir(), 'unikctl-slow-build-'));
    writeFileSync(join(proj, 'unik.yaml'), 'name: slow-build\nbuild:\n  command: sleep 120\nartifact:\n  path: hello\n');
    expect((await home.cli(['deploy', proj, '--name', 'slow-build', '--json'])).code).toBe(0);
    await home.waitState('slow-build', ['building']);
    const workRoot = join(home.dir, 'work');
    const deadline = Date.now() + 30_000;
    while ((!existsSync(workRoot) || readdirSync(workRoot).length === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(readdirSync(workRoot)).toHaveLength(1);
    const r = await home.cli(['destroy', 'slow-build', '--wait']);
    expect(r.code, r.stderr).toBe(0);
    // the killed build left no work directory in the project (it lives under $UNIKCTL_HOME/work); only the cache is there
    expect(readdirSync(join(proj, '.unikctl'))).toEqual(['cache']);
    // the next build removes the dead build's work directory
    const b = await home.cli(['build', C_HELLO]);
    expect(b.code, b.stderr).toBe(0);
    expect(readdirSync(workRoot)).toEqual([]);
    rmSync(proj, { recursive: true, force: true });
  });

  it('two concurrent builds of one project both succeed (the image is swapped atomically)', async () => {
    const proj = mkdtempSync(join(tmpdir(), 'unikctl-twin-build-'));
    cpSync(C_HELLO, proj, { recursive: true });
    const [a, b] = await Promise.all([home.cli(['build', proj]), home.cli(['build', proj])]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(readdirSync(join(proj, '.unikctl')).filter((f) => f.startsWith('image'))).toEqual(['image']);
    rmSync(proj, { recursive: true, force: true });
  });

  it('destroy takes several names at once and leaves no QEMU behind', async () => {
    const r = await home.cli(['destroy', 'c-three', 'c-debug', 'static-bin', 'dynamic-bin', 'crasher', 'victim', '--wait']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').map((l) => l.split(' ')[1])).toEqual(['gone', 'gone', 'gone', 'gone', 'gone', 'gone']);
    expect((await home.status()).deployments).toEqual([]);
    expect(home.qemuProcesses()).toEqual([]);
  });
});
