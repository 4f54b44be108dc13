import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Root of the installed project (holds package.json, kernel/config, guest/build, dist): the nearest directory
 * at or above this module that holds package.json. Not simply its parent: this module runs from dist/ (the
 * CLI and daemon), from src/ (the unit tests) and from dist-bench/src/ (the benchmarks, compiled by
 * tsconfig.bench.json next to their own code), and the search finds the same root from all three.
 */
export const projectRoot = findProjectRoot(dirname(fileURLToPath(import.meta.url)));

function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return resolve(from, '..'); // none found: the layout of dist/ and src/
  }
}

/** Where all local state lives: the SQLite store, deployments, the package store, kernels. */
export function unikHome(env: NodeJS.ProcessEnv = process.env): string {
  const h = env.UNIKCTL_HOME;
  if (h && h.length > 0) return resolve(h);
  const xdg = env.XDG_STATE_HOME && env.XDG_STATE_HOME.length > 0 ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state');
  return join(xdg, 'unikctl');
}

export interface HomeLayout {
  home: string;
  db: string;
  deployments: string;
  packages: string;
  kernels: string;
  cache: string;
}

export function homeLayout(env: NodeJS.ProcessEnv = process.env): HomeLayout {
  const home = unikHome(env);
  return {
    home,
    db: join(home, 'state.db'),
    deployments: join(home, 'deployments'),
    packages: join(home, 'packages'),
    kernels: env.UNIKCTL_KERNEL_DIR && env.UNIKCTL_KERNEL_DIR.length > 0 ? resolve(env.UNIKCTL_KERNEL_DIR) : join(home, 'kernels'),
    cache: join(home, 'cache'),
  };
}

export function deploymentDir(layout: HomeLayout, name: string): string {
  return join(layout.deployments, name);
}

/**
 * How to run the set-up here, for error hints: `make setup` in a source checkout (it has src/), the shipped
 * script in an installed release (npm install -g of the release tarball has dist/ and scripts/setup.sh only).
 */
export const setupCommand = (): string => (existsSync(join(projectRoot, 'src')) ? 'make setup' : join(projectRoot, 'scripts', 'setup.sh'));

/** The VMM launcher built by the set-up from host/launch.c (death signal + no transparent huge pages). */
export const vmmLauncherPath = (): string => join(projectRoot, 'host', 'build', 'unikctl-launch');
export const guestInitPath = (): string => process.env.UNIKCTL_INIT && process.env.UNIKCTL_INIT.length > 0 ? resolve(process.env.UNIKCTL_INIT) : join(projectRoot, 'guest', 'build', 'unik-init');

/** A service's own files (its controller's log, the front's config and sockets, the images its versions build). */
export function serviceDir(layout: HomeLayout, name: string): string {
  return join(layout.home, 'services', name);
}
