import { LocalSloSource } from './local-slo.js';
import { computeSlo, loadSloConfig, type SloWindow } from './slo.js';
import type { SloReader, SloView } from './slo-reader.js';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { isUserError, UserError } from '../errors.js';
import { killAndRemove } from '../runtime/destroy.js';
import type { HomeLayout } from '../paths.js';
import { followLogs, parseSince, readLogs, type LogEntry, type ReadOptions } from '../runtime/logstore.js';
import { consoleLogFile, describeMissingDeployment } from '../runtime/supervisor.js';
import { SqliteStore } from '../store/sqlite.js';
import { LIVE_STATES, type BuildSandboxPolicy, type Deployment, type DeploySource, type DeployTrust, type Operation, type Store, type TenantIsolation, type TrustRule } from '../store/types.js';
import { checkImage, manifestDigest, OFF_RULE } from '../image/trust.js';
import { formatPort, type PortMapping } from '../util/port.js';
import { newId } from '../util/ids.js';
import { isAlive, sleep } from '../util/proc.js';
import { checkHostPorts, checkTenantPorts, hostMemoryMiB, validateDeployInput } from './deploy-input.js';
import type { Client, DeployRequest, DeployResult, DeploymentView, DestroyResult, LogsRequest, StatusResult } from './client.js';
import { extractPackageArchive, isPackageArchive, resolveTarget } from './resolve.js';
import { resolveServicePolicy } from './service-policy.js';
import { spawnWorker } from '../runtime/spawn-worker.js';
import { deployService, destroyService, ensureController, followServiceLogs, projectServiceYaml, serviceLogEntries, serviceView } from './services.js';

const isUniqueViolation = (e: unknown): boolean => (e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE';


function procMetrics(pid: number): { cpuSeconds: number | null; rssBytes: number | null } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    const rssPages = Number(f[21]);
    return { cpuSeconds: ticks / 100, rssBytes: rssPages * 4096 };
  } catch {
    return { cpuSeconds: null, rssBytes: null };
  }
}

export const NO_METRICS: DeploymentView['metrics'] = { cpuSeconds: null, rssBytes: null, supervisorRssBytes: null };

function deploymentMetrics(d: Deployment): DeploymentView['metrics'] {
  if (!d.vmm) return NO_METRICS;
  const supervisor = d.supervisor && isAlive(d.supervisor) ? procMetrics(d.supervisor.pid).rssBytes : null;
  return { ...procMetrics(d.vmm.pid), supervisorRssBytes: supervisor };
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function toView(d: Deployment, now = Date.now()): DeploymentView {
  const running = d.state === 'running' && isAlive(d.vmm);
  return {
    name: d.name, id: d.id, state: d.state, exitCode: d.exitCode, code: d.code, reason: d.reason,
    ports: d.spec.ports.map(formatPort),
    imageBytes: d.image?.sizeBytes ?? null, image: d.image?.ref ?? d.image?.name ?? null, pack: d.image?.pack ?? null,
    mode: d.image?.mode ?? null, accel: d.accel, bootMs: d.boot.vmmStartToAppStartMs ?? null, boot: d.boot,
    uptimeMs: running && d.startedAt ? now - d.startedAt : null,
    listen: d.state === 'running' ? d.listen : null,
    createdAt: new Date(d.createdAt).toISOString(), startedAt: iso(d.startedAt), endedAt: iso(d.endedAt),
    metrics: running ? deploymentMetrics(d) : NO_METRICS,
    signedBy: d.image?.signedBy ?? d.spec.trust?.keyid ?? null,
    trust: d.spec.trust ? { mode: d.spec.trust.rule.mode, warning: d.spec.trust.warning } : null,
  };
}

/** The embedded engine: state in SQLite, one detached supervisor process per deployment. */
export class LocalClient implements Client, SloReader {
  readonly store: Store;

  /** `remoteBuild`: the engine of a daemon, which builds the projects clients send it (sandboxed unless the policy is null). */
  /**
   * `trust`: the trust-policy rule every deploy is checked against (default off); `signKey`: the daemon's key that
   * signs the images it builds for clients (a local deploy names its own with DeployRequest.signKey).
   */
  constructor(readonly layout: HomeLayout, private readonly opts: { remoteBuild?: { sandbox: BuildSandboxPolicy | null }; trust?: TrustRule; signKey?: string } = {}) {
    this.store = new SqliteStore(layout.db);
  }

  close(): void {
    this.store.close();
  }

  /** The SLO figures of this host's deployments (`unikctl status --slo`; prices from UNIKCTL_SLO_CONFIG). */
  async slo(q: { window: SloWindow; app?: string }): Promise<SloView> {
    const config = loadSloConfig(process.env.UNIKCTL_SLO_CONFIG || undefined);
    const report = computeSlo(new LocalSloSource(this.store), { window: q.window, now: Date.now(), filter: q.app !== undefined ? { app: q.app } : {}, ...config });
    const apps = this.store.listDeployments().filter((d) => q.app === undefined || d.name === q.app)
      .map((d) => ({ tenant: '', name: d.name, state: d.state, node: 'local', accel: d.accel, bootMs: d.boot.vmmStartToAppStartMs ?? null }));
    return { ...report, apps, nodes: [{ name: 'local', status: 'ready' }] };
  }

  private spawnWorker(args: string[]): void {
    spawnWorker(this.layout, process.env, args);
  }

  async deploy(req: DeployRequest): Promise<DeployResult> {
    const { ports, env, labels, memoryMiB, cpus, tenant } = validateDeployInput(req, { maxMemoryMiB: hostMemoryMiB() });
    if (tenant) checkTenantPorts(ports);
    // a deploy needs room for its image, logs and records; refused here rather than failing inside the build
    this.store.requireSpace();

    const archivePath = isAbsolute(req.target) ? req.target : resolvePath(req.cwd, req.target);
    const fromArchive = isPackageArchive(archivePath) && existsSync(archivePath);
    const resolved = resolveTarget(fromArchive ? await extractPackageArchive(archivePath, this.layout) : req.target, req.cwd, this.layout, req.rootfs);
    const target = fromArchive ? { ...resolved, resolvedFrom: `package archive ${archivePath}` } : resolved;
    // the trust check comes before anything is recorded: an image the policy refuses never gets a deployment
    const trust = this.admitImage(target.source, req.expectManifestSha256);
    const existing = req.name !== undefined ? this.store.getService(req.name) : null;
    const policy = resolveServicePolicy({ flags: req.service ?? {}, yaml: projectServiceYaml(target.source)?.deploy, ports });
    // what a repeated idempotency key must match (a plain deploy's fields hash as they always did)
    const requestHash = createHash('sha256').update(JSON.stringify({
      t: target.source, n: req.name, ports, env, memoryMiB, cpus, d: req.debug, r: req.rootfs, labels, ...(tenant ? { tenant } : {}),
      ...(req.service ? { service: req.service } : {}), ...(req.supersede ? { supersede: true } : {}),
    })).digest('hex');
    if (req.idempotencyKey) {
      const prior = this.store.findOperationByKey(req.idempotencyKey);
      if (prior) return this.reuse(prior, requestHash, target);
    }
    if (policy || existing) {
      const name = req.name ?? this.store.freeName(target.defaultName);
      if (!existing) await checkHostPorts(ports);
      const signKey = this.opts.signKey ?? (req.signKey ? resolvePath(req.cwd, req.signKey) : undefined);
      const spec: Deployment['spec'] = {
        source: target.source, resolvedFrom: target.resolvedFrom, ports, memoryMiB, cpus, env, debug: req.debug, rootfsDir: req.rootfs, labels,
        ...(this.opts.remoteBuild && target.source.kind === 'project' ? { remoteBuild: this.opts.remoteBuild } : {}),
        trust, ...(signKey ? { signKey } : {}),
        // a tenant's service (from a control plane): each replica's spec is the version's, so every replica VM runs
        // as the tenant's user in its cgroup, exactly like a plain tenant deployment
        ...(tenant ? { tenant } : {}),
      };
      try {
        return deployService({
          store: this.store, layout: this.layout, name, spec, policy, manifestSha256: trust.manifestSha256, supersede: Boolean(req.supersede),
          resolvedFrom: target.resolvedFrom, candidates: target.candidates, idempotencyKey: req.idempotencyKey ?? null, requestHash,
        });
      } catch (e) {
        // a concurrent deploy with the same key wrote its operation first: answer with that one
        const prior = req.idempotencyKey && isUniqueViolation(e) ? this.store.findOperationByKey(req.idempotencyKey) : null;
        if (prior) return this.reuse(prior, requestHash, target);
        throw e;
      }
    }

    // the OS-level probe; ports published by other deployments are checked inside the insert's transaction
    await checkHostPorts(ports);

    const now = Date.now();
    for (let attempt = 0; ; attempt++) {
      const name = req.name ?? this.store.freeName(target.defaultName);
      try {
        return this.create(name, now, req, target, { ports, env, labels, memoryMiB, cpus, requestHash, trust, tenant });
      } catch (e) {
        // a concurrent deploy took the derived name or the idempotency key first
        if (req.idempotencyKey && isUniqueViolation(e)) {
          const prior = this.store.findOperationByKey(req.idempotencyKey);
          if (prior) return this.reuse(prior, requestHash, target);
        }
        if (req.name === undefined && e instanceof UserError && e.code === 'E_NAME_TAKEN' && attempt < 5) continue;
        throw e;
      }
    }
  }

  private create(
    name: string, now: number, req: DeployRequest, target: ReturnType<typeof resolveTarget>,
    p: { ports: PortMapping[]; env: Record<string, string>; labels: Record<string, string>; memoryMiB: number | undefined; cpus: number; requestHash: string; trust: DeployTrust; tenant: TenantIsolation | undefined },
  ): DeployResult {
    const { ports, env, labels, memoryMiB, cpus, requestHash, trust, tenant } = p;
    const signKey = this.opts.signKey ?? (req.signKey ? resolvePath(req.cwd, req.signKey) : undefined);
    const op: Operation = {
      id: newId('op'), kind: 'deploy', target: name, state: 'running', idempotencyKey: req.idempotencyKey ?? null, requestHash,
      error: null, createdAt: now, updatedAt: now, endedAt: null,
    };
    const d: Deployment = {
      name, id: newId('dep'), state: 'pending', exitCode: null, code: null, reason: null,
      spec: {
        source: target.source, resolvedFrom: target.resolvedFrom, ports, memoryMiB, cpus, env, debug: req.debug, rootfsDir: req.rootfs, labels,
        ...(this.opts.remoteBuild && target.source.kind === 'project' ? { remoteBuild: this.opts.remoteBuild } : {}),
        trust, ...(signKey ? { signKey } : {}),
        ...(tenant ? { tenant } : {}),
      },
      image: null, supervisor: null, vmm: null, accel: null, boot: {}, listen: null, createdAt: now, updatedAt: now, startedAt: null, endedAt: null,
    };
    this.store.createDeployment(d, op);
    if (trust.warning) this.store.addEvent(name, 'trust', `trust policy (warn): ${trust.warning.code}: ${trust.warning.message}`);
    this.spawnWorker(['deploy', name, op.id]);
    return { name, deploymentId: d.id, operationId: op.id, state: 'pending', source: target.source.kind, resolvedFrom: target.resolvedFrom, candidates: target.candidates, reused: false };
  }

  /**
   * The trust policy at admission: a package is checked now (enforce throws its code); an image the deploy builds
   * is checked by the supervisor once built. Either way the supervisor checks its private copy again before boot.
   */
  private admitImage(source: DeploySource, expectManifestSha256: string | undefined): DeployTrust {
    const rule = this.opts.trust ?? OFF_RULE('local');
    if (source.kind !== 'package') return { rule, manifestSha256: expectManifestSha256 ?? null, keyid: null, warning: null };
    const out = checkImage(source.dir, rule, expectManifestSha256);
    return { rule, manifestSha256: manifestDigest(source.dir), keyid: out.verified?.keyid ?? null, warning: out.warning };
  }

  private reuse(prior: Operation, requestHash: string, target: { resolvedFrom: string; candidates: string[]; source: { kind: Deployment['spec']['source']['kind'] } }): DeployResult {
    if (prior.requestHash !== requestHash) {
      throw new UserError('E_IDEMPOTENCY_CONFLICT', `idempotency key was already used by operation ${prior.id} with a different request`, { hint: 'use a new --idempotency-key for a different deployment' });
    }
    const svc = this.store.getService(prior.target);
    if (svc) {
      // a service's deploy: the same operation (its rollout, or a scale), never a second version
      const state = prior.state === 'failed' ? 'failed' : prior.state === 'succeeded' ? 'running' : 'pending';
      return {
        name: prior.target, deploymentId: svc.id, operationId: prior.id, state, source: target.source.kind, resolvedFrom: target.resolvedFrom,
        candidates: target.candidates, reused: true, error: prior.state === 'failed' ? prior.error : null, service: true,
      };
    }
    const d = this.store.getDeployment(prior.target);
    // the operation's real outcome, never a made-up state: a failed one says so with its code
    const state = prior.state === 'failed' ? 'failed' : (d?.state ?? 'exited');
    return {
      name: prior.target, deploymentId: d?.id ?? '', operationId: prior.id, state, source: target.source.kind,
      resolvedFrom: target.resolvedFrom, candidates: target.candidates, reused: true, error: prior.state === 'failed' ? prior.error : null,
    };
  }

  async destroy(names: string[], opts: { graceMs: number }): Promise<DestroyResult[]> {
    const missing = names.filter((n) => !this.store.getDeployment(n) && !this.store.getService(n));
    if (missing.length > 0) {
      // nothing is touched when any name is unknown: a typo must not destroy half a list
      const err = describeMissingDeployment(missing.join('", "'));
      throw new UserError('E_UNKNOWN_APP', missing.length > 1 ? `no deployments named "${missing.join('", "')}"` : err.message, { hint: err.hint });
    }
    const results: DestroyResult[] = [];
    for (const name of [...new Set(names)]) {
      if (this.store.getService(name)) {
        // a service: its controller drains and stops every replica, then the front, then removes the record
        const op = destroyService(this.layout, this.store, name);
        results.push({ name, operationId: op.id, state: op.state === 'succeeded' ? 'gone' : 'destroying' });
        continue;
      }
      const inflight = this.store.listOperations(20, name).find((o) => o.kind === 'destroy' && (o.state === 'queued' || o.state === 'running'));
      const d = this.store.getDeployment(name);
      if (inflight && d?.state === 'destroying') {
        results.push({ name, operationId: inflight.id, state: 'destroying' });
        continue;
      }
      const now = Date.now();
      const op: Operation = { id: newId('op'), kind: 'destroy', target: name, state: 'queued', idempotencyKey: null, requestHash: null, error: null, createdAt: now, updatedAt: now, endedAt: null };
      const record = (): Deployment | null => {
        if (!this.store.getOperation(op.id)) this.store.createOperation(op);
        return this.store.transition(name, ['pending', 'building', 'starting', 'running', 'exited', 'failed', 'destroying'], 'destroying');
      };
      let moved: Deployment | null;
      try {
        moved = record();
      } catch (e) {
        if (!(isUserError(e) && e.code === 'E_DISK_FULL') || !d) throw e;
        // destroy is how a user frees space: with no room even for its records, stop the VM and delete its files first
        await killAndRemove(this.layout, name, d.supervisor, [d.vmm]);
        moved = record();
      }
      if (!moved) {
        this.store.updateOperation(op.id, 'succeeded');
        results.push({ name, operationId: op.id, state: 'gone' });
        continue;
      }
      const deployOp = this.store.listOperations(20, name).find((o) => o.kind === 'deploy' && o.state === 'running');
      if (deployOp) this.store.updateOperation(deployOp.id, 'failed', { code: 'E_CANCELLED', message: 'destroyed before it finished' });
      this.spawnWorker(['destroy', name, op.id, String(opts.graceMs)]);
      results.push({ name, operationId: op.id, state: 'destroying' });
    }
    return results;
  }

  /** RT-3: status never guesses — a live state whose supervisor is gone becomes `failed`. */
  reconcile(): Deployment[] {
    // a service whose controller died (kill -9, a reboot) gets a new one: it resumes from the journaled record
    for (const svc of this.store.listServices()) ensureController(this.layout, this.store, svc.name);
    const out: Deployment[] = [];
    for (const d of this.store.listDeployments()) {
      const age = Date.now() - d.createdAt;
      if (!LIVE_STATES.includes(d.state) || !(d.supervisor ? !isAlive(d.supervisor) : age > 15_000)) {
        out.push(d);
        continue;
      }
      const reason = d.supervisor ? 'the supervisor process died (its VM was stopped with it)' : 'the supervisor process never started';
      const failed = { code: 'E_SUPERVISOR_LOST' as const, reason, endedAt: Date.now() };
      let moved: Deployment | null;
      try {
        moved = this.store.transition(d.name, [d.state], 'failed', failed);
        // the supervisor would have ended its deploy operation: without this it would stay running forever
        const op = moved ? this.store.listOperations(20, d.name).find((o) => o.kind === 'deploy' && o.state === 'running') : undefined;
        if (op) this.store.updateOperation(op.id, 'failed', { code: 'E_SUPERVISOR_LOST', message: reason });
      } catch (e) {
        // a full disk cannot take the record: report the truth anyway (a read must not fail), the next reconcile stores it
        if (!(isUserError(e) && e.code === 'E_DISK_FULL')) throw e;
        moved = { ...d, ...failed, state: 'failed' };
      }
      if (moved && isAlive(d.vmm) && d.vmm) process.kill(d.vmm.pid, 'SIGKILL');
      const cur = moved ?? this.store.getDeployment(d.name); // null: it changed meanwhile, read it again
      if (cur) out.push(cur);
    }
    return out;
  }

  async status(name?: string): Promise<StatusResult> {
    let deployments = this.reconcile();
    let services = this.store.listServices();
    if (name !== undefined) {
      services = services.filter((s) => s.name === name);
      deployments = deployments.filter((d) => d.name === name || (services.length > 0 && d.spec.service?.app === name));
      if (deployments.length === 0 && services.length === 0 && this.store.listOperations(1, name).length === 0) throw describeMissingDeployment(name);
    }
    const all = deployments;
    return {
      deployments: deployments.map((d) => toView(d)), operations: this.store.listOperations(name ? 10 : 15, name),
      services: services.map((s) => serviceView(s, all.filter((d) => d.spec.service?.app === s.name))),
    };
  }

  async *logs(req: LogsRequest): AsyncIterable<LogEntry> {
    if (this.store.getService(req.name)) {
      const sopts: ReadOptions = { streams: ['app', 'init', 'build'], ...(req.tail !== undefined ? { tail: req.tail } : {}), ...(req.since ? { sinceMs: parseSince(req.since) } : {}) };
      if (!req.follow) yield* serviceLogEntries(this.layout, this.store, req.name, sopts);
      else yield* followServiceLogs(this.layout, this.store, req.name, { ...sopts, signal: req.signal });
      return;
    }
    const d = this.store.getDeployment(req.name);
    if (!d) throw describeMissingDeployment(req.name);
    const streams: LogEntry['s'][] = d.spec.debug || d.image?.mode === 'debug' ? ['app', 'init', 'kernel'] : ['app', 'init'];
    const opts: ReadOptions = { streams, ...(req.tail !== undefined ? { tail: req.tail } : {}), ...(req.since ? { sinceMs: parseSince(req.since) } : {}) };
    const file = consoleLogFile(this.layout, req.name);
    if (!req.follow) {
      yield* readLogs(file, opts);
      return;
    }
    const isDone = (): boolean => {
      this.reconcile();
      const cur = this.store.getDeployment(req.name);
      return !cur || ((cur.state === 'exited' || cur.state === 'failed') && !isAlive(cur.supervisor));
    };
    yield* followLogs(file, { ...opts, signal: req.signal, isDone });
  }

  async has(name: string): Promise<boolean> {
    return this.store.getDeployment(name) !== null || this.store.getService(name) !== null;
  }

  async waitFor(name: string, until: (d: DeploymentView | null) => boolean, timeoutMs: number): Promise<DeploymentView | null> {
    const deadline = Date.now() + timeoutMs;
    if (this.store.getService(name)) {
      // a service has no one deployment view: what is waited on is that it is gone (destroy --wait)
      while (this.store.getService(name) && Date.now() < deadline) {
        this.reconcile();
        await sleep(200);
      }
      return null;
    }
    for (;;) {
      this.reconcile();
      const d = this.store.getDeployment(name);
      const v = d ? toView(d) : null;
      if (until(v) || Date.now() > deadline) return v;
      await sleep(100);
    }
  }
}
