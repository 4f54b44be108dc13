import type { LogEntry } from '../runtime/logstore.js';
import type { Deployment, ListenStatus, Operation, OperationError, TenantIsolation } from '../store/types.js';
import type { FrontVersionStats, ReplicaHealth, RolloutState, ServicePolicy, VersionState } from '../store/service-types.js';

/**
 * The service settings of a deploy as the user wrote them (flags; unik.yaml's `deploy:`, `check:` and `restart:`
 * fill what they leave out): parsed by src/engine/service-policy.ts. Any of them makes the deploy a service.
 */
export interface ServiceFlags {
  replicas?: string; check?: string; restart?: string; strategy?: string; maxSurge?: string; maxUnavailable?: string;
  canary?: string; minHealthy?: string; healthyDeadline?: string; autoRevert?: boolean;
}

export interface DeployRequest {
  /** a project dir, a package (path or name[:tag]) or an ELF binary */
  target: string;
  name?: string;
  ports: string[];
  memory?: string;
  cpus?: number;
  env: string[];
  debug: boolean;
  rootfs?: string;
  labels: string[];
  idempotencyKey?: string;
  cwd: string;
  /** local mode: the Ed25519 key (PEM file) that signs an image this deploy builds */
  signKey?: string;
  /**
   * the manifest digest an earlier trust check recorded (the control plane's admission): the engine refuses any
   * other image with E_ARTIFACT_TAMPERED, at its own admission and again right before boot
   */
  expectManifestSha256?: string;
  /** a tenant's deployment (set by the control plane, never by the CLI): isolated on the node (docs/security.md) */
  tenant?: TenantIsolation;
  /** service settings (replicas, check, restart, rollout): the deploy creates or updates a service */
  service?: ServiceFlags;
  /** a deploy of a service during its rollout replaces that rollout instead of failing with E_ROLLOUT_IN_PROGRESS */
  supersede?: boolean;
}

export interface DeployResult {
  name: string;
  deploymentId: string;
  operationId: string;
  state: Deployment['state'];
  source: Deployment['spec']['source']['kind'];
  resolvedFrom: string;
  candidates: string[];
  /** an existing operation was returned for a repeated idempotency key */
  reused: boolean;
  /**
   * a reused operation that failed: its error (state is then `failed`). A used key always answers with its first
   * operation, so retrying a failed deploy takes a new key.
   */
  error?: OperationError | null;
  /** the deploy created or updated a service (`name` is the app; deploymentId the service's id) */
  service?: boolean;
}

export interface DestroyResult { name: string; operationId: string; state: 'destroying' | 'gone'; }

export interface NodeView { name: string; address: string; status: 'ready' | 'down'; cordoned: boolean; labels: Record<string, string>; capacity: Record<string, number>; lastHeartbeatAt: number; }

/** A tenant's limits and usage (control plane with tenants; docs/tenants.md). Absent quota fields are unlimited. */
export interface QuotaView {
  tenant: string;
  quota: { vms?: number; vcpus?: number; memoryMiB?: number; apps?: number; artifactBytes?: number };
  vm: { memoryMiB: { default?: number; max?: number }; cpus: { default?: number; max?: number } };
  ports: { from: number; to: number } | null;
  used: { vms: number; vcpus: number; memoryMiB: number; apps: number; artifactBytes: number };
}

export interface StatusResult { deployments: DeploymentView[]; operations: Operation[]; nodes?: NodeView[]; quota?: QuotaView; services?: ServiceView[]; }

/** A service as status shows it (docs/services.md): versions, replicas with their health, the rollout, traffic. */
export interface ServiceView {
  name: string;
  id: string;
  /** the desired replica count (0 while it is destroyed) */
  desired: number;
  destroying: boolean;
  /** the serving version */
  current: number | null;
  ports: string[];
  policy: ServicePolicy;
  rollout: RolloutState | null;
  versions: Array<{ version: number; state: VersionState; code: string | null; reason: string | null; createdAt: string; image: string; healthy: number; running: number; total: number }>;
  replicas: Array<{ name: string; version: number; state: Deployment['state']; health: ReplicaHealth; healthDetail: string | null; pid: number | null; exitCode: number | null; code: string | null; reason: string | null; node?: string }>;
  /**
   * Cluster mode: the service spread over nodes, one shard per node in rollout order (each node runs its replicas
   * behind its own front; version numbers are each node's own). The other fields merge the shards: `desired` and
   * `restarts` are totals, `replicas` come from every node (each with its node), `current` is the first shard's.
   */
  shards?: Array<{ node: string; desired: number; current: number | null; rollout: string | null; reported: boolean }>;
  /** replicas replaced after ending or failing their check (recent ones count for the crash loop) */
  restarts: number;
  crashLoop: { since: string; reason: string } | null;
  /** the controller process (null: none runs; the next command starts one) */
  controller: { pid: number } | null;
  /** traffic through the front per version (cumulative; key: version number) */
  traffic: Record<string, FrontVersionStats>;
}

export interface DeploymentView {
  name: string;
  id: string;
  state: Deployment['state'];
  exitCode: number | null;
  /** the failure's stable code (see Deployment.code) */
  code: Deployment['code'];
  reason: string | null;
  ports: string[];
  imageBytes: number | null;
  image: string | null;
  pack: string | null;
  mode: 'release' | 'debug' | null;
  accel: Deployment['accel'];
  bootMs: number | null;
  boot: Deployment['boot'];
  uptimeMs: number | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  /**
   * While running: what the app listens on in the guest and whether that serves the published ports (health and a
   * warning with its code and fix); null otherwise. A peer of an older version may leave it out.
   */
  listen?: ListenStatus | null;
  /** VM process (QEMU) CPU time and resident memory; the supervisor that owns the VM is reported apart */
  metrics: { cpuSeconds: number | null; rssBytes: number | null; supervisorRssBytes: number | null };
  /** the node running it (cluster mode) */
  node?: string;
  /** key id of the verified signature of the running image (null: unsigned, or not checked: trust policy off) */
  signedBy: string | null;
  /** the trust check at admission: the policy mode, and the failure a warn-mode deploy let through */
  trust: { mode: 'enforce' | 'warn' | 'off'; warning: { code: string; message: string } | null } | null;
}

export interface LogsRequest { name: string; follow: boolean; tail?: number; since?: string; signal: AbortSignal; }

/** How the CLI reaches the engine: in-process (LocalClient), over HTTP (HttpClient), or a cluster of agents (ClusterClient). */
export interface Client {
  deploy(req: DeployRequest): Promise<DeployResult>;
  destroy(names: string[], opts: { graceMs: number }): Promise<DestroyResult[]>;
  status(name?: string): Promise<StatusResult>;
  logs(req: LogsRequest): AsyncIterable<LogEntry>;
  /** Polls the deployment's view until `until` holds (null: there is none) or the time is up; returns the last view. */
  waitFor(name: string, until: (d: DeploymentView | null) => boolean, timeoutMs: number): Promise<DeploymentView | null>;
  /** Whether a deployment has this name (cheaper than status when only the name matters). */
  has(name: string): Promise<boolean>;
  close(): void;
}
