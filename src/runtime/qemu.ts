import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, fchmodSync, fstatSync, openSync, writeFileSync } from 'node:fs';
import { UserError } from '../errors.js';
import { setupCommand, vmmLauncherPath } from '../paths.js';
import { which } from '../util/exec.js';
import type { Accel, VmIsolation, Vmm, VmmHandle, VmmStartOptions } from './vmm.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

/** Where an isolated QEMU finds the files the supervisor opened for it (the child's fds 3 and 4). */
const KERNEL_FD = 3;
const ROOTFS_FD = 4;

/**
 * QEMU argv for one unikernel-style VM: `microvm` without ACPI or option ROMs, a PVH kernel, only the
 * devices the app needs (serial console, one read-only virtio-blk root, one virtio-net with user-mode
 * networking), and QEMU's seccomp sandbox.
 */
export function qemuArgs(o: VmmStartOptions): string[] {
  const hostfwd = o.ports.map((p) => `,hostfwd=tcp:${p.hostAddress === '0.0.0.0' ? '' : p.hostAddress}:${p.hostPort}-:${p.guestPort}`).join('');
  return [
    '-name', `unikctl-${o.name},process=unikctl-${o.name}`,
    '-M', 'microvm,x-option-roms=off,isa-serial=on,acpi=off,pic=on,pit=on,rtc=on',
    '-accel', o.accel === 'kvm' ? 'kvm' : `tcg,tb-size=${tcgCacheMiB(o.memoryMiB)}`,
    '-cpu', o.accel === 'kvm' ? 'host' : 'max',
    '-m', `${o.memoryMiB}M`,
    '-smp', String(o.cpus),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    // an isolated QEMU reopens the kernel through its own fd (no path walk through the root-only home) and gets the
    // root filesystem as a dup of the open file (QEMU's fd sets; no permission check at all)
    '-kernel', o.isolation ? `/proc/self/fd/${KERNEL_FD}` : o.kernel,
    '-append', o.cmdline,
    '-chardev', 'stdio,id=console,signal=off',
    '-serial', 'chardev:console',
    ...(o.isolation ? ['-add-fd', `fd=${ROOTFS_FD},set=1,opaque=rootfs`] : []),
    '-drive', `id=root,file=${o.isolation ? '/dev/fdset/1' : o.rootfs},format=raw,if=none,readonly=on`,
    '-device', 'virtio-blk-device,drive=root',
    '-netdev', `user,id=net0${hostfwd}`,
    '-device', 'virtio-net-device,netdev=net0',
    '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
  ];
}

/**
 * TCG translation cache: QEMU's default (up to 1 GiB) grows to ~60 MiB of host RAM even for an idle Go VM, and
 * every page of it that was ever filled stays resident. A 64 MiB guest runs the kernel and one native program:
 * 8 MiB holds that (idle QEMU RSS 73 → 63 MiB; boot +0.12 s under TCG, the cache is flushed once during boot).
 * Bigger guests run interpreters and JITs and get guest/4, 16–64 MiB. UNIKCTL_TCG_TB_MIB overrides.
 */
export function tcgCacheMiB(memoryMiB: number, env: NodeJS.ProcessEnv = process.env): number {
  const forced = Number(env.UNIKCTL_TCG_TB_MIB);
  if (Number.isInteger(forced) && forced > 0) return forced;
  if (memoryMiB <= 64) return 8;
  return Math.min(64, Math.max(16, Math.round(memoryMiB / 4)));
}

/**
 * How QEMU is started so that it dies with this process (RT-10): through host/launch.c, which also turns
 * transparent huge pages off for QEMU (−6 MiB per idle VM; see docs/performance.md), or through util-linux's
 * `setpriv --pdeathsig` (same guarantee, huge pages stay on) when the set-up has not built the launcher or
 * UNIKCTL_GUEST_THP=on asks for huge pages (memory-hungry guests under KVM run faster on them).
 * A tenant's VM (`isolation`) drops to the tenant's user in the launcher, before the death signal is armed: the
 * kernel clears that signal on every change of user, which is why QEMU's own -runas (it drops privileges late, after
 * opening its files) is not used. `joinsCgroup` says whether the launcher puts itself into the tenant's cgroups
 * before exec; setpriv cannot, so the caller adds the pid right after the spawn.
 */
export function launchCommand(qemuArgv: string[], launcher = vmmLauncherPath(), parentPid = process.pid, env: NodeJS.ProcessEnv = process.env, isolation?: VmIsolation): { file: string; args: string[]; launcher: 'unikctl-launch' | 'setpriv'; joinsCgroup: boolean } {
  if (env.UNIKCTL_GUEST_THP !== 'on' && existsSync(launcher)) {
    const confine = isolation ? [...isolation.cgroupProcs.flatMap((f) => ['--cgroup', f]), '--user', isolation.user] : [];
    return { file: launcher, args: [...confine, String(parentPid), QEMU_BINARY, ...qemuArgv], launcher: 'unikctl-launch', joinsCgroup: true };
  }
  // setpriv changes the user before it arms the death signal
  const user = isolation ? [`--reuid=${isolation.uid}`, `--regid=${isolation.gid}`, '--init-groups'] : [];
  return { file: 'setpriv', args: [...user, '--pdeathsig', 'SIGKILL', '--', QEMU_BINARY, ...qemuArgv], launcher: 'setpriv', joinsCgroup: false };
}

/**
 * The kernel and root filesystem opened for an isolated QEMU (as fds 3 and 4 of the child). QEMU reopens the
 * kernel through /proc/self/fd as the tenant's user, which checks the file's own mode: the kernel (the platform's,
 * the same for every tenant — no tenant's data) is made world-readable if an umask made it private.
 */
function openForIsolated(o: VmmStartOptions): number[] {
  const kernel = openSync(o.kernel, 'r');
  try {
    const mode = fstatSync(kernel).mode;
    if ((mode & 0o004) === 0) fchmodSync(kernel, (mode & 0o7777) | 0o444);
    return [kernel, openSync(o.rootfs, 'r')];
  } catch (e) {
    closeSync(kernel);
    throw e;
  }
}

export function kvmAccessible(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export const qemuVmm: Vmm = {
  name: 'qemu',
  check(accel: Accel) {
    if (!which(QEMU_BINARY)) {
      throw new UserError('E_TOOL_MISSING', `${QEMU_BINARY} is not installed`, { hint: `apt-get install qemu-system-x86 (or run ${setupCommand()})` });
    }
    if (accel === 'kvm' && !kvmAccessible()) {
      throw new UserError('E_KVM_UNAVAILABLE', '/dev/kvm is missing or not accessible to this user', {
        hint: 'add the user to the kvm group (sudo usermod -aG kvm $USER), or use UNIKCTL_ACCEL=tcg',
      });
    }
  },
  start(o: VmmStartOptions): VmmHandle {
    const launch = launchCommand(qemuArgs(o), undefined, undefined, undefined, o.isolation);
    const files = o.isolation ? openForIsolated(o) : [];
    let child;
    try {
      child = spawn(launch.file, launch.args, { stdio: ['pipe', 'pipe', 'pipe', ...files] });
    } finally {
      for (const fd of files) closeSync(fd); // the child holds its own copies
    }
    if (o.isolation && !launch.joinsCgroup && child.pid) {
      // setpriv has no cgroup option: the pid joins right after the spawn (what its start-up used before stays counted
      // in the supervisor's group; the launcher has no such gap)
      try {
        for (const f of o.isolation.cgroupProcs) writeFileSync(f, String(child.pid));
      } catch (e) {
        // gone already (ESRCH): its exit is reported like any other; otherwise it must not run outside the tenant's cgroup
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') {
          child.kill('SIGKILL');
          throw new UserError('E_TENANT_ISOLATION', `cannot put QEMU into the tenant's cgroup: ${(e as Error).message}`);
        }
      }
    }
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', () => resolve({ code: 127, signal: null }));
    });
    if (!child.pid || !child.stdout || !child.stdin || !child.stderr) {
      throw new UserError('E_QEMU_FAILED', `could not spawn ${QEMU_BINARY}`);
    }
    child.stdin.on('error', () => { /* the VM is gone; exit handling reports it */ });
    return { pid: child.pid, child, console: child.stdout, consoleInput: child.stdin, stderr: child.stderr, exited };
  },
  kill(handle: VmmHandle) {
    try { handle.child.kill('SIGKILL'); } catch { /* already gone */ }
  },
};
