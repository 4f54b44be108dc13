// A minimal writer for the "newc" cpio format (the one the Linux initramfs unpacker reads).
// Entries: { name, mode, data?, rdev? } where mode includes the file type bits (0o100000 file, 0o040000 dir,
// 0o020000 char device). Everything is owned by root with mtime 0, so the archive is reproducible.

const pad4 = (n: number): number => (4 - (n % 4)) % 4;
const hex8 = (n: number): string => n.toString(16).padStart(8, '0');

export interface CpioEntry { name: string; mode: number; data?: Buffer; rdev?: [number, number] }

export function newcArchive(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const push = (name: string, mode: number, data: Buffer = Buffer.alloc(0), rdev: [number, number] = [0, 0]): void => {
    const nameBuf = Buffer.from(`${name}\0`, 'utf8');
    const isDir = (mode & 0o170000) === 0o040000;
    const header = [
      '070701', hex8(ino++), hex8(mode), hex8(0), hex8(0), hex8(isDir ? 2 : 1), hex8(0), hex8(data.length),
      hex8(0), hex8(0), hex8(rdev[0]), hex8(rdev[1]), hex8(nameBuf.length), hex8(0),
    ].join('');
    parts.push(Buffer.from(header, 'ascii'), nameBuf, Buffer.alloc(pad4(110 + nameBuf.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) push(e.name, e.mode, e.data, e.rdev);
  push('TRAILER!!!', 0);
  const out = Buffer.concat(parts);
  return Buffer.concat([out, Buffer.alloc((512 - (out.length % 512)) % 512)]); // every part is 4-aligned; pad to a block
}
