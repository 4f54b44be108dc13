import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Client } from '../engine/client.js';
import type { OperationJournal } from './operation-journal.js';
import { tenantOfName } from './tenants.js';

/** CP-8 metering and the queue's health, in Prometheus text format. */
export class Metrics {
  readonly registry = new Registry();
  readonly opDuration: Histogram<'kind' | 'outcome' | 'tenant'>;
  readonly opFailures: Counter<'kind' | 'code' | 'tenant'>;
  readonly opRetries: Counter<'kind' | 'tenant'>;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly trustWarnings: Counter<'scope' | 'code'>;
  /** finished deploys by SLO outcome (succeeded, platform, user: docs/slo.md) — the deploy success SLI */
  readonly deploys: Counter<'tenant' | 'outcome' | 'code'>;
  /** VMM start → app start of each deploy that came up — the boot latency SLI (1.5 s is a bucket bound) */
  readonly boots: Histogram<'tenant' | 'accel'>;

  constructor(journal: OperationJournal, node: Client) {
    const registers = [this.registry];
    this.opDuration = new Histogram({
      name: 'unikctld_operation_duration_seconds', help: 'Time from an operation being claimed to its end, by kind and outcome.',
      labelNames: ['kind', 'outcome', 'tenant'], buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300], registers,
    });
    this.opFailures = new Counter({ name: 'unikctld_operation_failures_total', help: 'Operations that ended failed, by kind and error code.', labelNames: ['kind', 'code', 'tenant'], registers });
    this.opRetries = new Counter({ name: 'unikctld_operation_retries_total', help: 'Operation attempts that failed and were scheduled again.', labelNames: ['kind', 'tenant'], registers });
    this.trustWarnings = new Counter({
      name: 'unikctld_trust_policy_warnings_total', help: 'Deploys a warn-mode trust policy let through although the image failed its check, by scope and error code.',
      labelNames: ['scope', 'code'], registers,
    });
    this.deploys = new Counter({ name: 'unikctld_deploys_total', help: 'Finished deploy operations by SLO outcome (succeeded, platform failure, user error) and error code.', labelNames: ['tenant', 'outcome', 'code'], registers });
    this.boots = new Histogram({
      name: 'unikctld_boot_seconds', help: 'VMM start to app start of each deploy that came up.', labelNames: ['tenant', 'accel'],
      buckets: [0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10, 30, 60, 120], registers,
    });
    this.httpRequests = new Counter({ name: 'unikctld_http_requests_total', help: 'HTTP requests by method, route and status.', labelNames: ['method', 'route', 'status'], registers });
    new Gauge({
      name: 'unikctld_queue_operations', help: 'Operations in the journal by state.', labelNames: ['state'], registers,
      async collect() {
        for (const [state, n] of Object.entries(await journal.counts())) this.set({ state }, n);
      },
    });
    const perDeployment = (name: string, help: string, pick: (d: Awaited<ReturnType<Client['status']>>['deployments'][number]) => number | null): Gauge<'deployment' | 'tenant'> =>
      new Gauge({
        name, help, labelNames: ['deployment', 'tenant'], registers,
        async collect() {
          this.reset();
          const s = await node.status().catch(() => null);
          for (const d of s?.deployments ?? []) {
            const v = pick(d);
            if (v !== null && Number.isFinite(v)) this.set({ deployment: d.name, tenant: tenantOfName(d.name) ?? '' }, v);
          }
        },
      });
    perDeployment('unikctld_deployment_boot_seconds', 'VMM start to app start of each deployment.', (d) => (d.bootMs === null ? null : d.bootMs / 1000));
    perDeployment('unikctld_deployment_image_bytes', 'Image size (kernel + root filesystem) of each deployment.', (d) => d.imageBytes);
    perDeployment('unikctld_deployment_cpu_seconds', 'CPU time used by the VM process of each running deployment.', (d) => d.metrics.cpuSeconds);
    perDeployment('unikctld_deployment_memory_bytes', 'Resident memory of the VM process of each running deployment.', (d) => d.metrics.rssBytes);
    perDeployment('unikctld_deployment_listening', 'Whether each running deployment listens where its published ports forward (1), or not (0: localhost-only, not-listening); absent while checking or without ports.',
      (d) => { const h = d.listen?.health; return h === 'listening' ? 1 : h === 'localhost-only' || h === 'not-listening' ? 0 : null; });
    perDeployment('unikctld_deployment_supervisor_memory_bytes', 'Resident memory of the supervisor process that owns each running VM.', (d) => d.metrics.supervisorRssBytes);
  }
}

/** The `tenant` label of an operation's series: its deployment's tenant, '' without tenants. */
export const tenantLabel = (deployment: string): string => tenantOfName(deployment) ?? '';

/**
 * A tenant's view of the exposition: only the samples labelled with its tenant (and their HELP/TYPE lines). Series
 * without a tenant label (queue depth, HTTP totals) describe everyone and are left out.
 */
export function metricsForTenant(text: string, tenant: string): string {
  const out: string[] = [];
  let header: string[] = [];
  let emitted = false;
  const mine = `tenant="${tenant}"`;
  for (const line of text.split('\n')) {
    if (line.startsWith('# HELP ')) {
      header = [line];
      emitted = false;
    } else if (line.startsWith('# ')) {
      header.push(line);
    } else if (line.includes(mine)) {
      if (!emitted) out.push(...header);
      emitted = true;
      // its deployments under its own names
      out.push(line.replaceAll(`deployment="${tenant}--`, 'deployment="'));
    }
  }
  return out.length ? `${out.join('\n')}\n` : '';
}
