import { Command, InvalidArgumentError } from 'commander';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Client } from '../engine/client.js';
import { LocalClient } from '../engine/local.js';
import { UserError } from '../errors.js';
import { homeLayout, projectRoot } from '../paths.js';
import { defaultCapacity, runAgent } from '../agent/agent.js';
import { buildApp } from './app.js';
import { ArtifactStore } from './artifacts.js';
import { Authenticator, loadAuthConfig } from './auth.js';
import { Metrics } from './metrics.js';
import { Queue, type Runner } from './queue.js';
import { EngineRunner, FakeRunner } from './runner.js';
import { ClusterClient } from './cluster.js';
import { ControlPlane } from './service.js';
import { openStores } from './stores.js';

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
  nodeToken?: string;
  policy: 'spread' | 'binpack';
}

const int = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  return n;
};

export async function serve(o: ServeOptions): Promise<{ close(deadlineMs?: number): Promise<void>; url: string }> {
  const version = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
  const data = resolve(o.data);
  const m = /^(.*):(\d+)$/.exec(o.listen);
  if (!m || !m[1] || !m[2]) throw new UserError('E_INVALID_ARGUMENT', `--listen ${o.listen} is not HOST:PORT`);
  const [host, port] = [m[1].replace(/^\[|\]$/g, ''), Number(m[2])];
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new UserError('E_INVALID_ARGUMENT', '--tls-cert and --tls-key go together');

  const auth = new Authenticator(loadAuthConfig(o.auth));
  const owner = o.replicaId ?? `unikctld-${process.pid}-${randomBytes(4).toString('hex')}`;
  const stores = await openStores(o.store, { dataDir: data, replicaId: owner, sync: o.sync, nodeGraceMs: o.nodeGraceMs });
  const journal = stores.jobs;
  const nodes = stores.nodes;
  const userKernels = homeLayout(process.env).kernels;
  process.env.UNIKCTL_BUILD_CACHE_ROOT ??= join(data, 'build-cache'); // uploads are fresh dirs: keep toolchain caches warm
  const nodeLayout = homeLayout({ ...process.env, UNIKCTL_HOME: join(data, 'node'), UNIKCTL_KERNEL_DIR: process.env.UNIKCTL_KERNEL_DIR ?? userKernels });
  const artifacts = new ArtifactStore({ dir: join(data, 'artifacts'), maxUploadBytes: o.maxUploadBytes, maxExtractedBytes: o.maxUploadBytes * 8, maxEntries: 200_000 });
  let node: Client;
  let cluster: ClusterClient | null = null;
  if (o.nodes === 'agents') {
    if (!o.nodeToken) throw new UserError('E_INVALID_ARGUMENT', '--nodes agents needs --node-token (or UNIKCTLD_NODE_TOKEN): the token agents accept from the control plane');
    node = cluster = new ClusterClient({ store: nodes, artifacts, nodeToken: o.nodeToken, policy: o.policy, staleAfterMs: o.nodeGraceMs, layout: nodeLayout });
  } else {
    node = new LocalClient(nodeLayout);
  }
  const metrics = new Metrics(journal, node);
  const runner: Runner = o.runner === 'fake' ? new FakeRunner(journal, o.fakeWorkMs) : new EngineRunner(node, journal, cluster);
  let log: ((msg: string, f: Record<string, unknown>) => void) | null = null;
  const queue = new Queue(journal, runner, {
    concurrency: o.workers, shortWorkers: o.shortWorkers, owner, retry: { maxAttempts: o.maxAttempts, baseMs: o.retryBaseMs, capMs: 60_000 },
    events: {
      finished: (job, outcome, ms, error) => {
        metrics.opDuration.observe({ kind: job.kind, outcome }, ms / 1000);
        if (error) metrics.opFailures.inc({ kind: job.kind, code: error.code });
        log?.(`operation ${outcome}`, { trace_id: job.traceId, operation: job.id, kind: job.kind, target: job.target, ms, ...(error ? { error } : {}) });
      },
      retried: (job, delayMs, error) => {
        metrics.opRetries.inc({ kind: job.kind });
        log?.('operation will be retried', { trace_id: job.traceId, operation: job.id, attempt: job.attempts, delayMs, error });
      },
      log: (msg, f) => log?.(msg, f),
    },
  });
  const cp = new ControlPlane({ journal, queue, node, cluster, nodeLayout, artifacts, maxAttempts: o.maxAttempts });
  const https = o.tlsCert && o.tlsKey ? { cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey) } : null;
  const app = await buildApp({ cp, auth, artifacts, metrics, nodes, version, https, logger: { level: o.logLevel } });
  log = (msg, f) => app.log.info(f, msg);
  // the leader recreates the workloads of nodes that stopped heartbeating
  const monitor = setInterval(() => {
    if (!queue.isRunning || o.nodes !== 'agents') return;
    void nodes.list().then((list) => cp.rescheduleDownNodes(list)).then((n) => {
      if (n > 0) app.log.warn({ moves: n }, 'rescheduling the workloads of down nodes');
    }).catch((e: unknown) => app.log.error({ err: String(e) }, 'down-node check failed'));
  }, Math.max(500, Math.min(5000, Math.floor(o.nodeGraceMs / 3))));
  monitor.unref();
  if (stores.election) {
    // every replica serves the API and writes jobs to the shared store; only the leader runs them
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
     * Stops within `deadlineMs` (default: unbounded, for tests that want in-flight jobs finished): stop accepting
     * requests, give running jobs most of the window, release the rest to the journal for replay, close the stores.
     */
    async close(deadlineMs = Number.POSITIVE_INFINITY) {
      clearInterval(monitor);
      // no new requests from here; open ones (a logs --follow stream, a status call to a dead agent) do not hold the
      // shutdown: they are cut when the jobs' window ends
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

/**
 * SIGTERM/SIGINT handling shared by the server and the agent: a bounded graceful close, then exit. Past the
 * deadline (a store that does not answer, say) the process exits anyway; a second signal exits at once.
 */
export function exitOnSignal(close: (deadlineMs: number) => Promise<void>, deadlineMs: number, log: (msg: string) => void): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    log(`${signal}: shutting down (deadline ${deadlineMs} ms)`);
    setTimeout(() => {
      log('shutdown deadline passed: exiting');
      process.exit(1);
    }, deadlineMs + 2000).unref(); // the close itself is bounded by the deadline; the margin is for its last steps
    close(deadlineMs).then(() => process.exit(0), (e: unknown) => {
      log(`shutdown failed: ${String(e)}`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

export function createServerProgram(): Command {
  const program = new Command('unikctld').description('unikctl control plane and node agent').helpCommand(false).showSuggestionAfterError(true);
  program
    .command('serve')
    .description('run the control plane HTTP API with its durable operation queue; VMs run on this host')
    .option('--listen <host:port>', 'address to listen on', process.env.UNIKCTLD_LISTEN ?? '127.0.0.1:7070')
    .option('--data <dir>', 'state directory (journal, artifacts, the local node)', process.env.UNIKCTLD_DATA ?? join(homeLayout().home, 'controlplane'))
    .requiredOption('--auth <file>', 'token/JWT configuration (YAML or JSON; see docs/controlplane.md)', process.env.UNIKCTLD_AUTH_FILE)
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)', process.env.UNIKCTLD_TLS_CERT)
    .option('--tls-key <file>', 'private key for --tls-cert (PEM)', process.env.UNIKCTLD_TLS_KEY)
    .option('--workers <n>', 'concurrent operation workers for any operation (builds and boots hold one for minutes)', int('--workers'), 2)
    .option('--short-workers <n>', 'extra workers that run only destroys, so a destroy never waits behind builds', int('--short-workers'), 1)
    .option('--shutdown-timeout <seconds>', 'on SIGTERM: how long running operations may finish before they are released for replay and the process exits', int('--shutdown-timeout'), 10)
    .option('--max-attempts <n>', 'attempts per operation before it fails (retries use exponential backoff with jitter)', int('--max-attempts'), 5)
    .option('--retry-base-ms <ms>', 'first retry delay (doubles per attempt, capped at 60 s)', int('--retry-base-ms'), 500)
    .option('--max-upload-bytes <n>', 'largest accepted artifact upload', int('--max-upload-bytes'), 512 * 1024 * 1024)
    .option('--runner <engine|fake>', 'engine runs real VMs; fake only records jobs (tests and benchmarks)', 'engine')
    .option('--fake-work-ms <ms>', 'simulated work per job with --runner fake', int('--fake-work-ms'), 5)
    .option('--sync <normal|full>', 'SQLite durability: normal survives process crashes, full also power loss (slower)', 'normal')
    .option('--log-level <level>', 'pino log level', process.env.UNIKCTLD_LOG_LEVEL ?? 'info')
    .option('--store <spec>', 'sqlite (one replica) or etcd://host:port[,host:port...] (several replicas, leader election)', process.env.UNIKCTLD_STORE ?? 'sqlite')
    .option('--replica-id <id>', 'this replica\'s id in leader election (default: random per process)')
    .option('--node-grace-ms <ms>', 'a node that has not sent a heartbeat for this long is down (its workloads are rescheduled)', int('--node-grace-ms'), 30_000)
    .option('--nodes <local|agents>', 'run VMs on this host (local) or place them on registered node agents (agents)', process.env.UNIKCTLD_NODES ?? 'local')
    .option('--node-token <token>', 'with --nodes agents: the token presented to agents (they are started with the same --token)', process.env.UNIKCTLD_NODE_TOKEN)
    .option('--policy <spread|binpack>', 'placement policy in agents mode: spread workloads (default) or fill nodes first', 'spread')
    .addHelpText('after', `
Environment:
  UNIKCTLD_LISTEN, UNIKCTLD_DATA, UNIKCTLD_AUTH_FILE, UNIKCTLD_TLS_CERT, UNIKCTLD_TLS_KEY, UNIKCTLD_LOG_LEVEL, UNIKCTLD_STORE
                  defaults for the flags above
  UNIKCTL_KERNEL_DIR   kernels for the local node (default: the user's unikctl kernel cache)
  UNIKCTL_ACCEL        auto | kvm | tcg for the VMs this host runs

Example:
  unikctld serve --listen 127.0.0.1:7070 --data /var/lib/unikctld --auth /etc/unikctld/auth.yaml`)
    .action(async (o: ServeOptions) => {
      if (o.runner !== 'engine' && o.runner !== 'fake') throw new UserError('E_INVALID_ARGUMENT', '--runner must be engine or fake');
      if (o.sync !== 'normal' && o.sync !== 'full') throw new UserError('E_INVALID_ARGUMENT', '--sync must be normal or full');
      if (o.nodes !== 'local' && o.nodes !== 'agents') throw new UserError('E_INVALID_ARGUMENT', '--nodes must be local or agents');
      if (o.policy !== 'spread' && o.policy !== 'binpack') throw new UserError('E_INVALID_ARGUMENT', '--policy must be spread or binpack');
      const s = await serve(o);
      exitOnSignal((ms) => s.close(ms), o.shutdownTimeout * 1000, (m) => process.stderr.write(`unikctld: ${m}\n`));
    });
  program
    .command('agent')
    .description('run a node agent: registers with the control plane, heartbeats, and runs the VMs placed on this host')
    .requiredOption('--control-plane <url>', 'control plane URL', process.env.UNIKCTL_CONTROL_PLANE_URL)
    .requiredOption('--name <name>', 'node name (unique in the cluster)', process.env.UNIKCTLD_NODE_NAME)
    .requiredOption('--token <token>', 'node token: needs the nodes scope on the control plane, which presents it back to this agent', process.env.UNIKCTLD_NODE_TOKEN)
    .option('--listen <host:port>', 'agent API address', '127.0.0.1:7171')
    .option('--advertise <url>', 'URL the control plane uses to reach this agent (default: from --listen)')
    .option('--publish-address <ip>', 'host address published VM ports bind to (default: the --listen host)')
    .option('--labels <k=v,...>', 'node labels for placement constraints (deploy --label)', '')
    .option('--data <dir>', 'state directory of this node', join(homeLayout().home, 'agent'))
    .option('--heartbeat-ms <ms>', 'heartbeat interval', int('--heartbeat-ms'), 10_000)
    .option('--cpus <n>', 'CPUs offered to VMs (default: all)', int('--cpus'))
    .option('--memory <mib>', 'memory offered to VMs in MiB (default: all)', int('--memory'))
    .option('--tls-cert <file>', 'serve the agent API over HTTPS with this certificate')
    .option('--tls-key <file>', 'private key for --tls-cert')
    .option('--log-level <level>', 'pino log level', 'info')
    .addHelpText('after', `
Defaults follow Nomad/Kubernetes practice: heartbeat every 10 s; the control plane marks a node down after
--node-grace-ms (30 s) without one and reschedules its workloads.

Example:
  unikctld agent --control-plane https://cp:7070 --name n1 --token $NODE_TOKEN --listen 10.0.0.5:7171 --labels zone=a`)
    .action(async (o: { controlPlane: string; name: string; token: string; listen: string; advertise?: string; publishAddress?: string; labels: string; data: string; heartbeatMs: number; cpus?: number; memory?: number; tlsCert?: string; tlsKey?: string; logLevel: string }) => {
      const host = o.listen.replace(/:\d+$/, '');
      const https = o.tlsCert && o.tlsKey ? { cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey) } : null;
      const labels = Object.fromEntries(o.labels.split(',').filter(Boolean).map((kv) => {
        const [k, v] = kv.split('=', 2);
        if (!k || v === undefined) throw new UserError('E_INVALID_ARGUMENT', `--labels ${kv} is not k=v`);
        return [k, v];
      }));
      const def = defaultCapacity();
      const version = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
      const agent = await runAgent({
        controlPlane: o.controlPlane, name: o.name, token: o.token, listen: o.listen, advertise: o.advertise ?? `${https ? 'https' : 'http'}://${o.listen}`,
        publishAddress: o.publishAddress ?? (host === '0.0.0.0' ? '0.0.0.0' : host), labels, data: resolve(o.data), heartbeatMs: o.heartbeatMs,
        capacity: { cpus: o.cpus ?? def.cpus, memoryMiB: o.memory ?? def.memoryMiB }, https, logLevel: o.logLevel, version,
      });
      // the agent's VMs run in their own supervisor processes: closing only stops the API and the heartbeats
      exitOnSignal(() => agent.close(), 10_000, (m) => process.stderr.write(`unikctld agent: ${m}\n`));
    });
  return program;
}
