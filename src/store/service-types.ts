import type { ErrorCode } from '../errors.js';
import type { ProcessRef } from '../util/proc.js';
import type { PortMapping } from '../util/port.js';
import type { DeploymentSpec } from './types.js';

/**
 * Services (docs/services.md): an app deployed with replicas, a health check, a restart policy and a rollout
 * policy. Each replica is an ordinary deployment record (one supervisor, one VM) named `<app>.<n>` — a name no user
 * deployment can take (names have no dots) — whose `spec.service` says which app and version it belongs to. The
 * service record holds what the replicas should be; one service controller process per app (src/runtime/service
 * worker) makes them so, owns the traffic front on the published ports, and journals every step in this record so
 * a controller killed mid-rollout resumes where it was.
 */

/** How a replica's health is checked. `tcp`: a connection to the guest port opens; `http`: GET path answers 2xx/3xx. */
export interface CheckSpec {
  kind: 'tcp' | 'http';
  /** the guest port checked: one of the published guest ports (the controller checks through its loopback forward) */
  port: number;
  /** http: the request path (starts with /) */
  path?: string;
  intervalMs: number;
  timeoutMs: number;
  /** after the app starts: failures during this time do not count */
  graceMs: number;
  /** consecutive failures that make a replica unhealthy */
  failures: number;
}

/** always: any end is replaced; on-failure: a non-zero exit or a failure (crash, failed check); never: left as it ended. */
export type RestartPolicy = 'always' | 'on-failure' | 'never';
export const RESTART_POLICIES = ['always', 'on-failure', 'never'] as const satisfies readonly RestartPolicy[];

export type RolloutStrategy = 'rolling' | 'canary' | 'immediate';
export const ROLLOUT_STRATEGIES = ['rolling', 'canary', 'immediate'] as const satisfies readonly RolloutStrategy[];

export interface RolloutPolicy {
  strategy: RolloutStrategy;
  /** rolling: replicas above the desired count while a version replaces another */
  maxSurge: number;
  /** rolling: replicas below the desired count that may be out of rotation meanwhile */
  maxUnavailable: number;
  /** canary: the new version's replicas that take a share of traffic before it is promoted */
  canary: number;
  /** a new replica counts as healthy for the rollout once healthy for this long */
  minHealthyMs: number;
  /** the whole rollout must be healthy by this time after it started, else it failed */
  healthyDeadlineMs: number;
  /** a failed rollout returns to the previous version (default on) */
  autoRevert: boolean;
}

/** What a deploy asks of a service: the settings that are not the replicas' own spec. */
export interface ServicePolicy {
  replicas: number;
  check: CheckSpec | null;
  restart: RestartPolicy;
  rollout: RolloutPolicy;
}

/** The replica side of a deployment record (DeploymentSpec.service). */
export interface ReplicaOf { app: string; version: number; }

export type VersionState = 'active' | 'rolling-out' | 'retired' | 'failed' | 'reverted';

export interface ServiceVersion {
  version: number;
  /** the replicas' spec; its ports are the service's published ports (each replica's own are loopback forwards) */
  spec: DeploymentSpec;
  /** hash of what makes two deploys the same version (source, env, ports, memory…, not the replica count) */
  specHash: string;
  state: VersionState;
  /** why a version failed or was reverted */
  code: ErrorCode | null;
  reason: string | null;
  createdAt: number;
}

export type RolloutPhase = 'canary' | 'progressing' | 'reverting' | 'succeeded' | 'failed' | 'reverted';

export interface RolloutState {
  from: number | null;
  to: number;
  strategy: RolloutStrategy;
  phase: RolloutPhase;
  startedAt: number;
  updatedAt: number;
  /** the rollout's deploy operation (journal), ended when the rollout ends */
  operationId: string;
  code: ErrorCode | null;
  reason: string | null;
}

/**
 * A replica's health (beside its lifecycle state): starting (booting, or in its check's grace period), healthy (in
 * rotation), unhealthy (failed its check `failures` times in a row), draining (leaving rotation before it stops),
 * stopped (its VM ended).
 */
export type ReplicaHealth = 'starting' | 'healthy' | 'unhealthy' | 'draining' | 'stopped';

export interface ReplicaHealthRecord { health: ReplicaHealth; since: number; detail: string | null; }

/** One replica's restarts, for backoff and the crash-loop verdict. */
export interface RestartRecord { at: number; replica: string; code: ErrorCode | null; exitCode: number | null; reason: string | null; }

export interface Service {
  name: string;
  id: string;
  /** desired: run; destroying: the controller drains and removes every replica, then the record */
  desired: 'run' | 'destroy';
  policy: ServicePolicy;
  /** the published ports, the front's: the same for every version (a deploy that changes them is refused) */
  ports: PortMapping[];
  /** replica → its health as the controller last saw it */
  health: Record<string, ReplicaHealthRecord>;
  /** traffic through the front per version (string key: the version number) */
  traffic: Record<string, FrontVersionStats>;
  versions: ServiceVersion[];
  /** the version that serves (null before the first version is healthy) */
  current: number | null;
  rollout: RolloutState | null;
  /** recent restarts (newest last, bounded) */
  restarts: RestartRecord[];
  /** the next replica number (`<app>.<n>`) */
  nextReplica: number;
  /** the controller process (null: none started yet) */
  controller: ProcessRef | null;
  /** the front's process and the replica in each of its server slots */
  front: FrontRecord | null;
  createdAt: number;
  updatedAt: number;
  /** compare-and-set counter: every write names the revision it read */
  rev: number;
}

export interface FrontRecord {
  pid: number;
  startTime: number;
  /** the front's control channel (HAProxy: its admin socket) */
  control: string;
  /** the UDP port on 127.0.0.1 the front sends its request log to (a controller that adopts the front binds it again) */
  logPort: number;
  /** slot number → replica name, per published port's backend (the same slot in every backend) */
  slots: Record<string, string>;
}

/** Traffic through the front per version (cumulative since the front started). */
export interface FrontVersionStats {
  connections: number;
  requests: number;
  bytesIn: number;
  bytesOut: number;
  /** answers with status >= 500 (HTTP ports) and connections that failed to reach a replica */
  errors: number;
  /** request latency (ms) histogram: upper bounds LATENCY_BUCKETS_MS, counts per bucket, plus +Inf */
  latency: { buckets: number[]; count: number; sumMs: number };
}

export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] as const;
