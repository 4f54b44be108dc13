/**
 * Tenants of the control plane (docs/tenants.md): declared in a YAML/JSON file given to `unikctld serve --tenants`,
 * reloaded on SIGHUP and when the file changes (a bad edit is refused and the last good set stays in force).
 *
 *   tenants:
 *     acme:                              # [a-z][a-z0-9]{0,15}: the tenant's name, also in credentials
 *       quota:                           # absent = unlimited, 0 = none
 *         vms: 3
 *         vcpus: 4
 *         memory: 2G
 *         apps: 3
 *         artifacts: 1G                  # stored artifact bytes
 *       vm:                              # per-VM limits: default when a deploy names none, max otherwise refused
 *         memory: { default: 256M, max: 512M }
 *         cpus: { default: 1, max: 2 }
 *       ports: 20000-20999               # host ports the tenant may publish (absent = any)
 *       nodes: [zone=eu]                 # node selector, ANDed with the deploy's --label
 *
 * A node labelled `dedicated=<tenant>` runs only that tenant's VMs (scheduler.ts). Which tenant a request acts for comes only from its
 * credential (auth.ts: the token entry's `tenant`, or a JWT `tenant` claim).
 */
import { readFileSync, statSync, unwatchFile, watchFile } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../errors.js';
import type { Principal } from './auth.js';
import { TENANT_NAME_RE } from '../store/types.js';
import { parseLabels } from '../util/labels.js';
import { parseSizeMiB } from '../util/size.js';

/** Memory a tenant's VM is accounted (and run) with when neither the deploy nor the tenant's `vm.memory.default` says. */
export const TENANT_DEFAULT_MEMORY_MIB = 256;

export interface TenantQuota { vms?: number; vcpus?: number; memoryMiB?: number; apps?: number; artifactBytes?: number; }
export interface TenantSpec {
  name: string;
  quota: TenantQuota;
  vm: { memoryMiB: { default?: number; max?: number }; cpus: { default?: number; max?: number } };
  ports: { from: number; to: number } | null;
  selector: Record<string, string>;
}

/**
 * What one deployment holds of its tenant's quota: one app, and `vms` VMs (absent: 1, a plain deployment; a service:
 * its rollout's worst case, replicas + surge) with `vcpus`/`memoryMiB` in total over those VMs.
 */
export interface Reservation { vcpus: number; memoryMiB: number; vms?: number; }
export interface TenantUsage { vms: number; vcpus: number; memoryMiB: number; apps: number; }
export type QuotaResource = 'vms' | 'vcpus' | 'memory' | 'apps' | 'artifacts' | 'vm.memory' | 'vm.cpus';

/**
 * The quota check a deploy's journal insert runs in its own transaction (SQLite) or compare-and-set (etcd).
 * `replace`: the next deploy of an existing service — its reservation takes the place of the name's current one
 * (checked against the usage without it) instead of being refused as a name already reserved.
 */
export interface QuotaCheck { tenant: string; name: string; reservation: Reservation; quota: TenantQuota; replace?: boolean; }

export function quotaExceeded(tenant: string, resource: QuotaResource, requested: number, used: number, limit: number): UserError {
  const unit = resource === 'memory' || resource === 'vm.memory' ? ' MiB' : resource === 'artifacts' ? ' bytes' : '';
  // a per-VM limit has no usage: the VM alone is over it
  const what = resource.startsWith('vm.') ? `per-VM ${resource.slice(3)} limit exceeded: requested ${requested}${unit}, limit ${limit}${unit}`
    : `${resource} quota exceeded: requested ${requested}${unit}, used ${used}${unit}, limit ${limit}${unit}`;
  return new UserError('E_QUOTA_EXCEEDED', `tenant ${tenant}: ${what}`, {
    hint: resource.startsWith('vm.') ? 'ask for less with -m/--cpus' : 'destroy deployments (or delete artifacts) you no longer need, or ask an administrator for a larger quota',
    details: { tenant, resource, requested, used, limit },
  });
}

/** Throws E_QUOTA_EXCEEDED when adding `add` to `used` passes a limit; the first resource over names itself. */
export function checkQuota(c: QuotaCheck, used: TenantUsage): void {
  const q = c.quota;
  const over = (resource: QuotaResource, requested: number, u: number, limit: number | undefined): void => {
    if (limit !== undefined && u + requested > limit) throw quotaExceeded(c.tenant, resource, requested, u, limit);
  };
  over('apps', 1, used.apps, q.apps);
  over('vms', c.reservation.vms ?? 1, used.vms, q.vms);
  over('vcpus', c.reservation.vcpus, used.vcpus, q.vcpus);
  over('memory', c.reservation.memoryMiB, used.memoryMiB, q.memoryMiB);
}

/** Two deploys raced for one name of a tenant: the reservation written first wins. */
export const deploymentNameTaken = (internal: string): UserError => new UserError('E_NAME_TAKEN', `a deployment named "${internal.slice(internal.indexOf('--') + 2)}" already exists`, {
  hint: 'pick another name, or destroy it first',
});

export const emptyUsage = (): TenantUsage => ({ vms: 0, vcpus: 0, memoryMiB: 0, apps: 0 });
export function addUsage(u: TenantUsage, r: Reservation): TenantUsage {
  return { vms: u.vms + (r.vms ?? 1), apps: u.apps + 1, vcpus: u.vcpus + r.vcpus, memoryMiB: u.memoryMiB + r.memoryMiB };
}
export function subtractUsage(u: TenantUsage, r: Reservation): TenantUsage {
  return { vms: u.vms - (r.vms ?? 1), apps: u.apps - 1, vcpus: u.vcpus - r.vcpus, memoryMiB: u.memoryMiB - r.memoryMiB };
}


/**
 * Deployment names are per tenant: tenant `acme`'s `web` is `acme--web` on the nodes and in the journal. A tenant name
 * has no dash, so the first `--` splits the two unambiguously; callers outside the tenant never see the prefix.
 */
export class TenantScope {
  static readonly GLOBAL = new TenantScope(null);
  constructor(readonly tenant: TenantSpec | null) {}

  get name(): string | null { return this.tenant?.name ?? null; }
  private get prefix(): string { return this.tenant ? `${this.tenant.name}--` : ''; }
  /** The longest name a deploy of this scope may ask for (a name is at most 63 characters with its prefix). */
  get maxNameLength(): number { return 63 - this.prefix.length; }

  inside(name: string): string {
    return this.prefix + name;
  }

  /** The caller's name for an internal one, or null when it is not this scope's. */
  outside(internal: string): string | null {
    if (!this.tenant) return internal;
    return internal.startsWith(this.prefix) ? internal.slice(this.prefix.length) : null;
  }

  /** A text of the node's (a reason, an event) with this tenant's internal names written as the tenant's own. */
  strip<T extends string | null>(text: T): T {
    return (text === null || !this.tenant ? text : text.split(this.prefix).join('')) as T;
  }

  /** Idempotency keys are per tenant too: B reusing A's key makes B's own operation. */
  key(k: string | null): string | null {
    return k === null || !this.tenant ? k : `${this.tenant.name}/${k}`;
  }

  keyOutside(k: string | null): string | null {
    return k === null || !this.tenant ? k : k.slice(this.tenant.name.length + 1);
  }
}

/** The tenant an internal deployment name belongs to (null: a name made without a tenant). */
export function tenantOfName(internal: string): string | null {
  const i = internal.indexOf('--');
  if (i <= 0) return null;
  const t = internal.slice(0, i);
  return TENANT_NAME_RE.test(t) ? t : null;
}

const cfgError = (file: string, msg: string): UserError => new UserError('E_TENANT_CONFIG', `${file}: ${msg}`, { hint: 'fix the tenants file (see docs/tenants.md); the last good tenants stay in force' });

function count(file: string, where: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw cfgError(file, `${where} must be a whole number ≥ 0`);
  return v;
}
function mib(file: string, where: string, v: unknown): number {
  if (v === 0 || v === '0') return 0;
  const n = parseSizeMiB(v);
  if (n === null) throw cfgError(file, `${where} is not a size (e.g. 512M, 2G)`);
  return n;
}
function onlyKeys(file: string, where: string, o: unknown, keys: readonly string[]): Record<string, unknown> {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw cfgError(file, `${where} must be a mapping`);
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw cfgError(file, `${where}.${k} is not a known field (known: ${keys.join(', ')})`);
  return o as Record<string, unknown>;
}

/** Parses a tenants file's text; every problem is E_TENANT_CONFIG naming the file and the field. */
export function parseTenants(file: string, text: string): Map<string, TenantSpec> {
  let doc: unknown;
  try {
    doc = extname(file) === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw cfgError(file, `not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const top = onlyKeys(file, '(top level)', doc ?? {}, ['tenants']);
  const list = onlyKeys(file, 'tenants', top.tenants ?? {}, Object.keys((top.tenants as object | undefined) ?? {}));
  const out = new Map<string, TenantSpec>();
  for (const [name, raw] of Object.entries(list)) {
    if (!TENANT_NAME_RE.test(name)) throw cfgError(file, `tenant name "${name}" must match ${TENANT_NAME_RE.source} (lowercase letters and digits, no dash)`);
    const t = onlyKeys(file, `tenants.${name}`, raw ?? {}, ['quota', 'vm', 'ports', 'nodes']);
    const q = onlyKeys(file, `tenants.${name}.quota`, t.quota ?? {}, ['vms', 'vcpus', 'memory', 'apps', 'artifacts']);
    const quota: TenantQuota = {
      ...(q.vms !== undefined ? { vms: count(file, `tenants.${name}.quota.vms`, q.vms) } : {}),
      ...(q.vcpus !== undefined ? { vcpus: count(file, `tenants.${name}.quota.vcpus`, q.vcpus) } : {}),
      ...(q.apps !== undefined ? { apps: count(file, `tenants.${name}.quota.apps`, q.apps) } : {}),
      ...(q.memory !== undefined ? { memoryMiB: mib(file, `tenants.${name}.quota.memory`, q.memory) } : {}),
      ...(q.artifacts !== undefined ? { artifactBytes: mib(file, `tenants.${name}.quota.artifacts`, q.artifacts) * 1024 * 1024 } : {}),
    };
    const vm = onlyKeys(file, `tenants.${name}.vm`, t.vm ?? {}, ['memory', 'cpus']);
    const vmMem = onlyKeys(file, `tenants.${name}.vm.memory`, vm.memory ?? {}, ['default', 'max']);
    const vmCpu = onlyKeys(file, `tenants.${name}.vm.cpus`, vm.cpus ?? {}, ['default', 'max']);
    const spec: TenantSpec = {
      name, quota,
      vm: {
        memoryMiB: {
          ...(vmMem.default !== undefined ? { default: mib(file, `tenants.${name}.vm.memory.default`, vmMem.default) } : {}),
          ...(vmMem.max !== undefined ? { max: mib(file, `tenants.${name}.vm.memory.max`, vmMem.max) } : {}),
        },
        cpus: {
          ...(vmCpu.default !== undefined ? { default: count(file, `tenants.${name}.vm.cpus.default`, vmCpu.default) } : {}),
          ...(vmCpu.max !== undefined ? { max: count(file, `tenants.${name}.vm.cpus.max`, vmCpu.max) } : {}),
        },
      },
      ports: null,
      selector: {},
    };
    if (t.ports !== undefined) {
      const m = /^(\d{1,5})-(\d{1,5})$/.exec(String(t.ports));
      const from = Number(m?.[1]);
      const to = Number(m?.[2]);
      if (!m || from < 1 || to > 65535 || from > to) throw cfgError(file, `tenants.${name}.ports must be a range FROM-TO within 1-65535 (e.g. 20000-20999)`);
      spec.ports = { from, to };
    }
    if (t.nodes !== undefined) {
      if (!Array.isArray(t.nodes) || t.nodes.some((x) => typeof x !== 'string')) throw cfgError(file, `tenants.${name}.nodes must be a list of key=value labels`);
      try {
        spec.selector = parseLabels(t.nodes as string[], `tenants.${name}.nodes`);
      } catch (e) {
        throw cfgError(file, e instanceof Error ? e.message : String(e));
      }
    }
    const d = spec.vm.memoryMiB;
    if (d.default !== undefined && d.max !== undefined && d.default > d.max) throw cfgError(file, `tenants.${name}.vm.memory.default is above its max`);
    const c = spec.vm.cpus;
    if (c.default !== undefined && c.max !== undefined && c.default > c.max) throw cfgError(file, `tenants.${name}.vm.cpus.default is above its max`);
    out.set(name, spec);
  }
  return out;
}

/** The declared tenants, reloaded without a restart. `null` file: tenants are off (one implicit tenant, as before). */
export class TenantRegistry {
  private tenants = new Map<string, TenantSpec>();
  private readonly onHup = (): void => { this.reload(); };

  private constructor(readonly file: string | null, private readonly log?: (msg: string, fields?: Record<string, unknown>) => void) {}

  static open(file: string | null, log?: (msg: string, fields?: Record<string, unknown>) => void): TenantRegistry {
    const r = new TenantRegistry(file, log);
    if (file) {
      r.tenants = parseTenants(file, readText(file)); // at start a bad file is fatal
      process.on('SIGHUP', r.onHup);
      watchFile(file, { interval: 1000 }, () => { r.reload(); });
    }
    return r;
  }

  static fixed(tenants: TenantSpec[]): TenantRegistry {
    const r = new TenantRegistry(null);
    r.tenants = new Map(tenants.map((t) => [t.name, t]));
    return r;
  }

  get enabled(): boolean { return this.file !== null || this.tenants.size > 0; }
  get(name: string): TenantSpec | null { return this.tenants.get(name) ?? null; }
  list(): TenantSpec[] { return [...this.tenants.values()]; }

  /** Re-reads the file; a bad edit is logged and refused (the tenants in force stay). */
  reload(): boolean {
    if (!this.file) return false;
    try {
      this.tenants = parseTenants(this.file, readText(this.file));
      this.log?.('tenants reloaded', { file: this.file, tenants: this.tenants.size });
      return true;
    } catch (e) {
      this.log?.('tenants file refused; the previous tenants stay in force', { file: this.file, error: e instanceof Error ? e.message : String(e) });
      return false;
    }
  }

  close(): void {
    if (!this.file) return;
    process.off('SIGHUP', this.onHup);
    unwatchFile(this.file);
  }
}

function readText(file: string): string {
  try {
    if (!statSync(file).isFile()) throw new Error('not a regular file');
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw cfgError(file, `cannot read it: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The header an admin credential may use to act as a tenant; from any other credential it is refused. */
export const TENANT_HEADER = 'x-unikctl-tenant';

/**
 * The scope a request acts in: with tenants on, a non-admin credential acts for the tenant its token entry or JWT
 * claim names (never a header or body field), and only an admin may pick a tenant with TENANT_HEADER.
 */
export function scopeFor(principal: Principal, header: string | string[] | undefined, tenants: TenantRegistry): TenantScope {
  const admin = principal.scopes.includes('admin');
  if (header !== undefined) {
    if (!admin) throw new UserError('E_FORBIDDEN', `only an admin credential may name a tenant with ${TENANT_HEADER}`, { hint: `leave the ${TENANT_HEADER} header out: your credential's tenant applies` });
    const t = tenants.enabled ? tenants.get(String(header)) : null;
    if (!t) throw new UserError('E_TENANT_UNKNOWN', `tenant "${String(header)}" is not declared`, { hint: 'see the tenants file given to unikctld serve --tenants' });
    return new TenantScope(t);
  }
  if (!tenants.enabled || admin) return TenantScope.GLOBAL;
  if (!principal.tenant) {
    throw new UserError('E_TENANT_REQUIRED', `credential ${principal.subject} names no tenant, and this control plane serves tenants`, {
      hint: 'give the token entry a tenant (auth file) or the JWT a tenant claim',
    });
  }
  const t = tenants.get(principal.tenant);
  if (!t) throw new UserError('E_TENANT_UNKNOWN', `credential ${principal.subject} names tenant "${principal.tenant}", which is not declared`, { hint: 'declare the tenant in the tenants file, or fix the credential' });
  return new TenantScope(t);
}
