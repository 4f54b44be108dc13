import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { errorSpec, isUserError } from '../errors.js';
import { errorSchema } from './schemas.js';
import type { Authenticator, Scope } from './auth.js';

declare module 'fastify' {
  interface FastifyContextConfig { scope?: Scope; public?: boolean; }
}

export interface BaseAppOptions {
  auth: Authenticator;
  version: string;
  title: string;
  description: string;
  logger?: FastifyServerOptions['logger'];
  https?: { key: Buffer; cert: Buffer } | null;
}

const TRACE_RE = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * What every unikctl HTTP server shares (control plane and node agent): trace ids on every response (CP-3),
 * bearer auth with per-route scopes (CP-4), `{code, message, trace_id}` errors, OpenAPI generation.
 */
export async function createBaseApp(o: BaseAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: o.logger ?? false,
    ...(o.https ? { https: o.https } : {}),
    genReqId: (req) => {
      const h = req.headers['x-trace-id'];
      return typeof h === 'string' && TRACE_RE.test(h) ? h : randomBytes(8).toString('hex');
    },
    bodyLimit: 1 << 20,
    routerOptions: { maxParamLength: 4096 }, // longer path parameters reach the schema and get a 400 E_VALIDATION
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  }) as unknown as FastifyInstance;

  app.addSchema(errorSchema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: o.title, description: o.description, version: o.version },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  const sendError = (reply: FastifyReply, status: number, code: string, message: string, hint?: string): void => {
    void reply.code(status).type('application/json').send({ code, message, trace_id: reply.request.id, ...(hint ? { hint } : {}) });
  };

  app.addContentTypeParser(['application/gzip', 'application/x-gzip', 'application/x-tar', 'application/octet-stream'], (_req, payload, done) => done(null, payload));

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-trace-id', req.id);
    if (req.routeOptions.config?.public) return;
    const principal = await o.auth.authenticate(req.headers.authorization);
    const scope = req.routeOptions.config?.scope;
    if (scope) o.auth.authorize(principal, scope);
  });

  app.setErrorHandler((err, req, reply) => {
    if (isUserError(err)) {
      // the status comes from the error table (src/errors.ts), never from a per-server list
      const status = errorSpec(err.code).status;
      if (status >= 500) req.log.error({ err }, 'request failed');
      const challenge = (err as { challenge?: string }).challenge;
      if (challenge) void reply.header('www-authenticate', challenge);
      return sendError(reply, status, err.code, err.message, err.hint);
    }
    const fe = err as { validation?: unknown; statusCode?: number; code?: string; message: string };
    if (fe.validation) return sendError(reply, 400, 'E_VALIDATION', fe.message);
    if (fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || (fe.statusCode === 400 && /JSON/i.test(fe.message))) {
      return sendError(reply, 400, 'E_BAD_JSON', fe.message);
    }
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(reply, 413, 'E_UPLOAD_TOO_LARGE', fe.message);
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return sendError(reply, fe.statusCode, 'E_VALIDATION', fe.message);
    req.log.error({ err }, 'unexpected error');
    return sendError(reply, 500, 'E_INTERNAL', 'internal error (see the server log for this trace id)');
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, 'E_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  app.get('/healthz', { config: { public: true }, schema: { hide: true } }, async () => ({ ok: true, version: o.version }));
  app.get('/openapi.json', { config: { scope: 'read' }, schema: { hide: true } }, async () => app.swagger());
  return app;
}

/** Streams log entries as JSON lines; an error before the first entry (e.g. E_UNKNOWN_APP) is still a JSON error with a status. */
export async function ndjsonReply(req: FastifyRequest, reply: FastifyReply, open: (signal: AbortSignal) => AsyncIterable<unknown>): Promise<FastifyReply> {
  const abort = new AbortController();
  req.raw.on('close', () => abort.abort());
  const iter = open(abort.signal)[Symbol.asyncIterator]();
  const first = await iter.next();
  async function* lines(): AsyncGenerator<string> {
    if (!first.done) yield `${JSON.stringify(first.value)}\n`;
    for (;;) {
      const n = await iter.next();
      if (n.done) return;
      yield `${JSON.stringify(n.value)}\n`;
    }
  }
  return reply.type('application/x-ndjson').send(Readable.from(lines()));
}
