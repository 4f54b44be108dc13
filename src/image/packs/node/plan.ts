/**
 * The node pack's decisions about starting the app, kept free of I/O where possible so they can be unit tested:
 * how the app is started (package.json `start` or `main`). The install (which tool, which commands) is managers.ts.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { UserError } from '../../../errors.js';
import type { BuildMode } from '../../pack.js';

export interface PackageJson {
  name?: string;
  main?: string;
  type?: string;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  /** corepack's field: "pnpm@9.15.9", "yarn@4.9.4+sha512.…" */
  packageManager?: string;
}

/** Where node lives in the guest (PATH has /usr/bin; process.execPath reports this). */
export const GUEST_NODE = '/usr/bin/node';
/** The app's own files and its production node_modules. */
export const GUEST_APP = '/app';
/** Node (V8 heap, ICU, libuv pool) wants more than a Go binary: 256 MiB serves a small HTTP app comfortably. */
export const DEFAULT_MEMORY_MIB = 256;

export interface StartScript {
  env: Record<string, string>;
  nodeArgs: string[];
  file: string;
  args: string[];
}

/** node options that take the next word as their value. */
const VALUE_FLAGS = new Set(['-r', '--require', '--import', '--loader', '--experimental-loader', '--conditions', '-C', '--env-file', '--title', '--input-type', '--stack-size']);
/** Options that make the command something other than "run this file", or need what the guest lacks (inotify, a terminal). */
const NOT_A_FILE_RUN = /^(-e|--eval|-p|--print|-i|--interactive|--test|--run|--watch|--watch-path|-c|--check|-v|--version|-h|--help)(=|$)/;

/**
 * Parses a simple start script: `[KEY=value ...] node [node options] file [args]`. Anything a shell would
 * interpret (quotes, &&, pipes, $VAR, globs) or another launcher (nodemon, ts-node, cross-env) gives null.
 */
export function parseStartScript(script: string): StartScript | null {
  if (/[|&;<>()$`\\"'*?{}[\]~!#]/.test(script)) return null;
  const words = script.trim().split(/\s+/).filter(Boolean);
  const env: Record<string, string> = {};
  let i = 0;
  for (; i < words.length; i++) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(words[i]!);
    if (!m) break;
    env[m[1]!] = m[2]!;
  }
  if (words[i] !== 'node' && words[i] !== 'nodejs') return null;
  i++;
  const nodeArgs: string[] = [];
  for (; i < words.length && words[i]!.startsWith('-'); i++) {
    const w = words[i]!;
    if (NOT_A_FILE_RUN.test(w)) return null;
    nodeArgs.push(w);
    if (VALUE_FLAGS.has(w)) {
      const v = words[++i];
      if (v === undefined) return null;
      nodeArgs.push(v);
    }
  }
  const file = words[i];
  if (file === undefined) return null;
  return { env, nodeArgs, file, args: words.slice(i + 1) };
}

/** A project-relative script path as node would resolve it (extensions, directory index), or null. */
export function resolveScript(dir: string, rel: string): string | null {
  const clean = posix.normalize(rel.replace(/^\.\//, ''));
  if (clean.startsWith('/') || clean === '..' || clean.startsWith('../')) return null;
  const isFile = (p: string): boolean => {
    try {
      return statSync(join(dir, p)).isFile();
    } catch {
      return false;
    }
  };
  for (const c of [clean, `${clean}.js`, `${clean}.cjs`, `${clean}.mjs`, `${clean}.json`, `${clean}/index.js`, `${clean}/index.cjs`, `${clean}/index.mjs`]) {
    if (c !== '.' && isFile(c)) return c;
  }
  return null;
}

export interface Entry {
  /** the script to run, relative to the app directory */
  script: string;
  nodeArgs: string[];
  args: string[];
  env: Record<string, string>;
  /** where it came from, for the build log */
  source: string;
}

/**
 * Files that look like an app's entry, for error hints: the top level and the usual build output directories
 * (dist/, build/, out/, lib/, src/), .js/.mjs/.cjs only.
 */
export function entryCandidates(dir: string): string[] {
  const out: string[] = [];
  for (const sub of ['', 'dist', 'build', 'out', 'lib', 'src']) {
    let names: string[];
    try {
      names = readdirSync(join(dir, sub)).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      if (/^(server|index|main|app|start)\.(m|c)?js$/.test(n)) out.push(sub ? `${sub}/${n}` : n);
    }
  }
  return out;
}

/** The unik.yaml lines that pick an entry by hand, with the most likely file filled in. */
function runCommandHint(dir: string): string {
  const file = entryCandidates(dir)[0] ?? 'server.js';
  return `add to unik.yaml:  run: { command: [/usr/bin/node, /app/${file}] }`;
}

/** What package.json says about starting, for error messages. */
function found(pkg: PackageJson): string {
  const scripts = Object.keys(pkg.scripts ?? {});
  return `package.json has ${scripts.length > 0 ? `scripts ${scripts.join(', ')}` : 'no scripts'}${pkg.main !== undefined ? `, main "${pkg.main}"` : ', no main'}`;
}

/**
 * How the app starts: a simple `node file` start script, else package.json `main`, else `server.js` (npm's
 * default start) or `index.js` (node's default main). `dir` is the staged app after the install and the
 * `build` script, so a start file the build writes (dist/server.js) is found.
 */
export function resolveEntry(dir: string, pkg: PackageJson, warn: (m: string) => void): Entry {
  const start = pkg.scripts?.start;
  const mainOf = (): string | null => (pkg.main ? resolveScript(dir, pkg.main) : null);
  const built = pkg.scripts?.build !== undefined ? ' (after the build script ran)' : ' (package.json has no build script: commit built files, or add one)';
  if (start !== undefined) {
    const parsed = parseStartScript(start);
    if (parsed) {
      const script = parsed.file === '.' || parsed.file === './' ? mainOf() ?? resolveScript(dir, 'index') : resolveScript(dir, parsed.file);
      if (!script) {
        const c = entryCandidates(dir);
        throw new UserError('E_ARTIFACT_MISSING', `the start script "${start}" runs ${parsed.file}, which is not in the project${built}${c.length > 0 ? `; found ${c.join(', ')}` : ''}`, {
          hint: `fix scripts.start in package.json, or ${runCommandHint(dir)}`,
        });
      }
      return { script, nodeArgs: parsed.nodeArgs, args: parsed.args, env: parsed.env, source: `package.json scripts.start "${start}"` };
    }
    const main = mainOf();
    if (!main) {
      // `next start` needs the whole next package and its compiler at run time; the standalone output does not
      const next = /^next(\s|$)/.test(start.trim())
        ? 'set output: \'standalone\' in next.config.js (the build then writes .next/standalone/server.js, which the image runs with only the node_modules it traced), '
        : '';
      throw new UserError('E_ARTIFACT_MISSING', `the start script "${start}" is not a simple \`node file.js\` command and ${pkg.main === undefined ? 'package.json has no "main"' : `"main" (${pkg.main}) is not in the project${built}`}`, {
        hint: `${next}make scripts.start a plain \`node server.js\`, or ${runCommandHint(dir)}`,
      });
    }
    warn(`the start script "${start}" is not a simple \`node file.js\` command; starting "main" (${main}) instead (set run.command in unik.yaml to choose)`);
    return { script: main, nodeArgs: [], args: [], env: {}, source: `package.json main "${pkg.main ?? ''}"` };
  }
  if (pkg.main !== undefined) {
    const main = mainOf();
    if (!main) {
      throw new UserError('E_ARTIFACT_MISSING', `package.json "main" is ${pkg.main}, which is not in the project${built}`, {
        hint: `fix "main" in package.json, or ${runCommandHint(dir)}`,
      });
    }
    return { script: main, nodeArgs: [], args: [], env: {}, source: `package.json main "${pkg.main}"` };
  }
  for (const fallback of ['server.js', 'index.js']) {
    if (resolveScript(dir, fallback)) return { script: fallback, nodeArgs: [], args: [], env: {}, source: `${fallback} (no start script or main)` };
  }
  const c = entryCandidates(dir);
  throw new UserError('E_ARTIFACT_MISSING', `cannot tell how to start this app: ${found(pkg)}, no "start" script, and there is no server.js or index.js${c.length > 0 ? `; found ${c.join(', ')}` : ''}`, {
    hint: `add "start": "node ${c[0] ?? 'server.js'}" to package.json scripts, or ${runCommandHint(dir)}`,
  });
}

/** Release: plain node, NODE_ENV=production. Debug: source maps and warning traces, NODE_ENV=development. */
export function modeRuntime(mode: BuildMode): { nodeArgs: string[]; env: Record<string, string> } {
  return mode === 'release'
    ? { nodeArgs: [], env: { NODE_ENV: 'production' } }
    : { nodeArgs: ['--enable-source-maps', '--trace-warnings', '--trace-uncaught'], env: { NODE_ENV: 'development' } };
}

export function guestCommand(entry: Entry, mode: BuildMode): { command: string[]; env: Record<string, string> } {
  const m = modeRuntime(mode);
  return {
    command: [GUEST_NODE, ...m.nodeArgs, ...entry.nodeArgs, `${GUEST_APP}/${entry.script}`, ...entry.args],
    env: { ...m.env, ...entry.env },
  };
}
