import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { homeLayout } from '../../src/paths.js';
import { kernelConfigHash } from '../../src/kernel/kernel.js';

/** e2e tests need the set-up's artifacts; say what is missing instead of failing 20 tests obscurely. */
export default function setup(): void {
  const root = join(import.meta.dirname, '..', '..');
  const missing: string[] = [];
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) missing.push('dist/ (npm run build)');
  if (!existsSync(join(root, 'guest', 'build', 'unik-init'))) missing.push('guest/build/unik-init (make -C guest)');
  else if (!initIsCurrent(join(root, 'guest'))) missing.push('an up-to-date guest/build/unik-init: it was built from another init.c (make -C guest)');
  const kernels = homeLayout(process.env).kernels;
  for (const v of ['release', 'debug'] as const) {
    if (!existsSync(join(kernels, `${v}-${kernelConfigHash(v)}`, 'vmlinux'))) missing.push(`${v} kernel in ${kernels} (kernel/build.sh ${v})`);
  }
  if (missing.length > 0) throw new Error(`e2e prerequisites missing — run make setup:\n  ${missing.join('\n  ')}`);
}

/** The init was built from these sources: guest/Makefile records the sha256 of init.c then Makefile next to it. */
function initIsCurrent(guest: string): boolean {
  const hash = createHash('sha256').update(readFileSync(join(guest, 'init.c'))).update(readFileSync(join(guest, 'Makefile'))).digest('hex');
  try {
    return readFileSync(join(guest, 'build', 'unik-init.src-sha256'), 'utf8').trim() === hash;
  } catch {
    return false;
  }
}
