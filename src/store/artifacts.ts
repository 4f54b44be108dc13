/**
 * Server side of `POST /v1/artifacts` (CP-1): stores uploaded source bundles / rootfs trees.
 *
 * Layout under `dir`:
 *   art_<16 hex>/artifact.json   the ArtifactRecord
 *   art_<16 hex>/root/           the extracted tree
 *   .tmp/                        uploads and extractions in progress (private, swept of stale leftovers)
 * An artifact appears by one rename of a fully populated `.tmp/stage-*` directory, so a reader sees either
 * nothing or a complete artifact, and a failed upload never touches existing ones (docs/spec.md §5).
 *
 * Safety (every check runs in pass 1, over the headers only, before anything is written):
 *   - entry paths: absolute (posix or Windows-style) or with a `..` segment → E_UPLOAD_UNSAFE_PATH
 *   - symlinks: absolute target, or a target that leaves the root when resolved from the link's directory
 *     (following the archive's other symlinks, so chains like `d/l -> ..`, `e -> d/l/..` are caught)
 *     → E_UPLOAD_UNSAFE_LINK; any entry below a symlink of the archive → E_UPLOAD_UNSAFE_LINK
 *   - hard links → E_UPLOAD_UNSAFE_LINK; devices, FIFOs and other special types → E_UPLOAD_UNSAFE_ENTRY;
 *     a path given twice with different kinds (e.g. a symlink replacing a directory) → E_UPLOAD_UNSAFE_ENTRY
 *   - more than maxEntries entries, more than maxExtractedBytes of file content, or a decompressed stream
 *     far larger than that (non-file bodies, metadata) → E_UPLOAD_TOO_LARGE; likewise content or a decompressed
 *     stream beyond maxExpansionRatio × the uploaded bytes (a small gzip bomb)
 *   - gzip/tar damage, a missing end-of-archive marker, an archive with no entries → E_UPLOAD_CORRUPT
 * Pass 2 extracts with node-tar (strict, preservePaths off, owner not preserved) while checking it sees the
 * very entries pass 1 approved; symlinks are created only after every file is written, so nothing can be
 * written through one. Modes are normalized: dirs 0755, files 0755 when the archive had an exec bit else
 * 0644 — setuid/setgid/sticky are dropped and the owner is the server user.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join, posix, resolve, win32 } from 'node:path';
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Parser, Unpack, type ReadEntry } from 'tar';
import { ERROR_CODES, UserError, isUserError, type ErrorCode } from '../errors.js';

export interface ArtifactStoreOptions {
  dir: string;
  maxUploadBytes: number;
  maxExtractedBytes: number;
  maxEntries: number;
  /**
   * Extraction may be at most this many times the uploaded bytes (besides maxExtractedBytes), so a small gzip
   * bomb cannot make the server write far more than it received. Default 200; archives under
   * MIN_EXPANSION_ALLOWANCE always get that much; Infinity applies no ratio (a trusted source).
   */
  maxExpansionRatio?: number;
}

export interface ArtifactRecord {
  id: string;
  sha256: string;
  bytes: number;
  kind: 'bundle';
  /** the extracted root */
  dir: string;
  createdAt: number;
  /** the tenant that uploaded it (absent: uploaded without tenants); its id is derived from the tenant too */
  tenant?: string;
}

/** The codes this module produces: the table's `E_UPLOAD_*` entries (their summaries and statuses live there). */
export type UploadErrorCode = Extract<ErrorCode, `E_UPLOAD_${string}`>;
export const UPLOAD_ERROR_CODES = Object.fromEntries(
  Object.entries(ERROR_CODES).filter(([code]) => code.startsWith('E_UPLOAD_')),
) as Pick<typeof ERROR_CODES, UploadErrorCode>;

function uploadError(code: UploadErrorCode, message: string, opts: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}): UserError {
  return new UserError(code, message, opts);
}

const ID_RE = /^art_[0-9a-f]{16}$/;
const SHA_RE = /^[0-9a-f]{64}$/;
const TMP = '.tmp';
const STALE_MS = 60 * 60 * 1000;
const DEFAULT_EXPANSION_RATIO = 200;
/** small archives (a few tar headers compress ~50×) are never refused for their ratio below this size */
const MIN_EXPANSION_ALLOWANCE = 4 * 1024 * 1024;
/** decompressed bytes allowed per entry on top of file content: header, pax/long-name metadata, padding */
const PER_ENTRY_OVERHEAD = 8 * 1024;
/** node-tar's default maxDepth, counted the same way (raw path split on `/`) */
const MAX_DEPTH = 1024;
/** errors of the server's own disk, not of the upload */
const HOST_FS_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EACCES', 'EPERM', 'EMFILE', 'ENFILE', 'ENOMEM']);

type Kind = 'dir' | 'file' | 'symlink';
interface Planned { path: string; kind: Kind; size: number; exec: boolean; linkpath?: string }

export class ArtifactStore {
  private readonly dir: string;
  private readonly tmp: string;
  private readonly opts: ArtifactStoreOptions;

  constructor(opts: ArtifactStoreOptions) {
    for (const k of ['maxUploadBytes', 'maxExtractedBytes', 'maxEntries'] as const) {
      if (!Number.isSafeInteger(opts[k]) || opts[k] <= 0) throw new TypeError(`ArtifactStore: ${k} must be a positive integer`);
    }
    if (opts.maxExpansionRatio !== undefined && !(opts.maxExpansionRatio >= 1)) throw new TypeError('ArtifactStore: maxExpansionRatio must be at least 1');
    this.opts = opts;
    this.dir = resolve(opts.dir);
    this.tmp = join(this.dir, TMP);
    this.sweepStale();
  }

  /**
   * Streams the body to a temp file (E_UPLOAD_TOO_LARGE once maxUploadBytes is exceeded; the body is then
   * left unconsumed, not destroyed, so the HTTP layer can still answer), verifies expectedSha256
   * (E_UPLOAD_DIGEST_MISMATCH), validates every entry, extracts into a fresh dir and renames it into place.
   * Accepts gzip'd or plain tar. The same bytes give the same id; a repeat returns the stored record.
   */
  async put(body: NodeJS.ReadableStream, opts: { expectedSha256?: string; tenant?: string } = {}): Promise<ArtifactRecord> {
    await mkdir(this.tmp, { recursive: true, mode: 0o700 });
    const upload = join(this.tmp, `upload-${randomBytes(8).toString('hex')}`);
    try {
      const { sha256, bytes, gzip } = await this.receive(body, upload);
      if (opts.expectedSha256 !== undefined && opts.expectedSha256.toLowerCase() !== sha256) {
        const malformed = !SHA_RE.test(opts.expectedSha256.toLowerCase());
        throw uploadError('E_UPLOAD_DIGEST_MISMATCH', malformed
          ? `the expected sha256 "${opts.expectedSha256}" is not 64 hex digits`
          : `the upload's sha256 is ${sha256}, expected ${opts.expectedSha256}`, {
          hint: 'the upload was damaged in transit or the digest belongs to another bundle; retry the upload',
          details: { expected: opts.expectedSha256, actual: sha256 },
        });
      }
      // two tenants uploading the same bytes get two artifacts: an id never lets one tenant name another's upload
      const id = opts.tenant ? `art_${createHash('sha256').update(`${opts.tenant}\0${sha256}`).digest('hex').slice(0, 16)}` : `art_${sha256.slice(0, 16)}`;
      const existing = this.existing(id, sha256);
      if (existing) {
        this.touch(id); // uploaded again: its age for garbage collection starts over
        return existing;
      }

      const plan = await this.validate(upload, gzip, bytes);
      const stage = await mkdtemp(join(this.tmp, 'stage-'));
      try {
        const root = join(stage, 'root');
        await mkdir(root, { mode: 0o755 });
        await this.extract(upload, gzip, root, plan);
        const record: ArtifactRecord = { id, sha256, bytes, kind: 'bundle', dir: join(this.dir, id, 'root'), createdAt: Date.now(), ...(opts.tenant ? { tenant: opts.tenant } : {}) };
        await writeFile(join(stage, 'artifact.json'), JSON.stringify(record, null, 2) + '\n', { mode: 0o644 });
        try {
          await rename(stage, join(this.dir, id));
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw e;
          // a concurrent identical upload won the race
          const raced = this.existing(id, sha256);
          if (!raced) throw e;
          await rm(stage, { recursive: true, force: true });
          return raced;
        }
        return record;
      } catch (e) {
        await rm(stage, { recursive: true, force: true });
        throw e;
      }
    } finally {
      await rm(upload, { force: true });
    }
  }

  get(id: string): ArtifactRecord | null {
    if (!ID_RE.test(id)) return null;
    let raw: string;
    try {
      raw = readFileSync(join(this.dir, id, 'artifact.json'), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
      throw e;
    }
    let r: Partial<ArtifactRecord>;
    try {
      r = JSON.parse(raw) as Partial<ArtifactRecord>;
    } catch {
      return null;
    }
    if (r.id !== id || typeof r.sha256 !== 'string' || typeof r.bytes !== 'number' || typeof r.createdAt !== 'number') return null;
    return { id, sha256: r.sha256, bytes: r.bytes, kind: 'bundle', dir: join(this.dir, id, 'root'), createdAt: r.createdAt, ...(typeof r.tenant === 'string' ? { tenant: r.tenant } : {}) };
  }

  /** Every stored artifact with the time it was last uploaded or used (its age for garbage collection). */
  list(): Array<ArtifactRecord & { usedAt: number }> {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: Array<ArtifactRecord & { usedAt: number }> = [];
    for (const n of names) {
      const rec = this.get(n);
      if (!rec) continue;
      // artifact.json's mtime: written at creation, bumped by touch()
      let usedAt: number;
      try {
        usedAt = statSync(join(this.dir, n, 'artifact.json')).mtimeMs;
      } catch {
        continue; // deleted meanwhile
      }
      out.push({ ...rec, usedAt });
    }
    return out;
  }

  /** Marks an artifact as just used (a deploy names it, or it is uploaded again). */
  touch(id: string): void {
    if (!ID_RE.test(id)) return;
    const now = new Date();
    try {
      utimesSync(join(this.dir, id, 'artifact.json'), now, now);
    } catch {
      // gone: nothing to keep alive
    }
  }

  /**
   * Garbage collection: removes artifacts unused for longer than `ttlMs` that `referenced` does not name.
   * Returns the removed ids.
   */
  sweep(ttlMs: number, referenced: ReadonlySet<string>, now = Date.now()): string[] {
    const removed: string[] = [];
    for (const a of this.list()) {
      if (referenced.has(a.id) || now - a.usedAt < ttlMs) continue;
      this.delete(a.id);
      removed.push(a.id);
    }
    this.sweepStale();
    return removed;
  }

  /** Removes an artifact (no-op for an unknown id). Moves it aside first, so it vanishes atomically. */
  delete(id: string): void {
    if (!ID_RE.test(id)) return;
    mkdirSync(this.tmp, { recursive: true, mode: 0o700 });
    const trash = join(this.tmp, `delete-${id}-${randomBytes(4).toString('hex')}`);
    try {
      renameSync(join(this.dir, id), trash);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    rmSync(trash, { recursive: true, force: true });
  }

  // --- internals -------------------------------------------------------------------------------------

  private existing(id: string, sha256: string): ArtifactRecord | null {
    const rec = this.get(id);
    if (rec && rec.sha256 !== sha256) {
      throw new UserError('E_INTERNAL', `artifact id ${id} is taken by a different sha256 (${rec.sha256})`);
    }
    return rec;
  }

  /** Leftovers of a crashed process (never of a live upload: those are younger than STALE_MS). */
  private sweepStale(): void {
    let names: string[];
    try {
      names = readdirSync(this.tmp);
    } catch {
      return;
    }
    const now = Date.now();
    for (const n of names) {
      const p = join(this.tmp, n);
      try {
        if (now - statSync(p).mtimeMs > STALE_MS) rmSync(p, { recursive: true, force: true });
      } catch {
        // raced with another sweeper
      }
    }
  }

  private async receive(body: NodeJS.ReadableStream, file: string): Promise<{ sha256: string; bytes: number; gzip: boolean }> {
    const fh = await open(file, 'wx', 0o600);
    const hash = createHash('sha256');
    let bytes = 0;
    let head = Buffer.alloc(0);
    // do not destroy the body when we stop early: the caller may still want to answer on that connection
    const it: AsyncIterable<unknown> = body instanceof Readable ? body.iterator({ destroyOnReturn: false }) : body;
    const iter = it[Symbol.asyncIterator]();
    try {
      while (true) {
        let r: IteratorResult<unknown>;
        try {
          r = await iter.next();
        } catch (e) {
          if (isUserError(e)) throw e; // e.g. the HTTP layer's E_REQUEST_TIMEOUT for a trickling client
          throw uploadError('E_UPLOAD_CORRUPT', `the upload was interrupted: ${(e as Error).message}`, { cause: e, hint: 'retry the upload' });
        }
        if (r.done) break;
        const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : (r.value as Buffer);
        bytes += chunk.length;
        if (bytes > this.opts.maxUploadBytes) {
          throw uploadError('E_UPLOAD_TOO_LARGE', `the upload exceeds ${this.opts.maxUploadBytes} bytes`, {
            hint: 'exclude build outputs and dependencies from the bundle, or raise the server\'s upload limit',
            details: { limit: this.opts.maxUploadBytes },
          });
        }
        if (head.length < 2) head = Buffer.concat([head, chunk.subarray(0, 2)]);
        hash.update(chunk);
        await fh.write(chunk);
      }
    } finally {
      await fh.close();
    }
    if (bytes === 0) throw uploadError('E_UPLOAD_CORRUPT', 'the upload is empty', { hint: 'send a tar or tar.gz archive as the request body' });
    return { sha256: hash.digest('hex'), bytes, gzip: head[0] === 0x1f && head[1] === 0x8b };
  }

  /** Pass 1: parse every header, enforce every rule, return what pass 2 may write. Writes nothing. */
  private async validate(file: string, gzip: boolean, uploadBytes: number): Promise<Planned[]> {
    const { maxEntries } = this.opts;
    // bounded by the absolute limit and by the upload's own size: both the file content and the whole
    // decompressed stream (headers, skipped bodies, trailing data) stay within ratio × what was received
    const ratio = this.opts.maxExpansionRatio ?? DEFAULT_EXPANSION_RATIO;
    const relative = Math.max(MIN_EXPANSION_ALLOWANCE, Math.ceil(ratio * uploadBytes));
    const maxExtractedBytes = Math.min(this.opts.maxExtractedBytes, relative);
    const why = maxExtractedBytes < this.opts.maxExtractedBytes ? ` (${ratio}× the ${uploadBytes}-byte upload)` : '';
    const details = { limit: maxExtractedBytes, uploadBytes, ratio };
    const plan: Planned[] = [];
    const kinds = new Map<string, Kind | 'parent'>();
    let contentBytes = 0;
    let failure: unknown = null;
    let terminated = false;
    let sawEof = false;

    const parser = new Parser({ strict: true, zstd: false, brotli: false });
    parser.on('error', (e: unknown) => { failure ??= e; });
    parser.on('ignoredEntry', (e: ReadEntry) => {
      failure ??= e.meta
        ? uploadError('E_UPLOAD_CORRUPT', `the archive has an oversized ${e.type} metadata entry`)
        : uploadError('E_UPLOAD_UNSAFE_ENTRY', `the archive has an unsupported ${e.type} entry: ${e.path}`, {
          hint: 'only regular files, directories and symlinks are accepted', details: { path: e.path, type: e.type },
        });
    });
    parser.on('nullBlock', () => { terminated = true; });
    parser.on('eof', () => { terminated = true; sawEof = true; });
    parser.on('entry', (entry: ReadEntry) => {
      entry.resume();
      terminated = false;
      if (failure) return;
      try {
        if (plan.length + 1 > maxEntries) {
          throw uploadError('E_UPLOAD_TOO_LARGE', `the archive has more than ${maxEntries} entries`, { details: { limit: maxEntries } });
        }
        const p = checkEntry(entry, kinds);
        if (p.kind === 'file') {
          contentBytes += p.size;
          if (contentBytes > maxExtractedBytes) {
            throw uploadError('E_UPLOAD_TOO_LARGE', `the archive expands to more than ${maxExtractedBytes} bytes${why}`, { details });
          }
        }
        plan.push(p);
      } catch (e) {
        failure = e;
      }
    });

    await feed(file, gzip, Math.min(relative, this.opts.maxExtractedBytes + (maxEntries + 4) * PER_ENTRY_OVERHEAD), {
      write: (chunk) => { parser.write(chunk); },
      end: () => { parser.end(); },
      state: () => (failure !== null ? 'abort' : sawEof ? 'skip' : 'more'),
    });
    if (failure) throw classify(failure);
    if (plan.length === 0) throw uploadError('E_UPLOAD_CORRUPT', 'the archive has no entries');
    if (!terminated) throw uploadError('E_UPLOAD_CORRUPT', 'the archive is truncated (no end-of-archive marker)', { hint: 'retry the upload' });
    checkLinks(plan);
    return plan;
  }

  /** Pass 2: extract files and dirs with node-tar, then create the (validated) symlinks, then fix modes. */
  private async extract(file: string, gzip: boolean, root: string, plan: Planned[]): Promise<void> {
    let i = 0;
    let failure: unknown = null;
    let sawEof = false;
    const unpack = new Unpack({
      cwd: root,
      strict: true,
      preservePaths: false,
      preserveOwner: false,
      zstd: false,
      brotli: false,
      filter: (path: string, entry: ReadEntry | { size: number }) => {
        const e = entry as ReadEntry;
        const want = plan[i++];
        if (!want || normalize(path) !== want.path || kindOf(e.type) !== want.kind || (want.kind === 'file' && e.size !== want.size)) {
          failure ??= uploadError('E_UPLOAD_CORRUPT', `the archive changed between validation and extraction at ${path}`);
          return false;
        }
        if (want.kind === 'symlink') return false; // created after all files, below
        e.mode = want.kind === 'dir' || want.exec ? 0o755 : 0o644;
        return true;
      },
    });
    unpack.on('error', (e: unknown) => { failure ??= e; });
    unpack.on('eof', () => { sawEof = true; });
    let ended = false;
    const end = new Promise<void>((res) => unpack.on('end', () => { ended = true; res(); }));
    await feed(file, gzip, Number.MAX_SAFE_INTEGER, {
      write: (chunk) => unpack.write(chunk),
      end: () => { if (!ended) unpack.end(); },
      state: () => (failure !== null ? 'abort' : sawEof ? 'skip' : 'more'),
      drain: () => new Promise<void>((res) => {
        const done = (): void => { unpack.off('drain', done); unpack.off('error', done); unpack.off('end', done); res(); };
        unpack.on('drain', done);
        unpack.on('error', done);
        unpack.on('end', done);
      }),
    });
    await end; // every pending write has settled, nothing races the cleanup
    if (failure) throw classify(failure);
    if (i !== plan.length) throw uploadError('E_UPLOAD_CORRUPT', 'the archive changed between validation and extraction');

    const dirs = new Set<string>();
    for (const p of plan) {
      for (let d = posix.dirname(p.path); d !== '.'; d = posix.dirname(d)) dirs.add(d);
      if (p.kind === 'dir') dirs.add(p.path);
    }
    for (const p of plan) {
      if (p.kind !== 'symlink' || p.linkpath === undefined) continue;
      const parent = posix.dirname(p.path);
      if (parent !== '.') await mkdir(join(root, parent), { recursive: true, mode: 0o755 });
      await symlink(p.linkpath, join(root, p.path));
    }
    await chmod(root, 0o755);
    for (const d of dirs) await chmod(join(root, d), 0o755);
    for (const p of plan) if (p.kind === 'file') await chmod(join(root, p.path), p.exec ? 0o755 : 0o644);
  }
}

// --- entry rules -----------------------------------------------------------------------------------------

function kindOf(type: string): Kind | null {
  switch (type) {
    case 'File': case 'OldFile': case 'ContiguousFile': return 'file';
    case 'Directory': return 'dir';
    case 'SymbolicLink': return 'symlink';
    default: return null;
  }
}

/** `./a//b/` → `a/b`; the root itself → ''. Callers have rejected absolute paths and `..` already. */
function normalize(p: string): string {
  return p.split('/').filter((s) => s !== '' && s !== '.').join('/');
}

function checkEntry(entry: ReadEntry, kinds: Map<string, Kind | 'parent'>): Planned {
  const raw = entry.path;
  if (raw.startsWith('/') || win32.isAbsolute(raw) || win32.parse(raw).root !== '') {
    throw uploadError('E_UPLOAD_UNSAFE_PATH', `the archive has an absolute path: ${raw}`, { details: { path: raw } });
  }
  if (raw.split('/').length > MAX_DEPTH) {
    throw uploadError('E_UPLOAD_UNSAFE_PATH', `the archive has a path nested more than ${MAX_DEPTH} levels deep: ${raw.slice(0, 80)}…`, { details: { depth: raw.split('/').length } });
  }
  // node-tar treats `\` as a separator when looking for `..`; so do we
  if (raw.split(/[\\/]/).includes('..')) {
    throw uploadError('E_UPLOAD_UNSAFE_PATH', `the archive has a path with "..": ${raw}`, { details: { path: raw } });
  }
  if (entry.type === 'Link') {
    throw uploadError('E_UPLOAD_UNSAFE_LINK', `the archive has a hard link: ${raw} -> ${entry.linkpath ?? ''}`, {
      hint: 'hard links are not accepted; pack the files as regular files', details: { path: raw },
    });
  }
  const kind = kindOf(entry.type);
  if (!kind) {
    throw uploadError('E_UPLOAD_UNSAFE_ENTRY', `the archive has a ${entry.type} entry: ${raw}`, {
      hint: 'only regular files, directories and symlinks are accepted', details: { path: raw, type: entry.type },
    });
  }
  if (kind !== 'file' && entry.size > 0) {
    throw uploadError('E_UPLOAD_CORRUPT', `the ${entry.type} entry ${raw} has a body of ${entry.size} bytes`);
  }
  const path = normalize(raw);
  if (path === '' && kind !== 'dir') {
    throw uploadError('E_UPLOAD_UNSAFE_PATH', `the archive entry ${raw} would replace the extraction root`, { details: { path: raw } });
  }
  let linkpath: string | undefined;
  if (kind === 'symlink') {
    linkpath = entry.linkpath ?? '';
    if (linkpath.startsWith('/') || win32.isAbsolute(linkpath)) {
      throw uploadError('E_UPLOAD_UNSAFE_LINK', `the symlink ${raw} has an absolute target: ${linkpath}`, {
        hint: 'make the link relative to its own directory', details: { path: raw, linkpath },
      });
    }
  }
  // nothing may be written below a symlink, and a path may not change kind (dir → symlink, file → dir …)
  const segs = path === '' ? [] : path.split('/');
  for (let n = 1; n < segs.length; n++) {
    const prefix = segs.slice(0, n).join('/');
    const k = kinds.get(prefix);
    if (k === 'symlink') {
      throw uploadError('E_UPLOAD_UNSAFE_LINK', `the archive entry ${raw} lies below the symlink ${prefix}`, { details: { path: raw, symlink: prefix } });
    }
    if (k === 'file') {
      throw uploadError('E_UPLOAD_UNSAFE_ENTRY', `the archive entry ${raw} lies below the file ${prefix}`, { details: { path: raw } });
    }
    if (k === undefined) kinds.set(prefix, 'parent');
  }
  if (path !== '') {
    const prev = kinds.get(path);
    if (prev !== undefined && !((prev === 'dir' || prev === 'parent') && kind === 'dir')) {
      throw uploadError('E_UPLOAD_UNSAFE_ENTRY', `the archive has ${raw} twice, or as a ${kind} where a ${prev === 'parent' ? 'dir' : prev} already is`, { details: { path: raw } });
    }
    kinds.set(path, kind);
  }
  const exec = ((entry.mode ?? 0) & 0o111) !== 0;
  return { path, kind, size: kind === 'file' ? entry.size : 0, exec, ...(linkpath !== undefined ? { linkpath } : {}) };
}

/**
 * Resolves every symlink target inside the archive's own tree, following the archive's other symlinks the way
 * the kernel would; any step above the root is an escape. Cycles are left alone (they only ever yield ELOOP).
 */
function checkLinks(plan: Planned[]): void {
  const links = new Map<string, string>();
  for (const p of plan) if (p.kind === 'symlink' && p.linkpath !== undefined) links.set(p.path, p.linkpath);
  for (const [path, target] of links) {
    const stack = path.split('/').slice(0, -1);
    let queue = target.split('/');
    let hops = 0;
    while (queue.length > 0) {
      const s = queue.shift() as string;
      if (s === '' || s === '.') continue;
      if (s === '..') {
        if (stack.length === 0) {
          throw uploadError('E_UPLOAD_UNSAFE_LINK', `the symlink ${path} -> ${target} escapes the archive root`, {
            hint: 'make the link point inside the uploaded tree', details: { path, linkpath: target },
          });
        }
        stack.pop();
        continue;
      }
      stack.push(s);
      const next = links.get(stack.join('/'));
      if (next === undefined) continue;
      if (++hops > 40) break; // a loop: the kernel stops with ELOOP, nothing escapes
      if (next.startsWith('/')) {
        throw uploadError('E_UPLOAD_UNSAFE_LINK', `the symlink ${path} -> ${target} leads to an absolute target`, { details: { path, linkpath: target } });
      }
      stack.pop();
      queue = [...next.split('/'), ...queue];
    }
  }
}

// --- streaming helpers -----------------------------------------------------------------------------------

interface Sink {
  /** returns false to ask for a drain */
  write(chunk: Buffer): boolean | void;
  end(): void;
  /** 'more': wants data; 'skip': has all it needs (end-of-archive seen), the rest is still read so a damaged
   * gzip stream is noticed; 'abort': failed, stop reading */
  state(): 'more' | 'skip' | 'abort';
  drain?(): Promise<void>;
}

/**
 * Reads the upload (gunzipping it when needed) and hands the tar bytes to the sink; enforces a bound on the
 * decompressed bytes (a gzip bomb hidden in bodies the tar parser skips, or in trailing data).
 */
async function feed(file: string, gzip: boolean, limit: number, sink: Sink): Promise<void> {
  const src = createReadStream(file);
  const stream: NodeJS.ReadableStream = gzip ? pipeline(src, createGunzip(), () => {}) : src;
  let total = 0;
  try {
    for await (const c of stream) {
      const chunk = c as Buffer;
      total += chunk.length;
      if (total > limit) {
        throw uploadError('E_UPLOAD_TOO_LARGE', `the archive decompresses to more than ${limit} bytes`, { details: { limit } });
      }
      const st = sink.state();
      if (st === 'abort') break;
      if (st === 'skip') continue;
      if (sink.write(chunk) === false && sink.drain && sink.state() === 'more') await sink.drain();
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    if (isZlibError(e)) {
      throw uploadError('E_UPLOAD_CORRUPT', `the gzip stream is damaged: ${(e as Error).message}`, { cause: e, hint: 'the upload is truncated or not a .tar.gz; retry it' });
    }
    throw e;
  } finally {
    sink.end();
  }
}

function isZlibError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}

/** Maps whatever pass 1/2 raised to a stable code. */
function classify(e: unknown): unknown {
  if (e instanceof UserError) return e;
  const err = e as { code?: unknown; tarCode?: unknown; message?: unknown };
  const code = typeof err.code === 'string' ? err.code : '';
  const tarCode = typeof err.tarCode === 'string' ? err.tarCode : '';
  if (HOST_FS_ERRORS.has(code)) return e;
  if (code === 'TAR_SYMLINK_ERROR' || tarCode === 'TAR_SYMLINK_ERROR') {
    return uploadError('E_UPLOAD_UNSAFE_LINK', `extraction refused to write through a symlink: ${String(err.message)}`, { cause: e });
  }
  if (tarCode.startsWith('TAR_') || code.startsWith('TAR_')) {
    return uploadError('E_UPLOAD_CORRUPT', `the archive is damaged: ${String(err.message)}`, { cause: e, hint: 'the upload is truncated or not a tar archive; retry it' });
  }
  if (isZlibError(e)) return uploadError('E_UPLOAD_CORRUPT', `the gzip stream is damaged: ${String(err.message)}`, { cause: e });
  return e;
}
