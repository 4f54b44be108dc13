import { existsSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { inspectProject } from '../image/build.js';
import { isElfFile } from '../image/elf.js';
import { readImage } from '../image/image.js';
import { formatRef, normalizeRef, PackageStore } from '../image/package-store.js';
import { UserError } from '../errors.js';
import type { HomeLayout } from '../paths.js';
import type { DeploySource } from '../store/types.js';
import { sanitizeName } from '../util/ids.js';

export interface ResolvedTarget { source: DeploySource; resolvedFrom: string; candidates: string[]; defaultName: string; }

/**
 * BLD-10/BLD-11: what `deploy X` means. Candidates, in order:
 *   1. a path on disk: a package directory (manifest.json), a project directory, or an ELF binary;
 *   2. the local package store, with X normalized to namespace/name:tag (hello → local/hello:latest);
 *   3. the control plane's store (only when UNIKCTL_CONTROL_PLANE_URL is set).
 */
export function resolveTarget(target: string, cwd: string, layout: HomeLayout, rootfsDir?: string): ResolvedTarget {
  const candidates: string[] = [];
  const path = isAbsolute(target) ? target : resolve(cwd, target);
  candidates.push(`path ${path}`);
  if (existsSync(path)) {
    const st = statSync(path);
    if (st.isDirectory()) {
      if (existsSync(resolve(path, 'manifest.json'))) {
        const m = readImage(path);
        return { source: { kind: 'package', dir: path }, resolvedFrom: `package directory ${path}`, candidates, defaultName: sanitizeName(m.name) };
      }
      const p = inspectProject(path, rootfsDir); // fails fast: no pack, broken unik.yaml, Dockerfile rootfs
      return { source: { kind: 'project', dir: p.dir }, resolvedFrom: `project directory ${p.dir} (${p.pack.name} pack)`, candidates, defaultName: p.name };
    }
    if (st.isFile()) {
      if (isPackageArchive(path)) {
        throw new UserError('E_INTERNAL', `package archive ${path} must be extracted before resolution (see extractPackageArchive)`);
      }
      if (!isElfFile(path)) {
        throw new UserError('E_NOT_ELF', `${path} is neither a directory nor an ELF executable`, { hint: 'deploy a project directory, a package (directory or name:tag) or a Linux x86-64 binary' });
      }
      return { source: { kind: 'binary', path }, resolvedFrom: `ELF binary ${path}`, candidates, defaultName: sanitizeName(basename(path)) };
    }
  }
  let ref;
  try {
    ref = normalizeRef(target);
  } catch {
    ref = null;
  }
  if (ref) {
    const full = formatRef(ref);
    candidates.push(`local package store ${full}`);
    const pkg = new PackageStore(layout).get(ref);
    if (pkg) {
      return { source: { kind: 'package', dir: pkg.dir, ref: full }, resolvedFrom: `local package store ${full}`, candidates, defaultName: sanitizeName(ref.name) };
    }
    candidates.push(`control plane store ${full} (skipped: local mode; set UNIKCTL_CONTROL_PLANE_URL to use a control plane)`);
  }
  throw new UserError('E_PACKAGE_NOT_FOUND', `nothing to deploy matches "${target}"; tried:\n  - ${candidates.join('\n  - ')}`, {
    hint: 'give a project directory, an ELF binary, or a package built with unikctl build (see its name:tag in the build output)',
    details: { candidates },
  });
}

export const isPackageArchive = (path: string): boolean => /\.(tar|tgz|tar\.gz)$/.test(path);

/** A package archive (tar/tar.gz of an image directory) is extracted safely once per content digest. */
export async function extractPackageArchive(path: string, layout: HomeLayout): Promise<string> {
  const { ArtifactStore } = await import('../store/artifacts.js');
  const { createReadStream } = await import('node:fs');
  const store = new ArtifactStore({ dir: join(layout.cache, 'archives'), maxUploadBytes: 4 * 1024 ** 3, maxExtractedBytes: 16 * 1024 ** 3, maxEntries: 100_000 });
  const rec = await store.put(createReadStream(path));
  if (!existsSync(join(rec.dir, 'manifest.json'))) {
    throw new UserError('E_PACKAGE_INVALID', `${path} holds no manifest.json at its top level`, { hint: 'archive the image directory itself, e.g. tar czf app.tgz -C DIR/.unikctl/image .' });
  }
  return rec.dir;
}
