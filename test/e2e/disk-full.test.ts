import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, httpGet, ROOT, TestHome } from './helpers.js';

const isRoot = process.getuid?.() === 0;

/** Fills the filesystem holding `dir` until the kernel says ENOSPC (large writes, then page-sized ones). */
function fill(file: string): void {
  const fd = openSync(file, 'a');
  try {
    for (const size of [1 << 20, 4096]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

const freeBytes = (dir: string): number => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Finding 8: a full disk must not lock the user out — status, logs and destroy work, deploy says the disk is full. */
describe.skipIf(!isRoot)('full disk under UNIKCTL_HOME', () => {
  const home = new TestHome();
  const filler = join(home.dir, 'filler');
  let port = 0;

  const integrity = (): string => {
    const db = new Database(join(home.dir, 'state.db'), { readonly: true });
    try {
      return (db.pragma('integrity_check', { simple: true }) as string);
    } finally {
      db.close();
    }
  };

  const expectDiskFullDeploy = async (): Promise<void> => {
    const r = await home.cli(['deploy', join(ROOT, 'examples', 'c-hello'), '--name', 'wont-fit']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('E_DISK_FULL');
    expect(r.stderr).toContain('is full');
    expect(r.stderr).toMatch(/free space .*unikctl destroy/);
    expect(r.stderr).not.toContain('disk I/O error');
    const j = await home.cli(['deploy', join(ROOT, 'examples', 'c-hello'), '--name', 'wont-fit', '--json']);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout)).toMatchObject({ error: { code: 'E_DISK_FULL' } });
  };

  beforeAll(() => {
    // a small filesystem of its own, so that filling it disturbs nobody else
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', home.dir]);
  });

  afterAll(async () => {
    rmSync(filler, { force: true });
    const s = await home.status().catch(() => null);
    const names = s?.deployments.map((d) => d.name) ?? [];
    if (names.length > 0) await home.cli(['destroy', ...names, '--wait', '--timeout', '1']);
    for (const line of home.qemuProcesses()) {
      try { process.kill(Number(line.split(' ')[0]), 'SIGKILL'); } catch { /* gone */ }
    }
    execFileSync('umount', ['-l', home.dir]);
    await home.cleanup();
  });

  it('a running VM keeps serving; status, logs and destroy work; deploy fails with E_DISK_FULL; the state stays intact', async () => {
    port = await freePort();
    const d = await home.cli(['deploy', join(ROOT, 'examples', 'go-http'), '--name', 'web', '-p', `${port}:8080`]);
    expect(d.code, d.stderr).toBe(0);
    await home.waitState('web', ['running'], 240_000);
    await httpGet(`http://127.0.0.1:${port}/before`);

    fill(filler);
    expect(freeBytes(home.dir)).toBeLessThan(8192);

    // the app logs every request: lines that do not fit are dropped, the supervisor (and so the VM) lives on
    for (let i = 0; i < 200; i++) expect(await httpGet(`http://127.0.0.1:${port}/on-a-full-disk-${'x'.repeat(64)}-${i}`)).toContain('hello');

    const st = await home.cli(['status']);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/web\s+running/);
    const sj = await home.status();
    expect(sj.deployments.map((x) => [x.name, x.state])).toEqual([['web', 'running']]);
    const logs = await home.cli(['logs', 'web']);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain('path=/before');

    await expectDiskFullDeploy();
    expect((await home.status()).deployments.map((x) => x.name)).toEqual(['web']);

    const before = freeBytes(home.dir);
    const gone = await home.cli(['destroy', 'web', '--wait']);
    expect(gone.code, gone.stderr).toBe(0);
    expect(gone.stdout).toContain('web gone');
    expect(freeBytes(home.dir)).toBeGreaterThan(before + (1 << 20)); // the image copy and logs are gone
    expect(home.qemuProcesses()).toEqual([]);
    const after = await home.status();
    expect(after.deployments).toEqual([]);
    expect(after.operations.find((o) => o.kind === 'destroy')?.state).toBe('succeeded');
    expect(integrity()).toBe('ok');
  }, 360_000);

  it('with the reserve already used up and no process holding the database: status and destroy still work', async () => {
    rmSync(filler, { force: true });
    const d = await home.cli(['deploy', join(ROOT, 'examples', 'c-hello'), '--name', 'hello', '--wait']);
    expect(d.code, d.stderr).toBe(0);
    await home.waitState('hello', ['exited']);
    // the supervisor has ended; the spare room the store keeps is gone (e.g. eaten by an app's logs)
    for (let i = 0; i < 50 && existsSync(join(home.dir, 'state.db-wal')); i++) await new Promise((r) => setTimeout(r, 100));
    rmSync(join(home.dir, 'state.db.reserve'), { force: true });
    fill(filler);
    expect(freeBytes(home.dir)).toBeLessThan(8192);

    const st = await home.cli(['status', '--json']);
    expect(st.code, st.stderr).toBe(0);
    expect((JSON.parse(st.stdout) as { deployments: Array<{ name: string; state: string }> }).deployments.map((x) => [x.name, x.state])).toEqual([['hello', 'exited']]);
    await expectDiskFullDeploy();

    const gone = await home.cli(['destroy', 'hello', '--wait']);
    expect(gone.code, gone.stderr).toBe(0);
    expect(gone.stdout).toContain('hello gone');
    expect((await home.status()).deployments).toEqual([]);
    expect(integrity()).toBe('ok');
  }, 240_000);
});
