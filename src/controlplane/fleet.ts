import type { DeployRequest } from '../engine/client.js';
import type { Placement } from './node-store.js';

/**
 * What a control plane that places VMs on node agents can do beyond a `Client`: find and move the workloads of a
 * node (drain, failed nodes). A control plane running VMs on its own host has no fleet (null), declared by type
 * rather than discovered at run time.
 */
export interface Fleet {
  /** Recreates `name` on another node and removes the copy on `from` (skipped when the source is down). */
  move(name: string, from: string, opts: { sourceDown: boolean; graceMs: number }): Promise<{ name: string; from: string; to: string } | null>;
  /**
   * A service's deploy (its idempotency key: the control-plane operation id): spread over nodes, rolled out one node
   * at a time, ended when the last node's rollout ends (docs/services.md, Cluster mode).
   */
  deployService(req: DeployRequest): Promise<unknown>;
  /** The workloads placed on a node (a spread service: those with a shard there). */
  placementsOn(node: string): Promise<Placement[]>;
}
