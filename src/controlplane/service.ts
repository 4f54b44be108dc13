import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, DeployResult, DeploymentView, DestroyResult, QuotaView, ServiceFlags, ServiceView, StatusResult } from '../engine/client.js';
import { resolveServicePolicy } from '../engine/service-policy.js';
import { projectServiceYaml } from '../engine/services.js';
import { parseMemoryFlag, validateDeployInput } from '../engine/deploy-input.js';
import { formatPort, parsePort } from '../util/port.js';
import { resolveTarget } from '../engine/resolve.js';
import { formatRef, normalizeRef, PackageStore } from '../image/package-store.js';
import { UserError } from '../errors.js';
import type { HomeLayout } from '../paths.js';
import type { LogEntry } from '../runtime/logstore.js';
import type { Deployment, Operation } from '../store/types.js';
import { newId, sanitizeName } from '../util/ids.js';
import type { ArtifactStore } from '../store/artifacts.js';
import type { QueuedOperation, OperationJournal } from './operation-journal.js';
import type { PlacementStore } from './node-store.js';
import type { Queue } from './queue.js';
import type { DeployOperationRequest } from './runner.js';
import type { Fleet } from './fleet.js';
import type { HostAdmission } from './host-admission.js';
import { quotaExceeded, TENANT_DEFAULT_MEMORY_MIB, TenantScope, type QuotaCheck, type TenantSpec } from './tenants.js';
import { formatLabels, parseLabels } from '../util/labels.js';
import { checkImage, manifestDigest, OFF_RULE } from '../image/trust.js';
import type { TrustRule } from '../store/types.js';
import { describeMissingDeployment } from '../runtime/supervisor.js';
import { serviceWorstCaseVms } from '../runtime/service-plan.js';

export interface DeployBody {
  source: { artifact: string; kind: 'project' | 'binary' | 'package' } | { package: string };
  name?: string;
  nameHint?: string;
  ports?: string[];
  env?: string[];
  memory?: string;
  cpus?: number;
  debug?: boolean;
  rootfsArtifact?: string;
  labels?: string[];
  idempotencyKey?: string;
  /** service settings (docs/services.md): the deploy creates or updates a service */
  service?: ServiceFlags;
  supersede?: boolean;
}

export interface DestroyBody { names: string[]; timeoutSeconds?: number; idempotencyKey?: string; }

const ARTIFACT_ID_RE = /art_[0-9a-f]{16}/g;

const hashRequest = (v: unknown): string => createHash('sha256').update(JSON.stringify(v)).digest('hex');

/** The control plane's semantics, independent of HTTP: validate, journal, and read back state. */
export class ControlPlane {
  constructor(private readonly o: {
    journal: OperationJournal; queue: Queue; node: Client; fleet: Fleet | null; host: HostAdmission | null; nodeLayout: HomeLayout; artifacts: ArtifactStore; maxAttempts: number;
    /** cluster mode: placements keep the deploy request (and so the artifact) a move recreates the workload from */
    placements?: PlacementStore;
    /** the control plane's trust-policy rule (default off) and where a warn-mode failure is counted */
    trust?: TrustRule;
    /** a tenant's own rule (the policy's `tenants:`), checked in addition to `trust`; null: none */
    tenantTrust?: (tenant: string) => TrustRule | null;
    onTrustWarning?: (code: string, scope: string) => void;
  }) {}

  /** The artifact if this scope may use it: another tenant's id is as unknown as one never uploaded. */
  private artifactDir(id: string, scope: TenantScope): string {
    const rec = this.o.artifacts.get(id);
    if (!rec || (scope.tenant && rec.tenant !== scope.tenant.name)) throw new UserError('E_UNKNOWN_ARTIFACT', `no artifact ${id}`, { hint: 'upload it first with POST /v1/artifacts' });
    this.o.artifacts.touch(id); // used now: garbage collection counts its age from here
    return rec.dir;
  }

  /**
   * Artifact id → what still needs it: queued/running deploy operations (their request names the artifact's
   * path) and, in cluster mode, placements (a move or a rescheduled node fetches the artifact again).
   */
  async artifactUsers(): Promise<Map<string, string[]>> {
    const users = new Map<string, string[]>();
    const add = (request: unknown, who: string): void => {
      for (const m of JSON.stringify(request ?? null).matchAll(ARTIFACT_ID_RE)) {
        const list = users.get(m[0]) ?? [];
        if (!list.includes(who)) list.push(who);
        users.set(m[0], list);
      }
    };
    for (const j of await this.o.journal.pendingDeploys()) add(j.request, `operation ${j.id} (deploy ${j.target}, ${j.state})`);
    for (const p of (await this.o.placements?.listPlacements()) ?? []) add(p.request, `deployment ${p.deployment} on node ${p.node}`);
    return users;
  }

  /** DELETE /v1/artifacts/:id — refused while a queued/running deploy (or a placement) still needs it. */
  async deleteArtifact(id: string, scope: TenantScope): Promise<void> {
    const rec = this.o.artifacts.get(id);
    if (!rec || (scope.tenant && rec.tenant !== scope.tenant.name)) throw new UserError('E_UNKNOWN_ARTIFACT', `no artifact ${id}`);
    const users = (await this.artifactUsers()).get(id);
    if (users) {
      throw new UserError('E_ARTIFACT_IN_USE', `artifact ${id} is still used by ${users.join(', ')}`, {
        hint: 'wait for the deploy to finish (or destroy the deployment), then delete the artifact', details: { users },
      });
    }
    this.o.artifacts.delete(id);
  }

  /** Garbage collection: removes artifacts unused for `ttlMs` that nothing pending references. */
  async collectArtifacts(ttlMs: number): Promise<string[]> {
    const users = await this.artifactUsers();
    return this.o.artifacts.sweep(ttlMs, new Set(users.keys()));
  }

  private resolveSource(body: DeployBody, scope: TenantScope): { target: string } {
    const src = body.source;
    if ('package' in src) {
      // a reference into the package store, never a path on the control plane's host
      const ref = normalizeRef(src.package);
      const pkg = new PackageStore(this.o.nodeLayout).get(ref);
      if (!pkg) throw new UserError('E_PACKAGE_NOT_FOUND', `no package ${formatRef(ref)} in the control plane's package store`, { hint: 'upload the package (unikctl deploy uploads local packages) or build it first' });
      return { target: pkg.dir };
    }
    const dir = this.artifactDir(src.artifact, scope);
    if (src.kind !== 'binary') return { target: dir };
    const files = readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile());
    if (files.length !== 1 || !files[0]) throw new UserError('E_INVALID_ARGUMENT', `artifact ${src.artifact} must hold exactly one file to deploy as a binary`);
    return { target: join(dir, files[0]) };
  }

  /** A name a deploy is pending for, or that holds a tenant's reservation (a failed deploy until it is destroyed). */
  private async reserved(name: string): Promise<boolean> {
    return (await this.o.journal.hasPendingDeploy(name)) || (await this.o.journal.reserved(name));
  }

  async deploy(body: DeployBody, traceId: string, headerKey: string | undefined, scope: TenantScope): Promise<DeployResult> {
    const idempotencyKey = scope.key(headerKey ?? body.idempotencyKey ?? null);
    const requestHash = hashRequest({ ...body, idempotencyKey: undefined });
    if (idempotencyKey) {
      const prior = await this.o.journal.byKey(idempotencyKey);
      if (prior) return this.reusedResult(this.sameRequest(prior, requestHash, headerKey ?? body.idempotencyKey ?? ''), scope);
    }
    // a tenant's per-VM defaults, limits, port range and node selector turn into the request itself
    const t = scope.tenant;
    if (t) body = admitForTenant(t, body);
    // fail fast on bad input, exactly like local mode, before anything is journaled
    // a cluster's scheduler weighs memory against each node's capacity; a single node is this host
    const host = this.o.host;
    const valid = validateDeployInput({ ...body, ports: body.ports ?? [], env: body.env ?? [], labels: body.labels ?? [] }, { maxMemoryMiB: host?.maxMemoryMiB });
    if (t?.ports) {
      const outside = valid.ports.find((p) => p.hostPort < (t.ports?.from ?? 0) || p.hostPort > (t.ports?.to ?? 65535));
      if (outside) {
        throw new UserError('E_PORT_NOT_ALLOWED', `host port ${outside.hostPort} is outside tenant ${t.name}'s range ${t.ports.from}-${t.ports.to}`, {
          hint: `publish a host port from ${t.ports.from} to ${t.ports.to}, e.g. -p ${t.ports.from}:${outside.guestPort}`,
        });
      }
    }
    // an existing service of this name (of this tenant: another tenant's is looked up under this one's prefix, so it
    // is never found): the deploy is its next version (or a scale); its front holds the ports
    const svc = body.name !== undefined && body.name.length <= scope.maxNameLength ? await this.serviceOf(scope.inside(body.name)) : null;
    if (host) {
      if (!svc) await host.checkPorts(valid.ports);
      host.requireSpace(); // refused now, not after a 202
    }
    const { target } = this.resolveSource(body, scope);
    const rootfs = body.rootfsArtifact ? this.artifactDir(body.rootfsArtifact, scope) : undefined;
    const resolved = resolveTarget(target, '/', this.o.nodeLayout, rootfs);
    // the service settings are checked now (a bad --check is a 400, not a failed operation); unik.yaml's count too
    const policy = resolveServicePolicy({ flags: body.service ?? {}, yaml: projectServiceYaml(resolved.source)?.deploy, ports: valid.ports });
    const isService = policy !== null || svc !== null;
    // a package is checked against the trust policy before anything is journaled (enforce: refused with its code);
    // the digest checked travels with the operation, so the node boots exactly this image or nothing
    let trust: DeployOperationRequest['trust'];
    if (resolved.source.kind === 'package') {
      const out = checkImage(target, this.o.trust ?? OFF_RULE('controlplane'));
      if (out.warning) this.o.onTrustWarning?.(out.warning.code, 'controlplane');
      // a tenant may require more than the operator (its own keys, enforce), never less: both rules must pass
      const own = t ? this.o.tenantTrust?.(t.name) ?? null : null;
      const mine = own ? checkImage(target, own) : null;
      if (own && mine?.warning) this.o.onTrustWarning?.(mine.warning.code, own.scope);
      trust = { manifestSha256: manifestDigest(target), keyid: (mine?.verified ?? out.verified)?.keyid ?? null };
    }

    const taken = async (n: string): Promise<boolean> =>
      (await this.o.node.has(n)) || (await this.reserved(n));
    let name: string;
    if (body.name !== undefined) {
      if (body.name.length > scope.maxNameLength) {
        throw new UserError('E_INVALID_NAME', `"${body.name}" is longer than the ${scope.maxNameLength} characters a name of tenant ${scope.name ?? ''} may have`, { hint: `use at most ${scope.maxNameLength} characters` });
      }
      name = scope.inside(body.name);
      if (svc?.destroying) {
        // refused now, not by the node later: a deploy admitted meanwhile would outlive the destroy's release of the name's reservation
        throw new UserError('E_NAME_TAKEN', `the app ${body.name} is being destroyed`, { hint: `wait until unikctl status ${body.name} no longer shows it, then deploy again` });
      }
      if (svc) {
        // a new version of a service: one rollout at a time, unless this deploy supersedes the one in progress
        const active = svc.rollout !== null && ['canary', 'progressing', 'reverting'].includes(svc.rollout.phase);
        if (!body.supersede && (active || (await this.o.journal.hasPendingDeploy(name)))) {
          throw new UserError('E_ROLLOUT_IN_PROGRESS', `a deploy of ${body.name} is in progress${svc.rollout && active ? ` (v${svc.rollout.from ?? '-'} → v${svc.rollout.to}, ${svc.rollout.phase})` : ''}`, {
            hint: `wait for it (unikctl status ${body.name}), or deploy again with --supersede to replace it with this version`,
          });
        }
      } else if (await taken(name)) {
        throw new UserError('E_NAME_TAKEN', `a deployment named "${body.name}" already exists`, { hint: `pick another name, or destroy it first` });
      }
    } else {
      const base = sanitizeName(body.nameHint ?? resolved.defaultName).slice(0, scope.maxNameLength - 4).replace(/-+$/, '') || 'app';
      name = scope.inside(base);
      for (let i = 2; await taken(name); i++) name = scope.inside(`${base}-${i}`);
    }
    const request: DeployOperationRequest = {
      target, ports: body.ports ?? [], env: body.env ?? [], debug: Boolean(body.debug), labels: body.labels ?? [], resolvedFrom: resolved.resolvedFrom,
      ...(body.memory !== undefined ? { memory: body.memory } : {}),
      ...(body.cpus !== undefined ? { cpus: body.cpus } : {}),
      ...(rootfs !== undefined ? { rootfs } : {}),
      ...(t ? { tenant: { name: t.name, ...(t.quota.vcpus !== undefined ? { cpus: t.quota.vcpus } : {}), ...(t.quota.memoryMiB !== undefined ? { memoryMiB: t.quota.memoryMiB } : {}) } } : {}),
      ...(trust ? { trust } : {}),
      // `service` marks the operation as a service's deploy (its settings may all come from unik.yaml or the service)
      ...(isService ? { service: body.service ?? {} } : {}),
      ...(isService && body.supersede ? { supersede: true } : {}),
    };
    const quota: QuotaCheck | undefined = t ? tenantQuotaCheck(t, name, { cpus: valid.cpus, memoryMiB: valid.memoryMiB ?? TENANT_DEFAULT_MEMORY_MIB }, isService ? policy ?? svc?.policy ?? null : null, svc !== null) : undefined;
    const { op, created } = await this.o.journal.enqueue({
      id: newId('op'), kind: 'deploy', target: name, idempotencyKey, requestHash, request, maxAttempts: this.o.maxAttempts, traceId, createdAt: Date.now(),
    }, quota);
    if (created) this.o.queue.notify();
    return created ? this.deployResultOf(op, false, scope) : this.reusedResult(op, scope);
  }

  /** The service of this (internal) name on the node, or null (not a service, or the node cannot say now). */
  private async serviceOf(name: string): Promise<ServiceView | null> {
    const s = await this.o.node.status(name).catch(() => null);
    return s?.services?.find((v) => v.name === name) ?? null;
  }

  /** A tenant's limits and usage (GET /v1/quota, and a field of /v1/status for a tenant). */
  async quota(scope: TenantScope): Promise<QuotaView | null> {
    const t = scope.tenant;
    if (!t) return null;
    const artifactBytes = this.o.artifacts.list().filter((a) => a.tenant === t.name).reduce((n, a) => n + a.bytes, 0);
    return { tenant: t.name, quota: t.quota, vm: t.vm, ports: t.ports, used: { ...(await this.o.journal.usage(t.name)), artifactBytes } };
  }

  /** After an upload: a tenant past its stored-artifact quota loses the new artifact (403, nothing else changed). */
  async admitArtifact(id: string, isNew: boolean, scope: TenantScope): Promise<void> {
    const t = scope.tenant;
    const limit = t?.quota.artifactBytes;
    if (!t || limit === undefined) return;
    const mine = this.o.artifacts.list().filter((a) => a.tenant === t.name);
    const total = mine.reduce((n, a) => n + a.bytes, 0);
    if (total <= limit) return;
    const rec = mine.find((a) => a.id === id);
    if (isNew) this.o.artifacts.delete(id);
    const requested = rec?.bytes ?? 0;
    throw quotaExceeded(t.name, 'artifacts', requested, total - requested, limit);
  }

  private sameRequest(prior: QueuedOperation, requestHash: string, key: string): QueuedOperation {
    if (prior.requestHash !== requestHash) {
      throw new UserError('E_IDEMPOTENCY_CONFLICT', `idempotency key "${key}" was used by operation ${prior.id} with a different request`, { hint: 'use a new idempotency key for a different request' });
    }
    return prior;
  }

  /**
   * The answer to a repeated idempotency key: the first operation with its real state — `failed` with its error
   * code once it failed (a retry needs a new key), the deployment's state once it ran, `pending` while queued.
   */
  private async reusedResult(op: QueuedOperation, scope: TenantScope): Promise<DeployResult> {
    const base = this.deployResultOf(op, true, scope);
    if (op.state === 'failed') return { ...base, state: 'failed', error: op.error ? { ...op.error, message: scope.strip(op.error.message) } : null };
    if (op.state === 'queued') return { ...base, error: null };
    const d = await this.o.node.waitFor(op.target, () => true, 0).catch(() => null);
    // a running operation whose last attempt's deployment failed is deciding on a retry: still pending
    const settled = d && (op.state === 'succeeded' || d.state !== 'failed');
    const done = op.state === 'succeeded' ? ((op.result as { state?: Deployment['state'] } | null)?.state ?? 'running') : 'pending';
    return { ...base, deploymentId: d?.id ?? '', state: settled ? d.state : done, error: null };
  }

  private deployResultOf(op: QueuedOperation, reused: boolean, scope: TenantScope): DeployResult {
    const r = op.request as DeployOperationRequest;
    return {
      name: scope.outside(op.target) ?? op.target, deploymentId: '', operationId: op.id, state: 'pending', source: 'project', resolvedFrom: r.resolvedFrom,
      candidates: [], reused, ...(r.service ? { service: true } : {}),
    };
  }

  async destroy(body: DestroyBody, traceId: string, scope: TenantScope): Promise<DestroyResult[]> {
    const names = [...new Set(body.names)];
    const onNode = await this.o.node.status();
    const live = new Set([...onNode.deployments.map((d) => d.name), ...(onNode.services ?? []).map((v) => v.name)]);
    const missing: string[] = [];
    // another tenant's name is looked up under this tenant's prefix: it is missing exactly like a name never used
    for (const n of names) if (!live.has(scope.inside(n)) && !(await this.reserved(scope.inside(n)))) missing.push(n);
    if (missing.length > 0) {
      throw describeMissingDeployment(missing.join('", "'));
    }
    const graceMs = Math.round((body.timeoutSeconds ?? 10) * 1000);
    const out: DestroyResult[] = [];
    for (const name of names) {
      const key = scope.key(body.idempotencyKey ? `${body.idempotencyKey}/${name}` : null);
      const { op, created } = await this.o.journal.enqueue({
        id: newId('op'), kind: 'destroy', target: scope.inside(name), idempotencyKey: key, requestHash: hashRequest({ name, graceMs }), request: { graceMs },
        maxAttempts: this.o.maxAttempts, traceId, createdAt: Date.now(),
      });
      if (created) this.o.queue.notify();
      out.push({ name, operationId: op.id, state: op.state === 'succeeded' ? 'gone' : 'destroying' });
    }
    return out;
  }

  /** The newest journaled operation on a deployment name (null when the journal has none). */
  async lastOperation(name: string): Promise<{ kind: string; state: string; createdAt: number } | null> {
    const [op] = await this.o.journal.recent(1, name);
    return op ? { kind: op.kind, state: op.state, createdAt: op.createdAt } : null;
  }

  async status(name: string | undefined, scope: TenantScope): Promise<StatusResult> {
    const nodeStatus = await this.o.node.status().catch(() => ({ deployments: [], operations: [] }) as StatusResult);
    const deployments: DeploymentView[] = [...nodeStatus.deployments];
    const known = new Set(deployments.map((d) => d.name));
    for (const j of await this.o.journal.pendingDeploys()) {
      if (known.has(j.target)) continue;
      deployments.push(placeholder(j));
    }
    // a tenant sees its own deployments and operations, under its own names
    const mine = deployments.flatMap((d) => {
      const outside = scope.outside(d.name);
      return outside === null ? [] : [{ ...d, name: outside, reason: scope.strip(d.reason) }];
    });
    const recent = name ? await this.o.journal.recent(10, scope.inside(name)) : await this.recentOf(scope, 15);
    const operations = recent.map((j) => {
      const o = toOperation(j);
      // an error the node wrote (a failed rollout names its replica) reads with the tenant's names too
      return { ...o, target: scope.outside(j.target) ?? j.target, idempotencyKey: scope.keyOutside(j.idempotencyKey), error: o.error ? { ...o.error, message: scope.strip(o.error.message) } : null };
    });
    // the node's operation of a rollout is this control plane's deploy operation that followed it (once it ended)
    const ours = new Map<string, string>();
    const withResults = !nodeStatus.services?.length ? [] : name ? recent : await this.o.journal.recent(100);
    for (const j of withResults) {
      const nodeOp = (j.result as { nodeOperationId?: string } | null)?.nodeOperationId;
      if (j.kind === 'deploy' && nodeOp) ours.set(nodeOp, j.id);
    }
    const services = (nodeStatus.services ?? []).flatMap((v) => {
      const outside = scope.outside(v.name);
      if (outside === null || (name && outside !== name)) return [];
      const rollout = v.rollout ? { ...v.rollout, operationId: ours.get(v.rollout.operationId) ?? v.rollout.operationId, reason: scope.strip(v.rollout.reason) } : null;
      // a tenant's replicas (`acme--web.1`) and the reasons naming them read without the prefix, like every name it sees
      return [{
        ...v, name: outside, rollout,
        replicas: v.replicas.map((r) => ({ ...r, name: scope.outside(r.name) ?? r.name, reason: scope.strip(r.reason) })),
        versions: v.versions.map((x) => ({ ...x, reason: scope.strip(x.reason) })),
        crashLoop: v.crashLoop ? { ...v.crashLoop, reason: scope.strip(v.crashLoop.reason) ?? '' } : null,
      }];
    });
    const replicas = new Set(services.flatMap((v) => v.replicas.map((r) => r.name)));
    const filtered = name ? mine.filter((d) => d.name === name || replicas.has(d.name)) : mine;
    if (name && filtered.length === 0 && operations.length === 0 && services.length === 0) {
      throw describeMissingDeployment(name);
    }
    return { deployments: filtered, operations, services };
  }

  /** The newest operations of a scope (a tenant's are found among a wider window of everyone's). */
  private async recentOf(scope: TenantScope, limit: number): Promise<QueuedOperation[]> {
    if (!scope.tenant) return this.o.journal.recent(limit);
    return (await this.o.journal.recent(limit * 20)).filter((j) => scope.outside(j.target) !== null).slice(0, limit);
  }

  /** Cordon a node and queue a move for each of its workloads (cluster mode). */
  async drain(node: string, traceId: string): Promise<string[]> {
    if (!this.o.fleet) return [];
    const moved: string[] = [];
    for (const p of await this.o.fleet.placementsOn(node)) {
      const { created } = await this.o.journal.enqueue({
        id: newId('op'), kind: 'move', target: p.deployment, idempotencyKey: `drain:${node}:${p.deployment}:${p.placedAt}`,
        requestHash: hashRequest({ from: node, placedAt: p.placedAt }), request: { from: node, sourceDown: false, graceMs: 10_000 },
        maxAttempts: this.o.maxAttempts, traceId, createdAt: Date.now(),
      });
      if (created) this.o.queue.notify();
      moved.push(p.deployment);
    }
    return moved;
  }

  /** A node that stopped heartbeating: its workloads are recreated elsewhere (run by the leader). */
  async rescheduleDownNodes(nodes: Array<{ name: string; status: string }>): Promise<number> {
    const fleet = this.o.fleet;
    if (!fleet) return 0;
    let n = 0;
    for (const node of nodes.filter((x) => x.status === 'down')) {
      for (const p of await fleet.placementsOn(node.name)) {
        const { created } = await this.o.journal.enqueue({
          id: newId('op'), kind: 'move', target: p.deployment, idempotencyKey: `down:${node.name}:${p.deployment}:${p.placedAt}`,
          requestHash: hashRequest({ from: node.name, placedAt: p.placedAt }), request: { from: node.name, sourceDown: true, graceMs: 0 },
          maxAttempts: 1_000, traceId: newTraceId(), createdAt: Date.now(),
        });
        if (created) {
          n++;
          this.o.queue.notify();
        }
      }
    }
    return n;
  }

  async *logs(req: { name: string; follow: boolean; tail?: number; since?: string; signal: AbortSignal }, scope: TenantScope): AsyncIterable<LogEntry> {
    const name = scope.inside(req.name);
    // the node's own answer would name the prefixed name: a tenant gets the same words for any name it does not have
    if (scope.tenant && !(await this.o.node.has(name))) throw describeMissingDeployment(req.name);
    if (!scope.tenant) {
      yield* this.o.node.logs({ ...req, name });
      return;
    }
    // a service's merged logs name each line's replica (`src`), and its controller's lines name replicas: without the prefix
    for await (const e of this.o.node.logs({ ...req, name })) {
      const src = e.src === undefined ? undefined : scope.outside(e.src) ?? e.src;
      yield { ...e, ...(src !== undefined ? { src } : {}), ...(e.src === name ? { m: scope.strip(e.m) ?? e.m } : {}) };
    }
  }
}

function placeholder(j: QueuedOperation): DeploymentView {
  const now = new Date(j.createdAt).toISOString();
  return {
    name: j.target, id: '', state: 'pending', exitCode: null, code: null, reason: j.error ? `retrying after ${j.error.code}: ${j.error.message}` : null,
    ports: ((j.request as DeployOperationRequest).ports ?? []).map((p) => formatPort(parsePort(p))),
    imageBytes: null, image: null, pack: null, mode: null, accel: null, bootMs: null, boot: {}, uptimeMs: null,
    createdAt: now, startedAt: null, endedAt: null, metrics: { cpuSeconds: null, rssBytes: null, supervisorRssBytes: null },
    signedBy: (j.request as DeployOperationRequest).trust?.keyid ?? null, trust: null,
  };
}

export function toOperation(j: QueuedOperation): Operation {
  return {
    id: j.id, kind: j.kind, target: j.target, state: j.state, idempotencyKey: j.idempotencyKey, requestHash: j.requestHash,
    error: j.state === 'failed' || j.state === 'queued' ? j.error : null, createdAt: j.createdAt, updatedAt: j.updatedAt, endedAt: j.endedAt,
  };
}

export const newTraceId = (): string => randomBytes(8).toString('hex');

/**
 * What a tenant's deploy reserves of its quota. A plain deployment: one VM. A service: its rollout's worst case of
 * VMs at once (serviceWorstCaseVms: replicas + surge, surge ones included) × the per-VM vCPUs and memory; `policy` is
 * the deploy's own, or the existing service's when the deploy changes none (the node keeps it). The next deploy of an
 * existing service (a version or a scale) replaces its reservation (`replace`), it does not add to it.
 */
export function tenantQuotaCheck(t: TenantSpec, name: string, perVm: { cpus: number; memoryMiB: number }, policy: Parameters<typeof serviceWorstCaseVms>[0] | null, replace: boolean): QuotaCheck {
  const vms = policy ? serviceWorstCaseVms(policy) : 1;
  return {
    tenant: t.name, name, quota: t.quota, reservation: { vcpus: perVm.cpus * vms, memoryMiB: perVm.memoryMiB * vms, ...(policy ? { vms } : {}) },
    ...(replace ? { replace: true } : {}),
  };
}

/** A tenant's per-VM defaults and limits, and its node selector ANDed with the deploy's labels. */
function admitForTenant(t: TenantSpec, body: DeployBody): DeployBody {
  const memoryMiB = body.memory !== undefined ? parseMemoryFlag(body.memory, undefined) : (t.vm.memoryMiB.default ?? TENANT_DEFAULT_MEMORY_MIB);
  const maxMem = t.vm.memoryMiB.max;
  if (maxMem !== undefined && memoryMiB > maxMem) throw quotaExceeded(t.name, 'vm.memory', memoryMiB, 0, maxMem);
  const cpus = body.cpus ?? t.vm.cpus.default ?? 1;
  const maxCpus = t.vm.cpus.max;
  if (maxCpus !== undefined && cpus > maxCpus) throw quotaExceeded(t.name, 'vm.cpus', cpus, 0, maxCpus);
  const labels = parseLabels(body.labels ?? []);
  for (const [k, v] of Object.entries(t.selector)) {
    if (labels[k] !== undefined && labels[k] !== v) {
      throw new UserError('E_INVALID_ARGUMENT', `--label ${k}=${labels[k]} contradicts tenant ${t.name}'s node selector ${k}=${v}`, { hint: `leave --label ${k} out (your tenant places on ${k}=${v})` });
    }
    labels[k] = v;
  }
  return { ...body, memory: `${memoryMiB}M`, cpus, labels: formatLabels(labels) };
}
