import { Command, InvalidArgumentError, Option } from 'commander';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Client } from '../engine/client.js';
import { LocalClient } from '../engine/local.js';
import { UserError } from '../errors.js';
import { DEFAULT_BUILD_SANDBOX, sandboxUnavailable } from '../image/sandbox.js';
import type { BuildSandboxPolicy } from '../store/types.js';
import { homeLayout, projectRoot } from '../paths.js';
import { defaultCapacity, runAgent } from '../agent/agent.js';
import { buildApp } from './app.js';
import { ArtifactStore } from '../store/artifacts.js';
import { Authenticator, MIN_PLAIN_TOKEN_LENGTH, loadAuthConfig } from './auth.js';
import { NodeAuthenticator } from './node-identity.js';
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
}

/** The build-sandbox flags of `serve` and `agent`. */
export interface SandboxFlags {
  buildSandbox: string;
  buildMemory: number;
  buildCpus: number;
  buildTimeout: number;
  buildDisk: number;
  buildNetwork: string;
}

function addSandboxFlags(cmd: Command): Command {
  const d = DEFAULT_BUILD_SANDBOX;
  return cmd
    .option('--build-sandbox <on|off>', 'build the projects clients send as an unprivileged user in a bubblewrap sandbox with the limits below (off: as this daemon\'s user — only for trusted clients)', 'on')
    .option('--build-memory <mib>', 'memory limit of one build (MiB, no swap)', int('--build-memory'), d.memoryMiB)
    .option('--build-cpus <n>', 'CPU limit of one build (cores)', int('--build-cpus'), d.cpus)
    .option('--build-timeout <seconds>', 'wall-clock limit of one build', int('--build-timeout'), d.timeoutSeconds)
    .option('--build-disk <mib>', 'disk limit of one build (its project copy, work directory and cache growth)', int('--build-disk'), d.diskMiB)
    .option('--build-network <isolated|none>', 'isolated: the outside network (package registries) but not this host\'s loopback; none: no network', d.network);
}

/** The sandbox policy of the flags (null with --build-sandbox off); fails fast when this host cannot sandbox. */
export function sandboxPolicy(o: SandboxFlags, hide: Array<string | undefined>): BuildSandboxPolicy | null {
  if (o.buildSandbox === 'off') return null;
  if (o.buildSandbox !== 'on') throw new UserError('E_INVALID_ARGUMENT', '--build-sandbox must be on or off');
  if (o.buildNetwork !== 'isolated' && o.buildNetwork !== 'none') throw new UserError('E_INVALID_ARGUMENT', '--build-network must be isolated or none');
  for (const [flag, v] of [['--build-memory', o.buildMemory], ['--build-cpus', o.buildCpus], ['--build-timeout', o.buildTimeout], ['--build-disk', o.buildDisk]] as const) {
    if (v < 1) throw new UserError('E_INVALID_ARGUMENT', `${flag} must be at least 1`);
  }
  const why = sandboxUnavailable({ network: o.buildNetwork });
  if (why) {
    throw new UserError('E_SANDBOX_UNAVAILABLE', `this host cannot sandbox builds: ${why}`, {
      hint: 'run make setup (bubblewrap, slirp4netns, the unikctl-build user) and start the daemon as root, or pass --build-sandbox off if every client is trusted',
    });
  }
  return {
    memoryMiB: o.buildMemory, cpus: o.buildCpus, pids: DEFAULT_BUILD_SANDBOX.pids, timeoutSeconds: o.buildTimeout, diskMiB: o.buildDisk,
    network: o.buildNetwork, hide: hide.filter((h): h is string => Boolean(h)).map((h) => resolve(h)),
  };
}

const int = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  return n;
};

export async function serve(o: ServeOptions & SandboxFlags): Promise<{ close(): Promise<void>; url: string }> {
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
  const joinToken = o.joinToken ?? o.nodeToken ?? null;
  if (joinToken !== null && joinToken.length < MIN_PLAIN_TOKEN_LENGTH) {
    throw new UserError('E_INVALID_ARGUMENT', `--join-token must be at least ${MIN_PLAIN_TOKEN_LENGTH} characters`, { hint: 'generate one with: openssl rand -hex 32' });
  }
  const nodeAuth = new NodeAuthenticator(nodes, joinToken);
  let node: Client;
  if (o.nodes === 'agents') {
    node = new ClusterClient({ store: nodes, artifacts, policy: o.policy, staleAfterMs: o.nodeGraceMs, layout: nodeLayout });
  } else {
    node = new LocalClient(nodeLayout, { remoteBuild: { sandbox: sandboxPolicy(o, [data, dirname(resolve(o.auth)), o.tlsCert, o.tlsKey]) } });
  }
  const metrics = new Metrics(journal, node);
  const runner: Runner = o.runner === 'fake' ? new FakeRunner(journal, o.fakeWorkMs) : new EngineRunner(node);
  let log: ((msg: string, f: Record<string, unknown>) => void) | null = null;
  const queue = new Queue(journal, runner, {
    concurrency: o.workers, owner, retry: { maxAttempts: o.maxAttempts, baseMs: o.retryBaseMs, capMs: 60_000 },
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
  const cp = new ControlPlane({ journal, queue, node, nodeLayout, artifacts, maxAttempts: o.maxAttempts });
  const https = o.tlsCert && o.tlsKey ? { cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey) } : null;
  const app = await buildApp({ cp, auth, artifacts, metrics, nodes, nodeAuth, version, https, logger: { level: o.logLevel } });
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
    async close() {
      clearInterval(monitor);
      await app.close();
      await queue.stop();
      await stores.election?.stop();
      await stores.close();
      node.close();
    },
  };
}

export function createServerProgram(): Command {
  const program = new Command('unikctld').description('unikctl control plane and node agent').helpCommand(false).showSuggestionAfterError(true);
  addSandboxFlags(program
    .command('serve'))
    .description('run the control plane HTTP API with its durable operation queue; VMs run on this host')
    .option('--listen <host:port>', 'address to listen on', process.env.UNIKCTLD_LISTEN ?? '127.0.0.1:7070')
    .option('--data <dir>', 'state directory (journal, artifacts, the local node)', process.env.UNIKCTLD_DATA ?? join(homeLayout().home, 'controlplane'))
    .requiredOption('--auth <file>', 'token/JWT configuration (YAML or JSON; see docs/controlplane.md)', process.env.UNIKCTLD_AUTH_FILE)
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)', process.env.UNIKCTLD_TLS_CERT)
    .option('--tls-key <file>', 'private key for --tls-cert (PEM)', process.env.UNIKCTLD_TLS_KEY)
    .option('--workers <n>', 'concurrent operation workers', int('--workers'), 2)
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
    .option('--join-token <token>', 'with --nodes agents: the secret a new agent presents once to join (then it uses its own credential)', process.env.UNIKCTLD_JOIN_TOKEN ?? process.env.UNIKCTLD_NODE_TOKEN)
    .addOption(new Option('--node-token <token>', 'former name of --join-token').hideHelp())
    .option('--policy <spread|binpack>', 'placement policy in agents mode: spread workloads (default) or fill nodes first', 'spread')
    .addHelpText('after', `
Environment:
  UNIKCTLD_LISTEN, UNIKCTLD_DATA, UNIKCTLD_AUTH_FILE, UNIKCTLD_TLS_CERT, UNIKCTLD_TLS_KEY, UNIKCTLD_LOG_LEVEL, UNIKCTLD_STORE
                  defaults for the flags above
  UNIKCTL_KERNEL_DIR   kernels for the local node (default: the user's unikctl kernel cache)
  UNIKCTL_ACCEL        auto | kvm | tcg for the VMs this host runs

Example:
  unikctld serve --listen 127.0.0.1:7070 --data /var/lib/unikctld --auth /etc/unikctld/auth.yaml`)
    .action(async (o: ServeOptions & SandboxFlags) => {
      if (o.runner !== 'engine' && o.runner !== 'fake') throw new UserError('E_INVALID_ARGUMENT', '--runner must be engine or fake');
      if (o.sync !== 'normal' && o.sync !== 'full') throw new UserError('E_INVALID_ARGUMENT', '--sync must be normal or full');
      if (o.nodes !== 'local' && o.nodes !== 'agents') throw new UserError('E_INVALID_ARGUMENT', '--nodes must be local or agents');
      if (o.policy !== 'spread' && o.policy !== 'binpack') throw new UserError('E_INVALID_ARGUMENT', '--policy must be spread or binpack');
      const s = await serve(o);
      const stop = (): void => { void s.close().then(() => process.exit(0)); };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
  addSandboxFlags(program
    .command('agent'))
    .description('run a node agent: registers with the control plane, heartbeats, and runs the VMs placed on this host')
    .requiredOption('--control-plane <url>', 'control plane URL', process.env.UNIKCTL_CONTROL_PLANE_URL)
    .requiredOption('--name <name>', 'node name (unique in the cluster)', process.env.UNIKCTLD_NODE_NAME)
    .option('--join-token <token>', 'the control plane\'s join token: needed on the first start only (the node\'s own credential is then kept in --data)', process.env.UNIKCTLD_JOIN_TOKEN ?? process.env.UNIKCTLD_NODE_TOKEN)
    .addOption(new Option('--token <token>', 'former name of --join-token').hideHelp())
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

Identity: on its first start the agent joins with --join-token and receives its own credential, kept in
DATA/node-identity.json (mode 0600); later starts use that file and need no join token. A name another node
has joined with is refused (E_NODE_IDENTITY). After an administrator removes the node, delete the file and
start the agent with --join-token again.

Example:
  unikctld agent --control-plane https://cp:7070 --name n1 --join-token $JOIN_TOKEN --listen 10.0.0.5:7171 --labels zone=a`)
    .action(async (o: SandboxFlags & { controlPlane: string; name: string; joinToken?: string; token?: string; listen: string; advertise?: string; publishAddress?: string; labels: string; data: string; heartbeatMs: number; cpus?: number; memory?: number; tlsCert?: string; tlsKey?: string; logLevel: string }) => {
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
        controlPlane: o.controlPlane, name: o.name, joinToken: o.joinToken ?? o.token ?? null, listen: o.listen, advertise: o.advertise ?? `${https ? 'https' : 'http'}://${o.listen}`,
        publishAddress: o.publishAddress ?? (host === '0.0.0.0' ? '0.0.0.0' : host), labels, data: resolve(o.data), heartbeatMs: o.heartbeatMs,
        capacity: { cpus: o.cpus ?? def.cpus, memoryMiB: o.memory ?? def.memoryMiB }, https, logLevel: o.logLevel, version,
        buildSandbox: sandboxPolicy(o, [o.data, o.tlsCert, o.tlsKey]),
      });
      const stop = (): void => { void agent.close().then(() => process.exit(0)); };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
  return program;
}
