import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import type { SloWindow } from './slo.js';
import type { SloReader, SloView } from './slo-reader.js';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { isElfFile } from '../image/elf.js';
import { formatRef, normalizeRef, PackageStore } from '../image/package-store.js';
import { RootfsBuilder } from '../image/rootfs.js';
import { loadUnikYaml } from '../image/unikyaml.js';
import { isUserError, UserError, type ErrorCode } from '../errors.js';
import { homeLayout } from '../paths.js';
import type { LogEntry } from '../runtime/logstore.js';
import { readNdjson } from '../util/ndjson.js';
import { sanitizeName } from '../util/ids.js';
import { sleep } from '../util/proc.js';
import { packBundle } from './bundle.js';
import { isPackageArchive } from './resolve.js';
import type { Client, DeployRequest, DeployResult, DeploymentView, DestroyResult, LogsRequest, StatusResult } from './client.js';

interface ApiError { code?: string; message?: string; trace_id?: string; hint?: string; }

/**
 * Remote mode (CP-5): the same Client contract over the control plane's HTTP API. Local sources, binaries and
 * --rootfs directories are packed and uploaded; everything else goes by reference.
 */
export class HttpClient implements Client, SloReader {
  private readonly base: string;

  constructor(url: string, private readonly token: string | undefined) {
    this.base = url.replace(/\/+$/, '');
  }

  close(): void {}

  async slo(q: { window: SloWindow; app?: string }): Promise<SloView> {
    const p = new URLSearchParams({ window: q.window, ...(q.app !== undefined ? { app: q.app } : {}) });
    return (await (await this.call('GET', `/v1/slo?${p}`)).json()) as SloView;
  }

  private async call(method: string, path: string, init: { json?: unknown; body?: Readable; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let body: BodyInit | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.body) {
      body = Readable.toWeb(init.body) as unknown as BodyInit;
    }
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, body, ...(init.body ? { duplex: 'half' } : {}) } as RequestInit);
    } catch (e) {
      const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
      throw new UserError('E_CONTROL_PLANE_UNREACHABLE', `cannot reach the control plane at ${this.base}: ${cause}`, {
        hint: 'check UNIKCTL_CONTROL_PLANE_URL and that unikctld is running (for a private CA, set NODE_EXTRA_CA_CERTS)',
      });
    }
    if (!res.ok) {
      let err: ApiError = {};
      try { err = (await res.json()) as ApiError; } catch { /* not JSON */ }
      const code = (err.code ?? 'E_INTERNAL') as ErrorCode;
      throw new UserError(code, `${err.message ?? `HTTP ${res.status}`}${err.trace_id ? ` (trace ${err.trace_id})` : ''}`, {
        ...(err.hint ? { hint: err.hint } : {}), details: { status: res.status, traceId: err.trace_id },
      });
    }
    return res;
  }

  private async upload(path: string, opts: { raw?: boolean } = {}): Promise<string> {
    if (opts.raw) {
      // already an archive (a package archive): send it as it is
      const res = await this.call('POST', '/v1/artifacts', { body: createReadStream(path), headers: { 'content-type': 'application/gzip' } });
      return ((await res.json()) as { id: string }).id;
    }
    const bundle = await packBundle(path);
    try {
      const res = await this.call('POST', '/v1/artifacts', {
        body: createReadStream(bundle.file), headers: { 'content-type': 'application/gzip', 'x-content-sha256': bundle.sha256 },
      });
      return ((await res.json()) as { id: string }).id;
    } finally {
      bundle.cleanup();
    }
  }

  async deploy(req: DeployRequest): Promise<DeployResult> {
    if (req.signKey) {
      // the key stays on this machine: a project sent to the control plane is built (and signed) there
      throw new UserError('E_INVALID_ARGUMENT', '--sign-key signs local builds only; in remote mode the control plane signs what it builds (unikctld --sign-key)', {
        hint: 'build and sign locally (unikctl build --sign-key KEY), then deploy the package: unikctl deploy NAME:TAG',
      });
    }
    const path = isAbsolute(req.target) ? req.target : resolve(req.cwd, req.target);
    const candidates = [`path ${path}`];
    let source: Record<string, string>;
    let nameHint: string | undefined;
    let resolvedFrom: string;
    if (existsSync(path)) {
      if (statSync(path).isDirectory()) {
        const isPackage = existsSync(join(path, 'manifest.json'));
        nameHint = isPackage ? sanitizeName((JSON.parse(readFileSync(join(path, 'manifest.json'), 'utf8')) as { name?: string }).name ?? basename(path)) : (loadUnikYaml(path)?.name ?? sanitizeName(basename(path)));
        source = { artifact: await this.upload(path), kind: isPackage ? 'package' : 'project' };
        resolvedFrom = `${isPackage ? 'package' : 'project'} directory ${path} (uploaded)`;
      } else if (isPackageArchive(path)) {
        nameHint = sanitizeName(basename(path).replace(/\.(tar|tgz|tar\.gz)$/, ''));
        source = { artifact: await this.upload(path, { raw: true }), kind: 'package' };
        resolvedFrom = `package archive ${path} (uploaded)`;
      } else {
        if (!isElfFile(path)) throw new UserError('E_NOT_ELF', `${path} is neither a directory nor an ELF executable`);
        nameHint = sanitizeName(basename(path));
        source = { artifact: await this.upload(path), kind: 'binary' };
        resolvedFrom = `ELF binary ${path} (uploaded)`;
      }
    } else {
      const ref = normalizeRef(req.target);
      const full = formatRef(ref);
      candidates.push(`local package store ${full}`);
      const local = new PackageStore(homeLayout()).get(ref);
      if (local) {
        source = { artifact: await this.upload(local.dir), kind: 'package' };
        nameHint = ref.name;
        resolvedFrom = `local package store ${full} (uploaded)`;
      } else {
        candidates.push(`control plane store ${full}`);
        source = { package: full };
        resolvedFrom = `control plane store ${full}`;
      }
    }
    let rootfsArtifact: string | undefined;
    if (req.rootfs) {
      RootfsBuilder.assertNotDockerfile(req.rootfs);
      rootfsArtifact = await this.upload(resolve(req.cwd, req.rootfs));
    }
    const body = {
      source, ports: req.ports, env: req.env, debug: req.debug, labels: req.labels,
      ...(req.name !== undefined ? { name: req.name } : nameHint ? { nameHint } : {}),
      ...(req.memory !== undefined ? { memory: req.memory } : {}),
      ...(req.cpus !== undefined ? { cpus: req.cpus } : {}),
      ...(rootfsArtifact ? { rootfsArtifact } : {}),
      ...(req.service ? { service: req.service } : {}),
      ...(req.supersede ? { supersede: true } : {}),
    };
    const res = await this.call('POST', '/v1/deployments', { json: body, ...(req.idempotencyKey ? { headers: { 'idempotency-key': req.idempotencyKey } } : {}) });
    const r = (await res.json()) as DeployResult;
    return { ...r, resolvedFrom: r.resolvedFrom.startsWith('control plane') ? r.resolvedFrom : resolvedFrom, candidates };
  }

  async destroy(names: string[], opts: { graceMs: number }): Promise<DestroyResult[]> {
    const res = await this.call('POST', '/v1/destroy', { json: { names, timeoutSeconds: opts.graceMs / 1000 } });
    return (await res.json()) as DestroyResult[];
  }

  async status(name?: string): Promise<StatusResult> {
    const res = await this.call('GET', `/v1/status${name ? `?app=${encodeURIComponent(name)}` : ''}`);
    return (await res.json()) as StatusResult;
  }

  async *logs(req: LogsRequest): AsyncIterable<LogEntry> {
    const q = new URLSearchParams();
    if (req.follow) q.set('follow', '1');
    if (req.tail !== undefined) q.set('tail', String(req.tail));
    if (req.since) q.set('since', req.since);
    const res = await this.call('GET', `/v1/logs/${encodeURIComponent(req.name)}?${q.toString()}`);
    yield* readNdjson<LogEntry>(res.body, req.signal);
  }

  async has(name: string): Promise<boolean> {
    try {
      const s = await this.status(name);
      return s.deployments.some((d) => d.name === name) || (s.services ?? []).some((v) => v.name === name);
    } catch (e) {
      if (isUserError(e) && e.code === 'E_UNKNOWN_APP') return false;
      throw e;
    }
  }

  async waitFor(name: string, until: (d: DeploymentView | null) => boolean, timeoutMs: number): Promise<DeploymentView | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.status();
      const d = s.deployments.find((x) => x.name === name) ?? null;
      // no deployment yet while its operation is queued is not "gone"; nor is a service (it has no deployment of its name)
      const pendingOp = s.operations.some((o) => o.target === name && (o.state === 'queued' || o.state === 'running'))
        || (s.services ?? []).some((v) => v.name === name);
      if ((until(d) && !(d === null && pendingOp)) || Date.now() > deadline) return d;
      await sleep(300);
    }
  }
}
