import type { RestartPolicy, RestartRecord } from '../store/service-types.js';

/**
 * Restarts of a service's replicas (pure; the service controller applies them): whether an ended replica is
 * replaced, after what delay, and when a service is crash-looping.
 */

/** the delay before the first restart; it doubles with each recent restart */
export const RESTART_BASE_DELAY_MS = 1000;
/** the longest delay before a restart */
export const RESTART_MAX_DELAY_MS = 30_000;
/** restarts within this window are "recent": they raise the delay and count towards a crash loop */
export const RESTART_WINDOW_MS = 60_000;
/** this many restarts of a service's replicas within RESTART_WINDOW_MS make it crash-looping */
export const CRASH_LOOP_RESTARTS = 3;

/** The delay before the next restart: 1s·2^recentRestarts, at most 30s. */
export function restartDelayMs(recentRestarts: number): number {
  const n = Math.max(0, Math.floor(recentRestarts));
  // 2^5 s already passes the cap: no need to compute (or overflow) larger powers
  return n >= 5 ? RESTART_MAX_DELAY_MS : Math.min(RESTART_BASE_DELAY_MS * 2 ** n, RESTART_MAX_DELAY_MS);
}

/** The restarts within the window before `now` (optionally of one replica). */
export function recentRestarts(restarts: readonly RestartRecord[], now: number, replica?: string): number {
  return restarts.filter((r) => r.at > now - RESTART_WINDOW_MS && r.at <= now && (replica === undefined || r.replica === replica)).length;
}

/** Whether the service's replicas restarted CRASH_LOOP_RESTARTS times or more within RESTART_WINDOW_MS before `now`. */
export function crashLooping(restarts: readonly RestartRecord[], now: number): boolean {
  return recentRestarts(restarts, now) >= CRASH_LOOP_RESTARTS;
}

/** How a replica ended: `exited` with the app's exit code (null: unknown), or `failed` (crash, boot failure, failed check). */
export interface ReplicaEnd { state: 'exited' | 'failed'; exitCode: number | null; }

/** always: any end; never: none; on-failure: a failure or an exit that is not a clean 0 (an unknown code included). */
export function shouldRestart(policy: RestartPolicy, end: ReplicaEnd): boolean {
  switch (policy) {
    case 'always': return true;
    case 'never': return false;
    case 'on-failure': return end.state === 'failed' || end.exitCode !== 0;
  }
}
