import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * A gzip-compressed ustar archive whose bytes depend only on the files' paths, contents and executable bits:
 * entries in byte order of their path, every mtime = SOURCE_DATE_EPOCH, modes 0644/0755, owner 0:0 without
 * names, no directory entries (npm's own tarballs have none either), gzip without a name or time in its header.
 * Written here rather than by `npm pack`, whose tarball carries a fixed 1985 mtime and whose layout may change
 * with the npm version; npm only chooses the files (the `files` field of package.json).
 */
export interface TarEntry {
  /** path inside the archive, '/'-separated, already prefixed (e.g. `package/dist/cli/main.js`) */
  path: string;
  data: Buffer;
  executable: boolean;
}

const BLOCK = 512;

export function entriesFromDir(root: string, files: readonly string[], prefix: string): TarEntry[] {
  return files.map((f) => ({
    path: prefix + f,
    data: readFileSync(join(root, f)),
    executable: (statSync(join(root, f)).mode & 0o111) !== 0,
  }));
}

export function deterministicTgz(entries: readonly TarEntry[], mtimeSeconds: number): Buffer {
  const sorted = [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.path === sorted[i - 1]!.path) throw new Error(`tar: duplicate entry ${sorted[i]!.path}`);
  }
  const parts: Buffer[] = [];
  for (const e of sorted) {
    parts.push(header(e, mtimeSeconds), e.data);
    const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK)); // end-of-archive marker
  return gzipSync(Buffer.concat(parts), { level: 9 });
}

function header(e: TarEntry, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  if (!/^[\x20-\x7e]+$/.test(e.path)) throw new Error(`tar: only printable ASCII paths are supported: ${JSON.stringify(e.path)}`);
  const [prefix, name] = splitPath(e.path);
  h.write(name, 0, 100, 'ascii');
  octal(h, 100, 8, e.executable ? 0o755 : 0o644);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, e.data.length);
  octal(h, 136, 12, mtime);
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  h.write('0', 156, 1, 'ascii'); // regular file
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write(prefix, 345, 155, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** ustar keeps paths over 100 bytes as prefix (≤ 155) + '/' + name (≤ 100). */
function splitPath(p: string): [string, string] {
  if (p.length <= 100) return ['', p];
  for (let i = p.indexOf('/'); i >= 0; i = p.indexOf('/', i + 1)) {
    if (i <= 155 && p.length - i - 1 <= 100) return [p.slice(0, i), p.slice(i + 1)];
  }
  throw new Error(`tar: path too long for ustar: ${p}`);
}

function octal(h: Buffer, at: number, width: number, value: number): void {
  const s = value.toString(8).padStart(width - 1, '0');
  if (s.length > width - 1) throw new Error(`tar: ${value} does not fit ${width - 1} octal digits`);
  h.write(`${s}\0`, at, width, 'ascii');
}

export const sha256Hex = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
