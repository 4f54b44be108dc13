import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { list, type ReadEntry } from 'tar';
import { UserError } from '../errors.js';
import { DEFAULT_BUNDLE_EXCLUDES, packBundle, type Bundle } from './bundle.js';

interface Listed { path: string; type: string; mode: number | undefined; size: number; linkpath: string | undefined; mtime: number | undefined; uid: number | undefined; gid: number | undefined; uname: string | undefined }

async function listBundle(file: string): Promise<Listed[]> {
  const out: Listed[] = [];
  await list({
    file,
    strict: true,
    onReadEntry: (e: ReadEntry) => {
      out.push({ path: e.path, type: e.type, mode: e.mode, size: e.size, linkpath: e.linkpath, mtime: e.mtime?.getTime(), uid: e.uid, gid: e.gid, uname: e.uname });
    },
  });
  return out;
}

let work: string;
const bundles: Bundle[] = [];
const pack = async (...args: Parameters<typeof packBundle>): Promise<Bundle> => {
  const b = await packBundle(...args);
  bundles.push(b);
  return b;
};

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'unikctl-bundle-test-'));
});
afterEach(() => {
  for (const b of bundles.splice(0)) b.cleanup();
  rmSync(work, { recursive: true, force: true });
});

function write(rel: string, content: string, mode = 0o644): void {
  const p = join(work, 'proj', rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content);
  chmodSync(p, mode);
}

describe('packBundle', () => {
  it('packs a directory: sorted entries, normalized modes, mtime 0, uid/gid 0, no user names, symlinks kept', async () => {
    write('b.txt', 'bee');
    write('a/run.sh', '#!/bin/sh\necho hi\n', 0o4750);
    write('a/data.bin', 'x'.repeat(1000), 0o600);
    symlinkSync('a/run.sh', join(work, 'proj', 'link'));
    const b = await pack(join(work, 'proj'));
    expect(b.bytes).toBe(readFileSync(b.file).length);
    expect(b.sha256).toMatch(/^[0-9a-f]{64}$/);
    const entries = await listBundle(b.file);
    expect(entries.map((e) => [e.path, e.type])).toEqual([
      ['a/', 'Directory'], ['a/data.bin', 'File'], ['a/run.sh', 'File'], ['b.txt', 'File'], ['link', 'SymbolicLink'],
    ]);
    const by = new Map(entries.map((e) => [e.path, e]));
    expect(by.get('a/')?.mode).toBe(0o755);
    expect(by.get('a/run.sh')?.mode).toBe(0o755); // exec kept, setuid dropped
    expect(by.get('a/data.bin')?.mode).toBe(0o644);
    expect(by.get('a/data.bin')?.size).toBe(1000);
    expect(by.get('link')?.linkpath).toBe('a/run.sh');
    for (const e of entries) {
      expect(e.mtime).toBe(0);
      expect(e.uid).toBe(0);
      expect(e.gid).toBe(0);
      expect(e.uname ?? '').toBe('');
    }
  });

  it('is deterministic: same tree → same bytes, regardless of mtimes and creation order', async () => {
    write('z.txt', 'z');
    write('m/n.txt', 'n');
    write('a.txt', 'a', 0o755);
    const one = await pack(join(work, 'proj'));
    const two = await pack(join(work, 'proj'));
    expect(two.sha256).toBe(one.sha256);
    expect(two.file).not.toBe(one.file);
    utimesSync(join(work, 'proj', 'z.txt'), new Date(2020, 1, 1), new Date(2020, 1, 1));
    // the same tree built in another order elsewhere
    const other = join(work, 'other');
    mkdirSync(join(other, 'm'), { recursive: true });
    writeFileSync(join(other, 'a.txt'), 'a');
    chmodSync(join(other, 'a.txt'), 0o700);
    writeFileSync(join(other, 'm', 'n.txt'), 'n');
    writeFileSync(join(other, 'z.txt'), 'z');
    const three = await pack(join(work, 'proj'));
    const four = await pack(other);
    expect(three.sha256).toBe(one.sha256);
    expect(four.sha256).toBe(one.sha256);
    write('z.txt', 'changed');
    expect((await pack(join(work, 'proj'))).sha256).not.toBe(one.sha256);
  });

  it('leaves out the default excludes at any depth', async () => {
    expect(DEFAULT_BUNDLE_EXCLUDES).toEqual(['.git', '.unikctl', 'node_modules', 'target', '__pycache__', '.venv']);
    write('main.py', 'print(1)');
    for (const d of DEFAULT_BUNDLE_EXCLUDES) write(`${d}/x`, 'x');
    write('pkg/node_modules/dep/index.js', 'x');
    write('pkg/__pycache__/m.pyc', 'x');
    write('pkg/targets/kept', 'x');
    const b = await pack(join(work, 'proj'));
    expect((await listBundle(b.file)).map((e) => e.path)).toEqual(['main.py', 'pkg/', 'pkg/targets/', 'pkg/targets/kept']);
  });

  it('custom excludes replace the defaults; globs and root-anchored paths', async () => {
    write('node_modules/dep.js', 'x');
    write('app.log', 'x');
    write('src/debug.log', 'x');
    write('src/main.js', 'x');
    write('dist/out.js', 'x');
    write('src/dist/keep.js', 'x');
    const b = await pack(join(work, 'proj'), { exclude: ['*.log', '/dist'] });
    expect((await listBundle(b.file)).map((e) => e.path)).toEqual([
      'node_modules/', 'node_modules/dep.js', 'src/', 'src/dist/', 'src/dist/keep.js', 'src/main.js',
    ]);
  });

  it('packs a single file under its base name, keeping the exec bit', async () => {
    mkdirSync(join(work, 'bin'));
    writeFileSync(join(work, 'bin', 'server'), 'ELF...');
    chmodSync(join(work, 'bin', 'server'), 0o755);
    const b = await pack(join(work, 'bin', 'server'));
    const entries = await listBundle(b.file);
    expect(entries.map((e) => [e.path, e.type, e.mode, e.size])).toEqual([['server', 'File', 0o755, 6]]);
  });

  it('stores long paths and link targets through pax headers', async () => {
    const deep = Array.from({ length: 12 }, (_, i) => `directory-level-${i}`).join('/');
    write(`${deep}/file.txt`, 'deep');
    symlinkSync(`${deep}/file.txt`, join(work, 'proj', 'shortcut'));
    const b = await pack(join(work, 'proj'));
    const entries = await listBundle(b.file);
    expect(entries.find((e) => e.type === 'File')?.path).toBe(`${deep}/file.txt`);
    expect(entries.find((e) => e.type === 'SymbolicLink')?.linkpath).toBe(`${deep}/file.txt`);
  });

  it('rejects a missing path and an empty directory with E_INVALID_ARGUMENT', async () => {
    await expect(packBundle(join(work, 'nope'))).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    mkdirSync(join(work, 'empty'));
    mkdirSync(join(work, 'only-git', '.git'), { recursive: true });
    await expect(packBundle(join(work, 'empty'))).rejects.toBeInstanceOf(UserError);
    await expect(packBundle(join(work, 'only-git'))).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });

  it('cleanup removes the temp file and is idempotent', async () => {
    write('a', 'a');
    const b = await packBundle(join(work, 'proj'));
    expect(existsSync(b.file)).toBe(true);
    b.cleanup();
    b.cleanup();
    expect(existsSync(b.file)).toBe(false);
    expect(existsSync(join(b.file, '..'))).toBe(false);
  });
});
