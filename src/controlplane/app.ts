import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { isUserError, type ErrorCode } from '../errors.js';
import { parseSince } from '../runtime/logstore.js';
import type { ArtifactStore } from './artifacts.js';
import { type Authenticator, type Scope } from './auth.js';
import type { Metrics } from './metrics.js';
import type { NodeStore } from './nodes.js';
import {
  artifactResultSchema, deployBodySchema, deployResultSchema, destroyBodySchema, destroyResultSchema, errorResponses, errorSchema,
  nodeNameParams, nodeRegisterSchema, nodeSchema, statusSchema,
} from './schemas.js';
import type { ControlPlane, DeployBody, DestroyBody } from './service.js';

declare module 'fastify' {
  interface FastifyContextConfig { scope?: Scope; public?: boolean; }
}

/** HTTP status of each stable error code the API returns (anything else is a 500 with E_INTERNAL). */
const STATUS: Partial<Record<string, number>> = {
  E_USAGE: 400, E_VALIDATION: 400, E_BAD_JSON: 400, E_INVALID_ARGUMENT: 400, E_INVALID_NAME: 400, E_INVALID_PORT: 400,
  E_NO_PACK: 400, E_UNIKYAML_INVALID: 400, E_DOCKERFILE_ROOTFS: 400, E_LOCK_REQUIRED: 400, E_NOT_ELF: 400, E_PACKAGE_INVALID: 400,
  E_UPLOAD_UNSAFE_PATH: 400, E_UPLOAD_UNSAFE_LINK: 400, E_UPLOAD_UNSAFE_ENTRY: 400, E_UPLOAD_CORRUPT: 400, E_UPLOAD_DIGEST_MISMATCH: 400,
  E_CMDLINE_TOO_LONG: 400,
  E_UNAUTHENTICATED: 401, E_TOKEN_INVALID: 401, E_TOKEN_EXPIRED: 401, E_TOKEN_NOT_YET_VALID: 401,
  E_FORBIDDEN: 403,
  E_NOT_FOUND: 404, E_UNKNOWN_APP: 404, E_UNKNOWN_ARTIFACT: 404, E_PACKAGE_NOT_FOUND: 404, E_UNKNOWN_NODE: 404,
  E_NAME_TAKEN: 409, E_IDEMPOTENCY_CONFLICT: 409, E_PORT_IN_USE: 409,
  E_UPLOAD_TOO_LARGE: 413,
  E_NOT_IMPLEMENTED: 501,
};

export interface AppDeps {
  cp: ControlPlane;
  auth: Authenticator;
  artifacts: ArtifactStore;
  metrics: Metrics;
  nodes: NodeStore;
  version: string;
  logger?: FastifyServerOptions['logger'];
  https?: { key: Buffer; cert: Buffer } | null;
}

const TRACE_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** The unikctld HTTP API (CP-1…4). Built without listening, so tests can use `inject`. */
export async function buildApp(d: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: d.logger ?? false,
    ...(d.https ? { https: d.https } : {}),
    genReqId: (req) => {
      const h = req.headers['x-trace-id'];
      return typeof h === 'string' && TRACE_RE.test(h) ? h : randomBytes(8).toString('hex');
    },
    bodyLimit: 1 << 20,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  }) as unknown as FastifyInstance;

  app.addSchema(errorSchema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'unikctld', description: 'The unikctl control plane API', version: d.version },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  const sendError = (reply: import('fastify').FastifyReply, status: number, code: string, message: string, hint?: string): void => {
    void reply.code(status).type('application/json').send({ code, message, trace_id: reply.request.id, ...(hint ? { hint } : {}) });
  };

  app.addContentTypeParser(['application/gzip', 'application/x-gzip', 'application/x-tar', 'application/octet-stream'], (_req, payload, done) => done(null, payload));

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-trace-id', req.id);
    if (req.routeOptions.config?.public) return;
    const principal = await d.auth.authenticate(req.headers.authorization);
    const scope = req.routeOptions.config?.scope;
    if (scope) d.auth.authorize(principal, scope);
  });
  app.addHook('onResponse', async (req, reply) => {
    d.metrics.httpRequests.inc({ method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) });
  });

  app.setErrorHandler((err, req, reply) => {
    if (isUserError(err)) {
      const status = (err as { status?: number }).status ?? STATUS[err.code] ?? 500;
      if (status >= 500) req.log.error({ err }, 'request failed');
      const challenge = (err as { challenge?: string }).challenge;
      if (challenge) void reply.header('www-authenticate', challenge);
      return sendError(reply, status, status >= 500 && !STATUS[err.code] ? 'E_INTERNAL' : err.code, err.message, err.hint);
    }
    const fe = err as { validation?: unknown; statusCode?: number; code?: string; message: string };
    if (fe.validation) return sendError(reply, 400, 'E_VALIDATION', fe.message);
    if (fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || (fe.statusCode === 400 && /JSON/i.test(fe.message))) {
      return sendError(reply, 400, 'E_BAD_JSON', fe.message);
    }
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(reply, 413, 'E_UPLOAD_TOO_LARGE', fe.message);
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return sendError(reply, fe.statusCode, fe.statusCode === 415 ? 'E_VALIDATION' : 'E_BAD_REQUEST' as ErrorCode, fe.message);
    req.log.error({ err }, 'unexpected error');
    return sendError(reply, 500, 'E_INTERNAL', 'internal error (see the server log for this trace id)');
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, 'E_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));

  app.get('/healthz', { config: { public: true }, schema: { hide: true } }, async () => ({ ok: true, version: d.version }));
  app.get('/openapi.json', { config: { scope: 'read' }, schema: { hide: true } }, async () => app.swagger());

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
    const rec = await d.artifacts.put(body, typeof expected === 'string' ? { expectedSha256: expected } : {});
    return reply.code(201).send({ id: rec.id, sha256: rec.sha256, bytes: rec.bytes });
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
    const r = await d.cp.deploy(req.body as DeployBody, req.id, typeof key === 'string' ? key : undefined);
    return reply.code(202).send(r);
  });

  app.post('/v1/destroy', {
    config: { scope: 'destroy' },
    schema: { summary: 'Stop and remove deployments asynchronously', body: destroyBodySchema, response: { 202: destroyResultSchema, ...errorResponses } },
  }, async (req, reply) => reply.code(202).send(await d.cp.destroy(req.body as DestroyBody, req.id)));

  app.get('/v1/status', {
    config: { scope: 'read' },
    schema: {
      summary: 'Deployments, recent operations and nodes',
      querystring: { type: 'object', additionalProperties: false, properties: { app: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' } } },
      response: { 200: statusSchema, ...errorResponses },
    },
  }, async (req) => {
    const q = req.query as { app?: string };
    return { ...(await d.cp.status(q.app)), nodes: await d.nodes.list() };
  });

  app.get('/v1/logs/:machine', {
    config: { scope: 'logs' },
    schema: {
      summary: 'The serial-console log of a deployment as JSON lines; follow=1 keeps streaming',
      params: { type: 'object', required: ['machine'], properties: { machine: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' } } },
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { follow: { type: 'string', enum: ['0', '1', 'true', 'false'] }, tail: { type: 'string', pattern: '^[0-9]{1,9}$' }, since: { type: 'string', maxLength: 64 } },
      },
      response: { 200: { type: 'string', description: 'application/x-ndjson: {"t": ms, "s": stream, "m": text} per line' }, ...errorResponses },
    },
  }, async (req, reply) => {
    const { machine } = req.params as { machine: string };
    const q = req.query as { follow?: string; tail?: string; since?: string };
    if (q.since) parseSince(q.since); // bad input is a 400 before the stream starts
    const abort = new AbortController();
    req.raw.on('close', () => abort.abort());
    const iter = d.cp.logs({ name: machine, follow: q.follow === '1' || q.follow === 'true', signal: abort.signal, ...(q.tail ? { tail: Number(q.tail) } : {}), ...(q.since ? { since: q.since } : {}) })[Symbol.asyncIterator]();
    const first = await iter.next(); // errors such as E_UNKNOWN_APP surface here, as JSON with a status code
    async function* lines(): AsyncGenerator<string> {
      if (!first.done) yield `${JSON.stringify(first.value)}\n`;
      for (;;) {
        const n = await iter.next();
        if (n.done) return;
        yield `${JSON.stringify(n.value)}\n`;
      }
    }
    return reply.type('application/x-ndjson').send(Readable.from(lines()));
  });

  app.get('/v1/metrics', { config: { scope: 'read' }, schema: { summary: 'Prometheus metrics (text format)', response: { 200: { type: 'string' }, ...errorResponses } } }, async (_req, reply) => {
    const text = await d.metrics.registry.metrics();
    return reply.type(d.metrics.registry.contentType).send(text);
  });

  app.post('/v1/nodes/register', {
    config: { scope: 'nodes' },
    schema: { summary: 'Register (or re-register) a node agent', body: nodeRegisterSchema, response: { 200: nodeSchema, ...errorResponses } },
  }, async (req) => d.nodes.register(req.body as { name: string }));
  app.post('/v1/nodes/heartbeat', {
    config: { scope: 'nodes' },
    schema: { summary: 'A node agent heartbeat with its capacity', body: nodeRegisterSchema, response: { 200: nodeSchema, ...errorResponses } },
  }, async (req) => d.nodes.heartbeat(req.body as { name: string }));
  for (const [verb, cordoned] of [['cordon', true], ['uncordon', false]] as const) {
    app.post(`/v1/nodes/:name/${verb}`, {
      config: { scope: 'nodes' },
      schema: { summary: `${verb} a node (placement eligibility)`, params: nodeNameParams, response: { 200: nodeSchema, ...errorResponses } },
    }, async (req) => d.nodes.setCordoned((req.params as { name: string }).name, cordoned));
  }
  app.post('/v1/nodes/:name/drain', {
    config: { scope: 'nodes' },
    schema: {
      summary: 'Cordon a node and move its workloads elsewhere',
      params: nodeNameParams,
      response: { 202: { type: 'object', properties: { node: nodeSchema, moved: { type: 'array', items: { type: 'string' } }, notMoved: { type: 'array', items: { type: 'string' } }, reason: { type: 'string' } } }, ...errorResponses },
    },
  }, async (req, reply) => {
    const node = await d.nodes.setCordoned((req.params as { name: string }).name, true);
    const here = (await d.cp.status()).deployments.map((x) => x.name);
    // one node per control plane for now: workloads have nowhere to move until multi-node scheduling lands
    return reply.code(202).send({ node, moved: [], notMoved: here, reason: 'no other eligible node: this control plane runs VMs on its own host only (multi-node scheduling is not implemented yet)' });
  });

  return app;
}
