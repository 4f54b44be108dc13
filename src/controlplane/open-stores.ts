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
    return { kind: 'sqlite', operations: journal, nodes, election: null, close: () => journal.close() };
  }
  if (spec.startsWith('etcd://')) {
    const { openEtcdStores } = await import('./etcd-store.js');
    return openEtcdStores(spec, o);
  }
  throw new UserError('E_INVALID_ARGUMENT', `--store ${spec} is neither sqlite nor etcd://host:port[,host:port...]`);
}
