import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MANIFEST_SCHEMA, type ImageManifest } from '../image/image.js';
import { normalizeRef, PackageStore } from '../image/package-store.js';
import { UserError } from '../errors.js';
import { homeLayout, type HomeLayout } from '../paths.js';
import { extractPackageArchive, isPackageArchive, resolveTarget } from './resolve.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

function writeFakeImage(dir: string, name: string): void {
  mkdirSync(dir, { recursive: true });
  const raw = Buffer.from(`kernel of ${name}`);
  const gz = gzipSync(raw);
  const rootfs = Buffer.from(`rootfs of ${name}`);
  writeFileSync(join(dir, 'vmlinux.gz'), gz);
  writeFileSync(join(dir, 'rootfs.erofs'), rootfs);
  const manifest: ImageManifest = {
    schema: MANIFEST_SCHEMA, name, pack: 'go', mode: 'release',
    kernel: { file: 'vmlinux.gz', encoding: 'gzip', sha256: sha(gz), size: gz.length, rawSha256: sha(raw), rawSize: raw.length, variant: 'release', configHash: 'cfg' },
    rootfs: { file: 'rootfs.erofs', sha256: sha(rootfs), size: rootfs.length, format: 'erofs' },
    run: { command: [`/app/${name}`], env: {}, workdir: '/app', memoryMiB: 64, ports: [] },
    size: gz.length + rootfs.length,
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
}

let tmp: string;
let cwd: string;
let layout: HomeLayout;

beforeEach(() => {
  vi.stubEnv('UNIKCTL_CONTROL_PLANE_URL', '');
  tmp = realpathSync(mkdtempSync(join(tmpdir(), 'unik-resolve-')));
  cwd = join(tmp, 'cwd');
  mkdirSync(cwd);
  layout = homeLayout({ UNIKCTL_HOME: join(tmp, 'home') });
});
afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(tmp, { recursive: true, force: true });
});

function errorOf(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }
  throw new Error('expected a UserError');
}

describe('resolveTarget', () => {
  it('a directory with manifest.json is a package', () => {
    const dir = join(cwd, 'pkg');
    writeFakeImage(dir, 'Hello_App');
    const r = resolveTarget('pkg', cwd, layout);
    expect(r).toEqual({
      source: { kind: 'package', dir }, resolvedFrom: `package directory ${dir}`, candidates: [`path ${dir}`], defaultName: 'hello-app',
    });
  });

  it('a directory with go.mod is a project built by the go pack', () => {
    const dir = join(tmp, 'My_Service');
    mkdirSync(dir);
    writeFileSync(join(dir, 'go.mod'), 'module example.com/x\n\ngo 1.21\n');
    const r = resolveTarget(dir, cwd, layout);
    expect(r.source).toEqual({ kind: 'project', dir });
    expect(r.resolvedFrom).toBe(`project directory ${dir} (go pack)`);
    expect(r.defaultName).toBe('my-service');
    expect(r.candidates).toEqual([`path ${dir}`]);
  });

  it('an ELF executable is a binary', () => {
    const exe = realpathSync(process.execPath);
    const r = resolveTarget(exe, cwd, layout);
    expect(r.source).toEqual({ kind: 'binary', path: exe });
    expect(r.resolvedFrom).toBe(`ELF binary ${exe}`);
    expect(r.defaultName).toMatch(/^node/);
  });

  it('a text file is E_NOT_ELF', () => {
    writeFileSync(join(cwd, 'script.sh'), '#!/bin/sh\necho hi\n');
    const e = errorOf(() => resolveTarget('script.sh', cwd, layout));
    expect(e.code).toBe('E_NOT_ELF');
    expect(e.message).toContain(join(cwd, 'script.sh'));
  });

  it('a package archive is extracted safely before resolution', async () => {
    const bad = join(cwd, 'bad.tar.gz');
    writeFileSync(bad, 'x');
    await expect(extractPackageArchive(bad, layout)).rejects.toMatchObject({ code: 'E_UPLOAD_CORRUPT' });
    const content = join(cwd, 'content');
    mkdirSync(content);
    writeFileSync(join(content, 'README'), 'no manifest here');
    const nomanifest = join(cwd, 'nomanifest.tar');
    execFileSync('tar', ['cf', nomanifest, '-C', content, '.']);
    await expect(extractPackageArchive(nomanifest, layout)).rejects.toMatchObject({ code: 'E_PACKAGE_INVALID' });
    expect(isPackageArchive('x.tgz') && isPackageArchive('x.tar.gz') && isPackageArchive('x.tar') && !isPackageArchive('x.zip')).toBe(true);
  });

  it('a name in the local package store resolves there', () => {
    writeFakeImage(join(tmp, 'img'), 'x');
    const dir = new PackageStore(layout).put(normalizeRef('x'), join(tmp, 'img'));
    const r = resolveTarget('x', cwd, layout);
    expect(r).toEqual({
      source: { kind: 'package', dir, ref: 'local/x:latest' }, resolvedFrom: 'local package store local/x:latest',
      candidates: [`path ${join(cwd, 'x')}`, 'local package store local/x:latest'], defaultName: 'x',
    });
  });

  it('a namespaced name with a tag resolves in the store', () => {
    writeFakeImage(join(tmp, 'img'), 'web');
    new PackageStore(layout).put(normalizeRef('team/web:v2'), join(tmp, 'img'));
    const r = resolveTarget('team/web:v2', cwd, layout);
    expect(r.resolvedFrom).toBe('local package store team/web:v2');
    expect(r.defaultName).toBe('web');
  });

  it('a path on disk wins over a package of the same name', () => {
    writeFakeImage(join(tmp, 'img'), 'x');
    new PackageStore(layout).put(normalizeRef('x'), join(tmp, 'img'));
    writeFakeImage(join(cwd, 'x'), 'from-disk');
    expect(resolveTarget('x', cwd, layout).resolvedFrom).toBe(`package directory ${join(cwd, 'x')}`);
  });

  it('a miss is E_PACKAGE_NOT_FOUND listing every candidate tried', () => {
    const e = errorOf(() => resolveTarget('nothere', cwd, layout));
    expect(e.code).toBe('E_PACKAGE_NOT_FOUND');
    const candidates = [
      `path ${join(cwd, 'nothere')}`,
      'local package store local/nothere:latest',
      'control plane store local/nothere:latest (skipped: local mode; set UNIKCTL_CONTROL_PLANE_URL to use a control plane)',
    ];
    expect(e.details).toEqual({ candidates });
    for (const c of candidates) expect(e.message).toContain(c);
    expect(e.hint).toBeTruthy();
  });

  it('a miss that is not a valid reference lists only the path', () => {
    const e = errorOf(() => resolveTarget('Not/A/Ref', cwd, layout));
    expect(e.code).toBe('E_PACKAGE_NOT_FOUND');
    expect(e.details?.candidates).toEqual([`path ${join(cwd, 'Not/A/Ref')}`]);
  });

  it('a directory without a detectable pack is E_NO_PACK', () => {
    const dir = join(cwd, 'empty');
    mkdirSync(dir);
    writeFileSync(join(dir, 'README.md'), 'nothing to build');
    expect(errorOf(() => resolveTarget('empty', cwd, layout)).code).toBe('E_NO_PACK');
  });

  it('a directory with a broken manifest.json is E_PACKAGE_INVALID', () => {
    const dir = join(cwd, 'broken');
    mkdirSync(dir);
    writeFileSync(join(dir, 'manifest.json'), '{');
    expect(errorOf(() => resolveTarget('broken', cwd, layout)).code).toBe('E_PACKAGE_INVALID');
  });

  it('a project whose --rootfs is a Dockerfile fails fast', () => {
    const dir = join(cwd, 'proj');
    mkdirSync(dir);
    writeFileSync(join(dir, 'go.mod'), 'module x\n');
    writeFileSync(join(dir, 'Dockerfile'), 'FROM scratch\n');
    expect(errorOf(() => resolveTarget('proj', cwd, layout, join(dir, 'Dockerfile'))).code).toBe('E_DOCKERFILE_ROOTFS');
  });
});
