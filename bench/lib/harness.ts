// What every benchmark needs: the repository's paths, the CLI, and a private unikctl home (never the user's state).
//
// The benchmarks import the project's modules from ../src like the CLI does (the runtime's argv builder, kernel
// command line, console parser, image helpers, the scheduler). tsconfig.bench.json compiles them, with those src
// modules, into dist-bench/ (bench/x.ts → dist-bench/bench/x.js, src/y.ts → dist-bench/src/y.js). Paths are
// therefore never computed from a benchmark's own location: ROOT is src/paths.ts's projectRoot, which looks for
// package.json upwards and so finds the repository from dist-bench/src as from dist/ — the VMM launcher, the
// guest init and the kernel config resolve to the same files the CLI uses. The CLI itself (bin/unikctl.js) runs
// from dist/, which the npm bench scripts build first, so both are compiled from the same src.
import { mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../src/paths.js';
import { onExit, run, type RunResult } from './proc.js';

export const ROOT = projectRoot;
export const CLI = join(ROOT, 'bin', 'unikctl.js');
export const RESULTS_DIR = join(ROOT, 'bench', 'results');

/** `2026-11-25T23-02-02Z`: the timestamp in result file names. */
export const fileStamp = (d: Date): string => d.toISOString().replace(/[:]/g, '-').replace(/\.\d+Z$/, 'Z');

/** A temporary UNIKCTL_HOME (removed on exit) and a `cli(args)` that runs unikctl in it, locally. */
export function privateHome(prefix: string, accel?: string): { home: string; env: NodeJS.ProcessEnv; cli: (args: string[]) => Promise<RunResult> } {
  const home = mkdtempSync(join(tmpdir(), prefix));
  onExit(() => rmSync(home, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = { ...process.env, UNIKCTL_HOME: home, NO_COLOR: '1' };
  if (accel !== undefined) env.UNIKCTL_ACCEL = accel;
  env.UNIKCTL_KERNEL_DIR ??= join(homedir(), '.local', 'state', 'unikctl', 'kernels');
  delete env.UNIKCTL_CONTROL_PLANE_URL;
  delete env.UNIKCTL_TOKEN;
  const cli = (args: string[]): Promise<RunResult> => run([process.execPath, CLI, ...args], { env, cwd: ROOT });
  return { home, env, cli };
}
