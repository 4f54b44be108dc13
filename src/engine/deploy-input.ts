/**
 * Admission checks for a deploy, shared by the local engine and the control plane: the same request is accepted
 * or refused, with the same code, whichever way it arrives (CLI, API, agent). Anything that would only fail
 * later inside the supervisor or QEMU (a memory size QEMU cannot allocate, an env value the guest config cannot
 * carry, a host port published twice) is refused here, before anything is recorded.
 */
import { createServer } from 'node:net';
import { totalmem } from 'node:os';
import { parseMemory } from '../image/unikyaml.js';
import { UserError } from '../errors.js';
import type { PortMapping } from '../store/types.js';
import { portInUse } from '../store/sqlite.js';
import { NAME_RE } from '../util/ids.js';

/** Below this the kernel and init alone do not fit (the smallest example runs in 32 MiB). */
export const MIN_MEMORY_MIB = 16;
/**
 * The environment travels base64-encoded on the kernel command line (2,047 bytes, ~1,900 usable, shared with the
 * network config and argv); 1 KiB of raw `KEY=VALUE` records leaves room for the rest.
 */
export const MAX_ENV_BYTES = 1024;

export const hostMemoryMiB = (): number => Math.floor(totalmem() / 1024 / 1024);

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

/** Parses a list of port specs; one host port is published once whatever the address (0.0.0.0 overlaps every address). */
export function parsePorts(specs: string[]): PortMapping[] {
  const ports = specs.map(parsePort);
  const seen = new Map<number, string>();
  for (const [i, p] of ports.entries()) {
    const prior = seen.get(p.hostPort);
    if (prior !== undefined) {
      throw new UserError('E_INVALID_PORT', `host port ${p.hostPort} is published twice (-p ${prior} and -p ${specs[i]})`, {
        hint: 'publish each host port once; to reach one guest port on several host ports use different host ports',
      });
    }
    seen.set(p.hostPort, specs[i] ?? '');
  }
  return ports;
}

export function parseEnv(items: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  let bytes = 0;
  for (const item of items) {
    const i = item.indexOf('=');
    const key = i > 0 ? item.slice(0, i) : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new UserError('E_INVALID_ARGUMENT', `-e "${item}" is not KEY=VALUE`, { hint: 'e.g. -e GREETING=hello' });
    }
    const value = item.slice(i + 1);
    // the guest config is a list of NUL-terminated records: a NUL inside a value would cut it (and forge the next record)
    if (value.includes('\0')) {
      throw new UserError('E_INVALID_ARGUMENT', `-e ${key}: the value contains a NUL byte`, { hint: 'environment values are C strings; remove the NUL byte' });
    }
    env[key] = value;
    bytes += Buffer.byteLength(item) + 1;
  }
  if (bytes > MAX_ENV_BYTES) {
    throw new UserError('E_INVALID_ARGUMENT', `the environment takes ${bytes} bytes; at most ${MAX_ENV_BYTES} fit on the guest's kernel command line`, {
      hint: 'pass fewer or shorter -e values; large configuration belongs in files inside the image (unik.yaml rootfs:)',
    });
  }
  return env;
}

/** `--memory`: a size between MIN_MEMORY_MIB and `maxMiB` (the host's RAM, or no upper bound when placement decides). */
export function parseMemoryFlag(value: string, maxMiB: number | undefined): number {
  let mib: number;
  try {
    mib = parseMemory(value, '--memory', 'command line');
  } catch {
    throw new UserError('E_INVALID_ARGUMENT', `--memory ${value} is not a size`, { hint: 'use e.g. -m 128M or -m 1G' });
  }
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

function parseLabels(items: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of items) {
    const [k, v] = item.split('=', 2);
    if (!k || v === undefined) throw new UserError('E_INVALID_ARGUMENT', `--label "${item}" is not k=v`);
    labels[k] = v;
  }
  return labels;
}

export interface DeployInput { name?: string | undefined; ports: string[]; env: string[]; labels: string[]; memory?: string | undefined; cpus?: number | undefined; }
export interface ValidDeployInput { ports: PortMapping[]; env: Record<string, string>; labels: Record<string, string>; memoryMiB: number | undefined; cpus: number; }

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
  return { ports, env, labels, memoryMiB, cpus };
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

