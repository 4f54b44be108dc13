// Process helpers for the benchmarks: argv-array spawning, and a registry of every process started so that
// all of them are killed when the benchmark ends, fails or is interrupted.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const live = new Set<ChildProcess>();
const exitHooks: Array<() => void> = [];

/** `timeoutMs`: SIGKILL the process after that long (the run then ends with a note on stderr). */
export interface RunOptions { cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number }
export interface RunResult<T extends string | Buffer = string> { code: number; stdout: T; stderr: string }

/** Runs argv to completion. stdout is a string unless `encoding: 'buffer'`. */
export function run(argv: readonly string[], opts?: RunOptions & { encoding?: 'utf8' }): Promise<RunResult>;
export function run(argv: readonly string[], opts: RunOptions & { encoding: 'buffer' }): Promise<RunResult<Buffer>>;
export function run(argv: readonly string[], { cwd, env, encoding = 'utf8', input, timeoutMs }: RunOptions & { encoding?: 'utf8' | 'buffer' } = {}): Promise<RunResult<string | Buffer>> {
  return new Promise((resolve) => {
    const child = spawn(argv[0] as string, argv.slice(1), { cwd, env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    track(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c)); // never null: both are pipes
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    if (input !== undefined) child.stdin?.end(input);
    const timer = timeoutMs === undefined ? null : setTimeout(() => { err.push(Buffer.from(`\n(timed out after ${timeoutMs / 1000} s)`)); child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e) => err.push(Buffer.from(String(e.message))));
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out);
      resolve({ code: code ?? (signal ? 128 : 1), stdout: encoding === 'buffer' ? stdout : stdout.toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** Registers a child so killAll() reaches it; it is forgotten once it exits. */
export function track<C extends ChildProcess>(child: C): C {
  live.add(child);
  child.on('exit', () => live.delete(child));
  return child;
}

export function killAll(): void {
  for (const c of live) {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
  }
}

/** Synchronous clean-up steps run on exit (after killAll), last registered first, e.g. destroying deployments. */
export function onExit(fn: () => void): void {
  exitHooks.unshift(fn);
}

/**
 * SIGKILLs every process whose environment holds `KEY=value` exactly (e.g. the bench's private UNIKCTL_HOME):
 * the backstop for detached workers and their VMs that a destroy could not reach. Returns the pids killed.
 */
export function killByEnv(key: string, value: string): number[] {
  const needle = Buffer.from(`\0${key}=${value}\0`);
  const killed: number[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)) {
    if (pid === process.pid) continue;
    try {
      const envBuf = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${pid}/environ`), Buffer.from([0])]);
      if (envBuf.includes(needle)) { process.kill(pid, 'SIGKILL'); killed.push(pid); }
    } catch { /* gone, or not ours to read */ }
  }
  return killed;
}

let installed = false;
/** Kills every tracked process and runs the exit hooks on normal exit, error, Ctrl-C and SIGTERM. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  let done = false;
  const cleanup = () => {
    if (done) return;
    done = true;
    killAll();
    for (const fn of exitHooks.splice(0)) {
      try { fn(); } catch { /* best effort */ }
    }
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping every VM this run started\n`);
      cleanup();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
  process.on('uncaughtException', (e) => {
    process.stderr.write(`bench: ${e.stack ?? String(e)}\n`);
    cleanup();
    process.exit(1);
  });
}

/** Synchronous run for exit hooks (no event loop is left to run async code there). */
export function runSync(argv: readonly string[], { env, timeoutMs = 30_000 }: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(argv[0] as string, argv.slice(1), { env, timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
}

/** A TCP port free on 127.0.0.1 right now (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = addr !== null && typeof addr === 'object' ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
