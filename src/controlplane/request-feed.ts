import type { Client } from '../engine/client.js';
import { UNKNOWN_MEMORY_MIB } from '../engine/local-slo.js';
import type { RequestCounter } from './request-counter.js';
import type { BootSample, VmStart } from './slo-samples.js';
import { splitName } from './slo-recorder.js';

/** Where the feed records the replicas' VM lives and boots (SloSamples). */
export interface ReplicaSamples {
  vmStarted(v: VmStart): boolean;
  vmEnded(deployment: string, at: number): void;
  openLives(): string[];
  lastSize(tenant: string, app: string): { vcpus: number; memoryMiB: number } | null;
  recordBoot(s: BootSample): void;
  hasBoot(tenant: string, app: string, at: number): boolean;
}

/** A service replica's deployment name: `<service>.<n>` (app names have no dots, so nothing else looks like it). */
const REPLICA = /^(.+)\.\d+$/;

/**
 * Feeds the SLO request figures (docs/slo.md) from the services' fronts: every `tick` reads the node's services
 * (their cumulative per-version traffic, as the service controllers record it) and counts what each app served
 * since the previous tick. The first tick only takes the baseline, so a restarted control plane does not count a
 * front's history twice (requests between its last tick and its restart are not counted). A total that went down
 * (a front restarted, a service destroyed and deployed again) starts a new count from 0. The counter is attached
 * (its figures are numbers, not "no request data") once a service is seen.
 *
 * With `replicas`, the same read also records the replicas' VMs, which no operation of the control plane names (a
 * service's deploy operation is named after the service; its controller starts and replaces the replicas): a
 * running replica not seen before opens a VM life (from its start); its boot is recorded once per start time, at the
 * first read that knows it (also after a restart of unikctld, which finds it recorded); a replica life that is no
 * longer running ends (at its end, or now). Their size is the service deploy's (`sized`, from the SloRecorder), or
 * the app's last recorded VM's after a restart of unikctld, or 1 vCPU and 128 MiB.
 */
export class RequestFeed {
  private last: Map<string, number> | null = null;
  private readonly sizes = new Map<string, { vcpus: number; memoryMiB: number }>();

  constructor(
    private readonly node: Pick<Client, 'status'>, private readonly counter: RequestCounter,
    private readonly replicas: ReplicaSamples | null = null,
  ) {}

  /** The VM size a service's replicas run with (its deploy request's), keyed by the service's internal name. */
  sized(service: string, size: { vcpus: number; memoryMiB: number }): void {
    this.sizes.set(service, size);
  }

  async tick(now = Date.now()): Promise<number> {
    const s = await this.node.status();
    // the figures have a source from the first service on: until then they stay "no request data"
    if ((s.services ?? []).length > 0 && !this.counter.attached) this.counter.attach();
    if (this.replicas) this.recordReplicas(s, now);
    const totals = new Map<string, number>();
    for (const v of s.services ?? []) totals.set(v.name, Object.values(v.traffic).reduce((n, t) => n + t.requests, 0));
    const prior = this.last;
    this.last = totals;
    if (!prior) return 0;
    let counted = 0;
    for (const [name, total] of totals) {
      const before = prior.get(name) ?? 0;
      const n = total >= before ? total - before : total;
      if (n <= 0) continue;
      const { tenant, app } = splitName(name);
      this.counter.count(tenant, app, n, now);
      counted += n;
    }
    return counted;
  }

  private recordReplicas(s: Awaited<ReturnType<Client['status']>>, now: number): void {
    const r = this.replicas as ReplicaSamples;
    const views = new Map(s.deployments.map((d) => [d.name, d]));
    const running = new Set<string>();
    for (const v of s.services ?? []) {
      const { tenant, app } = splitName(v.name);
      for (const rep of v.replicas) {
        const d = views.get(rep.name);
        if (!d || d.state !== 'running' || !d.startedAt) continue;
        running.add(rep.name);
        const size = this.sizes.get(v.name) ?? r.lastSize(tenant, app) ?? { vcpus: 1, memoryMiB: UNKNOWN_MEMORY_MIB };
        const node = d.node ?? 'local';
        const at = Date.parse(d.startedAt);
        r.vmStarted({ deployment: rep.name, tenant, app, node, ...size, at });
        // once per life (its start time), whenever its boot time is first known: also after a restart of unikctld
        if (d.bootMs !== null && !r.hasBoot(tenant, app, at)) {
          r.recordBoot({ at, tenant, app, version: d.image ?? d.id, node, accel: d.accel ?? 'unknown', ms: d.bootMs });
        }
      }
    }
    for (const name of r.openLives()) {
      if (!REPLICA.test(name) || running.has(name)) continue;
      const ended = views.get(name)?.endedAt;
      r.vmEnded(name, ended ? Math.min(now, Date.parse(ended)) : now);
    }
  }
}
