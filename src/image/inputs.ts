import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const SKIP = new Set(['.unikctl', '.git', 'node_modules', 'target', '__pycache__', '.venv']);

/** One digest over a project's files (paths + contents), ignoring build outputs and VCS data. */
export function treeDigest(dir: string, filter: (rel: string) => boolean = () => true): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const entry of readdirSync(d).sort()) {
      if (SKIP.has(entry)) continue;
      const p = join(d, entry);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        const rel = relative(dir, p);
        if (!filter(rel)) continue;
        h.update(`${rel}\0`);
        h.update(readFileSync(p));
        h.update('\0');
      }
    }
  };
  walk(dir);
  return `sha256:${h.digest('hex')}`;
}

export function fileDigest(path: string): string | null {
  return existsSync(path) ? `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}` : null;
}
