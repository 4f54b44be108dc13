import type { LogEntry } from '../runtime/logstore.js';
import type { Deployment, Operation, OperationError, TenantIsolation } from '../store/types.js';

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
  /** a tenant's deployment (set by the control plane, never by the CLI): isolated on the node (docs/security.md) */
  tenant?: TenantIsolation;
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
}

export interface DestroyResult { name: string; operationId: string; state: 'destroying' | 'gone'; }

export interface NodeView { name: string; address: string; status: 'ready' | 'down'; cordoned: boolean; labels: Record<string, string>; capacity: Record<string, number>; lastHeartbeatAt: number; }

export interface StatusResult { deployments: DeploymentView[]; operations: Operation[]; nodes?: NodeView[]; }

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
  /** VM process (QEMU) CPU time and resident memory; the supervisor that owns the VM is reported apart */
  metrics: { cpuSeconds: number | null; rssBytes: number | null; supervisorRssBytes: number | null };
  /** the node running it (cluster mode) */
  node?: string;
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
