import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { homeLayout, type HomeLayout } from '../paths.js';
import { MANIFEST_SCHEMA, type ImageManifest } from './image.js';
import { formatRef, normalizeRef, PackageStore } from './package-store.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** A minimal image directory that readImage accepts: manifest.json + vmlinux.gz + rootfs.erofs. */
function writeFakeImage(dir: string, name: string, kernelText = `kernel of ${name}`): ImageManifest {
  mkdirSync(dir, { recursive: true });
  const raw = Buffer.from(kernelText);
  const gz = gzipSync(raw);
  const rootfs = Buffer.from(`rootfs of ${name}`);
  writeFileSync(join(dir, 'vmlinux.gz'), gz);
  writeFileSync(join(dir, 'rootfs.erofs'), rootfs);
  const manifest: ImageManifest = {
    schema: MANIFEST_SCHEMA, name, pack: 'go', mode: 'release',
    kernel: { file: 'vmlinux.gz', encoding: 'gzip', sha256: sha(gz), size: gz.length, rawSha256: sha(raw), rawSize: raw.length, variant: 'release', configHash: 'cfg' },
    rootfs: { file: 'rootfs.erofs', sha256: sha(rootfs), size: rootfs.length, format: 'erofs' },
    run: { command: [`/app/${name}`], env: { A: '1' }, workdir: '/app', memoryMiB: 64, ports: [8080] },
    size: gz.length + rootfs.length,
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return manifest;
}

describe('normalizeRef', () => {
  it.each([
    ['hello', { namespace: 'local', name: 'hello', tag: 'latest' }],
    ['hello:v1', { namespace: 'local', name: 'hello', tag: 'v1' }],
    ['team/hello:v2', { namespace: 'team', name: 'hello', tag: 'v2' }],
    ['team/hello', { namespace: 'team', name: 'hello', tag: 'latest' }],
    ['my.app_1-x:1.2.3', { namespace: 'local', name: 'my.app_1-x', tag: '1.2.3' }],
  ])('%s', (raw, want) => {
    expect(normalizeRef(raw)).toEqual(want);
  });

  it('formats fully-qualified references', () => {
    expect(formatRef(normalizeRef('hello'))).toBe('local/hello:latest');
    expect(formatRef(normalizeRef('team/hello:v2'))).toBe('team/hello:v2');
  });

  it.each(['Hello', 'a/b/c', 'x:', ':x', '/x', 'x/', '', 'a b', '-x', 'x-', 'a:b:c', 'team/Hello:v1', 'hello:V1', '../x', '.'])(
    'rejects %j with E_INVALID_ARGUMENT',
    (raw) => {
      try {
        normalizeRef(raw);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        expect((e as UserError).code).toBe('E_INVALID_ARGUMENT');
      }
    },
  );
});

describe('PackageStore', () => {
  let tmp: string;
  let layout: HomeLayout;
  let store: PackageStore;

  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'unik-pkgstore-'));
    layout = homeLayout({ UNIKCTL_HOME: join(tmp, 'home') });
    store = new PackageStore(layout);
  });
  afterEach(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  it('stores images under packages/<namespace>/<name>/<tag>', () => {
    expect(store.dirOf(normalizeRef('team/hello:v2'))).toBe(join(tmp, 'home', 'packages', 'team', 'hello', 'v2'));
  });

  it('get returns null for an unknown reference', () => {
    expect(store.get(normalizeRef('nothing'))).toBeNull();
  });

  it('put then get round-trips the image', () => {
    const src = join(tmp, 'img');
    const manifest = writeFakeImage(src, 'hello');
    const ref = normalizeRef('hello');
    const dir = store.put(ref, src);
    expect(dir).toBe(join(layout.packages, 'local', 'hello', 'latest'));
    const got = store.get(ref);
    expect(got).not.toBeNull();
    expect(got?.dir).toBe(dir);
    expect(got?.manifest).toEqual(manifest);
    expect(readdirSync(dir).sort()).toEqual(['manifest.json', 'rootfs.erofs', 'vmlinux.gz']);
    expect(readFileSync(join(dir, 'rootfs.erofs'), 'utf8')).toBe('rootfs of hello');
    // the source stays where it was
    expect(existsSync(join(src, 'manifest.json'))).toBe(true);
  });

  it('tags are independent', () => {
    writeFakeImage(join(tmp, 'a'), 'one');
    writeFakeImage(join(tmp, 'b'), 'two');
    store.put(normalizeRef('hello:v1'), join(tmp, 'a'));
    store.put(normalizeRef('hello:v2'), join(tmp, 'b'));
    expect(store.get(normalizeRef('hello:v1'))?.manifest.name).toBe('one');
    expect(store.get(normalizeRef('hello:v2'))?.manifest.name).toBe('two');
    expect(store.get(normalizeRef('hello'))).toBeNull();
  });

  it('put replaces an existing tag and leaves no temporary directories', () => {
    writeFakeImage(join(tmp, 'a'), 'one');
    writeFakeImage(join(tmp, 'b'), 'two');
    const ref = normalizeRef('hello');
    store.put(ref, join(tmp, 'a'));
    store.put(ref, join(tmp, 'b'));
    expect(store.get(ref)?.manifest.name).toBe('two');
    expect(readFileSync(join(store.dirOf(ref), 'rootfs.erofs'), 'utf8')).toBe('rootfs of two');
    expect(readdirSync(join(layout.packages, 'local', 'hello'))).toEqual(['latest']);
  });

  it('get reports a damaged package with E_PACKAGE_INVALID', () => {
    const ref = normalizeRef('broken');
    mkdirSync(store.dirOf(ref), { recursive: true });
    writeFileSync(join(store.dirOf(ref), 'manifest.json'), '{"schema":"something-else"}');
    try {
      store.get(ref);
      expect.unreachable();
    } catch (e) {
      expect((e as UserError).code).toBe('E_PACKAGE_INVALID');
    }
  });

  it('get reports a package missing its rootfs with E_PACKAGE_INVALID', () => {
    writeFakeImage(join(tmp, 'a'), 'one');
    const ref = normalizeRef('one');
    store.put(ref, join(tmp, 'a'));
    rmSync(join(store.dirOf(ref), 'rootfs.erofs'));
    try {
      store.get(ref);
      expect.unreachable();
    } catch (e) {
      expect((e as UserError).code).toBe('E_PACKAGE_INVALID');
      expect((e as UserError).message).toContain('rootfs.erofs');
    }
  });
});
