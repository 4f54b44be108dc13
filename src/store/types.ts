import type { PortMapping } from '../util/port.js';
import type { ProcessRef } from '../util/proc.js';
import type { ErrorCode } from '../errors.js';
import type { Service, ReplicaOf } from './service-types.js';

/** Lifecycle states (RT-3). `destroying` ends with the record removed. */
export type DeploymentState = 'pending' | 'building' | 'starting' | 'running' | 'exited' | 'failed' | 'destroying';
export const TERMINAL_STATES: readonly DeploymentState[] = ['exited', 'failed'];
export const LIVE_STATES: readonly DeploymentState[] = ['pending', 'building', 'starting', 'running'];


/** What to run: resolved at deploy time, before the async part starts. */
export type DeploySource =
  | { kind: 'project'; dir: string }
  | { kind: 'package'; dir: string; ref?: string }
  | { kind: 'binary'; path: string };

export interface DeploymentSpec {
  source: DeploySource;
  resolvedFrom: string;
  ports: PortMapping[];
  memoryMiB?: number;
  cpus: number;
  env: Record<string, string>;
  debug: boolean;
  rootfsDir?: string;
  labels: Record<string, string>;
  /**
   * Set by a daemon (control plane, agent) for a project a client sent: it is built in a sandbox with this policy
   * (src/image/sandbox.ts), or — with the sandbox turned off — as the daemon's user on a copy. Either way the
   * uploaded artifact is never written.
   */
  remoteBuild?: { sandbox: BuildSandboxPolicy | null };
  /** the trust rule this deploy was admitted under and what that check found; re-checked right before boot */
  trust?: DeployTrust;
  /** Ed25519 private key (PEM path on this host) that signs the image an inline build makes */
  signKey?: string;
  /** Set by the control plane for a tenant's deployment: its VM runs as the tenant's user in the tenant's cgroup. */
  tenant?: TenantIsolation;
  /** a replica of a service (src/store/service-types.ts): its app and version; its ports are loopback forwards the front uses */
  service?: ReplicaOf;
}

export type TrustMode = 'enforce' | 'warn' | 'off';

/** A resolved trust-policy rule (src/image/trust.ts): plain JSON, so it travels with records and operations. */
export interface TrustRule {
  scope: string;
  mode: TrustMode;
  keys: Array<{ keyid: string; publicKeyPem: string }>;
  builders: string[];
}

export interface DeployTrust {
  rule: TrustRule;
  /** sha256 of the manifest.json checked at admission (a package); null when the image is built by the deploy */
  manifestSha256: string | null;
  /** the verified signer (null: unsigned, not checked, or a warn-mode failure) */
  keyid: string | null;
  /** warn mode: the failure that was let through */
  warning: OperationError | null;
}

/**
 * A tenant as the node sees it (docs/security.md, "Tenant isolation"): the tenant's VMs run as the system user
 * `unikctl-t-<name>`, in the cgroup `unikctl/tenant-<name>` that holds all of them. `cpus` is the tenant's whole vCPU
 * quota as a CPU-time limit in cores (absent: unlimited); `memoryMiB` its guest memory quota, to which the node adds
 * a fixed allowance per running VM for QEMU itself (TENANT_VMM_OVERHEAD_MIB in src/runtime/tenant.ts; absent:
 * unlimited).
 */
export interface TenantIsolation { name: string; cpus?: number; memoryMiB?: number; }

/** A tenant name: short enough for a user name (`unikctl-t-` + 16 characters) and a cgroup. */
export const TENANT_NAME_RE = /^[a-z][a-z0-9]{0,15}$/;

/** The limits and network of a sandboxed build (unikctld serve / agent flags). */
export interface BuildSandboxPolicy {
  memoryMiB: number;
  cpus: number;
  pids: number;
  timeoutSeconds: number;
  diskMiB: number;
  /** isolated: outside network without the host's loopback (slirp4netns); none: no network at all */
  network: 'isolated' | 'none';
  /** host paths the build must never see, hidden even when they lie below a bound directory */
  hide: string[];
}


export interface BootMetrics {
  /** QEMU spawn → the guest init reports the app started. */
  vmmStartToAppStartMs?: number;
  /** deploy accepted → the first line the app printed. */
  deployToFirstOutputMs?: number;
  /** QEMU spawn → the first line the app printed. */
  vmmStartToFirstOutputMs?: number;
  /** guest kernel uptime when init started the app. */
  guestUptimeAtAppStartMs?: number;
  buildMs?: number;
}

/** A TCP socket the app listens on inside the guest, as the guest init reads it from /proc/net/tcp{,6}. */
export interface Listener { address: string; port: number; }

/**
 * Whether what the app listens on serves its published ports. A health of the running app, next to the RT-3
 * lifecycle state (which stays `running`: the VM and the app are alive):
 * - checking: the app has not listened on every published guest port yet, the listen deadline has not passed;
 * - listening: every published guest port is listened on a non-loopback address (0.0.0.0, ::, the guest's);
 * - localhost-only: a published guest port is listened on 127.0.0.1/::1 only, which forwarded connections cannot reach;
 * - not-listening: past the deadline, a published guest port has no listener;
 * - no-ports: nothing is published, nothing to check;
 * - unknown: the image's guest init does not report listeners (built before it did): rebuild to check.
 */
export type ListenHealth = 'checking' | 'listening' | 'localhost-only' | 'not-listening' | 'no-ports' | 'unknown';

export interface ListenWarning {
  code: 'E_NOT_LISTENING' | 'E_LISTENING_LOCALHOST_ONLY';
  /** what is wrong, naming the ports and what the app listens on */
  message: string;
  /** how to fix it (bind 0.0.0.0, the framework's variable or flag, or publish the port the app uses) */
  fix: string;
}

export interface ListenStatus {
  health: ListenHealth;
  /** the guest ports checked: the published ones */
  ports: number[];
  /** what the app listens on (null until the guest init's first report) */
  listeners: Listener[] | null;
  warning: ListenWarning | null;
  /** when the health took its value (ms since the epoch) */
  since: number;
}

export interface ImageSummary {
  dir: string;
  name: string;
  pack: string;
  mode: 'release' | 'debug';
  sizeBytes: number;
  kernelBytes: number;
  rootfsBytes: number;
  rootfsSha256: string;
  kernelSha256: string;
  ref?: string;
  /** key id of the verified signature of the image that boots (null: unsigned or not checked) */
  signedBy?: string | null;
  builderId?: string | null;
}

export interface Deployment {
  name: string;
  id: string;
  state: DeploymentState;
  exitCode: number | null;
  /**
   * Why it failed (state `failed`) or that the app exited non-zero (`exited`, E_APP_EXITED): a stable code of the
   * error table, never parsed out of `reason` (the human-readable text).
   */
  code: ErrorCode | null;
  reason: string | null;
  spec: DeploymentSpec;
  image: ImageSummary | null;
  supervisor: ProcessRef | null;
  vmm: ProcessRef | null;
  accel: 'kvm' | 'tcg' | null;
  boot: BootMetrics;
  /** what the running app listens on and whether that serves its published ports (null before the app starts) */
  listen: ListenStatus | null;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

export type OperationKind = 'deploy' | 'destroy' | 'move';
export type OperationState = 'queued' | 'running' | 'succeeded' | 'failed';

export interface OperationError { code: ErrorCode; message: string; }

export interface Operation {
  id: string;
  kind: OperationKind;
  target: string;
  state: OperationState;
  idempotencyKey: string | null;
  requestHash: string | null;
  error: OperationError | null;
  createdAt: number;
  updatedAt: number;
  endedAt: number | null;
}

export interface DeploymentEvent { id: number; deployment: string; at: number; type: string; message: string; }

/** Fields a state transition may set along with the new state. */
export type DeploymentPatch = Partial<Pick<Deployment, 'exitCode' | 'code' | 'reason' | 'image' | 'supervisor' | 'vmm' | 'accel' | 'boot' | 'listen' | 'startedAt' | 'endedAt'>>;

export interface Store {
  /** Inserts a deployment and its deploy operation atomically; fails with E_NAME_TAKEN if the name exists and with E_PORT_IN_USE if a live deployment publishes one of its host ports. */
  createDeployment(d: Deployment, op: Operation): void;
  /** Throws E_DISK_FULL unless the disk holding the state has room for a new deployment (checked before a deploy). */
  requireSpace(): void;
  /** Picks `base`, `base-2`, `base-3`… — the first name not in use. */
  freeName(base: string): string;
  getDeployment(name: string): Deployment | null;
  listDeployments(): Deployment[];
  /** Compare-and-set: applies only when the current state is one of `from`; returns the updated record or null. */
  transition(name: string, from: readonly DeploymentState[], to: DeploymentState, patch?: DeploymentPatch): Deployment | null;
  /** Updates fields without a state change (metrics, process refs). */
  patchDeployment(name: string, patch: DeploymentPatch): void;
  deleteDeployment(name: string): void;
  createOperation(op: Operation): void;
  findOperationByKey(key: string): Operation | null;
  getOperation(id: string): Operation | null;
  updateOperation(id: string, state: OperationState, error?: OperationError | null): void;
  listOperations(limit: number, target?: string): Operation[];
  addEvent(deployment: string, type: string, message: string): void;
  listEvents(deployment: string, limit: number): DeploymentEvent[];
  /**
   * Inserts a service and its deploy operation atomically: E_NAME_TAKEN when a deployment or service has the name,
   * E_PORT_IN_USE when a live deployment or another service publishes one of its host ports.
   */
  createService(s: Service, op: Operation): void;
  getService(name: string): Service | null;
  listServices(): Service[];
  /** Compare-and-set on `rev`: writes `s` (with rev + 1) only if the stored rev is still `s.rev`; false otherwise. */
  updateService(s: Service): boolean;
  deleteService(name: string): void;
  /** `n` requests (or connections, on TCP ports) that the front of service `app` served, counted at `at` */
  recordRequests(app: string, n: number, at: number): void;
  /** requests in [from, to) (of one app); null while no service ever existed here (no request source) */
  countRequests(from: number, to: number, app?: string): number | null;
  close(): void;
}
