import { createServer } from 'node:net';
import { mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { toUserError } from '../errors.js';
import { serviceDir, type HomeLayout } from '../paths.js';
import {
  LATENCY_BUCKETS_MS, type FrontRecord, type FrontVersionStats, type ReplicaHealthRecord, type Service, type ServiceVersion,
} from '../store/service-types.js';
import type { Deployment, Operation, Store } from '../store/types.js';
import { newId } from '../util/ids.js';
import { isAlive, processRef, signalRef, sleep, waitUntilDead } from '../util/proc.js';
import { buildInto } from './build-into.js';
import { spawnWorker } from './spawn-worker.js';
import type { Front, FrontDriver, FrontPort, SlotCounters, SlotState } from './front.js';
import { HealthTracker, graceEndsAt, probe } from './health-probe.js';
import { LogWriter } from './logstore.js';
import { consoleLogFile } from './supervisor.js';
import { restartDelayMs, RESTART_WINDOW_MS, shouldRestart } from './restart.js';
import { plan, type PlanAction, type ReplicaSnapshot } from './service-plan.js';

const TICK_MS = 250;
/** slots of the front per published port: replicas plus surge plus the ones still draining */
export const FRONT_SLOTS = 64;
/** a draining replica gets this long for its open connections before its VM is stopped */
const DRAIN_MS = 10_000;
/** without a check, a started replica counts as healthy once it has run this long (and listens on its ports) */
const DEFAULT_GRACE_MS = 1000;

export const serviceLogFile = (layout: HomeLayout, name: string): string => join(serviceDir(layout, name), 'console.log');

/** Replaced and scaled-down replicas' logs, kept beside the service (a crash's last lines outlive its replica). */
export const endedLogDir = (layout: HomeLayout, name: string): string => join(serviceDir(layout, name), 'ended');
const ENDED_LOGS_KEPT = 10;

/**
 * Moves a replica's console log out of its deployment directory (which its destroy removes) into the service's, and
 * keeps the newest few. A supervisor still writing keeps writing into the moved file (same inode).
 */
export function archiveReplicaLog(layout: HomeLayout, app: string, replica: string): void {
  const dir = endedLogDir(layout, app);
  try {
    mkdirSync(dir, { recursive: true });
    renameSync(consoleLogFile(layout, replica), join(dir, `${replica}.log`));
    const kept = readdirSync(dir).filter((f) => f.endsWith('.log'))
      .map((f) => ({ f, n: Number(f.slice(app.length + 1, -4)) || 0 })).sort((a, b) => b.n - a.n);
    for (const { f } of kept.slice(ENDED_LOGS_KEPT)) rmSync(join(dir, f), { force: true });
  } catch {
    // no log (the replica never booted) or no room: the replica goes anyway
  }
}

/** The front's mode per port: HTTP (balanced request by request) when the service's check speaks HTTP to it. */
export function frontPorts(s: Service): FrontPort[] {
  return s.ports.map((p) => ({
    hostAddress: p.hostAddress, hostPort: p.hostPort, guestPort: p.guestPort,
    mode: s.policy.check?.kind === 'http' && s.policy.check.port === p.guestPort ? 'http' : 'tcp',
  }));
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

const emptyStats = (): FrontVersionStats => ({ connections: 0, requests: 0, bytesIn: 0, bytesOut: 0, errors: 0, latency: { buckets: LATENCY_BUCKETS_MS.map(() => 0).concat(0), count: 0, sumMs: 0 } });

/** A replica's health tracker, and when its next probe is due (one probe in flight at a time). */
interface Tracker { health: HealthTracker; nextAt: number; inFlight: boolean; }

/**
 * The controller of one service (docs/services.md), a detached process (`worker.js service NAME`): every tick it
 * reads the service and its replicas from the store, checks their health, asks the planner (service-plan.ts) what
 * to do, journals the new record (compare-and-set) and only then acts — creates replicas (one supervisor each),
 * drains and stops them, keeps the front's slots in step with who is healthy, and adds the front's traffic to the
 * record. Killed at any point, the next controller reads the same record and carries on.
 */
export class ServiceController {
  private front: Front | null = null;
  private readonly trackers = new Map<string, Tracker>();
  private readonly draining = new Set<string>();
  private readonly removing = new Set<string>();
  private building: number | null = null;
  private readonly log: LogWriter;
  private lastCounters = new Map<number, SlotCounters>();
  /** what each slot was last set to (a command only when it changes) */
  private readonly slotStates = new Map<number, SlotState>();
  private baselinePending = false;
  private pendingTraffic = new Map<number, FrontVersionStats>();
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(private readonly o: { layout: HomeLayout; store: Store; name: string; driver: FrontDriver; env: NodeJS.ProcessEnv }) {
    this.log = new LogWriter(serviceLogFile(o.layout, o.name));
  }

  private say(m: string): void {
    this.log.append({ t: Date.now(), s: 'init', m: `unikctl: ${m}` });
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  async run(): Promise<void> {
    const { store, name } = this.o;
    // one controller per service: the record names it; a live other one keeps the job
    const me = processRef(process.pid);
    for (;;) {
      const s = store.getService(name);
      if (!s) return;
      if (s.controller && isAlive(s.controller) && s.controller.pid !== process.pid) return;
      if (store.updateService({ ...s, controller: me })) break;
    }
    try {
      let failures = 0;
      while (!this.stopped) {
        let done = false;
        try {
          done = await this.tick();
          failures = 0;
        } catch (e) {
          // one bad round (a busy store, a front that does not answer) must not end the controller: say it, retry
          failures++;
          const err = toUserError(e);
          if (failures === 1 || failures % 20 === 0) this.say(`controller round failed (${failures}×): ${err.code}: ${err.message}`);
        }
        if (done) break;
        await sleep(TICK_MS * Math.min(8, 1 + failures));
      }
    } finally {
      await this.front?.detach().catch(() => undefined);
      this.log.close();
    }
  }

  /** One round; true when the service is gone. */
  private async tick(): Promise<boolean> {
    const { store, name } = this.o;
    const s = store.getService(name);
    if (!s) return true;
    const now = Date.now();
    if (s.ports.length > 0 && !this.front) await this.openFront(s);

    const records = store.listDeployments().filter((d) => d.spec.service?.app === name);
    const health = this.updateHealth(s, records, now);
    const snapshots: ReplicaSnapshot[] = records.map((d) => {
      const h = health[d.name] ?? { health: 'starting', since: now, detail: null };
      return {
        name: d.name, version: d.spec.service?.version ?? 0, number: Number(d.name.slice(name.length + 1)) || 0, state: d.state,
        vmAlive: isAlive(d.vmm) || (d.state !== 'destroying' && d.state !== 'exited' && d.state !== 'failed'),
        health: h.health, healthySince: h.health === 'healthy' ? h.since : null, exitCode: d.exitCode, code: d.code, reason: d.reason, detail: h.detail,
      };
    });

    if (s.desired === 'destroy' && records.length === 0) {
      if (this.front) await this.front.stop().catch((e: unknown) => this.say(`the front did not stop cleanly: ${(e as Error).message}`));
      else if (s.front) await stopRecordedFront(s.front);
      this.front = null;
      store.deleteService(name);
      const op = store.listOperations(20, name).find((o) => o.kind === 'destroy' && o.state !== 'succeeded' && o.state !== 'failed');
      if (op) store.updateOperation(op.id, 'succeeded');
      this.say('destroyed: every replica and the front are gone');
      this.log.close();
      // its files (front config and sockets, built images, ended replicas' logs) go with the record
      rmSync(serviceDir(this.o.layout, name), { recursive: true, force: true });
      return true;
    }

    const p = plan(s, snapshots, now, { restartDelayMs, shouldRestart, restartWindowMs: RESTART_WINDOW_MS });
    // a version built from a project or binary: built once here, for all its replicas
    const unbuilt = p.actions.find((a): a is Extract<PlanAction, { kind: 'create' }> => a.kind === 'create' && p.service.versions.find((v) => v.version === a.version)?.spec.source.kind !== 'package');
    if (unbuilt && this.building === null) void this.buildVersion(unbuilt.version);
    const actions = p.actions.filter((a) => a.kind !== 'create' || p.service.versions.find((v) => v.version === a.version)?.spec.source.kind === 'package');

    const next: Service = { ...p.service, health, traffic: this.mergeTraffic(s.traffic) };
    const creates: Array<{ version: ServiceVersion; replica: string }> = [];
    for (const a of actions) {
      if (a.kind === 'create') {
        const v = next.versions.find((x) => x.version === a.version);
        if (v) creates.push({ version: v, replica: `${name}.${next.nextReplica++}` });
      } else if (a.kind === 'drain') {
        next.health[a.replica] = { health: 'draining', since: now, detail: a.why };
      }
    }
    // journal first, act after: a controller killed in between finds the intent (drains, replica numbers) recorded
    if (!store.updateService(next)) return false; // someone (a deploy, a destroy) wrote meanwhile: plan again
    this.pendingTraffic = new Map();
    for (const e of p.events) this.say(e);
    this.endOperation(s, next);

    for (const c of creates) await this.createReplica(next, c.version, c.replica);
    for (const a of actions) {
      if (a.kind === 'drain') this.startDrain(a.replica);
      else if (a.kind === 'remove') this.startRemove(a.replica);
    }
    // drains a killed controller left half done
    for (const [replica, h] of Object.entries(next.health)) {
      if (h.health === 'draining' && records.some((d) => d.name === replica && d.state !== 'destroying')) this.startDrain(replica);
    }
    await this.syncFront(next, records);
    return false;
  }

  /** The rollout's operation ends with the rollout. */
  private endOperation(before: Service, after: Service): void {
    const r = after.rollout;
    if (!r || before.rollout?.phase === r.phase) return;
    if (r.phase === 'succeeded') this.o.store.updateOperation(r.operationId, 'succeeded');
    else if (r.phase === 'failed' || r.phase === 'reverted') {
      this.o.store.updateOperation(r.operationId, 'failed', { code: 'E_ROLLOUT_FAILED', message: `${r.reason ?? 'the rollout failed'}${r.phase === 'reverted' ? `; reverted to v${r.from ?? '?'}` : ''}` });
    }
  }

  private updateHealth(s: Service, records: Deployment[], now: number): Record<string, ReplicaHealthRecord> {
    const out: Record<string, ReplicaHealthRecord> = {};
    for (const d of records) {
      const prior = s.health[d.name];
      if (prior?.health === 'draining' || d.state === 'destroying') {
        // a destroy whose VM has ended is no VM any more (the rollout bounds count VMs)
        if (d.state === 'destroying' && !isAlive(d.vmm)) out[d.name] = { health: 'stopped', since: now, detail: prior?.detail ?? 'destroyed' };
        else out[d.name] = prior?.health === 'draining' ? prior : { health: 'draining', since: now, detail: 'destroying' };
        continue;
      }
      if (d.state === 'exited' || d.state === 'failed') {
        out[d.name] = prior?.health === 'stopped' ? prior : { health: 'stopped', since: now, detail: d.reason ?? (d.exitCode !== null ? `exited with code ${d.exitCode}` : null) };
        continue;
      }
      let t = this.trackers.get(d.name);
      if (!t) {
        t = { health: new HealthTracker({ health: prior?.health === 'healthy' || prior?.health === 'unhealthy' ? prior.health : 'starting', since: prior?.since ?? now, detail: prior?.detail ?? null }), nextAt: 0, inFlight: false };
        this.trackers.set(d.name, t);
      }
      const h = t.health;
      if (d.state !== 'running' || d.startedAt === null) {
        out[d.name] = { health: 'starting', since: h.since, detail: null };
        continue;
      }
      const check = s.policy.check;
      const graceEnds = (graceMs: number): number => graceEndsAt({ vmStartedAt: d.startedAt!, appStartMs: d.boot.vmmStartToAppStartMs ?? null, graceMs });
      if (!check) {
        // no check: healthy once it ran its grace period and listens where it publishes (the guest init's report)
        const listening = !d.listen || d.listen.health === 'listening' || d.listen.health === 'no-ports' || d.listen.health === 'unknown';
        const healthy = now >= graceEnds(DEFAULT_GRACE_MS) && listening;
        h.set(healthy ? 'healthy' : 'starting', now, healthy ? null : d.listen?.warning?.message ?? null);
      } else if (!t.inFlight && now >= t.nextAt) {
        const port = d.spec.ports.find((p) => p.guestPort === check.port);
        t.inFlight = true;
        t.nextAt = now + check.intervalMs;
        const rule = { graceEndsAt: graceEnds(check.graceMs), failures: check.failures };
        void probe(check, { address: '127.0.0.1', port: port?.hostPort ?? 0 }, this.abort.signal)
          .then((r) => { h.feed(r, Date.now(), rule); })
          .finally(() => { t.inFlight = false; });
      }
      out[d.name] = { health: h.health, since: h.since, detail: h.detail };
    }
    for (const name of this.trackers.keys()) if (!records.some((d) => d.name === name)) this.trackers.delete(name);
    return out;
  }

  private async buildVersion(version: number): Promise<void> {
    const { store, name, layout } = this.o;
    this.building = version;
    const s0 = store.getService(name);
    const v0 = s0?.versions.find((v) => v.version === version);
    if (!s0 || !v0) { this.building = null; return; }
    const dir = join(serviceDir(layout, name), `v${version}`);
    const imageDir = join(dir, 'image');
    this.say(`building v${version} from ${v0.spec.resolvedFrom}`);
    let failure: { code: Service['versions'][number]['code']; reason: string } | null = null;
    try {
      await buildInto({
        layout, spec: v0.spec, name, imageDir, workDir: join(dir, 'work'), copyDir: join(dir, 'project'), signal: this.abort.signal, env: this.o.env,
        progress: { step: (m) => this.log.append({ t: Date.now(), s: 'build', m: `==> ${m}` }), line: (l) => this.log.append({ t: Date.now(), s: 'build', m: l }), warn: (m) => this.log.append({ t: Date.now(), s: 'build', m: `warning: ${m}` }) },
      });
    } catch (e) {
      const err = toUserError(e);
      failure = { code: err.code, reason: `the build of v${version} failed: ${err.message}` };
    }
    // the version now runs the built image: every replica boots the same bytes
    for (;;) {
      const s = store.getService(name);
      const v = s?.versions.find((x) => x.version === version);
      if (!s || !v) break;
      if (failure) {
        v.state = 'failed';
        v.code = failure.code;
        v.reason = failure.reason;
        if (s.rollout?.to === version && ['canary', 'progressing'].includes(s.rollout.phase)) {
          s.rollout = { ...s.rollout, phase: s.rollout.from !== null && s.policy.rollout.autoRevert ? 'reverting' : 'failed', code: failure.code, reason: failure.reason, updatedAt: Date.now() };
        }
      } else {
        v.spec = { ...v.spec, source: { kind: 'package', dir: imageDir } };
      }
      if (store.updateService(s)) {
        if (failure) {
          this.say(failure.reason);
          if (s.rollout?.phase === 'failed') store.updateOperation(s.rollout.operationId, 'failed', { code: failure.code ?? 'E_BUILD_FAILED', message: failure.reason });
        }
        break;
      }
    }
    this.building = null;
  }

  private async createReplica(s: Service, v: ServiceVersion, replica: string): Promise<void> {
    const { store, layout } = this.o;
    const now = Date.now();
    // each replica's VM forwards the published guest ports on loopback ports of its own; only the front publishes
    const ports = await Promise.all(s.ports.map(async (p) => ({ hostAddress: '127.0.0.1', hostPort: await freePort(), guestPort: p.guestPort, protocol: 'tcp' as const })));
    const op: Operation = { id: newId('op'), kind: 'deploy', target: replica, state: 'running', idempotencyKey: null, requestHash: null, error: null, createdAt: now, updatedAt: now, endedAt: null };
    const d: Deployment = {
      name: replica, id: newId('dep'), state: 'pending', exitCode: null, code: null, reason: null,
      spec: { ...v.spec, ports, service: { app: s.name, version: v.version } },
      image: null, supervisor: null, vmm: null, accel: null, boot: {}, listen: null, createdAt: now, updatedAt: now, startedAt: null, endedAt: null,
    };
    try {
      store.createDeployment(d, op);
    } catch (e) {
      this.say(`replica ${replica} not created: ${toUserError(e).message}`);
      return;
    }
    this.say(`replica ${replica} of v${v.version} created`);
    this.spawnWorker(['deploy', replica, op.id], layout);
  }

  private spawnWorker(args: string[], layout: HomeLayout): void {
    spawnWorker(layout, this.o.env, args);
  }

  /** Out of rotation, then its connections finish (or the drain time ends), then its VM stops and its record goes. */
  private startDrain(replica: string): void {
    if (this.draining.has(replica)) return;
    this.draining.add(replica);
    void (async () => {
      const s = this.o.store.getService(this.o.name);
      const slot = s?.front ? Number(Object.entries(s.front.slots).find(([, r]) => r === replica)?.[0] ?? NaN) : NaN;
      if (this.front && Number.isInteger(slot)) {
        await this.front.setState(slot, 'drain').catch(() => undefined);
        const deadline = Date.now() + DRAIN_MS;
        while (Date.now() < deadline) {
          const c = (await this.front.counters().catch(() => new Map<number, SlotCounters>())).get(slot);
          if (!c || c.active === 0) break;
          await sleep(100);
        }
        await this.front.setState(slot, 'maint').catch(() => undefined);
      }
      this.say(`replica ${replica} drained; stopping it`);
      this.destroyReplica(replica);
    })();
  }

  private startRemove(replica: string): void {
    if (this.removing.has(replica)) return;
    this.removing.add(replica);
    this.destroyReplica(replica);
  }

  private destroyReplica(replica: string): void {
    const { store, layout } = this.o;
    const d = store.getDeployment(replica);
    if (!d || d.state === 'destroying') return;
    archiveReplicaLog(layout, this.o.name, replica);
    const now = Date.now();
    const op: Operation = { id: newId('op'), kind: 'destroy', target: replica, state: 'queued', idempotencyKey: null, requestHash: null, error: null, createdAt: now, updatedAt: now, endedAt: null };
    store.createOperation(op);
    if (!store.transition(replica, ['pending', 'building', 'starting', 'running', 'exited', 'failed'], 'destroying')) return;
    this.spawnWorker(['destroy', replica, op.id, String(Number(this.o.env.UNIKCTL_STOP_GRACE_MS ?? 5000))], layout);
  }

  private async openFront(s: Service): Promise<void> {
    const { store, name, layout, driver } = this.o;
    const opts = { dir: join(serviceDir(layout, name), 'front'), ports: frontPorts(s), slots: FRONT_SLOTS };
    this.front = s.front ? await driver.adopt(s.front, opts) : null;
    // a recorded front that cannot be adopted (its admin socket does not answer) still holds the ports: it goes first
    if (!this.front && s.front) await stopRecordedFront(s.front);
    if (this.front) {
      this.baselinePending = true;
      this.say(`adopted the front (pid ${this.front.record.pid})`);
    }
    else {
      this.front = await driver.start(opts);
      this.say(`front started on ${s.ports.map((p) => `${p.hostAddress}:${p.hostPort}`).join(', ')} (pid ${this.front.record.pid})`);
    }
    this.front.onRequest((r) => {
      if (r.slot === null) return;
      const cur = this.o.store.getService(name);
      const replica = cur?.front?.slots[String(r.slot)];
      const version = replica ? this.o.store.getDeployment(replica)?.spec.service?.version : undefined;
      if (version === undefined) return;
      const st = this.pendingTraffic.get(version) ?? emptyStats();
      const i = LATENCY_BUCKETS_MS.findIndex((b) => r.totalMs <= b);
      st.latency.buckets[i === -1 ? LATENCY_BUCKETS_MS.length : i] = (st.latency.buckets[i === -1 ? LATENCY_BUCKETS_MS.length : i] ?? 0) + 1;
      st.latency.count++;
      st.latency.sumMs += r.totalMs;
      this.pendingTraffic.set(version, st);
    });
    for (;;) {
      const cur = store.getService(name);
      if (!cur) return;
      if (store.updateService({ ...cur, front: { ...this.front.record, slots: cur.front?.slots ?? {} } })) return;
    }
  }

  /** Latency from the front's log since the last journal write, counters from the front's stats, per version. */
  private mergeTraffic(prior: Record<string, FrontVersionStats>): Record<string, FrontVersionStats> {
    const out = structuredClone(prior);
    for (const [version, add] of this.pendingTraffic) {
      const st = out[String(version)] ?? emptyStats();
      st.latency.count += add.latency.count;
      st.latency.sumMs += add.latency.sumMs;
      st.latency.buckets = st.latency.buckets.map((b, i) => b + (add.latency.buckets[i] ?? 0));
      out[String(version)] = st;
    }
    return out;
  }

  /** Slots follow the replicas: a running replica gets one (out of rotation), healthy ones are ready, the rest not. */
  private async syncFront(s: Service, records: Deployment[]): Promise<void> {
    const front = this.front;
    if (!front || !s.front) return;
    const slots = { ...s.front.slots };
    const bySlot = new Map(Object.entries(slots).map(([k, v]) => [v, Number(k)]));
    let changed = false;
    const counters = await front.counters().catch(() => null);
    const trafficAdd = new Map<number, SlotCounters>();
    for (const d of records) {
      if (bySlot.has(d.name) || d.state !== 'running') continue;
      const used = new Set(bySlot.values());
      let slot = 1;
      while (used.has(slot)) slot++;
      if (slot > FRONT_SLOTS) break;
      this.slotStates.set(slot, 'maint');
      await front.setTarget(slot, { address: '127.0.0.1', ports: Object.fromEntries(d.spec.ports.map((p) => [p.guestPort, p.hostPort])), weight: 1 });
      bySlot.set(d.name, slot);
      slots[String(slot)] = d.name;
      changed = true;
    }
    for (const [replica, slot] of bySlot) {
      const d = records.find((x) => x.name === replica);
      const h = s.health[replica]?.health;
      if (!d) {
        // gone: the slot is free again (its counters so far stay with the version)
        await front.setTarget(slot, null).catch(() => undefined);
        this.slotStates.delete(slot);
        delete slots[String(slot)];
        changed = true;
        continue;
      }
      if (counters) {
        const c = counters.get(slot);
        const before = this.lastCounters.get(slot);
        if (c) trafficAdd.set(slot, before && before.connections <= c.connections ? { ...c, connections: c.connections - before.connections, requests: c.requests - before.requests, bytesIn: c.bytesIn - before.bytesIn, bytesOut: c.bytesOut - before.bytesOut, errors: c.errors - before.errors } : c);
      }
      if (h === 'draining') {
        this.slotStates.set(slot, 'drain'); // the drain owns it
        continue;
      }
      const want = h === 'healthy' ? 'ready' : 'maint';
      if (this.slotStates.get(slot) === want) continue;
      await front.setState(slot, want).then(() => this.slotStates.set(slot, want), () => undefined);
    }
    if (counters) {
      // an adopted front counted before this controller: its first reading is the baseline, not new traffic
      if (this.baselinePending) trafficAdd.clear();
      this.baselinePending = false;
      this.lastCounters = counters;
    }
    const traffic = structuredClone(s.traffic);
    const served = [...trafficAdd.values()].reduce((n, c) => n + c.requests, 0);
    // the SLO figures (requests per second, cost per request) read these as a time series
    if (served > 0) this.o.store.recordRequests(this.o.name, served, Date.now());
    for (const [slot, add] of trafficAdd) {
      const version = records.find((d) => d.name === slots[String(slot)] || bySlot.get(d.name) === slot)?.spec.service?.version;
      if (version === undefined || (add.connections === 0 && add.requests === 0)) continue;
      const st = traffic[String(version)] ?? emptyStats();
      st.connections += add.connections;
      st.requests += add.requests;
      st.bytesIn += add.bytesIn;
      st.bytesOut += add.bytesOut;
      st.errors += add.errors;
      traffic[String(version)] = st;
      changed = true;
    }
    if (!changed) return;
    const cur = this.o.store.getService(this.o.name);
    if (!cur?.front) return;
    // slots and counters only: the next tick's plan works from the rest
    this.o.store.updateService({ ...cur, front: { ...cur.front, slots }, traffic: mergeCounters(cur.traffic, traffic, s.traffic) });
  }
}

/** Stops a front process by its record (pid and start time: never another process that took the pid). */
async function stopRecordedFront(f: FrontRecord): Promise<void> {
  const ref = { pid: f.pid, startTime: String(f.startTime) };
  if (!isAlive(ref)) return;
  signalRef(ref, 'SIGTERM');
  if (!(await waitUntilDead(ref, 5000))) {
    signalRef(ref, 'SIGKILL');
    await waitUntilDead(ref, 2000);
  }
}

/** Adds what syncFront counted (now − then) onto the latest record (which a tick may have changed meanwhile). */
function mergeCounters(latest: Record<string, FrontVersionStats>, mine: Record<string, FrontVersionStats>, base: Record<string, FrontVersionStats>): Record<string, FrontVersionStats> {
  const out = structuredClone(latest);
  for (const [v, st] of Object.entries(mine)) {
    const b = base[v] ?? emptyStats();
    const o = out[v] ?? emptyStats();
    o.connections += st.connections - b.connections;
    o.requests += st.requests - b.requests;
    o.bytesIn += st.bytesIn - b.bytesIn;
    o.bytesOut += st.bytesOut - b.bytesOut;
    o.errors += st.errors - b.errors;
    out[v] = o;
  }
  return out;
}

