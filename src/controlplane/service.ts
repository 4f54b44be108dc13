import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, DeployResult, DeploymentView, DestroyResult, StatusResult } from '../engine/client.js';
import { validateDeployInput } from '../engine/deploy-input.js';
import { formatPort, parsePort } from '../util/port.js';
import { resolveTarget } from '../engine/resolve.js';
import { formatRef, normalizeRef, PackageStore } from '../image/package-store.js';
import { UserError } from '../errors.js';
import type { HomeLayout } from '../paths.js';
import type { LogEntry } from '../runtime/logstore.js';
import type { Deployment, Operation } from '../store/types.js';
import { newId, sanitizeName } from '../util/ids.js';
import type { ArtifactStore } from '../store/artifacts.js';
import type { Job, JobStore } from './journal.js';
import type { PlacementStore } from './nodes.js';
import type { Queue } from './queue.js';
import type { DeployJobRequest } from './runner.js';
import type { Fleet } from './fleet.js';
import type { HostAdmission } from './host-admission.js';
import { checkImage, manifestDigest, OFF_RULE } from '../image/trust.js';
import type { TrustRule } from '../store/types.js';

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
}

export interface DestroyBody { names: string[]; timeoutSeconds?: number; idempotencyKey?: string; }

const ARTIFACT_ID_RE = /art_[0-9a-f]{16}/g;

const hashRequest = (v: unknown): string => createHash('sha256').update(JSON.stringify(v)).digest('hex');

/** The control plane's semantics, independent of HTTP: validate, journal, and read back state. */
export class ControlPlane {
  constructor(private readonly o: {
    journal: JobStore; queue: Queue; node: Client; fleet: Fleet | null; host: HostAdmission | null; nodeLayout: HomeLayout; artifacts: ArtifactStore; maxAttempts: number;
    /** cluster mode: placements keep the deploy request (and so the artifact) a move recreates the workload from */
    placements?: PlacementStore;
    /** the control plane's trust-policy rule (default off) and where a warn-mode failure is counted */
    trust?: TrustRule;
    onTrustWarning?: (code: string) => void;
  }) {}

  private artifactDir(id: string): string {
    const rec = this.o.artifacts.get(id);
    if (!rec) throw new UserError('E_UNKNOWN_ARTIFACT', `no artifact ${id}`, { hint: 'upload it first with POST /v1/artifacts' });
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
  async deleteArtifact(id: string): Promise<void> {
    if (!this.o.artifacts.get(id)) throw new UserError('E_UNKNOWN_ARTIFACT', `no artifact ${id}`);
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

  private resolveSource(body: DeployBody): { target: string } {
    const src = body.source;
    if ('package' in src) {
      // a reference into the package store, never a path on the control plane's host
      const ref = normalizeRef(src.package);
      const pkg = new PackageStore(this.o.nodeLayout).get(ref);
      if (!pkg) throw new UserError('E_PACKAGE_NOT_FOUND', `no package ${formatRef(ref)} in the control plane's package store`, { hint: 'upload the package (unikctl deploy uploads local packages) or build it first' });
      return { target: pkg.dir };
    }
    const dir = this.artifactDir(src.artifact);
    if (src.kind !== 'binary') return { target: dir };
    const files = readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile());
    if (files.length !== 1 || !files[0]) throw new UserError('E_INVALID_ARGUMENT', `artifact ${src.artifact} must hold exactly one file to deploy as a binary`);
    return { target: join(dir, files[0]) };
  }

  private async reserved(name: string): Promise<boolean> {
    return this.o.journal.hasPendingDeploy(name);
  }

  async deploy(body: DeployBody, traceId: string, headerKey?: string): Promise<DeployResult> {
    const idempotencyKey = headerKey ?? body.idempotencyKey ?? null;
    const requestHash = hashRequest({ ...body, idempotencyKey: undefined });
    if (idempotencyKey) {
      const prior = await this.o.journal.byKey(idempotencyKey);
      if (prior) return this.reusedResult(this.sameRequest(prior, requestHash, idempotencyKey));
    }
    // fail fast on bad input, exactly like local mode, before anything is journaled
    // a cluster's scheduler weighs memory against each node's capacity; a single node is this host
    const host = this.o.host;
    const valid = validateDeployInput({ ...body, ports: body.ports ?? [], env: body.env ?? [], labels: body.labels ?? [] }, { maxMemoryMiB: host?.maxMemoryMiB });
    if (host) {
      await host.checkPorts(valid.ports);
      host.requireSpace(); // refused now, not after a 202
    }
    const { target } = this.resolveSource(body);
    const rootfs = body.rootfsArtifact ? this.artifactDir(body.rootfsArtifact) : undefined;
    const resolved = resolveTarget(target, '/', this.o.nodeLayout, rootfs);
    // a package is checked against the trust policy before anything is journaled (enforce: refused with its code);
    // the digest checked travels with the job, so the node boots exactly this image or nothing
    let trust: DeployJobRequest['trust'];
    if (resolved.source.kind === 'package') {
      const out = checkImage(target, this.o.trust ?? OFF_RULE('controlplane'));
      if (out.warning) this.o.onTrustWarning?.(out.warning.code);
      trust = { manifestSha256: manifestDigest(target), keyid: out.verified?.keyid ?? null };
    }

    const taken = async (n: string): Promise<boolean> =>
      (await this.o.node.has(n)) || (await this.reserved(n));
    let name = body.name;
    if (name !== undefined) {
      if (await taken(name)) {
        throw new UserError('E_NAME_TAKEN', `a deployment named "${name}" already exists`, { hint: `pick another name, or destroy it first` });
      }
    } else {
      const base = sanitizeName(body.nameHint ?? resolved.defaultName);
      name = base;
      for (let i = 2; await taken(name); i++) name = `${base}-${i}`;
    }
    const request: DeployJobRequest = {
      target, ports: body.ports ?? [], env: body.env ?? [], debug: Boolean(body.debug), labels: body.labels ?? [], resolvedFrom: resolved.resolvedFrom,
      ...(body.memory !== undefined ? { memory: body.memory } : {}),
      ...(body.cpus !== undefined ? { cpus: body.cpus } : {}),
      ...(rootfs !== undefined ? { rootfs } : {}),
      ...(trust ? { trust } : {}),
    };
    const { job, created } = await this.o.journal.enqueue({
      id: newId('op'), kind: 'deploy', target: name, idempotencyKey, requestHash, request, maxAttempts: this.o.maxAttempts, traceId, createdAt: Date.now(),
    });
    if (created) this.o.queue.notify();
    return created ? this.deployResultOf(job, false) : this.reusedResult(job);
  }

  private sameRequest(prior: Job, requestHash: string, key: string): Job {
    if (prior.requestHash !== requestHash) {
      throw new UserError('E_IDEMPOTENCY_CONFLICT', `idempotency key "${key}" was used by operation ${prior.id} with a different request`, { hint: 'use a new idempotency key for a different request' });
    }
    return prior;
  }

  /**
   * The answer to a repeated idempotency key: the first operation with its real state — `failed` with its error
   * code once it failed (a retry needs a new key), the deployment's state once it ran, `pending` while queued.
   */
  private async reusedResult(job: Job): Promise<DeployResult> {
    const base = this.deployResultOf(job, true);
    if (job.state === 'failed') return { ...base, state: 'failed', error: job.error };
    if (job.state === 'queued') return { ...base, error: null };
    const d = await this.o.node.waitFor(job.target, () => true, 0).catch(() => null);
    // a running job whose last attempt's deployment failed is deciding on a retry: still pending
    const settled = d && (job.state === 'succeeded' || d.state !== 'failed');
    const done = job.state === 'succeeded' ? ((job.result as { state?: Deployment['state'] } | null)?.state ?? 'running') : 'pending';
    return { ...base, deploymentId: d?.id ?? '', state: settled ? d.state : done, error: null };
  }

  private deployResultOf(job: Job, reused: boolean): DeployResult {
    const r = job.request as DeployJobRequest;
    return {
      name: job.target, deploymentId: '', operationId: job.id, state: 'pending', source: 'project', resolvedFrom: r.resolvedFrom,
      candidates: [], reused,
    };
  }

  async destroy(body: DestroyBody, traceId: string): Promise<DestroyResult[]> {
    const names = [...new Set(body.names)];
    const live = new Set((await this.o.node.status()).deployments.map((d) => d.name));
    const missing: string[] = [];
    for (const n of names) if (!live.has(n) && !(await this.reserved(n))) missing.push(n);
    if (missing.length > 0) {
      throw new UserError('E_UNKNOWN_APP', `no deployment named "${missing.join('", "')}"`, { hint: 'see the deployments with unikctl status' });
    }
    const graceMs = Math.round((body.timeoutSeconds ?? 10) * 1000);
    const out: DestroyResult[] = [];
    for (const name of names) {
      const key = body.idempotencyKey ? `${body.idempotencyKey}/${name}` : null;
      const { job, created } = await this.o.journal.enqueue({
        id: newId('op'), kind: 'destroy', target: name, idempotencyKey: key, requestHash: hashRequest({ name, graceMs }), request: { graceMs },
        maxAttempts: this.o.maxAttempts, traceId, createdAt: Date.now(),
      });
      if (created) this.o.queue.notify();
      out.push({ name, operationId: job.id, state: job.state === 'succeeded' ? 'gone' : 'destroying' });
    }
    return out;
  }

  /** The newest journaled operation on a deployment name (null when the journal has none). */
  async lastOperation(name: string): Promise<{ kind: string; state: string; createdAt: number } | null> {
    const [job] = await this.o.journal.recent(1, name);
    return job ? { kind: job.kind, state: job.state, createdAt: job.createdAt } : null;
  }

  async status(name?: string): Promise<StatusResult> {
    const nodeStatus = await this.o.node.status().catch(() => ({ deployments: [], operations: [] }) as StatusResult);
    const deployments: DeploymentView[] = [...nodeStatus.deployments];
    const known = new Set(deployments.map((d) => d.name));
    for (const j of await this.o.journal.pendingDeploys()) {
      if (known.has(j.target)) continue;
      deployments.push(placeholder(j));
    }
    const filtered = name ? deployments.filter((d) => d.name === name) : deployments;
    const operations = (await this.o.journal.recent(name ? 10 : 15, name)).map(toOperation);
    if (name && filtered.length === 0 && operations.length === 0) {
      throw new UserError('E_UNKNOWN_APP', `no deployment named "${name}"`, { hint: 'see the deployments with unikctl status' });
    }
    return { deployments: filtered, operations };
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

  logs(req: { name: string; follow: boolean; tail?: number; since?: string; signal: AbortSignal }): AsyncIterable<LogEntry> {
    return this.o.node.logs(req);
  }
}

function placeholder(j: Job): DeploymentView {
  const now = new Date(j.createdAt).toISOString();
  return {
    name: j.target, id: '', state: 'pending', exitCode: null, code: null, reason: j.error ? `retrying after ${j.error.code}: ${j.error.message}` : null,
    ports: ((j.request as DeployJobRequest).ports ?? []).map((p) => formatPort(parsePort(p))),
    imageBytes: null, image: null, pack: null, mode: null, accel: null, bootMs: null, boot: {}, uptimeMs: null,
    createdAt: now, startedAt: null, endedAt: null, metrics: { cpuSeconds: null, rssBytes: null, supervisorRssBytes: null },
    signedBy: (j.request as DeployJobRequest).trust?.keyid ?? null, trust: null,
  };
}

export function toOperation(j: Job): Operation {
  return {
    id: j.id, kind: j.kind, target: j.target, state: j.state, idempotencyKey: j.idempotencyKey, requestHash: j.requestHash,
    error: j.state === 'failed' || j.state === 'queued' ? j.error : null, createdAt: j.createdAt, updatedAt: j.updatedAt, endedAt: j.endedAt,
  };
}

export const newTraceId = (): string => randomBytes(8).toString('hex');
