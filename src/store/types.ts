import type { PortMapping } from '../util/port.js';
import type { ProcessRef } from '../util/proc.js';
import type { ErrorCode } from '../errors.js';

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
  /** Set by the control plane for a tenant's deployment: its VM runs as the tenant's user in the tenant's cgroup. */
  tenant?: TenantIsolation;
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
export type DeploymentPatch = Partial<Pick<Deployment, 'exitCode' | 'code' | 'reason' | 'image' | 'supervisor' | 'vmm' | 'accel' | 'boot' | 'startedAt' | 'endedAt'>>;

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
  close(): void;
}
