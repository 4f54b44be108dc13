import { beforeEach, describe, expect, it, vi } from 'vitest';
import { UserError } from '../errors.js';

// /proc/cpuinfo is controlled by the test so that tsc_early_khz is deterministic on any host.
const cpuinfo = vi.hoisted(() => ({ text: 'processor\t: 0\ncpu MHz\t\t: 2400.123\n' as string | null }));
vi.mock('node:fs', async (importOriginal) => {
  const orig = await importOriginal<typeof import('node:fs')>();
  const readFileSync = ((path: unknown, ...rest: unknown[]) => {
    if (path === '/proc/cpuinfo') {
      if (cpuinfo.text === null) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return cpuinfo.text;
    }
    return (orig.readFileSync as (...a: unknown[]) => unknown)(path, ...rest);
  }) as typeof orig.readFileSync;
  return { ...orig, readFileSync, default: { ...orig, readFileSync } };
});

const { encodeGuestConfig, guestRun, hostTscKhz, kernelCmdline, MAX_CMDLINE } = await import('./cmdline.js');
type PortMapping = import('../util/port.js').PortMapping;
type GuestConfig = import('./cmdline.js').GuestConfig;

const guest = (over: Partial<GuestConfig> = {}): GuestConfig => ({
  argv: ['/app/hello', '--port', '8080'],
  env: { GREETING: 'hi there', EMPTY: '' },
  workdir: '/app',
  nonce: '0123456789abcdef',
  hostname: 'hello',
  hostTimeMs: 1700000000123,
  debug: false,
  ...over,
});

function decode(b64: string): string[] {
  const parts = Buffer.from(b64, 'base64').toString('utf8').split('\0');
  expect(parts.at(-1)).toBe(''); // every record is NUL-terminated
  return parts.slice(0, -1);
}

const cfgOf = (cmdline: string): string[] => {
  const m = / unik\.cfg=([A-Za-z0-9+/=]+)$/.exec(cmdline);
  expect(m).not.toBeNull();
  return decode(m?.[1] ?? '');
};

const words = (cmdline: string): string[] => cmdline.split(' ');

beforeEach(() => {
  cpuinfo.text = 'processor\t: 0\ncpu MHz\t\t: 2400.123\n';
});

describe('encodeGuestConfig', () => {
  it('encodes typed, NUL-terminated records in order', () => {
    expect(decode(encodeGuestConfig(guest()))).toEqual([
      'a/app/hello', 'a--port', 'a8080',
      'eGREETING=hi there', 'eEMPTY=',
      'w/app', 'n0123456789abcdef', 'hhello', 't1700000000123',
    ]);
  });

  it('adds a p record per published guest port (once each), for the init\'s listener check', () => {
    expect(decode(encodeGuestConfig(guest({ listenPorts: [8080, 9090, 8080], debug: true }))).slice(-3)).toEqual(['p8080', 'p9090', 'd1']);
    expect(decode(encodeGuestConfig(guest())).some((r) => r.startsWith('p'))).toBe(false);
  });

  it('adds the d record only for debug', () => {
    expect(decode(encodeGuestConfig(guest({ debug: true }))).at(-1)).toBe('d1');
    expect(decode(encodeGuestConfig(guest({ debug: false }))).some((r) => r.startsWith('d'))).toBe(false);
  });

  it('keeps "=" in env values and UTF-8 text intact', () => {
    const recs = decode(encodeGuestConfig(guest({ argv: ['/app/x', 'héllo wörld'], env: { URL: 'a=b=c' } })));
    expect(recs).toContain('ahéllo wörld');
    expect(recs).toContain('eURL=a=b=c');
  });

  it('produces plain base64 (no spaces, safe on the kernel command line)', () => {
    expect(encodeGuestConfig(guest())).toMatch(/^[A-Za-z0-9+/]+=*$/);
  });

  it.each([
    ['an env value', { env: { K: 'a\0b' } }],
    ['an argument', { argv: ['/app/x', 'a\0b'] }],
    ['the workdir', { workdir: '/a\0' }],
  ])('rejects a NUL byte in %s', (_what, over) => {
    try {
      encodeGuestConfig(guest(over as Partial<GuestConfig>));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).code).toBe('E_INVALID_ARGUMENT');
    }
  });
});

describe('guestRun', () => {
  const run = { command: ['/app/x', '${PORT}'], env: { A: '1' }, workdir: '/app', memoryMiB: 64, ports: [8080, 9090] };
  const port = (guestPort: number): PortMapping => ({ hostAddress: '0.0.0.0', hostPort: guestPort + 10000, guestPort, protocol: 'tcp' });

  it('gives PORT the first published guest port; with none published, the image\'s port only when it declares exactly one', () => {
    expect(guestRun(run, { env: {}, ports: [port(81), port(82)] }).env).toEqual({ A: '1', PORT: '81' });
    expect(guestRun(run, { env: {}, ports: [] }).env).toEqual({ A: '1' });
    expect(guestRun({ ...run, ports: [5000] }, { env: {}, ports: [] }).env).toEqual({ A: '1', PORT: '5000' });
  });

  it('never overrides a PORT the image or -e sets', () => {
    expect(guestRun({ ...run, env: { PORT: '1' } }, { env: {}, ports: [port(81)] }).env.PORT).toBe('1');
    expect(guestRun(run, { env: { PORT: '2' }, ports: [port(81)] }).env.PORT).toBe('2');
  });

  it('expands Procfile assignments (ROCKET_PORT=$PORT) from the env they are made in; -e wins', () => {
    const r = { ...run, envTemplates: { ROCKET_PORT: '${PORT}', ADDR: '${HOST:-0.0.0.0}:${PORT}' } };
    expect(guestRun(r, { env: {}, ports: [port(81)] }).env).toEqual({ A: '1', PORT: '81', ROCKET_PORT: '81', ADDR: '0.0.0.0:81' });
    expect(guestRun(r, { env: { ROCKET_PORT: '9' }, ports: [port(81)] }).env.ROCKET_PORT).toBe('9');
  });

  it('expands a template command only when the image says so', () => {
    expect(guestRun({ ...run, expand: true }, { env: {}, ports: [port(81)] }).argv).toEqual(['/app/x', '81']);
    expect(guestRun(run, { env: {}, ports: [port(81)] }).argv).toEqual(['/app/x', '${PORT}']);
  });
});

describe('hostTscKhz', () => {
  it('reads cpu MHz from /proc/cpuinfo as kHz', () => {
    expect(hostTscKhz()).toBe(2400123);
  });
  it('is null without a cpu MHz line or without the file', () => {
    cpuinfo.text = 'processor\t: 0\n';
    expect(hostTscKhz()).toBeNull();
    cpuinfo.text = null;
    expect(hostTscKhz()).toBeNull();
  });
});

describe('kernelCmdline', () => {
  const base = { guest: guest(), debug: false, accel: 'kvm' as const, network: true };

  it('boots a read-only erofs root on /dev/vda with the guest init', () => {
    const w = words(kernelCmdline(base));
    expect(w).toEqual(expect.arrayContaining(['console=ttyS0', 'root=/dev/vda', 'rootfstype=erofs', 'ro', 'init=/init', 'panic=-1']));
    expect(w).not.toContain('rw');
  });

  it('is quiet in release and verbose in debug', () => {
    const rel = words(kernelCmdline(base));
    expect(rel).toContain('quiet');
    expect(rel).toContain('loglevel=1');
    expect(rel).not.toContain('loglevel=7');
    const dbg = words(kernelCmdline({ ...base, debug: true }));
    expect(dbg).not.toContain('quiet');
    expect(dbg).toContain('loglevel=7');
    expect(dbg).not.toContain('loglevel=1');
  });

  it('passes tsc_early_khz only under TCG', () => {
    expect(kernelCmdline(base)).not.toContain('tsc_early_khz=');
    expect(words(kernelCmdline({ ...base, accel: 'tcg' }))).toContain('tsc_early_khz=2400123');
  });

  it('omits tsc_early_khz under TCG when the host frequency is unknown', () => {
    cpuinfo.text = 'processor\t: 0\n';
    expect(kernelCmdline({ ...base, accel: 'tcg' })).not.toContain('tsc_early_khz');
  });

  it('tells the kernel the APIC timer rate under TCG (no calibration, tickless idle); PIT timers on request', () => {
    const tcg = words(kernelCmdline({ ...base, accel: 'tcg', env: {} }));
    expect(tcg).toContain('lapic_timer_khz=1000000');
    expect(tcg).toContain('tsc=reliable');
    expect(tcg).not.toContain('noapictimer');
    const pit = words(kernelCmdline({ ...base, accel: 'tcg', env: { UNIKCTL_TCG_TIMER: 'pit' } }));
    expect(pit).toContain('noapictimer');
    expect(pit.some((w) => w.startsWith('lapic_timer_khz='))).toBe(false);
    // KVM guests have the TSC-deadline timer: nothing to tell them
    const kvm = words(kernelCmdline({ ...base, env: {} }));
    expect(kvm.some((w) => w.startsWith('lapic_timer_khz=') || w === 'noapictimer' || w === 'tsc=reliable')).toBe(false);
  });

  it('mounts the erofs root without a compressed-page cache', () => {
    expect(words(kernelCmdline(base))).toEqual(expect.arrayContaining(['rootfstype=erofs', 'rootflags=cache_strategy=disabled', 'ro']));
  });

  it('configures the QEMU user-mode network statically with the hostname', () => {
    expect(words(kernelCmdline(base))).toContain('ip=10.0.2.15::10.0.2.2:255.255.255.0:hello:eth0:off:10.0.2.3');
    expect(kernelCmdline({ ...base, network: false })).not.toContain('ip=');
  });

  it('ends with the encoded guest config', () => {
    const c = kernelCmdline({ ...base, guest: guest({ debug: true }) });
    expect(cfgOf(c)).toEqual(decode(encodeGuestConfig(guest({ debug: true }))));
  });

  it('fails with E_CMDLINE_TOO_LONG when the environment does not fit', () => {
    const big = guest({ env: { BIG: 'x'.repeat(2000) } });
    try {
      kernelCmdline({ ...base, guest: big });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).code).toBe('E_CMDLINE_TOO_LONG');
      expect((e as UserError).hint).toBeTruthy();
    }
  });

  it('accepts a configuration right up to the limit and leaves room for QEMU', () => {
    // find the largest env value that is accepted: the result must stay under MAX_CMDLINE - 160
    let lo = 0;
    let hi = 2000;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      try {
        kernelCmdline({ ...base, guest: guest({ env: { V: 'y'.repeat(mid) } }) });
        lo = mid;
      } catch {
        hi = mid - 1;
      }
    }
    const c = kernelCmdline({ ...base, guest: guest({ env: { V: 'y'.repeat(lo) } }) });
    expect(c.length).toBeLessThanOrEqual(MAX_CMDLINE - 160);
    expect(c.length).toBeGreaterThan(MAX_CMDLINE - 160 - 8);
  });
});
