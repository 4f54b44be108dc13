/**
 * The `unikctld` command tree (serve, agent), declared beside the unikctl commands: it parses flags and hands typed
 * options to the control plane (src/controlplane/server.ts) and the node agent (src/agent/agent.ts).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { defaultCapacity, runAgent } from '../agent/agent.js';
import { DEFAULT_TIMEOUTS } from '../controlplane/http.js';
import { serve, timeoutsOf, type ServeOptions } from '../controlplane/server.js';
import { UserError } from '../errors.js';
import { DEFAULT_BUILD_SANDBOX, sandboxUnavailable } from '../image/sandbox.js';
import { homeLayout, projectRoot, setupCommand } from '../paths.js';
import type { BuildSandboxPolicy } from '../store/types.js';
import { parseLabels } from '../util/labels.js';
import { writeKeyPair } from '../image/dsse.js';
import { loadTrustPolicy, ruleFor } from '../image/trust.js';

const int = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  return n;
};


/**
 * SIGTERM/SIGINT handling shared by the server and the agent: a bounded graceful close, then exit. Past the
 * deadline (a store that does not answer, say) the process exits anyway; a second signal exits at once.
 */
function exitOnSignal(close: (deadlineMs: number) => Promise<void>, deadlineMs: number, log: (msg: string) => void): void {
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

const positive = (name: string) => (v: string): number => {
  const n = int(name)(v);
  if (n === 0) throw new InvalidArgumentError(`${name} must be positive`);
  return n;
};

/** The slow-client bounds of both servers (serve and agent): same flags, same defaults. */
function withTimeoutOptions(cmd: Command): Command {
  return cmd
    .option('--headers-timeout-ms <ms>', 'a client must send its request headers within this time', positive('--headers-timeout-ms'), DEFAULT_TIMEOUTS.headersMs)
    .option('--body-idle-timeout-ms <ms>', 'longest pause allowed between request body bytes (also the body\'s initial time budget)', positive('--body-idle-timeout-ms'), DEFAULT_TIMEOUTS.bodyIdleMs)
    .option('--body-min-rate <bytes/s>', 'lowest average request body rate: each such many bytes extend the body deadline by 1 s', positive('--body-min-rate'), DEFAULT_TIMEOUTS.bodyMinRate);
}

/** The supply-chain flags of `serve` and `agent` (docs/supply-chain.md). */
function addTrustFlags(cmd: Command): Command {
  return cmd
    .option('--trust-policy <file>', 'trust policy (YAML/JSON): deploys are checked against its controlplane scope (default: off)', process.env.UNIKCTLD_TRUST_POLICY)
    .option('--sign-key <pem>', 'Ed25519 private key that signs the images this daemon builds for clients', process.env.UNIKCTL_SIGNING_KEY);
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
      hint: `run ${setupCommand()} (bubblewrap, slirp4netns, the unikctl-build user) and start the daemon as root, or pass --build-sandbox off if every client is trusted`,
    });
  }
  return {
    memoryMiB: o.buildMemory, cpus: o.buildCpus, pids: DEFAULT_BUILD_SANDBOX.pids, timeoutSeconds: o.buildTimeout, diskMiB: o.buildDisk,
    network: o.buildNetwork, hide: hide.filter((h): h is string => Boolean(h)).map((h) => resolve(h)),
  };
}

export function createServerProgram(): Command {
  const program = new Command('unikctld').description('unikctl control plane and node agent').helpCommand(false).showSuggestionAfterError(true);
  addTrustFlags(withTimeoutOptions(addSandboxFlags(program
    .command('serve'))))
    .description('run the control plane HTTP API with its durable operation queue; VMs run on this host')
    .option('--listen <host:port>', 'address to listen on', process.env.UNIKCTLD_LISTEN ?? '127.0.0.1:7070')
    .option('--data <dir>', 'state directory (journal, artifacts, the local node)', process.env.UNIKCTLD_DATA ?? join(homeLayout().home, 'controlplane'))
    .requiredOption('--auth <file>', 'token/JWT configuration (YAML or JSON; see docs/controlplane.md)', process.env.UNIKCTLD_AUTH_FILE)
    .option('--tenants <file>', 'declared tenants with quotas, per-VM limits, port ranges and node selectors (YAML or JSON; reloaded on SIGHUP and on change; see docs/tenants.md)', process.env.UNIKCTLD_TENANTS_FILE)
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)', process.env.UNIKCTLD_TLS_CERT)
    .option('--tls-key <file>', 'private key for --tls-cert (PEM)', process.env.UNIKCTLD_TLS_KEY)
    .option('--workers <n>', 'concurrent operation workers for any operation (builds and boots hold one for minutes)', int('--workers'), 2)
    .option('--short-workers <n>', 'extra workers that run only destroys, so a destroy never waits behind builds', int('--short-workers'), 1)
    .option('--shutdown-timeout <seconds>', 'on SIGTERM: how long running operations may finish before they are released for replay and the process exits', int('--shutdown-timeout'), 10)
    .option('--max-attempts <n>', 'attempts per operation before it fails (retries use exponential backoff with jitter)', int('--max-attempts'), 5)
    .option('--retry-base-ms <ms>', 'first retry delay (doubles per attempt, capped at 60 s)', int('--retry-base-ms'), 500)
    .option('--max-upload-bytes <n>', 'largest accepted artifact upload', int('--max-upload-bytes'), 512 * 1024 * 1024)
    .option('--runner <engine|fake>', 'engine runs real VMs; fake only records operations (tests and benchmarks)', 'engine')
    .option('--fake-work-ms <ms>', 'simulated work per operation with --runner fake', int('--fake-work-ms'), 5)
    .option('--sync <normal|full>', 'SQLite durability: normal survives process crashes, full also power loss (slower)', 'normal')
    .option('--log-level <level>', 'pino log level', process.env.UNIKCTLD_LOG_LEVEL ?? 'info')
    .option('--store <spec>', 'sqlite (one replica) or etcd://host:port[,host:port...] (several replicas, leader election)', process.env.UNIKCTLD_STORE ?? 'sqlite')
    .option('--replica-id <id>', 'this replica\'s id in leader election (default: random per process)')
    .option('--node-grace-ms <ms>', 'a node that has not sent a heartbeat for this long is down (its workloads are rescheduled)', int('--node-grace-ms'), 30_000)
    .option('--nodes <local|agents>', 'run VMs on this host (local) or place them on registered node agents (agents)', process.env.UNIKCTLD_NODES ?? 'local')
    .option('--join-token <token>', 'with --nodes agents: the secret a new agent presents once to join (then it uses its own credential)', process.env.UNIKCTLD_JOIN_TOKEN ?? process.env.UNIKCTLD_NODE_TOKEN)
    .addOption(new Option('--node-token <token>', 'former name of --join-token').hideHelp())
    .option('--policy <spread|binpack>', 'placement policy in agents mode: spread workloads (default) or fill nodes first', 'spread')
    .option('--artifact-ttl-ms <ms>', 'uploaded artifacts unused for this long and needed by no pending deploy or placement are removed (0: never)', int('--artifact-ttl-ms'), 24 * 3600_000)
    .option('--slo-retention <duration>', 'how long boot, deploy and VM samples of the SLO figures are kept (e.g. 30d, 12h; at least 1h)', process.env.UNIKCTLD_SLO_RETENTION ?? '30d')
    .option('--slo-request-feed-ms <ms>', 'how often the services\' request counts are read into the SLO request figures (default 10000; tests shorten it)', int('--slo-request-feed-ms'), 10_000)
    .option('--slo-config <file>', 'price table (per vCPU-second, GiB-second, request) and objectives (boot p95, deploy success) of /v1/slo and the /ui/ page (YAML or JSON; see docs/slo.md)', process.env.UNIKCTLD_SLO_CONFIG)
    .addHelpText('after', `
Environment:
  UNIKCTLD_LISTEN, UNIKCTLD_DATA, UNIKCTLD_AUTH_FILE, UNIKCTLD_TLS_CERT, UNIKCTLD_TLS_KEY, UNIKCTLD_LOG_LEVEL, UNIKCTLD_STORE
                  defaults for the flags above
  UNIKCTL_KERNEL_DIR   kernels for the local node (default: the user's unikctl kernel cache)
  UNIKCTL_ACCEL        auto | kvm | tcg for the VMs this host runs

Example:
  unikctld serve --listen 127.0.0.1:7070 --data /var/lib/unikctld --auth /etc/unikctld/auth.yaml`)
    .action(async (o: Omit<ServeOptions, 'sandbox'> & SandboxFlags) => {
      if (o.runner !== 'engine' && o.runner !== 'fake') throw new UserError('E_INVALID_ARGUMENT', '--runner must be engine or fake');
      if (o.sync !== 'normal' && o.sync !== 'full') throw new UserError('E_INVALID_ARGUMENT', '--sync must be normal or full');
      if (o.nodes !== 'local' && o.nodes !== 'agents') throw new UserError('E_INVALID_ARGUMENT', '--nodes must be local or agents');
      if (o.policy !== 'spread' && o.policy !== 'binpack') throw new UserError('E_INVALID_ARGUMENT', '--policy must be spread or binpack');
      const s = await serve({ ...o, sandbox: sandboxPolicy(o, [o.data, dirname(resolve(o.auth)), o.tlsCert, o.tlsKey, o.signKey, o.trustPolicy && dirname(resolve(o.trustPolicy))]) });
      exitOnSignal((ms) => s.close(ms), o.shutdownTimeout * 1000, (m) => process.stderr.write(`unikctld: ${m}\n`));
    });
  addTrustFlags(withTimeoutOptions(addSandboxFlags(program
    .command('agent'))))
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
has joined with is refused (E_NODE_NAME_TAKEN). After an administrator removes the node, delete the file and
start the agent with --join-token again.

Example:
  unikctld agent --control-plane https://cp:7070 --name n1 --join-token $JOIN_TOKEN --listen 10.0.0.5:7171 --labels zone=a`)
    .action(async (o: SandboxFlags & { trustPolicy?: string; signKey?: string; controlPlane: string; name: string; joinToken?: string; token?: string; listen: string; advertise?: string; publishAddress?: string; labels: string; data: string; heartbeatMs: number; cpus?: number; memory?: number; tlsCert?: string; tlsKey?: string; logLevel: string; headersTimeoutMs: number; bodyIdleTimeoutMs: number; bodyMinRate: number }) => {
      const host = o.listen.replace(/:\d+$/, '');
      const https = o.tlsCert && o.tlsKey ? { cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey) } : null;
      const labels = parseLabels(o.labels.split(',').filter(Boolean), '--labels');
      const def = defaultCapacity();
      const version = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
      const agent = await runAgent({
        controlPlane: o.controlPlane, name: o.name, joinToken: o.joinToken ?? o.token ?? null, listen: o.listen, advertise: o.advertise ?? `${https ? 'https' : 'http'}://${o.listen}`,
        publishAddress: o.publishAddress ?? (host === '0.0.0.0' ? '0.0.0.0' : host), labels, data: resolve(o.data), heartbeatMs: o.heartbeatMs,
        capacity: { cpus: o.cpus ?? def.cpus, memoryMiB: o.memory ?? def.memoryMiB }, https, logLevel: o.logLevel, version,
        buildSandbox: sandboxPolicy(o, [o.data, o.tlsCert, o.tlsKey, o.signKey, o.trustPolicy && dirname(resolve(o.trustPolicy))]), timeouts: timeoutsOf(o),
        trust: ruleFor(o.trustPolicy ? loadTrustPolicy(resolve(o.trustPolicy)) : null, 'controlplane'),
        ...(o.signKey ? { signKey: resolve(o.signKey) } : {}),
      });
      // the agent's VMs run in their own supervisor processes: closing only stops the API and the heartbeats
      exitOnSignal(() => agent.close(), 10_000, (m) => process.stderr.write(`unikctld agent: ${m}\n`));
    });
  program
    .command('keygen')
    .description('make an Ed25519 key pair for signing images: KEY (private, mode 0600) and KEY.pub (public), PEM')
    .requiredOption('--out <file>', 'where to write the private key (the public key goes to FILE.pub)')
    .option('--force', 'overwrite existing files')
    .addHelpText('after', `
The key id (what trust policies and \`unikctl status --json\` show) is the sha256 of the public key's DER encoding.
The same keys can be made with openssl: openssl genpkey -algorithm ed25519 -out KEY && openssl pkey -in KEY -pubout -out KEY.pub

Example:
  unikctld keygen --out /etc/unikctl/signing.pem`)
    .action((o: { out: string; force?: boolean }) => {
      const { keyid, publicKeyFile } = writeKeyPair(resolve(o.out), Boolean(o.force));
      process.stdout.write(`${JSON.stringify({ privateKey: resolve(o.out), publicKey: publicKeyFile, keyid })}\n`);
    });
  return program;
}
