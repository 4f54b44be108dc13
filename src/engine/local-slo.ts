import type { Deployment, Store } from '../store/types.js';
import { deployOutcome, OUTCOME_CODE, overlapSeconds, type AppUse, type BootColumns, type DeployColumns, type SampleFilter, type SloSource } from './slo.js';

/** A VM without a memory request runs with its pack's default, which the store does not record: counted at this size. */
export const UNKNOWN_MEMORY_MIB = 128;

/**
 * Local mode's SLO samples: read from the local store, no separate table. Boots and VM-seconds come from the
 * deployments the store still holds (a destroyed deployment's record is gone with it); deploy outcomes from the
 * store's operations (its recent history); requests from what the services' fronts served. A service's replicas
 * (`web.1`, `web.2` …) count under their service's name (`web`), the name its requests and deploys are recorded
 * under, so cost per request of one app divides that app's VM-seconds by that app's requests. Local mode has no
 * tenants.
 */
export class LocalSloSource implements SloSource {
  constructor(private readonly store: Store, private readonly historyLimit = 100_000) {}

  /** the app a deployment counts under: its service for a replica, else its own name */
  private static appOf(d: Deployment): string {
    return d.spec.service?.app ?? d.name;
  }

  private match(name: string, f: SampleFilter): boolean {
    return (f.tenant === undefined || f.tenant === '') && (f.app === undefined || f.app === name);
  }

  boots(from: number, to: number, f: SampleFilter): BootColumns {
    const at: number[] = [];
    const ms: number[] = [];
    for (const d of this.store.listDeployments()) {
      const boot = d.boot.vmmStartToAppStartMs;
      const t = d.startedAt ?? d.createdAt;
      if (boot === undefined || t < from || t >= to || !this.match(LocalSloSource.appOf(d), f)) continue;
      at.push(t);
      ms.push(boot);
    }
    return { at: Float64Array.from(at), ms: Float64Array.from(ms) };
  }

  deploys(from: number, to: number, f: SampleFilter): DeployColumns {
    const at: number[] = [];
    const outcome: number[] = [];
    const code: number[] = [];
    const names = [''];
    for (const op of this.store.listOperations(this.historyLimit)) {
      const t = op.endedAt ?? op.updatedAt;
      if (op.kind !== 'deploy' || t < from || t >= to || !this.match(op.target, f)) continue;
      if (op.state !== 'succeeded' && op.state !== 'failed') continue;
      const c = op.state === 'failed' ? (op.error?.code ?? 'E_INTERNAL') : null;
      at.push(t);
      outcome.push(OUTCOME_CODE[deployOutcome(c)]);
      if (c !== null && !names.includes(c)) names.push(c);
      code.push(names.indexOf(c ?? ''));
    }
    return { at: Float64Array.from(at), outcome: Uint8Array.from(outcome), code: Int32Array.from(code), codeName: (id) => names[id] ?? '' };
  }

  vmUses(from: number, to: number, f: SampleFilter): AppUse[] {
    return this.store.listDeployments().filter((d) => d.startedAt !== null && this.match(LocalSloSource.appOf(d), f)).map((d) => ({
      tenant: '', app: LocalSloSource.appOf(d), vcpus: d.spec.cpus, memoryMiB: d.spec.memoryMiB ?? UNKNOWN_MEMORY_MIB,
      seconds: overlapSeconds(d.startedAt as number, d.endedAt, from, to),
    })).filter((u) => u.seconds > 0);
  }

  /** what the services' fronts served (src/runtime/service-controller.ts records it); null where no service ever ran */
  requests(from: number, to: number, f: SampleFilter): number | null {
    if (f.tenant) return null;
    return this.store.countRequests(from, to, f.app);
  }
}
