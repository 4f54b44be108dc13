import Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_TOKEN, TestServer, writeFakePackage } from './cp-helpers.js';
import { compileFixture, TestHome } from './helpers.js';

interface JobRow { id: string; kind: string; target: string; state: string; attempts: number; error: string | null; lease_owner: string | null }

/**
 * Findings 5, 6 and 7 against a real unikctld building real unik.yaml projects: a build failure runs once and keeps
 * its code; a used idempotency key answers the real (failed) state; a destroy does not wait behind two slow builds
 * holding both workers; SIGTERM ends the daemon within its deadline and the in-flight builds are replayed, not
 * duplicated, after a restart.
 */
describe('control plane: retries, lanes and a bounded shutdown with real builds', () => {
  const server = new TestServer({ runner: 'engine', workers: 2, extra: ['--shutdown-timeout', '3'] });
  const home = new TestHome();
  const scratch = mkdtempSync(join(tmpdir(), 'unikctl-lanes-'));
  const project = (name: string, command: string): string => {
    const dir = join(scratch, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'unik.yaml'), `name: ${name}\nbuild:\n  command: ${JSON.stringify(command)}\nartifact:\n  path: out\n`);
    return dir;
  };
  const jobs = (): JobRow[] => {
    const db = new Database(join(server.data, 'journal.db'), { readonly: true });
    try { return db.prepare('SELECT id, kind, target, state, attempts, error, lease_owner FROM jobs ORDER BY seq').all() as JobRow[]; } finally { db.close(); }
  };
  const until = async <T>(f: () => Promise<T | null | undefined | false> | T | null | undefined | false, what: string, timeoutMs = 60_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await f();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${server.log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  beforeAll(async () => {
    await server.start();
    Object.assign(home.env, server.cliEnv());
  });
  afterAll(async () => {
    await home.cli(['destroy', 'slow-1', 'slow-2', '--wait']).catch(() => undefined);
    await server.stop();
    server.cleanup();
    await home.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('a build failure runs once and deploy --wait reports E_BUILD_FAILED; the used key then answers failed with the code', async () => {
    const dir = project('broken', 'echo broken-build-ran >&2; exit 3');
    const r = await home.cli(['deploy', dir, '--name', 'broken', '--idempotency-key', 'broken-1', '--wait', '--timeout', '120', '--json']);
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as { state: string; code: string; reason: string };
    expect(out).toMatchObject({ state: 'failed', code: 'E_BUILD_FAILED' });
    expect(out.reason).not.toMatch(/^E_/);
    // not retried: one attempt, and the build ran once
    await new Promise((res) => setTimeout(res, 1500)); // several --retry-base-ms (100 ms) periods
    const job = jobs().find((j) => j.target === 'broken');
    expect(job).toMatchObject({ state: 'failed', attempts: 1 });
    expect((JSON.parse(job?.error ?? '{}') as { code?: string }).code).toBe('E_BUILD_FAILED');
    // the build's output goes to the deployment's console log (build stream), once per run of the build
    const consoleLog = readFileSync(join(server.data, 'node', 'deployments', 'broken', 'console.log'), 'utf8');
    const lines = consoleLog.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { m: string }).m);
    expect(lines.filter((m) => m === 'broken-build-ran'), consoleLog).toHaveLength(1);

    // finding 7: the same key again is the same operation, with its real state — not 202 "pending"
    const again = await home.cli(['deploy', dir, '--name', 'broken', '--idempotency-key', 'broken-1', '--json']);
    expect(again.code, again.stderr).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ reused: true, state: 'failed', operationId: job?.id, error: { code: 'E_BUILD_FAILED' } });
    const human = await home.cli(['deploy', dir, '--name', 'broken', '--idempotency-key', 'broken-1']);
    expect(human.code).toBe(1);
    expect(human.stderr).toContain('E_BUILD_FAILED');
    expect(human.stderr).toContain('new --idempotency-key');
  });

  it('a destroy finishes while two slow builds hold both workers', async () => {
    for (const n of ['slow-1', 'slow-2']) {
      const r = await home.cli(['deploy', project(n, 'sleep 120'), '--name', n]);
      expect(r.code, r.stderr).toBe(0);
    }
    await until(async () => {
      const s = await home.status();
      return ['slow-1', 'slow-2'].every((n) => s.deployments.find((d) => d.name === n)?.state === 'building');
    }, 'both slow builds to run');
    expect(jobs().filter((j) => j.kind === 'deploy' && j.state === 'running')).toHaveLength(2);
    const t0 = Date.now();
    const r = await home.cli(['destroy', 'broken', '--wait']);
    const ms = Date.now() - t0;
    expect(r.code, r.stderr).toBe(0);
    expect(ms).toBeLessThan(15_000);
    expect(jobs().find((j) => j.kind === 'destroy' && j.target === 'broken')?.state).toBe('succeeded');
    const s = await home.status();
    expect(s.deployments.filter((d) => d.state === 'building').map((d) => d.name).sort()).toEqual(['slow-1', 'slow-2']);
    console.log(`destroy behind two running builds took ${ms} ms`);
  });

  it('SIGTERM ends the daemon within its deadline; after a restart the in-flight builds are replayed, not duplicated', async () => {
    const { code, ms } = await server.sigterm(8000);
    expect(code, server.log.slice(-2000)).toBe(0);
    expect(ms).toBeLessThan(6000); // --shutdown-timeout 3 (+ closing the stores)
    console.log(`SIGTERM → exit took ${ms} ms with two builds in flight`);
    // checkpointed: claimable again, the interrupted attempt not counted
    const left = jobs().filter((j) => j.target.startsWith('slow-'));
    expect(left.map((j) => [j.target, j.state, j.attempts, j.lease_owner])).toEqual([['slow-1', 'queued', 0, null], ['slow-2', 'queued', 0, null]]);

    await server.start();
    await until(() => jobs().filter((j) => j.target.startsWith('slow-')).every((j) => j.state === 'running' && j.attempts === 1), 'the replay');
    const s = await home.status();
    // the replayed jobs adopted their deployments (their builds go on): no second deployment
    expect(s.deployments.map((d) => d.name).filter((n) => n.startsWith('slow')).sort()).toEqual(['slow-1', 'slow-2']);
    expect(s.deployments.filter((d) => d.name.startsWith('slow')).every((d) => d.state === 'building')).toBe(true);
    const d = await home.cli(['destroy', 'slow-1', 'slow-2', '--wait']);
    expect(d.code, d.stderr).toBe(0);
    const ended = await until(() => { const j = jobs().filter((x) => x.kind === 'deploy' && x.target.startsWith('slow-')); return j.every((x) => x.state === 'failed') && j; }, 'the deploy jobs to end');
    expect(ended.map((j) => (JSON.parse(j.error ?? '{}') as { code?: string }).code)).toEqual(['E_CANCELLED', 'E_CANCELLED']);
  });
});

/**
 * The agents-mode case of finding 5: agents that no longer answer held a SIGTERM'd server for > 30 s. A "silent
 * agent" accepts connections and never answers; the deploy job hangs in its call, a status request hangs too.
 */
describe('control plane (agents mode): SIGTERM with an agent that never answers', () => {
  const server = new TestServer({ runner: 'engine', extra: ['--nodes', 'agents', '--node-token', NODE_TOKEN, '--shutdown-timeout', '2'] });
  const sockets: Socket[] = [];
  const silent = createServer((s) => { sockets.push(s); });
  afterAll(async () => {
    await server.stop();
    server.cleanup();
    for (const s of sockets) s.destroy();
    silent.close();
  });

  it('exits within the deadline and leaves the hung deploy claimable for replay', async () => {
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const agentPort = (silent.address() as AddressInfo).port;
    writeFakePackage(server.data, 'pkg');
    await server.start();
    // the silent "agent" joins with the join token (the server's --node-token) like a real one would
    const reg = await server.api('/v1/nodes/join', { token: NODE_TOKEN, json: { name: 'n1', address: `http://127.0.0.1:${agentPort}`, capacity: { cpus: 8, memoryMiB: 8192 } } });
    expect(reg.status, await reg.text()).toBe(201);
    const dep = await server.api('/v1/deployments', { json: { source: { package: 'pkg' }, name: 'stuck' } });
    expect(dep.status).toBe(202);
    const journal = join(server.data, 'journal.db');
    const job = (): { state: string; attempts: number; lease_owner: string | null } | undefined => {
      const db = new Database(journal, { readonly: true });
      try { return db.prepare("SELECT state, attempts, lease_owner FROM jobs WHERE target = 'stuck'").get() as { state: string; attempts: number; lease_owner: string | null } | undefined; } finally { db.close(); }
    };
    const deadline = Date.now() + 20_000;
    while (job()?.state !== 'running' || sockets.length === 0) {
      if (Date.now() > deadline) throw new Error(`the deploy never reached the agent: ${JSON.stringify(job())}\n${server.log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const hangingStatus = server.api('/v1/status').then((r) => r.status, () => 'cut');
    await new Promise((r) => setTimeout(r, 200));

    const { code, ms } = await server.sigterm(10_000);
    expect(code, server.log.slice(-2000)).toBe(0);
    expect(ms).toBeLessThan(5000);
    console.log(`agents mode, silent agent: SIGTERM → exit took ${ms} ms (status request: ${String(await hangingStatus)})`);
    expect(job()).toEqual({ state: 'queued', attempts: 0, lease_owner: null });
  });
});

/**
 * Finding 6 with a real VMM: QEMU fails on its first start (a wrapper on the server's PATH exits 1 once, then runs
 * the real QEMU). The failure is E_QEMU_FAILED (a platform fault), so the job is retried, and the retry really boots
 * again — it does not find the failed deployment through an idempotency key and give up.
 */
describe('control plane: a platform failure is retried and really runs again', () => {
  const wrapperDir = mkdtempSync(join(tmpdir(), 'unikctl-qemu-wrapper-'));
  const realQemu = join('/usr/bin', 'qemu-system-x86_64');
  writeFileSync(join(wrapperDir, 'qemu-system-x86_64'), [
    '#!/bin/sh',
    `echo start >> ${join(wrapperDir, 'starts')}`,
    `if [ ! -e ${join(wrapperDir, 'failed-once')} ]; then`,
    `  touch ${join(wrapperDir, 'failed-once')}`,
    '  echo "qemu-system-x86_64: simulated start failure" >&2',
    '  exit 1',
    'fi',
    `exec ${realQemu} "$@"`,
    '',
  ].join('\n'), { mode: 0o755 });
  const server = new TestServer({ runner: 'engine', env: { PATH: `${wrapperDir}:${process.env.PATH ?? ''}` } });
  const home = new TestHome();
  afterAll(async () => {
    await home.cli(['destroy', 'retried', '--wait']).catch(() => undefined);
    await server.stop();
    server.cleanup();
    await home.cleanup();
    rmSync(wrapperDir, { recursive: true, force: true });
  });

  it('QEMU failing once: the job retries, boots a second time and succeeds', async () => {
    await server.start();
    Object.assign(home.env, server.cliEnv());
    const probe = compileFixture('probe.c', join(wrapperDir, 'probe'), ['-static']);
    const r = await home.cli(['deploy', probe, '--name', 'retried', '-e', 'PROBE_MODE=sleep', '--wait', '--timeout', '240', '--json']);
    expect(r.code, `${r.stderr}\n${server.log.slice(-2000)}`).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ state: 'running', code: null });
    const starts = readFileSync(join(wrapperDir, 'starts'), 'utf8').trim().split('\n');
    expect(starts).toHaveLength(2); // the VMM really started again
    // --wait returns when the deployment runs; the operation ends at the runner's next look (≤ 100 ms later)
    const job = (): unknown => {
      const db = new Database(join(server.data, 'journal.db'), { readonly: true });
      try { return db.prepare("SELECT state, attempts FROM jobs WHERE target = 'retried' AND kind = 'deploy'").get(); } finally { db.close(); }
    };
    for (let i = 0; i < 50 && (job() as { state?: string } | undefined)?.state === 'running'; i++) await new Promise((res) => setTimeout(res, 100));
    expect(job()).toEqual({ state: 'succeeded', attempts: 2 });
    const metrics = await (await server.api('/v1/metrics')).text();
    expect(metrics).toMatch(/^unikctld_operation_retries_total\{kind="deploy",tenant=""\} 1$/m);
    expect((await home.cli(['logs', 'retried'])).stdout).toContain('probe: started with 1 args');
  });
});
