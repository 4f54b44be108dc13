import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../../errors.js';
import { run } from '../../util/exec.js';
import { fileDigest, treeDigest } from '../inputs.js';
import type { BuildContext, BuildMode, Pack } from '../pack.js';
import { addRuntimeFiles } from '../runtime-files.js';
import { compileFailed, hasFile, requireLock, requireTool } from './common.js';

/** The static target used when its standard library is installed (`rustup target add x86_64-unknown-linux-musl`). */
export const MUSL_TARGET = 'x86_64-unknown-linux-musl';
/** The fallback: a glibc binary shipped with its shared-library closure. */
export const GNU_TARGET = 'x86_64-unknown-linux-gnu';

const INSTALL_RUST = 'install Rust with rustup (https://rustup.rs), e.g. `curl https://sh.rustup.rs -sSf | sh`, and make sure `cargo --version` works';

/** The parts of `cargo metadata --format-version 1 --no-deps` the pack reads. */
export interface CargoMetadata {
  packages: Array<{
    name: string;
    id: string;
    manifest_path: string;
    default_run?: string | null;
    targets: Array<{ name: string; kind: string[] }>;
  }>;
  workspace_members: string[];
  workspace_root: string;
}

export interface BinaryChoice {
  /** the bin targets to build and put under /app */
  bins: string[];
  /** the binary to start (the first of bins) */
  command: string;
}

/**
 * Which binary target(s) to ship. unik.yaml `main:` names one of the workspace's binary targets; without it:
 * the single bin target of the project (the package in DIR, else the whole workspace); with several, the one
 * unik.yaml run.command names, else the package's `default-run`; else E_ENTRY_AMBIGUOUS naming the candidates.
 */
export function selectBinaries(meta: CargoMetadata, dir: string, runCommand?: string[], main?: string): BinaryChoice {
  const members = meta.packages.filter((p) => meta.workspace_members.includes(p.id));
  const binsOf = (p: CargoMetadata['packages'][number]): string[] => p.targets.filter((t) => t.kind.includes('bin')).map((t) => t.name);
  const own = members.find((p) => resolve(dirname(p.manifest_path)) === resolve(dir));
  const scope = own && binsOf(own).length > 0 ? [own] : members;
  const all = [...new Set(scope.flatMap(binsOf))].sort();
  const describe = (bins: string[]): string => bins.map((b) => {
    const pkg = members.find((p) => binsOf(p).includes(b));
    return pkg && pkg.name !== b ? `${b} (package ${pkg.name})` : b;
  }).join(', ');
  if (main !== undefined) {
    // main: may name any binary of the workspace, also outside the package in DIR
    const everywhere = [...new Set(members.flatMap(binsOf))].sort();
    if (everywhere.includes(main)) return { bins: [main], command: main };
    throw new UserError('E_UNIKYAML_INVALID', `unik.yaml main: "${main}" is not a binary target of the Cargo ${members.length > 1 ? 'workspace' : 'package'}; ${everywhere.length ? `its binary targets are: ${describe(everywhere)}` : 'it has no binary target'}`, {
      hint: everywhere.length ? `set main: to one of ${everywhere.join(', ')}` : 'add src/main.rs (or a [[bin]] target) to the package that builds the server',
    });
  }
  if (all.length === 0) {
    throw new UserError('E_INVALID_ARGUMENT', 'the Cargo project has no binary target (src/main.rs or a [[bin]] section): there is nothing to run', {
      hint: 'add src/main.rs (or a [[bin]] target) to the package, or point unikctl at the crate that builds the server',
    });
  }
  if (all.length === 1) return { bins: all, command: all[0] as string };
  const wanted = runCommand?.[0] ? basename(runCommand[0]) : undefined;
  if (wanted) {
    // run.command names one of the binaries: ship only that one; otherwise ship them all (the command is unik.yaml's)
    if (all.includes(wanted)) return { bins: [wanted], command: wanted };
    return { bins: all, command: all[0] as string };
  }
  const defaults = [...new Set(scope.map((p) => p.default_run).filter((d): d is string => Boolean(d) && all.includes(d as string)))];
  if (defaults.length === 1) return { bins: defaults, command: defaults[0] as string };
  throw new UserError('E_ENTRY_AMBIGUOUS', `the Cargo ${scope.length > 1 ? 'workspace' : 'package'} has several binary targets: ${describe(all)}; which one is the app?`, {
    hint: `add main: ${all[0]} (or another of them) to unik.yaml, or set default-run = "<name>" in [package] of Cargo.toml`,
  });
}

export interface CargoPlan {
  args: string[];
  env: Record<string, string>;
  /** where cargo writes the binaries */
  outDir: string;
}

/**
 * The `cargo build` invocation (pure, for tests). Release: --release --locked, symbols stripped
 * (CARGO_PROFILE_RELEASE_STRIP=symbols) and host paths remapped so the binary does not depend on where the
 * project lives (reproducible). Debug: the dev profile with full debuginfo and no stripping.
 */
export function cargoBuildPlan(o: {
  mode: BuildMode; target: string; bins: string[]; workspaceRoot: string; cargoHome: string; targetDir: string; baseRustflags?: string[];
}): CargoPlan {
  const release = o.mode === 'release';
  const args = ['build', ...(release ? ['--release', '--locked'] : []), '--target', o.target, ...o.bins.flatMap((b) => ['--bin', b])];
  const env: Record<string, string> = {
    CARGO_HOME: o.cargoHome,
    CARGO_TARGET_DIR: o.targetDir,
    CARGO_TERM_COLOR: 'never',
    CARGO_TERM_PROGRESS_WHEN: 'never',
  };
  if (release) {
    env.CARGO_PROFILE_RELEASE_STRIP = 'symbols';
    // rustc applies the last matching remap: the target dir and cargo home (usually inside the project's
    // .unikctl/cache) come after the project root; build-script outputs (OUT_DIR) live in the target dir
    const flags = [
      ...(o.baseRustflags ?? []),
      `--remap-path-prefix=${o.workspaceRoot}=/src`, `--remap-path-prefix=${o.targetDir}=/target`, `--remap-path-prefix=${o.cargoHome}=/cargo`,
    ];
    env.CARGO_ENCODED_RUSTFLAGS = flags.join('\x1f');
  } else {
    env.CARGO_PROFILE_DEV_DEBUG = 'full';
    env.CARGO_PROFILE_DEV_STRIP = 'none';
  }
  return { args, env, outDir: join(o.targetDir, o.target, release ? 'release' : 'debug') };
}

/** RUSTFLAGS the user already set (CARGO_ENCODED_RUSTFLAGS wins over RUSTFLAGS, as in cargo). */
function userRustflags(env: NodeJS.ProcessEnv): string[] {
  if (env.CARGO_ENCODED_RUSTFLAGS) return env.CARGO_ENCODED_RUSTFLAGS.split('\x1f').filter(Boolean);
  return (env.RUSTFLAGS ?? '').split(/\s+/).filter(Boolean);
}

/** musl when its standard library is installed for the active toolchain (UNIKCTL_RUST_TARGET overrides). */
async function chooseTarget(ctx: BuildContext, env: NodeJS.ProcessEnv): Promise<string> {
  const forced = ctx.env.UNIKCTL_RUST_TARGET;
  if (forced) return forced;
  const rustc = requireTool('rustc', env, INSTALL_RUST);
  const r = await run([rustc, '--print', 'sysroot'], { cwd: ctx.dir, env });
  const sysroot = r.stdout.trim();
  if (r.code === 0 && sysroot && existsSync(join(sysroot, 'lib', 'rustlib', MUSL_TARGET, 'lib'))) return MUSL_TARGET;
  ctx.log(`the ${MUSL_TARGET} target is not installed (rustup target add ${MUSL_TARGET} gives a static binary); building for ${GNU_TARGET} with its shared-library closure`);
  return GNU_TARGET;
}

/** A musl failure caused by C code or linking (a -sys crate, cc, pkg-config), not by the Rust sources: worth retrying with glibc. */
export function isNativeToolchainFailure(output: string): boolean {
  return /failed to run custom build command|linking with `|error: linker|could not find native static library|unable to find library|musl-gcc|pkg-config/.test(output);
}

/** The user's cargo configuration (registry mirrors, source replacement) carried into the pack's own cargo home. */
function seedCargoConfig(ctx: BuildContext, cargoHome: string): void {
  const userHome = ctx.env.CARGO_HOME ?? join(ctx.env.HOME ?? homedir(), '.cargo');
  if (resolve(userHome) === resolve(cargoHome)) return;
  mkdirSync(cargoHome, { recursive: true });
  for (const f of ['config.toml', 'config']) {
    const src = join(userHome, f);
    const dst = join(cargoHome, f);
    if (!existsSync(src)) continue;
    if (existsSync(dst) && readFileSync(dst).equals(readFileSync(src))) continue;
    copyFileSync(src, dst);
  }
}

/**
 * Rust: `cargo build` for a static musl binary when that target is installed (nothing else in the image),
 * else a glibc binary plus its shared-library closure. The cargo home (registry + git caches) and the target
 * directory live in .unikctl/cache (BLD-5).
 */
export const rustPack: Pack = {
  name: 'rust',
  markers: 'Cargo.toml',
  detect: (dir) => hasFile(dir, 'Cargo.toml'),
  async build(ctx, rootfs) {
    const cargo = requireTool('cargo', ctx.env, INSTALL_RUST);
    const cargoHome = join(ctx.cacheDir, 'cargo');
    const targetDir = join(ctx.cacheDir, 'cargo-target');
    seedCargoConfig(ctx, cargoHome);
    const baseEnv: NodeJS.ProcessEnv = { ...ctx.env, CARGO_HOME: cargoHome, CARGO_TARGET_DIR: targetDir, CARGO_TERM_COLOR: 'never' };
    delete baseEnv.RUSTFLAGS;
    delete baseEnv.CARGO_ENCODED_RUSTFLAGS;

    const versions = await run([cargo, '--version'], { cwd: ctx.dir, env: baseEnv });
    if (versions.code !== 0) {
      throw new UserError('E_TOOLCHAIN_MISSING', `cargo is on PATH but does not run: ${`${versions.stderr}${versions.stdout}`.trim().split('\n').slice(-3).join(' ')}`, {
        hint: 'install a Rust toolchain (e.g. `rustup default stable`) and make sure `cargo --version` works',
      });
    }

    const m = await run([cargo, 'metadata', '--format-version', '1', '--no-deps'], { cwd: ctx.dir, env: baseEnv });
    if (m.code !== 0) throw compileFailed('cargo metadata (reading Cargo.toml)', m);
    const meta = JSON.parse(m.stdout) as CargoMetadata;
    const choice = selectBinaries(meta, ctx.dir, ctx.config?.run.command, ctx.config?.main);

    const lockFile = join(meta.workspace_root, 'Cargo.lock');
    requireLock(ctx, existsSync(lockFile), 'there is no Cargo.lock', 'run `cargo generate-lockfile` (or `cargo build`) and commit Cargo.lock');

    let target = await chooseTarget(ctx, baseEnv);
    const build = async (t: string): Promise<{ plan: CargoPlan; r: Awaited<ReturnType<typeof run>> }> => {
      const plan = cargoBuildPlan({ mode: ctx.mode, target: t, bins: choice.bins, workspaceRoot: meta.workspace_root, cargoHome, targetDir, baseRustflags: userRustflags(ctx.env) });
      ctx.log(`cargo ${plan.args.join(' ')}`);
      const r = await run([cargo, ...plan.args], { cwd: ctx.dir, env: { ...baseEnv, SOURCE_DATE_EPOCH: '0', ...plan.env }, onLine: ctx.log });
      return { plan, r };
    };
    let { plan, r } = await build(target);
    if (r.code !== 0 && target === MUSL_TARGET && !ctx.env.UNIKCTL_RUST_TARGET && isNativeToolchainFailure(`${r.stdout}\n${r.stderr}`)) {
      ctx.warn(`the static ${MUSL_TARGET} build failed in native (C) code or linking; retrying for ${GNU_TARGET} with the shared-library closure`);
      target = GNU_TARGET;
      ({ plan, r } = await build(target));
    }
    if (r.code !== 0) throw compileFailed('cargo build', r);

    const artifacts = [];
    const guestPaths: string[] = [];
    for (const bin of choice.bins) {
      const out = join(plan.outDir, bin);
      if (!existsSync(out)) throw new UserError('E_ARTIFACT_MISSING', `cargo build finished but ${out} does not exist`, { hint: 'check the [[bin]] targets in Cargo.toml' });
      const guest = `/app/${bin}`;
      rootfs.addFile(out, guest);
      guestPaths.push(guest);
      artifacts.push({ path: guest, size: statSync(out).size });
    }
    const libs = rootfs.addLibraryClosure(guestPaths);
    addRuntimeFiles(ctx, rootfs, '/app', ['.rs']);
    ctx.log(libs > 0 ? `added ${libs} shared libraries (the ELF closure of the ${target} binary)` : `static ${target} binary: no shared libraries needed`);

    const rustc = (await run(['rustc', '--version'], { cwd: ctx.dir, env: baseEnv }).catch(() => null))?.stdout.trim() ?? '';
    const runEnv: Record<string, string> = ctx.mode === 'debug' ? { RUST_BACKTRACE: '1' } : {};
    return {
      run: { command: [`/app/${choice.command}`], workdir: '/app', memoryMiB: 64, env: runEnv },
      toolchain: { cargo: versions.stdout.trim(), ...(rustc ? { rustc } : {}), target },
      inputs: {
        'Cargo.toml': fileDigest(join(ctx.dir, 'Cargo.toml')) ?? '',
        ...(existsSync(lockFile) ? { 'Cargo.lock': fileDigest(lockFile) ?? '' } : {}),
        sources: treeDigest(ctx.dir),
      },
      artifacts,
      programs: Object.fromEntries(choice.bins.map((b) => [b, [`/app/${b}`]])),
    };
  },
};
