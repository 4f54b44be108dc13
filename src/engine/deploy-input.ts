/**
 * Admission checks for a deploy, shared by the local engine and the control plane: the same request is accepted
 * or refused, with the same code, whichever way it arrives (CLI, API, agent). Anything that would only fail
 * later inside the supervisor or QEMU (a memory size QEMU cannot allocate, an env value the guest config cannot
 * carry, a host port published twice) is refused here, before anything is recorded.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { totalmem } from 'node:os';
import { UserError } from '../errors.js';
import { parseEnv } from '../util/env.js';
import { parseLabels } from '../util/labels.js';
import { parsePorts, type PortMapping } from '../util/port.js';
import { portInUse } from '../store/sqlite.js';
import { TENANT_NAME_RE, type TenantIsolation } from '../store/types.js';
import { NAME_RE } from '../util/ids.js';
import { parseSizeMiB } from '../util/size.js';

/** Below this the kernel and init alone do not fit (the smallest example runs in 32 MiB). */
export const MIN_MEMORY_MIB = 16;
export const hostMemoryMiB = (): number => Math.floor(totalmem() / 1024 / 1024);

/** `--memory`: a size between MIN_MEMORY_MIB and `maxMiB` (the host's RAM, or no upper bound when placement decides). */
export function parseMemoryFlag(value: string, maxMiB: number | undefined): number {
  const mib = parseSizeMiB(value);
  if (mib === null) throw new UserError('E_INVALID_ARGUMENT', `--memory ${value} is not a size`, { hint: 'use e.g. -m 128M or -m 1G' });
  if (mib < MIN_MEMORY_MIB) {
    throw new UserError('E_INVALID_ARGUMENT', `--memory ${value} is below the minimum of ${MIN_MEMORY_MIB} MiB`, { hint: `use at least -m ${MIN_MEMORY_MIB}M` });
  }
  if (maxMiB !== undefined && mib > maxMiB) {
    throw new UserError('E_INVALID_ARGUMENT', `--memory ${value} (${mib} MiB) is more than this host's total memory (${maxMiB} MiB)`, {
      hint: `use at most -m ${maxMiB}M`,
    });
  }
  return mib;
}


export interface DeployInput { name?: string | undefined; ports: string[]; env: string[]; labels: string[]; memory?: string | undefined; cpus?: number | undefined; tenant?: TenantIsolation | undefined; }
export interface ValidDeployInput { ports: PortMapping[]; env: Record<string, string>; labels: Record<string, string>; memoryMiB: number | undefined; cpus: number; tenant?: TenantIsolation; }

/** The tenant a control plane sent with a deploy: a name that makes a valid user and cgroup name, and positive quotas. */
export function validateTenant(t: TenantIsolation): TenantIsolation {
  if (!TENANT_NAME_RE.test(t.name)) {
    throw new UserError('E_INVALID_ARGUMENT', `tenant "${t.name}" is not a valid tenant name`, { hint: 'a lowercase letter, then at most 15 lowercase letters or digits' });
  }
  if (t.cpus !== undefined && !(Number.isFinite(t.cpus) && t.cpus > 0 && t.cpus <= 1024)) {
    throw new UserError('E_INVALID_ARGUMENT', `tenant ${t.name}: cpus ${t.cpus} must be a number of cores above 0`);
  }
  if (t.memoryMiB !== undefined && !(Number.isInteger(t.memoryMiB) && t.memoryMiB >= MIN_MEMORY_MIB)) {
    throw new UserError('E_INVALID_ARGUMENT', `tenant ${t.name}: memoryMiB ${t.memoryMiB} must be an integer of at least ${MIN_MEMORY_MIB}`);
  }
  return { name: t.name, ...(t.cpus !== undefined ? { cpus: t.cpus } : {}), ...(t.memoryMiB !== undefined ? { memoryMiB: t.memoryMiB } : {}) };
}

/** The static admission checks (no I/O): name, ports, env, labels, memory, cpus. */
export function validateDeployInput(req: DeployInput, opts: { maxMemoryMiB: number | undefined }): ValidDeployInput {
  if (req.name !== undefined && !NAME_RE.test(req.name)) {
    throw new UserError('E_INVALID_NAME', `"${req.name}" is not a valid name`, { hint: 'use lowercase letters, digits and dashes, at most 63 characters, starting and ending with a letter or digit' });
  }
  const ports = parsePorts(req.ports);
  const env = parseEnv(req.env);
  const labels = parseLabels(req.labels);
  const memoryMiB = req.memory !== undefined ? parseMemoryFlag(req.memory, opts.maxMemoryMiB) : undefined;
  const cpus = req.cpus ?? 1;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 16) throw new UserError('E_INVALID_ARGUMENT', `--cpus ${req.cpus} must be an integer from 1 to 16`);
  return { ports, env, labels, memoryMiB, cpus, ...(req.tenant ? { tenant: validateTenant(req.tenant) } : {}) };
}

/** The lowest port an unprivileged process may bind (net.ipv4.ip_unprivileged_port_start; 1024 when unreadable). */
export function unprivilegedPortStart(file = '/proc/sys/net/ipv4/ip_unprivileged_port_start'): number {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n >= 0 ? n : 1024;
  } catch {
    return 1024;
  }
}

/**
 * A tenant's QEMU runs as the tenant's unprivileged user and binds the published ports itself: a privileged port
 * would only fail inside QEMU, so it is refused here.
 */
export function checkTenantPorts(ports: PortMapping[], start = unprivilegedPortStart()): void {
  const low = ports.find((p) => p.hostPort < start);
  if (low) {
    throw new UserError('E_INVALID_PORT', `cannot publish host port ${low.hostPort} for a tenant's deployment: its VM runs unprivileged and this host reserves ports below ${start}`, {
      hint: `use a host port of ${start} or above, e.g. -p ${Math.max(start, 8080)}:${low.guestPort}`,
    });
  }
}

/** Tries to bind a published port the way QEMU will; null when it is free, else the errno code. */
function probePort(p: PortMapping): Promise<string | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'EUNKNOWN'));
    srv.listen({ port: p.hostPort, host: p.hostAddress, exclusive: true }, () => srv.close(() => resolve(null)));
  });
}

/**
 * RT-10: a host port that cannot be bound is reported before the VM starts, with the real reason: an address this
 * host does not have is a bad mapping (EADDRNOTAVAIL), not a port someone else holds.
 */
export async function checkHostPorts(ports: PortMapping[]): Promise<void> {
  for (const p of ports) {
    const err = await probePort(p);
    if (err === null) continue;
    if (err === 'EADDRNOTAVAIL') {
      throw new UserError('E_INVALID_PORT', `cannot publish ${p.hostAddress}:${p.hostPort}: address not available on this host`, {
        hint: 'use an address of one of this host\'s interfaces (see ip -4 addr), 127.0.0.1, or leave it out to listen on all addresses',
      });
    }
    if (err === 'EACCES') {
      throw new UserError('E_INVALID_PORT', `cannot publish host port ${p.hostPort}: binding it needs privileges on this host`, { hint: 'use a host port of 1024 or above, e.g. -p 8080:80' });
    }
    throw portInUse(p.hostPort);
  }
}

