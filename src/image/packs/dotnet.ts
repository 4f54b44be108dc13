import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { UserError } from '../../errors.js';
import { run } from '../../util/exec.js';
import { DEFAULT_SEARCH_DIRS } from '../elf.js';
import { fileDigest, treeDigest } from '../inputs.js';
import type { BuildContext, BuildMode, Pack, PackArtifact } from '../pack.js';
import type { RootfsBuilder } from '../rootfs.js';
import type { UnikYaml } from '../unikyaml.js';
import { compileFailed, hasFile, requireLock, requireTool } from './common.js';

export const DOTNET_RID = 'linux-x64';
const INSTALL_DOTNET = 'install the .NET 8 SDK (https://dotnet.microsoft.com/download, or `apt-get install dotnet-sdk-8.0`) and make sure `dotnet --version` works';
const LOCK_FIX = 'set <RestorePackagesWithLockFile>true</RestorePackagesWithLockFile> in the project, run '
  + '`dotnet restore -r linux-x64 -p:SelfContained=true -p:PublishTrimmed=true` and commit packages.lock.json';

/** What the pack reads from a .csproj (plain text matching: MSBuild evaluation needs the SDK). */
export interface CsprojInfo {
  path: string;
  assemblyName: string;
  sdk: string;
  isExe: boolean;
  /** an explicit <PublishTrimmed> in the project; null when it does not say */
  publishTrimmed: boolean | null;
  lockFile: string;
}

function prop(xml: string, name: string): string | undefined {
  return new RegExp(`<${name}(?:\\s[^>]*)?>\\s*([^<]*?)\\s*</${name}>`, 'i').exec(xml)?.[1];
}

export function readCsproj(path: string): CsprojInfo {
  const xml = readFileSync(path, 'utf8').replace(/<!--[\s\S]*?-->/g, '');
  const sdk = /<Project\s[^>]*Sdk\s*=\s*"([^"]+)"/i.exec(xml)?.[1] ?? /<Sdk\s+Name\s*=\s*"([^"]+)"/i.exec(xml)?.[1] ?? 'Microsoft.NET.Sdk';
  const outputType = prop(xml, 'OutputType')?.toLowerCase();
  const isTest = /Include\s*=\s*"Microsoft\.NET\.Test\.Sdk"/i.test(xml) || prop(xml, 'IsTestProject')?.toLowerCase() === 'true';
  // the Web and Worker SDKs default to an executable; Microsoft.NET.Sdk defaults to a library
  const exeSdk = /^Microsoft\.NET\.Sdk\.(Web|Worker)\b/i.test(sdk);
  const isExe = !isTest && (outputType === 'exe' || outputType === 'winexe' || (outputType === undefined && exeSdk));
  const trimmed = prop(xml, 'PublishTrimmed')?.toLowerCase();
  const lockProp = prop(xml, 'NuGetLockFilePath');
  const dir = dirname(path);
  return {
    path,
    assemblyName: prop(xml, 'AssemblyName') || basename(path).replace(/\.csproj$/i, ''),
    sdk,
    isExe,
    publishTrimmed: trimmed === 'true' ? true : trimmed === 'false' ? false : null,
    lockFile: lockProp ? (isAbsolute(lockProp) ? lockProp : join(dir, lockProp.replace(/\\/g, '/'))) : join(dir, 'packages.lock.json'),
  };
}

/** The C# projects a .sln lists, as paths relative to the solution (solution folders are skipped). */
export function parseSln(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^Project\("\{[^}]+\}"\)\s*=\s*"[^"]*",\s*"([^"]+)"/gm)) {
    const p = (m[1] as string).replace(/\\/g, '/');
    if (/\.csproj$/i.test(p)) out.push(p);
  }
  return out;
}

/**
 * The project to publish: the *.csproj at the top of DIR, else the projects of the *.sln there. With several,
 * the one unik.yaml run.command names (by assembly name), else the only executable (OutputType Exe, or the
 * Web/Worker SDK); several executables need run.command.
 */
export function findDotnetProject(dir: string, config: UnikYaml | null): CsprojInfo {
  const top = readdirSync(dir).sort();
  let candidates = top.filter((f) => /\.csproj$/i.test(f)).map((f) => join(dir, f));
  if (candidates.length === 0) {
    const fromSln = top.filter((f) => /\.sln$/i.test(f))
      .flatMap((sln) => parseSln(readFileSync(join(dir, sln), 'utf8')).map((p) => resolve(dir, p)));
    candidates = [...new Set(fromSln)].filter((p) => existsSync(p));
  }
  if (candidates.length === 0) {
    throw new UserError('E_INVALID_ARGUMENT', `no C# project: ${dir} has no *.csproj and its *.sln lists none that exist`, {
      hint: 'put the app\'s .csproj (or a .sln listing it) at the top of the project directory',
    });
  }
  const projects = candidates.map(readCsproj);
  const rel = (p: CsprojInfo): string => relative(dir, p.path) || basename(p.path);
  const wanted = config?.run.command?.[0] ? basename(config.run.command[0]) : undefined;
  if (wanted) {
    const named = projects.find((p) => p.assemblyName === wanted);
    if (named) return named;
  }
  const exes = projects.filter((p) => p.isExe);
  if (projects.length === 1) {
    const only = projects[0] as CsprojInfo;
    if (only.isExe) return only;
    throw new UserError('E_INVALID_ARGUMENT', `${rel(only)} is not an executable project (no <OutputType>Exe</OutputType>)`, {
      hint: 'add <OutputType>Exe</OutputType> to the project (or use the Microsoft.NET.Sdk.Web SDK)',
    });
  }
  if (exes.length === 1) return exes[0] as CsprojInfo;
  if (exes.length === 0) {
    throw new UserError('E_INVALID_ARGUMENT', `none of the projects (${projects.map(rel).join(', ')}) is an executable (OutputType Exe)`, {
      hint: 'add <OutputType>Exe</OutputType> to the app\'s project',
    });
  }
  throw new UserError('E_INVALID_ARGUMENT', `several executable projects (${exes.map(rel).join(', ')}): which one is the app?`, {
    hint: `say it in unik.yaml: run: { command: [/app/${exes[0]?.assemblyName}] } (the assembly name of the project to publish)`,
  });
}

export interface DotnetPlanOptions {
  /** trim the release publish (default true; a project that says <PublishTrimmed>false</PublishTrimmed> opts out) */
  trim?: boolean;
}

/**
 * `dotnet restore`: linux-x64, self-contained, with the trimming tool pack in the graph so that the lock file
 * matches in both modes; release restores in --locked-mode (BLD-4: packages.lock.json must match exactly).
 */
export function dotnetRestoreArgs(mode: BuildMode, project: string, o: DotnetPlanOptions = {}): string[] {
  const trim = o.trim ?? true;
  return [
    'restore', project, '-r', DOTNET_RID, '-p:SelfContained=true', ...(trim ? ['-p:PublishTrimmed=true'] : []),
    ...(mode === 'release' ? ['--locked-mode'] : []), '--disable-build-servers',
  ];
}

/**
 * `dotnet publish` after the restore above. Release: Release configuration, self-contained, trimmed, invariant
 * globalization, no PDBs, deterministic CI paths. Debug: Debug configuration, untrimmed, portable PDBs kept.
 */
export function dotnetPublishArgs(mode: BuildMode, project: string, outDir: string, o: DotnetPlanOptions = {}): string[] {
  const common = ['publish', project, '--no-restore', '-r', DOTNET_RID, '--self-contained', 'true', '-p:InvariantGlobalization=true', '-p:UseSharedCompilation=false', '--disable-build-servers'];
  const byMode = mode === 'release'
    ? ['-c', 'Release', `-p:PublishTrimmed=${o.trim ?? true}`, '-p:DebugType=None', '-p:DebugSymbols=false', '-p:ContinuousIntegrationBuild=true', '-p:Deterministic=true']
    : ['-c', 'Debug', '-p:PublishTrimmed=false', '-p:DebugType=portable', '-p:DebugSymbols=true', '-p:Optimize=false'];
  return [...common, ...byMode, '-o', outDir];
}

export function dotnetPlan(mode: BuildMode, project: string, outDir: string, o: DotnetPlanOptions = {}): { restore: string[]; publish: string[] } {
  return { restore: dotnetRestoreArgs(mode, project, o), publish: dotnetPublishArgs(mode, project, outDir, o) };
}

/** The SDK's environment: caches in .unikctl/cache (BLD-5), no telemetry, no first-run work, no lingering build servers. */
export function dotnetEnv(base: NodeJS.ProcessEnv, cacheDir: string): NodeJS.ProcessEnv {
  return {
    ...base,
    NUGET_PACKAGES: join(cacheDir, 'nuget'),
    NUGET_HTTP_CACHE_PATH: join(cacheDir, 'nuget-http'),
    DOTNET_CLI_TELEMETRY_OPTOUT: '1',
    DOTNET_SKIP_FIRST_TIME_EXPERIENCE: '1',
    DOTNET_NOLOGO: '1',
    DOTNET_GENERATE_ASPNET_CERTIFICATE: 'false',
    DOTNET_CLI_USE_MSBUILD_SERVER: '0',
    MSBUILDDISABLENODEREUSE: '1',
    SOURCE_DATE_EPOCH: '0',
  };
}

/** The runtime's environment in the guest. */
export function dotnetRunEnv(mode: BuildMode, web: boolean): Record<string, string> {
  return {
    DOTNET_SYSTEM_GLOBALIZATION_INVARIANT: '1',
    DOTNET_gcServer: '0',
    // release: no diagnostics IPC socket / debugger / profiler attach in the VM
    ...(mode === 'release' ? { DOTNET_EnableDiagnostics: '0' } : {}),
    // Kestrel's default is localhost:5000; the guest must listen on every (IPv4) address
    ...(web ? { ASPNETCORE_HTTP_PORTS: '8080' } : {}),
  };
}

/** Native files without which the runtime cannot start: their closure must be complete. */
const CORE_NATIVE = /\/(libhostfxr|libhostpolicy|libcoreclr|libclrjit|libSystem\.Native)\.so$/;

function findHostLib(name: string): string | null {
  for (const d of DEFAULT_SEARCH_DIRS) if (existsSync(join(d, name))) return join(d, name);
  return null;
}

/**
 * The shared-library closure of every native file of the published folder. The apphost and the runtime core
 * must resolve completely; an optional native shim whose library the host lacks is left out with a warning
 * (the runtime loads those lazily, only when the app uses the feature).
 */
function addNativeClosure(ctx: BuildContext, rootfs: RootfsBuilder, apphost: string): number {
  let n = 0;
  for (const guest of rootfs.elfFilesUnder('/app')) {
    try {
      n += rootfs.addLibraryClosure([guest]);
    } catch (e) {
      if (guest === apphost || CORE_NATIVE.test(guest) || !(e instanceof UserError)) throw e;
      ctx.warn(`${guest}: ${e.message}; left out (the app fails only if it uses that feature)`);
    }
  }
  // System.Security.Cryptography.Native.OpenSsl dlopen()s OpenSSL: ship it (and CA certificates) when the app kept crypto
  if (existsSync(rootfs.hostPath('/app/System.Security.Cryptography.dll'))) {
    const added: string[] = [];
    for (const lib of ['libssl.so.3', 'libcrypto.so.3']) {
      const host = findHostLib(lib);
      if (!host) continue;
      const guest = `${dirname(host)}/${lib}`;
      rootfs.addFile(host, guest);
      added.push(guest);
    }
    if (added.length > 0) n += added.length + rootfs.addLibraryClosure(added);
    if (existsSync('/etc/ssl/certs/ca-certificates.crt')) rootfs.addFile('/etc/ssl/certs/ca-certificates.crt', '/etc/ssl/certs/ca-certificates.crt');
    if (added.length === 0) ctx.warn('the app uses System.Security.Cryptography but this host has no libssl.so.3/libcrypto.so.3 to ship; TLS will fail in the VM');
  }
  return n;
}

/**
 * .NET: `dotnet restore` + `dotnet publish` self-contained for linux-x64 (trimmed in release); the published
 * folder becomes /app with the apphost as the command, plus the host shared libraries its native files need.
 */
export const dotnetPack: Pack = {
  name: 'dotnet',
  markers: '*.csproj or *.sln',
  detect: (dir) => hasFile(dir, /\.(csproj|sln)$/),
  async build(ctx, rootfs) {
    const dotnet = requireTool('dotnet', ctx.env, INSTALL_DOTNET);
    const env = dotnetEnv(ctx.env, ctx.cacheDir);
    const proj = findDotnetProject(ctx.dir, ctx.config);
    const projDir = dirname(proj.path);

    const version = await run([dotnet, '--version'], { cwd: projDir, env });
    if (version.code !== 0) {
      throw new UserError('E_TOOLCHAIN_MISSING', `dotnet is on PATH but no usable SDK was found: ${`${version.stderr}${version.stdout}`.trim().split('\n').slice(-3).join(' ')}`, {
        hint: `${INSTALL_DOTNET} (a runtime-only install cannot build; a global.json may pin an SDK version that is not installed)`,
      });
    }
    const sdkVersion = version.stdout.trim();

    requireLock(ctx, existsSync(proj.lockFile), `there is no ${relative(ctx.dir, proj.lockFile)}`, LOCK_FIX);

    const trim = proj.publishTrimmed !== false;
    if (!trim && ctx.mode === 'release') ctx.log(`${basename(proj.path)} sets PublishTrimmed=false: publishing untrimmed`);
    const outDir = join(ctx.workDir, 'dotnet-publish');
    const plan = dotnetPlan(ctx.mode, proj.path, outDir, { trim });

    for (const [what, args] of [['dotnet restore', plan.restore], ['dotnet publish', plan.publish]] as const) {
      ctx.log(`dotnet ${args.map((a) => (a === proj.path ? relative(ctx.dir, a) || a : a === outDir ? '<work>/dotnet-publish' : a)).join(' ')}`);
      const r = await run([dotnet, ...args], { cwd: projDir, env, onLine: ctx.log });
      if (r.code !== 0) {
        const err = compileFailed(what, r);
        if (what === 'dotnet restore' && /NU1004|NU1403|locked mode/i.test(`${r.stdout}${r.stderr}`)) {
          throw new UserError('E_LOCK_REQUIRED', `packages.lock.json does not match the project (restore in locked mode): ${err.message}`, {
            hint: 'regenerate it with `dotnet restore -r linux-x64 -p:SelfContained=true -p:PublishTrimmed=true --force-evaluate` and commit it '
              + '(trimming adds the SDK\'s Microsoft.NET.ILLink.Tasks package, whose version follows the SDK)',
          });
        }
        throw err;
      }
    }

    const apphost = join(outDir, proj.assemblyName);
    if (!existsSync(apphost)) {
      throw new UserError('E_ARTIFACT_MISSING', `dotnet publish finished but the apphost ${proj.assemblyName} is not in the output`, {
        hint: 'make sure the project is an executable (OutputType Exe) and does not set UseAppHost=false',
      });
    }
    rootfs.addTree(outDir, '/app');
    const guestApphost = `/app/${proj.assemblyName}`;
    const libs = addNativeClosure(ctx, rootfs, guestApphost);
    ctx.log(`added ${libs} host shared libraries (the closure of the runtime's native files)`);

    const artifacts: PackArtifact[] = [{ path: guestApphost, size: statSync(apphost).size }];
    const dll = join(outDir, `${proj.assemblyName}.dll`);
    if (existsSync(dll)) artifacts.push({ path: `${guestApphost}.dll`, size: statSync(dll).size });
    const web = /^Microsoft\.NET\.Sdk\.Web\b/i.test(proj.sdk);
    return {
      run: { command: [guestApphost], workdir: '/app', memoryMiB: 256, env: dotnetRunEnv(ctx.mode, web), ...(web ? { ports: [8080] } : {}) },
      toolchain: { dotnet: sdkVersion, rid: DOTNET_RID },
      // the self-contained apphost (web: ./MyApp, or bin/Release/…/MyApp: the last path element is what counts)
      programs: { [proj.assemblyName]: [guestApphost] },
      inputs: {
        [relative(ctx.dir, proj.path)]: fileDigest(proj.path) ?? '',
        ...(existsSync(proj.lockFile) ? { [relative(ctx.dir, proj.lockFile)]: fileDigest(proj.lockFile) ?? '' } : {}),
        sources: treeDigest(ctx.dir, (rel) => !/(^|\/)(bin|obj)\//.test(rel)),
      },
      artifacts,
    };
  },
};
