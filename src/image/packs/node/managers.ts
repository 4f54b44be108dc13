/**
 * Which package manager installs a Node project, and with which command lines: npm (package-lock.json or
 * npm-shrinkwrap.json), pnpm (pnpm-lock.yaml) or yarn (yarn.lock, classic v1 or berry v2+). Decisions only:
 * the files are read by lockState(), the commands run in node.ts. The tool is the one a user would run: the
 * `packageManager` field of package.json (name and exact version, as corepack reads it), else the lock file's
 * own tool at a pinned version that writes that lock format, taken from the npm registry (never corepack's
 * downloads from the tools' own sites).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../../errors.js';
import type { BuildMode } from '../../pack.js';
import type { PackageJson } from './plan.js';

export type ManagerName = 'npm' | 'pnpm' | 'yarn';

export interface Tool {
  name: ManagerName;
  /** yarn 2+ ("berry"): other flags, .yarnrc.yml, no --production install */
  berry: boolean;
  /** the npm package and exact version to run; null: the host's npm (the one next to the bundled node) */
  pkg: { name: string; version: string } | null;
  /** why this tool and version, for the build log */
  source: string;
}

/** npm's lock files in the order npm itself prefers them. */
export const NPM_LOCKS = ['npm-shrinkwrap.json', 'package-lock.json'] as const;
const LOCK_OF: Record<ManagerName, string> = { npm: 'package-lock.json', pnpm: 'pnpm-lock.yaml', yarn: 'yarn.lock' };
const BUN_LOCKS = ['bun.lockb', 'bun.lock'] as const;

export interface LockState {
  /** the npm lock file that pins the install, if any */
  npmLock: (typeof NPM_LOCKS)[number] | null;
  /** pnpm-lock.yaml's lockfileVersion ('9.0', '6.0', …); null without pnpm-lock.yaml, '' if unreadable */
  pnpmLock: string | null;
  /** yarn.lock: classic (`# yarn lockfile v1`) or berry (`__metadata: version: N`) */
  yarnLock: { berry: false } | { berry: true; metadata: number } | null;
  /** bun's lock files (not supported) */
  bun: string[];
  /** .yarnrc.yml nodeLinker (berry); null when unset, which means Plug'n'Play */
  yarnNodeLinker: string | null;
}

function head(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').slice(0, 4096);
  } catch {
    return null;
  }
}

export function lockState(dir: string): LockState {
  const pnpm = head(join(dir, 'pnpm-lock.yaml'));
  const yarn = head(join(dir, 'yarn.lock'));
  const metadata = yarn === null ? null : /^__metadata:\s*\n\s+version:\s*(\d+)/m.exec(yarn);
  const yarnrc = head(join(dir, '.yarnrc.yml'));
  return {
    npmLock: NPM_LOCKS.find((f) => existsSync(join(dir, f))) ?? null,
    pnpmLock: pnpm === null ? null : /^lockfileVersion:\s*['"]?([\d.]+)/m.exec(pnpm)?.[1] ?? '',
    // an empty yarn.lock is how berry marks a project root before the first install
    yarnLock: yarn === null ? null : metadata ? { berry: true, metadata: Number(metadata[1]) } : yarn.trim() === '' ? { berry: true, metadata: 0 } : { berry: false },
    bun: BUN_LOCKS.filter((f) => existsSync(join(dir, f))),
    yarnNodeLinker: yarnrc === null ? null : /^nodeLinker:\s*['"]?([\w-]+)/m.exec(yarnrc)?.[1] ?? null,
  };
}

/**
 * Versions used when package.json has no packageManager: the newest release line that writes the lock format
 * found. pnpm 9 rather than 10 for lockfileVersion 9.0 because pnpm 10 skips dependencies' install scripts
 * unless they are listed in onlyBuiltDependencies (native addons would silently not build).
 */
export const DEFAULT_TOOLS = {
  pnpm: { '9': '9.15.9', '6': '8.15.9', '5': '7.33.7' } as Record<string, string>,
  yarnClassic: '1.22.22',
  berry: { 8: '4.9.4', 6: '3.8.7', 0: '4.9.4' } as Record<number, string>,
};

/** yarn 2+ is published as @yarnpkg/cli-dist; the `yarn` package on npm is yarn 1. */
function yarnPackage(version: string): { name: string; version: string } {
  return { name: Number(version.split('.')[0]) >= 2 ? '@yarnpkg/cli-dist' : 'yarn', version };
}

/** `packageManager`: "pnpm@9.15.9" or "yarn@4.9.4+sha512.…" (the hash is corepack's; npm checks the tarball's own integrity). */
export function parsePackageManager(field: string): { name: ManagerName; version: string } {
  const m = /^(npm|pnpm|yarn|bun)@(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)(?:\+[\w.=:/-]+)?$/.exec(field.trim());
  if (!m) {
    throw new UserError('E_BUILD_FAILED', `package.json "packageManager" is "${field}", which is not <npm|pnpm|yarn>@<exact version>`, {
      hint: 'write it as corepack does, e.g. "packageManager": "pnpm@9.15.9", or remove the field',
    });
  }
  if (m[1] === 'bun') {
    throw new UserError('E_NOT_IMPLEMENTED', `package.json "packageManager" is ${field}: the node pack installs with npm, pnpm or yarn, not bun`, {
      hint: 'lock the project with npm (`npm install --package-lock-only`), pnpm or yarn, or build with a unik.yaml build.command and artifact.path',
    });
  }
  return { name: m[1] as ManagerName, version: m[2]! };
}

/** The tool that installs the project, from packageManager or else from the lock files found. */
export function chooseTool(pkg: PackageJson, locks: LockState, warn: (m: string) => void): Tool {
  if (pkg.packageManager !== undefined) {
    const { name, version } = parsePackageManager(pkg.packageManager);
    const source = `package.json packageManager "${pkg.packageManager}"`;
    if (name === 'npm') return { name, berry: false, pkg: { name: 'npm', version }, source };
    if (name === 'pnpm') return { name, berry: false, pkg: { name: 'pnpm', version }, source };
    return { name, berry: Number(version.split('.')[0]) >= 2, pkg: yarnPackage(version), source };
  }
  const found = [locks.npmLock, locks.pnpmLock !== null ? 'pnpm-lock.yaml' : null, locks.yarnLock ? 'yarn.lock' : null].filter((f): f is string => f !== null);
  if (found.length > 1) warn(`several lock files: ${found.join(', ')}; installing from ${found[0]!} (set "packageManager" in package.json to choose)`);
  if (locks.npmLock) return { name: 'npm', berry: false, pkg: null, source: locks.npmLock };
  if (locks.pnpmLock !== null) {
    const major = locks.pnpmLock.split('.')[0] ?? '';
    const version = DEFAULT_TOOLS.pnpm[major];
    if (!version) {
      throw new UserError('E_NOT_IMPLEMENTED', `pnpm-lock.yaml has lockfileVersion "${locks.pnpmLock}", which no pnpm release the node pack knows writes (5.x, 6.0, 9.0)`, {
        hint: 'name the pnpm that wrote it in package.json, e.g. "packageManager": "pnpm@9.15.9"',
      });
    }
    return { name: 'pnpm', berry: false, pkg: { name: 'pnpm', version }, source: `pnpm-lock.yaml lockfileVersion ${locks.pnpmLock}` };
  }
  if (locks.yarnLock) {
    if (!locks.yarnLock.berry) return { name: 'yarn', berry: false, pkg: yarnPackage(DEFAULT_TOOLS.yarnClassic), source: 'yarn.lock (yarn lockfile v1)' };
    const version = DEFAULT_TOOLS.berry[locks.yarnLock.metadata] ?? DEFAULT_TOOLS.berry[8]!;
    return { name: 'yarn', berry: true, pkg: yarnPackage(version), source: `yarn.lock (__metadata version ${locks.yarnLock.metadata})` };
  }
  if (locks.bun.length > 0) {
    throw new UserError('E_NOT_IMPLEMENTED', `the project is locked with ${locks.bun.join(', ')} only: the node pack installs with npm, pnpm or yarn, not bun`, {
      hint: 'run `npm install --package-lock-only` (or pnpm/yarn) and commit the lock file, or build with a unik.yaml build.command and artifact.path',
    });
  }
  return { name: 'npm', berry: false, pkg: null, source: 'no lock file' };
}

export function toolLabel(tool: Tool): string {
  return tool.pkg ? `${tool.name}@${tool.pkg.version}` : tool.name;
}

/** Production dependencies: what a production install puts in node_modules (devDependencies never reach the image). */
export function productionDependencies(pkg: PackageJson): string[] {
  return [...new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})])].sort();
}

export interface InstallPlan {
  tool: Tool;
  /** the lock file the install is frozen to; null: resolved unlocked (debug builds only) */
  lock: string | null;
  /** production dependencies go into the image */
  production: boolean;
  /** package.json scripts.build, run with every dependency installed before the production install */
  build: string | null;
  /** the build needs an install of all dependencies first (it has dependencies to run with) */
  fullInstall: boolean;
}

const REFRESH_LOCK: Record<ManagerName | 'berry', string> = {
  npm: 'npm install --package-lock-only',
  pnpm: 'pnpm install --lockfile-only',
  yarn: 'yarn install',
  berry: 'yarn install --mode=update-lockfile',
};

/**
 * BLD-4: with dependencies to install, a release build needs the chosen tool's lock file and installs exactly
 * what it pins (frozen); a debug build without one warns and resolves. A lock of another tool does not count:
 * the chosen tool would ignore the versions it pins. Yarn berry must put a node_modules directory on disk.
 */
export function planInstall(pkg: PackageJson, locks: LockState, mode: BuildMode, warn: (m: string) => void): InstallPlan {
  const tool = chooseTool(pkg, locks, warn);
  const production = productionDependencies(pkg).length > 0;
  const build = pkg.scripts?.build ?? null;
  const fullInstall = build !== null && (production || Object.keys(pkg.devDependencies ?? {}).length > 0);
  const plan: InstallPlan = { tool, lock: null, production, build, fullInstall };
  if (!production && !fullInstall) return plan;

  const lock = tool.name === 'npm' ? locks.npmLock : tool.name === 'pnpm' ? (locks.pnpmLock !== null ? 'pnpm-lock.yaml' : null) : locks.yarnLock ? 'yarn.lock' : null;
  if (tool.berry && locks.yarnNodeLinker !== 'node-modules') {
    throw new UserError('E_NOT_IMPLEMENTED', `yarn ${tool.pkg?.version ?? ''} installs this project with ${locks.yarnNodeLinker === null ? "Plug'n'Play (.yarnrc.yml sets no nodeLinker)" : `nodeLinker: ${locks.yarnNodeLinker} (.yarnrc.yml)`}; the node pack puts a node_modules directory into the image`, {
      hint: 'add `nodeLinker: node-modules` to .yarnrc.yml (yarn.lock stays valid), or build with a unik.yaml build.command and artifact.path',
    });
  }
  if (lock) return { ...plan, lock };
  const refresh = REFRESH_LOCK[tool.berry ? 'berry' : tool.name];
  const others = [locks.npmLock, locks.pnpmLock !== null ? 'pnpm-lock.yaml' : null, locks.yarnLock ? 'yarn.lock' : null].filter(Boolean);
  const what = `the project installs with ${toolLabel(tool)} (${tool.source}) but has no ${LOCK_OF[tool.name]}${others.length > 0 ? ` (found ${others.join(', ')}, which ${tool.name} does not read)` : ''}`;
  if (mode === 'release') {
    throw new UserError('E_LOCK_REQUIRED', `${what}: a release build needs pinned dependencies`, { hint: `run \`${refresh}\` and commit ${LOCK_OF[tool.name]}, or build with --debug` });
  }
  warn(`${what}; resolving without a lock (a release build will refuse this: E_LOCK_REQUIRED)`);
  return plan;
}

export interface Step {
  /** what the step does, for the build log */
  what: string;
  /** the full install, the build script, or the production install (skipped after a self-contained build output) */
  kind: 'install' | 'build' | 'production';
  /** arguments after the tool's own argv */
  args: string[];
  /** environment added for this step */
  env: Record<string, string>;
  /** node_modules is removed first: the production install starts from nothing, so no dev dependency stays */
  clean: boolean;
  /** NODE_ENV=production would make npm/yarn/pnpm skip dev dependencies the build needs */
  dropNodeEnv: boolean;
}

/**
 * The tool's command lines in order: [install everything, run build,] install production dependencies.
 * Caches live in .unikctl/cache (BLD-5). pnpm installs a hoisted node_modules (real directories, like npm's):
 * its default layout is symlinks into node_modules/.pnpm, which the image would have to keep exactly.
 */
export function installSteps(plan: InstallPlan, cacheDir: string, env: NodeJS.ProcessEnv): Step[] {
  const frozen = plan.lock !== null;
  const step = (what: string, kind: Step['kind'], args: string[], o: Partial<Step> = {}): Step => ({ what, kind, args, env: toolEnv(plan.tool, frozen, cacheDir, env), clean: false, dropNodeEnv: false, ...o });
  const install = (dev: boolean): Step => {
    const what = dev ? 'install all dependencies for the build' : 'install production dependencies';
    const kind = dev ? 'install' : 'production';
    const o = { clean: true, dropNodeEnv: dev };
    switch (plan.tool.name) {
      case 'npm': {
        const common = [dev ? '--include=dev' : '--omit=dev', '--ignore-scripts=false', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', `--cache=${join(cacheDir, 'npm')}`];
        return step(what, kind, frozen ? ['ci', ...common] : ['install', ...common, '--no-save', '--no-package-lock'], o);
      }
      case 'pnpm':
        return step(what, kind, ['install', frozen ? '--frozen-lockfile' : '--no-frozen-lockfile', ...(dev ? [] : ['--prod']), '--config.node-linker=hoisted',
          `--config.store-dir=${join(cacheDir, 'pnpm-store')}`, '--config.package-import-method=copy', '--config.confirm-modules-purge=false', '--reporter=append-only'], o);
      case 'yarn':
        if (plan.tool.berry) {
          // berry has no production install: `workspaces focus --production` (built into yarn 4) is the one that omits dev dependencies
          return step(what, kind, dev ? ['install', ...(frozen ? ['--immutable'] : [])] : ['workspaces', 'focus', '--all', '--production'], o);
        }
        return step(what, kind, ['install', frozen ? '--frozen-lockfile' : '--pure-lockfile', '--non-interactive', '--no-progress', `--production=${dev ? 'false' : 'true'}`,
          `--cache-folder=${join(cacheDir, 'yarn')}`], o);
    }
  };
  const steps: Step[] = [];
  if (plan.build !== null) {
    if (plan.fullInstall) steps.push(install(true));
    // builds run offline and never report to anyone (Next.js sends telemetry unless told not to)
    steps.push(step(`build: ${plan.build}`, 'build', ['run', 'build'], { dropNodeEnv: true, env: { ...toolEnv(plan.tool, frozen, cacheDir, env), NEXT_TELEMETRY_DISABLED: '1' } }));
  }
  if (plan.production) steps.push(install(false));
  return steps;
}

/** Settings that only environment variables carry for yarn berry (its CLI has no cache or telemetry flags). */
function toolEnv(tool: Tool, frozen: boolean, cacheDir: string, env: NodeJS.ProcessEnv): Record<string, string> {
  if (!tool.berry) return {};
  const out: Record<string, string> = {
    YARN_ENABLE_GLOBAL_CACHE: 'false',
    YARN_CACHE_FOLDER: join(cacheDir, 'yarn-berry'),
    YARN_ENABLE_TELEMETRY: 'false',
    YARN_ENABLE_PROGRESS_BARS: 'false',
    YARN_ENABLE_IMMUTABLE_INSTALLS: frozen ? 'true' : 'false',
  };
  // berry ignores npm's configuration: carry a registry set for npm (the sandbox passes npm_config_registry)
  const registry = env.npm_config_registry ?? env.NPM_CONFIG_REGISTRY;
  if (registry && env.YARN_NPM_REGISTRY_SERVER === undefined) out.YARN_NPM_REGISTRY_SERVER = registry;
  return out;
}
