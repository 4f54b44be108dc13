import { describe, expect, it } from 'vitest';
import type { PortMapping } from '../util/port.js';
import { launchCommand, QEMU_BINARY, qemuArgs, tcgCacheMiB } from './qemu.js';
import type { VmmStartOptions } from './vmm.js';

const opts = (over: Partial<VmmStartOptions> = {}): VmmStartOptions => ({
  name: 'hello',
  kernel: '/cache/vmlinux/abc',
  rootfs: '/deployments/hello/image/rootfs.erofs',
  cmdline: 'console=ttyS0 root=/dev/vda ro unik.cfg=AAAA',
  memoryMiB: 256,
  cpus: 2,
  ports: [],
  accel: 'kvm',
  ...over,
});

/** The value following a flag (the first occurrence). */
function valueOf(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i === -1 ? undefined : args[i + 1];
}
/** Every value given to a repeated flag. */
function valuesOf(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag && i + 1 < args.length ? [args[i + 1] as string] : []));
}

const port = (hostAddress: string, hostPort: number, guestPort: number): PortMapping => ({ hostAddress, hostPort, guestPort, protocol: 'tcp' });

describe('qemuArgs', () => {
  it('uses the microvm machine without ACPI or option ROMs', () => {
    const m = valueOf(qemuArgs(opts()), '-M') ?? '';
    expect(m.split(',')[0]).toBe('microvm');
    expect(m.split(',')).toEqual(expect.arrayContaining(['acpi=off', 'x-option-roms=off']));
  });

  it('has no default devices, no user config, no display and no reboot', () => {
    const a = qemuArgs(opts());
    expect(a).toEqual(expect.arrayContaining(['-nodefaults', '-no-user-config', '-no-reboot']));
    expect(valueOf(a, '-display')).toBe('none');
  });

  it('turns the seccomp sandbox on and denies spawning', () => {
    const s = valueOf(qemuArgs(opts()), '-sandbox') ?? '';
    const parts = s.split(',');
    expect(parts[0]).toBe('on');
    expect(parts).toEqual(expect.arrayContaining(['spawn=deny', 'elevateprivileges=deny', 'obsolete=deny', 'resourcecontrol=deny']));
  });

  it('attaches the root filesystem as one read-only virtio-blk drive', () => {
    const a = qemuArgs(opts());
    const drives = valuesOf(a, '-drive');
    expect(drives).toHaveLength(1);
    const drive = (drives[0] ?? '').split(',');
    expect(drive).toEqual(expect.arrayContaining(['id=root', 'file=/deployments/hello/image/rootfs.erofs', 'format=raw', 'if=none', 'readonly=on']));
    expect(valuesOf(a, '-device')).toContain('virtio-blk-device,drive=root');
  });

  it('exposes only a virtio-blk and a virtio-net device', () => {
    expect(valuesOf(qemuArgs(opts()), '-device')).toEqual(['virtio-blk-device,drive=root', 'virtio-net-device,netdev=net0']);
  });

  it('passes the kernel, command line, memory and CPUs as given', () => {
    const a = qemuArgs(opts());
    expect(valueOf(a, '-kernel')).toBe('/cache/vmlinux/abc');
    expect(valueOf(a, '-append')).toBe('console=ttyS0 root=/dev/vda ro unik.cfg=AAAA');
    expect(valueOf(a, '-m')).toBe('256M');
    expect(valueOf(a, '-smp')).toBe('2');
  });

  it('names the process after the deployment', () => {
    expect(valueOf(qemuArgs(opts({ name: 'web-2' })), '-name')).toBe('unikctl-web-2,process=unikctl-web-2');
  });

  it('routes the serial console to stdio', () => {
    const a = qemuArgs(opts());
    expect(valueOf(a, '-chardev')).toBe('stdio,id=console,signal=off');
    expect(valueOf(a, '-serial')).toBe('chardev:console');
  });

  it('uses user-mode networking without forwards when no port is published', () => {
    expect(valueOf(qemuArgs(opts()), '-netdev')).toBe('user,id=net0');
  });

  it('adds one hostfwd per published port, with and without a bind address', () => {
    const a = qemuArgs(opts({ ports: [port('0.0.0.0', 8080, 80), port('127.0.0.1', 9000, 9090)] }));
    expect(valueOf(a, '-netdev')).toBe('user,id=net0,hostfwd=tcp::8080-:80,hostfwd=tcp:127.0.0.1:9000-:9090');
  });

  it('uses KVM with the host CPU', () => {
    const a = qemuArgs(opts({ accel: 'kvm' }));
    expect(valueOf(a, '-accel')).toBe('kvm');
    expect(valueOf(a, '-cpu')).toBe('host');
  });

  it('uses TCG with the max CPU model', () => {
    const a = qemuArgs(opts({ accel: 'tcg' }));
    expect(valueOf(a, '-accel')).toBe('tcg,tb-size=64'); // translation cache sized with the 256 MiB guest
    expect(valueOf(a, '-cpu')).toBe('max');
    expect(a).not.toContain('-enable-kvm');
  });
});

describe('tcgCacheMiB', () => {
  it('gives small native guests 8 MiB, bigger ones guest/4 within 16–64 MiB, with an override', () => {
    expect(tcgCacheMiB(64, {})).toBe(8);
    expect(tcgCacheMiB(32, {})).toBe(8);
    expect(tcgCacheMiB(65, {})).toBe(16);
    expect(tcgCacheMiB(128, {})).toBe(32);
    expect(tcgCacheMiB(4096, {})).toBe(64);
    expect(tcgCacheMiB(64, { UNIKCTL_TCG_TB_MIB: '128' })).toBe(128);
  });
});

describe('launchCommand', () => {
  it('starts QEMU through the launcher with this process as the parent to watch', () => {
    const l = launchCommand(['-m', '64M'], process.execPath, 4242, {});
    expect(l).toEqual({ file: process.execPath, args: ['4242', QEMU_BINARY, '-m', '64M'], launcher: 'unikctl-launch', joinsCgroup: true });
  });

  it('falls back to setpriv --pdeathsig when the launcher is not built, or when huge pages are asked for', () => {
    const fallback = { file: 'setpriv', args: ['--pdeathsig', 'SIGKILL', '--', QEMU_BINARY, '-m', '64M'], launcher: 'setpriv', joinsCgroup: false };
    expect(launchCommand(['-m', '64M'], '/nonexistent/unikctl-launch', 4242, {})).toEqual(fallback);
    expect(launchCommand(['-m', '64M'], process.execPath, 4242, { UNIKCTL_GUEST_THP: 'on' })).toEqual(fallback);
  });

  const isolation = { user: 'unikctl-t-acme', uid: 990, gid: 989, cgroupProcs: ['/cg/memory/unikctl/tenant-acme/cgroup.procs', '/cg/cpu/unikctl/tenant-acme/cgroup.procs'] };

  it('has the launcher join the tenant\'s cgroups and drop to the tenant\'s user before QEMU runs', () => {
    const l = launchCommand(['-m', '64M'], process.execPath, 4242, {}, isolation);
    expect(l.args).toEqual([
      '--cgroup', '/cg/memory/unikctl/tenant-acme/cgroup.procs', '--cgroup', '/cg/cpu/unikctl/tenant-acme/cgroup.procs',
      '--user', 'unikctl-t-acme', '4242', QEMU_BINARY, '-m', '64M',
    ]);
    expect(l.joinsCgroup).toBe(true);
  });

  it('has setpriv change the user (before it arms the death signal); the caller adds the pid to the cgroups', () => {
    const l = launchCommand(['-m', '64M'], '/nonexistent/unikctl-launch', 4242, {}, isolation);
    expect(l).toEqual({
      file: 'setpriv', args: ['--reuid=990', '--regid=989', '--init-groups', '--pdeathsig', 'SIGKILL', '--', QEMU_BINARY, '-m', '64M'],
      launcher: 'setpriv', joinsCgroup: false,
    });
  });
});

describe('qemuArgs of a tenant\'s VM', () => {
  const isolated = qemuArgs(opts({ isolation: { user: 'unikctl-t-acme', uid: 990, gid: 989, cgroupProcs: [] } }));

  it('names no host path: the kernel is reopened through fd 3, the root filesystem is fd 4 in an fd set', () => {
    expect(valueOf(isolated, '-kernel')).toBe('/proc/self/fd/3');
    expect(valueOf(isolated, '-add-fd')).toBe('fd=4,set=1,opaque=rootfs');
    expect((valuesOf(isolated, '-drive')[0] ?? '').split(',')).toEqual(expect.arrayContaining(['file=/dev/fdset/1', 'readonly=on']));
    expect(isolated.join(' ')).not.toContain('/deployments/hello');
    expect(isolated.join(' ')).not.toContain('/cache/vmlinux');
  });

  it('keeps everything else of the VM as in local mode', () => {
    const plain = qemuArgs(opts());
    const strip = (a: string[]): string[] => a.filter((x, i) => !['-kernel', '-drive', '-add-fd'].includes(x) && !['-kernel', '-drive', '-add-fd'].includes(a[i - 1] ?? ''));
    expect(strip(isolated)).toEqual(strip(plain));
  });
});
