import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import { createReadStream } from 'node:fs';
import { packBundle } from '../engine/bundle.js';
import { UserError } from '../errors.js';
import { parseSince } from '../runtime/logstore.js';
import type { ArtifactStore } from '../store/artifacts.js';
import type { Authenticator } from './auth.js';
import { createBaseApp, ndjsonReply, type HttpTimeouts } from './http.js';
import { metricsForTenant, type Metrics } from './metrics.js';
import { scopeFor, TENANT_HEADER, TenantScope, type TenantRegistry } from './tenants.js';
import { requireSameNode, type NodeAuthenticator } from './node-identity.js';
import { orphanedDeployments } from './nodes.js';
import type { LastOperation, NodeStore, Placement, PlacementStore, ReportedDeployment } from './node-store.js';
import {
  artifactIdParams, artifactResultSchema, quotaSchema, deployBodySchema, deployResultSchema, destroyBodySchema, destroyResultSchema, errorResponses,
  heartbeatResultSchema, joinResultSchema, logsQuerySchema, nodeJoinSchema, nodeNameParams, nodeRegisterSchema, nodeRemovedSchema, nodeSchema, sloQuerySchema, sloSchema, statusSchema,
} from './schemas.js';
import { computeSlo, type SloConfig, type SloSource, type SloWindow } from '../engine/slo.js';
import { splitName } from './slo-recorder.js';
import { registerUi } from './ui.js';
import type { ControlPlane, DeployBody, DestroyBody } from './service.js';

declare module 'fastify' {
  /** The tenant scope of an operator request (tenants.ts); null until resolved, and on node and public requests. */
  interface FastifyRequest { scope: TenantScope | null; }
}

export interface AppDeps {
  cp: ControlPlane;
  auth: Authenticator;
  artifacts: ArtifactStore;
  metrics: Metrics;
  nodes: NodeStore & PlacementStore;
  /** join token and node credentials */
  nodeAuth: NodeAuthenticator;
  version: string;
  logger?: FastifyServerOptions['logger'];
  https?: { key: Buffer; cert: Buffer } | null;
  timeouts?: Partial<HttpTimeouts>;
  /** --max-upload-bytes: sizes the whole-request backstop timeout of uploads */
  maxUploadBytes?: number;
  /** --tenants: the declared tenants (off: one implicit tenant, as without tenants) */
  tenants: TenantRegistry;
  /** the SLO samples and the --slo-config price table and objectives (docs/slo.md) */
  slo: { source: SloSource; config: SloConfig };
}

/** The unikctld HTTP API (CP-1…4). Built without listening, so tests can use `inject`. */
export async function buildApp(d: AppDeps): Promise<FastifyInstance> {
  const app = await createBaseApp({ auth: d.auth, nodes: d.nodeAuth, version: d.version, logger: d.logger, https: d.https, title: 'unikctld', description: 'The unikctl control plane API',
    ...(d.timeouts ? { timeouts: d.timeouts } : {}), ...(d.maxUploadBytes !== undefined ? { maxBodyBytes: d.maxUploadBytes } : {}),
  });
  app.addHook('onResponse', async (req, reply) => {
    d.metrics.httpRequests.inc({ method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) });
  });
  // the tenant comes from the credential alone (tenants.ts); resolved before any body is read, so a refused
  // credential uploads nothing
  app.decorateRequest('scope', null);
  app.addHook('onRequest', async (req) => {
    if (req.principal) req.scope = scopeFor(req.principal, req.headers[TENANT_HEADER], d.tenants);
  });
  const scope = (req: FastifyRequest): TenantScope => req.scope ?? TenantScope.GLOBAL;
  const sendError = (reply: FastifyReply, status: number, code: string, message: string): void => {
    void reply.code(status).type('application/json').send({ code, message, trace_id: reply.request.id });
  };

  app.post('/v1/artifacts', {
    config: { scope: 'deploy' },
    bodyLimit: 64 * 1024 ** 3, // the artifact store enforces --max-upload-bytes while streaming
    schema: {
      summary: 'Upload a source bundle, a binary or a rootfs directory as a tar(.gz) archive',
      headers: { type: 'object', properties: { 'x-content-sha256': { type: 'string', pattern: '^[0-9a-f]{64}$' } } },
      response: { 201: artifactResultSchema, ...errorResponses, 413: { $ref: 'Error#' } },
    },
  }, async (req, reply) => {
    const body = req.body as NodeJS.ReadableStream | undefined;
    if (!body || typeof (body as { pipe?: unknown }).pipe !== 'function') {
      return sendError(reply, 400, 'E_UPLOAD_CORRUPT', 'send the archive as the request body with Content-Type application/gzip or application/x-tar');
    }
    const expected = req.headers['x-content-sha256'];
    const tenant = scope(req).name;
    const started = Date.now();
    const rec = await d.artifacts.put(body, { ...(typeof expected === 'string' ? { expectedSha256: expected } : {}), ...(tenant ? { tenant } : {}) });
    // created by this request (not an upload of bytes the tenant already had): over the quota it is removed again
    await d.cp.admitArtifact(rec.id, rec.createdAt >= started, scope(req));
    return reply.code(201).send({ id: rec.id, sha256: rec.sha256, bytes: rec.bytes });
  });

  app.get('/v1/artifacts/:id', {
    // a node credential fetches what a deploy placed on its node references; operators need admin
    config: { node: true, scope: 'admin' },
    schema: {
      summary: 'Download an uploaded artifact (a node agent fetches what it is asked to run)',
      params: artifactIdParams,
      response: { 200: { description: 'gzip\'d tar archive', content: { 'application/gzip': { schema: { type: 'string', format: 'binary' } } } }, ...errorResponses },
    },
  }, async (req, reply) => {
    const { id } = req.params as { id: string };
    // checked before existence: a node learns nothing about artifacts that are not its own
    if (req.nodeName !== null && !(await d.nodes.artifactGranted(req.nodeName, id))) {
      return sendError(reply, 403, 'E_FORBIDDEN', `artifact ${id} is not referenced by any deployment placed on node ${req.nodeName}`);
    }
    const rec = d.artifacts.get(id);
    if (!rec) return sendError(reply, 404, 'E_UNKNOWN_ARTIFACT', `no artifact ${(req.params as { id: string }).id}`);
    const bundle = await packBundle(rec.dir, { exclude: [] }); // the upload was already filtered: send it as is
    const stream = createReadStream(bundle.file);
    stream.on('close', () => bundle.cleanup());
    return reply.type('application/gzip').header('x-content-sha256', bundle.sha256).send(stream);
  });

  app.delete('/v1/artifacts/:id', {
    config: { scope: 'deploy' },
    schema: {
      summary: 'Delete an uploaded artifact (409 E_ARTIFACT_IN_USE while a queued or running deploy, or a placement, still needs it)',
      params: artifactIdParams,
      response: { 204: { description: 'deleted', type: 'null' }, ...errorResponses },
    },
  }, async (req, reply) => {
    await d.cp.deleteArtifact((req.params as { id: string }).id, scope(req));
    return reply.code(204).send();
  });

  app.post('/v1/deployments', {
    config: { scope: 'deploy' },
    schema: {
      summary: 'Start a deployment asynchronously (returns its operation at once)',
      headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 200 } } },
      body: deployBodySchema,
      response: { 202: deployResultSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    const key = req.headers['idempotency-key'];
    const r = await d.cp.deploy(req.body as DeployBody, req.id, typeof key === 'string' ? key : undefined, scope(req));
    return reply.code(202).send(r);
  });

  app.post('/v1/destroy', {
    config: { scope: 'destroy' },
    schema: { summary: 'Stop and remove deployments asynchronously', body: destroyBodySchema, response: { 202: destroyResultSchema, ...errorResponses } },
  }, async (req, reply) => reply.code(202).send(await d.cp.destroy(req.body as DestroyBody, req.id, scope(req))));

  app.get('/v1/status', {
    config: { scope: 'read' },
    schema: {
      summary: 'Deployments, recent operations and nodes',
      querystring: { type: 'object', additionalProperties: false, properties: { app: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' } } },
      response: { 200: statusSchema, ...errorResponses },
    },
  }, async (req) => {
    const q = req.query as { app?: string };
    const s = scope(req);
    const quota = await d.cp.quota(s);
    // a tenant sees its own deployments and usage; the nodes (and so other tenants' dedicated pools) are the operators'
    return { ...(await d.cp.status(q.app, s)), nodes: s.tenant ? [] : await d.nodes.list(), ...(quota ? { quota } : {}) };
  });

  app.get('/v1/quota', {
    config: { scope: 'read' },
    schema: { summary: "The calling tenant's quota, per-VM limits, port range and usage", response: { 200: quotaSchema, ...errorResponses } },
  }, async (req) => {
    const quota = await d.cp.quota(scope(req));
    if (!quota) throw new UserError('E_TENANT_REQUIRED', 'this request acts for no tenant, so it has no quota', { hint: `use a tenant's credential (or, as an admin, the ${TENANT_HEADER} header)` });
    return quota;
  });

  app.get('/v1/logs/:name', {
    config: { scope: 'logs' },
    schema: {
      summary: 'The serial-console log of a deployment as JSON lines; follow=1 keeps streaming',
      // the contract writes this path /v1/logs/{machine}; the same URL, its parameter named for what it is (a deployment name)
      params: { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' } } },
      querystring: logsQuerySchema,
      response: { 200: { description: 'one JSON object per line: {"t": ms, "s": stream, "m": text}', content: { 'application/x-ndjson': { schema: { type: 'string' } } } }, ...errorResponses },
    },
  }, async (req, reply) => {
    const { name } = req.params as { name: string };
    const q = req.query as { follow?: string; tail?: string; since?: string };
    if (q.since) parseSince(q.since); // bad input is a 400 before the stream starts
    return ndjsonReply(req, reply, (signal) => d.cp.logs({ name, follow: q.follow === '1' || q.follow === 'true', signal, ...(q.tail ? { tail: Number(q.tail) } : {}), ...(q.since ? { since: q.since } : {}) }, scope(req)));
  });

  app.get('/v1/metrics', { config: { scope: 'read' }, schema: { summary: 'Prometheus metrics (text format)', response: { 200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errorResponses } } }, async (req, reply) => {
    const text = await d.metrics.registry.metrics();
    const tenant = scope(req).name;
    return reply.type(d.metrics.registry.contentType).send(tenant ? metricsForTenant(text, tenant) : text);
  });

  app.get('/v1/slo', {
    config: { scope: 'read' },
    schema: {
      summary: 'Boot latency percentiles, deploy success rate, error budgets and burn rates, cost, requests, current apps and nodes (docs/slo.md)',
      querystring: sloQuerySchema,
      response: { 200: sloSchema, ...errorResponses },
    },
  }, async (req) => {
    const q = req.query as { window?: SloWindow; app?: string; tenant?: string };
    const s = scope(req);
    // a tenant's figures are its own, whatever it asks; an admin sees every tenant or filters by one
    if (s.tenant && q.tenant !== undefined && q.tenant !== s.tenant.name) {
      throw new UserError('E_FORBIDDEN', `tenant ${s.tenant.name} cannot read tenant ${q.tenant}'s figures`, { hint: 'leave tenant= out: your own figures are shown' });
    }
    const tenant = s.tenant?.name ?? q.tenant;
    const report = computeSlo(d.slo.source, {
      window: q.window ?? '1h', now: Date.now(), prices: d.slo.config.prices, objectives: d.slo.config.objectives,
      filter: { ...(tenant !== undefined ? { tenant } : {}), ...(q.app !== undefined ? { app: q.app } : {}) },
    });
    const status = await d.cp.status(undefined, TenantScope.GLOBAL);
    const apps = status.deployments.map((x) => ({ ...splitName(x.name), state: x.state, node: x.node ?? 'local', accel: x.accel, bootMs: x.bootMs }))
      .filter((x) => (tenant === undefined || x.tenant === tenant) && (q.app === undefined || x.app === q.app))
      .map(({ app: name, ...rest }) => ({ name, ...rest }));
    // the nodes (and so other tenants' dedicated pools) are the operators'
    const registered = (await d.nodes.list()).map((n) => ({ name: n.name, status: n.status, cordoned: n.cordoned }));
    // without agents the control plane's own host runs every VM: the apps above name it `local`
    const nodes = s.tenant ? [] : registered.length > 0 ? registered : [{ name: 'local', status: 'ready', cordoned: false }];
    return { ...report, apps, nodes };
  });

  registerUi(app);

  app.post('/v1/nodes/join', {
    config: { join: true },
    schema: {
      summary: 'A node agent joins with the join token and receives its own credentials (once)',
      body: nodeJoinSchema, response: { 201: joinResultSchema, ...errorResponses },
    },
  }, async (req, reply) => reply.code(201).send(await d.nodeAuth.join(req.body as { name: string })));
  app.post('/v1/nodes/register', {
    config: { node: true },
    schema: { summary: 'A joined node agent re-registers its address, labels and capacity', body: nodeRegisterSchema, response: { 200: nodeSchema, ...errorResponses } },
  }, async (req) => {
    const body = req.body as { name: string };
    requireSameNode(req.nodeName, body.name);
    return d.nodes.register(body);
  });
  app.post('/v1/nodes/heartbeat', {
    config: { node: true },
    schema: { summary: 'A node agent heartbeat with its capacity and local deployments', body: nodeRegisterSchema, response: { 200: heartbeatResultSchema, ...errorResponses } },
  }, async (req) => {
    const body = req.body as { name: string; capacity?: Record<string, number>; deployments?: ReportedDeployment[] };
    requireSameNode(req.nodeName, body.name);
    const node = await d.nodes.heartbeat(body);
    if (!body.deployments?.length) return { ...node, orphans: [] };
    // every agent heartbeats every few seconds: look up only what this node reports, never scan all placements
    const placements = new Map<string, Placement>();
    const lastOps = new Map<string, LastOperation>();
    await Promise.all(body.deployments.map(async (r) => {
      const p = await d.nodes.getPlacement(r.name);
      if (p) placements.set(r.name, p);
      else {
        // no placement anywhere: was this name destroyed meanwhile?
        const op = await d.cp.lastOperation(r.name);
        if (op) lastOps.set(r.name, op);
      }
    }));
    return { ...node, orphans: orphanedDeployments(body.name, body.deployments, placements, Date.now(), lastOps) };
  });
  for (const [verb, cordoned] of [['cordon', true], ['uncordon', false]] as const) {
    app.post(`/v1/nodes/:name/${verb}`, {
      config: { scope: 'nodes' },
      schema: { summary: `${verb} a node (placement eligibility)`, params: nodeNameParams, response: { 200: nodeSchema, ...errorResponses } },
    }, async (req) => d.nodes.setCordoned((req.params as { name: string }).name, cordoned));
  }
  app.delete('/v1/nodes/:name', {
    config: { scope: 'nodes' },
    schema: {
      summary: 'Remove a node: its credential stops working at once; its workloads are rescheduled elsewhere',
      params: nodeNameParams, response: { 200: nodeRemovedSchema, ...errorResponses },
    },
  }, async (req) => {
    const name = (req.params as { name: string }).name;
    if (!(await d.nodes.remove(name))) throw new UserError('E_UNKNOWN_NODE', `node ${name} is not registered`);
    // the removed node is not trusted to hand its workloads over: they move as if it were down
    return { node: name, rescheduled: await d.cp.rescheduleDownNodes([{ name, status: 'down' }]) };
  });
  app.post('/v1/nodes/:name/drain', {
    config: { scope: 'nodes' },
    schema: {
      summary: 'Cordon a node and move its workloads elsewhere',
      params: nodeNameParams,
      response: { 202: { type: 'object', properties: { node: nodeSchema, moved: { type: 'array', items: { type: 'string' } }, notMoved: { type: 'array', items: { type: 'string' } }, reason: { type: 'string' } } }, ...errorResponses },
    },
  }, async (req, reply) => {
    const name = (req.params as { name: string }).name;
    const node = await d.nodes.setCordoned(name, true);
    const moved = await d.cp.drain(name, req.id);
    return reply.code(202).send({
      node, moved, notMoved: [],
      reason: moved.length > 0 ? 'each workload gets a move operation: it comes up on another eligible node before the copy here is destroyed' : 'nothing runs on this node',
    });
  });

  return app;
}
