import { cpus as hostCpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { ArtifactStore } from '../controlplane/artifacts.js';
import { Authenticator, hashToken } from '../controlplane/auth.js';
import { createBaseApp, ndjsonReply } from '../controlplane/http.js';
import type { StatusResult } from '../engine/client.js';
import { parsePort } from '../engine/deploy-input.js';
import { LocalClient } from '../engine/local.js';
import { UserError, type ErrorCode } from '../errors.js';
import { homeLayout } from '../paths.js';
import type { AgentDeployRequest } from './client.js';

export interface AgentOptions {
  controlPlane: string;
  name: string;
  token: string;
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
export async function runAgent(o: AgentOptions): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const layout = homeLayout({ ...process.env, UNIKCTL_HOME: o.data, UNIKCTL_KERNEL_DIR: process.env.UNIKCTL_KERNEL_DIR ?? homeLayout(process.env).kernels });
  const engine = new LocalClient(layout);
  const artifacts = new ArtifactStore({ dir: join(o.data, 'artifacts'), maxUploadBytes: 4 * 1024 ** 3, maxExtractedBytes: 16 * 1024 ** 3, maxEntries: 200_000 });
  // the control plane authenticates with the same node token the agent uses towards it
  const auth = new Authenticator({ tokens: [{ name: 'control-plane', sha256: hashToken(o.token), scopes: ['nodes'] }] });
  const app = await createBaseApp({ auth, version: o.version, title: 'unikctld agent', description: 'A unikctl node agent', https: o.https ?? null, logger: { level: o.logLevel } });
  const cp = o.controlPlane.replace(/\/+$/, '');

  const cpCall = async (method: string, path: string, json?: unknown): Promise<Response> => {
    const res = await fetch(`${cp}${path}`, {
      method, headers: { authorization: `Bearer ${o.token}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}), signal: AbortSignal.timeout(120_000),
    });
    if (!res.ok) {
      const e = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
      throw new UserError((e.code ?? 'E_TRANSIENT') as ErrorCode, `control plane: ${e.message ?? `HTTP ${res.status}`}`);
    }
    return res;
  };

  const fetchArtifact = async (id: string): Promise<string> => {
    const have = artifacts.get(id);
    if (have) return have.dir;
    const res = await cpCall('GET', `/v1/artifacts/${id}`);
    if (!res.body) throw new UserError('E_TRANSIENT', `empty artifact ${id} from the control plane`);
    const rec = await artifacts.put(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), {});
    return rec.dir;
  };

  app.post('/v1/agent/deploy', { config: { scope: 'nodes' } }, async (req, reply) => {
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
      ...(r.memory !== undefined ? { memory: r.memory } : {}),
      ...(r.cpus !== undefined ? { cpus: r.cpus } : {}),
    });
    return reply.code(202).send(res);
  });
  app.post('/v1/agent/destroy', { config: { scope: 'nodes' } }, async (req, reply) => {
    const r = req.body as { names: string[]; graceMs: number };
    return reply.code(202).send(await engine.destroy(r.names, { graceMs: r.graceMs }));
  });
  app.get('/v1/agent/status', { config: { scope: 'nodes' } }, async () => engine.status());
  app.get('/v1/agent/logs/:name', { config: { scope: 'nodes' } }, async (req, reply) => {
    const q = req.query as { follow?: string; tail?: string; since?: string };
    return ndjsonReply(req, reply, (signal) => engine.logs({
      name: (req.params as { name: string }).name, follow: q.follow === '1', signal,
      ...(q.tail ? { tail: Number(q.tail) } : {}), ...(q.since ? { since: q.since } : {}),
    }));
  });

  const m = /^(.*):(\d+)$/.exec(o.listen);
  if (!m || !m[1] || !m[2]) throw new UserError('E_INVALID_ARGUMENT', `--listen ${o.listen} is not HOST:PORT`);
  await app.listen({ host: m[1], port: Number(m[2]) });

  const capacity = async (known?: StatusResult | null): Promise<Record<string, number>> => {
    const s = known ?? await engine.status().catch(() => null);
    const running = s?.deployments.filter((d) => ['pending', 'building', 'starting', 'running'].includes(d.state)).length ?? 0;
    return { cpus: o.capacity.cpus, memoryMiB: o.capacity.memoryMiB, runningVms: running };
  };
  const register = async (): Promise<void> => {
    await cpCall('POST', '/v1/nodes/register', { name: o.name, address: o.advertise, labels: o.labels, capacity: await capacity() });
  };
  // keep trying to register: the control plane may start after the agent
  for (let i = 0; ; i++) {
    try {
      await register();
      break;
    } catch (e) {
      if (i === 0) app.log.warn({ err: String(e) }, 'registration failed; retrying');
      await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** i)));
    }
  }
  app.log.info({ name: o.name, advertise: o.advertise }, 'agent registered');
  const timer = setInterval(() => {
    void (async () => {
      try {
        const local = await engine.status().catch(() => null);
        const now = Date.now();
        const deployments = (local?.deployments ?? []).filter((d) => d.state !== 'destroying')
          .map((d) => ({ name: d.name, ageMs: Math.max(0, now - Date.parse(d.createdAt)) }));
        const res = await cpCall('POST', '/v1/nodes/heartbeat', { name: o.name, capacity: await capacity(local), deployments });
        const { orphans = [] } = (await res.json()) as { orphans?: string[] };
        if (orphans.length) {
          // rescheduled elsewhere while this node was down: the control plane's copy is the live one
          app.log.warn({ orphans }, 'destroying local copies of deployments that now run on other nodes');
          await engine.destroy(orphans, { graceMs: 5000 }).catch((e: unknown) => app.log.warn({ err: String(e) }, 'destroying orphaned copies failed'));
        }
      } catch (e) {
        if (e instanceof UserError && e.code === 'E_UNKNOWN_NODE') await register().catch(() => {}); // the control plane lost us: register again
        else app.log.warn({ err: String(e) }, 'heartbeat failed');
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
