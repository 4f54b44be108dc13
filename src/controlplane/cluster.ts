import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AgentClient, type AgentDeployRequest } from './agent-client.js';
import { PackageStore, normalizeRef } from '../image/package-store.js';
import { parseSizeMiB } from '../util/size.js';
import { parseLabels } from '../util/labels.js';
import { packBundle } from '../engine/bundle.js';
import type { Client, DeployRequest, DeployResult, DeploymentView, DestroyResult, LogsRequest, ServiceView, StatusResult } from '../engine/client.js';
import { UserError, isUserError } from '../errors.js';
import type { HomeLayout } from '../paths.js';
import type { LogEntry } from '../runtime/logstore.js';
import { sleep } from '../util/proc.js';
import type { ArtifactStore } from '../store/artifacts.js';
import type { NodeRecord, NodeStore, Placement, PlacementStore } from './node-store.js';
import { place, type NodeInfo, type Policy } from './scheduler.js';
import { tenantOfName } from './tenants.js';
import type { Fleet } from './fleet.js';
import { describeMissingDeployment } from '../runtime/supervisor.js';

const LIVE = new Set(['pending', 'building', 'starting', 'running']);

/**
 * The control plane's view of a cluster as one `Client`: deploy schedules onto a node agent and records the
 * placement; destroy, status and logs are forwarded to the node that runs the deployment (CP-6).
 */
export class ClusterClient implements Client, Fleet {
  /** Placement decisions are serialized: two workers must not both fill the last slot of a node. */
  private placing: Promise<unknown> = Promise.resolve();
  /** Capacity held by moves whose copy is starting (their placement still names the old node). */
  private readonly inFlight = new Map<string, { node: string; cpus: number; memoryMiB: number }>();

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.placing.then(fn, fn);
    this.placing = next.catch(() => undefined);
    return next;
  }

  constructor(private readonly o: {
    store: NodeStore & PlacementStore;
    artifacts: ArtifactStore;
    policy: Policy;
    staleAfterMs: number;
    /** the control plane's own package store, for deploys by reference */
    layout: HomeLayout;
  }) {}

  close(): void {}

  private async nodeInfos(): Promise<NodeInfo[]> {
    const [nodes, placements] = await Promise.all([this.o.store.list(), this.o.store.listPlacements()]);
    return nodes.map((n) => {
      const placed = placements.filter((p) => p.node === n.name);
      const moving = [...this.inFlight.entries()].filter(([, m]) => m.node === n.name);
      const mine = [...placed, ...moving.map(([, m]) => m)];
      return {
        name: n.name, status: n.status, cordoned: n.cordoned, labels: n.labels, lastHeartbeatAt: n.lastHeartbeatAt,
        capacity: { cpus: n.capacity.cpus ?? 0, memoryMiB: n.capacity.memoryMiB ?? 0 },
        allocated: { cpus: mine.reduce((a, p) => a + p.cpus, 0), memoryMiB: mine.reduce((a, p) => a + p.memoryMiB, 0), vms: mine.length },
        tenantVms: tenantCounts([...placed.map((p) => p.deployment), ...moving.map(([name]) => name)]),
      };
    });
  }

  /** A client for the node's agent, authenticated with the key that agent learnt when it joined. */
  private async agentFor(record: NodeRecord): Promise<AgentClient> {
    const identity = await this.o.store.identity(record.name);
    if (!identity) throw new UserError('E_UNKNOWN_NODE', `node ${record.name} has not joined`, { hint: 'start its agent with --join-token' });
    return new AgentClient(record.address, identity.agentKey);
  }

  private async agentOf(node: string): Promise<{ agent: AgentClient; record: NodeRecord }> {
    const record = await this.o.store.get(node);
    if (!record) throw new UserError('E_UNKNOWN_NODE', `node ${node} is not registered`);
    return { agent: await this.agentFor(record), record };
  }

  /** The artifact an agent fetches for a deploy target that lives on the control plane host. */
  private async sourceOf(target: string): Promise<AgentDeployRequest['source']> {
    const kindOf = (path: string): 'binary' | 'package' | 'project' =>
      statSync(path).isFile() ? 'binary' : existsSync(join(path, 'manifest.json')) ? 'package' : 'project';
    const m = /\/(art_[0-9a-f]{16})\//.exec(target);
    if (m?.[1] && existsSync(target)) return { artifact: m[1], kind: kindOf(target) };
    // admission resolves a package to its directory in the package store; a reference is looked up there
    const dir = existsSync(join(target, 'manifest.json')) ? target : new PackageStore(this.o.layout).get(normalizeRef(target))?.dir;
    if (!dir) throw new UserError('E_PACKAGE_NOT_FOUND', `${target} is neither an uploaded artifact nor in the control plane's package store`);
    const bundle = await packBundle(dir, { exclude: [] });
    try {
      const { createReadStream } = await import('node:fs');
      return { artifact: (await this.o.artifacts.put(createReadStream(bundle.file))).id, kind: 'package' };
    } finally {
      bundle.cleanup();
    }
  }

  private async schedule(req: { name: string; cpus: number; memoryMiB: number; labels: Record<string, string>; avoid?: string[] }): Promise<string> {
    // a tenant's deployment names carry the tenant (tenants.ts): dedicated nodes and spreading follow from it
    const tenant = tenantOfName(req.name);
    const r = place(await this.nodeInfos(), { ...req, ...(tenant ? { tenant } : {}) }, { policy: this.o.policy, staleAfterMs: this.o.staleAfterMs });
    if (!r.ok) throw new UserError('E_NO_CAPACITY', r.reason, { hint: 'add or uncordon nodes, free capacity, or relax --label constraints; the deployment stays pending and is placed when capacity appears' });
    return r.node;
  }

  async deploy(req: DeployRequest): Promise<DeployResult> {
    const name = req.name ?? '';
    const idempotencyKey = req.idempotencyKey ?? '';
    if (!name || !idempotencyKey) throw new UserError('E_INTERNAL', 'cluster deploys need a name and an idempotency key');
    const p = await this.serialized(async () => {
      const existing = await this.o.store.getPlacement(name);
      const labels = parseLabels(req.labels);
      const memoryMiB = req.memory ? (parseSizeMiB(req.memory) ?? 128) : 128; // validated at admission
      const cpus = req.cpus ?? 1;
      // a service's replicas all run on its node (behind its front): it is placed with room for all of them
      const replicas = req.service !== undefined ? Math.max(1, Number(req.service.replicas) || 1) : 1;
      const requestOf = async (): Promise<AgentDeployRequest> => ({
        name, source: await this.sourceOf(req.target), ports: req.ports, env: req.env, debug: req.debug, labels: req.labels, idempotencyKey,
        ...(req.memory !== undefined ? { memory: req.memory } : {}), cpus, ...(req.tenant ? { tenant: req.tenant } : {}),
        ...(req.expectManifestSha256 ? { expectManifestSha256: req.expectManifestSha256 } : {}),
        ...(req.service !== undefined ? { service: req.service } : {}), ...(req.supersede ? { supersede: true } : {}),
      });
      if (existing) {
        // the same operation replayed: the same request; a service's next deploy: its new version on the same node
        if (req.service === undefined || (existing.request as AgentDeployRequest).idempotencyKey === idempotencyKey) return existing;
        const request = await requestOf();
        // without --replicas the count stays what it was (so does the room the placement holds)
        const next: Placement = { ...existing, ...(req.service.replicas !== undefined ? { cpus: cpus * replicas, memoryMiB: memoryMiB * replicas } : {}), request };
        await this.o.store.grantArtifact({ node: existing.node, deployment: name, artifact: request.source.artifact });
        await this.o.store.setPlacement(next);
        return next;
      }
      const node = await this.schedule({ name, cpus: cpus * replicas, memoryMiB: memoryMiB * replicas, labels });
      const request = await requestOf();
      const placed: Placement = { deployment: name, node, cpus: cpus * replicas, memoryMiB: memoryMiB * replicas, request, placedAt: Date.now() };
      // the node may fetch the artifact from now on (and only that node): granted before a replay could skip it
      await this.o.store.grantArtifact({ node, deployment: name, artifact: request.source.artifact });
      await this.o.store.setPlacement(placed); // persisted before the agent starts anything: a replay finds it
      return placed;
    });
    const { agent } = await this.agentOf(p.node);
    const r = await agent.deploy(p.request as AgentDeployRequest);
    return { ...r, resolvedFrom: `${r.resolvedFrom} on node ${p.node}` };
  }

  /** Drain / node failure: bring the workload up on another node, then remove it from the old one. */
  async move(name: string, from: string, opts: { sourceDown: boolean; graceMs: number }): Promise<{ name: string; from: string; to: string } | null> {
    const p = await this.o.store.getPlacement(name);
    if (!p || p.node !== from) return null; // already moved (a replayed operation) or destroyed meanwhile
    const labels = parseLabels((p.request as AgentDeployRequest).labels ?? []);
    const request: AgentDeployRequest = { ...(p.request as AgentDeployRequest), idempotencyKey: `move:${name}:${from}:${p.placedAt}` };
    // decisions are serialized, and the target's share is held until the new placement is recorded, so concurrent
    // moves never fill the same free slot twice
    const to = await this.serialized(async () => {
      const node = await this.schedule({ name, cpus: p.cpus, memoryMiB: p.memoryMiB, labels, avoid: [from] });
      this.inFlight.set(name, { node, cpus: p.cpus, memoryMiB: p.memoryMiB });
      return node;
    });
    try {
      const moved: Placement = { ...p, node: to, request, placedAt: Date.now() };
      await this.o.store.grantArtifact({ node: to, deployment: name, artifact: request.source.artifact });
      const { agent } = await this.agentOf(to);
      // a live copy there is this move's, replayed after a restart: adopt it. Otherwise deploy with a key of this
      // try: a retried move must boot again, not be answered with the failed copy of the previous try
      const here = async (): Promise<StatusResult> => agent.status(name).catch((e: unknown) => {
        if (isUserError(e) && e.code === 'E_UNKNOWN_APP') return { deployments: [], operations: [] };
        throw e;
      });
      const first = await here();
      const copy = first.deployments.find((x) => x.name === name) ?? first.services?.find((x) => x.name === name);
      if (!copy) await agent.deploy({ ...request, idempotencyKey: `${request.idempotencyKey}:${Date.now()}` });
      const deadline = Date.now() + 30 * 60_000;
      for (;;) {
        const now = await here();
        // a service starts over on its new node (version 1 of its latest deploy): moved once it serves
        const v = now.services?.find((x) => x.name === name);
        if (v) {
          const moving = v.rollout !== null && ['canary', 'progressing', 'reverting'].includes(v.rollout.phase);
          if (v.current !== null && !moving) break;
          if (v.current === null && !moving && v.rollout !== null) {
            await destroyOn(agent, name, 0).catch(() => undefined);
            throw new UserError(v.rollout.code ?? 'E_ROLLOUT_FAILED', `moving ${name} to ${to}: ${v.rollout.reason ?? v.rollout.phase}`);
          }
          if (Date.now() > deadline) throw new UserError('E_TRANSIENT', `moving ${name} to ${to}: not serving yet`);
          await sleep(300);
          continue;
        }
        const d = now.deployments.find((x) => x.name === name);
        if (d?.state === 'running') break;
        if (d && (d.state === 'failed' || d.state === 'exited')) {
          // the failed copy is removed, so a retry starts clean and the node does not keep a copy nobody places
          await destroyOn(agent, name, 0).catch(() => undefined);
          throw new UserError(d.code ?? 'E_DEPLOY_FAILED', `moving ${name} to ${to}: ${d.reason ?? d.state}`);
        }
        if (Date.now() > deadline) throw new UserError('E_TRANSIENT', `moving ${name} to ${to}: not running yet`);
        await sleep(300);
      }
      await this.o.store.setPlacement(moved);
    } finally {
      this.inFlight.delete(name);
    }
    if (!opts.sourceDown) {
      const old = await this.agentOf(from).catch(() => null);
      await old?.agent.destroy([name], opts.graceMs).catch(() => undefined);
    }
    await this.o.store.revokeArtifacts(name, from);
    return { name, from, to };
  }

  async destroy(names: string[], opts: { graceMs: number }): Promise<DestroyResult[]> {
    const out: DestroyResult[] = [];
    for (const name of names) {
      const p = await this.o.store.getPlacement(name);
      if (!p) throw new UserError('E_UNKNOWN_APP', `no deployment named "${name}"`);
      const node = await this.agentOf(p.node).catch(() => null);
      if (node && node.record.status === 'ready') {
        try {
          await destroyOn(node.agent, name, opts.graceMs);
        } catch (e) {
          if (!(isUserError(e) && e.code === 'E_UNKNOWN_APP')) throw e;
        }
      }
      await this.o.store.deletePlacement(name);
      await this.o.store.revokeArtifacts(name);
      out.push({ name, operationId: '', state: 'gone' });
    }
    return out;
  }

  async status(name?: string): Promise<StatusResult> {
    if (name !== undefined) return this.statusOf(name);
    const [nodes, placements] = await Promise.all([this.o.store.list(), this.o.store.listPlacements()]);
    const views: DeploymentView[] = [];
    const services: ServiceView[] = [];
    const reported = new Set<string>();
    await Promise.all(nodes.filter((n) => n.status === 'ready').map(async (n) => {
      const s = await this.agentFor(n).then((a) => a.status()).catch(() => null);
      // an agent may still hold a copy that was moved away: report what the placement says
      const here = (x: string): boolean => {
        const p = placements.find((y) => y.deployment === x);
        return !p || p.node === n.name;
      };
      for (const v of s?.services ?? []) {
        if (!here(v.name)) continue;
        services.push(v);
        reported.add(v.name);
      }
      const replicas = new Set(services.flatMap((v) => v.replicas.map((r) => r.name)));
      for (const d of s?.deployments ?? []) {
        if (!here(d.name) && !replicas.has(d.name)) continue;
        views.push({ ...d, node: n.name } as DeploymentView);
        reported.add(d.name);
      }
    }));
    for (const p of placements) {
      if (reported.has(p.deployment)) continue;
      views.push(placeholderOf(p, nodes.find((n) => n.name === p.node)));
    }
    views.sort((a, b) => a.name.localeCompare(b.name));
    services.sort((a, b) => a.name.localeCompare(b.name));
    return { deployments: views, operations: [], services };
  }

  /** One app: asked of the node its placement names (a service comes with its replicas and the node's operations on it). */
  private async statusOf(name: string): Promise<StatusResult> {
    const p = await this.o.store.getPlacement(name);
    if (!p) return { deployments: [], operations: [], services: [] };
    const node = await this.o.store.get(p.node);
    let s: StatusResult | null = null;
    if (node?.status === 'ready') {
      try {
        s = await (await this.agentFor(node)).status(name);
      } catch (e) {
        // E_UNKNOWN_APP: placed, not started there yet; anything else: the node cannot answer now
        s = isUserError(e) && e.code === 'E_UNKNOWN_APP' ? { deployments: [], operations: [] } : null;
      }
    }
    const deployments = (s?.deployments ?? []).map((d) => ({ ...d, node: p.node }) as DeploymentView);
    const services = s?.services ?? [];
    if (!deployments.some((d) => d.name === name) && !services.some((v) => v.name === name)) deployments.push(placeholderOf(p, node ?? undefined));
    return { deployments, operations: s?.operations ?? [], services };
  }

  async *logs(req: LogsRequest): AsyncIterable<LogEntry> {
    const p = await this.o.store.getPlacement(req.name);
    if (!p) throw describeMissingDeployment(req.name);
    const { agent } = await this.agentOf(p.node);
    yield* agent.logs(req);
  }

  async has(name: string): Promise<boolean> {
    return (await this.o.store.getPlacement(name)) !== null;
  }

  async waitFor(name: string, until: (d: DeploymentView | null) => boolean, timeoutMs: number): Promise<DeploymentView | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const d = (await this.status(name)).deployments.find((x) => x.name === name) ?? null;
      if (until(d) || Date.now() > deadline) return d;
      await sleep(300);
    }
  }

  /** Workloads on a node, for drain and failure handling. */
  async placementsOn(node: string): Promise<Placement[]> {
    return (await this.o.store.listPlacements()).filter((p) => p.node === node);
  }

  static isLive(state: string): boolean {
    return LIVE.has(state);
  }
}

/** Destroys a deployment on an agent and waits (up to the grace period + 30 s) until the agent no longer lists it. */
async function destroyOn(agent: AgentClient, name: string, graceMs: number): Promise<void> {
  await agent.destroy([name], graceMs);
  const deadline = Date.now() + graceMs + 30_000;
  // a service is gone once its record is (its controller drains the replicas, then stops the front)
  const listed = (s: StatusResult): boolean => s.deployments.some((d) => d.name === name) || (s.services ?? []).some((v) => v.name === name);
  while (listed(await agent.status()) && Date.now() < deadline) await sleep(200);
}

/** What status shows of a placement whose node does not report it (yet, or any more). */
function placeholderOf(p: Placement, node: NodeRecord | undefined): DeploymentView {
  return {
    name: p.deployment, id: '', state: 'pending', exitCode: null, code: null,
    reason: node?.status === 'down' ? `node ${p.node} is down; the workload is being rescheduled` : `placed on node ${p.node}`,
    ports: [], imageBytes: null, image: null, pack: null, mode: null, accel: null, bootMs: null, boot: {}, uptimeMs: null, listen: null,
    createdAt: new Date(p.placedAt).toISOString(), startedAt: null, endedAt: null, metrics: { cpuSeconds: null, rssBytes: null, supervisorRssBytes: null }, node: p.node,
    signedBy: null, trust: null,
  };
}

function tenantCounts(names: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of names) {
    const t = tenantOfName(n);
    if (t) out[t] = (out[t] ?? 0) + 1;
  }
  return out;
}
