/** JSON schemas of the API (validated by fastify, published as OpenAPI at /openapi.json). */
import { TENANT_NAME_RE } from '../store/types.js';
const str = { type: 'string' } as const;
const nstr = { type: 'string', nullable: true } as const;
const nnum = { type: 'number', nullable: true } as const;

export const errorSchema = {
  $id: 'Error',
  type: 'object',
  required: ['code', 'message', 'trace_id'],
  properties: { code: str, message: str, trace_id: str, hint: str, details: { type: 'object', additionalProperties: true } },
} as const;

const artifactId = { type: 'string', pattern: '^art_[0-9a-f]{16}$' } as const;
export const artifactIdParams = { type: 'object', required: ['id'], properties: { id: artifactId } } as const;
const NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';

const flag = { type: 'string', minLength: 1, maxLength: 256 } as const;
/** A service's settings as the deploy flags spell them (src/engine/client.ts ServiceFlags; parsed by the engine). */
export const serviceFlagsSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'service settings (docs/services.md), as the deploy flags spell them; any of them makes the deploy a service',
  properties: {
    replicas: flag, check: flag, restart: flag, strategy: flag, maxSurge: flag, maxUnavailable: flag, canary: flag, minHealthy: flag, healthyDeadline: flag,
    autoRevert: { type: 'boolean' },
  },
} as const;

export const deployBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['source'],
  properties: {
    source: {
      oneOf: [
        { type: 'object', additionalProperties: false, required: ['artifact', 'kind'], properties: { artifact: artifactId, kind: { type: 'string', enum: ['project', 'binary', 'package'] } } },
        { type: 'object', additionalProperties: false, required: ['package'], properties: { package: { type: 'string', minLength: 1, maxLength: 256 } } },
      ],
    },
    name: { type: 'string', pattern: NAME_PATTERN },
    nameHint: { type: 'string', minLength: 1, maxLength: 128 },
    ports: { type: 'array', maxItems: 64, items: { type: 'string', minLength: 1, maxLength: 64 } },
    env: { type: 'array', maxItems: 256, items: { type: 'string', minLength: 1, maxLength: 4096 } },
    memory: { type: 'string', minLength: 1, maxLength: 16 },
    cpus: { type: 'integer', minimum: 1, maximum: 16 },
    debug: { type: 'boolean' },
    rootfsArtifact: artifactId,
    labels: { type: 'array', maxItems: 64, items: { type: 'string', minLength: 1, maxLength: 256 } },
    idempotencyKey: { type: 'string', minLength: 1, maxLength: 200 },
    service: serviceFlagsSchema,
    supersede: { type: 'boolean', description: 'a deploy of a service during its rollout replaces that rollout instead of failing with E_ROLLOUT_IN_PROGRESS' },
  },
} as const;

export const deployResultSchema = {
  type: 'object',
  required: ['name', 'operationId', 'state', 'resolvedFrom', 'reused'],
  properties: {
    name: str, deploymentId: str, operationId: str, state: str, source: str, resolvedFrom: str,
    candidates: { type: 'array', items: str }, reused: { type: 'boolean' },
    error: { type: 'object', nullable: true, required: ['code', 'message'], properties: { code: str, message: str } },
    service: { type: 'boolean', description: 'the deploy creates or updates a service' },
  },
} as const;

export const destroyBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['names'],
  properties: {
    names: { type: 'array', minItems: 1, maxItems: 100, items: { type: 'string', pattern: NAME_PATTERN } },
    timeoutSeconds: { type: 'number', minimum: 0, maximum: 3600 },
    idempotencyKey: { type: 'string', minLength: 1, maxLength: 200 },
  },
} as const;

export const destroyResultSchema = {
  type: 'array',
  items: { type: 'object', required: ['name', 'operationId', 'state'], properties: { name: str, operationId: str, state: { type: 'string', enum: ['destroying', 'gone'] } } },
} as const;

const operationSchema = {
  type: 'object',
  required: ['id', 'kind', 'target', 'state', 'createdAt'],
  properties: {
    id: str, kind: str, target: str, state: str, idempotencyKey: nstr, requestHash: nstr,
    error: { type: 'object', nullable: true, properties: { code: str, message: str } },
    createdAt: { type: 'number' }, updatedAt: { type: 'number' }, endedAt: nnum,
  },
} as const;

const deploymentSchema = {
  type: 'object',
  required: ['name', 'state'],
  properties: {
    name: str, id: str, state: str, exitCode: { type: 'integer', nullable: true }, code: nstr, reason: nstr,
    ports: { type: 'array', items: str }, imageBytes: nnum, image: nstr, pack: nstr, mode: nstr, accel: nstr, bootMs: nnum,
    boot: { type: 'object', additionalProperties: { type: 'number' } }, uptimeMs: nnum, createdAt: str, startedAt: nstr, endedAt: nstr,
    metrics: { type: 'object', properties: { cpuSeconds: nnum, rssBytes: nnum, supervisorRssBytes: nnum } },
    listen: {
      type: 'object', nullable: true,
      properties: {
        health: { type: 'string', enum: ['checking', 'listening', 'localhost-only', 'not-listening', 'no-ports', 'unknown'] },
        ports: { type: 'array', items: { type: 'integer' } },
        listeners: { type: 'array', nullable: true, items: { type: 'object', properties: { address: str, port: { type: 'integer' } } } },
        warning: { type: 'object', nullable: true, properties: { code: str, message: str, fix: str } },
        since: { type: 'number' },
      },
    },
    node: str,
    signedBy: { ...nstr, description: 'key id (sha256 of the public key\'s SPKI DER) of the verified signature of the image; null: unsigned or not checked' },
    trust: {
      type: 'object', nullable: true, description: 'the trust-policy check at admission: its mode, and the failure a warn-mode policy let through',
      properties: { mode: { type: 'string', enum: ['enforce', 'warn', 'off'] }, warning: { type: 'object', nullable: true, properties: { code: str, message: str } } },
    },
  },
} as const;

const int = { type: 'integer' } as const;
const free = { type: 'object', additionalProperties: true } as const;
/** A service as status shows it (src/engine/client.ts ServiceView; docs/services.md). */
export const serviceViewSchema = {
  type: 'object',
  required: ['name', 'id', 'desired', 'destroying', 'current', 'versions', 'replicas'],
  properties: {
    name: str, id: str, desired: int, destroying: { type: 'boolean' }, current: { type: 'integer', nullable: true },
    ports: { type: 'array', items: str },
    policy: free,
    rollout: {
      type: 'object', nullable: true,
      properties: {
        from: { type: 'integer', nullable: true }, to: int, strategy: str, phase: str, startedAt: { type: 'number' }, updatedAt: { type: 'number' },
        operationId: str, code: nstr, reason: nstr,
      },
    },
    versions: {
      type: 'array',
      items: {
        type: 'object',
        properties: { version: int, state: str, code: nstr, reason: nstr, createdAt: str, image: nstr, healthy: int, running: int, total: int },
      },
    },
    replicas: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: str, version: int, state: str, health: str, healthDetail: nstr, pid: { type: 'integer', nullable: true }, exitCode: { type: 'integer', nullable: true },
          code: nstr, reason: nstr, node: str,
        },
      },
    },
    shards: {
      type: 'array', description: 'cluster mode: the service spread over nodes, one shard per node in rollout order',
      items: { type: 'object', properties: { node: str, desired: int, current: { type: 'integer', nullable: true }, rollout: nstr, reported: { type: 'boolean', description: 'the node reported its shard (false: not asked yet, or not answering)' } } },
    },
    restarts: int,
    crashLoop: { type: 'object', nullable: true, properties: { since: str, reason: str } },
    controller: { type: 'object', nullable: true, properties: { pid: int } },
    traffic: {
      type: 'object', description: 'traffic through the front per version (key: the version number), cumulative',
      additionalProperties: {
        type: 'object',
        properties: {
          connections: { type: 'number' }, requests: { type: 'number' }, bytesIn: { type: 'number' }, bytesOut: { type: 'number' }, errors: { type: 'number' },
          latency: { type: 'object', properties: { buckets: { type: 'array', items: { type: 'number' } }, count: { type: 'number' }, sumMs: { type: 'number' } } },
        },
      },
    },
  },
} as const;

export const nodeSchema = {
  type: 'object',
  required: ['name', 'status', 'cordoned'],
  properties: {
    name: str, address: str, status: { type: 'string', enum: ['ready', 'down'] }, cordoned: { type: 'boolean' },
    labels: { type: 'object', additionalProperties: str },
    capacity: { type: 'object', additionalProperties: { type: 'number' } },
    lastHeartbeatAt: { type: 'number' },
  },
} as const;

const count = { type: 'integer', minimum: 0 } as const;
const range = { type: 'object', properties: { default: count, max: count } } as const;
/** A tenant's limits and usage: quota fields absent = unlimited. */
export const quotaSchema = {
  type: 'object',
  required: ['tenant', 'quota', 'vm', 'ports', 'used'],
  properties: {
    tenant: str,
    quota: { type: 'object', properties: { vms: count, vcpus: count, memoryMiB: count, apps: count, artifactBytes: count } },
    vm: { type: 'object', properties: { memoryMiB: range, cpus: range } },
    ports: { anyOf: [{ type: 'null' }, { type: 'object', required: ['from', 'to'], properties: { from: count, to: count } }] },
    used: { type: 'object', required: ['vms', 'vcpus', 'memoryMiB', 'apps', 'artifactBytes'], properties: { vms: count, vcpus: count, memoryMiB: count, apps: count, artifactBytes: count } },
  },
} as const;

export const statusSchema = {
  type: 'object',
  required: ['deployments', 'operations'],
  properties: {
    deployments: { type: 'array', items: deploymentSchema },
    operations: { type: 'array', items: operationSchema },
    nodes: { type: 'array', items: nodeSchema },
    /** the services (docs/services.md); their replicas are in `deployments` */
    services: { type: 'array', items: serviceViewSchema },
    /** present when the request acts for a tenant */
    quota: quotaSchema,
  },
} as const;

export const artifactResultSchema = {
  type: 'object',
  required: ['id', 'sha256', 'bytes'],
  properties: { id: str, sha256: str, bytes: { type: 'integer' } },
} as const;

export const nodeRegisterSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: NAME_PATTERN },
    address: { type: 'string', maxLength: 256 },
    labels: { type: 'object', maxProperties: 64, additionalProperties: { type: 'string', maxLength: 256 } },
    capacity: { type: 'object', maxProperties: 32, additionalProperties: { type: 'number', minimum: 0 } },
    /** heartbeats: the agent's local deployments, so the control plane can name copies that moved away */
    deployments: {
      type: 'array', maxItems: 10_000,
      items: { type: 'object', additionalProperties: false, required: ['name', 'ageMs'], properties: { name: { type: 'string', pattern: NAME_PATTERN }, ageMs: { type: 'number', minimum: 0 } } },
    },
  },
} as const;

/** A join: the node's name, address, labels and capacity (its deployments come with heartbeats). */
export const nodeJoinSchema = {
  ...nodeRegisterSchema,
  properties: (({ deployments: _d, ...rest }) => rest)(nodeRegisterSchema.properties),
} as const;

/** A join's answer: the node, and its two secrets (shown once; the control plane keeps the credential's hash). */
export const joinResultSchema = {
  type: 'object',
  required: ['node', 'credential', 'agentKey'],
  properties: {
    node: nodeSchema,
    credential: { type: 'string', description: 'the node credential: the agent authenticates to the control plane with it' },
    agentKey: { type: 'string', description: 'the control plane authenticates to this agent with it' },
  },
} as const;

export const nodeRemovedSchema = {
  type: 'object',
  required: ['node', 'rescheduled'],
  properties: { node: str, rescheduled: { type: 'integer', description: 'workloads of the node queued to move elsewhere' } },
} as const;

/** What the control plane asks an agent to run (validated by the agent: a bad body is a 400, never a 500). */
export const agentDeployBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'source', 'ports', 'env', 'debug', 'labels', 'idempotencyKey'],
  properties: {
    name: { type: 'string', pattern: NAME_PATTERN },
    source: {
      type: 'object', additionalProperties: false, required: ['artifact', 'kind'],
      properties: { artifact: artifactId, kind: { type: 'string', enum: ['project', 'binary', 'package'] } },
    },
    ports: deployBodySchema.properties.ports,
    env: deployBodySchema.properties.env,
    memory: deployBodySchema.properties.memory,
    cpus: deployBodySchema.properties.cpus,
    debug: { type: 'boolean' },
    labels: deployBodySchema.properties.labels,
    idempotencyKey: { type: 'string', minLength: 1, maxLength: 400 },
    expectManifestSha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    tenant: {
      type: 'object', additionalProperties: false, required: ['name'],
      properties: { name: { type: 'string', pattern: TENANT_NAME_RE.source }, cpus: { type: 'number', exclusiveMinimum: 0 }, memoryMiB: { type: 'integer', minimum: 16 } },
    },
    service: serviceFlagsSchema,
    supersede: { type: 'boolean' },
  },
} as const;

/** `GET /v1/agent/status?app=NAME`: one app (a deployment, or a service with its replicas). */
export const agentStatusQuerySchema = {
  type: 'object', additionalProperties: false, properties: { app: { type: 'string', pattern: NAME_PATTERN } },
} as const;

export const agentDestroyBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['names', 'graceMs'],
  properties: {
    names: destroyBodySchema.properties.names,
    graceMs: { type: 'integer', minimum: 0, maximum: 3_600_000 },
  },
} as const;

/** A heartbeat's answer: the node, and the local copies its agent should destroy (moved elsewhere while it was down). */
export const heartbeatResultSchema = {
  ...nodeSchema,
  properties: { ...nodeSchema.properties, orphans: { type: 'array', items: str } },
} as const;

/** `GET …/logs/{name}` options, for the control plane and the agents alike. */
export const logsQuerySchema = {
  type: 'object', additionalProperties: false,
  properties: {
    follow: { type: 'string', enum: ['0', '1', 'true', 'false'] }, tail: { type: 'string', pattern: '^[0-9]{1,9}$' },
    since: { type: 'string', maxLength: 64, pattern: '^(([0-9]+(\\.[0-9]+)?[smhd])+|[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+)?(Z|[+-][0-9]{2}:?[0-9]{2})?)$' },
  },
} as const;

export const nodeNameParams = {
  type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: NAME_PATTERN } },
} as const;

export const errorResponses = {
  400: { $ref: 'Error#' }, 401: { $ref: 'Error#' }, 403: { $ref: 'Error#' }, 404: { $ref: 'Error#' }, 409: { $ref: 'Error#' },
} as const;

const burn = { type: 'object', required: ['1h', '5m'], properties: { '1h': nnum, '5m': nnum } } as const;
const codeCounts = { type: 'array', items: { type: 'object', required: ['code', 'count'], properties: { code: str, count: count } } } as const;
/** GET /v1/slo: the figures of docs/slo.md for one window. */
export const sloQuerySchema = {
  type: 'object', additionalProperties: false,
  properties: {
    window: { type: 'string', enum: ['1h', '24h', '7d', '30d'], default: '1h' },
    app: { type: 'string', pattern: NAME_PATTERN },
    tenant: { type: 'string', pattern: '^[a-z][a-z0-9]{0,15}$' },
  },
} as const;
export const sloSchema = {
  type: 'object',
  required: ['window', 'from', 'to', 'filter', 'boot', 'deploys', 'cost', 'requests', 'apps', 'nodes'],
  properties: {
    window: str, from: { type: 'number' }, to: { type: 'number' },
    filter: { type: 'object', required: ['tenant', 'app'], properties: { tenant: nstr, app: nstr } },
    boot: {
      type: 'object', required: ['count', 'p50Ms', 'p95Ms', 'objective', 'good', 'budgetRemaining', 'burnRate', 'series'],
      properties: {
        count, p50Ms: nnum, p95Ms: nnum, good: count, budgetRemaining: nnum, burnRate: burn,
        objective: { type: 'object', required: ['p95Ms', 'goodFraction'], properties: { p95Ms: { type: 'number' }, goodFraction: { type: 'number' } } },
        series: { type: 'array', items: { type: 'object', required: ['t', 'count', 'p50Ms', 'p95Ms'], properties: { t: { type: 'number' }, count, p50Ms: nnum, p95Ms: nnum } } },
      },
    },
    deploys: {
      type: 'object', required: ['succeeded', 'platformFailures', 'userErrors', 'successRate', 'objective', 'budgetRemaining', 'burnRate', 'platformByCode', 'userByCode', 'series'],
      properties: {
        succeeded: count, platformFailures: count, userErrors: count, successRate: nnum, objective: { type: 'number' }, budgetRemaining: nnum, burnRate: burn,
        platformByCode: codeCounts, userByCode: codeCounts,
        series: {
          type: 'array',
          items: { type: 'object', required: ['t', 'succeeded', 'platformFailures', 'userErrors', 'successRate'], properties: { t: { type: 'number' }, succeeded: count, platformFailures: count, userErrors: count, successRate: nnum } },
        },
      },
    },
    cost: {
      type: 'object', required: ['currency', 'prices', 'total', 'vmSeconds', 'requests', 'perRequest', 'perApp'],
      properties: {
        currency: str, total: { type: 'number' }, vmSeconds: { type: 'number' }, requests: nnum, perRequest: nnum,
        prices: { type: 'object', required: ['vcpuSecond', 'gibSecond', 'request', 'currency'], properties: { vcpuSecond: { type: 'number' }, gibSecond: { type: 'number' }, request: { type: 'number' }, currency: str } },
        perApp: { type: 'array', items: { type: 'object', required: ['tenant', 'app', 'vmSeconds', 'cost'], properties: { tenant: str, app: str, vmSeconds: { type: 'number' }, cost: { type: 'number' } } } },
      },
    },
    requests: {
      type: 'object', required: ['total', 'perSecond', 'note', 'series'],
      properties: {
        total: nnum, perSecond: nnum, note: nstr,
        series: { type: 'array', items: { type: 'object', required: ['t', 'requests', 'perSecond'], properties: { t: { type: 'number' }, requests: nnum, perSecond: nnum } } },
      },
    },
    apps: {
      type: 'array',
      items: { type: 'object', required: ['tenant', 'name', 'state', 'node', 'bootMs'], properties: { tenant: str, name: str, state: str, node: str, accel: nstr, bootMs: nnum } },
    },
    nodes: { type: 'array', items: { type: 'object', required: ['name', 'status'], properties: { name: str, status: str, cordoned: { type: 'boolean' } } } },
  },
} as const;
