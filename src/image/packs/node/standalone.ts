/**
 * Self-contained server output of a `build` script. Next.js with `output: 'standalone'` (its documented
 * production layout) writes `.next/standalone/`: a `server.js` and the node_modules that its file tracing found
 * the server needs — a few MiB of `next` instead of the whole package, without the SWC compiler (≈100 MiB) or the
 * build's tools. Next leaves `.next/static` (client assets) and `public/` for the deployer to copy next to it.
 * When a build produced this, the image's /app is that directory (plus the two copies) and the production
 * install is skipped: it would add back the full node_modules the tracing left out.
 */
import { cpSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';

export interface StandaloneOutput {
  /** the standalone directory, relative to the app */
  dir: string;
  /** the server script, relative to the standalone directory (a monorepo app sits in a subdirectory) */
  server: string;
  /** what is copied into the standalone tree, relative to the app → relative to the standalone directory */
  copies: Array<{ from: string; to: string }>;
  /** for the build log */
  describe: string;
}

const isFile = (p: string): boolean => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

/**
 * Next.js standalone output in a built app directory, or null. `.next/required-server-files.json` says where the
 * app sits inside the traced tree (`relativeAppDir`, empty for a single-package project) and which distDir it uses.
 */
export function findStandalone(app: string): StandaloneOutput | null {
  for (const distDir of ['.next', ...nextDistDirs(app)]) {
    const required = join(app, distDir, 'required-server-files.json');
    if (!isFile(required) || !existsSync(join(app, distDir, 'standalone'))) continue;
    let rel = '';
    try {
      const doc = JSON.parse(readFileSync(required, 'utf8')) as { relativeAppDir?: unknown };
      if (typeof doc.relativeAppDir === 'string') rel = doc.relativeAppDir;
    } catch {
      // an unreadable manifest: the server is looked for at the top of the standalone tree
    }
    const dir = posix.join(distDir, 'standalone');
    const appIn = posix.normalize(rel || '.');
    if (appIn.startsWith('..') || appIn.startsWith('/')) continue;
    const server = posix.join(appIn, 'server.js');
    if (!isFile(join(app, dir, server))) continue;
    const copies = [
      { from: posix.join(distDir, 'static'), to: posix.join(appIn, distDir, 'static') },
      { from: 'public', to: posix.join(appIn, 'public') },
    ].filter((c) => existsSync(join(app, c.from)));
    return { dir, server, copies, describe: `Next.js standalone output ${dir}/${server}` };
  }
  return null;
}

/** A distDir other than .next, from next.config.{js,mjs,cjs,ts} (a plain string literal only). */
function nextDistDirs(app: string): string[] {
  const out: string[] = [];
  for (const f of ['next.config.js', 'next.config.mjs', 'next.config.cjs', 'next.config.ts']) {
    let text: string;
    try {
      text = readFileSync(join(app, f), 'utf8');
    } catch {
      continue;
    }
    const m = /\bdistDir\s*:\s*['"]([^'"]+)['"]/.exec(text);
    const d = m?.[1] ? posix.normalize(m[1].replace(/^\.\//, '')) : null;
    if (d && d !== '.next' && !d.startsWith('..') && !d.startsWith('/')) out.push(d);
  }
  return out;
}

/** Copies the client assets and public files into the standalone tree, as Next's deployment guide says to. */
export function completeStandalone(app: string, out: StandaloneOutput): string {
  const root = join(app, out.dir);
  for (const c of out.copies) cpSync(join(app, c.from), join(root, c.to), { recursive: true, verbatimSymlinks: true });
  return root;
}
