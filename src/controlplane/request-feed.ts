import type { Client } from '../engine/client.js';
import type { RequestCounter } from './request-counter.js';
import { splitName } from './slo-recorder.js';

/**
 * Feeds the SLO request figures (docs/slo.md) from the services' fronts: every `tick` reads the node's services
 * (their cumulative per-version traffic, as the service controllers record it) and counts what each app served
 * since the previous tick. The first tick only takes the baseline, so a restarted control plane does not count a
 * front's history twice (requests between its last tick and its restart are not counted). A total that went down
 * (a front restarted, a service destroyed and deployed again) starts a new count from 0. The counter is attached
 * (its figures are numbers, not "no request data") once a service is seen.
 */
export class RequestFeed {
  private last: Map<string, number> | null = null;

  constructor(private readonly node: Pick<Client, 'status'>, private readonly counter: RequestCounter) {}

  async tick(now = Date.now()): Promise<number> {
    const s = await this.node.status();
    // the figures have a source from the first service on: until then they stay "no request data"
    if ((s.services ?? []).length > 0 && !this.counter.attached) this.counter.attach();
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
}
