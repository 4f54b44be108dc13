import { UserError } from '../errors.js';
import { readFileSync } from 'node:fs';

/** One process: its pid plus its start time, so a reused pid is not mistaken for it. */
export interface ProcessRef { pid: number; startTime: string; }

/** Field 22 of /proc/PID/stat (start time in clock ticks): with the pid it names one process, immune to pid reuse. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    if (state === 'Z' || state === 'X') return null; // a zombie has already exited
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

export function processRef(pid: number): ProcessRef | null {
  const startTime = processStartTime(pid);
  return startTime === null ? null : { pid, startTime };
}

export function isAlive(ref: ProcessRef | null | undefined): boolean {
  if (!ref) return false;
  return processStartTime(ref.pid) === ref.startTime;
}

/** Sends a signal only if the pid still names the same process. */
export function signalRef(ref: ProcessRef | null | undefined, signal: NodeJS.Signals): boolean {
  if (!ref || !isAlive(ref)) return false;
  try {
    process.kill(ref.pid, signal);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitUntilDead(ref: ProcessRef | null | undefined, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(ref)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** A millisecond setting from the environment; a value that is not a non-negative number is an error, never NaN. */
export function envMs(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    throw new UserError('E_INVALID_ARGUMENT', `${name}=${raw} is not a number of milliseconds`, { hint: `unset ${name} or give e.g. ${fallback}` });
  }
  return n;
}
