import { closeSync, fstatSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { UserError } from '../../../errors.js';

/** One entry of a zip file's central directory. */
export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated */
  method: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

/**
 * A jar (a zip file) read without a JDK: the end-of-central-directory record, then the central directory.
 * Zip64 is not read (a jar over 4 GiB or with more than 65535 entries): such a jar is reported as unreadable.
 */
export class ZipReader {
  private readonly fd: number;
  readonly entries: ZipEntry[];

  private constructor(fd: number, entries: ZipEntry[]) {
    this.fd = fd;
    this.entries = entries;
  }

  /** null when the file is not a zip this reader understands; the caller closes a returned reader. */
  static open(path: string): ZipReader | null {
    const fd = openSync(path, 'r');
    try {
      const entries = readCentralDirectory(fd);
      if (entries) return new ZipReader(fd, entries);
    } catch { /* not a zip */ }
    closeSync(fd);
    return null;
  }

  private read(pos: number, len: number): Buffer {
    const b = Buffer.alloc(len);
    const n = readSync(this.fd, b, 0, len, pos);
    return b.subarray(0, n);
  }

  /** The entry's uncompressed bytes; null for a compression method other than stored/deflated. */
  data(e: ZipEntry): Buffer | null {
    const local = this.read(e.localOffset, 30);
    if (local.length < 30 || local.readUInt32LE(0) !== 0x04034b50) return null;
    const start = e.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    const raw = this.read(start, e.compressedSize);
    if (e.method === 0) return raw;
    if (e.method === 8) return inflateRawSync(raw);
    return null;
  }

  close(): void {
    closeSync(this.fd);
  }
}

function readCentralDirectory(fd: number): ZipEntry[] | null {
  const size = fstatSync(fd).size;
  const tailLen = Math.min(size, 22 + 0xffff);
  const tail = Buffer.alloc(tailLen);
  readSync(fd, tail, 0, tailLen, size - tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) return null;
  const count = tail.readUInt16LE(eocd + 10);
  const cdSize = tail.readUInt32LE(eocd + 12);
  const cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) return null; // zip64
  const cd = Buffer.alloc(cdSize);
  readSync(fd, cd, 0, cdSize, cdOffset);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count && p + 46 <= cd.length; i++) {
    if (cd.readUInt32LE(p) !== 0x02014b50) return null;
    const nameLen = cd.readUInt16LE(p + 28);
    entries.push({
      name: cd.subarray(p + 46, p + 46 + nameLen).toString('utf8'),
      method: cd.readUInt16LE(p + 10),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      localOffset: cd.readUInt32LE(p + 42),
    });
    p += 46 + nameLen + cd.readUInt16LE(p + 30) + cd.readUInt16LE(p + 32);
  }
  return entries;
}

/**
 * Reads META-INF/MANIFEST.MF out of a jar. Returns null when the jar has no manifest or is not a readable zip.
 */
export function readJarManifest(jarPath: string): Record<string, string> | null {
  let zip: ZipReader | null;
  try {
    zip = ZipReader.open(jarPath);
  } catch {
    return null;
  }
  if (!zip) return null;
  try {
    const entry = zip.entries.find((e) => e.name.toUpperCase() === 'META-INF/MANIFEST.MF');
    const raw = entry ? zip.data(entry) : null;
    return raw ? parseManifest(raw.toString('utf8')) : null;
  } catch {
    return null;
  } finally {
    zip.close();
  }
}

/**
 * Extracts the entries `pick` maps to a relative output path (null: skipped) below `dest`. Entry names that
 * would escape `dest` (absolute, `..`) are refused: the jar is the build's output, but it is still input here.
 */
export function extractJar(jarPath: string, dest: string, pick: (name: string) => string | null): string[] {
  const zip = ZipReader.open(jarPath);
  if (!zip) throw new UserError('E_BUILD_FAILED', `${jarPath} is not a zip file this build can read (zip64 jars are not supported)`);
  const written: string[] = [];
  try {
    for (const e of zip.entries) {
      if (e.name.endsWith('/')) continue;
      const rel = pick(e.name);
      if (rel === null) continue;
      const norm = posix.normalize(rel);
      if (norm.startsWith('/') || norm === '..' || norm.startsWith('../')) {
        throw new UserError('E_BUILD_FAILED', `${jarPath} has an entry outside the archive root: ${e.name}`);
      }
      const data = zip.data(e);
      if (!data) throw new UserError('E_BUILD_FAILED', `${jarPath}: entry ${e.name} uses zip compression method ${e.method} (only stored and deflated are read)`);
      const out = join(dest, norm);
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, data);
      written.push(out);
    }
  } finally {
    zip.close();
  }
  return written;
}

/** The main section of a manifest: `Name: value` lines, continuation lines start with one space. */
export function parseManifest(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let last: string | null = null;
  for (const line of text.split(/\r?\n/)) {
    if (line === '') break; // end of the main section
    if (line.startsWith(' ') && last) {
      out[last] += line.slice(1);
      continue;
    }
    const i = line.indexOf(':');
    if (i <= 0) continue;
    last = line.slice(0, i).trim();
    out[last] = line.slice(i + 1).trim();
  }
  return out;
}
