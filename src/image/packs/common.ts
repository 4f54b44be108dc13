import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../errors.js';
import { which, type RunResult } from '../../util/exec.js';
import type { BuildContext } from '../pack.js';

/** A failed compile: keep the compiler's own words (last lines) in the error. */
export function compileFailed(what: string, r: RunResult): UserError {
  const output = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-30).join('\n');
  return new UserError('E_BUILD_FAILED', `${what} failed (exit ${r.code ?? r.signal}):\n${output}`, {
    hint: 'fix the error above; the previous image (if any) is left as it was',
  });
}

/** A file name, or any file whose name matches a pattern, at the top of the project directory. */
export function hasFile(dir: string, name: string | RegExp): boolean {
  if (typeof name === 'string') return existsSync(join(dir, name));
  try {
    return readdirSync(dir).some((f) => name.test(f));
  } catch {
    return false;
  }
}

/** The path of a required host tool, or E_TOOLCHAIN_MISSING naming what to install. */
export function requireTool(cmd: string, env: NodeJS.ProcessEnv, install: string): string {
  const path = which(cmd, env);
  if (!path) throw new UserError('E_TOOLCHAIN_MISSING', `${cmd} is not on PATH`, { hint: install });
  return path;
}

/** BLD-4: a release build without its lock input fails; a debug build warns. */
export function requireLock(ctx: BuildContext, present: boolean, what: string, fix: string): void {
  if (present) return;
  if (ctx.mode === 'release') throw new UserError('E_LOCK_REQUIRED', `${what}: a release build needs pinned dependencies`, { hint: `${fix}, or build with --debug` });
  ctx.warn(`${what}; a release build will refuse this (E_LOCK_REQUIRED)`);
}
