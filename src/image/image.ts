import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { UserError } from '../errors.js';
import type { KernelInfo } from '../kernel/kernel.js';
import { run, which } from '../util/exec.js';

export const MANIFEST_SCHEMA = 'unikctl.image/v1';

export interface RunConfig {
  command: string[];
  env: Record<string, string>;
  workdir: string;
  memoryMiB: number;
  ports: number[];
  /** command words are templates (from a Procfile) whose $VAR references the host expands at boot (image/procfile.ts) */
  expand?: boolean;
  /** env values (Procfile `KEY=$OTHER cmd` assignments) expanded by the host at boot from the rest of the env */
  envTemplates?: Record<string, string>;
}

/** How an image's kernel file is compressed: 'br' is what builds write; 'gzip' is what images built before it carry. */
export type KernelEncoding = 'br' | 'gzip';
const KERNEL_DECODERS: Record<KernelEncoding, (b: Buffer) => Buffer> = { br: brotliDecompressSync, gzip: gunzipSync };
const isKernelEncoding = (x: unknown): x is KernelEncoding => typeof x === 'string' && Object.hasOwn(KERNEL_DECODERS, x);

export interface ImageManifest {
  schema: typeof MANIFEST_SCHEMA;
  name: string;
  pack: string;
  mode: 'release' | 'debug';
  /** the PVH vmlinux, stored compressed; the runtime unpacks it once per digest into a cache */
  kernel: { file: string; encoding: KernelEncoding; sha256: string; size: number; rawSha256: string; rawSize: number; variant: string; configHash: string };
  rootfs: { file: string; sha256: string; size: number; format: 'erofs' };
  run: RunConfig;
  /** sum of kernel and rootfs sizes */
  size: number;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Fixed filesystem UUID and timestamps: the same tree always gives the same bytes (BLD-8). */
const EROFS_UUID = '756e696b-6374-6c00-0000-000000000000';

export async function makeErofs(stagingDir: string, outFile: string): Promise<void> {
  if (!which('mkfs.erofs')) {
    throw new UserError('E_TOOL_MISSING', 'mkfs.erofs is not installed', { hint: 'apt-get install erofs-utils (or run make setup)' });
  }
  // 64 KiB compression clusters: ~15 % smaller images than the 4 KiB default, and no slower to boot.
  // ztailpacking stores each file's compressed tail inline with its inode instead of in a block of its own
  // (Express's root: 43.40 → 43.01 MB); the guest kernel (6.1) reads it since 5.17.
  const r = await run(['mkfs.erofs', '--quiet', '-zlz4hc', '-C65536', '-Eztailpacking', '-T0', '--all-root', '-x-1', `-U${EROFS_UUID}`, outFile, stagingDir]);
  if (r.code !== 0) throw new UserError('E_INTERNAL', `mkfs.erofs failed: ${r.stderr.trim() || r.stdout.trim()}`);
}

const KERNEL_FILE = 'vmlinux.br';

/**
 * Writes kernel + rootfs + manifest into `outDir` (replaced atomically: a failed build leaves the old image).
 * The root filesystem is a staging tree to pack, or an erofs file packed elsewhere (a sandboxed build).
 */
export async function writeImage(opts: {
  outDir: string; rootfs: { stagingDir: string } | { erofsFile: string }; kernel: KernelInfo; name: string; pack: string; mode: 'release' | 'debug'; run: RunConfig;
  /** adds files to the finished directory before it is published (the SBOM and the signature: attest.ts) */
  finish?: (dir: string, manifest: ImageManifest) => Promise<void>;
}): Promise<ImageManifest> {
  const tmp = `${opts.outDir}.tmp-${process.pid}-${Date.now()}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    if ('stagingDir' in opts.rootfs) await makeErofs(opts.rootfs.stagingDir, join(tmp, 'rootfs.erofs'));
    else copyFileSync(opts.rootfs.erofsFile, join(tmp, 'rootfs.erofs'));
    copyFileSync(opts.kernel.vmlinuxBr, join(tmp, KERNEL_FILE));
    const kernelSize = statSync(join(tmp, KERNEL_FILE)).size;
    const rootfsSize = statSync(join(tmp, 'rootfs.erofs')).size;
    const manifest: ImageManifest = {
      schema: MANIFEST_SCHEMA,
      name: opts.name,
      pack: opts.pack,
      mode: opts.mode,
      kernel: {
        file: KERNEL_FILE, encoding: 'br', sha256: sha256File(join(tmp, KERNEL_FILE)), size: kernelSize,
        rawSha256: sha256File(opts.kernel.vmlinux), rawSize: statSync(opts.kernel.vmlinux).size, variant: opts.kernel.variant, configHash: opts.kernel.hash,
      },
      rootfs: { file: 'rootfs.erofs', sha256: sha256File(join(tmp, 'rootfs.erofs')), size: rootfsSize, format: 'erofs' },
      run: opts.run,
      size: kernelSize + rootfsSize,
    };
    writeFileSync(join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await opts.finish?.(tmp, manifest);
    swapDir(tmp, opts.outDir);
    return manifest;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Replaces `target` by `fresh` with two renames, so readers see either the old or the new image. Two builds
 * swapping the same target at once both succeed (the later one wins): a rename onto a directory that the other
 * build has just put in place fails with ENOTEMPTY, and is retried after moving that one aside.
 */
export function swapDir(fresh: string, target: string): void {
  for (let attempt = 0; ; attempt++) {
    const old = `${target}.old-${process.pid}-${Date.now()}-${attempt}`;
    if (existsSync(target)) {
      try {
        renameSync(target, old);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // the other build moved it first
      }
    }
    try {
      renameSync(fresh, target);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && attempt < 20) continue;
      throw e;
    } finally {
      rmSync(old, { recursive: true, force: true });
    }
    return;
  }
}

/** kernel.file / rootfs.file: a name directly in the image directory (what writeImage produces). */
const PART_FILE_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** Reads and checks an image directory: the manifest parses and the digests match the files. */
export function readImage(dir: string, opts: { verify?: boolean } = {}): ImageManifest {
  const file = join(dir, 'manifest.json');
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(readFileSync(file, 'utf8')) as ImageManifest;
  } catch (e) {
    throw new UserError('E_PACKAGE_INVALID', `${dir} has no readable manifest.json (${(e as Error).message})`, {
      hint: 'rebuild it with unikctl build, or point at a directory that unikctl build produced',
    });
  }
  if (manifest.schema !== MANIFEST_SCHEMA || !manifest.kernel?.rawSha256 || !manifest.rootfs || !Array.isArray(manifest.run?.command)) {
    throw new UserError('E_PACKAGE_INVALID', `${file} is not a unikctl image manifest (schema ${String(manifest.schema)})`);
  }
  if (!isKernelEncoding(manifest.kernel.encoding)) {
    throw new UserError('E_PACKAGE_INVALID', `${file}: kernel.encoding ${JSON.stringify(manifest.kernel.encoding)} is not one this unikctl reads (${Object.keys(KERNEL_DECODERS).join(', ')})`, {
      hint: 'rebuild the image with this unikctl', details: { field: 'kernel.encoding' },
    });
  }
  for (const [field, part] of [['kernel.file', manifest.kernel], ['rootfs.file', manifest.rootfs]] as const) {
    // A package may come from an upload: its manifest must not make us read, copy or hand QEMU a host file
    // outside the image directory (`../x`, `/etc/x`, or a symlink), so the parts are plain regular files in it.
    if (typeof part.file !== 'string' || !PART_FILE_RE.test(part.file)) {
      throw new UserError('E_PACKAGE_INVALID', `${file}: ${field} ${JSON.stringify(part.file)} is not a plain file name in the package directory`, {
        hint: 'an image manifest names its kernel and rootfs by file name only (no "/", no "..", no leading "."); rebuild it with unikctl build',
        details: { field, file: part.file },
      });
    }
    const p = join(dir, part.file);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      throw new UserError('E_PACKAGE_INVALID', `${dir} lacks ${part.file}`);
    }
    if (!st.isFile()) throw new UserError('E_PACKAGE_INVALID', `${p} is not a regular file (a symlink or directory is not accepted)`, { details: { field, file: part.file } });
    if (opts.verify && sha256File(p) !== part.sha256) {
      throw new UserError('E_PACKAGE_INVALID', `${p} does not match its sha256 in manifest.json`, { hint: 'the package is corrupted: rebuild it' });
    }
  }
  return manifest;
}

/** The uncompressed kernel QEMU boots: unpacked once per digest into $UNIKCTL_HOME/cache/vmlinux/. */
export function materializeKernel(imageDir: string, manifest: ImageManifest, cacheDir: string): string {
  const out = join(cacheDir, 'vmlinux', manifest.kernel.rawSha256);
  if (existsSync(out)) return out;
  const packed = readFileSync(join(imageDir, manifest.kernel.file));
  let raw: Buffer;
  try {
    raw = KERNEL_DECODERS[manifest.kernel.encoding](packed);
  } catch (e) {
    throw new UserError('E_PACKAGE_INVALID', `${join(imageDir, manifest.kernel.file)} is not a ${manifest.kernel.encoding} stream (${(e as Error).message})`, { hint: 'the package is corrupted: rebuild it' });
  }
  if (createHash('sha256').update(raw).digest('hex') !== manifest.kernel.rawSha256) {
    throw new UserError('E_PACKAGE_INVALID', `${join(imageDir, manifest.kernel.file)} does not unpack to the kernel named in manifest.json`, { hint: 'the package is corrupted: rebuild it' });
  }
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  writeFileSync(tmp, raw);
  renameSync(tmp, out);
  return out;
}
