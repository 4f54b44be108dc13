import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Client } from '../engine/client.js';
import { LocalClient } from '../engine/local.js';
import { UserError } from '../errors.js';
import type { BuildSandboxPolicy } from '../store/types.js';
import { homeLayout, projectRoot } from '../paths.js';
import { buildApp } from './app.js';
import { ArtifactStore } from '../store/artifacts.js';
import { Authenticator, MIN_PLAIN_TOKEN_LENGTH, loadAuthConfig } from './auth.js';
import { NodeAuthenticator } from './node-identity.js';
import { type HttpTimeouts } from './http.js';
import { Metrics, tenantLabel } from './metrics.js';
import { TenantRegistry } from './tenants.js';
import { Queue } from './queue.js';
import type { Runner } from './operation-runner.js';
import { EngineRunner, FakeRunner } from './runner.js';
import { ClusterClient } from './cluster.js';
import type { Fleet } from './fleet.js';
import type { HostAdmission } from './host-admission.js';
import { checkHostPorts, hostMemoryMiB } from '../engine/deploy-input.js';
import { ControlPlane } from './service.js';
import { openStores } from './open-stores.js';
import { loadTrustPolicy, ruleFor, tenantRuleFor } from '../image/trust.js';
import { loadPrivateKey } from '../image/dsse.js';
import { loadSloConfig } from '../engine/slo.js';
import { parseRetention, SloSamples } from './slo-samples.js';
import { SloRecorder } from './slo-recorder.js';
import { RequestFeed } from './request-feed.js';

/** How often the services' request counts are read into the SLO samples. */
const REQUEST_FEED_MS = 10_000;

export interface ServeOptions {
  listen: string;
  data: string;
  auth: string;
  tlsCert?: string;
  tlsKey?: string;
  workers: number;
  shortWorkers: number;
  shutdownTimeout: number;
  maxAttempts: number;
  retryBaseMs: number;
  maxUploadBytes: number;
  runner: 'engine' | 'fake';
  fakeWorkMs: number;
  sync: 'normal' | 'full';
  logLevel: string;
  store: string;
  replicaId?: string;
  nodeGraceMs: number;
  nodes: 'local' | 'agents';
  joinToken?: string;
  /** the pre-identity name of --join-token, still accepted */
  nodeToken?: string;
  policy: 'spread' | 'binpack';
  /** how the projects clients send are built: in a sandbox with this policy, or (null) as this daemon's user */
  sandbox: BuildSandboxPolicy | null;
  headersTimeoutMs: number;
  bodyIdleTimeoutMs: number;
  bodyMinRate: number;
  artifactTtlMs: number;
  /** --tenants FILE: declared tenants with quotas (absent: one implicit tenant, as before) */
  tenants?: string;
  /** the trust policy (its controlplane scope) deploys are checked against */
  trustPolicy?: string;
  /** signs the images this daemon builds for clients */
  signKey?: string;
  /** --slo-retention: how long SLO samples are kept (e.g. 30d) */
  sloRetention: string;
  /** --slo-config FILE: price table and objectives (docs/slo.md) */
  sloConfig?: string;
  /** --slo-request-feed-ms: how often the services' request counts are read into the SLO figures (default 10 s) */
  sloRequestFeedMs?: number;
}



/** The slow-client bounds of both servers (serve and agent) from their flags. */
export const timeoutsOf = (o: { headersTimeoutMs: number; bodyIdleTimeoutMs: number; bodyMinRate: number }): HttpTimeouts =>
  ({ headersMs: o.headersTimeoutMs, bodyIdleMs: o.bodyIdleTimeoutMs, bodyMinRate: o.bodyMinRate });

export async function serve(o: ServeOptions): Promise<{ close(deadlineMs?: number): Promise<void>; url: string }> {
  const version = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
  const data = resolve(o.data);
  const m = /^(.*):(\d+)$/.exec(o.listen);
  if (!m || !m[1] || !m[2]) throw new UserError('E_INVALID_ARGUMENT', `--listen ${o.listen} is not HOST:PORT`);
  const [host, port] = [m[1].replace(/^\[|\]$/g, ''), Number(m[2])];
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new UserError('E_INVALID_ARGUMENT', '--tls-cert and --tls-key go together');

  const feedMs = o.sloRequestFeedMs ?? REQUEST_FEED_MS;
  // each read is a status call to the node (or every agent): faster than 10 times a second only loads them
  if (!Number.isInteger(feedMs) || feedMs < 100) throw new UserError('E_INVALID_ARGUMENT', `--slo-request-feed-ms ${feedMs} must be a whole number of milliseconds ≥ 100`);
  const retentionMs = parseRetention(o.sloRetention);
  if (retentionMs === null) throw new UserError('E_INVALID_ARGUMENT', `--slo-retention ${o.sloRetention} is not a duration of at least 1h (e.g. 30d, 12h, 90m)`);
  const sloConfig = loadSloConfig(o.sloConfig);
  const auth = new Authenticator(loadAuthConfig(o.auth));
  const tenants = TenantRegistry.open(o.tenants ?? null, (msg, f) => log?.(msg, f ?? {}));
  const owner = o.replicaId ?? `unikctld-${process.pid}-${randomBytes(4).toString('hex')}`;
  const stores = await openStores(o.store, { dataDir: data, replicaId: owner, sync: o.sync, nodeGraceMs: o.nodeGraceMs });
  const journal = stores.operations;
  const nodes = stores.nodes;
  const userKernels = homeLayout(process.env).kernels;
  process.env.UNIKCTL_BUILD_CACHE_ROOT ??= join(data, 'build-cache'); // uploads are fresh dirs: keep toolchain caches warm
  const nodeLayout = homeLayout({ ...process.env, UNIKCTL_HOME: join(data, 'node'), UNIKCTL_KERNEL_DIR: process.env.UNIKCTL_KERNEL_DIR ?? userKernels });
  const artifacts = new ArtifactStore({ dir: join(data, 'artifacts'), maxUploadBytes: o.maxUploadBytes, maxExtractedBytes: o.maxUploadBytes * 8, maxEntries: 200_000 });
  const joinToken = o.joinToken ?? o.nodeToken ?? null;
  if (joinToken !== null && joinToken.length < MIN_PLAIN_TOKEN_LENGTH) {
    throw new UserError('E_INVALID_ARGUMENT', `--join-token must be at least ${MIN_PLAIN_TOKEN_LENGTH} characters`, { hint: 'generate one with: openssl rand -hex 32' });
  }
  const nodeAuth = new NodeAuthenticator(nodes, joinToken);
  const trustPolicy = o.trustPolicy ? loadTrustPolicy(o.trustPolicy) : null;
  const trust = ruleFor(trustPolicy, 'controlplane');
  if (o.signKey) loadPrivateKey(o.signKey); // fails at start, not at the first build
  let node: Client;
  let fleet: Fleet | null = null;
  let hostAdmission: HostAdmission | null = null;
  if (o.nodes === 'agents') {
    const cluster = new ClusterClient({ store: nodes, artifacts, policy: o.policy, staleAfterMs: o.nodeGraceMs, layout: nodeLayout });
    node = cluster;
    fleet = cluster;
  } else {
    const local = new LocalClient(nodeLayout, { remoteBuild: { sandbox: o.sandbox }, trust, ...(o.signKey ? { signKey: resolve(o.signKey) } : {}) });
    node = local;
    hostAdmission = { maxMemoryMiB: hostMemoryMiB(), checkPorts: checkHostPorts, requireSpace: () => local.store.requireSpace() };
  }
  const metrics = new Metrics(journal, node);
  const samples = new SloSamples(stores.samples, retentionMs);
  const prune = setInterval(() => samples.prune(), 3600_000);
  prune.unref();
  // the services' request counts feed the SLO request figures (the replica that runs the queue counts, once); the
  // same reads record the services' replica VMs, which no operation names
  const requestFeed = new RequestFeed(node, samples, samples);
  const slo = new SloRecorder(samples, node, (msg, f) => log?.(msg, f), metrics, (service, size) => requestFeed.sized(service, size));
  const feed = setInterval(() => {
    if (!queue.isRunning || o.runner === 'fake') return;
    void requestFeed.tick().catch((e: unknown) => log?.('reading the services\' request counts failed', { error: String(e) }));
  }, feedMs);
  feed.unref();
  const runner: Runner = o.runner === 'fake' ? new FakeRunner(journal, o.fakeWorkMs) : new EngineRunner(node, journal, fleet);
  let log: ((msg: string, f: Record<string, unknown>) => void) | null = null;
  const queue = new Queue(journal, runner, {
    concurrency: o.workers, shortWorkers: o.shortWorkers, owner, retry: { maxAttempts: o.maxAttempts, baseMs: o.retryBaseMs, capMs: 60_000 },
    events: {
      finished: (op, outcome, ms, error) => {
        metrics.opDuration.observe({ kind: op.kind, outcome, tenant: tenantLabel(op.target) }, ms / 1000);
        if (error) metrics.opFailures.inc({ kind: op.kind, code: error.code, tenant: tenantLabel(op.target) });
        slo.finished(op, outcome, error);
        log?.(`operation ${outcome}`, { trace_id: op.traceId, operation: op.id, kind: op.kind, target: op.target, ms, ...(error ? { error } : {}) });
      },
      retried: (op, delayMs, error) => {
        metrics.opRetries.inc({ kind: op.kind, tenant: tenantLabel(op.target) });
        log?.('operation will be retried', { trace_id: op.traceId, operation: op.id, attempt: op.attempts, delayMs, error });
      },
      log: (msg, f) => log?.(msg, f),
    },
  });
  const cp = new ControlPlane({
    journal, queue, node, fleet, host: hostAdmission, nodeLayout, artifacts, maxAttempts: o.maxAttempts, placements: nodes,
    trust, tenantTrust: (tenant) => tenantRuleFor(trustPolicy, tenant), onTrustWarning: (code, scope) => metrics.trustWarnings.inc({ scope, code }),
  });
  const https = o.tlsCert && o.tlsKey ? { cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey) } : null;
  const app = await buildApp({ cp, auth, artifacts, metrics, nodes, nodeAuth, version, https, logger: { level: o.logLevel }, timeouts: timeoutsOf(o), maxUploadBytes: o.maxUploadBytes, tenants,
    slo: { source: samples, config: sloConfig } });
  log = (msg, f) => app.log.info(f, msg);
  // joined nodes keep working without it; only new nodes cannot join
  if (o.nodes === 'agents' && joinToken === null) app.log.warn('no --join-token: nodes that have not joined yet cannot join');
  // the leader recreates the workloads of nodes that stopped heartbeating
  const monitor = setInterval(() => {
    if (!queue.isRunning || o.nodes !== 'agents') return;
    void nodes.list().then((list) => cp.rescheduleDownNodes(list)).then((n) => {
      if (n > 0) app.log.warn({ moves: n }, 'rescheduling the workloads of down nodes');
    }).catch((e: unknown) => app.log.error({ err: String(e) }, 'down-node check failed'));
  }, Math.max(500, Math.min(5000, Math.floor(o.nodeGraceMs / 3))));
  monitor.unref();
  // artifacts are this replica's files: every replica sweeps its own, checking references in the shared store
  const gc = o.artifactTtlMs > 0 ? setInterval(() => {
    void cp.collectArtifacts(o.artifactTtlMs).then((ids) => {
      if (ids.length > 0) app.log.info({ artifacts: ids }, 'removed unused artifacts');
    }).catch((e: unknown) => app.log.error({ err: String(e) }, 'artifact garbage collection failed'));
  }, Math.max(1000, Math.min(600_000, Math.floor(o.artifactTtlMs / 10)))) : null;
  gc?.unref();
  if (stores.election) {
    // every replica serves the API and writes operations to the shared store; only the leader runs them
    await stores.election.start((leader) => {
      app.log.info({ replica: owner, leader }, leader ? 'became the leader: running the queue' : 'lost leadership: queue stopped');
      if (leader) void queue.start({ recover: true });
      else void queue.stop();
    });
  } else {
    await queue.start();
  }
  await app.listen({ host, port });
  const addr = app.server.address();
  const url = `${https ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${typeof addr === 'object' && addr ? addr.port : port}`;
  app.log.info({ url, data, runner: o.runner, workers: o.workers }, 'unikctld ready');
  return {
    url,
    /**
     * Stops within `deadlineMs` (default: unbounded, for tests that want in-flight operations finished): stop accepting
     * requests, give running operations most of the window, release the rest to the journal for replay, close the stores.
     */
    async close(deadlineMs = Number.POSITIVE_INFINITY) {
      clearInterval(monitor);
      clearInterval(prune);
      clearInterval(feed);
      if (gc) clearInterval(gc);
      tenants.close();
      // no new requests from here; open ones (a logs --follow stream, a status call to a dead agent) do not hold the
      // shutdown: they are cut when the operations' window ends
      const closing = app.close();
      const { released } = await queue.stop(Number.isFinite(deadlineMs) ? deadlineMs * 0.8 : deadlineMs);
      if (released.length > 0) app.log.warn({ operations: released }, 'shutdown deadline: unfinished operations released; they are replayed on the next start');
      app.server.closeAllConnections();
      await closing;
      await stores.election?.stop();
      await stores.close();
      node.close();
    },
  };
}

