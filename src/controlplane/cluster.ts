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
import { nodesOf, type NodeRecord, type NodeStore, type Placement, type PlacementStore, type Shard, type ShardRollout } from './node-store.js';
import { followServiceOperation, type FollowedRollout } from './follow.js';
import { isRetryable } from './queue.js';
import { loadUnikYaml } from '../image/unikyaml.js';
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
  private readonly inFlight = new Map<string, { name: string; node: string; cpus: number; memoryMiB: number }>();

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
    /** how often a node's rollout is polled (tests shorten it) */
    pollMs?: number;
  }) {}

  close(): void {}

  private async nodeInfos(): Promise<NodeInfo[]> {
    const [nodes, placements] = await Promise.all([this.o.store.list(), this.o.store.listPlacements()]);
    // what each node holds: a placement on one node, or a spread service's shard (replicas × per-replica resources)
    const held = (node: string): Array<{ name: string; cpus: number; memoryMiB: number; vms: number }> => [
      ...placements.flatMap((p) => {
        if (!p.shards) return p.node === node ? [{ name: p.deployment, cpus: p.cpus, memoryMiB: p.memoryMiB, vms: 1 }] : [];
        const k = p.shards.find((s) => s.node === node)?.replicas ?? 0;
        return k > 0 ? [{ name: p.deployment, cpus: p.cpus * k, memoryMiB: p.memoryMiB * k, vms: k }] : [];
      }),
      ...[...this.inFlight.values()].filter((m) => m.node === node).map((m) => ({ ...m, vms: 1 })),
    ];
    return nodes.map((n) => {
      const mine = held(n.name);
      return {
        name: n.name, status: n.status, cordoned: n.cordoned, labels: n.labels, lastHeartbeatAt: n.lastHeartbeatAt,
        capacity: { cpus: n.capacity.cpus ?? 0, memoryMiB: n.capacity.memoryMiB ?? 0 },
        allocated: { cpus: mine.reduce((a, p) => a + p.cpus, 0), memoryMiB: mine.reduce((a, p) => a + p.memoryMiB, 0), vms: mine.reduce((a, p) => a + p.vms, 0) },
        tenantVms: tenantCounts(mine.map((m) => m.name)),
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
    // a service is spread over nodes and rolled out node by node: the operation runner calls deployService
    if (req.service !== undefined) throw new UserError('E_INTERNAL', `the deploy of service ${name} goes through deployService in cluster mode`);
    const p = await this.serialized(async () => {
      const existing = await this.o.store.getPlacement(name);
      if (existing) return existing; // the same operation replayed: the same request
      const labels = parseLabels(req.labels);
      const memoryMiB = req.memory ? (parseSizeMiB(req.memory) ?? 128) : 128; // validated at admission
      const cpus = req.cpus ?? 1;
      const node = await this.schedule({ name, cpus, memoryMiB, labels });
      const request = await this.requestOf(req, name, idempotencyKey, cpus);
      const placed: Placement = { deployment: name, node, cpus, memoryMiB, request, placedAt: Date.now() };
      // the node may fetch the artifact from now on (and only that node): granted before a replay could skip it
      await this.o.store.grantArtifact({ node, deployment: name, artifact: request.source.artifact });
      await this.o.store.setPlacement(placed); // persisted before the agent starts anything: a replay finds it
      return placed;
    });
    const { agent } = await this.agentOf(p.node);
    const r = await agent.deploy(p.request as AgentDeployRequest);
    return { ...r, resolvedFrom: `${r.resolvedFrom} on node ${p.node}` };
  }

  private async requestOf(req: DeployRequest, name: string, idempotencyKey: string, cpus: number): Promise<AgentDeployRequest> {
    return {
      name, source: await this.sourceOf(req.target), ports: req.ports, env: req.env, debug: req.debug, labels: req.labels, idempotencyKey,
      ...(req.memory !== undefined ? { memory: req.memory } : {}), cpus, ...(req.tenant ? { tenant: req.tenant } : {}),
      ...(req.expectManifestSha256 ? { expectManifestSha256: req.expectManifestSha256 } : {}),
      ...(req.service !== undefined ? { service: req.service } : {}), ...(req.supersede ? { supersede: true } : {}),
    };
  }

  /**
   * A service's deploy in cluster mode (docs/services.md, Cluster mode). Its replicas are placed one by one with the
   * scheduler's policy, which gives each node a shard of k replicas that the node runs as a service of its own behind
   * its own front. The new version (or the new count) then goes to one shard at a time: the node's rollout is
   * followed to its end before the next node gets it, so the replica bounds of the policy hold for the whole service.
   * A shard whose rollout fails (its node reverts it) ends the operation with that failure, after the shards already
   * moved were sent the previous version again: every shard serves one version. The plan (shard map, version,
   * previous version) is persisted before any node is asked, and each node's idempotency key is the operation id and
   * the node: an attempt replayed after a crash sends every node the same request, so no node starts a second version.
   */
  async deployService(req: DeployRequest): Promise<FollowedRollout & { shards: Shard[] }> {
    const name = req.name ?? '';
    const key = req.idempotencyKey ?? '';
    if (!name || !key || req.service === undefined) throw new UserError('E_INTERNAL', 'a cluster service deploy needs a name, an idempotency key and service settings');
    const plan = await this.serialized(() => this.planService(req, name, key));
    const rollout = plan.rollout as ShardRollout & { request: AgentDeployRequest };
    const done: Shard[] = [];
    let last: FollowedRollout | null = null;
    for (const shard of plan.shards ?? []) {
      await this.stillOurs(name, key);
      try {
        last = await this.rollShard(name, shard.node, shardRequest(rollout.request, shard.replicas, `${key}:${shard.node}`));
        done.push(shard);
      } catch (e) {
        // a platform error (a node unreachable): the queue retries the operation, which replays this plan; a superseded
        // or destroyed service: the later operation owns it now
        if (!isUserError(e) || isRetryable(e) || e.code === 'E_CANCELLED') throw e;
        const back = await this.revertShards(name, plan, done);
        await this.removeDropped(name, plan);
        throw new UserError(e.code, `${name} on node ${shard.node}: ${e.message}; ${back}`, { hint: `see unikctl status ${name} and unikctl logs ${name}` });
      }
    }
    await this.removeDropped(name, plan);
    if (!last) throw new UserError('E_INTERNAL', `service ${name} has no shard`);
    return { ...last, shards: plan.shards ?? [] };
  }

  /** The shard map and version of this deploy, persisted (serialized with every other placement decision). */
  private async planService(req: DeployRequest, name: string, key: string): Promise<Placement> {
    const existing = await this.o.store.getPlacement(name);
    if (existing?.shards && existing.rollout?.key === key) return existing; // a replayed attempt: the same plan, the same keys
    const labels = parseLabels(req.labels);
    const memoryMiB = req.memory ? (parseSizeMiB(req.memory) ?? 128) : 128; // validated at admission
    const cpus = req.cpus ?? 1;
    const total = totalReplicas(req);
    let from: Shard[] = [];
    let previous: unknown = null;
    if (existing) {
      const before = existing.request as AgentDeployRequest;
      if (!existing.shards && before.service === undefined) {
        throw new UserError('E_NAME_TAKEN', `${name} is a deployment, not a service`, { hint: `destroy ${name} first, or deploy the service under another name` });
      }
      // a record from before services were spread: all its replicas on its one node
      from = existing.shards ?? [{ node: existing.node, replicas: Math.max(1, Number(before.service?.replicas) || 1) }];
      previous = existing.request;
    }
    const shards = from.map((x) => ({ ...x }));
    let have = shards.reduce((a, x) => a + x.replicas, 0);
    // one replica at a time with the policy (spread: the node with the most headroom), each placement counted before the next
    const infos = await this.nodeInfos();
    const tenant = tenantOfName(name);
    for (; have < total; have++) {
      const r = place(infos, { name, cpus, memoryMiB, labels, ...(tenant ? { tenant } : {}) }, { policy: this.o.policy, staleAfterMs: this.o.staleAfterMs });
      if (!r.ok) {
        throw new UserError('E_NO_CAPACITY', `replica ${have + 1} of ${total}: ${r.reason}`, { hint: 'add or uncordon nodes, free capacity, relax --label constraints, or deploy fewer --replicas' });
      }
      const info = infos.find((n) => n.name === r.node);
      if (info) info.allocated = { cpus: info.allocated.cpus + cpus, memoryMiB: info.allocated.memoryMiB + memoryMiB, vms: info.allocated.vms + 1 };
      const shard = shards.find((x) => x.node === r.node);
      if (shard) shard.replicas++;
      else shards.push({ node: r.node, replicas: 1 });
    }
    // fewer: taken from the node holding the most of its replicas (the last such shard in rollout order)
    for (; have > total; have--) {
      const most = shards.reduce((m, x) => (x.replicas >= m.replicas ? x : m));
      most.replicas--;
      if (most.replicas === 0) shards.splice(shards.indexOf(most), 1);
    }
    const request = await this.requestOf(req, name, key, cpus);
    const first = shards[0];
    if (!first) throw new UserError('E_INTERNAL', `service ${name}: no shard planned`);
    const plan: Placement = {
      deployment: name, node: first.node, cpus, memoryMiB, request, placedAt: Date.now(), shards,
      rollout: { key, previous, from, request },
    };
    await this.o.store.setPlacement(plan); // persisted before any node is asked: a replay finds it
    return plan;
  }

  /** A later deploy of the service (superseding this one) or its destroy owns the placement now: this one stops. */
  private async stillOurs(name: string, key: string): Promise<void> {
    const now = await this.o.store.getPlacement(name);
    if (now?.rollout?.key !== key) throw new UserError('E_CANCELLED', `the deploy of ${name} was superseded or the service was destroyed`);
  }

  /** Sends one node its shard's request and follows that node's operation (rollout or scale) to its end. */
  private async rollShard(name: string, node: string, request: AgentDeployRequest): Promise<FollowedRollout> {
    const { agent } = await this.agentOf(node);
    // the node may fetch this version's artifact from now on (granted before it is asked, so a replay never lacks it)
    await this.o.store.grantArtifact({ node, deployment: name, artifact: request.source.artifact });
    const r = await agent.deploy(request);
    const status = (): Promise<StatusResult | null> => agent.status(name).catch((e: unknown) => {
      if (isUserError(e) && e.code === 'E_UNKNOWN_APP') return null;
      throw e;
    });
    return followServiceOperation(name, r.operationId, status, this.o.pollMs !== undefined ? { pollMs: this.o.pollMs } : {});
  }

  /** After a shard failed: the shards already moved get the previous version again. Says what it did. */
  private async revertShards(name: string, plan: Placement, done: Shard[]): Promise<string> {
    const rollout = plan.rollout as ShardRollout;
    const previous = rollout.previous as AgentDeployRequest | null;
    if (done.length === 0) return 'no other node had the new version';
    if (!previous) return `nodes ${done.map((d) => d.node).join(', ')} keep it (the first version has nothing to go back to)`;
    if ((rollout.request as AgentDeployRequest).service?.autoRevert === false) return `nodes ${done.map((d) => d.node).join(', ')} keep it (--no-auto-revert)`;
    // the placement names what the service runs now (a move recreates that), the plan keeps this operation's version
    await this.o.store.setPlacement({ ...plan, request: previous });
    const failed: string[] = [];
    for (const d of done) {
      try {
        await this.rollShard(name, d.node, shardRequest(previous, d.replicas, `${rollout.key}:${d.node}:revert`));
      } catch (e) {
        failed.push(`${d.node} (${(e as Error).message})`);
      }
    }
    const nodes = done.map((d) => d.node).join(', ');
    return failed.length === 0 ? `nodes ${nodes} were sent the previous version again` : `sending the previous version again failed on ${failed.join(', ')}`;
  }

  /** The nodes the deploy took every replica from: their copy goes (best effort: a node down has it removed as an orphan when it returns). */
  private async removeDropped(name: string, plan: Placement): Promise<void> {
    const keep = new Set(nodesOf(plan));
    for (const s of plan.rollout?.from ?? []) {
      if (keep.has(s.node)) continue;
      const node = await this.agentOf(s.node).catch(() => null);
      if (node?.record.status === 'ready') await destroyOn(node.agent, name, 10_000).catch(() => undefined);
      await this.o.store.revokeArtifacts(name, s.node);
    }
  }

  /** Drain / node failure: bring the workload up on another node, then remove it from the old one. */
  async move(name: string, from: string, opts: { sourceDown: boolean; graceMs: number }): Promise<{ name: string; from: string; to: string } | null> {
    const p = await this.o.store.getPlacement(name);
    if (p?.shards) return this.moveShard(p, from, opts);
    if (!p || p.node !== from) return null; // already moved (a replayed operation) or destroyed meanwhile
    const labels = parseLabels((p.request as AgentDeployRequest).labels ?? []);
    const request: AgentDeployRequest = { ...(p.request as AgentDeployRequest), idempotencyKey: `move:${name}:${from}:${p.placedAt}` };
    // decisions are serialized, and the target's share is held until the new placement is recorded, so concurrent
    // moves never fill the same free slot twice
    const to = await this.serialized(async () => {
      const node = await this.schedule({ name, cpus: p.cpus, memoryMiB: p.memoryMiB, labels, avoid: [from] });
      this.inFlight.set(name, { name, node, cpus: p.cpus, memoryMiB: p.memoryMiB });
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

  /**
   * A spread service's shard on a node being drained or down: its replicas are placed again one by one (avoiding that
   * node) and each target node gets its shard grown (or a new one), followed to its end; then the copy on `from` goes.
   * The keys derive from the move (the placement's time), so a replayed move sends the same requests.
   */
  private async moveShard(p: Placement, from: string, opts: { sourceDown: boolean; graceMs: number }): Promise<{ name: string; from: string; to: string } | null> {
    const name = p.deployment;
    const leaving = p.shards?.find((x) => x.node === from);
    if (!leaving) return null; // already moved (a replayed operation)
    const labels = parseLabels((p.request as AgentDeployRequest).labels ?? []);
    const tenant = tenantOfName(name);
    const held: string[] = [];
    const targets = await this.serialized(async () => {
      const infos = await this.nodeInfos();
      const add = new Map<string, number>();
      for (let i = 0; i < leaving.replicas; i++) {
        const r = place(infos, { name, cpus: p.cpus, memoryMiB: p.memoryMiB, labels, avoid: [from], ...(tenant ? { tenant } : {}) }, { policy: this.o.policy, staleAfterMs: this.o.staleAfterMs });
        if (!r.ok) {
          for (const h of held) this.inFlight.delete(h);
          throw new UserError('E_NO_CAPACITY', r.reason, { hint: 'add or uncordon nodes, free capacity, or relax --label constraints' });
        }
        const info = infos.find((n) => n.name === r.node);
        if (info) info.allocated = { cpus: info.allocated.cpus + p.cpus, memoryMiB: info.allocated.memoryMiB + p.memoryMiB, vms: info.allocated.vms + 1 };
        add.set(r.node, (add.get(r.node) ?? 0) + 1);
        // held until the new shard map is recorded, so concurrent moves never fill the same free slot twice
        const h = `${name}@${from}#${i}`;
        this.inFlight.set(h, { name, node: r.node, cpus: p.cpus, memoryMiB: p.memoryMiB });
        held.push(h);
      }
      return add;
    });
    try {
      const moveKey = `move:${name}:${from}:${p.placedAt}`;
      const shards = (p.shards ?? []).filter((x) => x.node !== from).map((x) => ({ ...x }));
      for (const [node, k] of targets) {
        const shard = shards.find((x) => x.node === node);
        if (shard) shard.replicas += k;
        else shards.push({ node, replicas: k });
        await this.rollShard(name, node, shardRequest(p.request as AgentDeployRequest, shard?.replicas ?? k, `${moveKey}:${node}`));
      }
      const first = shards[0];
      if (!first) throw new UserError('E_INTERNAL', `moving ${name}: no shard left`);
      await this.o.store.setPlacement({ ...p, node: first.node, shards, placedAt: Date.now() });
    } finally {
      for (const h of held) this.inFlight.delete(h);
    }
    if (!opts.sourceDown) {
      const old = await this.agentOf(from).catch(() => null);
      if (old) await destroyOn(old.agent, name, opts.graceMs).catch(() => undefined);
    }
    await this.o.store.revokeArtifacts(name, from);
    return { name, from, to: [...targets.keys()].join(',') };
  }

  async destroy(names: string[], opts: { graceMs: number }): Promise<DestroyResult[]> {
    const out: DestroyResult[] = [];
    for (const name of names) {
      const p = await this.o.store.getPlacement(name);
      if (!p) throw new UserError('E_UNKNOWN_APP', `no deployment named "${name}"`);
      // a spread service: every shard, and the nodes a deploy in progress is still taking replicas from
      const on = new Set([...nodesOf(p), ...(p.rollout?.from ?? []).map((x) => x.node)]);
      await Promise.all([...on].map(async (n) => {
        const node = await this.agentOf(n).catch(() => null);
        if (!node || node.record.status !== 'ready') return;
        try {
          await destroyOn(node.agent, name, opts.graceMs);
        } catch (e) {
          if (!(isUserError(e) && e.code === 'E_UNKNOWN_APP')) throw e;
        }
      }));
      await this.o.store.deletePlacement(name);
      await this.o.store.revokeArtifacts(name);
      out.push({ name, operationId: '', state: 'gone' });
    }
    return out;
  }

  async status(name?: string): Promise<StatusResult> {
    if (name !== undefined) return this.statusOf(name);
    const [nodes, placements] = await Promise.all([this.o.store.list(), this.o.store.listPlacements()]);
    const byName = new Map(placements.map((p) => [p.deployment, p]));
    // an agent may still hold a copy that was moved away: report what the placement says
    const here = (x: string, node: string): boolean => {
      const p = byName.get(x);
      return !p || nodesOf(p).includes(node);
    };
    const answers = await Promise.all(nodes.filter((n) => n.status === 'ready').map(async (n) => ({ node: n.name, s: await this.agentFor(n).then((a) => a.status()).catch(() => null) })));
    const views: DeploymentView[] = [];
    const parts = new Map<string, Array<{ node: string; view: ServiceView }>>();
    const reported = new Set<string>();
    for (const { node, s } of answers) {
      const mine = (s?.services ?? []).filter((v) => here(v.name, node));
      for (const v of mine) parts.set(v.name, [...(parts.get(v.name) ?? []), { node, view: v }]);
      const replicas = new Set(mine.flatMap((v) => v.replicas.map((r) => r.name)));
      for (const d of s?.deployments ?? []) {
        if (!here(d.name, node) && !replicas.has(d.name)) continue;
        views.push({ ...d, node } as DeploymentView);
        reported.add(d.name);
      }
    }
    const services: ServiceView[] = [];
    for (const [app, ps] of parts) {
      const p = byName.get(app);
      services.push(p?.shards ? mergeShards(p.shards, ps) : (ps[0] as { view: ServiceView }).view);
      reported.add(app);
    }
    for (const p of placements) {
      if (reported.has(p.deployment)) continue;
      views.push(placeholderOf(p, nodes.find((n) => n.name === p.node)));
    }
    views.sort((a, b) => a.name.localeCompare(b.name) || (a.node ?? '').localeCompare(b.node ?? ''));
    services.sort((a, b) => a.name.localeCompare(b.name));
    return { deployments: views, operations: [], services };
  }

  /** One app: asked of the nodes its placement names (a service comes with its replicas and the nodes' operations on it). */
  private async statusOf(name: string): Promise<StatusResult> {
    const p = await this.o.store.getPlacement(name);
    if (!p) return { deployments: [], operations: [], services: [] };
    const answers = await Promise.all(nodesOf(p).map(async (n) => {
      const node = await this.o.store.get(n);
      let s: StatusResult | null = null;
      if (node?.status === 'ready') {
        try {
          s = await (await this.agentFor(node)).status(name);
        } catch (e) {
          // E_UNKNOWN_APP: placed, not started there yet; anything else: the node cannot answer now
          s = isUserError(e) && e.code === 'E_UNKNOWN_APP' ? { deployments: [], operations: [] } : null;
        }
      }
      return { node: n, record: node, s };
    }));
    const deployments = answers.flatMap((a) => (a.s?.deployments ?? []).map((d) => ({ ...d, node: a.node }) as DeploymentView));
    const parts = answers.flatMap((a) => (a.s?.services ?? []).filter((v) => v.name === name).map((view) => ({ node: a.node, view })));
    const services = p.shards ? (parts.length > 0 ? [mergeShards(p.shards, parts)] : []) : parts.map((x) => x.view);
    if (!deployments.some((d) => d.name === name) && services.length === 0) deployments.push(placeholderOf(p, answers[0]?.record ?? undefined));
    return { deployments, operations: answers.flatMap((a) => a.s?.operations ?? []), services };
  }

  async *logs(req: LogsRequest): AsyncIterable<LogEntry> {
    // a replica (APP.N, a dot no user name has) lives on its app's node(s)
    const dot = req.name.indexOf('.');
    const p = await this.o.store.getPlacement(req.name) ?? (dot > 0 ? await this.o.store.getPlacement(req.name.slice(0, dot)) : null);
    if (!p) throw describeMissingDeployment(req.name);
    if (p.deployment !== req.name && p.shards && p.shards.length > 1) {
      throw new UserError('E_NOT_IMPLEMENTED', `${req.name}: the replicas of ${p.deployment} are spread over ${p.shards.length} nodes, and a replica's logs by its name are not implemented there`, { hint: `unikctl logs ${p.deployment} (every node's lines, each with its replica and node)` });
    }
    if (!p.shards || p.shards.length === 1) {
      const { agent } = await this.agentOf(p.shards?.[0]?.node ?? p.node);
      yield* agent.logs(req);
      return;
    }
    if (req.follow) {
      throw new UserError('E_NOT_IMPLEMENTED', `following the logs of ${req.name}, spread over ${p.shards.length} nodes, is not implemented`, { hint: `drop --follow (the lines of every node, merged by time), or follow one node's: unikctl status ${req.name} names them` });
    }
    // every node's lines, merged by time; each line's source names its node (replica names repeat across nodes)
    const all: LogEntry[] = [];
    for (const s of p.shards) {
      const { agent } = await this.agentOf(s.node);
      for await (const e of agent.logs(req)) all.push({ ...e, src: `${e.src ?? req.name}@${s.node}` });
    }
    all.sort((a, b) => a.t - b.t);
    yield* req.tail !== undefined ? all.slice(-req.tail) : all;
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

  /** Workloads on a node, for drain and failure handling (a spread service: when it has a shard there). */
  async placementsOn(node: string): Promise<Placement[]> {
    return (await this.o.store.listPlacements()).filter((p) => nodesOf(p).includes(node));
  }

  static isLive(state: string): boolean {
    return LIVE.has(state);
  }
}

/**
 * One view of a service spread over nodes: its shards' views merged (docs/services.md, Cluster mode). Totals for the
 * counts (`desired`: the shard map's), every node's replicas (each naming its node), the rollout of the shard rolling now (else of the last
 * shard, the one the deploy operation ended with), the rest from the first shard that answered.
 */
export function mergeShards(shards: Shard[], parts: Array<{ node: string; view: ServiceView }>): ServiceView {
  const ordered = shards.flatMap((s) => parts.filter((x) => x.node === s.node));
  const first = ordered[0] ?? parts[0];
  if (!first) throw new UserError('E_INTERNAL', 'mergeShards: no shard answered');
  const active = ordered.find((x) => x.view.rollout && ['canary', 'progressing', 'reverting'].includes(x.view.rollout.phase));
  const versions = new Map<number, ServiceView['versions'][number]>();
  for (const { view } of ordered) {
    for (const v of view.versions) {
      const prior = versions.get(v.version);
      versions.set(v.version, prior ? { ...prior, healthy: prior.healthy + v.healthy, running: prior.running + v.running, total: prior.total + v.total } : { ...v });
    }
  }
  const traffic: ServiceView['traffic'] = {};
  for (const { view } of ordered) {
    for (const [k, t] of Object.entries(view.traffic ?? {})) {
      const a = traffic[k];
      traffic[k] = !a ? structuredClone(t) : {
        connections: a.connections + t.connections, requests: a.requests + t.requests, bytesIn: a.bytesIn + t.bytesIn, bytesOut: a.bytesOut + t.bytesOut, errors: a.errors + t.errors,
        latency: { buckets: a.latency.buckets.map((c, i) => c + (t.latency.buckets[i] ?? 0)), count: a.latency.count + t.latency.count, sumMs: a.latency.sumMs + t.latency.sumMs },
      };
    }
  }
  return {
    ...first.view,
    // the plan's total: a node not asked yet (or silent) still counts what it is to run
    desired: shards.reduce((a, x) => a + x.replicas, 0),
    destroying: ordered.some((x) => x.view.destroying),
    rollout: (active ?? ordered[ordered.length - 1] ?? first).view.rollout,
    versions: [...versions.values()].sort((a, b) => a.version - b.version),
    replicas: ordered.flatMap((x) => x.view.replicas.map((r) => ({ ...r, node: x.node }))),
    restarts: ordered.reduce((a, x) => a + x.view.restarts, 0),
    crashLoop: ordered.find((x) => x.view.crashLoop)?.view.crashLoop ?? null,
    traffic,
    shards: shards.map((s) => {
      const v = parts.find((x) => x.node === s.node)?.view;
      return { node: s.node, desired: v?.desired ?? s.replicas, current: v?.current ?? null, rollout: v?.rollout?.phase ?? null, reported: v !== undefined };
    }),
  };
}

/** A shard's request: the version's request with that node's replica count and idempotency key. */
function shardRequest(request: AgentDeployRequest, replicas: number, idempotencyKey: string): AgentDeployRequest {
  return { ...request, service: { ...request.service, replicas: String(replicas) }, idempotencyKey };
}

/** The service's replica count: --replicas, else the project's unik.yaml, else 1 (local mode's rule; checked at admission). */
function totalReplicas(req: DeployRequest): number {
  const given = req.service?.replicas;
  if (given !== undefined) return Math.max(1, Number(given) || 1);
  let yaml: number | undefined;
  try {
    yaml = existsSync(req.target) && statSync(req.target).isDirectory() ? loadUnikYaml(req.target)?.deploy?.replicas : undefined;
  } catch {
    yaml = undefined; // a bad unik.yaml was refused at admission
  }
  return Math.max(1, yaml ?? 1);
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
