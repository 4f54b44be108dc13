import { describe, expect, it } from 'vitest';
import { ElfLeanError, keptRanges, leanVmlinux } from './elf-lean.js';

const PAGE = 4096;

interface Seg { type: number; paddr: number; vaddr?: number; data: Buffer; memsz?: number; offset?: number; align?: number }

/** A minimal little-endian ELF64 with the given program headers (data placed at 2 MiB steps, like vmlinux). */
function makeElf(segs: Seg[]): Buffer {
  let end = 0x200000;
  const placed = segs.map((s) => {
    if (s.offset !== undefined) return s.offset;
    const at = end;
    end += Math.ceil(s.data.length / 0x200000 + 1) * 0x200000;
    return at;
  });
  const size = Math.max(end, ...segs.map((s, i) => (placed[i] ?? 0) + s.data.length));
  const elf = Buffer.alloc(size);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 2; elf[5] = 1; elf[6] = 1;
  elf.writeUInt16LE(2, 0x10); // ET_EXEC
  elf.writeUInt16LE(62, 0x12); // x86-64
  elf.writeBigUInt64LE(0x1000000n, 0x18);
  elf.writeBigUInt64LE(64n, 0x20);
  elf.writeBigUInt64LE(0x123456n, 0x28); // section headers: dropped by the rewrite
  elf.writeUInt16LE(64, 0x34);
  elf.writeUInt16LE(56, 0x36);
  elf.writeUInt16LE(segs.length, 0x38);
  elf.writeUInt16LE(7, 0x3c);
  segs.forEach((s, i) => {
    const at = 64 + i * 56;
    const off = placed[i] ?? 0;
    elf.writeUInt32LE(s.type, at);
    elf.writeUInt32LE(5, at + 4);
    elf.writeBigUInt64LE(BigInt(off), at + 8);
    elf.writeBigUInt64LE(BigInt(s.vaddr ?? s.paddr), at + 16);
    elf.writeBigUInt64LE(BigInt(s.paddr), at + 24);
    elf.writeBigUInt64LE(BigInt(s.data.length), at + 32);
    elf.writeBigUInt64LE(BigInt(s.memsz ?? s.data.length), at + 40);
    elf.writeBigUInt64LE(BigInt(s.align ?? 0x200000), at + 48);
    s.data.copy(elf, off);
  });
  return elf;
}

interface Ph { type: number; offset: number; paddr: number; filesz: number; memsz: number }
function phdrs(elf: Buffer): Ph[] {
  const n = elf.readUInt16LE(0x38);
  return Array.from({ length: n }, (_, i) => {
    const at = Number(elf.readBigUInt64LE(0x20)) + i * 56;
    return {
      type: elf.readUInt32LE(at), offset: Number(elf.readBigUInt64LE(at + 8)), paddr: Number(elf.readBigUInt64LE(at + 24)),
      filesz: Number(elf.readBigUInt64LE(at + 32)), memsz: Number(elf.readBigUInt64LE(at + 40)),
    };
  });
}

/** What a loader writes into guest memory: paddr → byte, zero where nothing is loaded. */
function guestImage(elf: Buffer, base: number, size: number): Buffer {
  const mem = Buffer.alloc(size);
  for (const p of phdrs(elf).filter((x) => x.type === 1)) elf.copy(mem, p.paddr - base, p.offset, p.offset + p.filesz);
  return mem;
}

const filled = (n: number, byte: number) => Buffer.alloc(n, byte);

describe('keptRanges', () => {
  it('drops page-aligned zero runs of at least 64 KiB, keeps shorter ones', () => {
    const data = Buffer.concat([filled(PAGE, 1), Buffer.alloc(16 * PAGE), filled(PAGE, 2), Buffer.alloc(15 * PAGE), filled(10, 3)]);
    expect(keptRanges(data, 0x1000000n)).toEqual([[0, PAGE], [17 * PAGE, data.length]]);
  });

  it('drops a trailing zero run and keeps a segment that is not page-aligned whole', () => {
    const data = Buffer.concat([filled(PAGE, 1), Buffer.alloc(20 * PAGE)]);
    expect(keptRanges(data, 0x1000000n)).toEqual([[0, PAGE]]);
    expect(keptRanges(data, 0x1000010n)).toEqual([[0, data.length]]);
  });
});

describe('leanVmlinux', () => {
  const text = Buffer.concat([filled(3 * PAGE, 0x90), Buffer.alloc(32 * PAGE), filled(PAGE + 60, 0x48)]);
  const note = Buffer.from('PVH-note-bytes..');
  text.set(note, 3 * PAGE + 32 * PAGE + 100); // the note lives inside the second kept piece
  const data = filled(2 * PAGE, 0x11);
  const elf = makeElf([
    { type: 1, paddr: 0x1000000, vaddr: 0x1000000, data: text },
    { type: 1, paddr: 0x1200000, data, memsz: 5 * PAGE }, // 3 pages of .bss
    { type: 4, paddr: 0x1000000 + 35 * PAGE + 100, data: note, offset: 0x200000 + 35 * PAGE + 100, align: 4 },
  ]);
  const lean = leanVmlinux(elf);

  it('loads the same bytes at the same physical addresses, zero run and .bss left to fresh (zero) RAM', () => {
    const span = 0x1200000 + 5 * PAGE - 0x1000000;
    expect(guestImage(lean, 0x1000000, span).equals(guestImage(elf, 0x1000000, span))).toBe(true);
    const loads = phdrs(lean).filter((p) => p.type === 1);
    expect(loads.map((p) => [p.paddr, p.filesz, p.memsz])).toEqual([
      [0x1000000, 3 * PAGE, 3 * PAGE],
      [0x1000000 + 35 * PAGE, PAGE + 60, PAGE + 60],
      [0x1200000, 2 * PAGE, 5 * PAGE],
    ]);
    for (const p of loads) expect(p.offset % PAGE).toBe(p.paddr % PAGE);
  });

  it('is much smaller, has no section headers, and keeps segment data out of the first 8 KiB', () => {
    expect(lean.length).toBeLessThan(8 * PAGE + 8 * PAGE);
    expect(elf.length).toBeGreaterThan(0x400000);
    expect(lean.readBigUInt64LE(0x28)).toBe(0n);
    expect(lean.readUInt16LE(0x3c)).toBe(0);
    expect(Math.min(...phdrs(lean).map((p) => p.offset))).toBeGreaterThanOrEqual(2 * PAGE);
  });

  it('points PT_NOTE at the moved note bytes', () => {
    const n = phdrs(lean).find((p) => p.type === 4);
    expect(n).toBeDefined();
    expect(lean.subarray(n!.offset, n!.offset + n!.filesz).equals(note)).toBe(true);
  });

  it('is deterministic and idempotent', () => {
    expect(leanVmlinux(elf).equals(lean)).toBe(true);
    const again = leanVmlinux(lean);
    const span = 0x1200000 + 5 * PAGE - 0x1000000;
    expect(guestImage(again, 0x1000000, span).equals(guestImage(lean, 0x1000000, span))).toBe(true);
    expect(again.length).toBe(lean.length);
  });

  it('rejects what is not a 64-bit little-endian ELF', () => {
    expect(() => leanVmlinux(Buffer.from('#!/bin/sh\n'))).toThrow(ElfLeanError);
    const be = Buffer.from(elf);
    be[5] = 2;
    expect(() => leanVmlinux(be)).toThrow(/little-endian 64-bit/);
    const cut = elf.subarray(0, 0x200000 + 10);
    expect(() => leanVmlinux(cut)).toThrow(/past the end/);
  });
});
