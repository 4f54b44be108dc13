import { describe, expect, it } from 'vitest';
import type { RolloutPolicy, Service, ServiceVersion } from '../store/service-types.js';
import type { DeploymentSpec } from '../store/types.js';
import { plan, serviceWorstCaseVms, type PlanRules, type ReplicaSnapshot } from './service-plan.js';

const rules: PlanRules = {
  restartDelayMs: (n) => Math.min(1000 * 2 ** n, 30_000),
  shouldRestart: (p, e) => p === 'always' || (p === 'on-failure' && (e.state === 'failed' || e.exitCode !== 0)),
  restartWindowMs: 60_000,
};

const spec = {} as DeploymentSpec;
const ver = (version: number): ServiceVersion => ({ version, spec, specHash: `h${version}`, state: 'rolling-out', code: null, reason: null, createdAt: 0 });

function service(o: { replicas: number; rollout?: Partial<RolloutPolicy>; restart?: Service['policy']['restart'] }): Service {
  return {
    name: 'web', id: 'svc', desired: 'run', ports: [], health: {}, traffic: {}, restarts: [], nextReplica: 1, controller: null, front: null,
    policy: {
      replicas: o.replicas, check: null, restart: o.restart ?? 'on-failure',
      rollout: { strategy: 'rolling', maxSurge: 1, maxUnavailable: 0, canary: 1, minHealthyMs: 0, healthyDeadlineMs: 60_000, autoRevert: true, ...o.rollout },
    },
    versions: [ver(1)], current: null,
    rollout: { from: null, to: 1, strategy: 'rolling', phase: 'progressing', startedAt: 0, updatedAt: 0, operationId: 'op1', code: null, reason: null },
    createdAt: 0, updatedAt: 0, rev: 0,
  };
}

/**
 * A fake world: a created replica is healthy one tick later (or unhealthy, or exits, per its version's behaviour);
 * a drained one is gone one tick later. Each tick checks the rollout bounds.
 */
class World {
  replicas: ReplicaSnapshot[] = [];
  now = 1000;
  next = 1;
  samples: Array<{ healthy: number; existing: number }> = [];
  constructor(public svc: Service, private readonly behaviour: (v: number) => 'ok' | 'unhealthy' | 'exits' = () => 'ok') {}

  tick(): void {
    this.now += 500;
    // the world moves: starting → healthy/unhealthy/exited; draining → gone
    this.replicas = this.replicas.filter((r) => r.health !== 'draining');
    for (const r of this.replicas) {
      if (r.health !== 'starting') continue;
      const b = this.behaviour(r.version);
      if (b === 'ok') Object.assign(r, { state: 'running', health: 'healthy', healthySince: this.now });
      else if (b === 'unhealthy') Object.assign(r, { state: 'running', health: 'unhealthy', detail: 'HTTP 500' });
      else Object.assign(r, { state: 'exited', exitCode: 1, health: 'stopped', vmAlive: false });
    }
    const p = plan(this.svc, this.replicas, this.now, rules);
    this.svc = p.service;
    for (const a of p.actions) {
      if (a.kind === 'create') {
        this.replicas.push({ name: `web.${this.next}`, number: this.next++, version: a.version, state: 'starting', vmAlive: true, health: 'starting', healthySince: null, exitCode: null, code: null, reason: null, detail: null });
      } else if (a.kind === 'drain') {
        const r = this.replicas.find((x) => x.name === a.replica);
        if (r) r.health = 'draining';
      } else {
        this.replicas = this.replicas.filter((x) => x.name !== a.replica);
      }
    }
    this.samples.push({
      healthy: this.replicas.filter((r) => r.health === 'healthy').length,
      existing: this.replicas.filter((r) => r.vmAlive && r.state !== 'exited').length,
    });
  }

  run(until: () => boolean, max = 200): void {
    for (let i = 0; i < max && !until(); i++) this.tick();
  }

  deploy(to: number, strategy: RolloutPolicy['strategy'] = 'rolling'): void {
    this.svc.versions.push(ver(to));
    this.svc.rollout = { from: this.svc.current, to, strategy, phase: strategy === 'canary' ? 'canary' : 'progressing', startedAt: this.now, updatedAt: this.now, operationId: `op${to}`, code: null, reason: null };
    this.svc.policy.rollout.strategy = strategy;
    this.samples = [];
  }

  versionsRunning(): number[] {
    return this.replicas.filter((r) => r.health === 'healthy').map((r) => r.version).sort();
  }
}

const settled = (w: World) => (): boolean => w.svc.rollout !== null && ['succeeded', 'failed', 'reverted'].includes(w.svc.rollout.phase);

describe('service plan', () => {
  it('the first version starts its replicas and becomes current', () => {
    const w = new World(service({ replicas: 3 }));
    w.run(settled(w));
    expect(w.svc.rollout?.phase).toBe('succeeded');
    expect(w.svc.current).toBe(1);
    expect(w.versionsRunning()).toEqual([1, 1, 1]);
  });

  for (const [surge, unavailable] of [[1, 0], [0, 1], [2, 1], [1, 1]] as const) {
    it(`rolling (max-surge ${surge}, max-unavailable ${unavailable}) replaces every replica within the bounds`, () => {
      const w = new World(service({ replicas: 3, rollout: { maxSurge: surge, maxUnavailable: unavailable } }));
      w.run(settled(w));
      w.deploy(2);
      w.run(settled(w));
      expect(w.svc.rollout?.phase).toBe('succeeded');
      expect(w.svc.current).toBe(2);
      expect(w.versionsRunning()).toEqual([2, 2, 2]);
      for (const x of w.samples) {
        expect(x.healthy).toBeGreaterThanOrEqual(3 - unavailable);
        expect(x.existing).toBeLessThanOrEqual(3 + surge);
      }
      expect(w.svc.versions.find((v) => v.version === 1)?.state).toBe('retired');
    });
  }

  it('a version that fails its check is reverted and the old replicas are never below the bound', () => {
    const w = new World(service({ replicas: 3 }), (v) => (v === 2 ? 'unhealthy' : 'ok'));
    w.run(settled(w));
    w.deploy(2);
    w.run(settled(w));
    expect(w.svc.rollout?.phase).toBe('reverted');
    expect(w.svc.rollout?.code).toBe('E_CHECK_FAILED');
    expect(w.svc.current).toBe(1);
    expect(w.replicas.map((r) => r.version)).toEqual([1, 1, 1]);
    for (const x of w.samples) expect(x.healthy).toBeGreaterThanOrEqual(3);
    expect(w.svc.versions.find((v) => v.version === 2)?.state).toBe('reverted');
  });

  it('without auto-revert a failed rollout stops where it is', () => {
    const w = new World(service({ replicas: 2, rollout: { autoRevert: false } }), (v) => (v === 2 ? 'exits' : 'ok'));
    w.run(settled(w));
    w.deploy(2);
    w.run(settled(w));
    expect(w.svc.rollout?.phase).toBe('failed');
    expect(w.svc.rollout?.code).toBe('E_APP_EXITED');
    expect(w.replicas.filter((r) => r.version === 1 && r.health === 'healthy')).toHaveLength(2);
  });

  it('a bad canary never replaces an old replica; a good one is promoted', () => {
    const bad = new World(service({ replicas: 3, rollout: { canary: 1 } }), (v) => (v === 2 ? 'unhealthy' : 'ok'));
    bad.run(settled(bad));
    const old = bad.replicas.map((r) => r.name);
    bad.deploy(2, 'canary');
    bad.run(settled(bad));
    expect(bad.svc.rollout?.phase).toBe('reverted');
    expect(bad.replicas.map((r) => r.name)).toEqual(old);

    const good = new World(service({ replicas: 3, rollout: { canary: 1 } }));
    good.run(settled(good));
    good.deploy(2, 'canary');
    good.run(settled(good));
    expect(good.svc.rollout?.phase).toBe('succeeded');
    expect(good.versionsRunning()).toEqual([2, 2, 2]);
  });

  // a tenant's quota reserves serviceWorstCaseVms (docs/tenants.md): no rollout of the plan may have more VMs at once,
  // good or bad (a revert surges too), and a good one reaches it (the reservation is not larger than needed)
  for (const strategy of ['rolling', 'canary', 'immediate'] as const) {
    for (const [surge, unavailable, canary] of [[1, 0, 1], [0, 1, 1], [2, 1, 1], [1, 0, 2], [3, 0, 3]] as const) {
      it(`serviceWorstCaseVms bounds every moment of a ${strategy} rollout (max-surge ${surge}, max-unavailable ${unavailable}, canary ${canary})`, () => {
        const policy = { replicas: 3, rollout: { strategy, maxSurge: surge, maxUnavailable: unavailable, canary } };
        const bound = serviceWorstCaseVms(policy);
        let peakGood = 0;
        for (const outcome of ['ok', 'unhealthy', 'exits'] as const) {
          const w = new World(service({ replicas: 3, rollout: policy.rollout }), (v) => (v === 2 ? outcome : 'ok'));
          w.run(settled(w));
          w.deploy(2, strategy);
          w.run(settled(w));
          expect(w.svc.rollout?.phase).toBe(outcome === 'ok' ? 'succeeded' : 'reverted');
          const peak = Math.max(...w.samples.map((x) => x.existing));
          expect(peak).toBeLessThanOrEqual(bound);
          if (outcome === 'ok') peakGood = peak;
        }
        // tight where the surge is what the strategy starts at once
        if (surge > 0 && !(strategy === 'canary' && canary < surge)) expect(peakGood).toBe(bound);
      });
    }
  }

  it('an immediate rollout of a version that never gets healthy is reverted (its unhealthy replicas leave at once)', () => {
    for (const [surge, unavailable] of [[1, 0], [0, 1], [0, 0]] as const) {
      const w = new World(service({ replicas: 3, rollout: { strategy: 'immediate', maxSurge: surge, maxUnavailable: unavailable } }), (v) => (v === 2 ? 'unhealthy' : 'ok'));
      w.run(settled(w));
      w.deploy(2, 'immediate');
      w.run(settled(w));
      expect(w.svc.rollout?.phase).toBe('reverted');
      expect(w.versionsRunning()).toEqual([1, 1, 1]);
    }
  });

  it('immediate replaces everything at once', () => {
    const w = new World(service({ replicas: 2 }));
    w.run(settled(w));
    w.deploy(2, 'immediate');
    w.run(settled(w));
    expect(w.svc.rollout?.phase).toBe('succeeded');
    expect(w.versionsRunning()).toEqual([2, 2]);
  });

  it('the deadline fails a rollout whose replicas never get healthy', () => {
    const w = new World(service({ replicas: 1, rollout: { healthyDeadlineMs: 5000 } }));
    w.run(settled(w));
    w.deploy(2);
    // v2 replicas stay starting: the world does not move them
    const frozen = new World(w.svc, () => 'ok');
    frozen.replicas = w.replicas;
    frozen.now = w.now;
    frozen.tick = function (this: World) {
      this.now += 500;
      const p = plan(this.svc, this.replicas, this.now, rules);
      this.svc = p.service;
      for (const a of p.actions) {
        if (a.kind === 'create') this.replicas.push({ name: `web.x${this.next}`, number: 100 + this.next++, version: a.version, state: 'starting', vmAlive: true, health: 'starting', healthySince: null, exitCode: null, code: null, reason: null, detail: null });
        if (a.kind === 'drain') this.replicas = this.replicas.filter((x) => x.name !== a.replica);
      }
    };
    frozen.run(settled(frozen));
    expect(frozen.svc.rollout?.phase).toBe('reverted');
    expect(frozen.svc.rollout?.reason).toMatch(/not healthy within/);
  });

  it('scaling keeps the surviving replicas; restart on-failure replaces an exited one with backoff, never keeps it', () => {
    const w = new World(service({ replicas: 1 }));
    w.run(settled(w));
    const first = w.replicas[0]?.name;
    w.svc.policy.replicas = 3;
    w.run(() => w.versionsRunning().length === 3);
    w.svc.policy.replicas = 1;
    w.run(() => w.replicas.length === 1);
    expect(w.replicas[0]?.name).toBe(first);

    const crash = new World(service({ replicas: 1 }), () => 'exits');
    for (let i = 0; i < 40; i++) crash.tick();
    expect(crash.svc.restarts.length).toBeGreaterThanOrEqual(3);
    // backoff: the gaps between restarts grow
    const at = crash.svc.restarts.map((r) => r.at);
    expect((at[2] ?? 0) - (at[1] ?? 0)).toBeGreaterThan((at[1] ?? 0) - (at[0] ?? 0));

    const never = new World(service({ replicas: 1, restart: 'never' }), () => 'exits');
    for (let i = 0; i < 20; i++) never.tick();
    expect(never.svc.restarts).toHaveLength(0);
    expect(never.replicas).toHaveLength(1);
    expect(never.replicas[0]?.exitCode).toBe(1);
  });

  it('destroy drains every replica and creates none', () => {
    const w = new World(service({ replicas: 2 }));
    w.run(settled(w));
    w.svc.desired = 'destroy';
    w.run(() => w.replicas.length === 0, 10);
    expect(w.replicas).toHaveLength(0);
  });
});
