import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { loadUnikYaml } from '../image/unikyaml.js';
import type { HomeLayout } from '../paths.js';
import { crashLooping, RESTART_WINDOW_MS } from '../runtime/restart.js';
import { endedLogDir, serviceLogFile } from '../runtime/service-controller.js';
import { readLogs, followLogs, type LogEntry, type ReadOptions } from '../runtime/logstore.js';
import { consoleLogFile } from '../runtime/supervisor.js';
import { spawnWorker } from '../runtime/spawn-worker.js';
import type { Service, ServicePolicy, ServiceVersion } from '../store/service-types.js';
import type { Deployment, DeploymentSpec, DeploySource, Operation, Store } from '../store/types.js';
import { formatPort, type PortMapping } from '../util/port.js';
import { newId } from '../util/ids.js';
import { isAlive, processRef } from '../util/proc.js';
import type { DeployResult, ServiceView } from './client.js';


/** A rollout still moving (a deploy of the same app waits for it, or supersedes it). */
export const rolloutActive = (s: Service): boolean => s.rollout !== null && ['canary', 'progressing', 'reverting'].includes(s.rollout.phase);

/**
 * What makes two deploys the same version: what the replicas run and how (not the replica count or the policies).
 * A package is identified by its manifest digest; a project or a binary is built anew, so it is always a new version.
 */
export function versionHash(spec: DeploymentSpec, manifestSha256: string | null): string {
  const identity = spec.source.kind === 'package' && manifestSha256 ? { package: manifestSha256 } : { build: randomBytes(8).toString('hex') };
  const { env, ports, memoryMiB, cpus, debug, rootfsDir, labels } = spec;
  return createHash('sha256').update(JSON.stringify({ identity, env, ports, memoryMiB, cpus, debug, rootfsDir, labels })).digest('hex');
}

/** unik.yaml's deploy settings, from a project (a package or a binary carries none). */
export function projectServiceYaml(source: DeploySource): ReturnType<typeof loadUnikYaml> | null {
  return source.kind === 'project' ? loadUnikYaml(source.dir) : null;
}

const samePorts = (a: PortMapping[], b: PortMapping[]): boolean =>
  a.length === b.length && a.every((p, i) => formatPort(p) === formatPort(b[i] as PortMapping));

/**
 * A deploy of a service: the first one creates it (version 1); a later one with another spec is a new version rolled
 * out by its policy; the same spec with another replica count or policy only changes those (running replicas stay).
 */
export function deployService(o: {
  store: Store; layout: HomeLayout; name: string; spec: DeploymentSpec; policy: ServicePolicy | null; manifestSha256: string | null;
  supersede: boolean; resolvedFrom: string; candidates: string[];
  /** a repeat-safe deploy: the operation records the key (a repeat is answered with this operation by the caller) */
  idempotencyKey?: string | null; requestHash?: string | null;
}): DeployResult {
  const { store, name, spec } = o;
  const now = Date.now();
  const op: Operation = {
    id: newId('op'), kind: 'deploy', target: name, state: 'running', idempotencyKey: o.idempotencyKey ?? null, requestHash: o.requestHash ?? null,
    error: null, createdAt: now, updatedAt: now, endedAt: null,
  };
  const hash = versionHash(spec, o.manifestSha256);
  const version = (n: number): ServiceVersion => ({ version: n, spec, specHash: hash, state: 'rolling-out', code: null, reason: null, createdAt: now });
  const rolloutTo = (s: Pick<Service, 'current' | 'policy'>, to: number): Service['rollout'] => ({
    from: s.current, to, strategy: s.policy.rollout.strategy, phase: s.current !== null && s.policy.rollout.strategy === 'canary' ? 'canary' : 'progressing',
    startedAt: now, updatedAt: now, operationId: op.id, code: null, reason: null,
  });
  const result = (s: Service): DeployResult => ({
    name, deploymentId: s.id, operationId: op.id, state: 'pending', source: spec.source.kind, resolvedFrom: o.resolvedFrom, candidates: o.candidates, reused: false, service: true,
  });

  for (;;) {
    const prior = store.getService(name);
    if (!prior) {
      if (!o.policy) throw new Error('deployService: a new service needs its policy');
      const s: Service = {
        name, id: newId('svc'), desired: 'run', policy: o.policy, ports: spec.ports, health: {}, traffic: {}, versions: [version(1)], current: null,
        rollout: null, restarts: [], nextReplica: 1, controller: null, front: null, createdAt: now, updatedAt: now, rev: 0,
      };
      s.rollout = rolloutTo(s, 1);
      store.createService(s, op);
      ensureController(o.layout, store, name);
      return result(s);
    }
    if (prior.desired === 'destroy') {
      throw new UserError('E_NAME_TAKEN', `the app ${name} is being destroyed`, { hint: `wait until unikctl status ${name} no longer shows it, then deploy again` });
    }
    if (rolloutActive(prior) && !o.supersede) {
      const r = prior.rollout;
      throw new UserError('E_ROLLOUT_IN_PROGRESS', `a rollout of ${name} (v${r?.from ?? '-'} → v${r?.to ?? '?'}, ${r?.phase ?? ''}) is in progress`, {
        hint: `wait for it (unikctl status ${name}), or deploy again with --supersede to replace it with this version`,
      });
    }
    if (!samePorts(prior.ports, spec.ports)) {
      throw new UserError('E_PORTS_CHANGED', `${name} publishes ${prior.ports.map(formatPort).join(', ') || 'no port'}; this deploy asks for ${spec.ports.map(formatPort).join(', ') || 'none'}`, {
        hint: `a new version keeps the published ports (its front owns them): deploy with the same -p flags, or destroy ${name} first`,
      });
    }
    const s: Service = structuredClone(prior);
    if (o.policy) s.policy = o.policy;
    const same = s.versions.find((v) => v.version === (s.current ?? s.rollout?.to))?.specHash === hash;
    // the operation is written once the record is: a lost compare-and-set (the controller writes every tick) retries
    let record: Operation;
    if (same && !rolloutActive(prior)) {
      // a scale or a policy change: the controller adds or drains replicas of the serving version, no rollout
      record = { ...op, state: 'succeeded', endedAt: now };
    } else {
      const next = Math.max(0, ...s.versions.map((v) => v.version)) + 1;
      if (rolloutActive(prior) && prior.rollout) {
        // superseded: the version being rolled out is abandoned (its replicas drain), the new one starts from the serving one
        const abandoned = s.versions.find((v) => v.version === prior.rollout?.to);
        if (abandoned) Object.assign(abandoned, { state: 'failed', code: 'E_CANCELLED', reason: `superseded by v${next}` });
        store.updateOperation(prior.rollout.operationId, 'failed', { code: 'E_CANCELLED', message: `superseded by v${next}` });
      }
      s.versions = [...s.versions.filter((v) => v.state !== 'retired' || v.version === s.current), version(next)];
      s.rollout = rolloutTo(s, next);
      record = op;
    }
    if (store.updateService(s)) {
      store.createOperation(record);
      ensureController(o.layout, store, name);
      return result(s);
    }
  }
}

/** Starts the service's controller unless a live one runs (after a kill -9 the next command resumes the service). */
export function ensureController(layout: HomeLayout, store: Store, name: string): void {
  const s = store.getService(name);
  if (!s || (s.controller && isAlive(s.controller))) return;
  const pid = spawnWorker(layout, process.env, ['service', name, '-']);
  const me = pid ? processRef(pid) : null;
  // recorded at once, so two commands in a row do not start two; a live other one recorded meanwhile keeps the job
  // (and this child, finding it, exits)
  for (let cur = store.getService(name); cur && me; cur = store.getService(name)) {
    if (cur.controller && cur.controller.pid !== me.pid && isAlive(cur.controller)) return;
    if (cur.controller?.pid === me.pid || store.updateService({ ...cur, controller: me })) return;
  }
}

export function destroyService(layout: HomeLayout, store: Store, name: string): Operation {
  const now = Date.now();
  const op: Operation = { id: newId('op'), kind: 'destroy', target: name, state: 'running', idempotencyKey: null, requestHash: null, error: null, createdAt: now, updatedAt: now, endedAt: null };
  for (;;) {
    const s = store.getService(name);
    if (!s) {
      store.createOperation({ ...op, state: 'succeeded', endedAt: now });
      return { ...op, state: 'succeeded' };
    }
    if (s.desired === 'destroy') {
      const running = store.listOperations(20, name).find((x) => x.kind === 'destroy' && x.state === 'running');
      if (running) {
        ensureController(layout, store, name);
        return running;
      }
    }
    if (s.rollout && rolloutActive(s)) {
      store.updateOperation(s.rollout.operationId, 'failed', { code: 'E_CANCELLED', message: 'destroyed before the rollout finished' });
      s.rollout = { ...s.rollout, phase: 'failed', code: 'E_CANCELLED', reason: 'destroyed', updatedAt: now };
    }
    if (store.updateService({ ...s, desired: 'destroy' })) {
      store.createOperation(op);
      ensureController(layout, store, name);
      return op;
    }
  }
}

export const replicasOf = (store: Store, name: string): Deployment[] => store.listDeployments().filter((d) => d.spec.service?.app === name);

export function serviceView(s: Service, replicas: Deployment[], now = Date.now()): ServiceView {
  const recent = s.restarts.filter((r) => now - r.at <= RESTART_WINDOW_MS);
  const loop = crashLooping(s.restarts, now);
  const last = recent.at(-1);
  return {
    name: s.name, id: s.id, desired: s.desired === 'destroy' ? 0 : s.policy.replicas, destroying: s.desired === 'destroy',
    current: s.current, ports: s.ports.map(formatPort), policy: s.policy, rollout: s.rollout,
    versions: s.versions.map((v) => {
      const mine = replicas.filter((d) => d.spec.service?.version === v.version);
      return {
        version: v.version, state: v.state, code: v.code, reason: v.reason, createdAt: new Date(v.createdAt).toISOString(),
        image: v.spec.source.kind === 'package' ? (v.spec.source.ref ?? v.spec.source.dir) : v.spec.resolvedFrom,
        healthy: mine.filter((d) => s.health[d.name]?.health === 'healthy').length,
        running: mine.filter((d) => d.state === 'running').length,
        total: mine.length,
      };
    }),
    replicas: replicas.map((d) => ({
      name: d.name, version: d.spec.service?.version ?? 0, state: d.state,
      health: d.state === 'destroying' && !isAlive(d.vmm) ? 'stopped' : s.health[d.name]?.health ?? (d.state === 'exited' || d.state === 'failed' ? 'stopped' : 'starting'),
      healthDetail: s.health[d.name]?.detail ?? null,
      pid: d.state === 'running' && d.vmm && isAlive(d.vmm) ? d.vmm.pid : null,
      exitCode: d.exitCode, code: d.code, reason: d.reason,
    })),
    restarts: s.restarts.length,
    crashLoop: loop && last ? { since: new Date(recent[0]?.at ?? last.at).toISOString(), reason: `${recent.length} restarts in ${Math.round(RESTART_WINDOW_MS / 1000)}s; last: ${last.replica} ${last.reason ?? last.code ?? ''}`.trim() } : null,
    controller: s.controller && isAlive(s.controller) ? { pid: s.controller.pid } : null,
    traffic: s.traffic,
  };
}

/** `logs APP` of a service: every replica's lines (and the controller's) merged by time, each with its source. */
export function serviceLogEntries(layout: HomeLayout, store: Store, name: string, opts: ReadOptions): LogEntry[] {
  const ended = endedLogDir(layout, name);
  const archived = existsSync(ended) ? readdirSync(ended).filter((f) => f.endsWith('.log')).map((f) => ({ file: join(ended, f), source: f.slice(0, -4) })) : [];
  const files: Array<{ file: string; source: string }> = [
    { file: serviceLogFile(layout, name), source: name },
    ...archived,
    ...replicasOf(store, name).map((d) => ({ file: consoleLogFile(layout, d.name), source: d.name })),
  ];
  const all = files.flatMap(({ file, source }) => readLogs(file, { ...opts, tail: undefined } as ReadOptions).map((e) => ({ ...e, src: source })));
  all.sort((a, b) => a.t - b.t);
  return opts.tail !== undefined ? all.slice(-opts.tail) : all;
}

/** Following a service's logs: the merged lines so far, then every file's new lines as they come (replicas come and go). */
export async function* followServiceLogs(layout: HomeLayout, store: Store, name: string, opts: ReadOptions & { signal: AbortSignal }): AsyncGenerator<LogEntry> {
  const seen = new Set<string>();
  for (const e of serviceLogEntries(layout, store, name, opts)) yield e;
  const queue: LogEntry[] = [];
  let wake: (() => void) | null = null;
  const start = Date.now();
  const tail = (file: string, source: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    void (async () => {
      const it = followLogs(file, { ...opts, sinceMs: Math.max(opts.sinceMs ?? 0, start), tail: undefined, signal: opts.signal, isDone: () => !store.getService(name) } as Parameters<typeof followLogs>[1]);
      for await (const e of it) {
        queue.push({ ...e, src: source });
        wake?.();
      }
    })();
  };
  while (!opts.signal.aborted && store.getService(name)) {
    tail(serviceLogFile(layout, name), name);
    for (const d of replicasOf(store, name)) tail(consoleLogFile(layout, d.name), d.name);
    await new Promise<void>((r) => { wake = r; setTimeout(r, 500); });
    wake = null;
    while (queue.length > 0) {
      const e = queue.shift();
      if (e) yield e;
    }
  }
}
