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
import { ControlPlane } from './service.js';
import { TenantScope, type TenantSpec } from './tenants.js';
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
  let journalOps: QueuedOperation[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'unik-cp-svc-'));
    artifacts = new ArtifactStore({ dir: join(dir, 'artifacts'), maxUploadBytes: 1 << 22, maxExtractedBytes: 1 << 22, maxEntries: 10 });
    artifact = (await artifacts.put(Readable.from([tarOfBinary()]))).id;
    enqueued = [];
    services = [];
    pending = false;
    journalOps = [];
    const journal = {
      byKey: async () => null,
      hasPendingDeploy: async () => pending,
      reserved: async () => false,
      pendingDeploys: async () => [],
      recent: async () => journalOps,
      enqueue: async (j: NewOperation) => {
        enqueued.push(j);
        return { op: { ...j, state: 'queued', attempts: 0, leaseOwner: null, result: null, error: null, updatedAt: j.createdAt, endedAt: null, nextRunAt: 0 }, created: true };
      },
    } as unknown as OperationJournal;
    const node = {
      has: async (n: string) => n === 'plain' || services.some((v) => v.name === n),
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

  it("a tenant's service is refused with a 403 E_TENANT_UNSUPPORTED before anything is queued", async () => {
    const tenant = new TenantScope(acme);
    for (const extra of [{ service: { replicas: '2' } }, { supersede: true }]) {
      const e = await cp.deploy(body({ name: 'api', ...extra }), 't', undefined, tenant).then(() => null, (x: { code: string; message: string }) => x);
      expect(e?.code).toBe('E_TENANT_UNSUPPORTED');
      expect(e?.message).toContain('tenant acme');
    }
    // a user fault, not a 5xx: the API conformance test holds the control plane to no 5xx for any well-formed request
    expect(errorSpec('E_TENANT_UNSUPPORTED')).toMatchObject({ status: 403, fault: 'user', retryable: false });
    expect(enqueued).toEqual([]);
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
