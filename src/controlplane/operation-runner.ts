import type { QueuedOperation } from './operation-journal.js';

/** Executes one operation. Must be idempotent per operation id: an operation interrupted by a crash runs again. */
export interface Runner {
  run(op: QueuedOperation): Promise<unknown>;
  /** Whether a deployment of this name exists anywhere it runs (a deploy that failed without one frees its quota). */
  holds(name: string): Promise<boolean>;
}
