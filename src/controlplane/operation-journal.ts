import type { OperationError, OperationKind, OperationState } from '../store/types.js';
import type { QuotaCheck, TenantUsage } from './tenants.js';

/**
 * An operation (deploy, destroy, move) as the control plane's journal holds it: the request it carries, its attempts,
 * its lease and its outcome. The API shows it as the `Operation` view of store/types.ts.
 */
export interface QueuedOperation {
  id: string;
  kind: OperationKind;
  target: string;
  state: OperationState;
  idempotencyKey: string | null;
  requestHash: string;
  request: unknown;
  attempts: number;
  maxAttempts: number;
  nextRunAt: number;
  leaseOwner: string | null;
  result: unknown;
  error: OperationError | null;
  traceId: string;
  createdAt: number;
  updatedAt: number;
  endedAt: number | null;
}

/** The journal's contract (CP-2), implemented on SQLite (one replica) and etcd (several replicas). */
export interface OperationJournal {
  /**
   * Writes the operation (or returns the one already under its idempotency key). With `quota`, the tenant's usage is
   * checked and the deployment's reservation written in the same transaction: over a limit → E_QUOTA_EXCEEDED and no
   * row at all, so concurrent deploys can never pass a quota together.
   */
  enqueue(j: NewOperation, quota?: QuotaCheck): Promise<{ op: QueuedOperation; created: boolean }>;
  /** What a tenant's reservations add up to (one per deployment name, from its accepted deploy to its destroy). */
  usage(tenant: string): Promise<TenantUsage>;
  /** Whether a deployment name holds a reservation (a deploy that failed before its VM existed still does). */
  reserved(name: string): Promise<boolean>;
  byKey(key: string): Promise<QueuedOperation | null>;
  get(id: string): Promise<QueuedOperation | null>;
  /** Takes the oldest due queued operation (of `kinds`, when given: a lane) and marks it running for `owner`. */
  claim(owner: string, now?: number, kinds?: readonly OperationKind[]): Promise<QueuedOperation | null>;
  /**
   * Ends a running operation held by `owner`. A succeeded destroy drops its deployment's reservation in the same write;
   * so does a deploy whose outcome says `release` (it failed and left no deployment behind).
   */
  finish(id: string, owner: string, outcome: { result?: unknown; error?: OperationError; release?: boolean }): Promise<boolean>;
  retry(id: string, owner: string, runAt: number, error: OperationError): Promise<boolean>;
  /**
   * Shutdown checkpoint: a running operation held by `owner` goes back to the queue at once, its interrupted attempt not
   * counted (it did not fail); false when the operation is not running under that owner anymore.
   */
  release(id: string, owner: string): Promise<boolean>;
  /** Requeues operations left running (by the given dead owners, or by anyone when omitted). */
  recover(deadOwners?: string[]): Promise<number>;
  counts(): Promise<Record<OperationState, number>>;
  recent(limit: number, target?: string): Promise<QueuedOperation[]>;
  pendingDeploys(): Promise<QueuedOperation[]>;
  /** Whether a deploy for this name is queued or running (cheap: the API asks on every deploy). */
  hasPendingDeploy(target: string): Promise<boolean>;
  nextDueAt(): Promise<number | null>;
  /** Test/benchmark support for the fake runner: an idempotent per-operation effect. */
  recordEffect(opId: string): Promise<void>;
  close(): Promise<void>;
}

export type NewOperation = Omit<QueuedOperation, 'state' | 'attempts' | 'leaseOwner' | 'result' | 'error' | 'updatedAt' | 'endedAt' | 'nextRunAt'>;

