/**
 * Tenant isolation on the node (docs/security.md, "Tenant isolation"): a tenant's VMs run as the tenant's own
 * unprivileged system user, inside one cgroup per tenant that carries the tenant's CPU and memory quota, and the
 * tenant's files on the node are readable by root only. Local mode (no tenant) never comes here.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, statSync } from 'node:fs';
import { UserError } from '../errors.js';
import type { HomeLayout } from '../paths.js';
import type { TenantIsolation } from '../store/types.js';
import { ResourceGroup, type Controller } from '../util/cgroup.js';
import { sleep } from '../util/proc.js';
import { lookupGroup, lookupUser, type SystemUser } from '../util/users.js';
import type { VmIsolation } from './vmm.js';

export const tenantUserName = (tenant: string): string => `unikctl-t-${tenant}`;
/** The cgroup `unikctl/tenant-<name>` (under the cpu, cpuacct and memory hierarchies on cgroup v1, one group on v2). */
export const tenantGroupId = (tenant: string): string => `tenant-${tenant}`;

/**
 * The memory one VM's QEMU may use beyond its guest RAM, allowed on top of the tenant's memory quota per running VM.
 * Measured under TCG (resident memory outside the guest RAM mapping): 46 MiB for a 64 MiB guest (8 MiB translation
 * cache), 60 MiB for a 256 MiB guest whose 64 MiB cache was partly filled; a full 64 MiB cache makes ~100 MiB.
 * Under KVM there is no translation cache. The guest RAM itself is bounded by each VM's -m, which the control plane
 * admits against the quota; this cgroup limit is the node's backstop, so the allowance errs on the large side.
 */
export const TENANT_VMM_OVERHEAD_MIB = 128;

const CONTROLLERS: readonly Controller[] = ['memory', 'cpu', 'cpuacct'];
const MiB = 1024 * 1024;

/** The host operations tenant set-up needs; the real ones by default (unit tests pass fakes). */
export interface TenantHost {
  isRoot(): boolean;
  lookupUser(name: string): SystemUser | null;
  lookupGroup(nameOrGid: string): { name: string; gid: number; members: string[] } | null;
  /** runs argv; status and stderr */
  exec(argv: string[]): { status: number | null; stderr: string };
  /** the group that may open /dev/kvm read-write, or null (no device, or only root may) */
  kvmGid(): number | null;
  sleep(ms: number): void;
}

export const realTenantHost: TenantHost = {
  isRoot: () => process.getuid?.() === 0,
  lookupUser,
  lookupGroup,
  exec: (argv) => {
    const r = spawnSync(argv[0] ?? '', argv.slice(1), { encoding: 'utf8' });
    return { status: r.error ? 127 : r.status, stderr: r.error ? r.error.message : (r.stderr ?? '') };
  },
  kvmGid: () => {
    try {
      const st = statSync('/dev/kvm');
      return st.gid !== 0 && (st.mode & 0o060) === 0o060 ? st.gid : null;
    } catch {
      return null;
    }
  },
  sleep: (ms) => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); },
};

const SETUP_HINT = 'run the daemon (unikctld serve --nodes local, or unikctld agent) as root on a host with useradd and the cpu and memory cgroup controllers';

/**
 * The tenant's user, made if missing: a system user with its own group, no home and no login shell, in the group
 * of /dev/kvm where that device is group-accessible (QEMU opens it after dropping to the user). Safe when several
 * supervisors do this at once: useradd's lock makes one of them create the user and the others find it afterwards.
 */
export function ensureTenantUser(tenant: string, host: TenantHost = realTenantHost): { user: SystemUser; kvm: boolean } {
  const name = tenantUserName(tenant);
  const kvmGroup = ((): string | null => {
    const gid = host.kvmGid();
    return gid === null ? null : (host.lookupGroup(String(gid))?.name ?? null);
  })();
  let user = host.lookupUser(name);
  let lastError = '';
  for (let attempt = 0; !user && attempt < 20; attempt++) {
    if (!host.isRoot()) throw new UserError('E_TENANT_ISOLATION', `cannot create the tenant user ${name}: the daemon does not run as root`, { hint: SETUP_HINT });
    const nologin = existsSync('/usr/sbin/nologin') ? '/usr/sbin/nologin' : '/bin/false';
    const r = host.exec(['useradd', '--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', nologin,
      '--comment', `unikctl tenant ${tenant}`, ...(kvmGroup ? ['--groups', kvmGroup] : []), name]);
    user = host.lookupUser(name); // made by us, or by a concurrent supervisor whose useradd won the lock
    if (!user) {
      lastError = r.stderr.trim() || `useradd exited with ${r.status}`;
      host.sleep(50 + attempt * 25); // another useradd holds /etc/passwd's lock
    }
  }
  if (!user) throw new UserError('E_TENANT_ISOLATION', `cannot create the tenant user ${name}: ${lastError}`, { hint: SETUP_HINT });
  if (kvmGroup && !host.lookupGroup(kvmGroup)?.members.includes(name)) {
    // a user made before the host had a kvm group, or by hand
    const r = host.exec(['usermod', '--append', '--groups', kvmGroup, name]);
    if (r.status !== 0 && !host.lookupGroup(kvmGroup)?.members.includes(name)) {
      throw new UserError('E_TENANT_ISOLATION', `cannot add the tenant user ${name} to the ${kvmGroup} group: ${r.stderr.trim()}`, { hint: SETUP_HINT });
    }
  }
  return { user, kvm: kvmGroup !== null };
}

/** The memory limit of a tenant's cgroup running `vms` VMs: the quota plus the QEMU allowance per VM (null: no quota). */
export function tenantMemoryBytes(t: TenantIsolation, vms: number): number | null {
  return t.memoryMiB === undefined ? null : (t.memoryMiB + TENANT_VMM_OVERHEAD_MIB * Math.max(1, vms)) * MiB;
}

/**
 * Removes group and other access from the unikctl home and the deployment's directory: a tenant's image copies,
 * logs and runtime files are then readable by root only, whatever their own modes. The tenant's QEMU needs no path
 * there (it is handed its kernel and root filesystem as open files, see qemu.ts).
 */
export function protectTenantFiles(layout: HomeLayout, deploymentDir: string): void {
  for (const dir of [layout.home, deploymentDir]) {
    const mode = statSync(dir).mode & 0o7777;
    if ((mode & 0o077) !== 0) chmodSync(dir, mode & 0o700);
  }
}

/** A tenant on this node: its user, its cgroup and how each VM of it starts. */
export class TenantNode {
  constructor(readonly tenant: TenantIsolation, readonly user: SystemUser, readonly group: ResourceGroup, readonly kvm: boolean) {}

  /** How the VMM starts a VM of this tenant. */
  isolation(): VmIsolation {
    return { user: this.user.name, uid: this.user.uid, gid: this.user.gid, cgroupProcs: this.group.procsFiles() };
  }

  /** Resolves once the VM's process is in the tenant's cgroup (the launcher joins by itself) or after `timeoutMs`. */
  async joined(pid: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.group.pids().includes(pid) && Date.now() < deadline) await sleep(10);
  }

  /**
   * Sets the group's memory limit for the VMs in it plus `starting` (1 just before a VM starts, so its QEMU is
   * covered from its first page). Writers race (VMs of the tenant start and stop in other supervisors), so each
   * reads the count again after writing and writes again until it holds: the last writer always saw the final count.
   * A lower limit the kernel cannot reach right away (EBUSY on cgroup v1) is left higher.
   */
  fitMemory(starting: 0 | 1): void {
    for (let i = 0; i < 10; i++) {
      const vms = this.group.pids().length + starting;
      try {
        this.group.setMemory(tenantMemoryBytes(this.tenant, vms));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EBUSY') return;
        throw new UserError('E_TENANT_ISOLATION', `cannot set the memory limit of tenant ${this.tenant.name}: ${(e as Error).message}`);
      }
      if (this.group.pids().length + starting === vms) return;
    }
  }
}

/**
 * Everything a tenant's deployment needs on this node before its VM starts: root, the tenant's user, the tenant's
 * cgroup with the current CPU quota, and its files closed to other users.
 */
export function prepareTenant(t: TenantIsolation, layout: HomeLayout, deploymentDir: string, host: TenantHost = realTenantHost): TenantNode {
  if (!host.isRoot()) {
    throw new UserError('E_TENANT_ISOLATION', `tenant ${t.name}'s VMs need the daemon to run as root (to start QEMU as ${tenantUserName(t.name)} in the tenant's cgroup)`, { hint: SETUP_HINT });
  }
  const { user, kvm } = ensureTenantUser(t.name, host);
  const found = ResourceGroup.detect(CONTROLLERS);
  if ('unavailable' in found) throw new UserError('E_TENANT_ISOLATION', `no cgroup for tenant ${t.name}: ${found.unavailable}`, { hint: SETUP_HINT });
  let group: ResourceGroup;
  try {
    group = ResourceGroup.ensure(tenantGroupId(t.name), CONTROLLERS);
    group.setCpus(t.cpus ?? null); // each deploy applies the tenant's current quota
  } catch (e) {
    throw new UserError('E_TENANT_ISOLATION', `cannot set up the cgroup of tenant ${t.name}: ${(e as Error).message}`, { hint: SETUP_HINT });
  }
  protectTenantFiles(layout, deploymentDir);
  return new TenantNode(t, user, group, kvm);
}
