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
}

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
