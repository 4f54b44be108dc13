/**
 * Client side of artifact upload (CP-1/CP-5): packs a project dir, a --rootfs dir or a single binary into a
 * deterministic gzip'd tar that `POST /v1/artifacts` accepts (see src/store/artifacts.ts).
 *
 * Determinism: entries are walked depth-first with names sorted by UTF-16 code unit (not locale), every
 * header carries mtime 0, uid/gid 0 and no user/group names, modes are normalized (dirs 0755, files 0755 if
 * any exec bit is set else 0644, symlinks 0777). The same tree therefore always yields the same bytes and
 * the same sha256 (for a given zlib version).
 *
 * What goes in: regular files (hard links are stored as independent files), directories and symlinks (kept
 * as symlinks, their target verbatim). Sockets, FIFOs and devices are skipped (a server refuses them anyway).
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { lstat, mkdtemp, readdir, readlink, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { Header, Pax } from 'tar';
import { UserError } from '../errors.js';

export interface BundleOptions {
  /**
   * Names or paths to leave out; replaces DEFAULT_BUNDLE_EXCLUDES when given (spread it to extend). A pattern
   * without `/` matches an entry's base name at any depth; one with `/` matches the path relative to the
   * bundle root (a leading `/` is ignored). `*` and `?` glob within one path segment. An excluded directory
   * drops its whole subtree. Ignored when packing a single file.
   */
  exclude?: string[];
}

export interface Bundle {
  /** the .tar.gz in a private temp directory */
  file: string;
  bytes: number;
  /** hex sha256 of the .tar.gz bytes (what the server computes, and its artifact id is derived from) */
  sha256: string;
  /** removes the temp file and its directory; idempotent */
  cleanup(): void;
}

export const DEFAULT_BUNDLE_EXCLUDES: readonly string[] = ['.git', '.unikctl', 'node_modules', 'target', '__pycache__', '.venv'];

type PackEntry =
  | { kind: 'dir'; rel: string }
  | { kind: 'file'; rel: string; abs: string; size: number; exec: boolean }
  | { kind: 'symlink'; rel: string; target: string };

const BLOCK = 512;
const EPOCH = new Date(0);

/** Packs a directory (or one file, stored under its base name) into a gzip'd tar in a temp file. */
export async function packBundle(path: string, opts: BundleOptions = {}): Promise<Bundle> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw new UserError('E_INVALID_ARGUMENT', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  }
  let entries: PackEntry[];
  if (st.isFile()) {
    entries = [{ kind: 'file', rel: basename(path), abs: path, size: st.size, exec: (st.mode & 0o111) !== 0 }];
  } else if (st.isDirectory()) {
    const matchers = (opts.exclude ?? DEFAULT_BUNDLE_EXCLUDES).map(compileExclude);
    entries = [];
    await walk(path, '', matchers, entries);
    if (entries.length === 0) {
      throw new UserError('E_INVALID_ARGUMENT', `nothing to upload: ${path} is empty (after excludes)`, { hint: 'check the directory and the exclude list' });
    }
  } else {
    throw new UserError('E_INVALID_ARGUMENT', `${path} is neither a regular file nor a directory`);
  }

  const dir = await mkdtemp(join(tmpdir(), 'unikctl-bundle-'));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  const file = join(dir, 'bundle.tar.gz');
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    await pipeline(
      tarStream(entries),
      createGzip(),
      async function* tap(src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          hash.update(chunk);
          bytes += chunk.length;
          yield chunk;
        }
      },
      createWriteStream(file, { mode: 0o600 }),
    );
  } catch (e) {
    cleanup();
    throw e;
  }
  return { file, bytes, sha256: hash.digest('hex'), cleanup };
}

async function walk(root: string, relDir: string, excludes: Array<(rel: string, name: string) => boolean>, out: PackEntry[]): Promise<void> {
  const absDir = relDir ? join(root, relDir) : root;
  const names = (await readdir(absDir)).sort(byCodeUnit);
  for (const name of names) {
    const rel = relDir ? `${relDir}/${name}` : name;
    if (excludes.some((m) => m(rel, name))) continue;
    const abs = join(absDir, name);
    const st = await lstat(abs);
    if (st.isSymbolicLink()) {
      out.push({ kind: 'symlink', rel, target: await readlink(abs) });
    } else if (st.isDirectory()) {
      out.push({ kind: 'dir', rel });
      await walk(root, rel, excludes, out);
    } else if (st.isFile()) {
      out.push({ kind: 'file', rel, abs, size: st.size, exec: (st.mode & 0o111) !== 0 });
    }
    // sockets, FIFOs and devices are skipped
  }
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compileExclude(pattern: string): (rel: string, name: string) => boolean {
  const anchored = pattern.includes('/');
  const p = pattern.replace(/^\/+/, '').replace(/\/+$/, '');
  const re = new RegExp('^' + p.split('').map((c) => (c === '*' ? '[^/]*' : c === '?' ? '[^/]' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('') + '$');
  return anchored ? (rel) => re.test(rel) : (_rel, name) => re.test(name);
}

function headerBlocks(h: { path: string; type: 'File' | 'Directory' | 'SymbolicLink'; mode: number; size: number; linkpath?: string }): Buffer[] {
  const header = new Header({
    path: h.path, type: h.type, mode: h.mode, size: h.size, linkpath: h.linkpath ?? '',
    uid: 0, gid: 0, uname: '', gname: '', mtime: EPOCH, devmaj: 0, devmin: 0,
  });
  const needPax = header.encode();
  const block = header.block;
  if (!block) throw new Error('tar header encoding failed');
  if (!needPax) return [block];
  // long path/linkpath (or huge size): a pax extended header carries the full values
  const pax = new Pax({ path: h.path, size: h.size, ...(h.linkpath ? { linkpath: h.linkpath } : {}) }).encode();
  return [pax, block];
}

async function* tarStream(entries: PackEntry[]): AsyncGenerator<Buffer> {
  for (const e of entries) {
    if (e.kind === 'dir') {
      yield* headerBlocks({ path: `${e.rel}/`, type: 'Directory', mode: 0o755, size: 0 });
    } else if (e.kind === 'symlink') {
      yield* headerBlocks({ path: e.rel, type: 'SymbolicLink', mode: 0o777, size: 0, linkpath: e.target });
    } else {
      yield* headerBlocks({ path: e.rel, type: 'File', mode: e.exec ? 0o755 : 0o644, size: e.size });
      let read = 0;
      if (e.size > 0) {
        for await (const chunk of createReadStream(e.abs, { start: 0, end: e.size - 1 })) {
          read += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
      }
      if (read !== e.size) {
        throw new UserError('E_INVALID_ARGUMENT', `${e.abs} changed while it was being packed (${read} of ${e.size} bytes)`, { hint: 'retry once the file is no longer being written' });
      }
      const pad = (BLOCK - (e.size % BLOCK)) % BLOCK;
      if (pad) yield Buffer.alloc(pad);
    }
  }
  yield Buffer.alloc(BLOCK * 2); // end-of-archive marker
}
