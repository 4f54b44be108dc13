import { isUserError } from '../errors.js';
import type { Job, JobError, JobStore } from './journal.js';

/** Executes one job. Must be idempotent per job id: a job interrupted by a crash runs again. */
export interface Runner {
  run(job: Job): Promise<unknown>;
}

export interface RetryPolicy { maxAttempts: number; baseMs: number; capMs: number; }
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, baseMs: 500, capMs: 30_000 };

/** Errors worth retrying: the unexpected ones and transient host trouble — never bad input. */
const RETRYABLE_CODES = new Set(['E_INTERNAL', 'E_STATE', 'E_QEMU_FAILED', 'E_TRANSIENT']);

export function isRetryable(e: unknown): boolean {
  return !isUserError(e) || RETRYABLE_CODES.has(e.code);
}

/** Exponential backoff with "equal jitter": half fixed, half random, capped. */
export function backoffMs(attempt: number, p: RetryPolicy, random = Math.random): number {
  const exp = Math.min(p.capMs, p.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}

export interface QueueEvents {
  finished?(job: Job, outcome: 'succeeded' | 'failed', durationMs: number, error?: JobError): void;
  retried?(job: Job, delayMs: number, error: JobError): void;
  log?(msg: string, fields: Record<string, unknown>): void;
}

/** Workers over the journal (CP-2): configurable concurrency, retries with backoff + jitter, replay on start. */
export class Queue {
  private running = false;
  private wake: (() => void) | null = null;
  private workers: Promise<void>[] = [];
  private readonly inflight = new Set<string>();

  constructor(
    private readonly journal: JobStore,
    private readonly runner: Runner,
    private readonly opts: { concurrency: number; owner: string; retry?: RetryPolicy; events?: QueueEvents; pollMs?: number },
  ) {}

  /** Replays what a previous process left running, then starts the workers. */
  async start(opts: { recover?: boolean } = {}): Promise<void> {
    if (this.running) return;
    this.running = true;
    if (opts.recover !== false) {
      const replayed = await this.journal.recover();
      if (replayed > 0) this.opts.events?.log?.('replaying jobs left running by a previous process', { count: replayed });
    }
    for (let i = 0; i < this.opts.concurrency; i++) this.workers.push(this.work(i));
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

  async stop(): Promise<void> {
    this.running = false;
    for (let i = 0; i < this.workers.length; i++) this.notify();
    await Promise.all(this.workers);
    this.workers = [];
  }

  get activeJobs(): number {
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

  private async work(_index: number): Promise<void> {
    const retry = this.opts.retry ?? DEFAULT_RETRY;
    while (this.running) {
      let job: Job | null;
      try {
        job = await this.journal.claim(this.opts.owner);
      } catch (e) {
        this.opts.events?.log?.('claiming a job failed; retrying', { error: String(e) });
        await this.idle();
        continue;
      }
      if (!job) {
        await this.idle();
        continue;
      }
      this.inflight.add(job.id);
      const started = Date.now();
      try {
        const result = await this.runner.run(job);
        await this.journal.finish(job.id, this.opts.owner, { result: result ?? null });
        this.opts.events?.finished?.(job, 'succeeded', Date.now() - started);
      } catch (e) {
        const error: JobError = isUserError(e) ? { code: e.code, message: e.message } : { code: 'E_INTERNAL', message: e instanceof Error ? e.message : String(e) };
        // no capacity is not a failure of the job: it waits (pending, with the reason) until a node fits
        const waiting = isUserError(e) && e.code === 'E_NO_CAPACITY';
        if (waiting || (isRetryable(e) && job.attempts < Math.min(job.maxAttempts, retry.maxAttempts))) {
          const delay = waiting ? Math.min(5000, backoffMs(job.attempts, retry)) : backoffMs(job.attempts, retry);
          await this.journal.retry(job.id, this.opts.owner, Date.now() + delay, error);
          this.opts.events?.retried?.(job, delay, error);
        } else {
          await this.journal.finish(job.id, this.opts.owner, { error });
          this.opts.events?.finished?.(job, 'failed', Date.now() - started, error);
        }
      } finally {
        this.inflight.delete(job.id);
      }
    }
  }
}
