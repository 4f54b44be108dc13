import { closeSync, openSync, readSync, writeSync, fstatSync } from 'node:fs';

const PT_DYNAMIC = 2;
const DT_NULL = 0n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n === 0) throw new Error('unexpected end of file');
    done += n;
  }
  return buf;
}

/**
 * Removes DT_RPATH/DT_RUNPATH from a 64-bit little-endian ELF file, in place (what `patchelf --remove-rpath`
 * does: the remaining dynamic entries move up, DT_NULL fills the end). A relocated interpreter must not look
 * for its libraries in the host's install prefix (e.g. /root/.pyenv/versions/X/lib): in the guest the libraries
 * sit in a default loader directory instead. Returns the removed search paths' count (0: nothing to do).
 */
export function dropRunpath(file: string): number {
  const fd = openSync(file, 'r+');
  try {
    const size = fstatSync(fd).size;
    if (size < 64) return 0;
    const eh = readAt(fd, 0, 64);
    if (eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) return 0; // not ELF64 LE
    const phoff = Number(eh.readBigUInt64LE(32));
    const phentsize = eh.readUInt16LE(54);
    const phnum = eh.readUInt16LE(56);
    if (phoff === 0 || phentsize < 56 || phoff + phnum * phentsize > size) return 0;
    const ph = readAt(fd, phoff, phnum * phentsize);
    for (let i = 0; i < phnum; i++) {
      const base = i * phentsize;
      if (ph.readUInt32LE(base) !== PT_DYNAMIC) continue;
      const off = Number(ph.readBigUInt64LE(base + 8));
      const len = Number(ph.readBigUInt64LE(base + 32));
      if (off + len > size) return 0;
      const dyn = readAt(fd, off, len);
      const kept: Buffer[] = [];
      let removed = 0;
      for (let p = 0; p + 16 <= dyn.length; p += 16) {
        const tag = dyn.readBigInt64LE(p);
        if (tag === DT_NULL) break;
        if (tag === DT_RPATH || tag === DT_RUNPATH) removed++;
        else kept.push(dyn.subarray(p, p + 16));
      }
      if (removed === 0) return 0;
      const out = Buffer.alloc(dyn.length); // zero = DT_NULL entries at the end
      Buffer.concat(kept).copy(out);
      writeSync(fd, out, 0, out.length, off);
      return removed;
    }
    return 0;
  } finally {
    closeSync(fd);
  }
}
