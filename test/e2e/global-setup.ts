import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { homeLayout } from '../../src/paths.js';
import { kernelConfigHash } from '../../src/kernel/kernel.js';

/** e2e tests need the set-up's artifacts; say what is missing instead of failing 20 tests obscurely. */
export default function setup(): void {
  const root = join(import.meta.dirname, '..', '..');
  const missing: string[] = [];
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) missing.push('dist/ (npm run build)');
  if (!existsSync(join(root, 'guest', 'build', 'unik-init'))) missing.push('guest/build/unik-init (make -C guest)');
  const kernels = homeLayout(process.env).kernels;
  for (const v of ['release', 'debug'] as const) {
    if (!existsSync(join(kernels, `${v}-${kernelConfigHash(v)}`, 'vmlinux'))) missing.push(`${v} kernel in ${kernels} (kernel/build.sh ${v})`);
  }
  if (missing.length > 0) throw new Error(`e2e prerequisites missing — run make setup:\n  ${missing.join('\n  ')}`);
}
