import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { UserError, errorSpec, isUserError } from '../errors.js';
import { errorSchema } from './schemas.js';
import type { Authenticator, Principal, Scope } from './auth.js';
import { NodeAuthenticator } from './node-identity.js';

declare module 'fastify' {
  /**
   * Who may call a route: `scope` (operator tokens and JWTs), `join` (only the join token), `node` (only a node
   * credential; with a scope too, either one).
   */
  interface FastifyContextConfig { scope?: Scope; public?: boolean; join?: boolean; node?: boolean; }
  /** The node a node credential authenticated, on routes open to nodes; null otherwise. */
  interface FastifyRequest {
    nodeName: string | null;
    /** The operator credential's principal, once authenticated (null on public, join and node-credential requests). */
    principal: Principal | null;
  }
}

/**
 * Slow-client bounds (slowloris): how long a client may take to send its headers, how long it may pause between
 * body bytes, and the lowest average body rate it must keep (mod_reqtimeout style: the body deadline starts at
 * `bodyIdleMs` and grows by one second per `bodyMinRate` bytes received), so a trickling upload cannot hold a
 * socket and a temp file for long.
 */
export interface HttpTimeouts {
  headersMs: number;
  bodyIdleMs: number;
  /** bytes per second */
  bodyMinRate: number;
}

export const DEFAULT_TIMEOUTS: Readonly<HttpTimeouts> = Object.freeze({ headersMs: 10_000, bodyIdleMs: 30_000, bodyMinRate: 16 * 1024 });

export interface BaseAppOptions {
  auth: Authenticator;
  version: string;
  title: string;
  description: string;
  logger?: FastifyServerOptions['logger'];
  https?: { key: Buffer; cert: Buffer } | null;
  /** the control plane's node identities (join token, node credentials); agents have none */
  nodes?: NodeAuthenticator;
  timeouts?: Partial<HttpTimeouts>;
  /** the largest request body any route accepts (bounds Node's whole-request backstop timeout) */
  maxBodyBytes?: number;
}

const TRACE_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** request bodies of every route but uploads are JSON documents of at most this size */
const BODY_LIMIT = 1 << 20;

/**
 * What every unikctl HTTP server shares (control plane and node agent): trace ids on every response (CP-3),
 * bearer auth with per-route scopes (CP-4), `{code, message, trace_id}` errors, OpenAPI generation.
 */
export async function createBaseApp(o: BaseAppOptions): Promise<FastifyInstance> {
  const t: HttpTimeouts = { ...DEFAULT_TIMEOUTS, ...o.timeouts };
  for (const [k, v] of Object.entries(t)) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new UserError('E_INVALID_ARGUMENT', `HTTP timeout ${k} must be a positive integer (got ${v})`);
  }
  // Node's own clocks: headersTimeout cuts a client that trickles its headers; requestTimeout is a backstop for
  // the whole request, sized so a client keeping the minimum rate up to the largest body always fits (the
  // per-request body guard below is the real bound). Node checks both every connectionsCheckingInterval (30 s by
  // default, far coarser than the bound), hence the explicit interval.
  const maxBody = Math.max(o.maxBodyBytes ?? 0, BODY_LIMIT);
  const nodeServer = {
    headersTimeout: t.headersMs,
    requestTimeout: t.headersMs + t.bodyIdleMs + Math.ceil((maxBody / t.bodyMinRate) * 1000),
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(t.headersMs / 4))),
  };
  const app = Fastify({
    logger: o.logger ?? false,
    ...(o.https ? { https: { ...o.https, ...nodeServer } } : { http: nodeServer }),
    requestTimeout: nodeServer.requestTimeout, // fastify copies its own option onto the server, overriding http.requestTimeout
    clientErrorHandler: clientError,
    genReqId: (req) => {
      const h = req.headers['x-trace-id'];
      return typeof h === 'string' && TRACE_RE.test(h) ? h : randomBytes(8).toString('hex');
    },
    bodyLimit: BODY_LIMIT,
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

  const sendError = (reply: FastifyReply, status: number, code: string, message: string, hint?: string, details?: Record<string, unknown>): void => {
    void reply.code(status).type('application/json').send({ code, message, trace_id: reply.request.id, ...(hint ? { hint } : {}), ...(details ? { details } : {}) });
  };

  app.addContentTypeParser(['application/gzip', 'application/x-gzip', 'application/x-tar', 'application/octet-stream'], (_req, payload, done) => done(null, payload));

  app.decorateRequest('nodeName', null);
  app.decorateRequest('principal', null);
  // A body is read through a guard that enforces the idle gap and the minimum rate (Node only bounds the whole
  // request, with one value for every route). Requests without a body are not guarded: nothing is awaited.
  app.addHook('preParsing', async (req, reply, payload) => {
    const te = req.headers['transfer-encoding'];
    const len = Number(req.headers['content-length'] ?? 0);
    if (!(len > 0 || (typeof te === 'string' && te !== ''))) return payload;
    return guardBody(req.raw, reply.raw, payload, t);
  });

  // An answer given before the body was read to its end (401/403, 408, 413 …) closes the connection: otherwise
  // Node keeps draining whatever the client still sends, so a rejected client could trickle for hours.
  app.addHook('onSend', async (req, reply) => {
    if (!req.raw.complete) void reply.header('connection', 'close');
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-trace-id', req.id);
    const config = req.routeOptions.config;
    if (config?.public) return;
    const header = req.headers.authorization;
    if (config?.join || config?.node) {
      if (!o.nodes) throw new Error(`route ${req.routeOptions.url ?? ''} is for nodes, but this server has no node identities`);
      if (config.join) return o.nodes.checkJoinToken(header);
      if (!config.scope || NodeAuthenticator.isNodeCredential(header)) {
        req.nodeName = await o.nodes.authenticateNode(header);
        return;
      }
    }
    const principal = await o.auth.authenticate(header);
    if (config?.scope) o.auth.authorize(principal, config.scope);
    req.principal = principal;
  });

  app.setErrorHandler((err, req, reply) => {
    if (isUserError(err)) {
      // the status comes from the error table (src/errors.ts), never from a per-server list
      const status = errorSpec(err.code).status;
      if (status >= 500) req.log.error({ err }, 'request failed');
      const challenge = (err as { challenge?: string }).challenge;
      if (challenge) void reply.header('www-authenticate', challenge);
      // details are the error's typed fields (E_QUOTA_EXCEEDED: tenant, resource, requested, used, limit): clients read them, never parse the message
      return sendError(reply, status, err.code, err.message, err.hint, err.details);
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

/**
 * Node's clientError (headers not complete in time, malformed request line …): the same `{code, message,
 * trace_id}` shape as every other error, then the socket is closed.
 */
function clientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const [status, text, code, message] = timeout
    ? [408, 'Request Timeout', 'E_REQUEST_TIMEOUT', 'the request was not received in time (headers or body too slow)']
    : err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'E_VALIDATION', 'the request headers are too large']
      : [400, 'Bad Request', 'E_VALIDATION', 'malformed HTTP request'];
  const body = JSON.stringify({ code, message, trace_id: randomBytes(8).toString('hex') });
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${text}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy();
}

/**
 * Passes the body through while enforcing the idle gap and the minimum average rate; on a violation the stream
 * fails with E_REQUEST_TIMEOUT (the route's reader stops and cleans up, e.g. the upload's temp file) and the
 * socket is destroyed shortly after if the 408 could not close it.
 */
function guardBody(raw: NodeJS.ReadableStream & { complete?: boolean; socket?: Socket | null }, res: NodeJS.EventEmitter, payload: NodeJS.ReadableStream, t: HttpTimeouts): Readable {
  const start = Date.now();
  let last = start;
  let bytes = 0;
  let timer: NodeJS.Timeout | null = null;
  const guard = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
      bytes += chunk.length;
      last = Date.now();
      cb(null, chunk);
    },
    flush(cb: TransformCallback): void {
      stop();
      cb();
    },
    destroy(err: Error | null, cb: (e: Error | null) => void): void {
      stop();
      cb(err);
    },
  });
  const stop = (): void => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  const check = (): void => {
    const now = Date.now();
    const idleAt = last + t.bodyIdleMs;
    const rateAt = start + t.bodyIdleMs + (bytes / t.bodyMinRate) * 1000;
    if (now < Math.min(idleAt, rateAt)) {
      timer = setTimeout(check, Math.min(idleAt, rateAt) - now + 1);
      return;
    }
    const why = now >= idleAt ? `no body bytes for ${t.bodyIdleMs} ms` : `the body arrived slower than ${t.bodyMinRate} bytes/s`;
    guard.destroy(new UserError('E_REQUEST_TIMEOUT', `request body timed out: ${why} (${bytes} bytes in ${now - start} ms)`, {
      hint: 'send the body without pauses, or ask the operator to relax --body-idle-timeout-ms / --body-min-rate',
      details: { bytes, ms: now - start },
    }));
    const socket = raw.socket;
    setTimeout(() => socket?.destroy(), 1000).unref();
  };
  timer = setTimeout(check, t.bodyIdleMs + 1);
  // A route that answers without reading the body (e.g. a DELETE sent with one) has nothing left to guard: the
  // onSend hook closes such a connection. And a guard failing with no reader attached must not crash the server.
  res.once('close', stop);
  guard.on('error', () => {});
  payload.on('error', (e: Error) => guard.destroy(e));
  // the client went away mid-body: the reader sees an error rather than waiting for the guard's deadline
  raw.on('close', () => { if (raw.complete === false) guard.destroy(new Error('the client closed the connection before the body ended')); });
  payload.pipe(guard);
  return guard;
}
