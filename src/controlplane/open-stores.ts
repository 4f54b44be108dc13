import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { Journal } from './journal.js';
import { NodeRegistry } from './nodes.js';
import type { ControlPlaneStores, StoreOptions } from './stores.js';

/**
 * `sqlite` (default): one replica, state in DATA/journal.db.
 * `etcd://host1:2379,host2:2379`: several replicas share state in etcd, with leader election.
 */
export async function openStores(spec: string, o: StoreOptions): Promise<ControlPlaneStores> {
  if (spec === 'sqlite' || spec === '') {
    const journal = new Journal(join(o.dataDir, 'journal.db'), { synchronous: o.sync === 'full' ? 'FULL' : 'NORMAL' });
    const nodes = new NodeRegistry(journal.database, o.nodeGraceMs);
    return { kind: 'sqlite', operations: journal, nodes, election: null, samples: journal.database, close: () => journal.close() };
  }
  if (spec.startsWith('etcd://')) {
    const { openEtcdStores } = await import('./etcd-store.js');
    const stores = await openEtcdStores(spec, o);
    mkdirSync(o.dataDir, { recursive: true });
    const samples = new Database(join(o.dataDir, 'samples.db'));
    samples.pragma('journal_mode = WAL');
    return { ...stores, samples, close: async () => { samples.close(); await stores.close(); } };
  }
  throw new UserError('E_INVALID_ARGUMENT', `--store ${spec} is neither sqlite nor etcd://host:port[,host:port...]`);
}
