import { errorSpec, isUserError } from '../errors.js';
import type { OperationError, OperationKind } from '../store/types.js';
import type { QueuedOperation, OperationJournal } from './operation-journal.js';
import type { Runner } from './operation-runner.js';

export interface RetryPolicy { maxAttempts: number; baseMs: number; capMs: number; }
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, baseMs: 500, capMs: 30_000 };

/** What a failed attempt recorded: a stable code; anything thrown that is not a UserError is E_INTERNAL. */
export function operationErrorOf(e: unknown): OperationError {
  return isUserError(e) ? { code: e.code, message: e.message } : { code: 'E_INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

/** The retry decision comes from the error table: platform failures are retried, the user's never are. */
export function isRetryable(e: unknown): boolean {
  return errorSpec(operationErrorOf(e).code).retryable;
}

/** Exponential backoff with "equal jitter": half fixed, half random, capped. */
export function backoffMs(attempt: number, p: RetryPolicy, random = Math.random): number {
  const exp = Math.min(p.capMs, p.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}

/**
 * Kinds the short lane runs. A deploy (and a move, which deploys elsewhere) builds and boots for up to 30
 * minutes; a destroy takes seconds. Short-lane workers claim only these, so a destroy never waits behind builds.
 */
export const SHORT_LANE: readonly OperationKind[] = ['destroy'];

export interface QueueEvents {
  finished?(op: QueuedOperation, outcome: 'succeeded' | 'failed', durationMs: number, error?: OperationError): void;
  retried?(op: QueuedOperation, delayMs: number, error: OperationError): void;
  log?(msg: string, fields: Record<string, unknown>): void;
}

export interface QueueOptions {
  /** workers that claim any operation (builds, boots, moves, destroys) */
  concurrency: number;
  /** extra workers that claim only SHORT_LANE operations (default 1) */
  shortWorkers?: number;
  owner: string;
  retry?: RetryPolicy;
  events?: QueueEvents;
  pollMs?: number;
}

/**
 * Workers over the journal (CP-2): configurable concurrency in two lanes, retries with backoff + jitter,
 * replay on start, and a bounded stop that hands unfinished operations back to the journal.
 */
export class Queue {
  private running = false;
  private wake: (() => void) | null = null;
  private workers: Promise<void>[] = [];
  private readonly inflight = new Set<string>();

  constructor(
    private readonly journal: OperationJournal,
    private readonly runner: Runner,
    private readonly opts: QueueOptions,
  ) {}

  /** Replays what a previous process left running, then starts the workers. */
  async start(opts: { recover?: boolean } = {}): Promise<void> {
    if (this.running) return;
    this.running = true;
    if (opts.recover !== false) {
      const replayed = await this.journal.recover();
      if (replayed > 0) this.opts.events?.log?.('replaying operations left running by a previous process', { count: replayed });
    }
    for (let i = 0; i < this.opts.concurrency; i++) this.workers.push(this.work(undefined));
    for (let i = 0; i < (this.opts.shortWorkers ?? 1); i++) this.workers.push(this.work(SHORT_LANE));
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Wakes idle workers (called after an enqueue). */
  notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /**
   * Stops claiming, lets running operations finish for up to `deadlineMs`, then releases the ones still running back to
   * the journal (queued, the interrupted attempt not counted) so the next leader or process replays them. Their
   * late results are dropped: finish/retry only apply for the lease holder, and the release ended the lease.
   */
  async stop(deadlineMs = Number.POSITIVE_INFINITY): Promise<{ released: string[] }> {
    this.running = false;
    for (let i = 0; i < this.workers.length; i++) this.notify();
    const all = Promise.all(this.workers);
    let expired = false;
    if (Number.isFinite(deadlineMs)) {
      let timer: NodeJS.Timeout | undefined;
      expired = await Promise.race([all.then(() => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(true), deadlineMs); })]);
      clearTimeout(timer);
    } else {
      await all;
    }
    const released: string[] = [];
    if (expired) {
      for (const id of [...this.inflight]) {
        if (await this.journal.release(id, this.opts.owner).catch(() => false)) released.push(id);
      }
      if (released.length > 0) this.opts.events?.log?.('released unfinished operations for replay', { operations: released });
    }
    this.workers = [];
    return { released };
  }

  get activeOperations(): number {
    return this.inflight.size;
  }

  private async idle(): Promise<void> {
    const due = await this.journal.nextDueAt().catch(() => null);
    const poll = this.opts.pollMs ?? 1000;
    const wait = due === null ? poll : Math.max(5, Math.min(poll, due - Date.now()));
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, wait);
      const prev = this.wake;
      this.wake = () => { clearTimeout(t); prev?.(); resolve(); };
    });
  }

  private async work(kinds: readonly OperationKind[] | undefined): Promise<void> {
    const retry = this.opts.retry ?? DEFAULT_RETRY;
    while (this.running) {
      let op: QueuedOperation | null;
      try {
        op = await this.journal.claim(this.opts.owner, Date.now(), kinds);
      } catch (e) {
        this.opts.events?.log?.('claiming an operation failed; retrying', { error: String(e) });
        await this.idle();
        continue;
      }
      if (!op) {
        await this.idle();
        continue;
      }
      this.inflight.add(op.id);
      const started = Date.now();
      try {
        const result = await this.runner.run(op);
        if (await this.journal.finish(op.id, this.opts.owner, { result: result ?? null })) this.opts.events?.finished?.(op, 'succeeded', Date.now() - started);
      } catch (e) {
        const error = operationErrorOf(e);
        // no capacity is not a failure of the operation: it waits (pending, with the reason) until a node fits
        const waiting = error.code === 'E_NO_CAPACITY';
        if (waiting || (isRetryable(e) && op.attempts < Math.min(op.maxAttempts, retry.maxAttempts))) {
          const delay = waiting ? Math.min(5000, backoffMs(op.attempts, retry)) : backoffMs(op.attempts, retry);
          if (await this.journal.retry(op.id, this.opts.owner, Date.now() + delay, error)) this.opts.events?.retried?.(op, delay, error);
        } else if (await this.journal.finish(op.id, this.opts.owner, { error, release: op.kind === 'deploy' && !(await this.runner.holds(op.target).catch(() => true)) })) {
          this.opts.events?.finished?.(op, 'failed', Date.now() - started, error);
        }
      } finally {
        this.inflight.delete(op.id);
      }
    }
  }
}
