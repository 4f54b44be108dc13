import type { QueuedOperation } from './operation-journal.js';

/** Executes one operation. Must be idempotent per operation id: an operation interrupted by a crash runs again. */
export interface Runner {
  run(op: QueuedOperation): Promise<unknown>;
}
