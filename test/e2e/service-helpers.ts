/**
 * Helpers of the service e2e tests (test/e2e/services.test.ts): the JSON views of `status --json` for services, a
 * client load through the published port, a status sampler that records the replicas every ~100 ms, the rollout
 * bounds checked over those samples, and a destroy that proves nothing is left.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { expect } from 'vitest';
import { homeLayout } from '../../src/paths.js';
import { ROOT, type StatusJson, type TestHome } from './helpers.js';

import type { ServiceView } from '../../src/engine/client.js';

export type { ServiceView };
export type ReplicaView = ServiceView['replicas'][number];
export interface ServiceStatusJson extends StatusJson { services: ServiceView[]; }
/** `deploy --json` of a service */
export interface ServiceDeployJson {
  name: string; state: string; code?: string | null; reason?: string | null;
  rollout: { phase: string; from: number | null; to: number; code: string | null; reason: string | null } | null;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** versions are numbers in the views; compared as strings so a view that spells them as text still matches */
export const sameVersion = (a: number | string | null | undefined, b: number | string | null | undefined): boolean => a !== null && a !== undefined && String(a) === String(b);

/** replicas that are VMs (anything but stopped: starting, healthy, unhealthy, draining) */
export const existing = (s: ServiceView): ReplicaView[] => s.replicas.filter((r) => r.health !== 'stopped');
export const healthy = (s: ServiceView): ReplicaView[] => s.replicas.filter((r) => r.health === 'healthy');
export const brief = (s: ServiceView | undefined): string => !s ? 'no service' : `current=${s.current} rollout=${JSON.stringify(s.rollout)} replicas=${s.replicas.map((r) => `${r.name}:v${r.version}:${r.state}/${r.health}:pid${r.pid}`).join(' ')} restarts=${s.restarts}`;

// ---------------------------------------------------------------------------------------------------------------------
// status: in-process through the built engine (fast enough for 100 ms samples under load), else the CLI

type LocalClientModule = typeof import('../../src/engine/local.js');

/**
 * Reads `status NAME` as the CLI's --json prints it. In-process: dist/engine/local.js's LocalClient on the test home
 * (the built engine: the workers it may start are dist's); its status is what `status --json` prints. If that view
 * has no `services` (the CLI assembles it elsewhere), every read spawns the CLI instead, and says so once.
 */
export class StatusReader {
  private client: InstanceType<LocalClientModule['LocalClient']> | null = null;
  private mode: 'unknown' | 'engine' | 'cli' = 'unknown';
  private readonly saved = { accel: process.env.UNIKCTL_ACCEL, grace: process.env.UNIKCTL_STOP_GRACE_MS };

  constructor(private readonly home: TestHome) {}

  async read(name: string): Promise<ServiceStatusJson> {
    if (this.mode === 'unknown') {
      // a controller the engine restarts from this process takes the accelerator and grace period from our env
      process.env.UNIKCTL_ACCEL = this.home.env.UNIKCTL_ACCEL;
      process.env.UNIKCTL_STOP_GRACE_MS = this.home.env.UNIKCTL_STOP_GRACE_MS;
      if (!this.client) {
        const { LocalClient } = (await import(join(ROOT, 'dist', 'engine', 'local.js'))) as LocalClientModule;
        this.client = new LocalClient(homeLayout(this.home.env));
      }
      const first = (await this.client.status(name)) as unknown as ServiceStatusJson;
      if (Array.isArray(first.services)) {
        this.mode = 'engine';
        return first;
      }
      console.log('services e2e: the engine\'s status has no `services`; sampling through the CLI (slower samples)');
      this.mode = 'cli';
    }
    if (this.mode === 'engine' && this.client) return (await this.client.status(name)) as unknown as ServiceStatusJson;
    return this.home.json<ServiceStatusJson>(['status', name]);
  }

  async service(name: string): Promise<ServiceView | undefined> {
    return (await this.read(name)).services.find((s) => s.name === name);
  }

  close(): void {
    this.client?.close();
    this.client = null;
    this.mode = 'unknown';
    restoreEnv('UNIKCTL_ACCEL', this.saved.accel);
    restoreEnv('UNIKCTL_STOP_GRACE_MS', this.saved.grace);
  }
}

function restoreEnv(key: string, value: string | undefined): void {
  if (value === undefined) delete process.env[key];
  else process.env[key] = value;
}

/** Polls the service until `ok` holds; throws with the last view when `timeoutMs` passes. */
export async function waitService(reader: StatusReader, name: string, what: string, ok: (s: ServiceView) => boolean, timeoutMs: number): Promise<ServiceView> {
  const t0 = Date.now();
  let last: ServiceView | undefined;
  for (;;) {
    last = await reader.service(name).catch(() => undefined);
    if (last && ok(last)) return last;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${name}: not ${what} after ${timeoutMs} ms: ${brief(last)}`);
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// the sampler

export interface Sample { t: number; svc: ServiceView | undefined; }

/** Reads the service every ~100 ms in the background; `pause`/`resume` around steps that must run alone. */
export class Sampler {
  readonly samples: Sample[] = [];
  readonly errors: string[] = [];
  private stopped = false;
  private paused = false;
  private readonly loop: Promise<void>;

  constructor(private readonly reader: StatusReader, private readonly name: string, private readonly everyMs = 100) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const t = Date.now();
      if (!this.paused) {
        try {
          const s = await this.reader.read(this.name);
          this.samples.push({ t, svc: s.services.find((x) => x.name === this.name) });
        } catch (e) {
          this.errors.push(`${new Date(t).toISOString()} ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      await sleep(Math.max(0, this.everyMs - (Date.now() - t)));
    }
  }

  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }
  /** a status read made elsewhere (e.g. the CLI's) counts as a sample */
  add(svc: ServiceView | undefined): void { this.samples.push({ t: Date.now(), svc }); }

  async stop(): Promise<Sample[]> {
    this.stopped = true;
    await this.loop;
    const gaps = this.samples.slice(1).map((s, i) => s.t - (this.samples[i]?.t ?? s.t));
    console.log(`sampler ${this.name}: ${this.samples.length} samples, largest gap ${Math.max(0, ...gaps)} ms, ${this.errors.length} failed reads`);
    return this.samples;
  }
}

/** The rolling-update invariant at every sample: healthy ≥ desired − maxUnavailable, existing ≤ desired + maxSurge. */
export function boundViolations(samples: Sample[], o: { desired: number; maxSurge: number; maxUnavailable: number }): string[] {
  const out: string[] = [];
  for (const { t, svc } of samples) {
    if (!svc) { out.push(`${new Date(t).toISOString()} the service is missing from status`); continue; }
    const h = healthy(svc).length;
    const e = existing(svc).length;
    if (h < o.desired - o.maxUnavailable || e > o.desired + o.maxSurge) {
      out.push(`${new Date(t).toISOString()} healthy=${h} existing=${e}: ${brief(svc)}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// the client load

export interface Answer { start: number; end: number; version: string; replica: string; }
export interface Failure { start: number; end: number; worker: number; keepAlive: boolean; reusedSocket: boolean; error: string; }
export interface LoadReport { answers: Answer[]; failures: Failure[]; }

/**
 * `workers` concurrent clients GET http://127.0.0.1:port/ in a loop (a short pause between requests): the even ones
 * over one kept-alive connection each, the odd ones on a new connection per request. Every request has a
 * `requestMs` deadline; anything but 200 with `version=<V> replica=<R>` is a failure.
 */
export function startLoad(port: number, o: { workers?: number; requestMs?: number; pauseMs?: number } = {}): { stop(): Promise<LoadReport> } {
  const workers = o.workers ?? 8;
  const requestMs = o.requestMs ?? 3000;
  const pauseMs = o.pauseMs ?? 50;
  const report: LoadReport = { answers: [], failures: [] };
  let stopped = false;

  const one = (agent: Agent | false): Promise<{ ok: true; body: string } | { ok: false; error: string; reused: boolean }> => new Promise((res) => {
    let done = false;
    const finish = (v: { ok: true; body: string } | { ok: false; error: string; reused: boolean }): void => { if (!done) { done = true; clearTimeout(timer); res(v); } };
    const req = request({ host: '127.0.0.1', port, path: '/', method: 'GET', agent, headers: agent ? {} : { connection: 'close' } }, (resp) => {
      const chunks: Buffer[] = [];
      resp.on('data', (c: Buffer) => chunks.push(c));
      resp.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (resp.statusCode === 200) finish({ ok: true, body });
        else finish({ ok: false, error: `HTTP ${resp.statusCode}: ${body.slice(0, 200)}`, reused: req.reusedSocket });
      });
      resp.on('error', (e) => finish({ ok: false, error: `response: ${e.message}`, reused: req.reusedSocket }));
    });
    const timer = setTimeout(() => { req.destroy(new Error(`no answer in ${requestMs} ms`)); }, requestMs);
    req.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: `${e.code ?? ''} ${e.message}`.trim(), reused: req.reusedSocket }));
    req.end();
  });

  const worker = async (i: number): Promise<void> => {
    const keepAlive = i % 2 === 0;
    const agent = keepAlive ? new Agent({ keepAlive: true, maxSockets: 1 }) : false;
    try {
      while (!stopped) {
        const start = Date.now();
        const r = await one(agent);
        const end = Date.now();
        const m = r.ok ? /^version=(\S+) replica=(\S+)$/.exec(r.body.trim()) : null;
        if (r.ok && m) report.answers.push({ start, end, version: m[1] ?? '', replica: m[2] ?? '' });
        else report.failures.push({ start, end, worker: i, keepAlive, reusedSocket: r.ok ? false : r.reused, error: r.ok ? `unexpected body ${JSON.stringify(r.body.slice(0, 200))}` : r.error });
        await sleep(pauseMs);
      }
    } finally {
      if (agent) agent.destroy();
    }
  };

  const all = Promise.all(Array.from({ length: workers }, (_, i) => worker(i)));
  return {
    async stop(): Promise<LoadReport> {
      stopped = true;
      await all;
      const by = new Map<string, number>();
      for (const a of report.answers) by.set(a.version, (by.get(a.version) ?? 0) + 1);
      console.log(`load :${port}: ${report.answers.length} answers (${[...by].map(([v, n]) => `${v}: ${n}`).join(', ')}), ${report.failures.length} failed`);
      return report;
    },
  };
}

export const describeFailures = (f: Failure[]): string => f.slice(0, 20).map((x) => `${new Date(x.start).toISOString()} +${x.end - x.start}ms worker ${x.worker} (${x.keepAlive ? 'keep-alive' : 'new connection'}${x.reusedSocket ? ', reused socket' : ''}): ${x.error}`).join('\n');

// ---------------------------------------------------------------------------------------------------------------------
// processes and ports

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function waitDead(pid: number, timeoutMs: number): Promise<boolean> {
  const t0 = Date.now();
  while (isAlive(pid)) {
    if (Date.now() - t0 > timeoutMs) return false;
    await sleep(100);
  }
  return true;
}

/** Whether a listener can take the port on every address (the front must have let go of it). */
export function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '0.0.0.0', () => srv.close(() => res(true)));
  });
}

/** HAProxy processes of this home: their command line (config path) or environment names it. */
/** HAProxy processes of this home (of one service's front when `service` is given: its config lives under services/<name>/). */
export function frontProcesses(home: TestHome, service?: string): number[] {
  const rows = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).split('\n').map((l) => /^\s*(\d+)\s+(.*)$/.exec(l)).filter((m): m is RegExpExecArray => m !== null);
  const envHome = (pid: string): string => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').find((e) => e.startsWith('UNIKCTL_HOME='))?.slice(13) ?? '';
    } catch {
      return '';
    }
  };
  return rows.filter((m) => /haproxy/.test((m[2] ?? '').split(' ')[0] ?? '') && ((m[2] ?? '').includes(home.dir) || envHome(m[1] ?? '') === home.dir)
    && (service === undefined || (m[2] ?? '').includes(`/services/${service}/`))).map((m) => Number(m[1]));
}

/**
 * `destroy NAME --wait`, then nothing of the service may be left: no replica in status, no service record, no QEMU
 * of this home, the host ports free (the front is gone), the controller exited.
 */
export async function destroyService(home: TestHome, name: string, ports: number[], controllerPid: number | null): Promise<void> {
  const d = await home.cli(['destroy', name, '--wait', '--json']);
  expect(d.code, `destroy ${name}: ${d.stdout}\n${d.stderr}`).toBe(0);
  const s = await home.json<ServiceStatusJson>(['status']);
  expect(s.deployments.filter((x) => x.name === name || x.name.startsWith(`${name}.`)).map((x) => `${x.name} ${x.state}`)).toEqual([]);
  expect((s.services ?? []).filter((x) => x.name === name).map(brief)).toEqual([]);
  // other services of the home may still run (test d has two): only this one's VMs and front must be gone
  expect(home.qemuProcesses().filter((l) => new RegExp(`unikctl-${name}\\.\\d+[ ,]`).test(l))).toEqual([]);
  for (const p of ports) expect(await portFree(p), `host port ${p} is still taken after destroy ${name}`).toBe(true);
  expect(frontProcesses(home, name), `the front (HAProxy) of ${name} outlived the destroy`).toEqual([]);
  if (controllerPid !== null) expect(await waitDead(controllerPid, 5000), `the controller ${controllerPid} of ${name} outlived the destroy`).toBe(true);
}

/** After a failed test: destroy every service of the home, then kill what refused to go (controllers, fronts). */
export async function removeServices(home: TestHome): Promise<void> {
  const s = await home.json<ServiceStatusJson>(['status']).catch(() => null);
  const services = s?.services ?? [];
  if (services.length > 0) await home.cli(['destroy', ...services.map((x) => x.name), '--wait', '--timeout', '1']);
  for (const pid of services.map((x) => x.controller?.pid).filter((p): p is number => typeof p === 'number')) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (const pid of frontProcesses(home)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}
