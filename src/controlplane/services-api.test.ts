import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Header } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Client, DeployRequest, DeployResult, ServiceView, StatusResult } from '../engine/client.js';
import { errorSpec } from '../errors.js';
import { homeLayout } from '../paths.js';
import { ArtifactStore } from '../store/artifacts.js';
import type { Operation } from '../store/types.js';
import type { NewOperation, OperationJournal, QueuedOperation } from './operation-journal.js';
import type { Queue } from './queue.js';
import { EngineRunner, type DeployOperationRequest } from './runner.js';
import { ControlPlane, tenantQuotaCheck } from './service.js';
import { checkQuota, emptyUsage, scopeFor, TENANT_DEFAULT_MEMORY_MIB, TenantRegistry, TenantScope, type QuotaCheck, type TenantSpec } from './tenants.js';
import { Metrics } from './metrics.js';
import { RequestFeed } from './request-feed.js';
import { SloSamples } from './slo-samples.js';
import { computeSlo, DEFAULT_OBJECTIVES } from '../engine/slo.js';

/** A one-file tar archive holding an ELF binary (the artifact of `deploy ./binary`). */
function tarOfBinary(): Buffer {
  const body = readFileSync('/bin/true');
  const h = new Header({ path: 'true', mode: 0o755, uid: 0, gid: 0, mtime: new Date(0), type: 'File', size: body.length });
  h.encode();
  const pad = (512 - (body.length % 512)) % 512;
  return Buffer.concat([h.block as Buffer, body, Buffer.alloc(pad), Buffer.alloc(1024)]);
}

const ACTIVE = { from: 1, to: 2, strategy: 'rolling', phase: 'progressing', startedAt: 1, updatedAt: 1, operationId: 'op_node2', code: null, reason: null } as const;

function serviceView(over: Partial<ServiceView> = {}): ServiceView {
  return {
    name: 'web', id: 'svc_1', desired: 2, destroying: false, current: 1, ports: ['8080:8080'],
    policy: { replicas: 2, check: null, restart: 'on-failure', rollout: { strategy: 'rolling', maxSurge: 1, maxUnavailable: 0, canary: 1, minHealthyMs: 1000, healthyDeadlineMs: 300_000, autoRevert: true } },
    rollout: { ...ACTIVE, phase: 'succeeded', from: null, to: 1, operationId: 'op_node1' },
    versions: [{ version: 1, state: 'active', code: null, reason: null, createdAt: new Date(0).toISOString(), image: 'x', healthy: 2, running: 2, total: 2 }],
    replicas: [
      { name: 'web.1', version: 1, state: 'running', health: 'healthy', healthDetail: null, pid: 10, exitCode: null, code: null, reason: null },
      { name: 'web.2', version: 1, state: 'running', health: 'healthy', healthDetail: null, pid: 11, exitCode: null, code: null, reason: null },
    ],
    restarts: 0, crashLoop: null, controller: { pid: 9 },
    traffic: { 1: { connections: 3, requests: 7, bytesIn: 100, bytesOut: 200, errors: 1, latency: { buckets: [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], count: 4, sumMs: 30 } } },
    ...over,
  };
}

const replicaView = (name: string): StatusResult['deployments'][number] => ({
  name, id: `dep_${name}`, state: 'running', exitCode: null, code: null, reason: null, ports: [], imageBytes: null, image: null, pack: null, mode: null, accel: 'tcg',
  bootMs: null, boot: {}, uptimeMs: null, createdAt: new Date(0).toISOString(), startedAt: null, endedAt: null,
  metrics: { cpuSeconds: null, rssBytes: null, supervisorRssBytes: null }, signedBy: null, trust: null,
});

const acme: TenantSpec = { name: 'acme', quota: {}, vm: { memoryMiB: {}, cpus: {} }, ports: null, selector: {} };

describe('services through the control plane (admission, status)', () => {
  let dir: string;
  let artifacts: ArtifactStore;
  let enqueued: NewOperation[];
  let services: ServiceView[];
  let pending: boolean;
  let cp: ControlPlane;
  let artifact: string;
  let acmeArtifact: string;
  let journalOps: QueuedOperation[];
  let quotas: QuotaCheck[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'unik-cp-svc-'));
    artifacts = new ArtifactStore({ dir: join(dir, 'artifacts'), maxUploadBytes: 1 << 22, maxExtractedBytes: 1 << 22, maxEntries: 10 });
    artifact = (await artifacts.put(Readable.from([tarOfBinary()]))).id;
    acmeArtifact = (await artifacts.put(Readable.from([tarOfBinary()]), { tenant: 'acme' })).id;
    enqueued = [];
    services = [];
    pending = false;
    journalOps = [];
    quotas = [];
    const journal = {
      byKey: async () => null,
      hasPendingDeploy: async () => pending,
      reserved: async () => false,
      pendingDeploys: async () => [],
      recent: async () => journalOps,
      enqueue: async (j: NewOperation, q?: QuotaCheck) => {
        enqueued.push(j);
        if (q) quotas.push(q);
        return { op: { ...j, state: 'queued', attempts: 0, leaseOwner: null, result: null, error: null, updatedAt: j.createdAt, endedAt: null, nextRunAt: 0 }, created: true };
      },
    } as unknown as OperationJournal;
    const node = {
      has: async (n: string) => n === 'plain' || services.some((v) => v.name === n),
      // a service's merged logs as the node gives them: each line's replica, and the controller's lines naming replicas
      logs: async function* (req: { name: string }) {
        yield { t: 1, s: 'app', m: 'hello', src: `${req.name}.1` };
        yield { t: 2, s: 'init', m: `replica ${req.name}.2 exited with code 1; replaced`, src: req.name };
      },
      status: async (n?: string): Promise<StatusResult> => {
        const svcs = services.filter((v) => n === undefined || v.name === n);
        const deployments = [...(n === undefined || n === 'plain' ? [replicaView('plain')] : []), ...svcs.flatMap((v) => v.replicas.map((r) => replicaView(r.name)))];
        return { deployments, operations: [], services: svcs };
      },
    } as unknown as Client;
    cp = new ControlPlane({ journal, queue: { notify() {} } as unknown as Queue, node, fleet: null, host: null, nodeLayout: homeLayout({ UNIKCTL_HOME: join(dir, 'home') }), artifacts, maxAttempts: 3 });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const code = async (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: { code: string }) => e.code);
  const body = (extra: Record<string, unknown> = {}): Parameters<ControlPlane['deploy']>[0] => ({ source: { artifact, kind: 'binary' }, ports: ['18080:8080'], ...extra });
  /** a deploy of tenant acme: its own upload (another tenant's artifact is unknown to it) */
  const mine = (extra: Record<string, unknown> = {}): Parameters<ControlPlane['deploy']>[0] => ({ ...body(extra), source: { artifact: acmeArtifact, kind: 'binary' } });

  it('a deploy with service settings is journaled with them and answers as a service', async () => {
    const r = await cp.deploy(body({ name: 'api', service: { replicas: '2', check: 'http:8080/healthz' } }), 't1', undefined, TenantScope.GLOBAL);
    expect(r.service).toBe(true);
    expect(enqueued).toHaveLength(1);
    expect((enqueued[0]?.request as DeployOperationRequest).service).toEqual({ replicas: '2', check: 'http:8080/healthz' });
  });

  it('bad service settings are refused at admission (nothing journaled)', async () => {
    expect(await code(cp.deploy(body({ name: 'api', service: { replicas: '0' } }), 't', undefined, TenantScope.GLOBAL))).toBe('E_INVALID_REPLICAS');
    expect(await code(cp.deploy(body({ name: 'api', service: { check: 'http:9999/' } }), 't', undefined, TenantScope.GLOBAL))).toBe('E_INVALID_CHECK');
    expect(enqueued).toEqual([]);
  });

  it("a tenant's service is journaled with the tenant's isolation and reserves its rollout's worst case of VMs", async () => {
    const tenant = new TenantScope({ ...acme, quota: { vcpus: 8, memoryMiB: 4096, vms: 10 } });
    const r = await cp.deploy(mine({ name: 'api', memory: '128M', cpus: 2, service: { replicas: '3', maxSurge: '2' } }), 't', undefined, tenant);
    expect(r).toMatchObject({ name: 'api', service: true });
    expect(enqueued[0]?.target).toBe('acme--api');
    expect((enqueued[0]?.request as DeployOperationRequest).tenant).toEqual({ name: 'acme', cpus: 8, memoryMiB: 4096 });
    // rolling: 3 replicas + 2 surge = 5 VMs of 2 vCPUs / 128 MiB
    expect(quotas[0]).toEqual({ tenant: 'acme', name: 'acme--api', quota: { vcpus: 8, memoryMiB: 4096, vms: 10 }, reservation: { vms: 5, vcpus: 10, memoryMiB: 640 } });
    // canary: replicas + the canary; immediate: every replica twice (the old ones drain while the new ones boot)
    await cp.deploy(mine({ name: 'can', service: { replicas: '4', strategy: 'canary', canary: '3' } }), 't', undefined, tenant);
    expect(quotas[1]?.reservation).toEqual({ vms: 7, vcpus: 7, memoryMiB: 7 * TENANT_DEFAULT_MEMORY_MIB });
    await cp.deploy(mine({ name: 'imm', service: { replicas: '3', strategy: 'immediate' } }), 't', undefined, tenant);
    expect(quotas[2]?.reservation).toEqual({ vms: 6, vcpus: 6, memoryMiB: 6 * TENANT_DEFAULT_MEMORY_MIB });
    // a plain deployment of a tenant: one VM, as before (no vms field: old journals read it as 1)
    await cp.deploy(mine({ name: 'one' }), 't', undefined, tenant);
    expect(quotas[3]?.reservation).toEqual({ vcpus: 1, memoryMiB: TENANT_DEFAULT_MEMORY_MIB });
    expect(quotas.map((q) => q.replace ?? false)).toEqual([false, false, false, false]);
  });

  it("the next deploy of a tenant's service (a scale, a version) replaces its reservation; without settings it keeps the service's policy", async () => {
    const tenant = new TenantScope(acme);
    services = [serviceView({ name: 'acme--web', replicas: [] })];
    await cp.deploy(mine({ name: 'web', service: { replicas: '5' } }), 't', undefined, tenant);
    expect(quotas[0]).toMatchObject({ name: 'acme--web', replace: true, reservation: { vms: 6 } });
    await cp.deploy(mine({ name: 'web', env: ['VERSION=v2'] }), 't', undefined, tenant);
    // no settings: the service's own policy (2 replicas, max-surge 1)
    expect(quotas[1]).toMatchObject({ name: 'acme--web', replace: true, reservation: { vms: 3, vcpus: 3 } });
    expect((enqueued[1]?.request as DeployOperationRequest).service).toEqual({});
    // a service being destroyed takes no deploy (its destroy would free the reservation this one replaced)
    services = [serviceView({ name: 'acme--web', replicas: [], destroying: true })];
    expect(await code(cp.deploy(mine({ name: 'web', service: { replicas: '2' } }), 't', undefined, tenant))).toBe('E_NAME_TAKEN');
    expect(enqueued).toHaveLength(2);
  });

  it('tenantQuotaCheck: the worst case × per-VM resources, the first resource over names itself with {tenant, resource, requested, used, limit}', () => {
    const policy = (strategy: 'rolling' | 'canary' | 'immediate', replicas: number, maxSurge = 1, canary = 1): ServiceView['policy'] => ({ ...serviceView().policy, replicas, rollout: { ...serviceView().policy.rollout, strategy, maxSurge, canary } });
    const t: TenantSpec = { ...acme, quota: { vms: 4, vcpus: 8, memoryMiB: 1024 } };
    const q = (p: ServiceView['policy'] | null): QuotaCheck => tenantQuotaCheck(t, 'acme--web', { cpus: 2, memoryMiB: 256 }, p, false);
    expect(q(policy('rolling', 3)).reservation).toEqual({ vms: 4, vcpus: 8, memoryMiB: 1024 });
    expect(() => checkQuota(q(policy('rolling', 3)), emptyUsage())).not.toThrow(); // exactly at every limit
    const over = (c: QuotaCheck, used = emptyUsage()): unknown => { try { checkQuota(c, used); return null; } catch (e) { return (e as { details: unknown }).details; } };
    // 4 replicas + 1 surge: 5 VMs; the surge one is what takes it over
    expect(over(q(policy('rolling', 4)))).toEqual({ tenant: 'acme', resource: 'vms', requested: 5, used: 0, limit: 4 });
    // max-surge 0 still reserves 1 (a revert surges by one, an unhealthy replica's replacement boots while it drains)
    expect(q(policy('rolling', 3, 0)).reservation.vms).toBe(4);
    expect(q(policy('immediate', 2)).reservation.vms).toBe(4);
    expect(over(q(policy('immediate', 3)))).toEqual({ tenant: 'acme', resource: 'vms', requested: 6, used: 0, limit: 4 });
    expect(q(policy('canary', 2, 1, 2)).reservation.vms).toBe(4);
    // with other deployments of the tenant: the used part counts
    expect(over(q(policy('rolling', 1)), { vms: 3, apps: 3, vcpus: 3, memoryMiB: 256 })).toEqual({ tenant: 'acme', resource: 'vms', requested: 2, used: 3, limit: 4 });
    expect(over(q(policy('rolling', 1)), { vms: 0, apps: 0, vcpus: 6, memoryMiB: 0 })).toEqual({ tenant: 'acme', resource: 'vcpus', requested: 4, used: 6, limit: 8 });
    expect(over(q(policy('rolling', 1)), { vms: 0, apps: 0, vcpus: 0, memoryMiB: 800 })).toEqual({ tenant: 'acme', resource: 'memory', requested: 512, used: 800, limit: 1024 });
  });

  it('a deploy to an existing service is its next version; during a rollout only with supersede', async () => {
    services = [serviceView()];
    const r = await cp.deploy(body({ name: 'web', env: ['VERSION=v2'] }), 't', undefined, TenantScope.GLOBAL);
    expect(r.service).toBe(true);
    expect((enqueued[0]?.request as DeployOperationRequest).service).toEqual({}); // a service's deploy, settings kept
    services = [serviceView({ rollout: ACTIVE })];
    expect(await code(cp.deploy(body({ name: 'web', env: ['VERSION=v3'] }), 't', undefined, TenantScope.GLOBAL))).toBe('E_ROLLOUT_IN_PROGRESS');
    services = [serviceView()];
    pending = true; // the previous deploy is still queued or running
    expect(await code(cp.deploy(body({ name: 'web', env: ['VERSION=v3'] }), 't', undefined, TenantScope.GLOBAL))).toBe('E_ROLLOUT_IN_PROGRESS');
    const s = await cp.deploy(body({ name: 'web', env: ['VERSION=v3'], supersede: true }), 't', undefined, TenantScope.GLOBAL);
    expect(s.service).toBe(true);
    expect((enqueued.at(-1)?.request as DeployOperationRequest).supersede).toBe(true);
    // a plain deployment's name stays taken, settings or not
    expect(await code(cp.deploy(body({ name: 'plain', service: { replicas: '2' } }), 't', undefined, TenantScope.GLOBAL))).toBe('E_NAME_TAKEN');
  });

  it('status of a service: its view, its replicas, and the rollout named by the control plane operation that followed it', async () => {
    services = [serviceView()];
    journalOps = [{ id: 'op_cp1', kind: 'deploy', target: 'web', state: 'succeeded', result: { nodeOperationId: 'op_node1' } } as unknown as QueuedOperation];
    const s = await cp.status('web', TenantScope.GLOBAL);
    expect(s.services?.map((v) => v.name)).toEqual(['web']);
    expect(s.services?.[0]?.rollout?.operationId).toBe('op_cp1');
    expect(s.deployments.map((d) => d.name).sort()).toEqual(['web.1', 'web.2']);
    const all = await cp.status(undefined, TenantScope.GLOBAL);
    expect(all.deployments.map((d) => d.name).sort()).toEqual(['plain', 'web.1', 'web.2']);
    // a tenant sees no one else's services
    expect((await cp.status(undefined, new TenantScope(acme))).services).toEqual([]);
  });

  it("ATTACK: tenant beta against acme's service — status, logs, destroy, a deploy of the same name, the tenant header — answers like a name never used", async () => {
    const beta = new TenantScope({ ...acme, name: 'beta' });
    const a = new TenantScope(acme);
    const reason = 'replica acme--web.2 failed its health check';
    services = [serviceView({
      name: 'acme--web',
      replicas: serviceView().replicas.map((r) => ({ ...r, name: `acme--${r.name}`, reason })),
      rollout: { ...ACTIVE, phase: 'succeeded', from: null, to: 1, operationId: 'op_node1', reason },
    })];
    // acme sees its service under its own names, the prefix gone from replicas, reasons and log sources
    const mineStatus = await cp.status('web', a);
    expect(mineStatus.services?.map((v) => [v.name, v.replicas.map((r) => r.name), v.replicas[0]?.reason, v.rollout?.reason])).toEqual([['web', ['web.1', 'web.2'], 'replica web.2 failed its health check', 'replica web.2 failed its health check']]);
    expect(mineStatus.deployments.map((d) => d.name).sort()).toEqual(['web.1', 'web.2']);
    // a failed operation's error as the node wrote it (naming a replica) reads with acme's names
    journalOps = [{ id: 'op_1', kind: 'deploy', target: 'acme--web', state: 'failed', idempotencyKey: null, requestHash: 'h', request: {}, attempts: 1, maxAttempts: 3, nextRunAt: 0, leaseOwner: null, result: null, error: { code: 'E_CHECK_FAILED', message: reason }, traceId: 't', createdAt: 1, updatedAt: 1, endedAt: 1 }];
    expect((await cp.status('web', a)).operations.map((o) => [o.target, o.error?.message])).toEqual([['web', 'replica web.2 failed its health check']]);
    journalOps = [];
    const lines = [];
    for await (const e of cp.logs({ name: 'web', follow: false, signal: new AbortController().signal }, a)) lines.push(e);
    expect(lines).toEqual([{ t: 1, s: 'app', m: 'hello', src: 'web.1' }, { t: 2, s: 'init', m: 'replica web.2 exited with code 1; replaced', src: 'web' }]);

    const refusal = async (p: Promise<unknown>): Promise<unknown> => p.then(() => 'ok', (e: { code: string; message: string }) => [e.code, e.message]);
    const asNever = (name: string): [string, string] => ['E_UNKNOWN_APP', `no deployment named "${name}"`];
    expect(await refusal(cp.status('web', beta))).toEqual(asNever('web'));
    expect(await refusal(cp.status('never', beta))).toEqual(asNever('never'));
    const everything = await cp.status(undefined, beta);
    expect([everything.services, everything.deployments]).toEqual([[], []]);
    expect(await refusal((async () => { for await (const _ of cp.logs({ name: 'web', follow: false, signal: new AbortController().signal }, beta)) { /* none */ } })())).toEqual(asNever('web'));
    expect(await refusal(cp.destroy({ names: ['web'] }, 't', beta))).toEqual(asNever('web'));
    expect(enqueued).toEqual([]);
    // beta's "web" is beta's own: a new service of its own, reserving for beta, never replacing acme's reservation
    await cp.deploy({ ...body({ name: 'web', service: { replicas: '2' } }), source: { artifact: (await artifacts.put(Readable.from([tarOfBinary()]), { tenant: 'beta' })).id, kind: 'binary' } }, 't', undefined, beta);
    expect(enqueued.map((j) => j.target)).toEqual(['beta--web']);
    expect(quotas.map((q) => [q.tenant, q.name, q.replace ?? false])).toEqual([['beta', 'beta--web', false]]);
    // acme's artifact is as unknown to beta as one never uploaded
    expect(await code(cp.deploy(mine({ name: 'web2' }), 't', undefined, beta))).toBe('E_UNKNOWN_ARTIFACT');
    // beta's credential cannot pick acme's scope with the header only an admin may use
    expect(() => scopeFor({ subject: 'beta-ci', scopes: ['deploy', 'read', 'logs', 'destroy'], via: 'token', tenant: 'beta' }, 'acme', TenantRegistry.fixed([acme, { ...acme, name: 'beta' }]))).toThrow(expect.objectContaining({ code: 'E_FORBIDDEN' }));
  });

  it('destroy accepts a service name', async () => {
    services = [serviceView()];
    const r = await cp.destroy({ names: ['web'] }, 't', TenantScope.GLOBAL);
    expect(r).toEqual([expect.objectContaining({ name: 'web', state: 'destroying' })]);
    expect(enqueued.at(-1)?.kind).toBe('destroy');
  });
});

describe('EngineRunner: a service deploy follows the node operation, one version per operation', () => {
  const op = (request: DeployOperationRequest, attempts = 1): QueuedOperation => ({
    id: 'op_cp', kind: 'deploy', target: 'web', state: 'running', idempotencyKey: null, requestHash: 'h', request, attempts, maxAttempts: 3, nextRunAt: 0,
    leaseOwner: 'me', result: null, error: null, traceId: 't', createdAt: 1, updatedAt: 1, endedAt: null,
  });
  const request: DeployOperationRequest = { target: '/x', ports: ['8080:8080'], env: [], debug: false, labels: [], resolvedFrom: 'x', service: { replicas: '2' } };

  function fakeNode(outcome: () => Operation['state'], error: Operation['error'] = null): { node: Client; deploys: DeployRequest[] } {
    const deploys: DeployRequest[] = [];
    const node = {
      deploy: async (req: DeployRequest): Promise<DeployResult> => {
        deploys.push(req);
        return { name: 'web', deploymentId: 'svc_1', operationId: 'op_node', state: 'pending', source: 'binary', resolvedFrom: 'x', candidates: [], reused: deploys.length > 1, service: true };
      },
      status: async (): Promise<StatusResult> => ({
        deployments: [], services: [serviceView()],
        operations: [{ id: 'op_node', kind: 'deploy', target: 'web', state: outcome(), idempotencyKey: 'op_cp', requestHash: null, error, createdAt: 1, updatedAt: 1, endedAt: null }],
      }),
      has: async () => true,
      waitFor: async () => null,
    } as unknown as Client;
    return { node, deploys };
  }
  const journal = { recent: async () => [] } as unknown as OperationJournal;

  it('passes the settings and the operation id as the node key (the same on every attempt), and ends when the node operation does', async () => {
    let n = 0;
    const { node, deploys } = fakeNode(() => (++n < 3 ? 'running' : 'succeeded'));
    const runner = new EngineRunner(node, journal);
    const r = (await runner.run(op(request))) as { nodeOperationId: string; service: boolean };
    expect(r).toMatchObject({ service: true, nodeOperationId: 'op_node' });
    expect(deploys[0]).toMatchObject({ name: 'web', idempotencyKey: 'op_cp', service: { replicas: '2' } });
    await runner.run(op(request, 2)); // a retried attempt: the same key, so the node answers with its first operation
    expect(deploys.map((d) => d.idempotencyKey)).toEqual(['op_cp', 'op_cp']);
  }, 10_000);

  it("a tenant's service deploy carries the tenant's isolation to the node (every replica VM runs with it)", async () => {
    const { node, deploys } = fakeNode(() => 'succeeded');
    await new EngineRunner(node, journal).run(op({ ...request, tenant: { name: 'acme', cpus: 2, memoryMiB: 1024 } }));
    expect(deploys[0]?.tenant).toEqual({ name: 'acme', cpus: 2, memoryMiB: 1024 });
  });

  it('a failed rollout fails the operation with its code (a user error: not retried)', async () => {
    const { node } = fakeNode(() => 'failed', { code: 'E_ROLLOUT_FAILED', message: 'v2 did not become healthy; reverted to v1' });
    const e = await new EngineRunner(node, journal).run(op(request)).then(() => null, (x: { code: string; message: string }) => x);
    expect(e?.code).toBe('E_ROLLOUT_FAILED');
    expect(e?.message).toContain('reverted');
    expect(errorSpec('E_ROLLOUT_FAILED').retryable).toBe(false);
  });
});

describe('services in /v1/metrics and in the SLO request figures', () => {
  const node = (svcs: () => ServiceView[]): Client => ({ status: async () => ({ deployments: [], operations: [], services: svcs() }) }) as unknown as Client;
  const journal = { counts: async () => ({}) } as unknown as OperationJournal;

  it('exports the fronts\' traffic per app and version, the latency histogram and the replica counts', async () => {
    const text = await new Metrics(journal, node(() => [serviceView()])).registry.metrics();
    expect(text).toContain('unikctld_front_requests_total{app="web",version="1",tenant=""} 7');
    expect(text).toContain('unikctld_front_connections_total{app="web",version="1",tenant=""} 3');
    expect(text).toContain('unikctld_front_errors_total{app="web",version="1",tenant=""} 1');
    expect(text).toContain('unikctld_front_bytes_total{app="web",version="1",tenant="",direction="out"} 200');
    expect(text).toContain('# TYPE unikctld_front_request_duration_seconds histogram');
    expect(text).toContain('unikctld_front_request_duration_seconds_bucket{app="web",version="1",tenant="",le="0.001"} 1');
    expect(text).toContain('unikctld_front_request_duration_seconds_bucket{app="web",version="1",tenant="",le="0.002"} 3');
    expect(text).toContain('unikctld_front_request_duration_seconds_bucket{app="web",version="1",tenant="",le="+Inf"} 4');
    expect(text).toContain('unikctld_front_request_duration_seconds_sum{app="web",version="1",tenant=""} 0.03');
    expect(text).toContain('unikctld_front_request_duration_seconds_count{app="web",version="1",tenant=""} 4');
    expect(text).toContain('unikctld_service_replicas{app="web",tenant="",state="desired"} 2');
    expect(text).toContain('unikctld_service_replicas{app="web",tenant="",state="healthy"} 2');
  });

  it('the request feed counts what each service served between ticks (baseline first, restarts from 0)', async () => {
    let requests = 7;
    let svcs: ServiceView[] = [];
    const view = (): ServiceView => serviceView({ traffic: { 1: { ...serviceView().traffic['1'], requests } as ServiceView['traffic'][string] } });
    const counted: Array<[string, string, number, number]> = [];
    let attached = false;
    const counter = { count: (t: string, a: string, n: number, at: number) => counted.push([t, a, n, at]), get attached() { return attached; }, attach: () => { attached = true; } };
    const feed = new RequestFeed(node(() => svcs), counter);
    expect(await feed.tick(1)).toBe(0);
    expect(attached).toBe(false); // no service yet: the figures keep saying they have no source
    svcs = [view()];
    expect(await feed.tick(2)).toBe(7); // a service that appeared since: all it served
    expect(attached).toBe(true);
    requests = 10;
    svcs = [view()];
    expect(await feed.tick(3)).toBe(3);
    requests = 2; // its front restarted
    svcs = [view()];
    expect(await feed.tick(4)).toBe(2);
    expect(counted).toEqual([['', 'web', 7, 2], ['', 'web', 3, 3], ['', 'web', 2, 4]]);
  });

  it('the same reads record the replicas\' VMs (no operation names them): their boots once, their VM-seconds until they go', async () => {
    const samples = new SloSamples(new Database(':memory:'), 30 * 86_400_000);
    const t0 = Date.now() - 600_000;
    let deployments: StatusResult['deployments'] = [];
    let svcs: ServiceView[] = [];
    const node = { status: async () => ({ deployments, operations: [], services: svcs }) } as unknown as Client;
    const feed = new RequestFeed(node, samples, samples);
    feed.sized('acme--web', { vcpus: 2, memoryMiB: 1024 });
    const up = (name: string, startedAt: number, bootMs: number): StatusResult['deployments'][number] => ({ ...replicaView(name), startedAt: new Date(startedAt).toISOString(), bootMs });
    svcs = [serviceView({ name: 'acme--web', replicas: serviceView().replicas.map((r) => ({ ...r, name: r.name.replace('web', 'acme--web') })) })];
    // a plain deployment with an open life (its deploy operation recorded it) is not the feed's to end
    samples.vmStarted({ deployment: 'acme--plain', tenant: 'acme', app: 'plain', node: 'local', vcpus: 1, memoryMiB: 128, at: t0 });
    const all = (now: number) => computeSlo(samples, { window: '1h', now, filter: { tenant: 'acme', app: 'web' }, prices: { vcpuSecond: 1e-5, gibSecond: 0, request: 0, currency: 'USD' }, objectives: DEFAULT_OBJECTIVES });
    // running before its boot time is known: the life opens, the boot is recorded at the read that knows it
    deployments = [{ ...up('acme--web.1', t0, 300), bootMs: null }, { ...replicaView('acme--web.2'), state: 'starting' }];
    await feed.tick(t0 + 500);
    expect(all(t0 + 500).boot.count).toBe(0);
    expect(samples.openLives().sort()).toEqual(['acme--plain', 'acme--web.1']);
    deployments = [up('acme--web.1', t0, 300), { ...replicaView('acme--web.2'), state: 'starting' }];
    await feed.tick(t0 + 1000);
    expect(all(t0 + 1000).boot.count).toBe(1);
    await feed.tick(t0 + 2000); // seen again: no second boot, no second life
    deployments = [up('acme--web.1', t0, 300), up('acme--web.2', t0 + 60_000, 500)];
    await feed.tick(t0 + 61_000);
    expect([all(t0 + 61_000).boot.count, all(t0 + 61_000).boot.p95Ms]).toEqual([2, 500]);
    // web.2 went away (replaced, destroyed): its life ends at the read that no longer sees it running
    deployments = [up('acme--web.1', t0, 300)];
    await feed.tick(t0 + 120_000);
    const r = all(t0 + 300_000);
    // web.1: 300 s, web.2: 60 s, at 2 vCPUs
    expect(r.cost.perApp).toEqual([{ tenant: 'acme', app: 'web', vmSeconds: 360, cost: expect.closeTo(360 * 2 * 1e-5, 12) as number }]);
    expect(samples.openLives().sort()).toEqual(['acme--plain', 'acme--web.1']);
    // after a restart of unikctld (no size from a deploy): the app's last recorded size
    const again = new RequestFeed(node, samples, samples);
    svcs = [{ ...svcs[0] as ServiceView, replicas: (svcs[0] as ServiceView).replicas.map((r) => (r.name === 'acme--web.2' ? { ...r, name: 'acme--web.3' } : r)) }];
    deployments = [up('acme--web.1', t0, 300), up('acme--web.3', t0 + 200_000, 400)];
    await again.tick(t0 + 201_000);
    expect(samples.lastSize('acme', 'web')).toEqual({ vcpus: 2, memoryMiB: 1024 });
    expect(all(t0 + 300_000).boot.count).toBe(3);
  });
});
