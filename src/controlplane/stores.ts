import { join } from 'node:path';
import { UserError } from '../errors.js';
import { Journal, type JobStore } from './journal.js';
import { NodeRegistry, type NodeStore, type PlacementStore } from './nodes.js';

/** Exactly one replica schedules and runs the queue (CP-7). */
export interface LeaderElection {
  /** Starts campaigning; `onChange(true)` fires when this replica becomes the leader, `onChange(false)` when it loses it. */
  start(onChange: (leader: boolean) => void): Promise<void>;
  isLeader(): boolean;
  /** The current leader's replica id, if known. */
  leader(): Promise<string | null>;
  stop(): Promise<void>;
}

export interface ControlPlaneStores {
  kind: 'sqlite' | 'etcd';
  jobs: JobStore;
  nodes: NodeStore & PlacementStore;
  /** null for the single-replica SQLite store: that replica always leads */
  election: LeaderElection | null;
  close(): Promise<void>;
}

export interface StoreOptions { dataDir: string; replicaId: string; sync: 'normal' | 'full'; nodeGraceMs: number; }

/**
 * `sqlite` (default): one replica, state in DATA/journal.db.
 * `etcd://host1:2379,host2:2379`: several replicas share state in etcd, with leader election.
 */
export async function openStores(spec: string, o: StoreOptions): Promise<ControlPlaneStores> {
  if (spec === 'sqlite' || spec === '') {
    const journal = new Journal(join(o.dataDir, 'journal.db'), { synchronous: o.sync === 'full' ? 'FULL' : 'NORMAL' });
    const nodes = new NodeRegistry(journal.database, o.nodeGraceMs);
    return { kind: 'sqlite', jobs: journal, nodes, election: null, close: () => journal.close() };
  }
  if (spec.startsWith('etcd://')) {
    const { openEtcdStores } = await import('./etcd-store.js');
    return openEtcdStores(spec, o);
  }
  throw new UserError('E_INVALID_ARGUMENT', `--store ${spec} is neither sqlite nor etcd://host:port[,host:port...]`);
}
