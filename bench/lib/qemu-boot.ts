// One direct QEMU boot, timed from spawn to the app's first console line, using the runtime's own console
// parser (src/runtime/console.ts) so "first app output" means exactly what `unikctl status` records.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { ConsoleParser } from '../../src/runtime/console.js';
import { launchCommand } from '../../src/runtime/qemu.js';
import { track } from './proc.js';

export const QEMU = 'qemu-system-x86_64';

export interface BootResult {
  ok: boolean;
  spawnToAppStartMs: number | null;
  spawnToFirstOutputMs: number | null;
  guestUptimeAtAppStartMs: number | null;
  firstLine: string | null;
  error: string | null;
  consoleTail?: string[];
}

/**
 * Boots `qemuArgv` (everything after the QEMU binary), waits for the guest init's start marker and then the
 * first app line, then kills QEMU. Spawned the way the runtime spawns it (`launchCommand` from
 * src/runtime/qemu.ts: host/launch.c, death signal + no huge pages), so QEMU also dies if the benchmark is killed.
 */
export async function bootOnce({ qemuArgv, nonce, timeoutMs = 120_000 }: { qemuArgv: string[]; nonce: string; timeoutMs?: number }): Promise<BootResult> {
  const t0 = performance.now();
  const launch = launchCommand(qemuArgv);
  const child = track(spawn(launch.file, launch.args, { stdio: ['pipe', 'pipe', 'pipe'] }));
  child.stdin.on('error', () => {});
  const r: BootResult = { ok: false, spawnToAppStartMs: null, spawnToFirstOutputMs: null, guestUptimeAtAppStartMs: null, firstLine: null, error: null };
  const tail: string[] = [];
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr = (stderr + c).slice(-2000); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: string }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', (e) => resolve({ code: 127, signal: null, error: e.message }));
  });
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => { finish = resolve; });
  let started = false;
  const parser = new ConsoleParser(nonce, {
    line: (l) => {
      tail.push(`${l.stream}: ${l.text}`);
      if (tail.length > 30) tail.shift();
      if (l.stream === 'app' && started && r.spawnToFirstOutputMs === null) {
        r.spawnToFirstOutputMs = performance.now() - t0;
        r.firstLine = l.text;
        r.ok = true;
        finish();
      }
    },
    event: (e) => {
      if (e.event === 'start' && !started) {
        started = true;
        r.spawnToAppStartMs = performance.now() - t0;
        r.guestUptimeAtAppStartMs = Number(e.fields.uptime_ms ?? NaN);
      } else if (e.event === 'error') {
        r.error = `guest init: ${e.message}`;
      }
    },
  });
  child.stdout.on('data', (c: Buffer) => parser.push(c));
  const timer = setTimeout(() => { if (!r.ok) r.error ??= `no app output within ${timeoutMs} ms`; finish(); }, timeoutMs);
  void exited.then((x) => {
    parser.flush();
    if (!r.ok) r.error ??= `QEMU exited (${x.signal ?? (x.code === 0 ? 'code 0: the guest reset or powered off, -no-reboot' : `code ${x.code}`)}) before the app wrote anything${stderr.trim() ? `: ${stderr.trim().split('\n').at(-1)}` : ''}`;
    finish();
  });
  await done;
  clearTimeout(timer);
  child.kill('SIGKILL');
  await exited;
  parser.close();
  if (!r.ok) r.consoleTail = tail.slice(-15);
  return r;
}
