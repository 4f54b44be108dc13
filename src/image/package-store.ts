import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import type { HomeLayout } from '../paths.js';
import { readImage, swapDir, type ImageManifest } from './image.js';

export interface PackageRef { namespace: string; name: string; tag: string; }

const PART = /^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$/;

/** `hello` → local/hello:latest; `team/hello:v2` stays as it is (BLD-11). */
export function normalizeRef(raw: string): PackageRef {
  const m = /^(?:([^/:]+)\/)?([^/:]+)(?::([^/:]+))?$/.exec(raw);
  const ref = m ? { namespace: m[1] ?? 'local', name: m[2] ?? '', tag: m[3] ?? 'latest' } : null;
  if (!ref || !PART.test(ref.namespace) || !PART.test(ref.name) || !PART.test(ref.tag)) {
    throw new UserError('E_INVALID_ARGUMENT', `"${raw}" is not a package reference`, { hint: 'use name, name:tag or namespace/name:tag (lowercase letters, digits, . _ -)' });
  }
  return ref;
}

export const formatRef = (r: PackageRef): string => `${r.namespace}/${r.name}:${r.tag}`;

/**
 * Hard-links (or copies) every file of an image directory. `private`: always copies, so that no later write to
 * the source's files can reach the copy (a deployment verifies its copy and boots exactly those bytes).
 */
export function copyImageDir(src: string, dst: string, opts: { private?: boolean } = {}): void {
  mkdirSync(dst, { recursive: true });
  for (const f of readdirSync(src)) {
    try {
      if (opts.private) throw new Error('a private copy');
      linkSync(join(src, f), join(dst, f));
    } catch {
      copyFileSync(join(src, f), join(dst, f));
    }
  }
}

/** The local package store: $UNIKCTL_HOME/packages/<namespace>/<name>/<tag>/ holds an image directory. */
export class PackageStore {
  constructor(private readonly layout: HomeLayout) {}

  dirOf(ref: PackageRef): string {
    return join(this.layout.packages, ref.namespace, ref.name, ref.tag);
  }

  put(ref: PackageRef, imageDir: string): string {
    const dst = this.dirOf(ref);
    const tmp = `${dst}.tmp-${process.pid}-${Date.now()}`;
    rmSync(tmp, { recursive: true, force: true });
    copyImageDir(imageDir, tmp);
    swapDir(tmp, dst);
    return dst;
  }

  get(ref: PackageRef): { dir: string; manifest: ImageManifest } | null {
    const dir = this.dirOf(ref);
    if (!existsSync(join(dir, 'manifest.json'))) return null;
    return { dir, manifest: readImage(dir) };
  }
}
