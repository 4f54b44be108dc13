import { request } from 'node:http';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { CheckSpec } from '../store/service-types.js';
import { formatDuration } from '../util/duration.js';

/**
 * Health checks of a service's replicas (docs/services.md): one probe, and the verdict a replica's probes add up to.
 * The controller probes a replica through the loopback forward of its published port (`target`), so a probe only
 * ever opens a connection on this host.
 */

export interface ProbeResult {
  ok: boolean;
  /** what was seen: `connected`, `HTTP 200`, `HTTP 500`, `timeout after 1s`, `connection refused`, … */
  detail: string;
  /** how long the probe took */
  ms: number;
}

export interface ProbeTarget { address: string; port: number; }

const ERRNO_DETAIL: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'address not available',
};

function errorDetail(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (typeof err.code === 'string' && ERRNO_DETAIL[err.code]) return ERRNO_DETAIL[err.code] as string;
  if (err.message === 'socket hang up') return 'connection closed before an answer';
  return typeof err.code === 'string' ? err.code : String(err.message ?? e);
}

/**
 * One check of `target`: tcp — a connection opens within the timeout; http — `GET path` (Host `localhost:<guest
 * port>`, as a request made inside the guest would send; no keep-alive) answers 2xx or 3xx within the timeout.
 * Never rejects: a failure is `ok: false` with its detail; an aborted probe is `ok: false, detail: 'aborted'`.
 */
export function probe(check: CheckSpec, target: ProbeTarget, signal?: AbortSignal): Promise<ProbeResult> {
  const started = performance.now();
  return new Promise<ProbeResult>((resolve) => {
    let done = false;
    let cleanup = (): void => {};
    const finish = (ok: boolean, detail: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      cleanup();
      resolve({ ok, detail, ms: Math.round(performance.now() - started) });
    };
    const onAbort = (): void => finish(false, 'aborted');
    const timer = setTimeout(() => finish(false, `timeout after ${formatDuration(check.timeoutMs)}`), check.timeoutMs);
    if (signal?.aborted) {
      finish(false, 'aborted');
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });

    if (check.kind === 'tcp') {
      const socket = connect({ host: target.address, port: target.port });
      cleanup = () => socket.destroy();
      socket.once('connect', () => finish(true, 'connected'));
      socket.once('error', (e) => finish(false, errorDetail(e)));
      return;
    }
    const req = request({
      host: target.address,
      port: target.port,
      path: check.path ?? '/',
      method: 'GET',
      agent: false,
      headers: { host: `localhost:${check.port}`, connection: 'close', 'user-agent': 'unikctl-check' },
    });
    cleanup = () => req.destroy();
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      res.resume(); // the body is not read: the status is the answer
      finish(status >= 200 && status < 400, `HTTP ${status}`);
    });
    req.once('error', (e) => finish(false, errorDetail(e)));
    req.end();
  });
}

/** How long a VM may take to start its app before a replica's grace time counts from the VM's start instead. */
export const BOOT_ALLOWANCE_MS = 60_000;

/**
 * When a replica's grace time ends: it counts from the app's start in the guest (the init reports it, `appStartMs`
 * after the VM's start), so a slow boot (TCG, a loaded host) does not use it up. A VM that has not reported its
 * app's start gets BOOT_ALLOWANCE_MS on top, counted from the VM's start (a VM that never starts its app still fails).
 */
export function graceEndsAt(o: { vmStartedAt: number; appStartMs: number | null; graceMs: number }): number {
  return o.appStartMs !== null ? o.vmStartedAt + o.appStartMs + o.graceMs : o.vmStartedAt + BOOT_ALLOWANCE_MS + o.graceMs;
}

export type ReplicaHealth = 'starting' | 'healthy' | 'unhealthy';

/**
 * A replica's health from its probe results (pure: the caller feeds results and times).
 * - `starting`: no probe has passed yet and the failures do not count yet (within the grace time after the app
 *   started), or fewer than `failures` consecutive ones have failed since;
 * - `healthy`: the last probe passed — a pass makes the replica healthy at once, even within the grace time — or
 *   fewer than `failures` consecutive probes failed after a pass;
 * - `unhealthy`: `failures` consecutive probes failed (those in the grace time before the first pass do not count).
 * Grace shields only a replica that has not passed yet. A new `startedAt` (the app was restarted) starts over.
 */
export class HealthTracker {
  health: ReplicaHealth = 'starting';
  /** when the health last changed (the first feed's start time while starting) */
  since: number | null = null;
  lastDetail: string | null = null;
  lastAt: number | null = null;
  consecutiveFailures = 0;
  private passed = false;
  private startedAt: number | null = null;

  constructor(private readonly check: Pick<CheckSpec, 'graceMs' | 'failures'>) {}

  feed(result: Pick<ProbeResult, 'ok' | 'detail'>, at: number, startedAt: number): ReplicaHealth {
    if (this.startedAt !== startedAt) {
      this.startedAt = startedAt;
      this.health = 'starting';
      this.since = startedAt;
      this.passed = false;
      this.consecutiveFailures = 0;
      this.lastAt = null;
    }
    if (this.lastAt !== null && at < this.lastAt) return this.health; // a late answer of an older probe
    this.lastAt = at;
    this.lastDetail = result.detail;
    if (result.ok) {
      this.passed = true;
      this.consecutiveFailures = 0;
      return this.set('healthy', at);
    }
    if (!this.passed && at - startedAt < this.check.graceMs) return this.health;
    this.consecutiveFailures += 1;
    if (this.consecutiveFailures >= this.check.failures) return this.set('unhealthy', at);
    return this.health;
  }

  private set(health: ReplicaHealth, at: number): ReplicaHealth {
    if (this.health !== health) {
      this.health = health;
      this.since = at;
    }
    return health;
  }
}
