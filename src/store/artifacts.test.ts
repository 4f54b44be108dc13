import { createHash } from 'node:crypto';
import { chmodSync, createReadStream, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { Header, Pax, type HeaderData } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { packBundle } from '../engine/bundle.js';
import { UserError } from '../errors.js';
import { ArtifactStore, UPLOAD_ERROR_CODES, type ArtifactRecord, type ArtifactStoreOptions, type UploadErrorCode } from './artifacts.js';

// --- a tiny tar builder -------------------------------------------------------------------------------------

type Spec = Omit<HeaderData, 'size'> & { path: string; body?: Buffer | string };

function entry(spec: Spec): Buffer {
  const body = spec.body === undefined ? Buffer.alloc(0) : Buffer.from(spec.body);
  const { body: _b, ...rest } = spec;
  const h = new Header({ mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), type: 'File', ...rest, size: body.length });
  const pax = h.encode() ? new Pax({ path: spec.path, linkpath: spec.linkpath, size: body.length }).encode() : Buffer.alloc(0);
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([pax, h.block as Buffer, body, pad]);
}

const EOA = Buffer.alloc(1024);
const tar = (...specs: Spec[]): Buffer => Buffer.concat([...specs.map(entry), EOA]);
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const body = (b: Buffer): Readable => Readable.from([b]);

// --- fixtures --------------------------------------------------------------------------------------------------

let work: string;
let storeDir: string;

const LIMITS: Omit<ArtifactStoreOptions, 'dir'> = { maxUploadBytes: 1 << 20, maxExtractedBytes: 4 << 20, maxEntries: 100 };
const mkStore = (over: Partial<ArtifactStoreOptions> = {}): ArtifactStore => new ArtifactStore({ dir: storeDir, ...LIMITS, ...over });

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'unikctl-artifacts-test-'));
  storeDir = join(work, 'store');
});
afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

/** path → kind/mode/content (or link target) of every entry below root */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(root, r);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out[r] = `link -> ${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${(st.mode & 0o7777).toString(8)}`;
        walk(r);
      } else out[r] = `file ${(st.mode & 0o7777).toString(8)} ${sha(readFileSync(p))}`;
    }
  };
  walk('');
  return out;
}

/** a store holding one artifact, to prove failed uploads never touch existing ones */
async function storeWithPrevious(over: Partial<ArtifactStoreOptions> = {}): Promise<{ store: ArtifactStore; prev: ArtifactRecord; prevSnap: Record<string, string> }> {
  const store = mkStore(over);
  const prev = await store.put(body(gzipSync(tar({ path: 'keep/me.txt', body: 'precious' }, { path: 'keep/tool', body: '#!/bin/sh\n', mode: 0o755 }))));
  return { store, prev, prevSnap: snapshot(prev.dir) };
}

async function expectRejected(
  ctx: { store: ArtifactStore; prev: ArtifactRecord; prevSnap: Record<string, string> },
  upload: Buffer | Readable,
  code: UploadErrorCode,
  opts?: { expectedSha256?: string },
): Promise<UserError> {
  const err = await ctx.store.put(Buffer.isBuffer(upload) ? body(upload) : upload, opts).then(
    () => { throw new Error(`expected ${code}, the upload was accepted`); },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  expect((err as UserError).code).toBe(code);
  // nothing left behind: only the previous artifact and an empty staging dir
  expect(readdirSync(storeDir).sort()).toEqual(['.tmp', ctx.prev.id]);
  expect(readdirSync(join(storeDir, '.tmp'))).toEqual([]);
  expect(snapshot(ctx.prev.dir)).toEqual(ctx.prevSnap);
  expect(ctx.store.get(ctx.prev.id)).toEqual(ctx.prev);
  return err as UserError;
}

// --- tests -----------------------------------------------------------------------------------------------------

describe('ArtifactStore round trip', () => {
  it('packBundle → put → the same files, exec bits and in-tree symlinks', async () => {
    const proj = join(work, 'proj');
    mkdirSync(join(proj, 'bin'), { recursive: true });
    mkdirSync(join(proj, 'lib', 'deep'), { recursive: true });
    writeFileSync(join(proj, 'bin', 'app'), '#!/bin/sh\necho app\n');
    chmodSync(join(proj, 'bin', 'app'), 0o755);
    writeFileSync(join(proj, 'lib', 'deep', 'data.bin'), Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251)));
    writeFileSync(join(proj, 'README'), 'hello');
    symlinkSync('../bin/app', join(proj, 'lib', 'app-link'));
    symlinkSync('lib/deep', join(proj, 'deep-dir'));
    mkdirSync(join(proj, 'node_modules'));
    writeFileSync(join(proj, 'node_modules', 'skip.js'), 'x');

    const bundle = await packBundle(proj);
    try {
      const store = mkStore();
      const rec = await store.put(createReadStream(bundle.file), { expectedSha256: bundle.sha256 });
      expect(rec).toMatchObject({ id: `art_${bundle.sha256.slice(0, 16)}`, sha256: bundle.sha256, bytes: bundle.bytes, kind: 'bundle', dir: join(storeDir, rec.id, 'root') });
      expect(store.get(rec.id)).toEqual(rec);

      const { 'node_modules': _nm, 'node_modules/skip.js': _skip, ...want } = snapshot(proj);
      expect(snapshot(rec.dir)).toEqual(want);
      expect(lstatSync(join(rec.dir, 'bin', 'app')).mode & 0o777).toBe(0o755);
      expect(lstatSync(join(rec.dir, 'README')).mode & 0o777).toBe(0o644);
      expect(readlinkSync(join(rec.dir, 'lib', 'app-link'))).toBe('../bin/app');
      expect(readFileSync(join(rec.dir, 'lib', 'app-link'), 'utf8')).toBe('#!/bin/sh\necho app\n');
      expect(readdirSync(join(rec.dir, 'deep-dir'))).toEqual(['data.bin']);
      expect(readdirSync(join(storeDir, '.tmp'))).toEqual([]);
    } finally {
      bundle.cleanup();
    }
  });

  it('a second identical upload returns the stored record without re-extracting', async () => {
    const store = mkStore();
    const gz = gzipSync(tar({ path: 'a.txt', body: 'a' }));
    const first = await store.put(body(gz));
    writeFileSync(join(first.dir, 'marker'), 'still here');
    const again = await mkStore().put(body(gz), { expectedSha256: sha(gz).toUpperCase() });
    expect(again).toEqual(first);
    expect(readFileSync(join(first.dir, 'marker'), 'utf8')).toBe('still here');
    expect(readdirSync(storeDir).sort()).toEqual(['.tmp', first.id]);
    // concurrent identical uploads settle on one artifact
    const gz2 = gzipSync(tar({ path: 'b.txt', body: 'b' }));
    const [x, y] = await Promise.all([store.put(body(gz2)), store.put(body(gz2))]);
    expect(x.id).toBe(y.id);
    expect(readFileSync(join(x.dir, 'b.txt'), 'utf8')).toBe('b');
  });

  it('accepts a plain (not gzip\'d) tar, with ./ prefixes and a root dir entry', async () => {
    const store = mkStore();
    const raw = tar({ path: './', type: 'Directory', mode: 0o700 }, { path: './x/', type: 'Directory', mode: 0o700 }, { path: './x/y.txt', body: 'y', mode: 0o600 }, { path: 'run', body: 'r', mode: 0o700 });
    const rec = await store.put(body(raw));
    expect(rec.id).toBe(`art_${sha(raw).slice(0, 16)}`);
    expect(snapshot(rec.dir)).toEqual({ x: 'dir 755', 'x/y.txt': `file 644 ${sha('y')}`, run: `file 755 ${sha('r')}` });
  });

  it('drops setuid/setgid/sticky bits and keeps exec bits', async () => {
    const store = mkStore();
    const rec = await store.put(body(tar(
      { path: 'suid', body: 's', mode: 0o4755 },
      { path: 'sgid', body: 's', mode: 0o2644 },
      { path: 'sticky/', type: 'Directory', mode: 0o1777 },
      { path: 'groupexec', body: 'g', mode: 0o610 },
    )));
    expect(snapshot(rec.dir)).toEqual({ suid: `file 755 ${sha('s')}`, sgid: `file 644 ${sha('s')}`, sticky: 'dir 755', groupexec: `file 755 ${sha('g')}` });
  });

  it('get/delete: unknown or malformed ids, deletion is complete and leaves others alone', async () => {
    const { store, prev, prevSnap } = await storeWithPrevious();
    const other = await store.put(body(tar({ path: 'o', body: 'o' })));
    expect(store.get('art_0000000000000000')).toBeNull();
    expect(store.get('../store')).toBeNull();
    expect(store.get(`${prev.id}/../${prev.id}`)).toBeNull();
    store.delete('art_0000000000000000');
    store.delete('../../etc');
    store.delete(other.id);
    expect(store.get(other.id)).toBeNull();
    expect(readdirSync(storeDir).sort()).toEqual(['.tmp', prev.id]);
    expect(readdirSync(join(storeDir, '.tmp'))).toEqual([]);
    expect(snapshot(prev.dir)).toEqual(prevSnap);
    expect(new ArtifactStore({ dir: storeDir, ...LIMITS }).get(prev.id)).toEqual(prev);
  });

  it('sweeps staging leftovers of a crashed process, but not fresh ones', () => {
    mkdirSync(join(storeDir, '.tmp', 'stage-old', 'root'), { recursive: true });
    mkdirSync(join(storeDir, '.tmp', 'stage-new'), { recursive: true });
    const old = new Date(Date.now() - 2 * 3600_000);
    utimesSync(join(storeDir, '.tmp', 'stage-old'), old, old);
    mkStore();
    expect(readdirSync(join(storeDir, '.tmp'))).toEqual(['stage-new']);
  });

  it('lists its error codes', () => {
    expect(Object.keys(UPLOAD_ERROR_CODES).sort()).toEqual([
      'E_UPLOAD_CORRUPT', 'E_UPLOAD_DIGEST_MISMATCH', 'E_UPLOAD_TOO_LARGE', 'E_UPLOAD_UNSAFE_ENTRY', 'E_UPLOAD_UNSAFE_LINK', 'E_UPLOAD_UNSAFE_PATH',
    ]);
  });
});

describe('ArtifactStore rejects unsafe archives, leaving nothing behind', () => {
  it.each([
    ['../evil', 'a parent-relative path'],
    ['a/../../evil', 'a .. in the middle'],
    ['a/..', 'a trailing ..'],
    ['/etc/evil', 'an absolute path'],
    ['//etc/evil', 'a double-slash absolute path'],
    ['C:\\evil', 'a Windows drive path'],
    ['a\\..\\..\\evil', 'backslash .. segments'],
  ])('E_UPLOAD_UNSAFE_PATH for %s (%s)', async (path) => {
    const ctx = await storeWithPrevious();
    await expectRejected(ctx, gzipSync(tar({ path: 'ok.txt', body: 'fine' }, { path, body: 'pwned' })), 'E_UPLOAD_UNSAFE_PATH');
    await expectRejected(ctx, tar({ path, type: 'Directory' }), 'E_UPLOAD_UNSAFE_PATH');
  });

  it('E_UPLOAD_UNSAFE_PATH for an excessively deep path; long paths are fine', async () => {
    const ctx = await storeWithPrevious();
    await expectRejected(ctx, tar({ path: `${'a/'.repeat(1100)}f`, body: 'x' }), 'E_UPLOAD_UNSAFE_PATH');
    const long = `${'long-directory-name/'.repeat(10)}file.txt`;
    const rec = await ctx.store.put(body(tar({ path: long, body: 'x' }, { path: 'l', type: 'SymbolicLink', linkpath: long })));
    expect(readFileSync(join(rec.dir, 'l'), 'utf8')).toBe('x');
  });

  it('E_UPLOAD_UNSAFE_PATH for a non-directory entry replacing the root', async () => {
    await expectRejected(await storeWithPrevious(), tar({ path: './', type: 'SymbolicLink', linkpath: 'x' }), 'E_UPLOAD_UNSAFE_PATH');
  });

  it.each([
    ['link', '/etc', 'an absolute target'],
    ['sub/link', '/', 'the host root'],
    ['link', '..', 'the parent of the root'],
    ['sub/link', '../..', 'the parent of the root, from below'],
    ['sub/link', '../../../../etc/passwd', 'a deep escape'],
    ['link', 'sub/../../x', 'an escape through a detour'],
  ])('E_UPLOAD_UNSAFE_LINK for a symlink %s -> %s (%s)', async (path, linkpath) => {
    const ctx = await storeWithPrevious();
    await expectRejected(ctx, gzipSync(tar({ path: 'sub/', type: 'Directory' }, { path, type: 'SymbolicLink', linkpath })), 'E_UPLOAD_UNSAFE_LINK');
  });

  it('accepts symlinks that stay inside, including via ..', async () => {
    const rec = await mkStore().put(body(tar(
      { path: 'sub/deeper/', type: 'Directory' },
      { path: 'sub/deeper/up', type: 'SymbolicLink', linkpath: '../../top.txt' },
      { path: 'sub/self', type: 'SymbolicLink', linkpath: '.' },
      { path: 'top.txt', body: 'top' },
      { path: 'dangling', type: 'SymbolicLink', linkpath: 'not/there' },
    )));
    expect(readFileSync(join(rec.dir, 'sub', 'deeper', 'up'), 'utf8')).toBe('top');
    expect(readlinkSync(join(rec.dir, 'dangling'))).toBe('not/there');
  });

  it('E_UPLOAD_UNSAFE_LINK for a chain of in-tree-looking symlinks that escapes', async () => {
    const ctx = await storeWithPrevious();
    // d/l -> .. is the root (fine on its own); e -> d/l/.. is lexically "d" but really the root's parent
    await expectRejected(ctx, tar(
      { path: 'd/', type: 'Directory' },
      { path: 'd/l', type: 'SymbolicLink', linkpath: '..' },
      { path: 'e', type: 'SymbolicLink', linkpath: 'd/l/../outside' },
    ), 'E_UPLOAD_UNSAFE_LINK');
    // a later link makes an earlier one escape
    await expectRejected(ctx, tar(
      { path: 'a', type: 'SymbolicLink', linkpath: 'b/../x' },
      { path: 'd/l', type: 'SymbolicLink', linkpath: '..' },
      { path: 'b', type: 'SymbolicLink', linkpath: 'd/l' },
    ), 'E_UPLOAD_UNSAFE_LINK');
    // the same links without the escaping step are fine
    const ok = await ctx.store.put(body(tar(
      { path: 'a', type: 'SymbolicLink', linkpath: 'b/x' },
      { path: 'd/l', type: 'SymbolicLink', linkpath: '..' },
      { path: 'b', type: 'SymbolicLink', linkpath: 'd/l' },
      { path: 'loop', type: 'SymbolicLink', linkpath: 'loop/x' },
    )));
    expect(readlinkSync(join(ok.dir, 'a'))).toBe('b/x');
    expect(readlinkSync(join(ok.dir, 'd', 'l'))).toBe('..');
  });

  it('the classic symlink attack cannot write through a link (absolute or in-tree)', async () => {
    const outside = join(work, 'outside');
    mkdirSync(outside);
    const ctx = await storeWithPrevious();
    await expectRejected(ctx, tar({ path: 'a', type: 'SymbolicLink', linkpath: outside }, { path: 'a/passwd', body: 'root::0:0' }), 'E_UPLOAD_UNSAFE_LINK');
    await expectRejected(ctx, tar({ path: 'a', type: 'SymbolicLink', linkpath: '/etc' }, { path: 'a/passwd', body: 'root::0:0' }), 'E_UPLOAD_UNSAFE_LINK');
    await expectRejected(ctx, tar({ path: 'sub/', type: 'Directory' }, { path: 'a', type: 'SymbolicLink', linkpath: 'sub' }, { path: 'a/passwd', body: 'x' }), 'E_UPLOAD_UNSAFE_LINK');
    // a directory swapped for a symlink after files were placed in it
    await expectRejected(ctx, tar({ path: 'x/f', body: 'f' }, { path: 'x', type: 'SymbolicLink', linkpath: 'y' }, { path: 'x/g', body: 'g' }), 'E_UPLOAD_UNSAFE_ENTRY');
    expect(readdirSync(outside)).toEqual([]);
  });

  it('E_UPLOAD_UNSAFE_LINK for hard links, even inside the root', async () => {
    const ctx = await storeWithPrevious();
    await expectRejected(ctx, tar({ path: 'a', body: 'a' }, { path: 'b', type: 'Link', linkpath: 'a' }), 'E_UPLOAD_UNSAFE_LINK');
    await expectRejected(ctx, tar({ path: 'b', type: 'Link', linkpath: '/etc/shadow' }), 'E_UPLOAD_UNSAFE_LINK');
  });

  it.each([
    ['CharacterDevice', { devmaj: 1, devmin: 3 }],
    ['BlockDevice', { devmaj: 8, devmin: 0 }],
    ['FIFO', {}],
    ['SparseFile', {}],
    ['GNUDumpDir', {}],
  ] as const)('E_UPLOAD_UNSAFE_ENTRY for a %s', async (type, extra) => {
    const ctx = await storeWithPrevious();
    await expectRejected(ctx, gzipSync(tar({ path: 'ok', body: 'ok' }, { path: 'dev/thing', type, ...extra })), 'E_UPLOAD_UNSAFE_ENTRY');
  });

  it('E_UPLOAD_UNSAFE_ENTRY for a path given twice as different things', async () => {
    const ctx = await storeWithPrevious();
    await expectRejected(ctx, tar({ path: 'a', body: '1' }, { path: 'a', body: '2' }), 'E_UPLOAD_UNSAFE_ENTRY');
    await expectRejected(ctx, tar({ path: 'a', body: '1' }, { path: 'a/b', body: '2' }), 'E_UPLOAD_UNSAFE_ENTRY');
    await expectRejected(ctx, tar({ path: 'd/', type: 'Directory' }, { path: 'd', type: 'SymbolicLink', linkpath: 'e' }), 'E_UPLOAD_UNSAFE_ENTRY');
  });
});

describe('ArtifactStore rejects oversized, corrupt and mismatched uploads', () => {
  it('E_UPLOAD_TOO_LARGE once the body exceeds maxUploadBytes, without destroying the body', async () => {
    const ctx = await storeWithPrevious({ maxUploadBytes: 4096 });
    const stream = new PassThrough();
    const p = expectRejected(ctx, stream, 'E_UPLOAD_TOO_LARGE');
    for (let i = 0; i < 10; i++) stream.write(Buffer.alloc(1000, 1));
    const err = await p;
    expect(err.details).toMatchObject({ limit: 4096 });
    expect(stream.destroyed).toBe(false);
    stream.destroy();
  });

  it('E_UPLOAD_TOO_LARGE for a zip bomb (content beyond maxExtractedBytes)', async () => {
    const ctx = await storeWithPrevious({ maxExtractedBytes: 1 << 20 });
    const bomb = gzipSync(tar({ path: 'zeros', body: Buffer.alloc(8 << 20) }));
    expect(bomb.length).toBeLessThan(LIMITS.maxUploadBytes);
    await expectRejected(ctx, bomb, 'E_UPLOAD_TOO_LARGE');
    // many small files adding up
    const many = gzipSync(tar(...Array.from({ length: 20 }, (_, i) => ({ path: `f${i}`, body: Buffer.alloc(64 << 10) }))));
    await expectRejected(ctx, many, 'E_UPLOAD_TOO_LARGE');
  });

  it('E_UPLOAD_TOO_LARGE for a bomb hidden after the end-of-archive marker; a non-file body is corrupt', async () => {
    const ctx = await storeWithPrevious({ maxExtractedBytes: 1 << 20, maxEntries: 10 });
    await expectRejected(ctx, gzipSync(Buffer.concat([tar({ path: 'a', body: 'a' }), Buffer.alloc(16 << 20)])), 'E_UPLOAD_TOO_LARGE');
    await expectRejected(ctx, gzipSync(tar({ path: 'l', type: 'SymbolicLink', linkpath: 'x', body: Buffer.alloc(4096, 7) })), 'E_UPLOAD_CORRUPT');
    // ordinary trailing padding (tar pads to 10 KiB records) is fine
    const padded = await ctx.store.put(body(gzipSync(Buffer.concat([tar({ path: 'p', body: 'p' }), Buffer.alloc(8192)]))));
    expect(readFileSync(join(padded.dir, 'p'), 'utf8')).toBe('p');
  });

  it('E_UPLOAD_TOO_LARGE for a small bomb within the absolute limit but far beyond 200× its own size (finding 9)', async () => {
    // the absolute limit (64 MiB) would let this 20 KiB upload write 20 MiB: the ratio bound refuses it
    const ctx = await storeWithPrevious({ maxExtractedBytes: 64 << 20 });
    const bomb = gzipSync(tar({ path: 'zeros', body: Buffer.alloc(20 << 20) }));
    expect(bomb.length).toBeLessThan(64 << 10);
    const err = await expectRejected(ctx, bomb, 'E_UPLOAD_TOO_LARGE');
    expect(err.details).toMatchObject({ ratio: 200, uploadBytes: bomb.length });
    expect(err.message).toContain('200×');
    // the same amplification hidden after the end-of-archive marker, where the tar parser skips it
    await expectRejected(ctx, gzipSync(Buffer.concat([tar({ path: 'a', body: 'a' }), Buffer.alloc(20 << 20)])), 'E_UPLOAD_TOO_LARGE');
    // a ratio of 1 refuses any archive that expands beyond the allowance small archives always get
    const strict = mkStore({ maxExtractedBytes: 64 << 20, maxExpansionRatio: 1 });
    const mid = gzipSync(tar({ path: 'zeros', body: Buffer.alloc(6 << 20) }));
    await expect(strict.put(body(mid))).rejects.toMatchObject({ code: 'E_UPLOAD_TOO_LARGE' });
    // compressible but ordinary content is accepted
    const ok = await ctx.store.put(body(gzipSync(tar({ path: 'text', body: 'hello world\n'.repeat(100_000) }))));
    expect(readFileSync(join(ok.dir, 'text'), 'utf8')).toHaveLength(1_200_000);
  });

  it('E_UPLOAD_TOO_LARGE for more than maxEntries entries', async () => {
    const ctx = await storeWithPrevious({ maxEntries: 5 });
    await expectRejected(ctx, tar(...Array.from({ length: 6 }, (_, i) => ({ path: `d${i}/`, type: 'Directory' as const }))), 'E_UPLOAD_TOO_LARGE');
    // exactly at the limit is fine
    const ok = await ctx.store.put(body(tar(...Array.from({ length: 5 }, (_, i) => ({ path: `d${i}/`, type: 'Directory' as const })))));
    expect(readdirSync(ok.dir)).toHaveLength(5);
  });

  it('E_UPLOAD_CORRUPT for a truncated gzip (cut in half)', async () => {
    const proj = join(work, 'proj');
    mkdirSync(proj);
    for (let i = 0; i < 20; i++) writeFileSync(join(proj, `f${i}`), createHash('sha512').update(String(i)).digest('hex').repeat(50));
    const bundle = await packBundle(proj);
    try {
      const gz = readFileSync(bundle.file);
      const ctx = await storeWithPrevious();
      await expectRejected(ctx, gz.subarray(0, gz.length >> 1), 'E_UPLOAD_CORRUPT');
      await expectRejected(ctx, gz.subarray(0, gz.length - 4), 'E_UPLOAD_CORRUPT'); // only the gzip trailer missing
      const flipped = Buffer.from(gz);
      flipped[flipped.length >> 1] = (flipped[flipped.length >> 1] ?? 0) ^ 0xff;
      await expectRejected(ctx, flipped, 'E_UPLOAD_CORRUPT');
    } finally {
      bundle.cleanup();
    }
  });

  it('E_UPLOAD_CORRUPT for a truncated plain tar, garbage, a bad checksum, no entries or an empty body', async () => {
    const ctx = await storeWithPrevious();
    const raw = tar({ path: 'a', body: 'x'.repeat(2000) }, { path: 'b', body: 'y' });
    await expectRejected(ctx, raw.subarray(0, 1024), 'E_UPLOAD_CORRUPT'); // mid-body
    await expectRejected(ctx, raw.subarray(0, raw.length - 1024), 'E_UPLOAD_CORRUPT'); // at an entry boundary, no end marker
    await expectRejected(ctx, Buffer.from('this is not a tarball at all, just some text\n'.repeat(40)), 'E_UPLOAD_CORRUPT');
    const badSum = Buffer.from(raw);
    badSum[0] = 0x5a; // header changed, checksum not
    await expectRejected(ctx, badSum, 'E_UPLOAD_CORRUPT');
    await expectRejected(ctx, EOA, 'E_UPLOAD_CORRUPT');
    await expectRejected(ctx, gzipSync(EOA), 'E_UPLOAD_CORRUPT');
    await expectRejected(ctx, Buffer.alloc(0), 'E_UPLOAD_CORRUPT');
    await expectRejected(ctx, Readable.from([]), 'E_UPLOAD_CORRUPT');
  });

  it('E_UPLOAD_CORRUPT when the body stream fails mid-upload', async () => {
    const ctx = await storeWithPrevious();
    const stream = new PassThrough();
    const p = expectRejected(ctx, stream, 'E_UPLOAD_CORRUPT');
    stream.write(Buffer.alloc(700, 1));
    setTimeout(() => stream.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })), 10);
    await p;
  });

  it('E_UPLOAD_DIGEST_MISMATCH for a wrong or malformed expected sha256', async () => {
    const ctx = await storeWithPrevious();
    const gz = gzipSync(tar({ path: 'a', body: 'a' }));
    const err = await expectRejected(ctx, gz, 'E_UPLOAD_DIGEST_MISMATCH', { expectedSha256: sha('something else') });
    expect(err.details).toMatchObject({ actual: sha(gz) });
    await expectRejected(ctx, gz, 'E_UPLOAD_DIGEST_MISMATCH', { expectedSha256: 'xyz' });
    // the digest of an already stored artifact does not bypass the check
    await expectRejected(ctx, gz, 'E_UPLOAD_DIGEST_MISMATCH', { expectedSha256: ctx.prev.sha256 });
  });
});

describe('ArtifactStore garbage collection (finding 9)', () => {
  const age = (id: string, ms: number): void => {
    const t = new Date(Date.now() - ms);
    utimesSync(join(storeDir, id, 'artifact.json'), t, t);
  };

  it('sweep removes artifacts unused for longer than the TTL, keeps referenced and recent ones', async () => {
    const store = mkStore();
    const old = await store.put(body(tar({ path: 'old', body: 'o' })));
    const kept = await store.put(body(tar({ path: 'ref', body: 'r' })));
    const fresh = await store.put(body(tar({ path: 'new', body: 'n' })));
    age(old.id, 2 * 3600_000);
    age(kept.id, 2 * 3600_000);
    expect(store.list().map((a) => a.id).sort()).toEqual([old.id, kept.id, fresh.id].sort());
    expect(store.sweep(3600_000, new Set([kept.id]))).toEqual([old.id]);
    expect(store.get(old.id)).toBeNull();
    expect(store.get(kept.id)).not.toBeNull();
    expect(store.get(fresh.id)).not.toBeNull();
    expect(readdirSync(storeDir).sort()).toEqual(['.tmp', kept.id, fresh.id].sort());
  });

  it('an upload of the same bytes, or touch(), restarts the age', async () => {
    const store = mkStore();
    const tarball = tar({ path: 'a', body: 'a' });
    const a = await store.put(body(tarball));
    age(a.id, 2 * 3600_000);
    await store.put(body(tarball));
    expect(store.sweep(3600_000, new Set())).toEqual([]);
    age(a.id, 2 * 3600_000);
    store.touch(a.id);
    expect(store.sweep(3600_000, new Set())).toEqual([]);
    age(a.id, 2 * 3600_000);
    expect(store.sweep(3600_000, new Set())).toEqual([a.id]);
  });
});
