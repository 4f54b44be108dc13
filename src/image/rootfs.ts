import { chmodSync, copyFileSync, cpSync, lstatSync, mkdirSync, readdirSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { UserError } from '../errors.js';
import { isElfFile, libraryClosure } from './elf.js';

/** Files every image carries besides the app: mount points, name resolution for QEMU user networking, a root user. */
const BASE_FILES: Record<string, string> = {
  '/etc/hosts': '127.0.0.1 localhost\n',
  '/etc/resolv.conf': 'nameserver 10.0.2.3\n',
  '/etc/passwd': 'root:x:0:0:root:/tmp:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n',
  '/etc/group': 'root:x:0:\nnogroup:x:65534:\n',
  '/etc/nsswitch.conf': 'passwd: files\ngroup: files\nhosts: files dns\n',
};
const MOUNT_POINTS = ['/proc', '/sys', '/dev', '/tmp'];

/**
 * Assembles a root filesystem tree in a staging directory: the guest init, the app and its runtime
 * closure — nothing else. Modes are normalized so the same inputs give the same image.
 */
export class RootfsBuilder {
  private readonly files = new Map<string, string>();
  /** host real path → the guest path it was first copied to: a second copy becomes a symlink */
  private readonly copied = new Map<string, string>();

  constructor(readonly stagingDir: string) {
    mkdirSync(stagingDir, { recursive: true });
    for (const m of MOUNT_POINTS) mkdirSync(this.hostPath(m), { recursive: true });
    for (const [p, content] of Object.entries(BASE_FILES)) this.addBytes(p, content);
  }

  hostPath(guestPath: string): string {
    const normalized = posix.normalize(guestPath);
    if (!normalized.startsWith('/') || normalized.split('/').includes('..')) throw new Error(`bad guest path ${guestPath}`);
    return join(this.stagingDir, normalized);
  }

  addBytes(guestPath: string, content: string | Buffer, mode = 0o644): void {
    const dst = this.hostPath(guestPath);
    mkdirSync(dirname(dst), { recursive: true });
    writeFileSync(dst, content);
    chmodSync(dst, mode);
    this.files.set(guestPath, dst);
  }

  /** Copies one file (following symlinks); executables keep 0755, the rest 0644. */
  addFile(hostFile: string, guestPath: string): void {
    const dst = this.hostPath(guestPath);
    mkdirSync(dirname(dst), { recursive: true });
    const real = realpathSync(hostFile);
    const first = this.copied.get(real);
    if (first !== undefined && first !== guestPath) {
      // the same file under two names (e.g. ld-linux in /lib64 and /lib/x86_64-linux-gnu): store it once
      symlinkSync(first, dst);
    } else {
      copyFileSync(real, dst);
      chmodSync(dst, statSync(real).mode & 0o111 ? 0o755 : 0o644);
      this.copied.set(real, guestPath);
    }
    this.files.set(guestPath, dst);
  }

  /** Copies a directory tree; symlinks inside it are kept as links when they stay inside the tree. */
  addTree(hostDir: string, guestDir: string): void {
    const walk = (src: string, guest: string): void => {
      const st = lstatSync(src);
      if (st.isSymbolicLink()) {
        const target = readlinkSync(src);
        const resolved = posix.resolve(posix.dirname(guest), target);
        if (!target.startsWith('/') && (resolved === guestDir || resolved.startsWith(`${guestDir.replace(/\/$/, '')}/`))) {
          const dst = this.hostPath(guest);
          mkdirSync(dirname(dst), { recursive: true });
          symlinkSync(target, dst);
        } else {
          this.addFile(src, guest); // a link leaving the tree: copy what it points to
        }
      } else if (st.isDirectory()) {
        mkdirSync(this.hostPath(guest), { recursive: true });
        for (const entry of readdirSync(src).sort()) walk(join(src, entry), posix.join(guest, entry));
      } else if (st.isFile()) {
        this.addFile(src, guest);
      }
    };
    walk(hostDir, guestDir);
  }

  /** Copies user-supplied extra root content (--rootfs DIR) as-is. */
  mergeTree(hostDir: string): void {
    cpSync(hostDir, this.stagingDir, { recursive: true, dereference: false, verbatimSymlinks: true });
  }

  /** Adds the shared-library closure (and ELF interpreter) of the given ELF files already placed in the tree. */
  addLibraryClosure(guestPaths: string[], opts: { searchDirs?: string[] } = {}): number {
    const elfs = guestPaths.map((g) => this.hostPath(g)).filter((h) => isElfFile(h));
    if (elfs.length === 0) return 0;
    const closure = libraryClosure(elfs, opts.searchDirs ? { searchDirs: opts.searchDirs } : {});
    for (const entry of closure) {
      if (entry.guestPath.startsWith(this.stagingDir)) continue; // found next to the app ($ORIGIN): already in the tree
      this.addFile(entry.hostPath, entry.guestPath);
    }
    return closure.length;
  }

  /** Every ELF file under a guest directory (used to compute closures of interpreters plus native addons). */
  elfFilesUnder(guestDir: string): string[] {
    const out: string[] = [];
    const walk = (host: string, guest: string): void => {
      const st = lstatSync(host);
      if (st.isDirectory()) for (const e of readdirSync(host).sort()) walk(join(host, e), posix.join(guest, e));
      else if (st.isFile() && isElfFile(host)) out.push(guest);
    };
    walk(this.hostPath(guestDir), guestDir);
    return out;
  }

  static assertNotDockerfile(path: string): void {
    const base = path.split('/').pop() ?? '';
    let isFile = false;
    try { isFile = statSync(path).isFile(); } catch { /* missing paths are reported by the caller */ }
    if (/^(Dockerfile|Containerfile)(\..*)?$/i.test(base) || /\.dockerfile$/i.test(base) || (isFile && base.toLowerCase().includes('dockerfile'))) {
      throw new UserError('E_DOCKERFILE_ROOTFS', `${path} is a Dockerfile; unikctl never builds a root filesystem from a Dockerfile`, {
        hint: 'give a directory as --rootfs (or rootfs: in unik.yaml), or let a build pack assemble the root filesystem from your project',
      });
    }
  }
}
