/**
 * A small ELF reader and a shared-library closure resolver.
 *
 * unikctl puts an application's ELF binaries into the VM root filesystem together with exactly the shared
 * libraries they load. `ldd` is not an option (it can execute the binary it inspects), so this module parses
 * the ELF headers itself: the program headers (PT_INTERP, PT_DYNAMIC, PT_LOAD) and the dynamic section
 * (DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRTAB, DT_STRSZ), reading only the byte ranges it needs.
 *
 * The resolution mimics the glibc dynamic loader closely enough for packaging purposes: DT_RPATH of the
 * requesting object and its loader chain (only when the requesting object has no DT_RUNPATH), then DT_RUNPATH
 * of the requesting object, then the default directories. `/etc/ld.so.cache` and LD_LIBRARY_PATH are not
 * consulted: the guest has neither, so the default directories are what the guest loader will search.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';

export interface ElfInfo {
  isElf: boolean;
  is64: boolean;
  machine: number;
  type: 'exec' | 'dyn' | 'other';
  interp: string | null;
  needed: string[];
  runpath: string[];
  rpath: string[];
  soname: string | null;
}

export interface ClosureEntry {
  /** A real file on the host (symlinks resolved). */
  hostPath: string;
  /** Absolute path at which the guest's loader will look for the file. */
  guestPath: string;
}

export interface ClosureOptions {
  /** Library search directories used after RPATH/RUNPATH; replaces DEFAULT_SEARCH_DIRS when given. */
  searchDirs?: string[];
}

/** The directories searched after RPATH/RUNPATH when ClosureOptions.searchDirs is not given, in order. */
export const DEFAULT_SEARCH_DIRS: readonly string[] = [
  '/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu',
  '/lib64',
  '/usr/lib64',
  '/lib',
  '/usr/lib',
  '/usr/local/lib',
];

export const EM_X86_64 = 62;

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"

const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ELFDATA2MSB = 2;

const ET_EXEC = 2;
const ET_DYN = 3;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const PN_XNUM = 0xffff;

const SHT_STRTAB = 3;

const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_SONAME = 14n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

/** Sanity caps so a corrupt header cannot make us allocate gigabytes. */
const MAX_PHNUM = 65_535;
const MAX_DYN_BYTES = 16 * 1024 * 1024;
const MAX_STRTAB_BYTES = 256 * 1024 * 1024;
const MAX_INTERP_BYTES = 4096;

const MACHINE_NAMES: Record<number, string> = {
  2: 'SPARC',
  3: 'x86 (i386)',
  8: 'MIPS',
  20: 'PowerPC',
  21: 'PowerPC 64-bit',
  22: 'IBM S/390',
  40: 'ARM',
  42: 'SuperH',
  43: 'SPARC v9',
  50: 'IA-64',
  62: 'x86-64',
  183: 'AArch64 (arm64)',
  243: 'RISC-V',
  258: 'LoongArch',
};

/** Human-readable name of an ELF e_machine value. */
export function machineName(machine: number): string {
  return MACHINE_NAMES[machine] ?? `unknown machine ${machine}`;
}

/** Thrown internally for files that start with the ELF magic but whose headers do not make sense. */
class MalformedElf extends Error {}

function notElfInfo(): ElfInfo {
  return { isElf: false, is64: false, machine: 0, type: 'other', interp: null, needed: [], runpath: [], rpath: [], soname: null };
}

/** Positioned reads from an open file, bounded by its size. */
class FileReader {
  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  /** Reads exactly `length` bytes at `offset`, or throws MalformedElf if the range is outside the file. */
  read(offset: number, length: number, what: string): Buffer {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new MalformedElf(`${what} lies outside the file (offset ${offset}, length ${length}, file size ${this.size})`);
    }
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.fd, buf, done, length - done, offset + done);
      if (n === 0) throw new MalformedElf(`${what}: unexpected end of file`);
      done += n;
    }
    return buf;
  }
}

/** Endianness- and class-aware field access on a buffer. */
class Fields {
  constructor(
    private readonly buf: Buffer,
    private readonly le: boolean,
    private readonly is64: boolean,
  ) {}
  u16(off: number): number {
    return this.le ? this.buf.readUInt16LE(off) : this.buf.readUInt16BE(off);
  }
  u32(off: number): number {
    return this.le ? this.buf.readUInt32LE(off) : this.buf.readUInt32BE(off);
  }
  u64(off: number): bigint {
    return this.le ? this.buf.readBigUInt64LE(off) : this.buf.readBigUInt64BE(off);
  }
  /** An address/offset-sized unsigned field (Elf32_Addr/Off or Elf64_Addr/Off). */
  word(off: number): bigint {
    return this.is64 ? this.u64(off) : BigInt(this.u32(off));
  }
  /** A signed tag-sized field (Elf32_Sword or Elf64_Sxword). */
  sword(off: number): bigint {
    if (this.is64) return this.le ? this.buf.readBigInt64LE(off) : this.buf.readBigInt64BE(off);
    return BigInt(this.le ? this.buf.readInt32LE(off) : this.buf.readInt32BE(off));
  }
}

function toOffset(v: bigint, what: string): number {
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MalformedElf(`${what} is out of range (${v})`);
  return Number(v);
}

interface Phdr {
  type: number;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
}

interface ParsedElf {
  info: ElfInfo;
  littleEndian: boolean;
}

function hasMagic(buf: Buffer): boolean {
  return buf.length >= 4 && ELF_MAGIC.every((b, i) => buf[i] === b);
}

/** Reads a NUL-terminated string starting at `start` of `buf` (the whole rest of the buffer when no NUL). */
function cString(buf: Buffer, start: number, what: string): string {
  if (start < 0 || start >= buf.length) throw new MalformedElf(`${what}: string index ${start} is outside the string table`);
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end === -1 ? buf.length : end);
}

function splitPathList(s: string): string[] {
  // Empty elements would mean "the current directory" to glibc; that is never what a packaged app means, skip them.
  return s.split(':').filter((d) => d !== '');
}

function parseElf(reader: FileReader): ParsedElf | null {
  if (reader.size < 4) return null;
  const ident = reader.read(0, Math.min(16, reader.size), 'ELF identification');
  if (!hasMagic(ident)) return null;
  if (ident.length < 16) throw new MalformedElf('truncated ELF identification');

  const cls = ident[4];
  const data = ident[5];
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) throw new MalformedElf(`invalid ELF class ${String(cls)}`);
  if (data !== ELFDATA2LSB && data !== ELFDATA2MSB) throw new MalformedElf(`invalid ELF data encoding ${String(data)}`);
  const is64 = cls === ELFCLASS64;
  const le = data === ELFDATA2LSB;

  const ehsize = is64 ? 64 : 52;
  const eh = new Fields(reader.read(0, ehsize, 'ELF header'), le, is64);
  const eType = eh.u16(16);
  const machine = eh.u16(18);
  const phoff = toOffset(eh.word(is64 ? 32 : 28), 'e_phoff');
  const shoff = toOffset(eh.word(is64 ? 40 : 32), 'e_shoff');
  const phentsize = eh.u16(is64 ? 54 : 42);
  let phnum = eh.u16(is64 ? 56 : 44);
  const shentsize = eh.u16(is64 ? 58 : 46);
  const shnum = eh.u16(is64 ? 60 : 48);

  const info: ElfInfo = {
    isElf: true,
    is64,
    machine,
    type: eType === ET_EXEC ? 'exec' : eType === ET_DYN ? 'dyn' : 'other',
    interp: null,
    needed: [],
    runpath: [],
    rpath: [],
    soname: null,
  };
  const result: ParsedElf = { info, littleEndian: le };

  // Section headers are only needed for PN_XNUM and as a fallback to locate the dynamic string table.
  const minShent = is64 ? 64 : 40;
  const sectionHeader = (i: number): Fields | null => {
    if (shoff === 0 || shentsize < minShent || i >= (shnum === 0 ? 1 : shnum)) return null;
    return new Fields(reader.read(shoff + i * shentsize, minShent, `section header ${i}`), le, is64);
  };

  if (phnum === PN_XNUM) {
    const sh0 = sectionHeader(0);
    if (!sh0) throw new MalformedElf('e_phnum is PN_XNUM but there is no section header 0');
    phnum = sh0.u32(is64 ? 44 : 28); // sh_info
  }
  if (phoff === 0 || phnum === 0) return result; // e.g. a relocatable object: nothing is loaded
  const minPhent = is64 ? 56 : 32;
  if (phentsize < minPhent) throw new MalformedElf(`e_phentsize ${phentsize} is too small`);
  if (phnum > MAX_PHNUM) throw new MalformedElf(`too many program headers (${phnum})`);

  const phTable = reader.read(phoff, phnum * phentsize, 'program header table');
  const phdrs: Phdr[] = [];
  for (let i = 0; i < phnum; i++) {
    const f = new Fields(phTable.subarray(i * phentsize, i * phentsize + minPhent), le, is64);
    phdrs.push(
      is64
        ? { type: f.u32(0), offset: f.u64(8), vaddr: f.u64(16), filesz: f.u64(32) }
        : { type: f.u32(0), offset: f.word(4), vaddr: f.word(8), filesz: f.word(16) },
    );
  }

  const interpPh = phdrs.find((p) => p.type === PT_INTERP);
  if (interpPh) {
    const len = toOffset(interpPh.filesz, 'PT_INTERP size');
    if (len > MAX_INTERP_BYTES) throw new MalformedElf(`PT_INTERP is too long (${len} bytes)`);
    const buf = reader.read(toOffset(interpPh.offset, 'PT_INTERP offset'), len, 'PT_INTERP');
    const s = len === 0 ? '' : cString(buf, 0, 'PT_INTERP');
    if (s === '') throw new MalformedElf('PT_INTERP is empty');
    info.interp = s;
  }

  const dynPh = phdrs.find((p) => p.type === PT_DYNAMIC);
  if (!dynPh) return result;
  const dynLen = toOffset(dynPh.filesz, 'PT_DYNAMIC size');
  if (dynLen > MAX_DYN_BYTES) throw new MalformedElf(`PT_DYNAMIC is too large (${dynLen} bytes)`);
  const dynBuf = reader.read(toOffset(dynPh.offset, 'PT_DYNAMIC offset'), dynLen, 'PT_DYNAMIC');
  const dynEnt = is64 ? 16 : 8;

  const dyn = new Fields(dynBuf, le, is64);
  const neededIdx: bigint[] = [];
  const rpathIdx: bigint[] = [];
  const runpathIdx: bigint[] = [];
  let sonameIdx: bigint | null = null;
  let strtabAddr: bigint | null = null;
  let strsz: bigint | null = null;
  for (let off = 0; off + dynEnt <= dynBuf.length; off += dynEnt) {
    const tag = dyn.sword(off);
    const val = dyn.word(off + dynEnt / 2);
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED) neededIdx.push(val);
    else if (tag === DT_RPATH) rpathIdx.push(val);
    else if (tag === DT_RUNPATH) runpathIdx.push(val);
    else if (tag === DT_SONAME) sonameIdx = val;
    else if (tag === DT_STRTAB) strtabAddr = val;
    else if (tag === DT_STRSZ) strsz = val;
  }
  const anyStrings = neededIdx.length + rpathIdx.length + runpathIdx.length > 0 || sonameIdx !== null;
  if (!anyStrings) return result;
  if (strtabAddr === null) throw new MalformedElf('the dynamic section has strings but no DT_STRTAB');

  // DT_STRTAB is a virtual address: map it to a file offset through the PT_LOAD segment that contains it.
  let strOff: number | null = null;
  let strMax: bigint | null = null; // bytes available in the containing segment from strOff
  for (const p of phdrs) {
    if (p.type !== PT_LOAD) continue;
    if (strtabAddr >= p.vaddr && strtabAddr < p.vaddr + p.filesz) {
      strOff = toOffset(p.offset + (strtabAddr - p.vaddr), 'DT_STRTAB file offset');
      strMax = p.filesz - (strtabAddr - p.vaddr);
      break;
    }
  }
  if (strOff === null) {
    // Fallback for unusual layouts: a SHT_STRTAB section whose sh_addr is the DT_STRTAB address.
    const count = shnum === 0 ? 0 : shnum;
    for (let i = 0; i < count; i++) {
      const sh = sectionHeader(i);
      if (!sh) break;
      const shType = sh.u32(4);
      const shAddr = is64 ? sh.u64(16) : sh.word(12);
      if (shType === SHT_STRTAB && shAddr === strtabAddr) {
        strOff = toOffset(is64 ? sh.u64(24) : sh.word(16), 'dynamic string table offset');
        strMax = is64 ? sh.u64(32) : sh.word(20);
        break;
      }
    }
  }
  if (strOff === null || strMax === null) {
    throw new MalformedElf(`DT_STRTAB address 0x${strtabAddr.toString(16)} is not inside any PT_LOAD segment`);
  }
  let strLen = strsz !== null && strsz <= strMax ? strsz : strMax;
  const fileRest = BigInt(reader.size - Math.min(strOff, reader.size));
  if (strLen > fileRest) strLen = fileRest;
  const strLenN = toOffset(strLen, 'DT_STRSZ');
  if (strLenN > MAX_STRTAB_BYTES) throw new MalformedElf(`the dynamic string table is too large (${strLenN} bytes)`);
  const strtab = reader.read(strOff, strLenN, 'dynamic string table');

  const str = (idx: bigint, what: string): string => cString(strtab, toOffset(idx, what), what);
  info.needed = neededIdx.map((i) => str(i, 'DT_NEEDED'));
  info.rpath = rpathIdx.flatMap((i) => splitPathList(str(i, 'DT_RPATH')));
  info.runpath = runpathIdx.flatMap((i) => splitPathList(str(i, 'DT_RUNPATH')));
  info.soname = sonameIdx === null ? null : str(sonameIdx, 'DT_SONAME');
  return result;
}

function parseElfFile(file: string): ParsedElf | null {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    try {
      return parseElf(new FileReader(fd, size));
    } catch (e) {
      if (e instanceof MalformedElf) {
        throw new UserError('E_NOT_ELF', `${file} is not a valid ELF file: ${e.message}`, {
          hint: 'the file looks like an ELF binary but is truncated or corrupt; rebuild it',
        });
      }
      throw e;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Parses the ELF headers of `file`. Returns `isElf: false` for files that do not start with the ELF magic.
 * Throws the fs error when the file cannot be read, and a UserError E_NOT_ELF when the file has the ELF
 * magic but its headers are corrupt. Both byte orders are parsed.
 */
export function readElfInfo(file: string): ElfInfo {
  const parsed = parseElfFile(file);
  return parsed ? parsed.info : notElfInfo();
}

/** Cheap check: does the file start with the ELF magic? False for anything unreadable, directories included. */
export function isElfFile(file: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const buf = Buffer.alloc(4);
    return fs.readSync(fd, buf, 0, 4, 0) === 4 && hasMagic(buf);
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Closure resolution

/** A loaded object during resolution. */
interface LoadedObject {
  /** For messages: the binary as given, or the path the library was found at. */
  path: string;
  /** Directory $ORIGIN expands to for this object. */
  origin: string;
  info: ElfInfo;
  /** The object whose DT_NEEDED caused this one to load (glibc's l_loader); null for the main binary. */
  loader: LoadedObject | null;
}

function describeArch(parsed: ParsedElf): string {
  const { info } = parsed;
  return `${parsed.littleEndian ? '' : 'big-endian '}${info.is64 ? '64-bit' : '32-bit'} ${machineName(info.machine)}`;
}

function isCompatible(parsed: ParsedElf): boolean {
  return parsed.info.isElf && parsed.info.is64 && parsed.info.machine === EM_X86_64 && parsed.littleEndian;
}

/** Expands the dynamic string tokens of one RPATH/RUNPATH element into zero or more directories. */
function expandSearchDir(dir: string, origin: string): string[] {
  let dirs = [dir.replace(/\$\{ORIGIN\}|\$ORIGIN(?![A-Za-z0-9_])/g, () => origin)];
  // $LIB is "lib64" upstream and "lib/x86_64-linux-gnu" on multiarch distributions: try both.
  if (/\$\{LIB\}|\$LIB(?![A-Za-z0-9_])/.test(dir)) {
    dirs = dirs.flatMap((d) => ['lib/x86_64-linux-gnu', 'lib64'].map((lib) => d.replace(/\$\{LIB\}|\$LIB(?![A-Za-z0-9_])/g, lib)));
  }
  dirs = dirs.map((d) => d.replace(/\$\{PLATFORM\}|\$PLATFORM(?![A-Za-z0-9_])/g, 'x86_64'));
  // Relative elements are relative to the loader's working directory; we can only use the host's.
  return dirs.map((d) => stripTrailingSlash(path.resolve(d)));
}

function stripTrailingSlash(d: string): string {
  return d.length > 1 && d.endsWith('/') ? d.slice(0, -1) : d;
}

/** Names musl's loader satisfies with itself (ldso/dynlink.c: "reserved" list). */
function isMuslBuiltin(name: string): boolean {
  return /^lib(c|pthread|rt|m|dl|util|xnet)\./.test(name);
}

/** glibc's search order for `requester`'s DT_NEEDED entries (without LD_LIBRARY_PATH and ld.so.cache). */
function searchDirsFor(requester: LoadedObject, defaults: readonly string[]): string[] {
  const out: string[] = [];
  const add = (raw: string, origin: string): void => {
    out.push(...expandSearchDir(raw, origin));
  };
  if (requester.info.runpath.length === 0) {
    // DT_RPATH of the requester, then of its loader, and on up to the main binary; objects that have a
    // DT_RUNPATH contribute no RPATH.
    for (let l: LoadedObject | null = requester; l; l = l.loader) {
      if (l.info.runpath.length > 0) continue;
      for (const raw of l.info.rpath) add(raw, l.origin);
    }
  } else {
    for (const raw of requester.info.runpath) add(raw, requester.origin);
  }
  for (const d of defaults) out.push(stripTrailingSlash(path.resolve(d)));
  const seen = new Set<string>();
  return out.filter((d) => (seen.has(d) ? false : (seen.add(d), true)));
}

/**
 * Computes the shared-library closure of `binaries`: the ELF interpreter plus every DT_NEEDED library,
 * recursively, as the guest's dynamic loader will look for them.
 *
 * guestPath is where the loader will open the file: the interpreter's PT_INTERP path, or the directory in
 * which the library was found + '/' + the DT_NEEDED name (so symlink names such as libfoo.so.1 are kept, while
 * hostPath is the resolved real file).
 *
 * Libraries found through an RPATH/RUNPATH element that uses $ORIGIN are reported with guestPath in the
 * *host* directory $ORIGIN expanded to (the binary's real directory, or the directory a library was found in).
 * That is only correct in the guest if the caller copies the application directory into the guest at the same
 * absolute path as on the host (or rewrites these entries itself when it relocates the application directory).
 *
 * Throws UserError E_NOT_ELF for inputs that are not (valid) x86-64 64-bit ELF executables or shared objects,
 * and E_LIBRARY_MISSING when a library (or the interpreter) cannot be found. Static binaries contribute
 * nothing. The result is deduplicated and sorted by guestPath.
 */
export function libraryClosure(binaries: string[], opts: ClosureOptions = {}): ClosureEntry[] {
  const defaults = opts.searchDirs ?? DEFAULT_SEARCH_DIRS;
  const cache = new Map<string, ParsedElf | null | Error>(); // by real path
  const parseCached = (real: string): ParsedElf | null => {
    let v = cache.get(real);
    if (v === undefined) {
      try {
        v = parseElfFile(real);
      } catch (e) {
        v = e instanceof Error ? e : new Error(String(e));
      }
      cache.set(real, v);
    }
    if (v instanceof Error) throw v;
    return v;
  };

  const byGuest = new Map<string, string>();
  const add = (guestPath: string, hostPath: string): void => {
    if (!byGuest.has(guestPath)) byGuest.set(guestPath, hostPath);
  };

  for (const bin of binaries) {
    let real: string;
    let parsed: ParsedElf | null;
    try {
      real = fs.realpathSync(bin);
      if (!fs.statSync(real).isFile()) throw new Error('not a regular file');
      parsed = parseCached(real);
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError('E_NOT_ELF', `cannot read ${bin}: ${e instanceof Error ? e.message : String(e)}`, {
        hint: 'check that the path points at the built executable',
        cause: e,
      });
    }
    if (!parsed) {
      throw new UserError('E_NOT_ELF', `${bin} is not an ELF binary`, {
        hint: 'pass a compiled Linux x86-64 executable (scripts need their interpreter packaged instead); check with `file`',
      });
    }
    if (!isCompatible(parsed)) {
      throw new UserError('E_NOT_ELF', `${bin} is a ${describeArch(parsed)} ELF binary; unikctl VMs run 64-bit x86-64 binaries only`, {
        hint: 'build the application for x86-64 Linux (e.g. GOARCH=amd64, --target x86_64-unknown-linux-gnu)',
      });
    }
    if (parsed.info.type === 'other') {
      throw new UserError('E_NOT_ELF', `${bin} is an ELF file but neither an executable nor a shared object (e.g. an object file or core dump)`, {
        hint: 'pass the linked executable',
      });
    }
    resolveOne(bin, real, parsed.info);
  }

  function resolveOne(bin: string, real: string, info: ElfInfo): void {
    if (info.interp === null && info.needed.length === 0) return; // static

    // Names already satisfied in this process image: NEEDED names loaded so far and their SONAMEs.
    const loadedNames = new Set<string>();
    const visitedReal = new Set<string>([real]);
    // glibc takes $ORIGIN of the main program from /proc/self/exe, i.e. the symlink-resolved path.
    const main: LoadedObject = { path: path.resolve(bin), origin: path.dirname(real), info, loader: null };
    if (info.soname) loadedNames.add(info.soname);
    const queue: LoadedObject[] = [];
    let musl = false;

    if (info.interp !== null) {
      const interp = info.interp;
      let interpReal: string;
      let interpParsed: ParsedElf | null = null;
      try {
        interpReal = fs.realpathSync(interp);
        if (!fs.statSync(interpReal).isFile()) throw new Error('not a regular file');
        interpParsed = parseCached(interpReal);
      } catch {
        throw new UserError('E_LIBRARY_MISSING', `the ELF interpreter ${interp} (needed by ${bin}) was not found on this host`, {
          hint: 'install the C library the binary was built against, or build the binary statically',
        });
      }
      if (!interpParsed || !isCompatible(interpParsed)) {
        throw new UserError('E_LIBRARY_MISSING', `the ELF interpreter ${interp} (needed by ${bin}) on this host is not a 64-bit x86-64 ELF file`, {
          hint: 'install the x86-64 C library the binary was built against, or build the binary statically',
        });
      }
      add(interp, interpReal);
      loadedNames.add(interp);
      if (interpParsed.info.soname) loadedNames.add(interpParsed.info.soname);
      musl = path.basename(interp).startsWith('ld-musl-');
      if (!visitedReal.has(interpReal)) {
        visitedReal.add(interpReal);
        queue.push({ path: interp, origin: path.dirname(interp), info: interpParsed.info, loader: null });
      }
    }
    queue.unshift(main);

    // Breadth first, like glibc's _dl_map_object_deps.
    for (let qi = 0; qi < queue.length; qi++) {
      const obj = queue[qi]!;
      for (const name of obj.info.needed) {
        if (loadedNames.has(name)) continue;
        if (musl && isMuslBuiltin(name)) continue;
        const found = findLibrary(name, obj);
        loadedNames.add(name);
        add(found.guestPath, found.hostPath);
        if (found.info.soname) loadedNames.add(found.info.soname);
        if (!visitedReal.has(found.hostPath)) {
          visitedReal.add(found.hostPath);
          queue.push({ path: found.guestPath, origin: path.dirname(found.guestPath), info: found.info, loader: obj });
        }
      }
    }
  }

  function findLibrary(name: string, requester: LoadedObject): { hostPath: string; guestPath: string; info: ElfInfo } {
    const skipped: string[] = [];
    const tryCandidate = (candidate: string): { hostPath: string; info: ElfInfo } | null => {
      let real: string;
      let parsed: ParsedElf | null;
      try {
        real = fs.realpathSync(candidate);
        if (!fs.statSync(real).isFile()) return null;
        parsed = parseCached(real);
      } catch {
        return null;
      }
      if (!parsed || !isCompatible(parsed)) {
        skipped.push(`${candidate} (${parsed ? describeArch(parsed) : 'not ELF'})`);
        return null;
      }
      return { hostPath: real, info: parsed.info };
    };
    const skippedNote = (): string => (skipped.length ? `; skipped incompatible: ${skipped.join(', ')}` : '');
    const hint = 'install the package that provides it, or build the binary statically';

    if (name.includes('/')) {
      const guestPath = path.resolve(name);
      const hit = tryCandidate(guestPath);
      if (!hit) {
        throw new UserError('E_LIBRARY_MISSING', `${name} (needed by ${requester.path}) was not found${skippedNote()}`, { hint });
      }
      return { ...hit, guestPath };
    }

    const dirs = searchDirsFor(requester, defaults);
    for (const dir of dirs) {
      const candidate = dir === '/' ? `/${name}` : `${dir}/${name}`;
      const hit = tryCandidate(candidate);
      if (hit) return { ...hit, guestPath: candidate };
    }
    throw new UserError(
      'E_LIBRARY_MISSING',
      `${name} (needed by ${requester.path}) was not found in: ${dirs.join(', ')}${skippedNote()}`,
      { hint, details: { library: name, neededBy: requester.path, searched: dirs } },
    );
  }

  return [...byGuest.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([guestPath, hostPath]) => ({ hostPath, guestPath }));
}
