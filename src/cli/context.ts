import type { Client } from '../engine/client.js';
import type { SloReader } from '../engine/slo-reader.js';
import { HttpClient } from '../engine/http-client.js';
import { LocalClient } from '../engine/local.js';
import { homeLayout } from '../paths.js';

/** Local (embedded) engine by default; the control plane's API when UNIKCTL_CONTROL_PLANE_URL is set (CP-5). */
export function makeClient(env: NodeJS.ProcessEnv = process.env): Client & SloReader {
  if (env.UNIKCTL_CONTROL_PLANE_URL) return new HttpClient(env.UNIKCTL_CONTROL_PLANE_URL, env.UNIKCTL_TOKEN);
  return new LocalClient(homeLayout(env));
}
