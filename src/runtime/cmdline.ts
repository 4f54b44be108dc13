import { readFileSync } from 'node:fs';
import { UserError } from '../errors.js';
import type { RunConfig } from '../image/image.js';
import { expandArgv, expandWord } from '../image/procfile.js';
import type { PortMapping } from '../util/port.js';

/** QEMU's emulated local APIC (TCG) counts at 1 GHz (APIC_BUS_CYCLE_NS = 1 in hw/intc/apic_common). */
export const TCG_APIC_KHZ = 1_000_000;

/** x86 COMMAND_LINE_SIZE is 2048 bytes including the terminating NUL. */
export const MAX_CMDLINE = 2047;

export interface GuestConfig {
  argv: string[];
  env: Record<string, string>;
  workdir: string;
  nonce: string;
  hostname: string;
  hostTimeMs: number;
  debug: boolean;
  /** the published guest ports: the init looks at the app's listeners less often once they are all served */
  listenPorts?: number[];
}

/**
 * What the app gets: the image's env under deploy -e; PORT (the Heroku/Render/Fly convention) set to the first
 * published guest port, else to the image's port when it declares exactly one, unless the image or -e sets it;
 * then a Procfile command's $VAR references expanded from that final environment (the guest has no shell).
 */
export function guestRun(run: RunConfig, deploy: { env: Record<string, string>; ports: PortMapping[] }): { argv: string[]; env: Record<string, string> } {
  const env = { ...run.env, ...deploy.env };
  const port = deploy.ports[0]?.guestPort ?? (run.ports.length === 1 ? run.ports[0] : undefined);
  if (env.PORT === undefined && port !== undefined) env.PORT = String(port);
  // `ROCKET_PORT=$PORT ./server`: the assignment sees the environment it is made in (as in a shell); -e still wins
  const base = { ...env };
  for (const [k, v] of Object.entries(run.envTemplates ?? {})) if (deploy.env[k] === undefined) env[k] = expandWord(v, base);
  return { argv: run.expand ? expandArgv(run.command, env) : run.command, env };
}

/** Encodes the run configuration for the guest init: NUL-terminated typed records, base64 (see guest/init.c). */
export function encodeGuestConfig(c: GuestConfig): string {
  const records: string[] = [];
  for (const a of c.argv) records.push(`a${a}`);
  for (const [k, v] of Object.entries(c.env)) records.push(`e${k}=${v}`);
  records.push(`w${c.workdir}`, `n${c.nonce}`, `h${c.hostname}`, `t${c.hostTimeMs}`);
  for (const p of new Set(c.listenPorts ?? [])) records.push(`p${p}`);
  if (c.debug) records.push('d1');
  for (const r of records) {
    if (r.includes('\0')) throw new UserError('E_INVALID_ARGUMENT', 'arguments and environment values cannot contain NUL bytes');
  }
  return Buffer.from(records.map((r) => `${r}\0`).join(''), 'utf8').toString('base64');
}

/** Host TSC frequency for tsc_early_khz: skipping PIT calibration avoids a boot hang seen under TCG on busy hosts. */
export function hostTscKhz(): number | null {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m && m[1] ? Math.round(Number(m[1]) * 1000) : null;
  } catch {
    return null;
  }
}

export function kernelCmdline(opts: { guest: GuestConfig; debug: boolean; accel: 'kvm' | 'tcg'; network: boolean; env?: NodeJS.ProcessEnv }): string {
  const parts = [
    'console=ttyS0',
    'reboot=t',
    'panic=-1',
    'root=/dev/vda',
    'rootfstype=erofs',
    // decompress in place: no second copy of compressed blocks in the guest page cache (−2 MiB per idle Go VM)
    'rootflags=cache_strategy=disabled',
    'ro',
    'init=/init',
    // seed the kernel's RNG from RDRAND at once: otherwise getrandom() blocks runtimes like Node for seconds under TCG
    'random.trust_cpu=on',
    opts.debug ? 'loglevel=7' : 'quiet loglevel=1',
  ];
  // skip the 5-tick timer sanity check and one-by-one SMP instruction patching (~75 ms under TCG)
  parts.push('no_timer_check', 'noreplace-smp');
  if (opts.accel === 'tcg') {
    const khz = hostTscKhz();
    if (khz) parts.push(`tsc_early_khz=${khz}`);
    // a TSC marked unstable on a busy host leaves an idle guest waking ~2,000 times a second
    parts.push('tsc=reliable');
    // TCG offers no TSC-deadline timer, so the kernel would spend ~0.25 s calibrating the APIC timer against the PIT.
    // Our kernel takes the rate instead (kernel/patches/0001: QEMU's emulated APIC counts at 1 GHz) and keeps the
    // tickless APIC timer: fast boot and ~3 wake-ups/s per idle VM. UNIKCTL_TCG_TIMER=pit is the old trade-off
    // (PIT clock events: ~155 wake-ups/s ≈ 1 % of a core per idle VM), kept for comparison.
    parts.push((opts.env ?? process.env).UNIKCTL_TCG_TIMER === 'pit' ? 'noapictimer' : `lapic_timer_khz=${TCG_APIC_KHZ}`);
  }
  if (opts.network) parts.push(`ip=10.0.2.15::10.0.2.2:255.255.255.0:${opts.guest.hostname}:eth0:off:10.0.2.3`);
  parts.push(`unik.cfg=${encodeGuestConfig(opts.guest)}`);
  const cmdline = parts.join(' ');
  // QEMU appends the virtio-mmio device list (~100 bytes) to what we pass.
  if (cmdline.length > MAX_CMDLINE - 160) {
    throw new UserError('E_CMDLINE_TOO_LONG', `the command, arguments and environment take ${cmdline.length} bytes of the kernel command line (limit ~${MAX_CMDLINE - 160})`, {
      hint: 'shorten the environment (-e) or the arguments; large configuration belongs in files inside the image (unik.yaml rootfs:)',
    });
  }
  return cmdline;
}
