import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { UserError } from '../errors.js';
import type { BuildContext } from './pack.js';
import { insideProject } from './project-path.js';
import type { RootfsBuilder } from './rootfs.js';

/**
 * Files a compiled app reads at run time from its working directory: framework configuration and the usual
 * template/asset directories. A compiled pack ships only the binary, so these are copied next to it (/app, the
 * working directory). `.env` files are never defaults: secrets belong in deploy -e, not in an image.
 */
export const DEFAULT_RUNTIME_FILES = ['Rocket.toml', 'config.toml', 'config.yaml', 'config.yml', 'config.json', 'appsettings.json', 'config', 'templates', 'static', 'public', 'assets'];

/** Directories never taken for run-time files even when the source names them: sources, dependencies, build output. */
const NOT_RUNTIME_DIRS = new Set(['src', 'cmd', 'internal', 'pkg', 'vendor', 'node_modules', 'target', 'build', 'dist', 'bin', 'test', 'tests', 'examples', 'docs']);

/**
 * Top-level project directories the app's own source names in a string literal as a relative path —
 * `"resources/*.templ.html"`, `"./web"`, `"data/words.txt"` — besides DEFAULT_RUNTIME_FILES: on Heroku, Render and
 * Fly the whole checkout is the working directory, so such a directory is there at run time; in a compiled pack's
 * image it must be copied. A directory that holds source files of the language itself (a Go package, a Rust
 * module, anywhere below it) is code, not a run-time file, and is skipped, as are hidden ones and NOT_RUNTIME_DIRS.
 */
export function referencedDirs(dir: string, exts: string[]): string[] {
  const top = new Set<string>();
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory() && !e.name.startsWith('.') && !NOT_RUNTIME_DIRS.has(e.name)) top.add(e.name);
  }
  if (top.size === 0) return [];
  const isSource = (name: string): boolean => exts.some((x) => name.endsWith(x)) && !name.endsWith('_test.go');
  const found = new Set<string>();
  let budget = 2000; // source files read at most
  const scan = (d: string, depth: number): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (budget <= 0) return;
      if (e.isDirectory()) {
        if (depth < 6 && !e.name.startsWith('.') && !['vendor', 'node_modules', 'target', 'testdata'].includes(e.name)) scan(join(d, e.name), depth + 1);
      } else if (e.isFile() && isSource(e.name)) {
        budget--;
        const text = readFileSync(join(d, e.name), 'utf8');
        for (const m of text.matchAll(/["`](\.\/)?([A-Za-z0-9_][A-Za-z0-9_.-]*)(\/[^"`\n]*)?["`]/g)) {
          const name = m[2]!;
          if ((m[1] || m[3]) && top.has(name)) found.add(name);
        }
      }
    }
  };
  scan(dir, 0);
  const holdsSource = (d: string, depth: number): boolean => readdirSync(d, { withFileTypes: true }).some((e) =>
    (e.isFile() && isSource(e.name)) || (e.isDirectory() && depth < 4 && holdsSource(join(d, e.name), depth + 1)));
  return [...found].filter((name) => !holdsSource(join(dir, name), 0)).sort();
}

/** The defaults are a guess: one larger than this is left out with a warning (include: it in unik.yaml to ship it). */
export const DEFAULT_RUNTIME_FILES_LIMIT = 16 * 1024 * 1024;

interface Found { rel: string; files: Array<{ host: string; rel: string }>; bytes: number; skippedLinks: string[]; }

/** The regular files under a project path; symlinks are followed only while they stay inside the project. */
function collect(dir: string, rel: string): Found {
  const root = realpathSync(dir);
  const out: Found = { rel, files: [], bytes: 0, skippedLinks: [] };
  const inside = (p: string): boolean => { const r = relative(root, p); return r !== '..' && !r.startsWith(`..${sep}`) && !r.startsWith(sep) && !r.startsWith('/'); };
  const walk = (host: string, r: string): void => {
    const l = lstatSync(host);
    let real = host;
    if (l.isSymbolicLink()) {
      try { real = realpathSync(host); } catch { out.skippedLinks.push(r); return; }
      if (!inside(real)) { out.skippedLinks.push(r); return; }
    }
    const st = statSync(real);
    if (st.isDirectory()) {
      for (const e of readdirSync(real).sort()) walk(join(real, e), posix.join(r, e));
    } else if (st.isFile()) {
      out.files.push({ host: real, rel: r });
      out.bytes += st.size;
    }
  };
  walk(join(dir, rel), rel);
  return out;
}

/**
 * Copies the project's run-time files to `guestDir`: unik.yaml `include:` (each must exist) or, without it,
 * the DEFAULT_RUNTIME_FILES present in the project plus the directories its sources (files ending in one of
 * `sourceExts`) name (referencedDirs), each below DEFAULT_RUNTIME_FILES_LIMIT. Returns the paths copied.
 */
export function addRuntimeFiles(ctx: BuildContext, rootfs: RootfsBuilder, guestDir = '/app', sourceExts: string[] = []): string[] {
  const explicit = ctx.config?.include;
  const defaults = DEFAULT_RUNTIME_FILES.filter((f) => existsSync(join(ctx.dir, f)));
  const referenced = explicit || sourceExts.length === 0 ? [] : referencedDirs(ctx.dir, sourceExts).filter((d) => !defaults.includes(d));
  const wanted = explicit ?? [...defaults, ...referenced];
  const copied: string[] = [];
  const ours = new Set<string>();
  for (const rel of wanted) {
    const path = insideProject(ctx.dir, rel, 'include');
    if (!existsSync(path)) {
      throw new UserError('E_UNIKYAML_INVALID', `include: ${rel} does not exist in the project`, { hint: 'fix the include: list in unik.yaml (paths relative to the project directory)' });
    }
    const clean = posix.normalize(rel).replace(/\/+$/, '');
    const taken = posix.join(guestDir, clean.split('/')[0]!);
    if (!ours.has(taken) && existsSync(rootfs.hostPath(taken))) {
      // a Go module named `static` builds /app/static: the binary keeps its name
      const msg = `${clean} would overwrite ${taken}, which the pack already put in the image (the binary)`;
      if (explicit) throw new UserError('E_UNIKYAML_INVALID', `include: ${msg}`, { hint: 'rename the file or directory, or the binary' });
      ctx.warn(`${msg}: not copied`);
      continue;
    }
    const found = collect(ctx.dir, clean);
    for (const l of found.skippedLinks) ctx.warn(`${l} is a symlink that leaves the project (or dangles): not copied into the image`);
    if (!explicit && found.bytes > DEFAULT_RUNTIME_FILES_LIMIT) {
      ctx.warn(`${clean} is ${(found.bytes / 1048576).toFixed(1)} MiB, above the ${DEFAULT_RUNTIME_FILES_LIMIT / 1048576} MiB limit for files copied by default: left out (list it under include: in unik.yaml to ship it)`);
      continue;
    }
    for (const f of found.files) rootfs.addFile(f.host, posix.join(guestDir, f.rel));
    ours.add(taken);
    copied.push(clean);
  }
  if (copied.length > 0) {
    const why = explicit ? ' (unik.yaml include:)' : referenced.some((r) => copied.includes(r)) ? ` (${referenced.filter((r) => copied.includes(r)).join(', ')}: named by the source)` : '';
    ctx.log(`run-time files next to the binary in ${guestDir}: ${copied.join(', ')}${why}`);
  }
  return copied;
}
