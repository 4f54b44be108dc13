/**
 * The node pack's decisions, kept free of I/O where possible so they can be unit tested: which lock file
 * governs the install, how the app is started (package.json `start` or `main`), and the npm command line.
 */
import { existsSync, statSync } from 'node:fs';
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
}

/** Where node lives in the guest (PATH has /usr/bin; process.execPath reports this). */
export const GUEST_NODE = '/usr/bin/node';
/** The app's own files and its production node_modules. */
export const GUEST_APP = '/app';
/** Node (V8 heap, ICU, libuv pool) wants more than a Go binary: 256 MiB serves a small HTTP app comfortably. */
export const DEFAULT_MEMORY_MIB = 256;

/** npm's lock files in the order npm itself prefers them, and other package managers' (not supported). */
export const NPM_LOCKS = ['npm-shrinkwrap.json', 'package-lock.json'] as const;
export const FOREIGN_LOCKS = ['yarn.lock', 'pnpm-lock.yaml', 'bun.lockb', 'bun.lock'] as const;

export interface LockState {
  /** the npm lock file that pins the install, if any */
  npmLock: (typeof NPM_LOCKS)[number] | null;
  /** lock files of other package managers found at the top of the project */
  foreign: string[];
}

export function lockState(dir: string): LockState {
  return {
    npmLock: NPM_LOCKS.find((f) => existsSync(join(dir, f))) ?? null,
    foreign: FOREIGN_LOCKS.filter((f) => existsSync(join(dir, f))),
  };
}

/** Production dependencies: what `npm ci --omit=dev` installs (devDependencies never reach the image). */
export function productionDependencies(pkg: PackageJson): string[] {
  return [...new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})])].sort();
}

export type InstallPlan =
  | { kind: 'none' }
  | { kind: 'ci'; lock: string }
  | { kind: 'install-unlocked' };

/**
 * BLD-4 for npm: with production dependencies, a release build needs package-lock.json or npm-shrinkwrap.json
 * (`npm ci` installs exactly what it pins); a debug build without one warns and resolves with `npm install`.
 * A yarn/pnpm/bun lock alone is refused in both modes: npm would ignore the versions it pins.
 */
export function planInstall(pkg: PackageJson, locks: LockState, mode: BuildMode, warn: (m: string) => void): InstallPlan {
  const deps = productionDependencies(pkg);
  if (locks.npmLock) return deps.length > 0 ? { kind: 'ci', lock: locks.npmLock } : { kind: 'none' };
  if (deps.length === 0) return { kind: 'none' };
  if (locks.foreign.length > 0) {
    throw new UserError('E_NOT_IMPLEMENTED', `the project is locked with ${locks.foreign.join(', ')}, but the node pack installs with npm and needs package-lock.json (or npm-shrinkwrap.json)`, {
      hint: 'run `npm install --package-lock-only` (npm reads yarn.lock to keep the same versions) and commit package-lock.json, or build with a unik.yaml build.command',
    });
  }
  const what = `package.json has ${deps.length} production dependenc${deps.length === 1 ? 'y' : 'ies'} but no package-lock.json or npm-shrinkwrap.json`;
  if (mode === 'release') {
    throw new UserError('E_LOCK_REQUIRED', `${what}: a release build needs pinned dependencies`, {
      hint: 'run `npm install --package-lock-only` and commit package-lock.json, or build with --debug',
    });
  }
  warn(`${what}; resolving with npm install (a release build will refuse this: E_LOCK_REQUIRED)`);
  return { kind: 'install-unlocked' };
}

/** The npm command line for the staging copy; the cache is kept in .unikctl/cache/npm (BLD-5). */
export function npmArgs(plan: InstallPlan, cacheDir: string): string[] {
  const common = ['--omit=dev', '--ignore-scripts=false', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', `--cache=${cacheDir}`];
  if (plan.kind === 'ci') return ['ci', ...common];
  if (plan.kind === 'install-unlocked') return ['install', ...common, '--no-save', '--no-package-lock'];
  return [];
}

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
 * How the app starts: a simple `node file` start script, else package.json `main`, else `server.js` (npm's
 * default start) or `index.js` (node's default main). `dir` is the staged app (after npm install).
 */
export function resolveEntry(dir: string, pkg: PackageJson, warn: (m: string) => void): Entry {
  const start = pkg.scripts?.start;
  const mainOf = (): string | null => (pkg.main ? resolveScript(dir, pkg.main) : null);
  if (start !== undefined) {
    const parsed = parseStartScript(start);
    if (parsed) {
      const script = parsed.file === '.' || parsed.file === './' ? mainOf() ?? resolveScript(dir, 'index') : resolveScript(dir, parsed.file);
      if (!script) {
        throw new UserError('E_ARTIFACT_MISSING', `the start script "${start}" runs ${parsed.file}, which is not in the project`, {
          hint: 'fix scripts.start in package.json (the node pack does not run a build step: commit built files), or set run.command in unik.yaml',
        });
      }
      return { script, nodeArgs: parsed.nodeArgs, args: parsed.args, env: parsed.env, source: `package.json scripts.start "${start}"` };
    }
    const main = mainOf();
    if (!main) {
      throw new UserError('E_ARTIFACT_MISSING', `the start script "${start}" is not a simple \`node file.js\` command and package.json has no usable "main"`, {
        hint: 'set run.command in unik.yaml, e.g. run: { command: [node, /app/server.js] }, or make scripts.start a plain `node server.js`',
      });
    }
    warn(`the start script "${start}" is not a simple \`node file.js\` command; starting "main" (${main}) instead (set run.command in unik.yaml to choose)`);
    return { script: main, nodeArgs: [], args: [], env: {}, source: `package.json main "${pkg.main ?? ''}"` };
  }
  if (pkg.main !== undefined) {
    const main = mainOf();
    if (!main) {
      throw new UserError('E_ARTIFACT_MISSING', `package.json "main" is ${pkg.main}, which is not in the project`, {
        hint: 'fix "main" in package.json (the node pack does not run a build step: commit built files), or set run.command in unik.yaml',
      });
    }
    return { script: main, nodeArgs: [], args: [], env: {}, source: `package.json main "${pkg.main}"` };
  }
  for (const fallback of ['server.js', 'index.js']) {
    if (resolveScript(dir, fallback)) return { script: fallback, nodeArgs: [], args: [], env: {}, source: `${fallback} (no start script or main)` };
  }
  throw new UserError('E_ARTIFACT_MISSING', 'cannot tell how to start this app: package.json has no "start" script, no "main", and there is no server.js or index.js', {
    hint: 'add "start": "node server.js" to package.json scripts, or set run.command in unik.yaml',
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
