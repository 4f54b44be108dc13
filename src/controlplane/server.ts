import { Command, InvalidArgumentError } from 'commander';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Client } from '../engine/client.js';
import { LocalClient } from '../engine/local.js';
import { UserError } from '../errors.js';
import { homeLayout, projectRoot } from '../paths.js';
import { buildApp } from './app.js';
import { ArtifactStore } from './artifacts.js';
import { Authenticator, loadAuthConfig } from './auth.js';
import { Metrics } from './metrics.js';
import { Queue, type Runner } from './queue.js';
import { EngineRunner, FakeRunner } from './runner.js';
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
}

const int = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  return n;
};

export async function serve(o: ServeOptions): Promise<{ close(): Promise<void>; url: string }> {
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
  const node: Client = new LocalClient(nodeLayout);
  const artifacts = new ArtifactStore({ dir: join(data, 'artifacts'), maxUploadBytes: o.maxUploadBytes, maxExtractedBytes: o.maxUploadBytes * 8, maxEntries: 200_000 });
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
  const app = await buildApp({ cp, auth, artifacts, metrics, nodes, version, https, logger: { level: o.logLevel } });
  log = (msg, f) => app.log.info(f, msg);
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
  program
    .command('serve')
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
    .option('--node-grace-ms <ms>', 'a node that has not sent a heartbeat for this long is down', int('--node-grace-ms'), 30_000)
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
      const s = await serve(o);
      const stop = (): void => { void s.close().then(() => process.exit(0)); };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
  return program;
}
