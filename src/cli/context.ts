import type { Client } from '../engine/client.js';
import { LocalClient } from '../engine/local.js';
import { UserError } from '../errors.js';
import { homeLayout } from '../paths.js';

/** Local (embedded) engine by default; remote mode (CP-5) comes with the control plane. */
export function makeClient(env: NodeJS.ProcessEnv = process.env): Client {
  if (env.UNIKCTL_CONTROL_PLANE_URL) {
    throw new UserError('E_NOT_IMPLEMENTED', 'remote mode (UNIKCTL_CONTROL_PLANE_URL) is not implemented yet', { hint: 'unset UNIKCTL_CONTROL_PLANE_URL to use the local runtime' });
  }
  return new LocalClient(homeLayout(env));
}
