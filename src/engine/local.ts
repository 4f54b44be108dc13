import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseMemory } from '../build/unikyaml.js';
import { UserError } from '../errors.js';
import type { HomeLayout } from '../paths.js';
import { followLogs, parseSince, readLogs, type LogEntry, type ReadOptions } from '../runtime/logstore.js';
import { consoleLogFile, describeMissingDeployment } from '../runtime/supervisor.js';
import { SqliteStore } from '../store/sqlite.js';
import { LIVE_STATES, type Deployment, type Operation, type PortMapping, type Store } from '../store/types.js';
import { NAME_RE, newId } from '../util/ids.js';
import { isAlive, sleep } from '../util/proc.js';
import type { Client, DeployRequest, DeployResult, DeploymentView, DestroyResult, LogsRequest, StatusResult } from './client.js';
import { extractPackageArchive, isPackageArchive, resolveTarget } from './resolve.js';

const isUniqueViolation = (e: unknown): boolean => (e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE';

const WORKER = fileURLToPath(new URL('../runtime/worker.js', import.meta.url));

export function parsePort(spec: string): PortMapping {
  const parts = spec.split(':');
  const bad = (): UserError => new UserError('E_INVALID_PORT', `"${spec}" is not a port mapping`, { hint: 'use -p HOST:GUEST (e.g. -p 8080:80) or -p ADDR:HOST:GUEST' });
  let hostAddress = '0.0.0.0';
  let host: string | undefined;
  let guest: string | undefined;
  if (parts.length === 1) {
    [host] = parts;
    guest = host;
  }
  else if (parts.length === 2) [host, guest] = parts;
  else if (parts.length === 3) [hostAddress = '', host, guest] = parts;
  else throw bad();
  const hostPort = Number((host ?? '').replace(/\/tcp$/, ''));
  const guestPort = Number((guest ?? '').replace(/\/tcp$/, ''));
  if (!/^\d+(\/tcp)?$/.test(host ?? '') || !/^\d+(\/tcp)?$/.test(guest ?? '')) throw bad();
  if (!(hostPort > 0 && hostPort < 65536 && guestPort > 0 && guestPort < 65536)) throw bad();
  if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(hostAddress) || hostAddress.split('.').some((o) => Number(o) > 255)) throw bad();
  return { hostAddress, hostPort, guestPort, protocol: 'tcp' };
}

export function parseEnv(items: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    const key = i > 0 ? item.slice(0, i) : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new UserError('E_INVALID_ARGUMENT', `-e "${item}" is not KEY=VALUE`, { hint: 'e.g. -e GREETING=hello' });
    }
    env[key] = item.slice(i + 1);
  }
  return env;
}

function parseMemoryFlag(value: string): number {
  try {
    return parseMemory(value, '--memory', 'command line');
  } catch {
    throw new UserError('E_INVALID_ARGUMENT', `--memory ${value} is not a size`, { hint: 'use e.g. -m 128M or -m 1G' });
  }
}

function parseLabels(items: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of items) {
    const [k, v] = item.split('=', 2);
    if (!k || v === undefined) throw new UserError('E_INVALID_ARGUMENT', `--label "${item}" is not k=v`);
    labels[k] = v;
  }
  return labels;
}

/** RT-10: a host port already taken is reported before the VM starts. */
function portFree(p: PortMapping): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port: p.hostPort, host: p.hostAddress, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function procMetrics(pid: number): { cpuSeconds: number | null; rssBytes: number | null } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    const rssPages = Number(f[21]);
    return { cpuSeconds: ticks / 100, rssBytes: rssPages * 4096 };
  } catch {
    return { cpuSeconds: null, rssBytes: null };
  }
}

export const NO_METRICS: DeploymentView['metrics'] = { cpuSeconds: null, rssBytes: null, supervisorRssBytes: null };

function deploymentMetrics(d: Deployment): DeploymentView['metrics'] {
  if (!d.vmm) return NO_METRICS;
  const supervisor = d.supervisor && isAlive(d.supervisor) ? procMetrics(d.supervisor.pid).rssBytes : null;
  return { ...procMetrics(d.vmm.pid), supervisorRssBytes: supervisor };
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function toView(d: Deployment, now = Date.now()): DeploymentView {
  const running = d.state === 'running' && isAlive(d.vmm);
  return {
    name: d.name, id: d.id, state: d.state, exitCode: d.exitCode, code: d.code, reason: d.reason,
    ports: d.spec.ports.map((p) => `${p.hostAddress === '0.0.0.0' ? '' : `${p.hostAddress}:`}${p.hostPort}->${p.guestPort}/tcp`),
    imageBytes: d.image?.sizeBytes ?? null, image: d.image?.ref ?? d.image?.name ?? null, pack: d.image?.pack ?? null,
    mode: d.image?.mode ?? null, accel: d.accel, bootMs: d.boot.vmmStartToAppStartMs ?? null, boot: d.boot,
    uptimeMs: running && d.startedAt ? now - d.startedAt : null,
    createdAt: new Date(d.createdAt).toISOString(), startedAt: iso(d.startedAt), endedAt: iso(d.endedAt),
    metrics: running ? deploymentMetrics(d) : NO_METRICS,
  };
}

/** The embedded engine: state in SQLite, one detached supervisor process per deployment. */
export class LocalClient implements Client {
  readonly store: Store;

  constructor(readonly layout: HomeLayout) {
    this.store = new SqliteStore(layout.db);
  }

  close(): void {
    this.store.close();
  }

  private spawnWorker(args: string[]): void {
    // the worker finds the same state through the environment
    const env = { ...process.env, UNIKCTL_HOME: this.layout.home, UNIKCTL_KERNEL_DIR: this.layout.kernels };
    const child = spawn(process.execPath, [WORKER, ...args], { detached: true, stdio: 'ignore', env });
    child.unref();
  }

  async deploy(req: DeployRequest): Promise<DeployResult> {
    if (req.name !== undefined && !NAME_RE.test(req.name)) {
      throw new UserError('E_INVALID_NAME', `"${req.name}" is not a valid name`, { hint: 'use lowercase letters, digits and dashes, at most 63 characters, starting and ending with a letter or digit' });
    }
    const ports = req.ports.map(parsePort);
    const env = parseEnv(req.env);
    const labels = parseLabels(req.labels);
    const memoryMiB = req.memory !== undefined ? parseMemoryFlag(req.memory) : undefined;
    const cpus = req.cpus ?? 1;
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > 16) throw new UserError('E_INVALID_ARGUMENT', `--cpus ${req.cpus} must be an integer from 1 to 16`);

    const archivePath = isAbsolute(req.target) ? req.target : resolvePath(req.cwd, req.target);
    const fromArchive = isPackageArchive(archivePath) && existsSync(archivePath);
    const resolved = resolveTarget(fromArchive ? await extractPackageArchive(archivePath, this.layout) : req.target, req.cwd, this.layout, req.rootfs);
    const target = fromArchive ? { ...resolved, resolvedFrom: `package archive ${archivePath}` } : resolved;
    const requestHash = createHash('sha256').update(JSON.stringify({ t: target.source, n: req.name, ports, env, memoryMiB, cpus, d: req.debug, r: req.rootfs, labels })).digest('hex');
    if (req.idempotencyKey) {
      const prior = this.store.findOperationByKey(req.idempotencyKey);
      if (prior) return this.reuse(prior, requestHash, target);
    }

    const seen = new Set<string>();
    for (const p of ports) {
      const key = `${p.hostAddress}:${p.hostPort}`;
      if (seen.has(key)) throw new UserError('E_INVALID_PORT', `host port ${p.hostPort} is published twice`);
      seen.add(key);
    }
    const taken = new Set(this.store.listDeployments().filter((d) => LIVE_STATES.includes(d.state)).flatMap((d) => d.spec.ports.map((p) => p.hostPort)));
    for (const p of ports) {
      if (taken.has(p.hostPort) || !(await portFree(p))) {
        throw new UserError('E_PORT_IN_USE', `host port ${p.hostPort} is already in use`, { hint: 'pick another host port with -p HOST:GUEST, or stop what holds it (unikctl status shows deployments)' });
      }
    }

    const now = Date.now();
    for (let attempt = 0; ; attempt++) {
      const name = req.name ?? this.store.freeName(target.defaultName);
      try {
        return this.create(name, now, req, target, { ports, env, labels, memoryMiB, cpus, requestHash });
      } catch (e) {
        // a concurrent deploy took the derived name or the idempotency key first
        if (req.idempotencyKey && isUniqueViolation(e)) {
          const prior = this.store.findOperationByKey(req.idempotencyKey);
          if (prior) return this.reuse(prior, requestHash, target);
        }
        if (req.name === undefined && e instanceof UserError && e.code === 'E_NAME_TAKEN' && attempt < 5) continue;
        throw e;
      }
    }
  }

  private create(
    name: string, now: number, req: DeployRequest, target: ReturnType<typeof resolveTarget>,
    p: { ports: PortMapping[]; env: Record<string, string>; labels: Record<string, string>; memoryMiB: number | undefined; cpus: number; requestHash: string },
  ): DeployResult {
    const { ports, env, labels, memoryMiB, cpus, requestHash } = p;
    const op: Operation = {
      id: newId('op'), kind: 'deploy', target: name, state: 'running', idempotencyKey: req.idempotencyKey ?? null, requestHash,
      error: null, createdAt: now, updatedAt: now, endedAt: null,
    };
    const d: Deployment = {
      name, id: newId('dep'), state: 'pending', exitCode: null, code: null, reason: null,
      spec: { source: target.source, resolvedFrom: target.resolvedFrom, ports, memoryMiB, cpus, env, debug: req.debug, rootfsDir: req.rootfs, labels },
      image: null, supervisor: null, vmm: null, accel: null, boot: {}, createdAt: now, updatedAt: now, startedAt: null, endedAt: null,
    };
    this.store.createDeployment(d, op);
    this.spawnWorker(['deploy', name, op.id]);
    return { name, deploymentId: d.id, operationId: op.id, state: 'pending', source: target.source.kind, resolvedFrom: target.resolvedFrom, candidates: target.candidates, reused: false };
  }

  private reuse(prior: Operation, requestHash: string, target: { resolvedFrom: string; candidates: string[]; source: { kind: Deployment['spec']['source']['kind'] } }): DeployResult {
    if (prior.requestHash !== requestHash) {
      throw new UserError('E_IDEMPOTENCY_CONFLICT', `idempotency key was already used by operation ${prior.id} with a different request`, { hint: 'use a new --idempotency-key for a different deployment' });
    }
    const d = this.store.getDeployment(prior.target);
    // the operation's real outcome, never a made-up state: a failed one says so with its code
    const state = prior.state === 'failed' ? 'failed' : (d?.state ?? 'exited');
    return {
      name: prior.target, deploymentId: d?.id ?? '', operationId: prior.id, state, source: target.source.kind,
      resolvedFrom: target.resolvedFrom, candidates: target.candidates, reused: true, error: prior.state === 'failed' ? prior.error : null,
    };
  }

  async destroy(names: string[], opts: { graceMs: number }): Promise<DestroyResult[]> {
    const missing = names.filter((n) => !this.store.getDeployment(n));
    if (missing.length > 0) {
      // nothing is touched when any name is unknown: a typo must not destroy half a list
      const err = describeMissingDeployment(missing.join('", "'));
      throw new UserError('E_UNKNOWN_APP', missing.length > 1 ? `no deployments named "${missing.join('", "')}"` : err.message, { hint: err.hint });
    }
    const results: DestroyResult[] = [];
    for (const name of [...new Set(names)]) {
      const inflight = this.store.listOperations(20, name).find((o) => o.kind === 'destroy' && (o.state === 'queued' || o.state === 'running'));
      const d = this.store.getDeployment(name);
      if (inflight && d?.state === 'destroying') {
        results.push({ name, operationId: inflight.id, state: 'destroying' });
        continue;
      }
      const now = Date.now();
      const op: Operation = { id: newId('op'), kind: 'destroy', target: name, state: 'queued', idempotencyKey: null, requestHash: null, error: null, createdAt: now, updatedAt: now, endedAt: null };
      this.store.createOperation(op);
      const moved = this.store.transition(name, ['pending', 'building', 'starting', 'running', 'exited', 'failed', 'destroying'], 'destroying');
      if (!moved) {
        this.store.updateOperation(op.id, 'succeeded');
        results.push({ name, operationId: op.id, state: 'gone' });
        continue;
      }
      const deployOp = this.store.listOperations(20, name).find((o) => o.kind === 'deploy' && o.state === 'running');
      if (deployOp) this.store.updateOperation(deployOp.id, 'failed', { code: 'E_CANCELLED', message: 'destroyed before it finished' });
      this.spawnWorker(['destroy', name, op.id, String(opts.graceMs)]);
      results.push({ name, operationId: op.id, state: 'destroying' });
    }
    return results;
  }

  /** RT-3: status never guesses — a live state whose supervisor is gone becomes `failed`. */
  reconcile(): void {
    for (const d of this.store.listDeployments()) {
      if (!LIVE_STATES.includes(d.state)) continue;
      const age = Date.now() - d.createdAt;
      if (d.supervisor ? !isAlive(d.supervisor) : age > 15_000) {
        const reason = d.supervisor ? 'the supervisor process died (its VM was stopped with it)' : 'the supervisor process never started';
        const moved = this.store.transition(d.name, [d.state], 'failed', { code: 'E_SUPERVISOR_LOST', reason, endedAt: Date.now() });
        if (moved && isAlive(d.vmm) && d.vmm) process.kill(d.vmm.pid, 'SIGKILL');
        // the supervisor would have ended its deploy operation: without this it would stay running forever
        const op = moved ? this.store.listOperations(20, d.name).find((o) => o.kind === 'deploy' && o.state === 'running') : undefined;
        if (op) this.store.updateOperation(op.id, 'failed', { code: 'E_SUPERVISOR_LOST', message: reason });
      }
    }
  }

  async status(name?: string): Promise<StatusResult> {
    this.reconcile();
    let deployments = this.store.listDeployments();
    if (name !== undefined) {
      deployments = deployments.filter((d) => d.name === name);
      if (deployments.length === 0 && this.store.listOperations(1, name).length === 0) throw describeMissingDeployment(name);
    }
    return { deployments: deployments.map((d) => toView(d)), operations: this.store.listOperations(name ? 10 : 15, name) };
  }

  async *logs(req: LogsRequest): AsyncIterable<LogEntry> {
    const d = this.store.getDeployment(req.name);
    if (!d) throw describeMissingDeployment(req.name);
    const streams: LogEntry['s'][] = d.spec.debug || d.image?.mode === 'debug' ? ['app', 'init', 'kernel'] : ['app', 'init'];
    const opts: ReadOptions = { streams, ...(req.tail !== undefined ? { tail: req.tail } : {}), ...(req.since ? { sinceMs: parseSince(req.since) } : {}) };
    const file = consoleLogFile(this.layout, req.name);
    if (!req.follow) {
      yield* readLogs(file, opts);
      return;
    }
    const isDone = (): boolean => {
      this.reconcile();
      const cur = this.store.getDeployment(req.name);
      return !cur || ((cur.state === 'exited' || cur.state === 'failed') && !isAlive(cur.supervisor));
    };
    yield* followLogs(file, { ...opts, signal: req.signal, isDone });
  }

  async has(name: string): Promise<boolean> {
    return this.store.getDeployment(name) !== null;
  }

  async waitFor(name: string, until: (d: Deployment | null) => boolean, timeoutMs: number): Promise<Deployment | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.reconcile();
      const d = this.store.getDeployment(name);
      if (until(d) || Date.now() > deadline) return d;
      await sleep(100);
    }
  }
}
