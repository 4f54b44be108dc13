/** The control plane's node inventory and placements: the contracts its SQLite (nodes.ts) and etcd stores implement. */

/**
 * What the control plane keeps of a node's identity (see node-identity.ts): the SHA-256 of the credential the node
 * presents (never the credential), and the key the control plane presents to the node's agent. The agent key has to
 * stay usable because the control plane is the side that sends it; the agent, which verifies it, keeps only its hash.
 */
export interface NodeIdentity { credentialSha256: string; agentKey: string; }

export interface NodeRecord {
  name: string;
  address: string;
  labels: Record<string, string>;
  capacity: Record<string, number>;
  cordoned: boolean;
  lastHeartbeatAt: number;
  status: 'ready' | 'down';
}

export interface NodeInput { name: string; address?: string; labels?: Record<string, string>; capacity?: Record<string, number>; }

/** Node inventory (CP-6): agents join, then register and heartbeat; a node silent for longer than the grace period is `down`. */
export interface NodeStore {
  /**
   * Creates the node with its identity (atomically: of two joins for one name, one wins). A name held by a node that
   * joined is E_NODE_NAME_TAKEN; a record without an identity (registered before nodes had one) is claimed.
   */
  join(n: NodeInput, identity: NodeIdentity): Promise<NodeRecord>;
  /** Updates a joined node's address, labels and capacity; E_UNKNOWN_NODE when it is not there. */
  register(n: NodeInput): Promise<NodeRecord>;
  identity(name: string): Promise<NodeIdentity | null>;
  /** Deletes the node, its identity and its artifact grants (revocation); false when there was no such node. */
  remove(name: string): Promise<boolean>;
  heartbeat(n: { name: string; capacity?: Record<string, number> }): Promise<NodeRecord>;
  setCordoned(name: string, cordoned: boolean): Promise<NodeRecord>;
  get(name: string): Promise<NodeRecord | null>;
  list(): Promise<NodeRecord[]>;
}

/** Which node runs which deployment, and what it asked for (used to forward calls and to reschedule). */
export interface Placement {
  deployment: string;
  node: string;
  cpus: number;
  memoryMiB: number;
  /** the deploy operation request, so the workload can be recreated elsewhere */
  request: unknown;
  placedAt: number;
  /**
   * A service in cluster mode: its replicas per node, in rollout order (`node` is the first shard's; `cpus` and
   * `memoryMiB` are then per replica). Absent in records written before services were spread: every replica runs
   * on `node`, and `cpus`/`memoryMiB` are the whole service's.
   */
  shards?: Shard[];
  /** The deploy operation that set `shards` (replayed attempts reuse this plan) and what it replaced. */
  rollout?: ShardRollout;
}

/** One node's part of a spread service: that node runs `replicas` replicas behind its own front. */
export interface Shard { node: string; replicas: number; }

export interface ShardRollout {
  /** the control-plane operation id (the per-node idempotency keys derive from it) */
  key: string;
  /** the request of the version before it (sent back to shards already moved when a later shard fails), null for a new service */
  previous: unknown;
  /** the shards before it (nodes no longer in `shards` have their copy removed at its end) */
  from: Shard[];
  /** the version it rolls out (the placement's `request` goes back to `previous` when it fails) */
  request: unknown;
}

/** The nodes a placement runs on. */
export function nodesOf(p: Pick<Placement, 'node' | 'shards'>): string[] {
  return p.shards ? p.shards.map((s) => s.node) : [p.node];
}

export interface PlacementStore {
  setPlacement(p: Placement): Promise<void>;
  getPlacement(deployment: string): Promise<Placement | null>;
  listPlacements(): Promise<Placement[]>;
  deletePlacement(deployment: string): Promise<void>;
  /** Lets `node` fetch `artifact` for `deployment` (recorded before the node is asked to run it). */
  grantArtifact(g: ArtifactGrant): Promise<void>;
  artifactGranted(node: string, artifact: string): Promise<boolean>;
  /** Drops the grants of a deployment: on `node` only, or on every node. */
  revokeArtifacts(deployment: string, node?: string): Promise<void>;
}

export interface ArtifactGrant { node: string; deployment: string; artifact: string; }

/** What an agent reports of a local deployment in its heartbeat: the name and its age by the agent's own clock. */
export interface ReportedDeployment { name: string; ageMs: number; }

/** The newest journaled operation on a deployment name. */
export interface LastOperation { kind: string; state: string; createdAt: number; }
