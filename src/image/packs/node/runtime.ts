/** The host pieces the node pack needs: the node binary (resolved through shims), a stripped copy, staging. */
import { createHash } from 'node:crypto';
import { cpSync, createReadStream, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { UserError } from '../../../errors.js';
import { run, which } from '../../../util/exec.js';
import { isElfFile } from '../../elf.js';
import type { BuildMode } from '../../pack.js';
import type { Tool } from './managers.js';

export interface HostNode {
  /** the real node executable (process.execPath, so version-manager shims are seen through) */
  binary: string;
  version: string;
  npm: string;
  npmVersion: string;
}

const INSTALL_HINT = 'install Node.js with npm (e.g. apt-get install nodejs npm, or from https://nodejs.org) and make sure `node --version` and `npm --version` work';

/** node and npm from PATH, or E_TOOLCHAIN_MISSING naming both. */
export async function findHostNode(env: NodeJS.ProcessEnv): Promise<HostNode> {
  const node = which('node', env);
  const npm = which('npm', env);
  const missing = [node ? null : 'node', npm ? null : 'npm'].filter(Boolean);
  if (!node || !npm) {
    throw new UserError('E_TOOLCHAIN_MISSING', `the Node.js toolchain is incomplete: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not on PATH`, { hint: INSTALL_HINT });
  }
  const r = await run([node, '-p', 'JSON.stringify([process.execPath, process.version])'], { env });
  let binary = '';
  let version = '';
  try {
    [binary, version] = JSON.parse(r.stdout) as [string, string];
  } catch {
    throw new UserError('E_TOOLCHAIN_MISSING', `${node} does not run (exit ${r.code ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}`, { hint: INSTALL_HINT });
  }
  if (!isElfFile(binary)) {
    throw new UserError('E_TOOLCHAIN_MISSING', `node reports its executable as ${binary}, which is not an ELF binary`, { hint: 'put a Linux x86-64 node build first on PATH' });
  }
  const v = await run([npm, '--version'], { env: npmEnv(env, binary) });
  if (v.code !== 0) {
    throw new UserError('E_TOOLCHAIN_MISSING', `${npm} --version failed (exit ${v.code ?? v.signal}): ${v.stderr.trim().split('\n').slice(-3).join(' ')}`, { hint: INSTALL_HINT });
  }
  return { binary, version, npm, npmVersion: v.stdout.trim() };
}

/**
 * The environment npm runs with: the caller's, minus npm_* variables inherited from an enclosing `npm run`
 * (they would override our flags), with the bundled node first on PATH and a fixed SOURCE_DATE_EPOCH.
 */
export function npmEnv(env: NodeJS.ProcessEnv, nodeBinary: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!/^npm_/i.test(k)) out[k] = v;
  out.PATH = [dirname(nodeBinary), env.PATH].filter(Boolean).join(':');
  out.npm_config_update_notifier = 'false';
  out.SOURCE_DATE_EPOCH = '0';
  return out;
}

export function sha256OfFile(path: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(path).on('error', rej).on('data', (c) => h.update(c)).on('end', () => res(h.digest('hex')));
  });
}

/**
 * The node executable as it goes into the image (written into `workDir`; strip takes a fraction of a second, so
 * no cache): release drops every symbol (`strip --strip-all`: the dynamic symbols native addons link against
 * stay), debug drops only the DWARF data and keeps the symbol table for native stack traces. Without `strip`
 * the binary goes in as it is, with a warning (it is bigger).
 */
export async function preparedNode(binary: string, mode: BuildMode, workDir: string, env: NodeJS.ProcessEnv, warn: (m: string) => void): Promise<string> {
  const strip = which('strip', env);
  if (!strip) {
    warn('strip (binutils) is not on PATH: node goes into the image unstripped, which makes it much bigger; apt-get install binutils');
    return binary;
  }
  const out = join(workDir, 'node');
  const flag = mode === 'release' ? '--strip-all' : '--strip-debug';
  const r = await run([strip, flag, '-o', out, binary], { env });
  if (r.code !== 0) {
    rmSync(out, { force: true });
    warn(`strip ${flag} ${binary} failed (${r.stderr.trim()}); node goes into the image unstripped`);
    return binary;
  }
  return out;
}

/** Names never copied from the project into the staging copy (at any depth). */
const STAGE_SKIP = new Set(['node_modules', '.git', '.unikctl']);

/** Copies the project (without node_modules, .git, .unikctl and `skip` top-level entries) into `dest`. */
export function stageApp(src: string, dest: string, skipTop: string[] = []): void {
  const skipRel = new Set(skipTop);
  mkdirSync(dest, { recursive: true });
  const keep = (p: string): boolean => {
    if (STAGE_SKIP.has(basename(p)) || skipRel.has(relative(src, p))) return false;
    const st = lstatSync(p);
    return st.isFile() || st.isDirectory() || st.isSymbolicLink();
  };
  // entry by entry: cpSync refuses to copy a directory into its own subdirectory (.unikctl/work-*/app)
  for (const entry of readdirSync(src).sort()) {
    const from = join(src, entry);
    if (keep(from)) cpSync(from, join(dest, entry), { recursive: true, verbatimSymlinks: true, filter: keep });
  }
}

/** Total bytes and file count of a host directory (symlinks counted as links). */
export function treeSize(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        bytes += statSync(p).size;
        files++;
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return { bytes, files };
}

export function formatSize(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/**
 * The argv that runs a package manager: the host's npm, or `node <bin>` of the exact version installed once
 * from the npm registry into .unikctl/cache/tools/<name>@<version> (BLD-5), the way `npm install --global`
 * would. It is installed into a temporary directory and renamed, so two builds sharing the cache never see a
 * half-installed tool.
 */
export async function toolArgv(tool: Tool, host: HostNode, cacheDir: string, env: NodeJS.ProcessEnv, log: (l: string) => void): Promise<string[]> {
  if (!tool.pkg) return [host.npm];
  const { name, version } = tool.pkg;
  const prefix = join(cacheDir, 'tools', `${name.replace(/^@/, '').replace(/\//g, '+')}@${version}`);
  const pkgDir = (p: string): string => join(p, 'lib', 'node_modules', ...name.split('/'));
  if (!existsSync(join(pkgDir(prefix), 'package.json'))) {
    const tmp = `${prefix}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    const args = ['install', '--global', `--prefix=${tmp}`, `${name}@${version}`, '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', `--cache=${join(cacheDir, 'npm')}`];
    log(`npm ${args.join(' ')}`);
    const r = await run([host.npm, ...args], { env, onLine: log });
    if (r.code !== 0) {
      rmSync(tmp, { recursive: true, force: true });
      throw new UserError('E_TOOLCHAIN_MISSING', `cannot install ${tool.name} ${version} (${tool.source}) from the npm registry: ${`${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-5).join(' ')}`, {
        hint: `check that ${name}@${version} exists (npm view ${name}@${version} version) and the registry is reachable, or fix "packageManager" in package.json`,
      });
    }
    try {
      renameSync(tmp, prefix);
    } catch {
      // another build installed it first: theirs is as good as ours
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const manifest = JSON.parse(readFileSync(join(pkgDir(prefix), 'package.json'), 'utf8')) as { bin?: string | Record<string, string> };
  const bin = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin?.[tool.name];
  if (!bin) throw new UserError('E_TOOLCHAIN_MISSING', `${name}@${version} has no "${tool.name}" executable`, { hint: `fix "packageManager" in package.json` });
  // run with the bundled node, not through the bin's shebang (`#!/usr/bin/env node` would pick whatever is on PATH)
  return [host.binary, join(pkgDir(prefix), bin)];
}
