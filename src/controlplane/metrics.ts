import { Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import type { Client, ServiceView } from '../engine/client.js';
import { LATENCY_BUCKETS_MS } from '../store/service-types.js';
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
    registerServiceMetrics(this.registry, node);
  }
}

/**
 * The services' series (docs/services.md): the traffic through each front per app and version (cumulative counters
 * from the service records: they restart from 0 with the front), its latency histogram, and the replica counts.
 * One status read per scrape serves them all.
 */
function registerServiceMetrics(registry: Registry, node: Client): void {
  const registers = [registry];
  let cached: { at: number; services: Promise<ServiceView[]> } | null = null;
  const services = (): Promise<ServiceView[]> => {
    if (!cached || Date.now() - cached.at > 500) cached = { at: Date.now(), services: node.status().then((s) => s.services ?? [], () => []) };
    return cached.services;
  };
  const traffic = async (each: (labels: { app: string; version: string; tenant: string }, t: ServiceView['traffic'][string]) => void): Promise<void> => {
    for (const v of await services()) {
      for (const [version, t] of Object.entries(v.traffic)) each({ app: v.name, version, tenant: tenantOfName(v.name) ?? '' }, t);
    }
  };
  const counter = (name: string, help: string, pick: (t: ServiceView['traffic'][string]) => number): void => {
    new Counter({
      name, help, labelNames: ['app', 'version', 'tenant'], registers,
      async collect() {
        this.reset();
        await traffic((labels, t) => this.inc(labels, Math.max(0, pick(t))));
      },
    });
  };
  counter('unikctld_front_requests_total', 'Requests (HTTP ports) or connections (TCP ports) the front of a service passed to a version, as the front counts them.', (t) => t.requests);
  counter('unikctld_front_connections_total', 'Client connections the front of a service passed to a version.', (t) => t.connections);
  counter('unikctld_front_errors_total', 'Answers with status >= 500 and connections that reached no replica, per service version.', (t) => t.errors);
  new Counter({
    name: 'unikctld_front_bytes_total', help: 'Bytes through the front of a service per version: in (from clients), out (to clients).', labelNames: ['app', 'version', 'tenant', 'direction'], registers,
    async collect() {
      this.reset();
      await traffic((labels, t) => {
        this.inc({ ...labels, direction: 'in' }, Math.max(0, t.bytesIn));
        this.inc({ ...labels, direction: 'out' }, Math.max(0, t.bytesOut));
      });
    },
  });
  // the records keep the histogram's bucket counts; prom-client's Histogram only observes, so this one is exposed as it is
  const histogramName = 'unikctld_front_request_duration_seconds';
  const histogram = {
    name: histogramName, help: 'Request latency through the front of a service per version (from the front\'s request log).', type: 'histogram', aggregator: 'sum',
    reset(): void {},
    async get() {
      const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
      await traffic((labels, t) => {
        let cumulative = 0;
        LATENCY_BUCKETS_MS.forEach((le, i) => {
          cumulative += t.latency.buckets[i] ?? 0;
          values.push({ metricName: `${histogramName}_bucket`, labels: { ...labels, le: le / 1000 }, value: cumulative });
        });
        const total = cumulative + (t.latency.buckets[LATENCY_BUCKETS_MS.length] ?? 0);
        values.push({ metricName: `${histogramName}_bucket`, labels: { ...labels, le: '+Inf' }, value: total });
        values.push({ metricName: `${histogramName}_sum`, labels, value: t.latency.sumMs / 1000 });
        values.push({ metricName: `${histogramName}_count`, labels, value: total });
      });
      return { name: histogramName, help: this.help, type: 'histogram', values, aggregator: 'sum' };
    },
  };
  registry.registerMetric(histogram as unknown as Metric);
  new Gauge({
    name: 'unikctld_service_replicas', help: 'Replicas of each service: desired, running (VM up) and healthy (in rotation), over all its versions.', labelNames: ['app', 'tenant', 'state'], registers,
    async collect() {
      this.reset();
      for (const v of await services()) {
        const tenant = tenantOfName(v.name) ?? '';
        this.set({ app: v.name, tenant, state: 'desired' }, v.desired);
        this.set({ app: v.name, tenant, state: 'running' }, v.replicas.filter((r) => r.state === 'running').length);
        this.set({ app: v.name, tenant, state: 'healthy' }, v.replicas.filter((r) => r.health === 'healthy').length);
      }
    },
  });
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
      // its deployments and services (the fronts' and replica series' `app`) under its own names
      out.push(line.replaceAll(`deployment="${tenant}--`, 'deployment="').replaceAll(`app="${tenant}--`, 'app="'));
    }
  }
  return out.length ? `${out.join('\n')}\n` : '';
}
