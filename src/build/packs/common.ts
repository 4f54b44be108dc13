import { UserError } from '../../errors.js';
import type { RunResult } from '../../util/exec.js';

/** A failed compile: keep the compiler's own words (last lines) in the error. */
export function compileFailed(what: string, r: RunResult): UserError {
  const output = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-30).join('\n');
  return new UserError('E_BUILD_FAILED', `${what} failed (exit ${r.code ?? r.signal}):\n${output}`, {
    hint: 'fix the error above; the previous image (if any) is left as it was',
  });
}
