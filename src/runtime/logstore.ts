/**
 * Per-deployment log files: JSON Lines (`{"t":<epoch ms>,"s":<stream>,"m":<text>}`), written by the one
 * supervisor process of a deployment and rotated by size (file -> file.1 -> file.2 ...), read by `logs`.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../errors.js';
import { durationMs } from '../util/duration.js';

export interface LogEntry {
  t: number;
  s: 'app' | 'kernel' | 'init' | 'build';
  m: string;
  /** in a service's merged logs: the replica (or the app, for its controller's lines) the line comes from; never stored */
  src?: string;
}

const STREAMS: ReadonlySet<string> = new Set(['app', 'kernel', 'init', 'build']);

export interface LogWriterOptions {
  /** Rotate before the file would exceed this many bytes. Default 4 MiB. */
  maxBytes?: number;
  /** Rotated files kept (file.1 … file.<keep>). Default 2. */
  keep?: number;
}

/**
 * Appends entries synchronously through a kept file descriptor. Total disk use stays below
 * (keep + 1) * maxBytes: an entry is rotated into a fresh file when it would not fit, and an entry that
 * alone exceeds maxBytes has its message truncated.
 */
export class LogWriter {
  readonly file: string;
  private readonly maxBytes: number;
  private readonly keep: number;
  private fd: number | undefined;
  private size = 0;
  private dropped = 0;

  constructor(file: string, opts: LogWriterOptions = {}) {
    this.file = file;
    this.maxBytes = Math.max(1, Math.floor(opts.maxBytes ?? 4 * 1024 * 1024));
    this.keep = Math.max(0, Math.floor(opts.keep ?? 2));
    mkdirSync(dirname(file), { recursive: true });
    this.open();
  }

  append(e: LogEntry): void {
    if (this.fd === undefined) throw new Error(`log writer for ${this.file} is closed`);
    let line = serialize(e);
    let bytes = Buffer.byteLength(line);
    if (bytes > this.maxBytes) {
      line = serialize({ ...e, m: truncateToFit(e, this.maxBytes) });
      bytes = Buffer.byteLength(line);
    }
    if (this.dropped > 0) {
      // the disk had room again: say what is missing; a line cut by the full disk is ended first (readers skip it)
      line = `\n${serialize({ t: e.t, s: 'init', m: `unikctl: ${this.dropped} log line(s) dropped: the disk was full` })}${line}`;
      bytes = Buffer.byteLength(line);
    }
    const fd = this.size > 0 && this.size + bytes > this.maxBytes ? this.rotate() : this.fd;
    try {
      writeAll(fd, Buffer.from(line));
    } catch (err) {
      // a full disk must not take the app down with its supervisor: the lines are dropped and counted instead
      if (!isNoSpace(err)) throw err;
      this.dropped++;
      return;
    }
    this.dropped = 0;
    this.size += bytes;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private open(): number {
    const fd = openSync(this.file, 'a');
    this.fd = fd;
    this.size = fstatSync(fd).size;
    return fd;
  }

  private rotate(): number {
    this.close();
    // Rotated files beyond `keep` (e.g. left by a larger `keep` earlier) go first.
    for (const { n, path } of rotatedFiles(this.file)) if (n > this.keep) unlinkQuiet(path);
    if (this.keep === 0) {
      unlinkQuiet(this.file);
    } else {
      for (let i = this.keep - 1; i >= 1; i--) renameQuiet(`${this.file}.${i}`, `${this.file}.${i + 1}`);
      renameQuiet(this.file, `${this.file}.1`);
    }
    return this.open();
  }
}

export interface ReadOptions {
  /** Only the last N entries (after the other filters). */
  tail?: number;
  /** Only entries with t >= sinceMs. */
  sinceMs?: number;
  /** Only these streams (all when undefined or empty). */
  streams?: Array<LogEntry['s']>;
}

/** All entries of the rotated files (oldest first) and the current file, filtered. Missing files read as empty. */
export function readLogs(file: string, opts: ReadOptions = {}): LogEntry[] {
  const out: LogEntry[] = [];
  const accept = filterFor(opts);
  for (const { path } of rotatedFiles(file)) collect(readQuiet(path), accept, out);
  collect(readQuiet(file), accept, out);
  return applyTail(out, opts.tail);
}

export interface FollowOptions extends ReadOptions {
  signal: AbortSignal;
  /** Poll interval. Default 200 ms. */
  pollMs?: number;
  /** True once nothing more will be written (e.g. the deployment stopped). */
  isDone: () => boolean;
}

/**
 * Yields readLogs() first, then entries as they are appended. Survives rotation (the open descriptor of the
 * rotated file is read to its end, then any newer rotated files, then the new file). Ends when the signal
 * aborts, or when isDone() was true before a read that found everything consumed.
 */
export function followLogs(file: string, opts: FollowOptions): AsyncIterable<LogEntry> {
  return follow(file, opts);
}

async function* follow(file: string, opts: FollowOptions): AsyncGenerator<LogEntry> {
  const pollMs = Math.max(1, opts.pollMs ?? 200);
  const accept = filterFor(opts);
  const tailer = new Tailer(file);
  try {
    // Open the current file before reading the rotated ones so a rotation in between is noticed by inode.
    tailer.openCurrent();
    const initial: LogEntry[] = [];
    for (const { path } of rotatedFiles(file)) {
      if (tailer.isSameFile(path)) continue;
      collect(readQuiet(path), accept, initial);
    }
    for (const line of tailer.readNew()) collectLine(line, accept, initial);
    for (const e of applyTail(initial, opts.tail)) {
      if (opts.signal.aborted) return;
      yield e;
    }
    while (!opts.signal.aborted) {
      const done = opts.isDone(); // before the read: whatever was written before "done" is read below
      for (const line of tailer.readNew()) {
        const e = parseLine(line);
        if (e && accept(e)) {
          if (opts.signal.aborted) return;
          yield e;
        }
      }
      if (done) return;
      try {
        await sleep(pollMs, undefined, { signal: opts.signal });
      } catch {
        return; // aborted
      }
    }
  } finally {
    tailer.close();
  }
}

/** Incremental reader of a rotating file, holding a descriptor so a rotated file can be finished. */
class Tailer {
  private fd: number | undefined;
  private ino = -1;
  private dev = -1;
  private offset = 0;
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly file: string) {}

  openCurrent(): void {
    try {
      this.fd = openSync(this.file, 'r');
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    const st = fstatSync(this.fd);
    this.ino = st.ino;
    this.dev = st.dev;
    this.offset = 0;
    this.pending = Buffer.alloc(0);
  }

  isSameFile(path: string): boolean {
    if (this.fd === undefined) return false;
    const st = statQuiet(path);
    return st !== undefined && st.ino === this.ino && st.dev === this.dev;
  }

  /** Complete lines appended since the last call, across rotations. */
  readNew(): string[] {
    const lines: string[] = [];
    if (this.fd === undefined) {
      this.openCurrent();
      if (this.fd === undefined) return lines;
    }
    this.drain(lines);
    const st = statQuiet(this.file);
    if (st === undefined || st.ino !== this.ino || st.dev !== this.dev) {
      // Rotated (or removed). Our descriptor was drained above; writes to a renamed file have stopped
      // because the single writer reopens by path, but drain once more to be safe.
      this.drain(lines);
      const rotated = rotatedFiles(this.file); // oldest first
      const mine = rotated.findIndex((r) => this.isSameFile(r.path));
      // Files newer than ours; if ours was already deleted, every existing rotated file is newer.
      const newer = mine === -1 ? rotated : rotated.slice(mine + 1);
      this.close();
      for (const r of newer) {
        for (const line of splitComplete(readQuiet(r.path))) lines.push(line);
      }
      if (st !== undefined) {
        this.openCurrent();
        if (this.fd !== undefined) this.drain(lines);
      }
    } else if (st.size < this.offset) {
      // Truncated in place: start over.
      this.offset = 0;
      this.pending = Buffer.alloc(0);
      this.drain(lines);
    }
    return lines;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.pending = Buffer.alloc(0);
  }

  private drain(lines: string[]): void {
    if (this.fd === undefined) return;
    const chunk = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      const n = readSync(this.fd, chunk, 0, chunk.length, this.offset);
      if (n === 0) break;
      this.offset += n;
      let data = Buffer.concat([this.pending, chunk.subarray(0, n)]);
      let nl: number;
      while ((nl = data.indexOf(0x0a)) !== -1) {
        lines.push(data.subarray(0, nl).toString('utf8'));
        data = data.subarray(nl + 1);
      }
      this.pending = Buffer.from(data); // a partially written last line waits for its '\n'
    }
  }
}

/**
 * Parses `since` values: a duration ('30s', '5m', '2h', '1d', '1h30m'; util/duration.ts) meaning that long before `now`, or
 * an ISO-8601 date / timestamp. Returns epoch milliseconds.
 */
export function parseSince(value: string, now: number = Date.now()): number {
  const v = value.trim();
  const ago = durationMs(v);
  if (ago !== null) return now - ago;
  const iso = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/i.exec(v);
  if (iso) {
    const [y, mo, d, h, mi, s] = iso.slice(1).map((x) => (x === undefined ? 0 : Number(x)));
    const check = new Date(Date.UTC(y!, mo! - 1, d!));
    const t = Date.parse(v.toUpperCase().replace(' ', 'T'));
    const valid =
      check.getUTCFullYear() === y && check.getUTCMonth() === mo! - 1 && check.getUTCDate() === d && h! <= 23 && mi! <= 59 && s! <= 59;
    if (valid && Number.isFinite(t)) return t;
  }
  throw new UserError('E_INVALID_ARGUMENT', `invalid --since value '${value}'`, {
    hint: 'use a duration like 10m or an ISO timestamp',
  });
}

// -----------------------------------------------------------------------------------------------

function serialize(e: LogEntry): string {
  return `${JSON.stringify({ t: e.t, s: e.s, m: e.m })}\n`;
}

/** Shortens e.m so the serialized entry fits in maxBytes (as far as possible). */
function truncateToFit(e: LogEntry, maxBytes: number): string {
  let lo = 0;
  let hi = e.m.length;
  // Largest prefix length whose serialization fits.
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (Buffer.byteLength(serialize({ ...e, m: cut(e.m, mid) })) <= maxBytes) lo = mid;
    else hi = mid - 1;
  }
  return cut(e.m, lo);
}

function cut(s: string, n: number): string {
  const c = s.charCodeAt(n - 1);
  return s.slice(0, c >= 0xd800 && c <= 0xdbff ? n - 1 : n);
}

const isNoSpace = (err: unknown): boolean => ['ENOSPC', 'EDQUOT'].includes((err as NodeJS.ErrnoException).code ?? '');

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/** Existing rotated files `<file>.<n>`, oldest (highest n) first. */
function rotatedFiles(file: string): Array<{ n: number; path: string }> {
  const dir = dirname(file);
  const base = basename(file);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
  const out: Array<{ n: number; path: string }> = [];
  for (const name of names) {
    if (!name.startsWith(`${base}.`)) continue;
    const suffix = name.slice(base.length + 1);
    if (/^[1-9]\d*$/.test(suffix)) out.push({ n: Number(suffix), path: join(dir, name) });
  }
  return out.sort((a, b) => b.n - a.n);
}

function filterFor(opts: ReadOptions): (e: LogEntry) => boolean {
  const streams = opts.streams && opts.streams.length > 0 ? new Set<string>(opts.streams) : undefined;
  const since = opts.sinceMs;
  return (e) => (streams === undefined || streams.has(e.s)) && (since === undefined || e.t >= since);
}

function applyTail(entries: LogEntry[], tail: number | undefined): LogEntry[] {
  if (tail === undefined) return entries;
  const n = Math.max(0, Math.floor(tail));
  return n === 0 ? [] : entries.slice(-n);
}

function collect(text: string, accept: (e: LogEntry) => boolean, out: LogEntry[]): void {
  for (const line of splitComplete(text)) collectLine(line, accept, out);
}

function collectLine(line: string, accept: (e: LogEntry) => boolean, out: LogEntry[]): void {
  const e = parseLine(line);
  if (e && accept(e)) out.push(e);
}

/** Lines terminated by '\n' (a trailing partial line is ignored: it is still being written or was cut off). */
function splitComplete(text: string): string[] {
  const end = text.lastIndexOf('\n');
  return end === -1 ? [] : text.slice(0, end).split('\n');
}

function parseLine(line: string): LogEntry | undefined {
  if (line.trim() === '') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.t !== 'number' || !Number.isFinite(o.t) || typeof o.s !== 'string' || !STREAMS.has(o.s) || typeof o.m !== 'string') return undefined;
  return { t: o.t, s: o.s as LogEntry['s'], m: o.m };
}

function readQuiet(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return '';
    throw err;
  }
}

function statQuiet(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

function renameQuiet(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT';
}
