import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { homeLayout } from '../paths.js';
import { resolveTarget } from '../engine/resolve.js';
import { MANIFEST_SCHEMA, materializeKernel, readImage } from './image.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/**
 * Finding 13: a package's manifest.json (possibly uploaded) names kernel.file / rootfs.file. Before the fix
 * readImage joined them to the package directory unchecked, so `../x`, `/abs/x` or a symlink made the
 * verify pass on a host file outside the package (whose digest the attacker knows) and the supervisor
 * would then copy it / hand it to QEMU as the VM's disk; the "lacks X" vs "sha256 mismatch" errors were
 * also an existence oracle for any host path.
 */
describe('readImage refuses manifests naming files outside the package', () => {
  let root: string;
  let pkg: string;
  const outside = Buffer.from('a host file outside the package\n');
  const kernelRaw = Buffer.from('kernel');
  const kernelGz = gzipSync(kernelRaw);

  const manifest = (rootfsFile: string, kernelFile = 'vmlinux.gz'): string => JSON.stringify({
    schema: MANIFEST_SCHEMA, name: 'evil', pack: 'go', mode: 'release',
    kernel: { file: kernelFile, encoding: 'gzip', sha256: sha(kernelGz), size: kernelGz.length, rawSha256: sha(kernelRaw), rawSize: kernelRaw.length, variant: 'release', configHash: 'x' },
    rootfs: { file: rootfsFile, sha256: sha(outside), size: outside.length, format: 'erofs' },
    run: { command: ['/app'], env: {}, workdir: '/', memoryMiB: 64, ports: [] },
    size: 1,
  });

  const refused = (fn: () => unknown): UserError => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).code).toBe('E_PACKAGE_INVALID');
      return e as UserError;
    }
    throw new Error('the hostile manifest was accepted');
  };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'unik-image-'));
    pkg = join(root, 'pkg');
    mkdirSync(pkg);
    writeFileSync(join(root, 'secret.erofs'), outside);
    writeFileSync(join(pkg, 'vmlinux.gz'), kernelGz);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('a "../" rootfs.file is E_PACKAGE_INVALID, also through deploy resolution', () => {
    writeFileSync(join(pkg, 'manifest.json'), manifest('../secret.erofs'));
    expect(refused(() => readImage(pkg, { verify: true })).message).toContain('rootfs.file');
    refused(() => resolveTarget(pkg, '/', homeLayout({ UNIKCTL_HOME: join(root, 'home') })));
  });

  it('an absolute kernel.file or rootfs.file is E_PACKAGE_INVALID', () => {
    writeFileSync(join(pkg, 'manifest.json'), manifest(join(root, 'secret.erofs')));
    refused(() => readImage(pkg, { verify: true }));
    writeFileSync(join(pkg, 'rootfs.erofs'), outside);
    writeFileSync(join(pkg, 'manifest.json'), manifest('rootfs.erofs', join(pkg, 'vmlinux.gz')));
    expect(refused(() => readImage(pkg, { verify: true })).message).toContain('kernel.file');
  });

  it('a symlinked rootfs file is E_PACKAGE_INVALID', () => {
    symlinkSync('../secret.erofs', join(pkg, 'rootfs.erofs'));
    writeFileSync(join(pkg, 'manifest.json'), manifest('rootfs.erofs'));
    expect(refused(() => readImage(pkg, { verify: true })).message).toContain('not a regular file');
  });

  it('a non-string file name is E_PACKAGE_INVALID, and a plain package still reads', () => {
    writeFileSync(join(pkg, 'manifest.json'), manifest('rootfs.erofs').replace('"file":"rootfs.erofs"', '"file":{"x":1}'));
    refused(() => readImage(pkg));
    writeFileSync(join(pkg, 'rootfs.erofs'), outside);
    writeFileSync(join(pkg, 'manifest.json'), manifest('rootfs.erofs'));
    expect(readImage(pkg, { verify: true }).rootfs.file).toBe('rootfs.erofs');
  });
});

/** Images carry the kernel brotli-compressed; images built before that carry it gzip'd and must still boot. */
describe('the kernel file: brotli, and gzip from older images', () => {
  let root: string;
  const kernelRaw = Buffer.from('\x7fELF a kernel, long enough to compress: '.repeat(50));
  const write = (encoding: string, file: string, packed: Buffer, rawSha = sha(kernelRaw)): string => {
    const pkg = join(root, `${encoding}-${file}`);
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, file), packed);
    writeFileSync(join(pkg, 'rootfs.erofs'), 'root');
    writeFileSync(join(pkg, 'manifest.json'), JSON.stringify({
      schema: MANIFEST_SCHEMA, name: 'k', pack: 'go', mode: 'release',
      kernel: { file, encoding, sha256: sha(packed), size: packed.length, rawSha256: rawSha, rawSize: kernelRaw.length, variant: 'release', configHash: 'x' },
      rootfs: { file: 'rootfs.erofs', sha256: sha('root'), size: 4, format: 'erofs' },
      run: { command: ['/app'], env: {}, workdir: '/', memoryMiB: 64, ports: [] },
      size: 1,
    }));
    return pkg;
  };
  const unpack = (pkg: string): Buffer => readFileSync(materializeKernel(pkg, readImage(pkg, { verify: true }), join(root, 'cache')));
  beforeEach(() => { root = mkdtempSync(join(tmpdir(), 'unik-kernel-')); });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('a brotli kernel and a gzip kernel both unpack to the raw kernel', () => {
    expect(unpack(write('br', 'vmlinux.br', brotliCompressSync(kernelRaw)))).toEqual(kernelRaw);
    rmSync(join(root, 'cache'), { recursive: true });
    expect(unpack(write('gzip', 'vmlinux.gz', gzipSync(kernelRaw)))).toEqual(kernelRaw);
  });

  it('an unknown encoding is E_PACKAGE_INVALID naming the field', () => {
    const pkg = write('zstd', 'vmlinux.zst', gzipSync(kernelRaw));
    let err: unknown;
    try { readImage(pkg); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).code).toBe('E_PACKAGE_INVALID');
    expect((err as UserError).message).toContain('kernel.encoding "zstd"');
  });

  it('a kernel file that is not the stream its encoding says is E_PACKAGE_INVALID, and nothing is cached', () => {
    const pkg = write('br', 'vmlinux.br', gzipSync(kernelRaw));
    let err: unknown;
    try { unpack(pkg); } catch (e) { err = e; }
    expect((err as UserError).code).toBe('E_PACKAGE_INVALID');
    expect((err as UserError).message).toContain('is not a br stream');
    expect(existsSync(join(root, 'cache', 'vmlinux', sha(kernelRaw)))).toBe(false);
  });

  it('a kernel that unpacks to other bytes than rawSha256 names is E_PACKAGE_INVALID', () => {
    const pkg = write('br', 'vmlinux.br', brotliCompressSync(kernelRaw), sha('another kernel'));
    let err: unknown;
    try { unpack(pkg); } catch (e) { err = e; }
    expect((err as UserError).code).toBe('E_PACKAGE_INVALID');
    expect((err as UserError).message).toContain('does not unpack to the kernel named in manifest.json');
  });
});
