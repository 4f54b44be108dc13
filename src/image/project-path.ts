import { existsSync, realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { UserError } from '../errors.js';

/**
 * `rel` (from unik.yaml) inside the project `dir`, after resolving symlinks: what a remote build may read is the
 * uploaded project only, never a file of the host it builds on.
 */
export function insideProject(dir: string, rel: string, what: string): string {
  const path = resolve(dir, rel);
  const escapes = (p: string, root: string): boolean => { const r = relative(root, p); return r === '..' || r.startsWith(`..${sep}`) || isAbsolute(r); };
  if (isAbsolute(rel) || escapes(path, dir)) {
    throw new UserError('E_UNIKYAML_INVALID', `${what} ${rel} is outside the project directory`, { hint: `make ${what} in unik.yaml a path inside the project` });
  }
  if (existsSync(path) && escapes(realpathSync(path), realpathSync(dir))) {
    throw new UserError('E_UNIKYAML_INVALID', `${what} ${rel} leads outside the project directory through a symlink`, { hint: `make ${what} in unik.yaml a path inside the project, without symlinks that leave it` });
  }
  return path;
}

