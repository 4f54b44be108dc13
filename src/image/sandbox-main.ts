/**
 * The program a sandboxed build runs (src/image/sandbox.ts starts it inside bubblewrap as the build user):
 * `node sandbox-main.js JSON` runs the pack and packs the root filesystem, and reports on stdout as JSON lines:
 *   {"t":"step"|"line"|"warn","m":"…"}        progress, shown in the deployment's build log
 *   {"t":"result","name","pack","run"}         success: the erofs file is at <outDir>/rootfs.erofs
 *   {"t":"error","code","message","hint"}      failure with its error code
 * It sees only its own project copy, its cache, its work directory and the host's toolchains (read-only).
 */
import { renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { toUserError } from '../errors.js';
import { buildRootfs } from './build.js';
import type { BuildMode } from './pack.js';

export interface SandboxJob { dir: string; mode: BuildMode; cacheDir: string; workDir: string; outDir: string; rootfsDir?: string; defaultName: string; }

const emit = (event: Record<string, unknown>): void => {
  writeSync(1, `${JSON.stringify(event)}\n`);
};

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as SandboxJob;
  try {
    const built = await buildRootfs({
      dir: job.dir, mode: job.mode, cacheDir: job.cacheDir, workDir: job.workDir, env: process.env, defaultName: job.defaultName,
      ...(job.rootfsDir ? { rootfsDir: job.rootfsDir } : {}),
      progress: { step: (m) => emit({ t: 'step', m }), line: (m) => emit({ t: 'line', m }), warn: (m) => emit({ t: 'warn', m }) },
    });
    renameSync(built.erofsFile, join(job.outDir, 'rootfs.erofs'));
    emit({ t: 'result', name: built.name, pack: built.pack, run: built.run, toolchain: built.result.toolchain, inputs: built.result.inputs });
  } catch (e) {
    const err = toUserError(e);
    emit({ t: 'error', code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) });
    process.exitCode = 1;
  }
}

void main();
