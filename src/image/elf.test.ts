import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../errors.js';
import { isElfFile, libraryClosure, readElfInfo, type ClosureEntry } from './elf.js';

const LS = fs.existsSync('/usr/bin/ls') ? '/usr/bin/ls' : '/bin/ls';
const INTERP = '/lib64/ld-linux-x86-64.so.2';

let tmp: string;

beforeAll(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'unikctl-elf-')));
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function gcc(args: string[]): void {
  execFileSync('gcc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A fresh subdirectory of the test's temp dir. */
function subdir(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** Writes the unikt library source and a program that calls it into `dir`. */
function writeSources(dir: string): { libSrc: string; progSrc: string } {
  const libSrc = path.join(dir, 'unikt.c');
  const progSrc = path.join(dir, 'prog.c');
  fs.writeFileSync(libSrc, 'int unikt_answer(void) { return 42; }\n');
  fs.writeFileSync(progSrc, 'int unikt_answer(void);\nint main(void) { return unikt_answer() == 42 ? 0 : 1; }\n');
  return { libSrc, progSrc };
}

function catchError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }
  throw new Error('expected a UserError');
}

/** Minimal ELF header bytes: class 1/2, data 1 (LE) / 2 (BE), given machine, ET_EXEC, no program headers. */
function fakeElfHeader(cls: 1 | 2, data: 1 | 2, machine: number): Buffer {
  const buf = Buffer.alloc(cls === 2 ? 64 : 52);
  buf.set([0x7f, 0x45, 0x4c, 0x46, cls, data, 1], 0);
  const w16 = (v: number, off: number): void => void (data === 1 ? buf.writeUInt16LE(v, off) : buf.writeUInt16BE(v, off));
  w16(2, 16); // e_type = ET_EXEC
  w16(machine, 18);
  w16(buf.length, cls === 2 ? 52 : 40); // e_ehsize
  return buf;
}

function byGuest(entries: ClosureEntry[], guestPath: string): ClosureEntry | undefined {
  return entries.find((e) => e.guestPath === guestPath);
}

describe('readElfInfo / isElfFile', () => {
  it('parses a dynamic x86-64 executable', () => {
    const info = readElfInfo(LS);
    expect(info.isElf).toBe(true);
    expect(info.is64).toBe(true);
    expect(info.machine).toBe(62);
    expect(['exec', 'dyn']).toContain(info.type);
    expect(info.interp).toBe(INTERP);
    expect(info.needed).toContain('libc.so.6');
    expect(isElfFile(LS)).toBe(true);
  });

  it('reads the SONAME of a shared library', () => {
    const libc = libraryClosure([LS]).find((e) => e.guestPath.endsWith('/libc.so.6'));
    expect(libc).toBeDefined();
    const info = readElfInfo(libc!.hostPath);
    expect(info.type).toBe('dyn');
    expect(info.soname).toBe('libc.so.6');
  });

  it('reports non-ELF files without throwing', () => {
    const txt = path.join(tmp, 'notes.txt');
    fs.writeFileSync(txt, 'hello, this is not an ELF file\n');
    const tiny = path.join(tmp, 'tiny');
    fs.writeFileSync(tiny, '\x7fE');
    for (const f of [txt, tiny]) {
      expect(isElfFile(f)).toBe(false);
      expect(readElfInfo(f)).toMatchObject({ isElf: false, interp: null, needed: [], soname: null });
    }
  });

  it('isElfFile is false for missing files and directories; readElfInfo throws for unreadable paths', () => {
    expect(isElfFile(path.join(tmp, 'does-not-exist'))).toBe(false);
    expect(isElfFile(tmp)).toBe(false);
    expect(() => readElfInfo(path.join(tmp, 'does-not-exist'))).toThrow(/ENOENT/);
  });

  it('reports the class and machine of 32-bit and big-endian headers', () => {
    const x86 = path.join(tmp, 'fake-i386');
    fs.writeFileSync(x86, fakeElfHeader(1, 1, 3));
    expect(readElfInfo(x86)).toMatchObject({ isElf: true, is64: false, machine: 3, type: 'exec', needed: [] });

    const ppc = path.join(tmp, 'fake-ppc64');
    fs.writeFileSync(ppc, fakeElfHeader(2, 2, 21));
    expect(readElfInfo(ppc)).toMatchObject({ isElf: true, is64: true, machine: 21, type: 'exec' });
  });

  it('rejects a truncated ELF file with E_NOT_ELF', () => {
    const trunc = path.join(tmp, 'truncated');
    fs.writeFileSync(trunc, fs.readFileSync(LS).subarray(0, 40));
    expect(catchError(() => readElfInfo(trunc)).code).toBe('E_NOT_ELF');
  });
});

describe('libraryClosure', () => {
  it('includes the interpreter and libc for a dynamic system binary', () => {
    const closure = libraryClosure([LS]);
    const interp = byGuest(closure, INTERP);
    expect(interp).toBeDefined();
    expect(interp!.hostPath).toBe(fs.realpathSync(INTERP));

    const libc = closure.find((e) => path.basename(e.guestPath) === 'libc.so.6');
    expect(libc).toBeDefined();
    expect(path.isAbsolute(libc!.guestPath)).toBe(true);
    expect(fs.realpathSync(libc!.guestPath)).toBe(libc!.hostPath);

    for (const e of closure) {
      expect(fs.realpathSync(e.hostPath)).toBe(e.hostPath); // real files, symlinks resolved
      expect(fs.statSync(e.hostPath).isFile()).toBe(true);
      expect(path.isAbsolute(e.guestPath)).toBe(true);
    }
    // libc's DT_NEEDED on ld-linux-x86-64.so.2 is satisfied by the interpreter's SONAME: it appears once.
    expect(closure.filter((e) => path.basename(e.guestPath) === 'ld-linux-x86-64.so.2')).toHaveLength(1);

    const guests = closure.map((e) => e.guestPath);
    expect(guests).toEqual([...guests].sort());
    expect(new Set(guests).size).toBe(guests.length);
  });

  it('is deterministic and dedupes across binaries', () => {
    const a = libraryClosure([LS]);
    const b = libraryClosure([LS, LS]);
    expect(b).toEqual(a);
  });

  it('returns an empty closure for a static binary', () => {
    const dir = subdir('static');
    const src = path.join(dir, 's.c');
    fs.writeFileSync(src, 'int main(void) { return 0; }\n');
    const bin = path.join(dir, 's');
    gcc(['-static', '-o', bin, src]);
    const info = readElfInfo(bin);
    expect(info).toMatchObject({ isElf: true, is64: true, machine: 62, interp: null, needed: [] });
    expect(libraryClosure([bin])).toEqual([]);
  });

  it('throws E_NOT_ELF for a text file and for a missing file', () => {
    const txt = path.join(tmp, 'script.sh');
    fs.writeFileSync(txt, '#!/bin/sh\necho hi\n');
    const err = catchError(() => libraryClosure([txt]));
    expect(err.code).toBe('E_NOT_ELF');
    expect(err.message).toContain(txt);
    expect(catchError(() => libraryClosure([path.join(tmp, 'nope')])).code).toBe('E_NOT_ELF');
  });

  it('throws E_NOT_ELF naming the architecture for non-x86-64 binaries', () => {
    const x86 = path.join(tmp, 'i386-bin');
    fs.writeFileSync(x86, fakeElfHeader(1, 1, 3));
    const e1 = catchError(() => libraryClosure([x86]));
    expect(e1.code).toBe('E_NOT_ELF');
    expect(e1.message).toMatch(/32-bit x86/);

    const arm = path.join(tmp, 'arm64-bin');
    fs.writeFileSync(arm, fakeElfHeader(2, 1, 183));
    const e2 = catchError(() => libraryClosure([arm]));
    expect(e2.code).toBe('E_NOT_ELF');
    expect(e2.message).toMatch(/64-bit AArch64/);

    const ppc = path.join(tmp, 'ppc64-bin');
    fs.writeFileSync(ppc, fakeElfHeader(2, 2, 21));
    const e3 = catchError(() => libraryClosure([ppc]));
    expect(e3.code).toBe('E_NOT_ELF');
    expect(e3.message).toMatch(/big-endian 64-bit PowerPC/);
  });

  it('throws E_LIBRARY_MISSING for a DT_NEEDED library that is not installed', () => {
    const dir = subdir('missing');
    const { libSrc, progSrc } = writeSources(dir);
    const lib = path.join(dir, 'libunikt.so');
    gcc(['-shared', '-fPIC', '-o', lib, libSrc]);
    const prog = path.join(dir, 'prog');
    gcc(['-o', prog, progSrc, `-L${dir}`, '-lunikt']);
    expect(readElfInfo(prog).needed).toContain('libunikt.so');
    expect(readElfInfo(prog).runpath).toEqual([]);
    fs.rmSync(lib);

    const err = catchError(() => libraryClosure([prog]));
    expect(err.code).toBe('E_LIBRARY_MISSING');
    expect(err.message).toContain('libunikt.so');
    expect(err.message).toContain(`needed by ${prog}`);
    expect(err.message).toContain('/usr/lib/x86_64-linux-gnu');
    expect(err.hint).toMatch(/install the package/);
  });

  it('finds a library through RUNPATH $ORIGIN and reports it at its host directory', () => {
    const dir = subdir('origin');
    const { libSrc, progSrc } = writeSources(dir);
    const lib = path.join(dir, 'libunikt.so');
    gcc(['-shared', '-fPIC', '-o', lib, libSrc]);
    const prog = path.join(dir, 'prog');
    gcc(['-o', prog, progSrc, `-L${dir}`, '-lunikt', '-Wl,-rpath,$ORIGIN']);
    const info = readElfInfo(prog);
    expect([...info.runpath, ...info.rpath]).toEqual(['$ORIGIN']);

    const closure = libraryClosure([prog]);
    expect(byGuest(closure, lib)).toEqual({ hostPath: lib, guestPath: lib });
    expect(byGuest(closure, INTERP)).toBeDefined();
    expect(closure.some((e) => path.basename(e.guestPath) === 'libc.so.6')).toBe(true);
  });

  it('expands ${ORIGIN}/../lib in a DT_RPATH and keeps the NEEDED name as the guest file name', () => {
    const dir = subdir('rpath');
    const binDir = path.join(dir, 'bin');
    const libDir = path.join(dir, 'lib');
    fs.mkdirSync(binDir);
    fs.mkdirSync(libDir);
    const { libSrc, progSrc } = writeSources(dir);
    const real = path.join(libDir, 'libunikt.so.1.2.3');
    gcc(['-shared', '-fPIC', '-Wl,-soname,libunikt.so.1', '-o', real, libSrc]);
    fs.symlinkSync('libunikt.so.1.2.3', path.join(libDir, 'libunikt.so.1'));
    fs.symlinkSync('libunikt.so.1', path.join(libDir, 'libunikt.so'));
    const prog = path.join(binDir, 'prog');
    gcc(['-o', prog, progSrc, `-L${libDir}`, '-lunikt', '-Wl,--disable-new-dtags,-rpath,${ORIGIN}/../lib']);
    const info = readElfInfo(prog);
    expect(info.rpath).toEqual(['${ORIGIN}/../lib']);
    expect(info.runpath).toEqual([]);
    expect(info.needed).toContain('libunikt.so.1');

    const closure = libraryClosure([prog]);
    expect(byGuest(closure, path.join(libDir, 'libunikt.so.1'))).toEqual({ hostPath: real, guestPath: path.join(libDir, 'libunikt.so.1') });
    expect(closure.filter((e) => e.guestPath.includes('libunikt'))).toHaveLength(1);
  });

  it('uses searchDirs instead of the defaults and skips incompatible candidates', () => {
    const dir = subdir('search');
    const { libSrc, progSrc } = writeSources(dir);
    const goodDir = path.join(dir, 'good');
    const badDir = path.join(dir, 'bad');
    fs.mkdirSync(goodDir);
    fs.mkdirSync(badDir);
    const lib = path.join(goodDir, 'libunikt.so');
    gcc(['-shared', '-fPIC', '-o', lib, libSrc]);
    fs.writeFileSync(path.join(badDir, 'libunikt.so'), fakeElfHeader(1, 1, 3)); // a "32-bit" lib of the same name
    const prog = path.join(dir, 'prog');
    gcc(['-o', prog, progSrc, `-L${goodDir}`, '-lunikt']);

    const closure = libraryClosure([prog], { searchDirs: [badDir, goodDir, '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu'] });
    expect(byGuest(closure, lib)).toEqual({ hostPath: lib, guestPath: lib });
    expect(closure.some((e) => e.guestPath.startsWith(badDir))).toBe(false);

    const err = catchError(() => libraryClosure([prog], { searchDirs: [badDir] }));
    expect(err.code).toBe('E_LIBRARY_MISSING');
    expect(err.message).toContain(`not found in: ${badDir}`);
    expect(err.message).toMatch(/skipped incompatible: .*32-bit x86/);
  });
});
