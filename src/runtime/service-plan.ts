import type { ErrorCode } from '../errors.js';
import type { DeploymentState } from '../store/types.js';
import type { ReplicaHealth, RestartPolicy, RolloutPolicy, RolloutState, Service, ServiceVersion } from '../store/service-types.js';

/**
 * The service controller's decisions as one pure function (docs/services.md): from the service record and what its
 * replicas are now, what to create, drain and replace, and how the rollout moves. The controller applies the
 * actions and journals the returned record; running it again on the same facts gives the same actions, which is
 * what makes a controller killed mid-rollout resume where it was.
 *
 * The bounds a rollout keeps at every moment (rolling): replicas in rotation ≥ desired − max-unavailable, replicas
 * whose VM exists ≤ desired + max-surge. A replica leaves rotation (drain) before its VM stops, and a draining VM
 * still counts as existing until it is gone.
 */

export interface ReplicaSnapshot {
  name: string;
  version: number;
  /** the n of `<app>.<n>`: the newest replicas go first when there are too many */
  number: number;
  state: DeploymentState;
  /** its VM process still runs (a destroying or draining replica counts as existing while it does) */
  vmAlive: boolean;
  health: ReplicaHealth;
  /** since when it has been healthy (null: it is not) */
  healthySince: number | null;
  exitCode: number | null;
  code: ErrorCode | null;
  reason: string | null;
  detail: string | null;
}

export type PlanAction =
  | { kind: 'create'; version: number }
  /** leave rotation, wait for its connections, then stop its VM and remove it */
  | { kind: 'drain'; replica: string; why: string }
  /** an ended replica: remove its record (a replacement comes from `create` when the count asks for it) */
  | { kind: 'remove'; replica: string };

export interface PlanRules {
  /** the backoff before the n-th recent restart's replacement (src/runtime/restart.ts) */
  restartDelayMs(recentRestarts: number): number;
  /** whether a replica that ended this way is replaced */
  shouldRestart(policy: RestartPolicy, end: { state: 'exited' | 'failed'; exitCode: number | null }): boolean;
  /** restarts counted for the backoff: those within this window */
  restartWindowMs: number;
}

export interface Plan { service: Service; actions: PlanAction[]; events: string[]; }

const RESTARTS_KEPT = 50;

const isEnded = (r: ReplicaSnapshot): boolean => r.state === 'exited' || r.state === 'failed';
const isDraining = (r: ReplicaSnapshot): boolean => r.health === 'draining' || r.state === 'destroying';
const isLive = (r: ReplicaSnapshot): boolean => !isEnded(r) && !isDraining(r);
const exists = (r: ReplicaSnapshot): boolean => isLive(r) || (isDraining(r) && r.vmAlive);
const isHealthy = (r: ReplicaSnapshot): boolean => isLive(r) && r.health === 'healthy';

export function plan(input: Service, replicas: ReplicaSnapshot[], now: number, rules: PlanRules): Plan {
  const s: Service = structuredClone(input);
  const actions: PlanAction[] = [];
  const events: string[] = [];
  const N = s.policy.replicas;
  const pol = s.policy.rollout;
  const drained = new Set<string>();
  const removed = new Set<string>();
  const created = new Map<number, number>();

  const of = (v: number): ReplicaSnapshot[] => replicas.filter((r) => r.version === v && !removed.has(r.name) && !drained.has(r.name));
  const live = (v: number): ReplicaSnapshot[] => of(v).filter(isLive);
  const kept = (v: number): ReplicaSnapshot[] => of(v).filter(isEnded); // ended and not replaced (restart: never…)
  const occupied = (v: number): number => live(v).length + kept(v).length + (created.get(v) ?? 0);
  const existing = (): number => replicas.filter((r) => !removed.has(r.name) && (drained.has(r.name) ? r.vmAlive || isLive(r) : exists(r))).length
    + [...created.values()].reduce((a, b) => a + b, 0);
  const ready = (v: number, minMs: number): number => live(v).filter((r) => isHealthy(r) && r.healthySince !== null && now - r.healthySince >= minMs).length;
  const version = (v: number): ServiceVersion | undefined => s.versions.find((x) => x.version === v);
  const create = (v: number): void => {
    created.set(v, (created.get(v) ?? 0) + 1);
    actions.push({ kind: 'create', version: v });
  };
  const drain = (r: ReplicaSnapshot, why: string): void => {
    drained.add(r.name);
    actions.push({ kind: 'drain', replica: r.name, why });
  };
  /** creation waits out the backoff after the service's recent restarts */
  const backoffOver = (): boolean => {
    const recent = s.restarts.filter((x) => now - x.at <= rules.restartWindowMs);
    const last = recent.at(-1);
    return !last || now >= last.at + rules.restartDelayMs(recent.length - 1);
  };
  const recordRestart = (r: ReplicaSnapshot, code: ErrorCode | null, reason: string | null): void => {
    s.restarts = [...s.restarts, { at: now, replica: r.name, code, exitCode: r.exitCode, reason }].slice(-RESTARTS_KEPT);
  };

  const rollout = s.rollout;
  const inRollout = rollout !== null && (rollout.phase === 'canary' || rollout.phase === 'progressing' || rollout.phase === 'reverting');
  const newV = !rollout ? null : rollout.phase === 'reverting' ? rollout.from : rollout.to;
  const oldV = !rollout ? null : rollout.phase === 'reverting' ? rollout.to : rollout.from;

  if (s.desired === 'destroy') {
    for (const r of replicas) {
      if (isEnded(r)) actions.push({ kind: 'remove', replica: r.name });
      else if (isLive(r)) drain(r, 'the app is destroyed');
    }
    return { service: s, actions, events };
  }

  // 1. a rollout whose new version fails: the deadline, an ended or an unhealthy new replica
  if (rollout && (rollout.phase === 'canary' || rollout.phase === 'progressing')) {
    const bad = of(rollout.to).find((r) => isEnded(r) || (isLive(r) && r.health === 'unhealthy'));
    let failure: { code: ErrorCode; reason: string } | null = null;
    if (bad && isEnded(bad)) {
      failure = {
        code: bad.code ?? 'E_APP_EXITED',
        reason: bad.state === 'exited' ? `replica ${bad.name} of v${rollout.to} exited with code ${bad.exitCode ?? '?'}` : `replica ${bad.name} of v${rollout.to} failed: ${bad.reason ?? bad.code ?? 'unknown'}`,
      };
    } else if (bad) {
      failure = { code: 'E_CHECK_FAILED', reason: `replica ${bad.name} of v${rollout.to} failed its health check: ${bad.detail ?? 'no detail'}` };
    } else if (now > rollout.startedAt + pol.healthyDeadlineMs) {
      failure = { code: 'E_ROLLOUT_FAILED', reason: `v${rollout.to} was not healthy within the healthy deadline (${Math.round(pol.healthyDeadlineMs / 1000)}s)` };
    }
    if (failure) {
      const v = version(rollout.to);
      if (v) Object.assign(v, { state: 'failed', code: failure.code, reason: failure.reason });
      const revert = pol.autoRevert && rollout.from !== null;
      s.rollout = { ...rollout, phase: revert ? 'reverting' : 'failed', code: failure.code, reason: failure.reason, updatedAt: now };
      events.push(`rollout v${rollout.from ?? '-'} → v${rollout.to} failed: ${failure.reason}${revert ? `; reverting to v${rollout.from}` : ''}`);
      return plan(s, replicas, now, rules); // again, in the new phase
    }
  }

  // 2. ended replicas: replaced by the restart policy, kept otherwise (they show their end in status)
  for (const r of replicas.filter(isEnded)) {
    // replaced only when of the version the service converges to; an old or a failed version's replica just goes
    const wanted = inRollout ? r.version === newV : r.version === (s.current ?? rollout?.to);
    if (!wanted) {
      removed.add(r.name);
      actions.push({ kind: 'remove', replica: r.name });
    } else if (rules.shouldRestart(s.policy.restart, { state: r.state as 'exited' | 'failed', exitCode: r.exitCode })) {
      removed.add(r.name);
      actions.push({ kind: 'remove', replica: r.name });
      recordRestart(r, r.code ?? (r.exitCode !== null && r.exitCode !== 0 ? 'E_APP_EXITED' : null), r.state === 'exited' ? `exited with code ${r.exitCode ?? '?'}` : r.reason);
      events.push(`replica ${r.name} ${r.state === 'exited' ? `exited with code ${r.exitCode ?? '?'}` : `failed: ${r.reason ?? r.code ?? ''}`}; replaced (restart: ${s.policy.restart})`);
    }
  }
  // an unhealthy replica of the serving version is replaced too (out of rotation already), unless restart: never
  if (!inRollout && s.policy.restart !== 'never') {
    for (const r of replicas.filter((x) => isLive(x) && x.health === 'unhealthy')) {
      drain(r, `failed its health check: ${r.detail ?? ''}`);
      recordRestart(r, 'E_CHECK_FAILED', `failed its health check: ${r.detail ?? ''}`);
      events.push(`replica ${r.name} failed its health check (${r.detail ?? ''}); replaced`);
    }
  }

  const byNewestFirst = (a: ReplicaSnapshot, b: ReplicaSnapshot): number => {
    const rank = (r: ReplicaSnapshot): number => (isHealthy(r) ? 1 : 0);
    return rank(a) - rank(b) || b.number - a.number;
  };

  if (!inRollout || newV === null) {
    // 3. steady state: the serving version at the desired count; nothing of any other version (unless a rollout
    // failed without auto-revert: then both stay as they are, for the user to decide)
    const target = s.current ?? rollout?.to ?? null;
    if (target === null) return { service: s, actions, events };
    if (rollout?.phase !== 'failed') {
      for (const r of replicas.filter((x) => x.version !== target && isLive(x) && !drained.has(x.name))) drain(r, `v${r.version} is not the serving version`);
    }
    const extra = live(target).sort(byNewestFirst);
    while (occupied(target) > N && extra.length > 0) {
      const r = extra.shift();
      if (r) drain(r, `scaled to ${N}`);
    }
    while (occupied(target) < N && backoffOver()) create(target);
    return { service: s, actions, events };
  }

  // 4. a rollout step: from oldV (may be null: the first version) to newV
  const strategy = rollout?.phase === 'reverting' ? 'rolling' : pol.strategy;
  const minHealthy = strategy === 'immediate' ? 0 : pol.minHealthyMs;
  const surge = rollout?.phase === 'reverting' ? Math.max(pol.maxSurge, 1) : pol.maxSurge;
  const unavailable = pol.maxUnavailable;
  const cur = rollout as RolloutState;

  if (cur.phase === 'canary') {
    while (occupied(newV) < pol.canary) create(newV);
    if (ready(newV, minHealthy) >= pol.canary) {
      s.rollout = { ...cur, phase: 'progressing', updatedAt: now };
      events.push(`canary of v${newV} healthy for ${Math.round(minHealthy / 1000)}s: promoted`);
    }
    return { service: s, actions, events };
  }

  if (strategy === 'immediate') {
    while (occupied(newV) < N) create(newV);
    if (oldV !== null) for (const r of live(oldV)) drain(r, `replaced by v${newV} (immediate)`);
  } else {
    // new replicas while the surge allows (a reverting rollout restores the old version the same way)
    while (occupied(newV) < N && existing() < N + surge && (cur.phase !== 'reverting' || backoffOver())) create(newV);
    if (oldV !== null) {
      // reverting: the failed version's replicas out of rotation go at once — they serve nobody, and they hold the
      // surge the restored version needs (after an immediate rollout they are all of them: the revert never ended)
      if (cur.phase === 'reverting') for (const r of live(oldV).filter((x) => !isHealthy(x))) drain(r, `v${oldV} is reverted`);
      // old replicas leave while the replicas in rotation stay ≥ N − max-unavailable
      for (const r of live(oldV).sort(byNewestFirst)) {
        const healthyAfter = live(oldV).filter(isHealthy).length - (isHealthy(r) ? 1 : 0) + ready(newV, minHealthy);
        const liveAfter = live(oldV).length - 1 + occupied(newV);
        if (healthyAfter >= N - unavailable && liveAfter >= N - unavailable) {
          drain(r, cur.phase === 'reverting' ? `v${oldV} is reverted` : `replaced by v${newV}`);
        }
      }
    }
  }

  const oldLeft = oldV === null ? 0 : replicas.filter((r) => r.version === oldV && !removed.has(r.name) && (drained.has(r.name) ? r.vmAlive : exists(r))).length;
  if (oldLeft === 0 && ready(newV, minHealthy) >= N) {
    const done = cur.phase === 'reverting' ? 'reverted' : 'succeeded';
    s.rollout = { ...cur, phase: done, updatedAt: now };
    if (done === 'succeeded') {
      for (const v of s.versions) if (v.state === 'active' && v.version !== newV) v.state = 'retired';
      const nv = version(newV);
      if (nv) nv.state = 'active';
      s.current = newV;
      events.push(`rollout to v${newV} succeeded: ${N} healthy replica${N === 1 ? '' : 's'}`);
    } else {
      const bad = version(cur.to);
      if (bad) bad.state = 'reverted';
      events.push(`rolled back to v${newV}: ${cur.reason ?? ''}`);
    }
  }
  return { service: s, actions, events };
}

/**
 * How many VMs a service may have at once under plan() above (a tenant's quota reserves it, src/controlplane/tenants.ts):
 * - rolling: new replicas start while replicas whose VM exists < replicas + max-surge; a reverting rollout surges by
 *   at least 1, and an unhealthy replica is replaced while its VM drains (replicas + 1) → replicas + max(surge, 1);
 * - canary: the canary replicas start next to all the old ones, then it goes on as rolling → replicas + max(canary, surge, 1);
 * - immediate: every new replica starts while the old ones drain (their VMs exist until stopped) → 2 × replicas,
 *   or the rolling bound of a revert when that is larger.
 */
export function serviceWorstCaseVms(p: { replicas: number; rollout: Pick<RolloutPolicy, 'strategy' | 'maxSurge' | 'canary'> }): number {
  const n = p.replicas;
  const surge = Math.max(p.rollout.maxSurge, 1);
  if (p.rollout.strategy === 'canary') return n + Math.max(p.rollout.canary, surge);
  if (p.rollout.strategy === 'immediate') return Math.max(2 * n, n + surge);
  return n + surge;
}
