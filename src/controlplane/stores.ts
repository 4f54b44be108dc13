import type Database from 'better-sqlite3';
import type { OperationJournal } from './operation-journal.js';
import type { NodeStore, PlacementStore } from './node-store.js';

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
  operations: OperationJournal;
  nodes: NodeStore & PlacementStore;
  /** null for the single-replica SQLite store: that replica always leads */
  election: LeaderElection | null;
  /**
   * Where the SLO samples live (slo-samples.ts): the journal's database on SQLite; on etcd this replica's own
   * DATA/samples.db (samples are many small appends, kept out of etcd's consensus log).
   */
  samples: Database.Database;
  close(): Promise<void>;
}

export interface StoreOptions { dataDir: string; replicaId: string; sync: 'normal' | 'full'; nodeGraceMs: number; }
