// The baseline for the boot benchmark: Debian's generic cloud kernel (linux-image-cloud-amd64), fetched with
// `apt-get download` and unpacked with `dpkg-deb -x` into a cache directory — never installed.
//
// The generic kernel builds the drivers a unikctl root needs (virtio-mmio, virtio-blk, erofs, virtio-net) as
// modules, so it cannot mount the root by itself: it needs an initramfs holding those modules and a loader
// (bench/generic-kernel/loader.c) that loads them, mounts the erofs root and execs the unikctl guest init.
// That initramfs (its unpacking, the module loading, the wait for the disk) is the generic kernel's
// unavoidable extra cost, and the benchmark counts it in the generic kernel's boot time on purpose.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { newcArchive } from './cpio.js';
import { ROOT } from './harness.js';
import { run, type RunOptions } from './proc.js';

export const META_PACKAGE = 'linux-image-cloud-amd64';
const LOADER_SRC = join(ROOT, 'bench', 'generic-kernel', 'loader.c');

/** Kernel options the unikctl root needs, and the module each one builds when it is `=m`. */
const NEEDED: ReadonlyArray<readonly [string, string]> = [
  ['VIRTIO_MMIO', 'virtio_mmio'],
  ['VIRTIO_BLK', 'virtio_blk'],
  ['EROFS_FS', 'erofs'],
  ['VIRTIO_NET', 'virtio_net'],
];

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

async function must(argv: readonly string[], opts?: RunOptions): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`);
  return r.stdout;
}

/** `apt-cache depends linux-image-cloud-amd64` → the versioned image package it pulls in. */
export async function resolveKernelPackage(): Promise<string> {
  const out = await must(['apt-cache', 'depends', META_PACKAGE]);
  const m = /^\s*\|?Depends:\s*(linux-image-[\w.+-]+)/m.exec(out);
  if (!m) throw new Error(`apt-cache depends ${META_PACKAGE} names no linux-image-* package:\n${out}`);
  return m[1] as string;
}

export function parseKconfig(text: string): Record<string, string> {
  const cfg: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^CONFIG_(\w+)=(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) cfg[m[1]] = m[2].replace(/^"|"$/g, '');
  }
  return cfg;
}

/** The NUL-separated `key=value` strings of a kernel module's .modinfo section (ELF64 little-endian). */
export function modinfo(buf: Buffer): Record<string, string> {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error('not an ELF64 LE module');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  const sec = (i: number): { name: number; offset: number; size: number } => {
    const o = shoff + i * shentsize;
    return { name: buf.readUInt32LE(o), offset: Number(buf.readBigUInt64LE(o + 0x18)), size: Number(buf.readBigUInt64LE(o + 0x20)) };
  };
  const strtab = sec(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    const nameEnd = buf.indexOf(0, strtab.offset + s.name);
    if (buf.toString('latin1', strtab.offset + s.name, nameEnd) !== '.modinfo') continue;
    const info: Record<string, string> = {};
    for (const kv of buf.toString('utf8', s.offset, s.offset + s.size).split('\0')) {
      const eq = kv.indexOf('=');
      if (eq > 0 && !(kv.slice(0, eq) in info)) info[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    return info;
  }
  return {};
}

const modName = (file: string): string => file.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');

function indexModules(dir: string, out = new Map<string, string>()): Map<string, string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) indexModules(p, out);
    else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) out.set(modName(e.name), p);
  }
  return out;
}

async function readModule(path: string): Promise<Buffer> {
  if (path.endsWith('.ko')) return readFileSync(path);
  if (path.endsWith('.gz')) return gunzipSync(readFileSync(path));
  const tool = path.endsWith('.xz') ? 'xz' : 'zstd';
  const r = await run([tool, '-dc', path], { encoding: 'buffer' });
  if (r.code !== 0) throw new Error(`${tool} -dc ${path} failed: ${r.stderr}`);
  return r.stdout;
}

interface Module { name: string; path: string; data: Buffer }

/** Modules to load, dependencies first (from each module's `depends=`, which is what depmod writes to modules.dep). */
async function moduleClosure(index: Map<string, string>, roots: readonly string[]): Promise<Module[]> {
  const order: Module[] = [];
  const seen = new Set<string>();
  const visit = async (name: string, from: string): Promise<void> => {
    if (seen.has(name)) return;
    seen.add(name);
    const path = index.get(name);
    if (!path) throw new Error(`module ${name} (needed by ${from}) is not in the kernel package`);
    const data = await readModule(path);
    for (const dep of (modinfo(data).depends ?? '').split(',').filter(Boolean)) await visit(dep.replace(/-/g, '_'), name);
    order.push({ name, path, data });
  };
  for (const r of roots) await visit(r, 'the unikctl root');
  return order;
}

export interface GenericKernel {
  package: string;
  version: string;
  release: string;
  vmlinuz: string;
  initrd: string | null;
  rdinit: string | null;
  facts: { options: Record<string, string>; virtioMmioCmdlineDevices: boolean; acpi: boolean; ipPnp: boolean; pvh: boolean; compression: string };
  modules: Array<{ name: string; bytes: number; file: string }>;
  sizes: { vmlinuz: number; modules: number; loader: number; initramfs: number };
}

/**
 * Downloads (once) and prepares the generic kernel: returns the bzImage, the initramfs (when modules are
 * needed), the facts read from its config, and sizes. `log` gets progress lines.
 */
export async function prepareGenericKernel({ cacheDir, log = () => {} }: { cacheDir: string; log?: (line: string) => void }): Promise<GenericKernel> {
  const pkg = await resolveKernelPackage();
  const pkgDir = join(cacheDir, pkg);
  const root = join(pkgDir, 'root');
  const metaFile = join(pkgDir, 'package.json');
  if (!existsSync(metaFile)) {
    log(`downloading ${pkg} (the package ${META_PACKAGE} depends on) with apt-get download`);
    rmSync(pkgDir, { recursive: true, force: true });
    mkdirSync(pkgDir, { recursive: true });
    await must(['apt-get', 'download', pkg], { cwd: pkgDir });
    const deb = readdirSync(pkgDir).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${pkgDir}`);
    const version = (await must(['dpkg-deb', '-f', join(pkgDir, deb), 'Version'])).trim();
    await must(['dpkg-deb', '-x', join(pkgDir, deb), root]);
    const debBytes = statSync(join(pkgDir, deb)).size;
    rmSync(join(pkgDir, deb));
    writeFileSync(metaFile, JSON.stringify({ package: pkg, version, debBytes }, null, 2));
  }
  const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as { package: string; version: string; debBytes: number };
  const bootFiles = readdirSync(join(root, 'boot'));
  const vmlinuzName = bootFiles.find((f) => f.startsWith('vmlinuz-'));
  const configName = bootFiles.find((f) => f.startsWith('config-'));
  if (!vmlinuzName || !configName) throw new Error(`${pkg} has no /boot/vmlinuz-* or /boot/config-*`);
  const release = vmlinuzName.slice('vmlinuz-'.length);
  const vmlinuz = join(root, 'boot', vmlinuzName);
  const cfg = parseKconfig(readFileSync(join(root, 'boot', configName), 'utf8'));

  const options = Object.fromEntries(NEEDED.map(([sym]) => [sym, cfg[sym] ?? 'n']));
  for (const [sym, v] of Object.entries(options)) {
    if (v !== 'y' && v !== 'm') throw new Error(`the generic kernel has CONFIG_${sym} unset: it cannot boot a unikctl root`);
  }
  const roots = NEEDED.filter(([sym]) => options[sym] === 'm').map(([, mod]) => mod);
  const facts = {
    options,
    // without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES the kernel finds virtio-mmio devices only through ACPI (or a device tree)
    virtioMmioCmdlineDevices: cfg.VIRTIO_MMIO_CMDLINE_DEVICES === 'y',
    acpi: cfg.ACPI === 'y',
    ipPnp: cfg.IP_PNP === 'y',
    pvh: cfg.PVH === 'y',
    compression: Object.keys(cfg).find((k) => k.startsWith('KERNEL_') && ['GZIP', 'XZ', 'LZ4', 'ZSTD', 'LZMA', 'LZO', 'BZIP2'].includes(k.slice(7))) ?? 'unknown',
  };

  const sizes = { vmlinuz: statSync(vmlinuz).size, modules: 0, loader: 0, initramfs: 0 };
  let initrd: string | null = null;
  let modules: GenericKernel['modules'] = [];
  // The loader also configures eth0 from ip= when the kernel lacks CONFIG_IP_PNP, so an initramfs is needed
  // whenever a driver is a module or the in-kernel IP autoconfiguration is missing.
  if (roots.length > 0 || !facts.ipPnp) {
    const closure = await moduleClosure(indexModules(join(root, 'lib', 'modules', release)), roots);
    modules = closure.map((m) => ({ name: m.name, bytes: m.data.length, file: m.path.slice(root.length) }));
    sizes.modules = closure.reduce((a, m) => a + m.data.length, 0);
    const loaderSrc = readFileSync(LOADER_SRC);
    const loaderHash = createHash('sha256').update(loaderSrc).digest('hex').slice(0, 16);
    const loader = join(cacheDir, `loader-${loaderHash}`);
    if (!existsSync(loader)) {
      log('compiling bench/generic-kernel/loader.c (gcc -static)');
      await must(['gcc', '-static', '-Os', '-s', '-Wall', '-o', `${loader}.tmp`, LOADER_SRC]);
      renameSync(`${loader}.tmp`, loader);
    }
    const loaderData = readFileSync(loader);
    sizes.loader = loaderData.length;
    const list = closure.map((m) => `/lib/modules/${m.name}.ko`).join('\n');
    const cpio = newcArchive([
      { name: 'dev', mode: S_IFDIR | 0o755 },
      { name: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] },
      { name: 'proc', mode: S_IFDIR | 0o555 },
      { name: 'sys', mode: S_IFDIR | 0o555 },
      { name: 'newroot', mode: S_IFDIR | 0o755 },
      { name: 'lib', mode: S_IFDIR | 0o755 },
      { name: 'lib/modules', mode: S_IFDIR | 0o755 },
      ...closure.map((m) => ({ name: `lib/modules/${m.name}.ko`, mode: S_IFREG | 0o644, data: m.data })),
      { name: 'modules.list', mode: S_IFREG | 0o644, data: Buffer.from(`${list}\n`) },
      { name: 'loader', mode: S_IFREG | 0o755, data: loaderData },
    ]);
    initrd = join(pkgDir, `initramfs-${createHash('sha256').update(cpio).digest('hex').slice(0, 16)}.cpio`);
    if (!existsSync(initrd)) writeFileSync(initrd, cpio);
    sizes.initramfs = cpio.length;
  }
  return { package: pkg, version: meta.version, release, vmlinuz, initrd, rdinit: initrd ? '/loader' : null, facts, modules, sizes };
}
