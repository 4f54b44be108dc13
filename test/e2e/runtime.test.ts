import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileFixture, ROOT, TestHome } from './helpers.js';

const BIN = join(ROOT, 'bin', 'unikctl.js');

describe('runtime guarantees on real VMs: follow, graceful stop, no orphans, accelerator choice', () => {
  const home = new TestHome();
  const probe = compileFixture('probe.c', join(mkdtempSync(join(tmpdir(), 'unikctl-rt-')), 'probe'), ['-static']);

  afterAll(async () => {
    await home.cleanup();
    expect(home.qemuProcesses()).toEqual([]);
  });

  it('logs --follow streams new output, sees the SIGTERM of a graceful destroy, and ends by itself', async () => {
    expect((await home.cli(['deploy', probe, '--name', 'ticker', '-e', 'PROBE_MODE=sleep'])).code).toBe(0);
    await home.waitState('ticker', ['running']);
    const follower = spawn(process.execPath, [BIN, 'logs', '--follow', 'ticker'], { env: home.env });
    let out = '';
    follower.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    const ended = new Promise<number | null>((r) => follower.on('exit', (code) => r(code)));
    const deadline = Date.now() + 30_000;
    while ((out.match(/probe: tick/g) ?? []).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect((out.match(/probe: tick/g) ?? []).length).toBeGreaterThanOrEqual(3);

    const d = await home.cli(['destroy', 'ticker', '--wait']);
    expect(d.code, d.stderr).toBe(0);
    expect(await Promise.race([ended, new Promise((r) => setTimeout(() => r('still running'), 15_000))])).toBe(0);
    expect(out).toContain('probe: got SIGTERM, exiting');
  });

  it('a crashed supervisor takes its QEMU with it and status says failed (RT-10); QEMU runs without huge pages', async () => {
    expect((await home.cli(['deploy', probe, '--name', 'orphan-check', '-e', 'PROBE_MODE=sleep'])).code).toBe(0);
    await home.waitState('orphan-check', ['running']);
    const qemuLine = home.qemuProcesses().find((l) => l.includes('unikctl-orphan-check'));
    expect(qemuLine).toBeDefined();
    // started through host/launch.c: the VM's memory is never backed by transparent huge pages
    expect(readFileSync(`/proc/${Number(qemuLine?.split(' ')[0])}/status`, 'utf8')).toMatch(/^THP_enabled:\s+0$/m);
    const sup = execFileSync('pgrep', ['-f', 'worker.js deploy orphan-check'], { encoding: 'utf8' }).trim().split('\n');
    expect(sup).toHaveLength(1);
    process.kill(Number(sup[0]), 'SIGKILL');
    const deadline = Date.now() + 10_000;
    while (home.qemuProcesses().some((l) => l.includes('unikctl-orphan-check')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(home.qemuProcesses().filter((l) => l.includes('unikctl-orphan-check'))).toEqual([]);
    const s = await home.status('orphan-check');
    expect(s.deployments[0]?.state).toBe('failed');
    expect(s.deployments[0]?.reason).toContain('supervisor');
    expect((await home.cli(['destroy', 'orphan-check', '--wait'])).code).toBe(0);
  });

  it('the launcher refuses to start a VM for a parent that is already gone', () => {
    // the supervisor died between fork and the death signal being armed: QEMU must not start as an orphan
    const r = spawnSync(join(ROOT, 'host', 'build', 'unikctl-launch'), ['1', 'true'], { encoding: 'utf8' });
    expect(r.status).toBe(125);
    const ok = spawnSync(join(ROOT, 'host', 'build', 'unikctl-launch'), [String(process.pid), 'sh', '-c', 'grep THP_enabled /proc/self/status'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/THP_enabled:\s+0/);
  });

  it('concurrent CLI invocations are safe: one idempotency key → one deployment; derived names stay unique', async () => {
    const same = await Promise.all(Array.from({ length: 6 }, () => home.cli(['deploy', probe, '--idempotency-key', 'key-1', '--json'])));
    for (const r of same) expect(r.code, r.stderr).toBe(0);
    const ops = new Set(same.map((r) => (JSON.parse(r.stdout) as { operationId: string }).operationId));
    expect(ops.size).toBe(1);
    const conflict = await home.cli(['deploy', probe, '--idempotency-key', 'key-1', '-e', 'X=1']);
    expect(conflict.stderr).toContain('E_IDEMPOTENCY_CONFLICT');

    const many = await Promise.all(Array.from({ length: 3 }, () => home.cli(['deploy', probe, '--json'])));
    const names = many.map((r) => (JSON.parse(r.stdout) as { name: string }).name).sort();
    expect(names).toEqual(['probe-2', 'probe-3', 'probe-4']);
    const all = [...names, 'probe'];
    for (const n of all) await home.waitState(n, ['exited', 'failed']);
    expect((await home.cli(['destroy', ...all, '--wait'])).code).toBe(0);
  });

  it('UNIKCTL_ACCEL=auto boots: KVM where it works, otherwise a recorded fall-back to TCG', async () => {
    const auto = new TestHome();
    auto.env.UNIKCTL_ACCEL = 'auto';
    auto.env.UNIKCTL_KVM_PROBE_TIMEOUT_MS = '8000';
    try {
      expect((await auto.cli(['deploy', probe, '--name', 'auto-accel'])).code).toBe(0);
      const d = await auto.waitState('auto-accel', ['exited', 'failed']);
      expect([d.state, d.exitCode]).toEqual(['exited', 0]);
      expect(['kvm', 'tcg']).toContain(d.accel);
      const logs = (await auto.cli(['logs', 'auto-accel'])).stdout;
      let kvmUsable = false;
      try { execFileSync('test', ['-r', '/dev/kvm', '-a', '-w', '/dev/kvm']); kvmUsable = true; } catch { /* no kvm */ }
      if (d.accel === 'tcg' && kvmUsable) expect(logs).toContain('KVM is unusable here');
      console.log(`auto accelerator on this host: ${d.accel}`);
    } finally {
      await auto.cleanup();
    }
  });
});
