import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MANIFEST_SCHEMA, type ImageManifest } from '../image/image.js';
import { homeLayout, type HomeLayout } from '../paths.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Deployment, Operation } from '../store/types.js';
import { readLogs } from './logstore.js';
import { consoleLogFile, Supervisor } from './supervisor.js';
import type { Accel, Vmm, VmmHandle, VmmStartOptions } from './vmm.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const RAW_KERNEL = Buffer.from('not really a PVH vmlinux, but gzip round-trips it');
/** A pid above the kernel's maximum (2^22): processRef() of it is null, and nothing can ever signal it. */
const FAKE_PID = 4_194_400;

function writeFakeImage(dir: string, over: Partial<ImageManifest> = {}): ImageManifest {
  mkdirSync(dir, { recursive: true });
  const gz = gzipSync(RAW_KERNEL);
  const rootfs = Buffer.from('erofs bytes');
  writeFileSync(join(dir, 'vmlinux.gz'), gz);
  writeFileSync(join(dir, 'rootfs.erofs'), rootfs);
  const manifest: ImageManifest = {
    schema: MANIFEST_SCHEMA, name: 'hello', pack: 'go', mode: 'release',
    kernel: { file: 'vmlinux.gz', encoding: 'gzip', sha256: sha(gz), size: gz.length, rawSha256: sha(RAW_KERNEL), rawSize: RAW_KERNEL.length, variant: 'release', configHash: 'cfg' },
    rootfs: { file: 'rootfs.erofs', sha256: sha(rootfs), size: rootfs.length, format: 'erofs' },
    run: { command: ['/app/hello', '--flag'], env: { A: '1', B: 'from-image' }, workdir: '/app', memoryMiB: 64, ports: [8080] },
    size: gz.length + rootfs.length,
    ...over,
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return manifest;
}

interface FakeHandle extends VmmHandle {
  console: PassThrough;
  consoleInput: PassThrough;
  stderr: PassThrough;
  exit(r: { code: number | null; signal: NodeJS.Signals | null }): void;
  /** QEMU's exit is seen first; `last` arrives through the console `afterMs` later, then the pipe ends */
  exitLate(r: { code: number | null; signal: NodeJS.Signals | null }, last: string, afterMs: number): void;
  input(): string;
}

class FakeVmm implements Vmm {
  readonly name = 'fake';
  readonly checks: Accel[] = [];
  readonly starts: VmmStartOptions[] = [];
  readonly handles: FakeHandle[] = [];
  kills = 0;
  private waiters: Array<(h: FakeHandle) => void> = [];

  check(accel: Accel): void {
    this.checks.push(accel);
  }

  start(o: VmmStartOptions): VmmHandle {
    this.starts.push(o);
    let resolveExit!: (r: { code: number | null; signal: NodeJS.Signals | null }) => void;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => { resolveExit = r; });
    const consoleInput = new PassThrough();
    let input = '';
    consoleInput.setEncoding('utf8').on('data', (c: string) => { input += c; });
    const console = new PassThrough();
    // like QEMU's stdout pipe: it ends when the process exits (exitLate: the pipe still delivers bytes afterwards)
    const end = (r: { code: number | null; signal: NodeJS.Signals | null }): void => { resolveExit(r); console.end(); };
    const child = { pid: FAKE_PID, kill: (sig?: NodeJS.Signals) => { end({ code: null, signal: sig ?? 'SIGTERM' }); return true; } } as unknown as ChildProcess;
    const h: FakeHandle = {
      pid: FAKE_PID, child, console, consoleInput, stderr: new PassThrough(), exited,
      exit: end, input: () => input,
      exitLate: (r, last, afterMs) => { resolveExit(r); setTimeout(() => { console.write(last); console.end(); }, afterMs); },
    };
    this.handles.push(h);
    for (const w of this.waiters.splice(0)) w(h);
    return h;
  }

  kill(handle: VmmHandle): void {
    this.kills += 1;
    handle.child.kill('SIGKILL');
  }

  /** The handle of the n-th start (0-based), once start() was called. */
  started(n = 0): Promise<FakeHandle> {
    const h = this.handles[n];
    if (h) return Promise.resolve(h);
    return new Promise((resolve) => this.waiters.push(() => { const x = this.handles[n]; if (x) resolve(x); }));
  }
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function cfgRecords(cmdline: string): string[] {
  const m = /(?:^| )unik\.cfg=([A-Za-z0-9+/=]+)(?: |$)/.exec(cmdline);
  if (!m?.[1]) throw new Error(`no unik.cfg in ${cmdline}`);
  return Buffer.from(m[1], 'base64').toString('utf8').split('\0').slice(0, -1);
}
function nonceOf(cmdline: string): string {
  const n = cfgRecords(cmdline).find((r) => r.startsWith('n'));
  if (!n) throw new Error('no nonce record');
  return n.slice(1);
}
const marker = (nonce: string, body: string): string => `\n\x1eUNIK:${nonce}:${body}\n`;

let tmp: string;
let layout: HomeLayout;
let store: SqliteStore;
let pkgDir: string;
let manifest: ImageManifest;
let op: Operation;
let vmm: FakeVmm;

function createDeployment(over: Partial<Deployment['spec']> = {}): Deployment {
  const now = Date.now();
  op = { id: 'op_test1', kind: 'deploy', target: 'hello', state: 'running', idempotencyKey: null, requestHash: null, error: null, createdAt: now, updatedAt: now, endedAt: null };
  const d: Deployment = {
    name: 'hello', id: 'dep_test1', state: 'pending', exitCode: null, code: null, reason: null,
    spec: {
      source: { kind: 'package', dir: pkgDir, ref: 'local/hello:latest' }, resolvedFrom: 'local package store local/hello:latest',
      ports: [{ hostAddress: '127.0.0.1', hostPort: 18080, guestPort: 8080, protocol: 'tcp' }], cpus: 2, env: { B: 'from-cli', C: 'x=y' },
      debug: false, labels: {}, ...over,
    },
    image: null, supervisor: null, vmm: null, accel: null, boot: {}, listen: null, createdAt: now, updatedAt: now, startedAt: null, endedAt: null,
  };
  store.createDeployment(d, op);
  return d;
}

function supervisor(env: NodeJS.ProcessEnv = {}): Supervisor {
  return new Supervisor({ layout, store, name: 'hello', operationId: op.id, vmm, env: { UNIKCTL_ACCEL: 'tcg', UNIKCTL_BOOT_TIMEOUT_MS: '10000', ...env } });
}

const dep = (): Deployment => {
  const d = store.getDeployment('hello');
  if (!d) throw new Error('deployment vanished');
  return d;
};
const appLines = (): string[] => readLogs(consoleLogFile(layout, 'hello')).filter((e) => e.s === 'app').map((e) => e.m);

/** Boots to the start marker; returns the handle and the nonce. */
async function bootToRunning(): Promise<{ h: FakeHandle; nonce: string }> {
  const h = await vmm.started();
  const nonce = nonceOf(vmm.starts[0]?.cmdline ?? '');
  expect(dep().state).toBe('starting');
  h.console.write(marker(nonce, 'start pid=2 uptime_ms=800'));
  await waitFor(() => dep().state === 'running', 'state running');
  return { h, nonce };
}

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-supervisor-'));
  layout = homeLayout({ UNIKCTL_HOME: join(tmp, 'home') });
  store = new SqliteStore(layout.db);
  pkgDir = join(tmp, 'pkg');
  manifest = writeFakeImage(pkgDir);
  vmm = new FakeVmm();
});
afterEach(() => {
  store.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('Supervisor', () => {
  it('boots, goes running on the start marker, captures app output and records the exit code', async () => {
    createDeployment();
    const run = supervisor().run();
    const { h, nonce } = await bootToRunning();

    expect(store.getOperation(op.id)?.state).toBe('succeeded');
    const running = dep();
    expect(running.startedAt).not.toBeNull();
    expect(running.accel).toBe('tcg');
    expect(running.boot.guestUptimeAtAppStartMs).toBe(800);
    expect(running.boot.vmmStartToAppStartMs).toBeGreaterThanOrEqual(0);
    expect(running.image).toMatchObject({ name: 'hello', pack: 'go', mode: 'release', ref: 'local/hello:latest', rootfsSha256: manifest.rootfs.sha256, dir: join(layout.deployments, 'hello', 'image') });

    h.console.write('[    0.512345] virtio_blk virtio0: [vda] 8 512-byte logical blocks\n');
    h.console.write('hello from the app\r\nsecond line\n');
    await waitFor(() => dep().boot.deployToFirstOutputMs !== undefined, 'first output metric');
    h.console.write(marker(nonce, 'exit code=3 uptime_ms=900'));
    h.exit({ code: 0, signal: null });
    await run;

    const d = dep();
    expect(d.state).toBe('exited');
    expect(d.exitCode).toBe(3);
    expect(d.reason).toBeNull();
    expect(d.endedAt).not.toBeNull();
    expect(store.getOperation(op.id)?.state).toBe('succeeded');
    expect(appLines()).toEqual(['hello from the app', 'second line']);
    const all = readLogs(consoleLogFile(layout, 'hello'));
    expect(all.filter((e) => e.s === 'kernel').map((e) => e.m)).toEqual(['[    0.512345] virtio_blk virtio0: [vda] 8 512-byte logical blocks']);
    expect(all.some((e) => e.m.includes('UNIK:'))).toBe(false);
  });

  it('starts the VMM with the image, the deployment spec and a fresh nonce in the command line', async () => {
    createDeployment();
    const run = supervisor().run();
    const h = await vmm.started();
    const o = vmm.starts[0] as VmmStartOptions;
    expect(vmm.checks).toEqual(['tcg']);
    expect(o).toMatchObject({
      name: 'hello', accel: 'tcg', memoryMiB: 64, cpus: 2,
      kernel: join(layout.cache, 'vmlinux', sha(RAW_KERNEL)), rootfs: join(layout.deployments, 'hello', 'image', 'rootfs.erofs'),
      ports: [{ hostAddress: '127.0.0.1', hostPort: 18080, guestPort: 8080, protocol: 'tcp' }],
    });
    expect(readFileSync(o.kernel)).toEqual(RAW_KERNEL); // the kernel was unpacked from vmlinux.gz
    expect(readFileSync(o.rootfs, 'utf8')).toBe('erofs bytes');
    const recs = cfgRecords(o.cmdline);
    expect(recs.filter((r) => r.startsWith('a'))).toEqual(['a/app/hello', 'a--flag']);
    // PORT: the published guest port (the Heroku/Render/Fly convention)
    expect(recs.filter((r) => r.startsWith('e'))).toEqual(['eA=1', 'eB=from-cli', 'eC=x=y', 'ePORT=8080']);
    expect(recs).toEqual(expect.arrayContaining(['w/app', 'hhello', 'p8080']));
    expect(recs.some((r) => r.startsWith('d'))).toBe(false);
    expect(nonceOf(o.cmdline)).toMatch(/^[0-9a-f]{16}$/);
    expect(o.cmdline.split(' ')).toEqual(expect.arrayContaining(['ro', 'root=/dev/vda', 'quiet']));
    h.exit({ code: 0, signal: null });
    await run;
  });

  it('sets PORT from the first published port, keeps a PORT from -e, and expands a Procfile command from the final env', async () => {
    manifest = writeFakeImage(pkgDir, { run: { command: ['/app/hello', '--bind=0.0.0.0:${PORT}', '${GREETING:-hi}', '$$5'], expand: true, env: { A: '1' }, workdir: '/app', memoryMiB: 64, ports: [9999] } });
    createDeployment({ ports: [{ hostAddress: '127.0.0.1', hostPort: 18080, guestPort: 8080, protocol: 'tcp' }, { hostAddress: '127.0.0.1', hostPort: 18081, guestPort: 8081, protocol: 'tcp' }], env: {} });
    const run = supervisor().run();
    const h = await vmm.started();
    const recs = cfgRecords(vmm.starts[0]?.cmdline ?? '');
    expect(recs.filter((r) => r.startsWith('a'))).toEqual(['a/app/hello', 'a--bind=0.0.0.0:8080', 'ahi', 'a$5']);
    expect(recs.filter((r) => r.startsWith('e'))).toEqual(['eA=1', 'ePORT=8080']);
    h.exit({ code: 0, signal: null });
    await run;
  });

  it('PORT from -e wins over the published port, and the image\'s only declared port applies when nothing is published', async () => {
    manifest = writeFakeImage(pkgDir, { run: { command: ['/app/hello', '${PORT}'], expand: true, env: {}, workdir: '/app', memoryMiB: 64, ports: [5000] } });
    createDeployment({ env: { PORT: '3000' } });
    let run = supervisor().run();
    let h = await vmm.started(0);
    expect(cfgRecords(vmm.starts[0]?.cmdline ?? '').filter((r) => /^[ae]/.test(r))).toEqual(['a/app/hello', 'a3000', 'ePORT=3000']);
    h.exit({ code: 0, signal: null });
    await run;

    store.close();
    rmSync(layout.home, { recursive: true, force: true });
    store = new SqliteStore(layout.db);
    createDeployment({ ports: [], env: {} });
    run = supervisor().run();
    h = await vmm.started(1);
    expect(cfgRecords(vmm.starts[1]?.cmdline ?? '').filter((r) => /^[ae]/.test(r))).toEqual(['a/app/hello', 'a5000', 'ePORT=5000']);
    h.exit({ code: 0, signal: null });
    await run;
  });

  it('a debug deployment boots the guest in debug mode', async () => {
    createDeployment({ debug: true });
    const run = supervisor().run();
    const h = await vmm.started();
    const cmdline = vmm.starts[0]?.cmdline ?? '';
    expect(cmdline.split(' ')).toContain('loglevel=7');
    expect(cmdline.split(' ')).not.toContain('quiet');
    expect(cfgRecords(cmdline)).toContain('d1');
    h.exit({ code: 0, signal: null });
    await run;
  });

  it('an app killed by a signal is failed with the signal named', async () => {
    createDeployment();
    const run = supervisor().run();
    const { h, nonce } = await bootToRunning();
    h.console.write(marker(nonce, 'exit signal=11 uptime_ms=900'));
    h.exit({ code: 0, signal: null });
    await run;
    const d = dep();
    expect(d.state).toBe('failed');
    expect(d.exitCode).toBeNull();
    expect(d.reason).toBe('the app was killed by signal 11 (SIGSEGV)');
    expect(store.getOperation(op.id)?.state).toBe('succeeded'); // the deploy itself did succeed
  });

  it('an exit report still in the console pipe when QEMU\'s exit is seen is read: the app exited, no guest crash', async () => {
    // seen in CI with two e2e files at once: c-hello exited 0, but its report came 20+ ms after QEMU's exit
    createDeployment();
    const run = supervisor().run();
    const { h, nonce } = await bootToRunning();
    h.exitLate({ code: 0, signal: null }, `last line\n${marker(nonce, 'exit code=0 uptime_ms=900')}`, 300);
    await run;
    const d = dep();
    expect([d.state, d.exitCode, d.code]).toEqual(['exited', 0, null]);
    expect(appLines()).toEqual(['last line']);
  });

  it('QEMU ending after the start without an exit marker is a guest crash', async () => {
    createDeployment();
    const run = supervisor().run();
    const { h } = await bootToRunning();
    h.console.write('partial output\n');
    h.exit({ code: 0, signal: null });
    await run;
    const d = dep();
    expect(d.state).toBe('failed');
    expect(d.reason).toContain('guest crash');
    expect(appLines()).toEqual(['partial output']);
  });

  it('a kernel panic after the start is reported as a guest kernel crash', async () => {
    createDeployment();
    const run = supervisor().run();
    const { h } = await bootToRunning();
    h.console.write('[    1.000000] Kernel panic - not syncing: Attempted to kill init!\n');
    h.exit({ code: 0, signal: null });
    await run;
    expect(dep()).toMatchObject({ state: 'failed', reason: 'guest kernel crashed: Kernel panic - not syncing: Attempted to kill init!' });
  });

  it('QEMU failing before the start fails the deployment and the deploy operation with its stderr', async () => {
    createDeployment();
    const run = supervisor().run();
    const h = await vmm.started();
    h.stderr.write('qemu-system-x86_64: -kernel: could not load kernel\n');
    await new Promise((r) => setTimeout(r, 10));
    h.exit({ code: 1, signal: null });
    await run;
    const d = dep();
    expect(d.state).toBe('failed');
    expect(d.reason).toBe('QEMU exited (code 1): qemu-system-x86_64: -kernel: could not load kernel');
    expect(store.getOperation(op.id)).toMatchObject({ state: 'failed', error: { code: 'E_QEMU_FAILED' } });
  });

  it('a guest init error before the start is reported', async () => {
    createDeployment();
    const run = supervisor().run();
    const h = await vmm.started();
    const nonce = nonceOf(vmm.starts[0]?.cmdline ?? '');
    h.console.write(marker(nonce, 'error exec /app/hello: No such file or directory'));
    h.exit({ code: 0, signal: null });
    await run;
    expect(dep()).toMatchObject({ state: 'failed', reason: 'guest init: exec /app/hello: No such file or directory' });
    expect(readLogs(consoleLogFile(layout, 'hello')).filter((e) => e.s === 'init').map((e) => e.m)).toContain('unik-init: exec /app/hello: No such file or directory');
    expect(store.getOperation(op.id)?.state).toBe('failed');
  });

  it('no start within UNIKCTL_BOOT_TIMEOUT_MS kills the VM and fails with E_BOOT_TIMEOUT; forged markers are app text', async () => {
    createDeployment();
    const t0 = Date.now();
    const run = supervisor({ UNIKCTL_BOOT_TIMEOUT_MS: '300', UNIKCTL_ACCEL: 'tcg' }).run();
    const h = await vmm.started();
    h.console.write('\x1eUNIK:0000000000000000:start pid=2 uptime_ms=1\n'); // wrong nonce: must not count
    await run;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(vmm.kills).toBe(1);
    const d = dep();
    expect(d.state).toBe('failed');
    expect(d.code).toBe('E_BOOT_TIMEOUT');
    expect(d.reason).toMatch(/^the app did not start within 300 ms/);
    expect(d.startedAt).toBeNull();
    expect(store.getOperation(op.id)?.state).toBe('failed');
    expect(appLines()).toEqual(['\x1eUNIK:0000000000000000:start pid=2 uptime_ms=1']);
  });

  it('a boot timeout is recorded on the deploy operation with code E_BOOT_TIMEOUT', async () => {
    createDeployment();
    const run = supervisor({ UNIKCTL_BOOT_TIMEOUT_MS: '100' }).run();
    await vmm.started();
    await run;
    expect(store.getOperation(op.id)?.error?.code).toBe('E_BOOT_TIMEOUT');
  });

  it('stop() asks the guest init to stop through the console and leaves the record to destroy', async () => {
    createDeployment();
    const sup = supervisor();
    const run = sup.run();
    const { h, nonce } = await bootToRunning();
    expect(store.transition('hello', ['running'], 'destroying')).not.toBeNull(); // what destroy does first
    const stopped = sup.stop(5000);
    await waitFor(() => h.input().length > 0, 'the stop command');
    expect(h.input()).toBe(`\x1eUNIK:${nonce}:stop\n`);
    h.console.write(marker(nonce, 'exit code=143 uptime_ms=1000'));
    h.exit({ code: 0, signal: null });
    await stopped;
    await run;
    expect(vmm.kills).toBe(0);
    expect(dep()).toMatchObject({ state: 'destroying', exitCode: null });
  });

  it('stop() kills the VM when the guest ignores the stop command for graceMs', async () => {
    createDeployment();
    const sup = supervisor();
    const run = sup.run();
    await bootToRunning();
    const t0 = Date.now();
    await sup.stop(150);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(vmm.kills).toBe(1);
    await run;
    await sup.stop(150); // a second stop is a no-op
    expect(vmm.kills).toBe(1);
  });

  it('a corrupted package fails with E_PACKAGE_INVALID without starting a VM', async () => {
    writeFileSync(join(pkgDir, 'rootfs.erofs'), 'tampered');
    createDeployment();
    await supervisor().run();
    expect(vmm.starts).toHaveLength(0);
    expect(dep().state).toBe('failed');
    expect(dep().code).toBe('E_PACKAGE_INVALID');
    expect(dep().reason).not.toMatch(/^E_/); // the code is a field, not a prefix of the text
    expect(store.getOperation(op.id)).toMatchObject({ state: 'failed', error: { code: 'E_PACKAGE_INVALID' } });
  });

  it('a kernel that does not unpack to its rawSha256 fails with E_PACKAGE_INVALID', async () => {
    writeFakeImage(pkgDir, { kernel: { ...manifest.kernel, rawSha256: sha('something else') } });
    createDeployment();
    await supervisor().run();
    expect(vmm.starts).toHaveLength(0);
    expect(dep()).toMatchObject({ state: 'failed', code: 'E_PACKAGE_INVALID' });
    expect(dep().reason).toMatch(/does not unpack/);
  });

  it('an invalid UNIKCTL_ACCEL fails the deployment with E_INVALID_ARGUMENT', async () => {
    createDeployment();
    await supervisor({ UNIKCTL_ACCEL: 'xen' }).run();
    expect(vmm.starts).toHaveLength(0);
    expect(dep()).toMatchObject({ code: 'E_INVALID_ARGUMENT', reason: expect.stringMatching(/^UNIKCTL_ACCEL=xen/) as unknown });
    expect(store.getOperation(op.id)?.error?.code).toBe('E_INVALID_ARGUMENT');
  });

  it('an environment too large for the kernel command line fails with E_CMDLINE_TOO_LONG', async () => {
    createDeployment({ env: { BIG: 'x'.repeat(3000) } });
    await supervisor().run();
    expect(vmm.starts).toHaveLength(0);
    expect(dep().state).toBe('failed');
    expect(store.getOperation(op.id)?.error?.code).toBe('E_CMDLINE_TOO_LONG');
  });
  describe('records a typed code for each failure class (never a prefix of the reason)', () => {
    /** Boots (to the start marker when `start`), lets `act` end the VM, returns the record and the deploy operation. */
    async function outcome(start: boolean, act: (h: FakeHandle, nonce: string) => void | Promise<void>, env: NodeJS.ProcessEnv = {}): Promise<{ d: Deployment; op: Operation | null }> {
      createDeployment();
      const run = supervisor(env).run();
      const h = start ? (await bootToRunning()).h : await vmm.started();
      await act(h, nonceOf(vmm.starts[0]?.cmdline ?? ''));
      await run;
      return { d: dep(), op: store.getOperation(op.id) };
    }
    const exit0 = (h: FakeHandle): void => h.exit({ code: 0, signal: null });

    it('app exits non-zero: exited with its exit code and E_APP_EXITED; the deploy operation succeeded', async () => {
      const { d, op: o } = await outcome(true, (h, nonce) => { h.console.write(marker(nonce, 'exit code=7 uptime_ms=5')); exit0(h); });
      expect(d).toMatchObject({ state: 'exited', exitCode: 7, code: 'E_APP_EXITED', reason: null });
      expect(o?.state).toBe('succeeded');
    });
    it('app exits 0: exited, no code', async () => {
      const { d } = await outcome(true, (h, nonce) => { h.console.write(marker(nonce, 'exit code=0 uptime_ms=5')); exit0(h); });
      expect(d).toMatchObject({ state: 'exited', exitCode: 0, code: null });
    });
    it('app killed by a signal: E_APP_CRASHED', async () => {
      const { d } = await outcome(true, (h, nonce) => { h.console.write(marker(nonce, 'exit signal=9 uptime_ms=5')); exit0(h); });
      expect(d).toMatchObject({ state: 'failed', code: 'E_APP_CRASHED', reason: 'the app was killed by signal 9 (SIGKILL)' });
    });
    it('guest reset after the start: E_GUEST_CRASHED', async () => {
      const { d } = await outcome(true, exit0);
      expect(d).toMatchObject({ state: 'failed', code: 'E_GUEST_CRASHED' });
    });
    it('guest kernel panic: E_GUEST_CRASHED', async () => {
      const { d } = await outcome(true, (h) => { h.console.write('[    1.0] Kernel panic - not syncing: VFS\n'); exit0(h); });
      expect(d).toMatchObject({ state: 'failed', code: 'E_GUEST_CRASHED' });
      expect(d.reason).toContain('Kernel panic');
    });
    it('QEMU fails to start: E_QEMU_FAILED on the record and the operation', async () => {
      const { d, op: o } = await outcome(false, (h) => h.exit({ code: 1, signal: null }));
      expect(d).toMatchObject({ state: 'failed', code: 'E_QEMU_FAILED' });
      expect(o).toMatchObject({ state: 'failed', error: { code: 'E_QEMU_FAILED' } });
    });
    it('boot timeout: E_BOOT_TIMEOUT', async () => {
      const { d, op: o } = await outcome(false, () => undefined, { UNIKCTL_BOOT_TIMEOUT_MS: '50' });
      expect(d).toMatchObject({ state: 'failed', code: 'E_BOOT_TIMEOUT' });
      expect(o?.error?.code).toBe('E_BOOT_TIMEOUT');
    });
    it('guest init cannot start the app: E_APP_START_FAILED', async () => {
      const { d } = await outcome(false, (h, nonce) => { h.console.write(marker(nonce, 'error exec /app/x: Permission denied')); exit0(h); });
      expect(d).toMatchObject({ state: 'failed', code: 'E_APP_START_FAILED' });
    });
    it.each([
      ['E_UNIKYAML_INVALID', 'unik.yaml', 'name: proj\nbuild: 3\n'],
      ['E_NO_PACK', 'README', 'no pack matches this\n'],
    ])('a build that fails keeps the build\'s own code (%s)', async (code, file, content) => {
      const project = join(tmp, 'proj');
      mkdirSync(project);
      writeFileSync(join(project, file), content);
      createDeployment({ source: { kind: 'project', dir: project } });
      await supervisor().run();
      expect(vmm.starts).toHaveLength(0);
      expect(dep()).toMatchObject({ state: 'failed', code });
      expect(dep().reason).not.toMatch(/^E_/);
      expect(store.getOperation(op.id)?.error?.code).toBe(code);
    });
  });

  describe('the listener check (guest init `listen` reports against the published guest ports)', () => {
    const initLines = (): string[] => readLogs(consoleLogFile(layout, 'hello')).filter((e) => e.s === 'init').map((e) => e.m);

    it('a loopback-only listener is localhost-only at once, with unikctl\'s warning and fix in the log; a wildcard one then makes it listening', async () => {
      createDeployment();
      const run = supervisor().run();
      const { h, nonce } = await bootToRunning();
      expect(dep().listen).toMatchObject({ health: 'checking', ports: [8080], listeners: null, warning: null });
      h.console.write(marker(nonce, 'listen addrs= uptime_ms=801'));
      await waitFor(() => dep().listen?.listeners !== null, 'first report');
      expect(dep().listen?.health).toBe('checking');
      h.console.write('app: serving on 127.0.0.1:8080\n');
      h.console.write(marker(nonce, 'listen addrs=127.0.0.1:8080 uptime_ms=900'));
      await waitFor(() => dep().listen?.health === 'localhost-only', 'localhost-only');
      expect(dep().state).toBe('running'); // RT-3's state stays: the VM and the app are alive
      expect(dep().listen?.warning).toMatchObject({ code: 'E_LISTENING_LOCALHOST_ONLY' });
      expect(dep().listen?.listeners).toEqual([{ address: '127.0.0.1', port: 8080 }]);
      expect(initLines()).toEqual([
        expect.stringMatching(/^unikctl: warning E_LISTENING_LOCALHOST_ONLY: the app listens on 127\.0\.0\.1:8080 only/),
        expect.stringMatching(/^unikctl: fix: listen on ":" \+ os\.Getenv\("PORT"\)/), // the image's pack is go
      ]);
      expect(appLines()).toEqual(['app: serving on 127.0.0.1:8080']);

      h.console.write(marker(nonce, 'listen addrs=0.0.0.0:8080,127.0.0.1:8080 uptime_ms=1000'));
      await waitFor(() => dep().listen?.health === 'listening', 'listening');
      expect(dep().listen?.warning).toBeNull();
      expect(initLines().at(-1)).toBe('unikctl: the app now listens on 0.0.0.0:8080, 127.0.0.1:8080: published guest port 8080 reachable');
      expect(store.listEvents('hello', 20).filter((e) => e.type === 'listen').map((e) => e.message)).toEqual(['checking', 'localhost-only: E_LISTENING_LOCALHOST_ONLY', 'listening']);
      h.console.write(marker(nonce, 'exit code=0 uptime_ms=2000'));
      h.exit({ code: 0, signal: null });
      await run;
    });

    it('nothing on the published port by UNIKCTL_LISTEN_TIMEOUT_MS: not-listening with E_NOT_LISTENING, naming what the app listens on', async () => {
      createDeployment();
      const run = supervisor({ UNIKCTL_LISTEN_TIMEOUT_MS: '150' }).run();
      const { h, nonce } = await bootToRunning();
      h.console.write(marker(nonce, 'listen addrs=0.0.0.0:3000 uptime_ms=801'));
      await waitFor(() => dep().listen?.health === 'not-listening', 'not-listening');
      expect(dep().listen?.warning).toMatchObject({ code: 'E_NOT_LISTENING' });
      expect(dep().listen?.warning?.message).toContain('nothing listens on guest port 8080');
      expect(dep().listen?.warning?.message).toContain('the app listens on 0.0.0.0:3000');
      expect(initLines()[1]).toContain('deploy -p HOST:3000');
      h.console.write(marker(nonce, 'exit code=0 uptime_ms=2000'));
      h.exit({ code: 0, signal: null });
      await run;
    });

    it('an init that never reports (an image built before the check) is unknown past the deadline, not a false warning', async () => {
      createDeployment();
      const run = supervisor({ UNIKCTL_LISTEN_TIMEOUT_MS: '100' }).run();
      const { h } = await bootToRunning();
      await waitFor(() => dep().listen?.health === 'unknown', 'unknown');
      expect(dep().listen?.warning).toBeNull();
      expect(initLines()).toEqual([expect.stringContaining('rebuild the image to check its ports')]);
      h.exit({ code: 0, signal: null });
      await run;
    });

    it('no published port: no-ports, and no deadline', async () => {
      createDeployment({ ports: [] });
      const run = supervisor({ UNIKCTL_LISTEN_TIMEOUT_MS: '50' }).run();
      const { h, nonce } = await bootToRunning();
      h.console.write(marker(nonce, 'listen addrs=127.0.0.1:6379 uptime_ms=801'));
      await waitFor(() => dep().listen?.listeners?.length === 1, 'report');
      await new Promise((r) => setTimeout(r, 150));
      expect(dep().listen).toMatchObject({ health: 'no-ports', warning: null, listeners: [{ address: '127.0.0.1', port: 6379 }] });
      expect(initLines()).toEqual([]);
      h.exit({ code: 0, signal: null });
      await run;
    });
  });
});
