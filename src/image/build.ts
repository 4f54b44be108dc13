import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { guestInitPath, type HomeLayout } from '../paths.js';
import { locateKernel } from '../kernel/kernel.js';
import { sanitizeName } from '../util/ids.js';
import { makeErofs, writeImage, type ImageManifest, type RunConfig } from './image.js';
import { processStartTime } from '../util/proc.js';
import { insideProject } from './project-path.js';
import type { BuildMode, Pack, PackResult } from './pack.js';
import { choosePack } from './packs/index.js';
import { formatRef, normalizeRef, PackageStore } from './package-store.js';
import { RootfsBuilder } from './rootfs.js';
import { loadUnikYaml, type UnikYaml } from './unikyaml.js';
import { isElfFile } from './elf.js';
import { fileDigest } from './inputs.js';
import { attestImage, defaultBuilderId, type BuildFacts } from './attest.js';
import { keyIdOf, loadPrivateKey } from './dsse.js';
import { isPackageStart, mapStartCommand, procfileStart, type StartCommand } from './procfile.js';

export interface BuildProgress {
  step(message: string): void;
  line(text: string): void;
  warn(message: string): void;
}

export const silentProgress: BuildProgress = { step: () => {}, line: () => {}, warn: () => {} };

export interface BuildOptions {
  dir: string;
  mode: BuildMode;
  layout: HomeLayout;
  rootfsDir?: string;
  /** package tag to record (default latest) */
  tag?: string;
  progress?: BuildProgress;
  env?: NodeJS.ProcessEnv;
  /** Ed25519 private key (PEM) that signs the image; default UNIKCTL_SIGNING_KEY, none: unsigned (the SBOM is written anyway) */
  signKey?: string;
}

export interface BuildResult {
  name: string;
  ref: string;
  pack: string;
  mode: BuildMode;
  imageDir: string;
  packageDir: string;
  manifest: ImageManifest;
  metadataFile: string;
  durationMs: number;
  /** key id of the signature (null: unsigned) */
  signedBy: string | null;
}

/** Checks that make a project buildable, cheap enough to run before an async deploy is accepted. */
export function inspectProject(dirArg: string, rootfsDir?: string): { dir: string; config: UnikYaml | null; pack: Pack; alsoMatched: string[]; name: string; rootfsDir: string | undefined } {
  const dir = resolve(dirArg);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UserError('E_INVALID_ARGUMENT', `${dirArg} is not a directory`, { hint: 'give the project directory to build (default: .)' });
  }
  const config = loadUnikYaml(dir);
  const extraRoot = rootfsDir ?? (config?.rootfs ? insideProject(dir, config.rootfs, 'rootfs') : undefined);
  if (extraRoot) {
    RootfsBuilder.assertNotDockerfile(extraRoot);
    if (!existsSync(extraRoot) || !statSync(extraRoot).isDirectory()) {
      throw new UserError('E_INVALID_ARGUMENT', `rootfs ${extraRoot} is not a directory`, { hint: 'point --rootfs (or rootfs: in unik.yaml) at a directory to merge into the image root' });
    }
  }
  const { pack, alsoMatched } = choosePack(dir, config);
  // a Procfile line that needs a shell fails the deploy request, not the build minutes later
  if (!config?.run.command) procfileStart(dir, config?.process, () => {});
  return { dir, config, pack, alsoMatched, name: config?.name ?? sanitizeName(basename(dir)), rootfsDir: extraRoot };
}

/**
 * The image's run configuration. Start command precedence: unik.yaml run.command > the Procfile's web process
 * (or `process:`), mapped to the image's programs > what the pack detected.
 */
export function mergeRun(pack: PackResult, packName: string, config: UnikYaml | null, start: StartCommand | null): RunConfig {
  const y = config?.run;
  const fromProcfile = !y?.command && start ? mapStartCommand(start, packName, pack.programs ?? {}, pack.paths) : null;
  return {
    // a pack that resolved unik.yaml's own run.command (python console scripts) has the final word on it; a Procfile
    // command the pack also saw is mapped here, with its $VAR templates
    command: pack.commandFromConfig && y?.command ? pack.run.command : y?.command ?? fromProcfile ?? pack.run.command,
    ...(fromProcfile && start?.expand ? { expand: true } : {}),
    ...(fromProcfile && start && Object.keys(start.envTemplates).length > 0 ? { envTemplates: start.envTemplates } : {}),
    env: { ...(pack.run.env ?? {}), ...(fromProcfile ? start?.env : {}), ...(y?.env ?? {}) },
    workdir: y?.workdir ?? pack.run.workdir ?? '/',
    memoryMiB: y?.memoryMiB ?? pack.run.memoryMiB ?? 128,
    ports: y?.ports ?? pack.run.ports ?? [],
  };
}

function requireInit(): string {
  const init = guestInitPath();
  if (!existsSync(init)) {
    throw new UserError('E_INIT_MISSING', `the guest init ${init} is not built`, { hint: 'run make setup (or make -C guest)' });
  }
  return init;
}

/** The part of a build that runs the project's own tools: pack → root filesystem tree → erofs file. */
export interface RootfsBuild {
  name: string;
  pack: string;
  run: RunConfig;
  result: PackResult;
  /** the packed root filesystem, inside the work directory */
  erofsFile: string;
}

/**
 * Runs the pack (the project's compilers, package managers and build.command) and packs the root filesystem.
 * Everything it writes goes to `workDir` and `cacheDir`: this is what a sandboxed build runs.
 */
export async function buildRootfs(opts: {
  dir: string; mode: BuildMode; cacheDir: string; workDir: string; rootfsDir?: string; env: NodeJS.ProcessEnv; progress: BuildProgress;
  /** the image name when unik.yaml names none (a copied project's directory name means nothing) */
  defaultName?: string;
}): Promise<RootfsBuild> {
  const { progress } = opts;
  const inspected = inspectProject(opts.dir, opts.rootfsDir);
  const { dir, config, pack, alsoMatched, rootfsDir } = inspected;
  const name = config?.name ?? opts.defaultName ?? inspected.name;
  if (alsoMatched.length > 0) {
    progress.warn(`the project also matches the ${alsoMatched.join(', ')} pack(s); using ${pack.name} by precedence (set pack: in unik.yaml to choose)`);
  }
  const init = requireInit();
  mkdirSync(opts.cacheDir, { recursive: true });
  const staging = join(opts.workDir, 'rootfs');
  progress.step(`building ${name} with the ${pack.name} pack (${opts.mode})`);
  const rootfs = new RootfsBuilder(staging);
  rootfs.addFile(init, '/init');
  // a Procfile's start command reaches the pack as run.command would (which scripts to keep, which binary to ship)
  let start = config?.run.command ? null : procfileStart(dir, config?.process, (m) => progress.warn(m));
  if (start && pack.name === 'node' && isPackageStart(start)) {
    // no package manager in the guest: the node pack runs what package.json's start script runs, with node itself
    progress.step(`the ${start.source} runs package.json's start script: the node pack starts it with node directly`);
    start = null;
  }
  if (config?.run.command && config.process) progress.warn(`process: ${config.process} is ignored: unik.yaml run.command is the start command`);
  if (start) progress.step(`start command from the ${start.source}: ${start.argv.join(' ')}`);
  const packConfig: UnikYaml | null = start ? { ...(config ?? { run: { env: {} } }), run: { ...(config?.run ?? { env: {} }), command: start.argv } } : config;
  const result = await pack.build({
    dir, mode: opts.mode, cacheDir: opts.cacheDir, workDir: opts.workDir, config: packConfig, env: opts.env,
    log: (l) => progress.line(l), warn: (m) => progress.warn(m),
  }, rootfs);
  const run = mergeRun(result, pack.name, config, start); // before packing: a Procfile program the image lacks fails fast
  if (rootfsDir) {
    progress.step(`merging ${rootfsDir} into the root filesystem`);
    rootfs.mergeTree(rootfsDir);
  }
  progress.step('packing the root filesystem (erofs)');
  const erofsFile = join(opts.workDir, 'rootfs.erofs');
  await makeErofs(staging, erofsFile);
  rmSync(staging, { recursive: true, force: true });
  return { name, pack: pack.name, run, result, erofsFile };
}

/** A private work directory under $UNIKCTL_HOME/work (never in the project: a killed build leaves nothing there). */
export function newWorkDir(layout: HomeLayout): string {
  const root = join(layout.home, 'work');
  mkdirSync(root, { recursive: true });
  // leftovers of builds whose process is gone (killed by a destroy, a crash) are swept by the next build
  for (const e of readdirSync(root)) {
    const pid = Number(e.split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processStartTime(pid) === null) rmSync(join(root, e), { recursive: true, force: true });
  }
  return mkdtempSync(join(root, `${process.pid}-`));
}

/** CLI-1: source dir → image (kernel + read-only erofs root + manifest) → local package store. */
export async function buildProject(opts: BuildOptions): Promise<BuildResult> {
  const started = Date.now();
  const progress = opts.progress ?? silentProgress;
  const dir = resolve(opts.dir);
  const unikDir = join(dir, '.unikctl');
  const env = opts.env ?? process.env;
  // the project's own mistakes (no pack, a bad unik.yaml) are reported before this host's (no kernel)
  const name0 = inspectProject(dir, opts.rootfsDir).name;
  const kernel = locateKernel(opts.layout, opts.mode);
  // a bad key fails before minutes of building
  const keyFile = opts.signKey ?? (env.UNIKCTL_SIGNING_KEY || undefined);
  const key = keyFile ? loadPrivateKey(keyFile) : null;
  const workDir = newWorkDir(opts.layout);
  try {
    // BLD-5: caches live in the project unless the caller points them elsewhere
    const cacheDir = env.UNIKCTL_BUILD_CACHE_ROOT ? join(env.UNIKCTL_BUILD_CACHE_ROOT, name0) : join(unikDir, 'cache');
    const built = await buildRootfs({ dir, mode: opts.mode, cacheDir, workDir, ...(opts.rootfsDir ? { rootfsDir: opts.rootfsDir } : {}), env, progress });
    progress.step('writing the image (erofs root filesystem, kernel, manifest)');
    const imageDir = join(unikDir, 'image');
    const facts: BuildFacts = { builderId: defaultBuilderId(env), toolchain: built.result.toolchain, inputs: built.result.inputs, projectDir: dir, startedOn: new Date(started) };
    let signedBy: string | null = null;
    const manifest = await writeImage({
      outDir: imageDir, rootfs: { erofsFile: built.erofsFile }, kernel, name: built.name, pack: built.pack, mode: opts.mode, run: built.run,
      finish: async (d, m) => {
        progress.step(key ? `signing the image (key ${keyIdOf(key)}) and writing its SBOM` : 'writing the SBOM (unsigned: no signing key)');
        signedBy = (await attestImage(d, m, { facts, key, scratch: workDir })).keyid;
      },
    });
    const metadataFile = writePackMetadata(unikDir, { pack: built.pack, mode: opts.mode, result: built.result, manifest });
    const ref = normalizeRef(`${built.name}:${opts.tag ?? 'latest'}`);
    const packageDir = new PackageStore(opts.layout).put(ref, imageDir);
    return { name: built.name, ref: formatRef(ref), pack: built.pack, mode: opts.mode, imageDir, packageDir, manifest, metadataFile, durationMs: Date.now() - started, signedBy };
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

function writePackMetadata(unikDir: string, m: { pack: string; mode: BuildMode; result: PackResult; manifest: ImageManifest }): string {
  const dir = join(unikDir, 'native');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'pack-metadata.json');
  const metadata = {
    pack: m.pack,
    mode: m.mode,
    toolchain: m.result.toolchain,
    inputs: m.result.inputs,
    artifacts: m.result.artifacts,
    image: {
      size: m.manifest.size,
      kernel: { sha256: m.manifest.kernel.sha256, size: m.manifest.kernel.size },
      rootfs: { sha256: m.manifest.rootfs.sha256, size: m.manifest.rootfs.size },
    },
  };
  writeFileSync(file, `${JSON.stringify(metadata, null, 2)}\n`);
  return file;
}

/** BLD-10: an ELF binary (static as is, dynamic with its library closure) → image in `outDir`. */
export async function buildBinaryImage(opts: {
  binary: string; outDir: string; layout: HomeLayout; mode: BuildMode; name: string; rootfsDir?: string; workDir: string;
  /** signs the image (see BuildOptions.signKey); the SBOM is written either way */
  signKey?: string | null;
}): Promise<ImageManifest> {
  if (!isElfFile(opts.binary)) {
    throw new UserError('E_NOT_ELF', `${opts.binary} is not an ELF executable`, { hint: 'deploy a project directory, a package, or a Linux x86-64 binary' });
  }
  const kernel = locateKernel(opts.layout, opts.mode);
  const key = opts.signKey ? loadPrivateKey(opts.signKey) : null;
  const started = new Date();
  const staging = join(opts.workDir, 'rootfs');
  rmSync(staging, { recursive: true, force: true });
  const rootfs = new RootfsBuilder(staging);
  rootfs.addFile(requireInit(), '/init');
  const guest = `/app/${basename(opts.binary)}`;
  rootfs.addFile(opts.binary, guest);
  rootfs.addLibraryClosure([guest]);
  if (opts.rootfsDir) rootfs.mergeTree(opts.rootfsDir);
  try {
    return await writeImage({
      outDir: opts.outDir, rootfs: { stagingDir: staging }, kernel, name: opts.name, pack: 'binary', mode: opts.mode,
      run: { command: [guest], env: {}, workdir: '/app', memoryMiB: 64, ports: [] },
      finish: async (d, m) => {
        const facts: BuildFacts = { builderId: defaultBuilderId(), toolchain: {}, inputs: { [basename(opts.binary)]: fileDigest(opts.binary) ?? '' }, startedOn: started };
        await attestImage(d, m, { facts, key, scratch: opts.workDir });
      },
    });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
