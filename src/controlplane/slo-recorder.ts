import type { Client } from '../engine/client.js';
import type { OperationError } from '../store/types.js';
import { parseSizeMiB } from '../util/size.js';
import type { QueuedOperation } from './operation-journal.js';
import type { DeployOperationRequest } from './runner.js';
import { deployOutcome } from './slo.js';
import type { SloSamples } from './slo-samples.js';
import { tenantOfName } from './tenants.js';

/** A VM without a memory request gets its pack's default, which the control plane does not see: counted at this size. */
export const UNKNOWN_MEMORY_MIB = 128;

/** Tenant and app of an internal deployment name (`acme--web` → acme, web; `web` → '', web). */
export function splitName(internal: string): { tenant: string; app: string } {
  const tenant = tenantOfName(internal);
  return tenant ? { tenant, app: internal.slice(tenant.length + 2) } : { tenant: '', app: internal };
}

/**
 * Turns finished operations into SLO samples (docs/slo.md): every finished deploy (outcome and error code), the
 * boot of every deploy that came up (read from the deployment's view: VMM start → app start, accel, node) and the
 * VM's life for VM-seconds (from its deploy to its destroy).
 */
export class SloRecorder {
  constructor(private readonly samples: SloSamples, private readonly node: Client, private readonly log: (msg: string, f: Record<string, unknown>) => void) {}

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
    this.samples.recordDeploy({ at: now, tenant, app, outcome: deployOutcome(code), code });
    if (outcome !== 'succeeded') return;
    const d = await this.node.waitFor(op.target, () => true, 0);
    if (!d) return;
    const node = d.node ?? 'local';
    if (d.bootMs !== null) this.samples.recordBoot({ at: now, tenant, app, version: d.image ?? d.id, node, accel: d.accel ?? 'unknown', ms: d.bootMs });
    const r = op.request as DeployOperationRequest;
    this.samples.vmStarted({
      deployment: op.target, tenant, app, node, vcpus: r.cpus ?? 1, memoryMiB: (r.memory !== undefined ? parseSizeMiB(r.memory) : null) ?? UNKNOWN_MEMORY_MIB,
      at: d.startedAt ? Date.parse(d.startedAt) : now,
    });
  }
}
