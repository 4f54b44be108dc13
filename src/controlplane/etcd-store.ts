import { UserError } from '../errors.js';
import type { ControlPlaneStores, StoreOptions } from './stores.js';

export async function openEtcdStores(spec: string, _o: StoreOptions): Promise<ControlPlaneStores> {
  throw new UserError('E_NOT_IMPLEMENTED', `the etcd store (${spec}) is not implemented yet`, { hint: 'use the default sqlite store (one replica)' });
}
