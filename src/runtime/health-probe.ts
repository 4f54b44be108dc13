import { request } from 'node:http';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { CheckSpec, ReplicaHealth } from '../store/service-types.js';
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

/** The part of a replica's health its probes decide (draining and stopped are the controller's doing). */
export type ProbedHealth = Extract<ReplicaHealth, 'starting' | 'healthy' | 'unhealthy'>;

/** A replica's health as the service record keeps it: since when, and the last failing probe's answer. */
export interface HealthState { health: ProbedHealth; since: number; detail: string | null }

/**
 * A replica's health from its probe results (pure: the caller feeds results and times). The service controller
 * keeps one per replica; a restarted replica is a new replica (service-plan.ts), so a tracker sees one run.
 * - `starting`: no probe has passed yet and the failures do not count yet (before the grace time ends, see
 *   graceEndsAt), or fewer than `failures` consecutive ones have failed since;
 * - `healthy`: the last probe passed — a pass makes the replica healthy at once, even within the grace time — or
 *   fewer than `failures` consecutive probes failed after a pass;
 * - `unhealthy`: `failures` consecutive probes failed (those in the grace time before the first pass do not count).
 * `detail` is the last failing probe's answer ("HTTP 500", "connection refused"); a pass clears it.
 * Seeded from the stored record, a controller that was restarted carries on where the killed one was.
 */
export class HealthTracker implements HealthState {
  health: ProbedHealth;
  /** when the health last changed */
  since: number;
  detail: string | null;
  consecutiveFailures = 0;
  private passed: boolean;
  private lastAt: number | null = null;

  constructor(seed: HealthState) {
    this.health = seed.health;
    this.since = seed.since;
    this.detail = seed.detail;
    this.passed = seed.health === 'healthy';
  }

  /**
   * A probe's result; `at` is when it answered. `failures` consecutive failures make the replica unhealthy (the
   * service's current check: a redeploy may change it); before the first pass, failures count from `graceEndsAt` on.
   */
  feed(result: Pick<ProbeResult, 'ok' | 'detail'>, at: number, rule: { graceEndsAt: number; failures: number }): ProbedHealth {
    if (this.lastAt !== null && at < this.lastAt) return this.health; // a late answer of an older probe
    this.lastAt = at;
    if (result.ok) {
      this.passed = true;
      this.consecutiveFailures = 0;
      return this.set('healthy', at, null);
    }
    if (!this.passed && at < rule.graceEndsAt) return this.set(this.health, at, result.detail);
    this.consecutiveFailures += 1;
    return this.set(this.consecutiveFailures >= rule.failures ? 'unhealthy' : this.health, at, result.detail);
  }

  /** The health decided without a probe (a replica with no check: its grace time and where it listens). */
  set(health: ProbedHealth, at: number, detail: string | null): ProbedHealth {
    if (this.health !== health) {
      this.health = health;
      this.since = at;
    }
    this.detail = detail;
    return health;
  }
}
