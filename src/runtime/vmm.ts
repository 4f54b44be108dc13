import type { ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { PortMapping } from '../util/port.js';

export type Accel = 'kvm' | 'tcg';

export interface VmmStartOptions {
  name: string;
  kernel: string;
  rootfs: string;
  cmdline: string;
  memoryMiB: number;
  cpus: number;
  ports: PortMapping[];
  accel: Accel;
  /** a tenant's VM (src/runtime/tenant.ts); absent in local mode: QEMU runs as the supervisor's user */
  isolation?: VmIsolation;
}

/**
 * How a tenant's VM is confined: QEMU runs as this unprivileged user (dropped to before it starts, so the death
 * signal of RT-10 still holds), joins these cgroups before it runs, and opens no host path itself — the supervisor
 * hands it the kernel and root filesystem as open files, so the tenant's user needs no access to the unikctl home.
 */
export interface VmIsolation { user: string; uid: number; gid: number; cgroupProcs: string[]; }

export interface VmmHandle {
  pid: number;
  child: ChildProcess;
  /** the guest serial console (output) */
  console: Readable;
  /** the guest serial console (input) */
  consoleInput: Writable;
  /** QEMU's own diagnostics */
  stderr: Readable;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A VMM driver: how a VM runs (QEMU today; room for Firecracker or cloud-hypervisor). */
export interface Vmm {
  readonly name: string;
  /** Throws a UserError when the host cannot run it (binary missing, accel unusable). */
  check(accel: Accel): void;
  start(opts: VmmStartOptions): VmmHandle;
  /** Hard stop; graceful stop goes through the guest init (a console command). */
  kill(handle: VmmHandle): void;
}
