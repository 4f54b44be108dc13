import type { Client } from '../engine/client.js';
import type { OperationError } from '../store/types.js';
import { parseSizeMiB } from '../util/size.js';
import type { Metrics } from './metrics.js';
import type { QueuedOperation } from './operation-journal.js';
import type { DeployOperationRequest } from './runner.js';
import { UNKNOWN_MEMORY_MIB } from '../engine/local-slo.js';
import { deployOutcome } from '../engine/slo.js';
import type { SloSamples } from './slo-samples.js';
import { tenantOfName } from './tenants.js';


/** Tenant and app of an internal deployment name (`acme--web` → acme, web; `web` → '', web). */
export function splitName(internal: string): { tenant: string; app: string } {
  const tenant = tenantOfName(internal);
  return tenant ? { tenant, app: internal.slice(tenant.length + 2) } : { tenant: '', app: internal };
}

/**
 * Turns finished operations into SLO samples (docs/slo.md): every finished deploy (outcome and error code), the
 * boot of every deploy that came up (read from the deployment's view: VMM start → app start, accel, node) and the
 * VM's life for VM-seconds (from its start to its destroy, or to its end when the app had already ended).
 */
export class SloRecorder {
  constructor(
    private readonly samples: SloSamples, private readonly node: Client, private readonly log: (msg: string, f: Record<string, unknown>) => void,
    /** the same SLIs as Prometheus series, for the shipped recording and alert rules (monitoring/) */
    private readonly metrics: Pick<Metrics, 'deploys' | 'boots'> | null = null,
    /** a service's deploy succeeded: the size its replicas run with (their VMs are recorded by the RequestFeed) */
    private readonly serviceSized: ((service: string, size: { vcpus: number; memoryMiB: number }) => void) | null = null,
  ) {}

  finished(op: QueuedOperation, outcome: 'succeeded' | 'failed', error?: OperationError): void {
    void this.record(op, outcome, error).catch((e: unknown) => this.log('recording an SLO sample failed', { operation: op.id, error: String(e) }));
  }

  private async record(op: QueuedOperation, outcome: 'succeeded' | 'failed', error?: OperationError): Promise<void> {
    const now = Date.now();
    const { tenant, app } = splitName(op.target);
    if (op.kind === 'destroy') {
      if (outcome === 'succeeded') this.samples.vmEnded(op.target, now);
      return;
    }
    if (op.kind !== 'deploy') return;
    const code = outcome === 'succeeded' ? null : (error?.code ?? 'E_INTERNAL');
    const kind = deployOutcome(code);
    this.samples.recordDeploy({ at: now, tenant, app, outcome: kind, code });
    this.metrics?.deploys.inc({ tenant, outcome: kind, code: code ?? '' });
    if (outcome !== 'succeeded') return;
    const r = op.request as DeployOperationRequest;
    const size = { vcpus: r.cpus ?? 1, memoryMiB: (r.memory !== undefined ? parseSizeMiB(r.memory) : null) ?? UNKNOWN_MEMORY_MIB };
    // a service has no deployment of its name: its replicas' boots and VM lives come from the RequestFeed's reads
    if (r.service !== undefined) {
      this.serviceSized?.(op.target, size);
      return;
    }
    const d = await this.node.waitFor(op.target, () => true, 0);
    if (!d) return;
    const node = d.node ?? 'local';
    if (d.bootMs !== null) {
      this.samples.recordBoot({ at: now, tenant, app, version: d.image ?? d.id, node, accel: d.accel ?? 'unknown', ms: d.bootMs });
      this.metrics?.boots.observe({ tenant, accel: d.accel ?? 'unknown' }, d.bootMs / 1000);
    }
    this.samples.vmStarted({ deployment: op.target, tenant, app, node, ...size, at: d.startedAt ? Date.parse(d.startedAt) : now });
    // an app that already ended (a batch job like c-hello) used its VM only until then
    if (d.endedAt) this.samples.vmEnded(op.target, Date.parse(d.endedAt));
  }
}
