import type { Client } from '../engine/client.js';
import type { SloReader } from '../engine/slo-reader.js';
import { HttpClient } from '../engine/http-client.js';
import { LocalClient } from '../engine/local.js';
import { homeLayout } from '../paths.js';
import { resolve } from 'node:path';
import { loadTrustPolicy, ruleFor } from '../image/trust.js';

/** Local (embedded) engine by default; the control plane's API when UNIKCTL_CONTROL_PLANE_URL is set (CP-5). */
export function makeClient(env: NodeJS.ProcessEnv = process.env): Client & SloReader {
  if (env.UNIKCTL_CONTROL_PLANE_URL) return new HttpClient(env.UNIKCTL_CONTROL_PLANE_URL, env.UNIKCTL_TOKEN);
  // local mode checks deploys against the trust policy's local scope (off without a policy)
  const policy = env.UNIKCTL_TRUST_POLICY ? loadTrustPolicy(resolve(env.UNIKCTL_TRUST_POLICY)) : null;
  return new LocalClient(homeLayout(env), { trust: ruleFor(policy, 'local') });
}
