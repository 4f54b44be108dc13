import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Client } from '../engine/client.js';
import type { JobStore } from './journal.js';

/** CP-8 metering and the queue's health, in Prometheus text format. */
export class Metrics {
  readonly registry = new Registry();
  readonly opDuration: Histogram<'kind' | 'outcome'>;
  readonly opFailures: Counter<'kind' | 'code'>;
  readonly opRetries: Counter<'kind'>;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly trustWarnings: Counter<'scope' | 'code'>;

  constructor(journal: JobStore, node: Client) {
    const registers = [this.registry];
    this.opDuration = new Histogram({
      name: 'unikctld_operation_duration_seconds', help: 'Time from a job being claimed to its end, by kind and outcome.',
      labelNames: ['kind', 'outcome'], buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300], registers,
    });
    this.opFailures = new Counter({ name: 'unikctld_operation_failures_total', help: 'Jobs that ended failed, by kind and error code.', labelNames: ['kind', 'code'], registers });
    this.opRetries = new Counter({ name: 'unikctld_operation_retries_total', help: 'Job attempts that failed and were scheduled again.', labelNames: ['kind'], registers });
    this.trustWarnings = new Counter({
      name: 'unikctld_trust_policy_warnings_total', help: 'Deploys a warn-mode trust policy let through although the image failed its check, by scope and error code.',
      labelNames: ['scope', 'code'], registers,
    });
    this.httpRequests = new Counter({ name: 'unikctld_http_requests_total', help: 'HTTP requests by method, route and status.', labelNames: ['method', 'route', 'status'], registers });
    new Gauge({
      name: 'unikctld_queue_jobs', help: 'Jobs in the journal by state.', labelNames: ['state'], registers,
      async collect() {
        for (const [state, n] of Object.entries(await journal.counts())) this.set({ state }, n);
      },
    });
    const perDeployment = (name: string, help: string, pick: (d: Awaited<ReturnType<Client['status']>>['deployments'][number]) => number | null): Gauge<'deployment'> =>
      new Gauge({
        name, help, labelNames: ['deployment'], registers,
        async collect() {
          this.reset();
          const s = await node.status().catch(() => null);
          for (const d of s?.deployments ?? []) {
            const v = pick(d);
            if (v !== null && Number.isFinite(v)) this.set({ deployment: d.name }, v);
          }
        },
      });
    perDeployment('unikctld_deployment_boot_seconds', 'VMM start to app start of each deployment.', (d) => (d.bootMs === null ? null : d.bootMs / 1000));
    perDeployment('unikctld_deployment_image_bytes', 'Image size (kernel + root filesystem) of each deployment.', (d) => d.imageBytes);
    perDeployment('unikctld_deployment_cpu_seconds', 'CPU time used by the VM process of each running deployment.', (d) => d.metrics.cpuSeconds);
    perDeployment('unikctld_deployment_memory_bytes', 'Resident memory of the VM process of each running deployment.', (d) => d.metrics.rssBytes);
    perDeployment('unikctld_deployment_supervisor_memory_bytes', 'Resident memory of the supervisor process that owns each running VM.', (d) => d.metrics.supervisorRssBytes);
  }
}
