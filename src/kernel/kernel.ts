import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { leanVmlinux } from './elf-lean.js';
import { projectRoot, setupCommand, type HomeLayout } from '../paths.js';

export type KernelVariant = 'release' | 'debug';

/** `vmlinux` is the ELF QEMU boots (the lean copy, see elf-lean.ts); `vmlinuxBr` is what images carry. */
export interface KernelInfo { variant: KernelVariant; hash: string; dir: string; vmlinux: string; vmlinuxBr: string; }

let cachedSourceVersion: string | null = null;

function sourceVersion(): string {
  if (cachedSourceVersion) return cachedSourceVersion;
  try {
    cachedSourceVersion = execFileSync('dpkg-query', ['-W', '-f=${Version}', 'linux-source-6.1'], { encoding: 'utf8' }).trim();
  } catch {
    throw new UserError('E_KERNEL_MISSING', 'the Debian package linux-source-6.1 is not installed', {
      hint: `run the set-up: ${setupCommand()} (or apt-get install linux-source-6.1 && ${join(projectRoot, 'kernel', 'build.sh')} release)`,
    });
  }
  return cachedSourceVersion;
}

/** The Debian linux-source version the kernels are built from (for the SBOM), or null when it is not installed. */
export function kernelSourceVersion(): string | null {
  try {
    return sourceVersion();
  } catch {
    return null;
  }
}

/** Same digest as kernel/build.sh: the config fragments, the patches and the kernel source version name a build. */
export function kernelConfigHash(variant: KernelVariant, srcVersion = sourceVersion()): string {
  const dir = join(projectRoot, 'kernel', 'config');
  const h = createHash('sha256');
  h.update(`unikctl-kernel-v1\n${variant}\n${srcVersion}\n`);
  h.update(readFileSync(join(dir, 'base.config')));
  h.update('\n--\n');
  h.update(readFileSync(join(dir, `${variant}.config`)));
  const patchDir = join(projectRoot, 'kernel', 'patches');
  const patches = existsSync(patchDir) ? readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort() : [];
  for (const p of patches) {
    h.update(`\n-- patch ${p}\n`);
    h.update(readFileSync(join(patchDir, p)));
  }
  return h.digest('hex').slice(0, 16);
}

/** Brotli at its densest (quality 11, a 16 MiB window: the whole kernel is one window). */
export function compressKernel(bytes: Buffer): Buffer {
  return brotliCompressSync(bytes, {
    params: {
      [zlibConstants.BROTLI_PARAM_QUALITY]: zlibConstants.BROTLI_MAX_QUALITY,
      [zlibConstants.BROTLI_PARAM_LGWIN]: 24,
      [zlibConstants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
}

/** Finds the cached kernel for the current config; never builds (that is the set-up's job: ~5 min). */
export function locateKernel(layout: HomeLayout, variant: KernelVariant): KernelInfo {
  const hash = kernelConfigHash(variant);
  const dir = join(layout.kernels, `${variant}-${hash}`);
  const vmlinux = join(dir, 'vmlinux');
  if (!existsSync(vmlinux)) {
    throw new UserError('E_KERNEL_MISSING', `the ${variant} kernel for the current config (${hash}) is not built in ${layout.kernels}`, {
      hint: `run the set-up (${setupCommand()}), or build it directly: ${join(projectRoot, 'kernel', 'build.sh')} ${variant}`,
    });
  }
  // QEMU boots a lean copy (2 MiB alignment padding removed: less guest RAM written, a smaller file kept mapped);
  // images carry it brotli-compressed: 1.69 MB instead of gzip -9's 2.00 MB for the release kernel, and every
  // image carries one. Quality 11 takes ~12 s, paid once per kernel build; unpacking takes ~30 ms, once per digest.
  const lean = join(dir, 'vmlinux.lean');
  const vmlinuxBr = join(dir, 'vmlinux.lean.br');
  if (!existsSync(vmlinuxBr) || !existsSync(lean)) {
    const bytes = leanVmlinux(readFileSync(vmlinux));
    const tmp = `.tmp-${process.pid}`;
    writeFileSync(lean + tmp, bytes);
    writeFileSync(vmlinuxBr + tmp, compressKernel(bytes));
    renameSync(lean + tmp, lean);
    renameSync(vmlinuxBr + tmp, vmlinuxBr);
  }
  return { variant, hash, dir, vmlinux: lean, vmlinuxBr };
}
