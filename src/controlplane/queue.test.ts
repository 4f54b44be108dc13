import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Client, DeploymentView, DeployRequest, DeployResult, DestroyResult, StatusResult } from '../engine/client.js';
import { UserError, type ErrorCode } from '../errors.js';
import type { LogEntry } from '../runtime/logstore.js';
import type { Deployment } from '../store/types.js';
import { newId } from '../util/ids.js';
import type { OperationKind } from '../store/types.js';
import { Journal } from './journal.js';
import type { QueuedOperation } from './operation-journal.js';
import { Queue } from './queue.js';
import type { Runner } from './operation-runner.js';
import { EngineRunner } from './runner.js';

let tmp: string;
let journal: Journal;
const queues: Queue[] = [];

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-queue-'));
  journal = new Journal(join(tmp, 'journal.db'));
});
afterEach(async () => {
  for (const q of queues.splice(0)) await q.stop();
  await journal.close();
  rmSync(tmp, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until<T>(f: () => Promise<T> | T, what: string, timeoutMs = 5000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function enqueue(kind: OperationKind, target: string, request: unknown = {}): Promise<QueuedOperation> {
  const { op } = await journal.enqueue({ id: newId('op'), kind, target, idempotencyKey: null, requestHash: kind, request, maxAttempts: 5, traceId: 't', createdAt: Date.now() });
  return op;
}
function queue(runner: Runner, o: { concurrency?: number; shortWorkers?: number; owner?: string } = {}): Queue {
  const q = new Queue(journal, runner, { concurrency: o.concurrency ?? 2, shortWorkers: o.shortWorkers ?? 1, owner: o.owner ?? 'w1', retry: { maxAttempts: 5, baseMs: 20, capMs: 100 }, pollMs: 20 });
  queues.push(q);
  return q;
}

/**
 * An in-memory node: each deploy call takes the next scripted outcome (a failure code, or `ok` → running) after
 * `buildMs`, like a supervisor that builds and boots. It counts deploys and destroys, so a test sees what really ran.
 */
class ScriptedNode implements Client {
  readonly deployments = new Map<string, Deployment>();
  deploys: DeployRequest[] = [];
  destroys = 0;
  constructor(private readonly script: Array<ErrorCode | 'ok'>, private readonly buildMs = 5) {}

  async deploy(req: DeployRequest): Promise<DeployResult> {
    const name = req.name ?? 'x';
    if (this.deployments.has(name)) throw new UserError('E_NAME_TAKEN', name);
    this.deploys.push(req);
    const outcome = this.script[this.deploys.length - 1] ?? 'ok';
    const now = Date.now();
    const d = {
      name, id: newId('dep'), state: 'building', exitCode: null, code: null, reason: null, boot: {}, createdAt: now, updatedAt: now, startedAt: null, endedAt: null,
    } as unknown as Deployment;
    this.deployments.set(name, d);
    setTimeout(() => {
      if (this.deployments.get(name) !== d) return;
      Object.assign(d, outcome === 'ok' ? { state: 'running' } : { state: 'failed', code: outcome, reason: `scripted ${outcome}` });
    }, this.buildMs);
    return { name, deploymentId: d.id, operationId: 'op', state: 'pending', source: 'package', resolvedFrom: 'test', candidates: [], reused: false };
  }

  async destroy(names: string[]): Promise<DestroyResult[]> {
    this.destroys += 1;
    for (const n of names) if (!this.deployments.delete(n)) throw new UserError('E_UNKNOWN_APP', n);
    return names.map((name) => ({ name, operationId: 'op', state: 'gone' }));
  }

  async status(): Promise<StatusResult> {
    return { deployments: [], operations: [] };
  }

  // eslint-disable-next-line require-yield
  async *logs(): AsyncIterable<LogEntry> {
    return;
  }

  async has(name: string): Promise<boolean> {
    return this.deployments.has(name);
  }

  async waitFor(name: string, cond: (d: DeploymentView | null) => boolean, timeoutMs: number): Promise<DeploymentView | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // the scripted records carry only what the runner reads (name, state, code, reason)
      const rec = this.deployments.get(name);
      const d = rec ? ({ ...rec } as unknown as DeploymentView) : null;
      if (cond(d) || Date.now() >= deadline) return d;
      await sleep(5);
    }
  }

  close(): void {}
}

const deployRequest = { target: '/pkg', ports: [], env: [], debug: false, labels: [], resolvedFrom: 'test' };

describe('retries (finding 6): user faults run once, platform failures really run again', () => {
  it('a build failure runs once and the operation fails with E_BUILD_FAILED, not retried', async () => {
    const node = new ScriptedNode(['E_BUILD_FAILED']);
    await queue(new EngineRunner(node, journal)).start();
    const op = await enqueue('deploy', 'app', deployRequest);
    const done = await until(async () => { const j = await journal.get(op.id); return j?.state === 'failed' ? j : null; }, 'the operation to fail');
    await sleep(150); // several backoff periods: nothing else may run
    expect(done).toMatchObject({ state: 'failed', attempts: 1, error: { code: 'E_BUILD_FAILED', message: 'scripted E_BUILD_FAILED' } });
    expect(node.deploys).toHaveLength(1);
    expect(node.destroys).toBe(0);
  });

  it('a QEMU failure is retried: the failed deployment is removed and the next attempt deploys (builds, boots) again', async () => {
    const node = new ScriptedNode(['E_QEMU_FAILED', 'E_GUEST_CRASHED', 'ok']);
    await queue(new EngineRunner(node, journal)).start();
    const op = await enqueue('deploy', 'app', deployRequest);
    const done = await until(async () => { const j = await journal.get(op.id); return j?.state === 'succeeded' ? j : null; }, 'the operation to succeed');
    expect(done.attempts).toBe(3);
    expect(node.deploys).toHaveLength(3);
    expect(new Set(node.deploys.map((d) => d.idempotencyKey)).size).toBe(3); // a fresh engine key per attempt, never a reuse
    expect(node.destroys).toBe(2);
    expect(node.deployments.get('app')?.state).toBe('running');
  });

  it('a platform failure that keeps failing ends after maxAttempts with its own code', async () => {
    const node = new ScriptedNode(Array(10).fill('E_QEMU_FAILED'));
    await queue(new EngineRunner(node, journal)).start();
    const op = await enqueue('deploy', 'app', deployRequest);
    const done = await until(async () => { const j = await journal.get(op.id); return j?.state === 'failed' ? j : null; }, 'the operation to fail');
    expect(done).toMatchObject({ attempts: 5, error: { code: 'E_QEMU_FAILED' } });
    expect(node.deploys).toHaveLength(5);
  });

  it('a replayed operation adopts its live deployment instead of deploying a second time', async () => {
    const node = new ScriptedNode(['ok'], 200);
    await node.deploy({ target: '/pkg', name: 'app', ports: [], env: [], debug: false, labels: [], cwd: '/' }); // the interrupted attempt's
    await queue(new EngineRunner(node, journal)).start();
    const op = await enqueue('deploy', 'app', deployRequest);
    await until(async () => (await journal.get(op.id))?.state === 'succeeded', 'the operation to succeed');
    expect(node.deploys).toHaveLength(1);
  });

  it('a destroy issued while a deploy waits for its retry cancels the deploy', async () => {
    const node = new ScriptedNode(['E_QEMU_FAILED', 'ok']);
    const q = new Queue(journal, new EngineRunner(node, journal), { concurrency: 1, shortWorkers: 0, owner: 'w1', retry: { maxAttempts: 5, baseMs: 300, capMs: 300 }, pollMs: 20 });
    queues.push(q);
    await q.start();
    const op = await enqueue('deploy', 'app', deployRequest);
    await until(async () => (await journal.get(op.id))?.error?.code === 'E_QEMU_FAILED', 'the first attempt to fail');
    await enqueue('destroy', 'app', { graceMs: 0 });
    const done = await until(async () => { const j = await journal.get(op.id); return j?.state === 'failed' ? j : null; }, 'the deploy to end', 5000);
    expect(done.error?.code).toBe('E_CANCELLED');
    expect(node.deploys).toHaveLength(1);
  });
});

/** A runner whose deploys block until released, and whose destroys are quick. */
class GatedRunner implements Runner {
  readonly ran: string[] = [];
  readonly running = new Set<string>();
  private gate!: () => void;
  private readonly opened = new Promise<void>((r) => { this.gate = r; });
  open(): void { this.gate(); }
  async holds(): Promise<boolean> { return false; }
  async run(op: QueuedOperation): Promise<unknown> {
    this.running.add(op.id);
    try {
      if (op.kind !== 'destroy') await this.opened;
      this.ran.push(op.id);
      return { ok: true };
    } finally {
      this.running.delete(op.id);
    }
  }
}

describe('lanes and shutdown (finding 5)', () => {
  it('a destroy finishes while two slow builds hold both workers', async () => {
    const runner = new GatedRunner();
    await queue(runner, { concurrency: 2 }).start();
    const builds = [await enqueue('deploy', 'a'), await enqueue('deploy', 'b'), await enqueue('deploy', 'c')];
    await until(() => runner.running.size === 2, 'two builds to hold the workers');
    const destroy = await enqueue('destroy', 'old');
    const t0 = Date.now();
    await until(async () => (await journal.get(destroy.id))?.state === 'succeeded', 'the destroy', 2000);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(runner.ran).toEqual([destroy.id]); // no build finished: the destroy did not wait for one
    runner.open();
    for (const b of builds) await until(async () => (await journal.get(b.id))?.state === 'succeeded', 'the builds');
  });

  it('the short lane runs only destroys: with no general worker free, builds wait and destroys do not', async () => {
    const runner = new GatedRunner();
    await queue(runner, { concurrency: 0, shortWorkers: 1 }).start();
    const build = await enqueue('deploy', 'a');
    const destroy = await enqueue('destroy', 'b');
    await until(async () => (await journal.get(destroy.id))?.state === 'succeeded', 'the destroy');
    await sleep(100);
    expect((await journal.get(build.id))?.state).toBe('queued');
  });

  it('stop() with a deadline releases the operations still running for replay: not lost, not duplicated, the attempt not counted', async () => {
    const runner = new GatedRunner();
    const q = queue(runner, { concurrency: 2 });
    await q.start();
    const a = await enqueue('deploy', 'a');
    const b = await enqueue('deploy', 'b');
    await until(() => runner.running.size === 2, 'both builds running');
    const t0 = Date.now();
    const { released } = await q.stop(200);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(released.sort()).toEqual([a.id, b.id].sort());
    for (const j of [a, b]) expect(await journal.get(j.id)).toMatchObject({ state: 'queued', attempts: 0, leaseOwner: null });
    // the old process's late results change nothing (it no longer holds the lease)
    runner.open();
    await sleep(50);
    for (const j of [a, b]) expect((await journal.get(j.id))?.state).toBe('queued');
    // the next process replays them, once each
    const next = new GatedRunner();
    next.open();
    await queue(next, { owner: 'w2' }).start();
    for (const j of [a, b]) await until(async () => (await journal.get(j.id))?.state === 'succeeded', 'the replay');
    expect(next.ran.sort()).toEqual([a.id, b.id].sort());
    expect((await journal.get(a.id))?.attempts).toBe(1);
  });
});
