import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus as hostCpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { ArtifactStore } from '../store/artifacts.js';
import { Authenticator, hashToken } from '../controlplane/auth.js';
import { createBaseApp, ndjsonReply, type HttpTimeouts } from '../controlplane/http.js';
import { agentDeployBodySchema, agentDestroyBodySchema, agentStatusQuerySchema, logsQuerySchema, nodeNameParams } from '../controlplane/schemas.js';
import type { StatusResult } from '../engine/client.js';
import { parsePort } from '../util/port.js';
import { LocalClient } from '../engine/local.js';
import type { BuildSandboxPolicy, TrustRule } from '../store/types.js';
import { OFF_RULE } from '../image/trust.js';
import { isUserError, UserError, type ErrorCode } from '../errors.js';
import { homeLayout } from '../paths.js';
import type { AgentDeployRequest } from '../controlplane/agent-client.js';

export interface AgentOptions {
  controlPlane: string;
  name: string;
  /** needed on the first start only: exchanged for this node's own credentials */
  joinToken: string | null;
  listen: string;
  advertise: string;
  /** host address that published VM ports bind to (several agents can share a host on 127.0.0.x) */
  publishAddress: string;
  labels: Record<string, string>;
  data: string;
  heartbeatMs: number;
  capacity: { cpus: number; memoryMiB: number };
  https?: { key: Buffer; cert: Buffer } | null;
  logLevel: string;
  version: string;
  /** build the projects the control plane sends in a sandbox with this policy (null: unsandboxed, trusted clients only) */
  buildSandbox: BuildSandboxPolicy | null;
  timeouts?: Partial<HttpTimeouts>;
  /** the trust-policy rule this node checks every deploy against (its policy file's controlplane scope) */
  trust?: TrustRule;
  /** signs the images this node builds for the control plane */
  signKey?: string;
}

/** Binds ports without an explicit address to this node's publish address. */
export function bindPorts(ports: string[], address: string): string[] {
  return ports.map((p) => {
    const m = parsePort(p);
    return `${p.split(':').length === 3 ? m.hostAddress : address}:${m.hostPort}:${m.guestPort}`;
  });
}

/**
 * A node agent (CP-6): runs VMs on its host with the same engine as local mode, registers with the control plane,
 * heartbeats its capacity, and serves the control plane's forwarded deploy/destroy/status/logs calls.
 */
/** What an agent keeps of its identity: the credential it presents, and only the hash of the key it accepts. */
interface AgentIdentity { name: string; controlPlane: string; credential: string; controlPlaneKeySha256: string; }

export const identityFile = (data: string): string => join(data, 'node-identity.json');

/** The identity kept in the data dir; the control-plane URL may change (another replica, a load balancer), the name may not. */
function readIdentity(data: string, name: string): AgentIdentity | null {
  const file = identityFile(data);
  if (!existsSync(file)) return null;
  const id = JSON.parse(readFileSync(file, 'utf8')) as AgentIdentity;
  if (id.name !== name) {
    throw new UserError('E_INVALID_ARGUMENT', `${file} is the identity of node ${id.name}, not of ${name}`, {
      hint: 'start the agent with the --name it joined with, or give it another --data directory',
    });
  }
  return id;
}

/** Codes worth another attempt while the control plane is starting or briefly away; anything else is final. */
const RETRY_CODES = new Set(['E_CONTROL_PLANE_UNREACHABLE', 'E_TRANSIENT', 'E_INTERNAL', 'E_STATE']);

async function withRetries<T>(fn: () => Promise<T>, onFirstFailure: (e: unknown) => void): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (isUserError(e) && !RETRY_CODES.has(e.code)) throw e;
      if (i === 0) onFirstFailure(e);
      await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** i)));
    }
  }
}

export async function runAgent(o: AgentOptions): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const layout = homeLayout({ ...process.env, UNIKCTL_HOME: o.data, UNIKCTL_KERNEL_DIR: process.env.UNIKCTL_KERNEL_DIR ?? homeLayout(process.env).kernels });
  const cp = o.controlPlane.replace(/\/+$/, '');

  const cpCall = async (method: string, path: string, token: string, json?: unknown): Promise<Response> => {
    let res: Response;
    try {
      res = await fetch(`${cp}${path}`, {
        method, headers: { authorization: `Bearer ${token}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(json !== undefined ? { body: JSON.stringify(json) } : {}), signal: AbortSignal.timeout(120_000),
      });
    } catch (e) {
      throw new UserError('E_CONTROL_PLANE_UNREACHABLE', `control plane ${cp}: ${(e as { cause?: Error }).cause?.message ?? (e as Error).message}`);
    }
    if (!res.ok) {
      const e = (await res.json().catch(() => ({}))) as { code?: string; message?: string; hint?: string };
      throw new UserError((e.code ?? 'E_TRANSIENT') as ErrorCode, `control plane: ${e.message ?? `HTTP ${res.status}`}`, e.hint ? { hint: e.hint } : {});
    }
    return res;
  };

  // bad flags fail before a join spends the name
  const m = /^(.*):(\d+)$/.exec(o.listen);
  if (!m || !m[1] || !m[2]) throw new UserError('E_INVALID_ARGUMENT', `--listen ${o.listen} is not HOST:PORT`);
  mkdirSync(o.data, { recursive: true });
  const capacityOf = (running: number): Record<string, number> => ({ cpus: o.capacity.cpus, memoryMiB: o.capacity.memoryMiB, runningVms: running });
  let identity = readIdentity(o.data, o.name);
  let joined = false;
  if (!identity) {
    const joinToken = o.joinToken;
    if (!joinToken) {
      throw new UserError('E_INVALID_ARGUMENT', `node ${o.name} has not joined the control plane yet (no ${identityFile(o.data)})`, { hint: 'start the agent once with --join-token (the join token unikctld serve was given)' });
    }
    const body = { name: o.name, address: o.advertise, labels: o.labels, capacity: capacityOf(0) };
    const res = await withRetries(() => cpCall('POST', '/v1/nodes/join', joinToken, body), (e) => console.error(`joining failed (${String(e)}); retrying`));
    const r = (await res.json()) as { credential: string; agentKey: string };
    identity = { name: o.name, controlPlane: cp, credential: r.credential, controlPlaneKeySha256: hashToken(r.agentKey) };
    // the credential is this node's secret: readable by the agent's user only
    writeFileSync(identityFile(o.data), `${JSON.stringify(identity, null, 2)}\n`, { mode: 0o600 });
    joined = true;
  }
  const credential = identity.credential;

  const engine = new LocalClient(layout, { remoteBuild: { sandbox: o.buildSandbox }, trust: o.trust ?? OFF_RULE('controlplane'), ...(o.signKey ? { signKey: o.signKey } : {}) });
  // Artifacts come only from the authenticated control plane, which enforced the upload limits (including the
  // expansion ratio) on the original; its re-packed gzip may compress better, so no ratio is applied again here.
  const artifacts = new ArtifactStore({
    dir: join(o.data, 'artifacts'), maxUploadBytes: 4 * 1024 ** 3, maxExtractedBytes: 16 * 1024 ** 3, maxEntries: 200_000, maxExpansionRatio: Infinity,
  });
  // only the control plane holds the key this node learnt at join: node credentials and the join token open nothing here
  const auth = new Authenticator({ tokens: [{ name: 'control-plane', sha256: identity.controlPlaneKeySha256, scopes: ['nodes'] }] });
  const app = await createBaseApp({ auth, version: o.version, title: 'unikctld agent', description: 'A unikctl node agent', https: o.https ?? null, logger: { level: o.logLevel }, ...(o.timeouts ? { timeouts: o.timeouts } : {}) });

  const fetchArtifact = async (id: string): Promise<string> => {
    const have = artifacts.get(id);
    if (have) return have.dir;
    const res = await cpCall('GET', `/v1/artifacts/${id}`, credential);
    if (!res.body) throw new UserError('E_TRANSIENT', `empty artifact ${id} from the control plane`);
    const rec = await artifacts.put(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), {});
    return rec.dir;
  };

  app.post('/v1/agent/deploy', { config: { scope: 'nodes' }, schema: { body: agentDeployBodySchema } }, async (req, reply) => {
    const r = req.body as AgentDeployRequest;
    const dir = await fetchArtifact(r.source.artifact);
    let target = dir;
    if (r.source.kind === 'binary') {
      const { readdirSync } = await import('node:fs');
      const files = readdirSync(dir);
      if (files.length !== 1 || !files[0]) throw new UserError('E_INVALID_ARGUMENT', 'a binary artifact must hold exactly one file');
      target = join(dir, files[0]);
    }
    const res = await engine.deploy({
      target, name: r.name, ports: bindPorts(r.ports, o.publishAddress), env: r.env, debug: r.debug, labels: r.labels, cwd: '/',
      idempotencyKey: r.idempotencyKey,
      ...(r.expectManifestSha256 ? { expectManifestSha256: r.expectManifestSha256 } : {}),
      ...(r.memory !== undefined ? { memory: r.memory } : {}),
      ...(r.cpus !== undefined ? { cpus: r.cpus } : {}),
      ...(r.tenant !== undefined ? { tenant: r.tenant } : {}),
      ...(r.service !== undefined ? { service: r.service } : {}),
      ...(r.supersede ? { supersede: true } : {}),
    });
    return reply.code(202).send(res);
  });
  app.post('/v1/agent/destroy', { config: { scope: 'nodes' }, schema: { body: agentDestroyBodySchema } }, async (req, reply) => {
    const r = req.body as { names: string[]; graceMs: number };
    return reply.code(202).send(await engine.destroy(r.names, { graceMs: r.graceMs }));
  });
  app.get('/v1/agent/status', { config: { scope: 'nodes' }, schema: { querystring: agentStatusQuerySchema } }, async (req) => engine.status((req.query as { app?: string }).app));
  app.get('/v1/agent/logs/:name', { config: { scope: 'nodes' }, schema: { params: nodeNameParams, querystring: logsQuerySchema } }, async (req, reply) => {
    const q = req.query as { follow?: string; tail?: string; since?: string };
    return ndjsonReply(req, reply, (signal) => engine.logs({
      name: (req.params as { name: string }).name, follow: q.follow === '1', signal,
      ...(q.tail ? { tail: Number(q.tail) } : {}), ...(q.since ? { since: q.since } : {}),
    }));
  });

  await app.listen({ host: m[1], port: Number(m[2]) });

  const capacity = async (known?: StatusResult | null): Promise<Record<string, number>> => {
    const s = known ?? await engine.status().catch(() => null);
    return capacityOf(s?.deployments.filter((d) => ['pending', 'building', 'starting', 'running'].includes(d.state)).length ?? 0);
  };
  // a restarted agent re-registers its address, labels and capacity under its own credential; the control plane may
  // start after the agent, so keep trying — but a refused credential (the node was removed) is final
  if (!joined) {
    const register = async (): Promise<Response> => cpCall('POST', '/v1/nodes/register', credential, { name: o.name, address: o.advertise, labels: o.labels, capacity: await capacity() });
    try {
      await withRetries(register, (e) => app.log.warn({ err: String(e) }, 'registration failed; retrying'));
    } catch (e) {
      await app.close();
      engine.close();
      throw e;
    }
  }
  app.log.info({ name: o.name, advertise: o.advertise, joined }, 'agent registered');
  const timer = setInterval(() => {
    void (async () => {
      try {
        const local = await engine.status().catch(() => null);
        const now = Date.now();
        // a service is reported by its name (the control plane places services, not their replicas `app.N`)
        const replicas = new Set((local?.services ?? []).flatMap((v) => v.replicas.map((x) => x.name)));
        const deployments = [
          ...(local?.deployments ?? []).filter((d) => d.state !== 'destroying' && !replicas.has(d.name))
            .map((d) => ({ name: d.name, ageMs: Math.max(0, now - Date.parse(d.createdAt)) })),
          ...(local?.services ?? []).filter((v) => !v.destroying)
            .map((v) => ({ name: v.name, ageMs: Math.max(0, now - Math.min(now, ...v.versions.map((x) => Date.parse(x.createdAt)))) })),
        ];
        const res = await cpCall('POST', '/v1/nodes/heartbeat', credential, { name: o.name, capacity: await capacity(local), deployments });
        const { orphans = [] } = (await res.json()) as { orphans?: string[] };
        if (orphans.length) {
          // rescheduled elsewhere while this node was down: the control plane's copy is the live one
          app.log.warn({ orphans }, 'destroying local copies of deployments that now run on other nodes');
          await engine.destroy(orphans, { graceMs: 5000 }).catch((e: unknown) => app.log.warn({ err: String(e) }, 'destroying orphaned copies failed'));
        }
      } catch (e) {
        // no automatic re-join when the credential is refused: that is how a removed node stays removed
        app.log.warn({ err: String(e), ...(isUserError(e) && e.hint ? { hint: e.hint } : {}) }, 'heartbeat failed');
      }
    })();
  }, o.heartbeatMs);
  timer.unref();

  return {
    app,
    async close() {
      clearInterval(timer);
      await app.close();
      engine.close();
    },
  };
}

export const defaultCapacity = (): { cpus: number; memoryMiB: number } => ({ cpus: hostCpus().length, memoryMiB: Math.floor(totalmem() / 1024 / 1024) });
