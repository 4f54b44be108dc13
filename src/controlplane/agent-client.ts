import type { DeployResult, DestroyResult, ServiceFlags, StatusResult } from '../engine/client.js';
import { UserError, type ErrorCode } from '../errors.js';
import type { LogEntry } from '../runtime/logstore.js';
import type { TenantIsolation } from '../store/types.js';
import { readNdjson } from '../util/ndjson.js';

/** What the control plane asks an agent to run. */
export interface AgentDeployRequest {
  name: string;
  source: { artifact: string; kind: 'project' | 'binary' | 'package' };
  ports: string[];
  env: string[];
  memory?: string;
  cpus?: number;
  debug: boolean;
  labels: string[];
  idempotencyKey: string;
  /** the manifest digest the control plane's trust check accepted: the agent boots that image or refuses */
  expectManifestSha256?: string;
  tenant?: TenantIsolation;
  /** a service's deploy: this node's shard of it (its replicas here, behind this node's front; docs/services.md, Cluster mode) */
  service?: ServiceFlags;
  supersede?: boolean;
}

/** The control plane's side of the agent API (node token auth, optional TLS via NODE_EXTRA_CA_CERTS). */
export class AgentClient {
  constructor(readonly address: string, private readonly token: string) {}

  private async call(method: string, path: string, json?: unknown, timeoutMs = 30_000): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(`${this.address.replace(/\/+$/, '')}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
        ...(timeoutMs > 0 ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
      });
    } catch (e) {
      throw new UserError('E_TRANSIENT', `node agent ${this.address} unreachable: ${(e as { cause?: Error }).cause?.message ?? (e as Error).message}`);
    }
    if (!res.ok) {
      const err = (await res.json().catch(() => ({}))) as { code?: string; message?: string; hint?: string };
      throw new UserError((err.code ?? 'E_TRANSIENT') as ErrorCode, `node agent ${this.address}: ${err.message ?? `HTTP ${res.status}`}`, err.hint ? { hint: err.hint } : {});
    }
    return res;
  }

  async deploy(req: AgentDeployRequest): Promise<DeployResult> {
    return (await (await this.call('POST', '/v1/agent/deploy', req, 600_000)).json()) as DeployResult;
  }

  async destroy(names: string[], graceMs: number): Promise<DestroyResult[]> {
    return (await (await this.call('POST', '/v1/agent/destroy', { names, graceMs })).json()) as DestroyResult[];
  }

  /** Everything on the node, or one app (a deployment, or a service with its replicas and its operations). */
  async status(app?: string): Promise<StatusResult> {
    return (await (await this.call('GET', `/v1/agent/status${app !== undefined ? `?app=${encodeURIComponent(app)}` : ''}`, undefined, 10_000)).json()) as StatusResult;
  }

  async *logs(req: { name: string; follow: boolean; tail?: number; since?: string; signal: AbortSignal }): AsyncIterable<LogEntry> {
    const q = new URLSearchParams();
    if (req.follow) q.set('follow', '1');
    if (req.tail !== undefined) q.set('tail', String(req.tail));
    if (req.since) q.set('since', req.since);
    const res = await this.call('GET', `/v1/agent/logs/${encodeURIComponent(req.name)}?${q.toString()}`, undefined, 0);
    yield* readNdjson<LogEntry>(res.body, req.signal);
  }
}
