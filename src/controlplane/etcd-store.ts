import { Etcd3, Range, type Campaign, type Election, type IKeyValue, type IOperation } from 'etcd3';
import { UserError } from '../errors.js';
import type { OperationError, OperationKind, OperationState } from '../store/types.js';
import type { QueuedOperation, OperationJournal, NewOperation } from './operation-journal.js';
import { addUsage, checkQuota, deploymentNameTaken, emptyUsage, subtractUsage, tenantOfName, type QuotaCheck, type Reservation, type TenantUsage } from './tenants.js';
import { nameTaken } from './nodes.js';
import type { ArtifactGrant, NodeIdentity, NodeInput, NodeRecord, NodeStore, Placement, PlacementStore } from './node-store.js';
import type { ControlPlaneStores, LeaderElection, StoreOptions } from './stores.js';

/**
 * The control plane's state in etcd (CP-7), for several replicas: the same contracts as the SQLite Journal and
 * NodeRegistry, plus leader election. Every replica serves the API and writes operations into etcd itself (no request
 * forwarding); only the elected leader claims and runs them.
 *
 * Key layout, all under a prefix (default `/unikctl/`; `etcd://h1:2379,h2:2379/other` uses `/other/`):
 *   seq                       bumped once per enqueue: its revision is the new operation's sequence number
 *   operations/<seq>                the operation (JSON), keyed by its 20-digit sequence number: the order of `recent()`
 *   operation-ids/<id>              → seq (never changes)
 *   idempotency/<key>         → seq of the operation that the idempotency key made
 *   state/<state>/<seq>       a copy of the operation, in the index of its current state: claim reads `state/queued/`
 *                             in key (= seq) order, counts count each state's index
 *   target/<target>/<seq>     → id, the target's operations in seq order (`recent(limit, target)`)
 *   effects/<opId>           the fake runner's per-operation effect: {runs, at}
 *   nodes/<name>, placements/<deployment>, grants/<node>/<deployment> (value: the artifact id the node may fetch)
 *   election/unikctld/<lease> the leader-election candidates (etcd3's Election: the oldest key leads)
 * Every change of an operation is one transaction that rewrites operations/<seq>, moves the state-index copy and compares the
 * mod revision of what it read, so it applies only if nothing changed in between (optimistic concurrency). A claim
 * additionally compares the create revision of this replica's election key ("fencing"): a replica that lost its
 * leadership can no longer claim, even before it notices.
 */

const DEFAULT_PREFIX = '/unikctl/';
const ELECTION_NAME = 'unikctld';
/** lease TTL of the election key: how long a killed leader keeps its leadership */
const ELECTION_TTL_S = 5;
const RECAMPAIGN_MS = 1000;
const CALL_TIMEOUT_MS = 15_000;
const CAS_TRIES = 50;
const CLAIM_PAGE = 64;
const RANGE_PAGE = 500;
const STATES: readonly OperationState[] = ['queued', 'running', 'succeeded', 'failed'];

interface StoredOperation extends QueuedOperation { seq: string; }

const pad = (rev: string): string => rev.padStart(20, '0');
const str = (kv: IKeyValue): string => kv.value.toString('utf8');
const parse = <T>(kv: IKeyValue): T => JSON.parse(str(kv)) as T;
const fromRow = (s: StoredOperation): QueuedOperation => {
  const { seq: _seq, ...op } = s;
  return op;
};

/** `etcd://h1:2379,h2:2379[/prefix]` → client URLs and key prefix */
export function parseEtcdSpec(spec: string): { hosts: string[]; prefix: string } {
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(spec);
  const hosts = (m?.[1] ?? '').split(',').map((h) => h.trim()).filter(Boolean);
  if (!m || hosts.length === 0 || hosts.some((h) => !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d+$/.test(h))) {
    throw new UserError('E_INVALID_ARGUMENT', `--store ${spec} is not etcd://host:port[,host:port...][/prefix]`, { hint: 'e.g. --store etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379' });
  }
  const path = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  return { hosts: hosts.map((h) => `http://${h}`), prefix: path ? `/${path}/` : DEFAULT_PREFIX };
}

export function etcdClient(hosts: string[]): Etcd3 {
  return new Etcd3({
    hosts,
    dialTimeout: 5000,
    // unary calls get a deadline (a dead cluster fails a request instead of hanging it); streams (watches, lease keep-alives) do not
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
  });
}

/** Keys of one store under its prefix. */
class Keys {
  constructor(readonly p: string) {}
  seq(): string { return `${this.p}seq`; }
  op(seq: string): string { return `${this.p}jobs/${seq}`; }
  operations(): string { return `${this.p}jobs/`; }
  id(id: string): string { return `${this.p}job-ids/${id}`; }
  idem(key: string): string { return `${this.p}idempotency/${key}`; }
  state(state: OperationState, seq = ''): string { return `${this.p}state/${state}/${seq}`; }
  target(target: string, seq = ''): string { return `${this.p}target/${encodeURIComponent(target)}/${seq}`; }
  effect(opId: string): string { return `${this.p}effects/${opId}`; }
  reservation(tenant: string, name = ''): string { return `${this.p}reservations/${tenant}/${name}`; }
  /** bumped by every reservation write of a tenant: a quota check compares it to know its sum is still current */
  tenantVersion(tenant: string): string { return `${this.p}tenant-versions/${tenant}`; }
  effects(): string { return `${this.p}effects/`; }
  node(name = ''): string { return `${this.p}nodes/${name}`; }
  placement(deployment = ''): string { return `${this.p}placements/${deployment}`; }
  grant(node = '', deployment = ''): string { return node ? `${this.p}grants/${node}/${deployment}` : `${this.p}grants/`; }
}

/** What a claim compares to prove that this replica still leads (see EtcdElection). */
export interface Fence { key: string; createRevision: string; }

export class EtcdJournal implements OperationJournal {
  private readonly k: Keys;
  /** id → seq (never changes once written) */
  private readonly seqs = new Map<string, string>();
  /** seqs this process is trying to claim right now: its other workers pick the next operation instead of colliding */
  private readonly claiming = new Set<string>();

  /**
   * @param fence when given, claims are fenced: they succeed only while it returns this replica's election key
   *   (null: not the leader, claim nothing)
   */
  constructor(private readonly c: Etcd3, prefix: string, private readonly fence?: () => Fence | null) {
    this.k = new Keys(prefix);
  }

  async enqueue(j: NewOperation, quota?: QuotaCheck): Promise<{ op: QueuedOperation; created: boolean }> {
    for (let i = 0; i < CAS_TRIES; i++) {
      const r = await this.tryEnqueue(j, quota);
      if (r) return r;
    }
    throw new UserError('E_STATE', `tenant ${quota?.tenant ?? ''} usage keeps changing under concurrent deploys; retry`);
  }

  /** One compare-and-set attempt; null when a concurrent deploy of the same tenant changed its usage meanwhile. */
  private async tryEnqueue(j: NewOperation, quota?: QuotaCheck): Promise<{ op: QueuedOperation; created: boolean } | null> {
    if (j.idempotencyKey) {
      const prior = await this.byKey(j.idempotencyKey);
      if (prior) return { op: this.sameRequest(prior, j), created: false };
    }
    const seen = quota ? await this.usageAt(quota.tenant) : null;
    // the name's reservation as read with the usage (the tenant's version key guards both): a service's next deploy
    // replaces it, so it is checked against the usage without it
    const priorRes = quota && seen ? seen.byName.get(quota.name) ?? null : null;
    if (quota && seen) {
      if (priorRes && !quota.replace) throw deploymentNameTaken(quota.name);
      checkQuota(quota, priorRes ? subtractUsage(seen.usage, priorRes) : seen.usage);
    }
    // the revision of this put is unique and grows: the operation's place in the queue
    const seq = pad((await this.c.put(this.k.seq()).value('').exec()).header.revision);
    const stored: StoredOperation = JSON.parse(JSON.stringify({
      id: j.id, kind: j.kind, target: j.target, state: 'queued', idempotencyKey: j.idempotencyKey, requestHash: j.requestHash, request: j.request,
      attempts: 0, maxAttempts: j.maxAttempts, nextRunAt: j.createdAt, leaseOwner: null, result: null, error: null, traceId: j.traceId,
      createdAt: j.createdAt, updatedAt: j.createdAt, endedAt: null, seq,
    } satisfies StoredOperation)) as StoredOperation;
    const value = JSON.stringify(stored);
    let txn = this.c.if(this.k.id(j.id), 'Create', '==', 0);
    if (j.idempotencyKey) txn = txn.and(this.k.idem(j.idempotencyKey), 'Create', '==', 0);
    if (quota && seen) {
      txn = txn.and(this.k.tenantVersion(quota.tenant), 'Mod', '==', seen.versionMod);
      // no reservation written meanwhile under this name (a replaced one: the version compare covers it)
      if (!priorRes) txn = txn.and(this.k.reservation(quota.tenant, quota.name), 'Create', '==', 0);
    }
    const ops: IOperation[] = [
      this.c.put(this.k.op(seq)).value(value),
      this.c.put(this.k.state('queued', seq)).value(value),
      this.c.put(this.k.id(j.id)).value(seq),
      this.c.put(this.k.target(j.target, seq)).value(j.id),
    ];
    if (j.idempotencyKey) ops.push(this.c.put(this.k.idem(j.idempotencyKey)).value(seq));
    if (quota) {
      ops.push(this.c.put(this.k.reservation(quota.tenant, quota.name)).value(JSON.stringify(quota.reservation)));
      ops.push(this.c.put(this.k.tenantVersion(quota.tenant)).value(String(j.createdAt)));
    }
    const res = await txn.then(...ops).else(...(j.idempotencyKey ? [this.c.get(this.k.idem(j.idempotencyKey))] : [])).commit();
    if (res.succeeded) {
      this.seqs.set(j.id, seq);
      return { op: fromRow(stored), created: true };
    }
    const priorSeq = res.responses[0]?.response_range.kvs[0];
    if (!priorSeq && quota) return null; // the tenant's usage moved (or the id raced): read it again
    if (!j.idempotencyKey || !priorSeq) throw new UserError('E_STATE', `operation id ${j.id} is already in the journal`);
    // another request with the same key won the race
    const prior = await this.bySeq(str(priorSeq));
    if (!prior) throw new UserError('E_STATE', `idempotency key "${j.idempotencyKey}" points at a missing operation`);
    return { op: this.sameRequest(prior, j), created: false };
  }

  private sameRequest(prior: QueuedOperation, j: NewOperation): QueuedOperation {
    if (prior.requestHash !== j.requestHash || prior.kind !== j.kind) {
      throw new UserError('E_IDEMPOTENCY_CONFLICT', `idempotency key "${j.idempotencyKey}" was used by operation ${prior.id} with a different request`, {
        hint: 'use a new idempotency key for a different request',
      });
    }
    return prior;
  }

  private async bySeq(seq: string, revision?: string): Promise<QueuedOperation | null> {
    const q = this.c.get(this.k.op(seq));
    const r = await (revision ? q.revision(revision) : q).exec();
    const kv = r.kvs[0];
    return kv ? fromRow(parse<StoredOperation>(kv)) : null;
  }

  private async seqOf(id: string): Promise<string | null> {
    const known = this.seqs.get(id);
    if (known) return known;
    const seq = await this.c.get(this.k.id(id)).string();
    if (seq) this.seqs.set(id, seq);
    return seq;
  }

  async byKey(key: string): Promise<QueuedOperation | null> {
    const seq = await this.c.get(this.k.idem(key)).string();
    return seq ? this.bySeq(seq) : null;
  }

  async get(id: string): Promise<QueuedOperation | null> {
    const seq = await this.seqOf(id);
    return seq ? this.bySeq(seq) : null;
  }

  /** Moves an operation from one state's index to another's, if `from` (as read at `modRevision`) is unchanged. */
  private async move(from: StoredOperation, modRevision: string, to: StoredOperation, fence?: Fence, extra: IOperation[] = []): Promise<{ ok: boolean; fenced: boolean }> {
    const value = JSON.stringify(to);
    let txn = this.c.if(this.k.state(from.state, from.seq), 'Mod', '==', modRevision);
    if (fence) txn = txn.and(fence.key, 'Create', '==', fence.createRevision);
    const res = await txn.then(
      this.c.put(this.k.op(to.seq)).value(value),
      this.c.delete().key(this.k.state(from.state, from.seq)),
      this.c.put(this.k.state(to.state, to.seq)).value(value),
      ...extra,
    ).else(...(fence ? [this.c.get(fence.key)] : [])).commit();
    if (res.succeeded) return { ok: true, fenced: false };
    const kv = res.responses[0]?.response_range.kvs[0];
    return { ok: false, fenced: fence !== undefined && kv?.create_revision !== fence.createRevision };
  }

  /** The first queued operation that is due (of `kinds`: a lane), in seq order, that no other worker of this process is claiming. */
  private async firstDue(now: number, kinds?: readonly OperationKind[]): Promise<{ op: StoredOperation; mod: string } | null> {
    const prefix = this.k.state('queued');
    let start: string | Buffer = prefix;
    for (;;) {
      const r = await this.c.getAll().inRange(new Range(start, Range.prefix(prefix).end)).limit(CLAIM_PAGE).exec();
      for (const kv of r.kvs) {
        const op = parse<StoredOperation>(kv);
        if (op.nextRunAt <= now && !this.claiming.has(op.seq) && (!kinds || kinds.includes(op.kind))) return { op, mod: kv.mod_revision };
      }
      const last = r.kvs[r.kvs.length - 1];
      if (!r.more || !last) return null;
      start = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  async claim(owner: string, now = Date.now(), kinds?: readonly OperationKind[]): Promise<QueuedOperation | null> {
    for (let i = 0; i < CAS_TRIES; i++) {
      let fence: Fence | undefined;
      if (this.fence) {
        const f = this.fence();
        if (!f) return null; // not the leader
        fence = f;
      }
      const found = await this.firstDue(now, kinds);
      if (!found) return null;
      const { op, mod } = found;
      this.claiming.add(op.seq);
      try {
        const next: StoredOperation = { ...op, state: 'running', leaseOwner: owner, attempts: op.attempts + 1, updatedAt: now };
        const r = await this.move(op, mod, next, fence);
        if (r.ok) {
          this.seqs.set(op.id, op.seq);
          return fromRow(next);
        }
        if (r.fenced) return null;
      } finally {
        this.claiming.delete(op.seq);
      }
    }
    return null; // heavy contention: the worker polls again
  }

  /** Applies `change` to a running operation held by `owner`; false when it is not running or someone else holds it. */
  private async changeRunning(id: string, owner: string, change: (j: StoredOperation) => StoredOperation, extra: (j: StoredOperation) => IOperation[] = () => []): Promise<boolean> {
    const seq = await this.seqOf(id);
    if (!seq) return false;
    for (let i = 0; i < CAS_TRIES; i++) {
      const kv = (await this.c.get(this.k.state('running', seq)).exec()).kvs[0];
      if (!kv) return false;
      const op = parse<StoredOperation>(kv);
      if (op.leaseOwner !== owner) return false;
      const next = change(op);
      if ((await this.move(op, kv.mod_revision, next, undefined, extra(next))).ok) return true;
    }
    throw new UserError('E_STATE', `operation ${id} keeps changing under concurrent updates`);
  }

  async finish(id: string, owner: string, outcome: { result?: unknown; error?: OperationError; release?: boolean }): Promise<boolean> {
    const now = Date.now();
    const state: OperationState = outcome.error ? 'failed' : 'succeeded';
    const result = outcome.result === undefined ? null : (JSON.parse(JSON.stringify(outcome.result) ?? 'null') as unknown);
    // the reservation goes in the same transaction as the state change (a removal needs no compare: it only lowers usage)
    const release = (j: StoredOperation): IOperation[] => {
      const tenant = tenantOfName(j.target);
      if (!tenant || !((j.kind === 'destroy' && state === 'succeeded') || (j.kind === 'deploy' && outcome.release))) return [];
      return [this.c.delete().key(this.k.reservation(tenant, j.target)), this.c.put(this.k.tenantVersion(tenant)).value(String(now))];
    };
    return this.changeRunning(id, owner, (j) => ({ ...j, state, result, error: outcome.error ?? null, leaseOwner: null, updatedAt: now, endedAt: now }), release);
  }

  async usage(tenant: string): Promise<TenantUsage> {
    return (await this.usageAt(tenant)).usage;
  }

  private async usageAt(tenant: string): Promise<{ usage: TenantUsage; versionMod: string; byName: Map<string, Reservation> }> {
    const ver = (await this.c.get(this.k.tenantVersion(tenant)).exec());
    const rev = ver.header.revision;
    const r = await this.c.getAll().prefix(this.k.reservation(tenant)).revision(rev).exec();
    let usage = emptyUsage();
    const byName = new Map<string, Reservation>();
    const prefix = this.k.reservation(tenant);
    for (const kv of r.kvs) {
      const res = parse<Reservation>(kv);
      usage = addUsage(usage, res);
      byName.set(kv.key.toString('utf8').slice(prefix.length), res);
    }
    return { usage, versionMod: ver.kvs[0]?.mod_revision ?? '0', byName };
  }

  async reserved(name: string): Promise<boolean> {
    const tenant = tenantOfName(name);
    return tenant !== null && (await this.c.get(this.k.reservation(tenant, name)).string()) !== null;
  }

  async retry(id: string, owner: string, runAt: number, error: OperationError): Promise<boolean> {
    const now = Date.now();
    return this.changeRunning(id, owner, (j) => ({ ...j, state: 'queued', nextRunAt: runAt, error, leaseOwner: null, updatedAt: now }));
  }

  async release(id: string, owner: string): Promise<boolean> {
    const now = Date.now();
    return this.changeRunning(id, owner, (j) => ({ ...j, state: 'queued', nextRunAt: now, attempts: Math.max(0, j.attempts - 1), leaseOwner: null, updatedAt: now }));
  }

  async recover(deadOwners?: string[]): Promise<number> {
    const now = Date.now();
    let n = 0;
    for (const kv of (await rangeAll(this.c, this.k.state('running'))).kvs) {
      const op = parse<StoredOperation>(kv);
      if (deadOwners && (op.leaseOwner === null || !deadOwners.includes(op.leaseOwner))) continue;
      // an operation that changed meanwhile was finished or retried by its owner: nothing to recover
      if ((await this.move(op, kv.mod_revision, { ...op, state: 'queued', leaseOwner: null, updatedAt: now })).ok) n++;
    }
    return n;
  }

  async counts(): Promise<Record<OperationState, number>> {
    // one snapshot: every count reads at the same revision
    const rev = (await this.c.get(this.k.seq()).exec()).header.revision;
    const out: Record<OperationState, number> = { queued: 0, running: 0, succeeded: 0, failed: 0 };
    await Promise.all(STATES.map(async (s) => { out[s] = await this.c.getAll().prefix(this.k.state(s)).revision(rev).count(); }));
    return out;
  }

  async recent(limit: number, target?: string): Promise<QueuedOperation[]> {
    if (limit <= 0) return [];
    if (!target) {
      const r = await this.c.getAll().prefix(this.k.operations()).sort('Key', 'Descend').limit(limit).exec();
      return r.kvs.map((kv) => fromRow(parse<StoredOperation>(kv)));
    }
    const prefix = this.k.target(target);
    const r = await this.c.getAll().prefix(prefix).sort('Key', 'Descend').limit(limit).keys();
    const rev = (await this.c.get(this.k.seq()).exec()).header.revision;
    const operations = await Promise.all(r.map((key) => this.bySeq(key.slice(prefix.length), rev)));
    return operations.filter((j): j is QueuedOperation => j !== null);
  }

  async pendingDeploys(): Promise<QueuedOperation[]> {
    const queued = await rangeAll(this.c, this.k.state('queued'));
    const running = await rangeAll(this.c, this.k.state('running'), queued.revision);
    return [...queued.kvs, ...running.kvs].map((kv) => parse<StoredOperation>(kv)).filter((j) => j.kind === 'deploy')
      .sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0)).map(fromRow);
  }

  async hasPendingDeploy(target: string): Promise<boolean> {
    // the operation records are keyed by state, not by target: one range over the live states
    return (await this.pendingDeploys()).some((j) => j.target === target);
  }

  async nextDueAt(): Promise<number | null> {
    let min: number | null = null;
    for (const kv of (await rangeAll(this.c, this.k.state('queued'))).kvs) {
      const t = parse<StoredOperation>(kv).nextRunAt;
      if (min === null || t < min) min = t;
    }
    return min;
  }

  async recordEffect(opId: string): Promise<void> {
    await update(this.c, this.k.effect(opId), (prior: { runs: number; at: number } | null) => ({ runs: (prior?.runs ?? 0) + 1, at: prior?.at ?? Date.now() }));
  }

  async close(): Promise<void> {
    // the client belongs to EtcdStores
  }
}

/** Optimistic read-modify-write of one JSON key; `fn` gets null when the key does not exist. */
async function update<T, R>(c: Etcd3, key: string, fn: (prior: T | null) => R): Promise<R> {
  for (let i = 0; i < CAS_TRIES; i++) {
    const kv = (await c.get(key).exec()).kvs[0];
    const next = fn(kv ? parse<T>(kv) : null);
    const res = await c.if(key, 'Mod', '==', kv ? kv.mod_revision : 0).then(c.put(key).value(JSON.stringify(next))).commit();
    if (res.succeeded) return next;
  }
  throw new UserError('E_STATE', `${key} keeps changing under concurrent updates`);
}

/**
 * Every key under `prefix`, in key order, read in pages at one revision (one consistent snapshot; a single
 * response could otherwise outgrow gRPC's 4 MiB message limit).
 */
async function rangeAll(c: Etcd3, prefix: string, revision?: string): Promise<{ kvs: IKeyValue[]; revision: string }> {
  const end = Range.prefix(prefix).end;
  const kvs: IKeyValue[] = [];
  let start: string | Buffer = prefix;
  let rev = revision;
  for (;;) {
    const q = c.getAll().inRange(new Range(start, end)).limit(RANGE_PAGE);
    const r = await (rev ? q.revision(rev) : q).exec();
    rev ??= r.header.revision;
    kvs.push(...r.kvs);
    const last = r.kvs[r.kvs.length - 1];
    if (!r.more || !last) return { kvs, revision: rev };
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
}

interface StoredNode {
  name: string; address: string; labels: Record<string, string>; capacity: Record<string, number>; cordoned: boolean; lastHeartbeat: number;
  identity?: NodeIdentity;
}

const JOIN_FIRST = 'the node joins first (POST /v1/nodes/join with the join token)';

export class EtcdNodeStore implements NodeStore, PlacementStore {
  private readonly k: Keys;

  constructor(private readonly c: Etcd3, prefix: string, private readonly graceMs = 30_000) {
    this.k = new Keys(prefix);
  }

  private toRecord(n: StoredNode, now = Date.now()): NodeRecord {
    return {
      name: n.name, address: n.address, labels: n.labels, capacity: n.capacity, cordoned: n.cordoned, lastHeartbeatAt: n.lastHeartbeat,
      status: now - n.lastHeartbeat > this.graceMs ? 'down' : 'ready',
    };
  }

  async join(n: NodeInput, identity: NodeIdentity): Promise<NodeRecord> {
    const now = Date.now();
    // a compare-and-set on the key's revision: of two concurrent joins for one name the second sees the first's identity
    const s = await update(this.c, this.k.node(n.name), (prior: StoredNode | null): StoredNode => {
      if (prior?.identity) throw nameTaken(n.name);
      return { name: n.name, address: n.address ?? '', labels: n.labels ?? {}, capacity: n.capacity ?? {}, cordoned: prior?.cordoned ?? false, lastHeartbeat: now, identity };
    });
    return this.toRecord(s);
  }

  async register(n: NodeInput): Promise<NodeRecord> {
    const now = Date.now();
    return this.change(n.name, (p) => ({ ...p, address: n.address ?? '', labels: n.labels ?? {}, capacity: n.capacity ?? {}, lastHeartbeat: now }), JOIN_FIRST);
  }

  async identity(name: string): Promise<NodeIdentity | null> {
    const kv = (await this.c.get(this.k.node(name)).exec()).kvs[0];
    return (kv && parse<StoredNode>(kv).identity) ?? null;
  }

  async remove(name: string): Promise<boolean> {
    const r = await this.c.delete().key(this.k.node(name)).exec();
    await this.c.delete().prefix(this.k.grant(name)).exec();
    return Number(r.deleted) > 0;
  }

  /** Changes a registered node; E_UNKNOWN_NODE when it is not. */
  private async change(name: string, fn: (n: StoredNode) => StoredNode, hint?: string): Promise<NodeRecord> {
    const unknown = new UserError('E_UNKNOWN_NODE', `node ${name} is not registered`, hint ? { hint } : undefined);
    const s = await update(this.c, this.k.node(name), (prior: StoredNode | null): StoredNode => {
      if (!prior) throw unknown;
      return fn(prior);
    });
    return this.toRecord(s);
  }

  async heartbeat(n: { name: string; capacity?: Record<string, number> }): Promise<NodeRecord> {
    const now = Date.now();
    return this.change(n.name, (p) => ({ ...p, lastHeartbeat: now, capacity: n.capacity ?? p.capacity }), JOIN_FIRST);
  }

  async setCordoned(name: string, cordoned: boolean): Promise<NodeRecord> {
    return this.change(name, (p) => ({ ...p, cordoned }));
  }

  async get(name: string): Promise<NodeRecord | null> {
    const kv = (await this.c.get(this.k.node(name)).exec()).kvs[0];
    return kv ? this.toRecord(parse<StoredNode>(kv)) : null;
  }

  async list(): Promise<NodeRecord[]> {
    const now = Date.now();
    return (await rangeAll(this.c, this.k.node())).kvs.map((kv) => this.toRecord(parse<StoredNode>(kv), now));
  }

  async setPlacement(p: Placement): Promise<void> {
    const stored: Placement = JSON.parse(JSON.stringify({
      deployment: p.deployment, node: p.node, cpus: p.cpus, memoryMiB: p.memoryMiB, request: p.request, placedAt: p.placedAt,
      // a spread service's shard map (absent in documents written before: they read as one node)
      ...(p.shards ? { shards: p.shards } : {}), ...(p.shards && p.rollout ? { rollout: p.rollout } : {}),
    })) as Placement;
    await this.c.put(this.k.placement(p.deployment)).value(JSON.stringify(stored)).exec();
  }

  async getPlacement(deployment: string): Promise<Placement | null> {
    const kv = (await this.c.get(this.k.placement(deployment)).exec()).kvs[0];
    return kv ? parse<Placement>(kv) : null;
  }

  async listPlacements(): Promise<Placement[]> {
    return (await rangeAll(this.c, this.k.placement())).kvs.map((kv) => parse<Placement>(kv));
  }

  async deletePlacement(deployment: string): Promise<void> {
    await this.c.delete().key(this.k.placement(deployment)).exec();
  }

  async grantArtifact(g: ArtifactGrant): Promise<void> {
    await this.c.put(this.k.grant(g.node, g.deployment)).value(g.artifact).exec();
  }

  async artifactGranted(node: string, artifact: string): Promise<boolean> {
    // a node holds a grant per deployment placed on it: a short range
    return Object.values(await this.c.getAll().prefix(this.k.grant(node)).strings()).includes(artifact);
  }

  async revokeArtifacts(deployment: string, node?: string): Promise<void> {
    if (node !== undefined) {
      await this.c.delete().key(this.k.grant(node, deployment)).exec();
      return;
    }
    // every node's grant for the deployment (destroys are rare; the grants are few)
    const all = this.k.grant();
    const keys = (await rangeAll(this.c, all)).kvs.map((kv) => kv.key.toString()).filter((k) => k.slice(all.length).split('/')[1] === deployment);
    await Promise.all(keys.map((k) => this.c.delete().key(k).exec()));
  }
}

/**
 * Leader election with etcd3's Election (the etcd Go client's recipe): each replica puts a key under
 * `election/unikctld/` bound to a lease of ELECTION_TTL_S seconds that it keeps alive; the oldest key leads. A
 * replica that dies (kill -9) stops its keep-alives, etcd deletes its key when the lease expires, and the next
 * candidate is elected. A replica whose lease is lost (etcd unreachable for too long) steps down and campaigns again.
 */
export class EtcdElection implements LeaderElection {
  private readonly election: Election;
  private campaign: Campaign | null = null;
  private leading = false;
  private stopped = false;
  private fenceKey: Fence | null = null;
  private onChange: (leader: boolean) => void = () => undefined;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly c: Etcd3, prefix: string, private readonly replicaId: string, private readonly ttlS = ELECTION_TTL_S) {
    this.election = c.namespace(prefix).election(ELECTION_NAME, ttlS);
  }

  /** This replica's election key while it leads (for fenced claims), else null. */
  fence(): Fence | null {
    return this.leading ? this.fenceKey : null;
  }

  async start(onChange: (leader: boolean) => void): Promise<void> {
    this.onChange = onChange;
    this.stopped = false;
    await this.run(true);
  }

  /** One campaign: `elected` → lead; `error` (lease lost, etcd trouble) → step down, campaign again soon. */
  private async run(first: boolean): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    const campaign = this.election.campaign(this.replicaId);
    this.campaign = campaign;
    let failed = false;
    const fail = (e: unknown): void => {
      if (failed || this.campaign !== campaign) return;
      failed = true;
      this.campaign = null;
      this.stepDown();
      campaign.resign().catch(() => undefined);
      if (!this.stopped) {
        process.emitWarning(`unikctld: leader election (replica ${this.replicaId}) failed: ${e instanceof Error ? e.message : String(e)}; campaigning again`);
        this.timer = setTimeout(() => void this.run(false), RECAMPAIGN_MS);
        this.timer.unref();
      }
    };
    campaign.on('error', fail);
    campaign.on('elected', () => {
      void (async () => {
        const key = await campaign.getCampaignKey();
        const kv = (await this.c.get(key).exec()).kvs[0];
        if (!kv) throw new Error('the election key vanished: the lease expired');
        if (this.campaign !== campaign || this.stopped) return;
        this.fenceKey = { key, createRevision: kv.create_revision };
        this.leading = true;
        this.onChange(true);
      })().catch(fail);
    });
    if (first) {
      // surfaces an unreachable cluster at start-up (the lease grant is the campaign's first request)
      try {
        await campaign.getCampaignKey();
      } catch (e) {
        this.stopped = true;
        this.campaign = null;
        campaign.resign().catch(() => undefined);
        throw new UserError('E_STATE', `cannot reach etcd for leader election: ${e instanceof Error ? e.message : String(e)}`, { hint: 'check the --store etcd:// endpoints' });
      }
    }
  }

  private stepDown(): void {
    this.fenceKey = null;
    if (!this.leading) return;
    this.leading = false;
    this.onChange(false);
  }

  isLeader(): boolean {
    return this.leading;
  }

  async leader(): Promise<string | null> {
    return (await this.election.leader()) ?? null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const c = this.campaign;
    this.campaign = null;
    this.leading = false;
    this.fenceKey = null;
    // resigning deletes the key at once: the other replica takes over without waiting for the TTL
    await c?.resign().catch(() => undefined);
  }
}

export async function openEtcdStores(spec: string, o: StoreOptions): Promise<Omit<ControlPlaneStores, 'samples'>> {
  const { hosts, prefix } = parseEtcdSpec(spec);
  const client = etcdClient(hosts);
  try {
    await client.get(`${prefix}seq`).exec();
  } catch (e) {
    client.close();
    throw new UserError('E_STATE', `cannot reach etcd at ${hosts.join(', ')}: ${e instanceof Error ? e.message : String(e)}`, { hint: 'check that the etcd cluster is up and the --store endpoints' });
  }
  const election = new EtcdElection(client, prefix, o.replicaId);
  return {
    kind: 'etcd',
    operations: new EtcdJournal(client, prefix, () => election.fence()),
    nodes: new EtcdNodeStore(client, prefix, o.nodeGraceMs),
    election,
    async close() {
      await election.stop();
      client.close();
    },
  };
}
