import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { homeLayout } from '../paths.js';
import { resolveTarget } from '../engine/resolve.js';
import { MANIFEST_SCHEMA, readImage } from './image.js';

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
