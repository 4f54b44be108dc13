import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../errors.js';
import { DEFAULT_SEARCH_DIRS } from '../elf.js';
import type { BuildContext, BuildMode } from '../pack.js';
import { RootfsBuilder } from '../rootfs.js';
import type { UnikYaml } from '../unikyaml.js';
import { dotnetPack, dotnetPlan, dotnetPublishArgs, dotnetRestoreArgs, dotnetRunEnv, findDotnetProject, parseSln, readCsproj } from './dotnet.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-dotnet-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function project(files: Record<string, string>, name = 'proj'): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

const EXE = '<Project Sdk="Microsoft.NET.Sdk">\n  <PropertyGroup>\n    <OutputType>Exe</OutputType>\n    <TargetFramework>net8.0</TargetFramework>\n  </PropertyGroup>\n</Project>\n';
const LIB = '<Project Sdk="Microsoft.NET.Sdk">\n  <PropertyGroup>\n    <TargetFramework>net8.0</TargetFramework>\n  </PropertyGroup>\n</Project>\n';
const WEB = '<Project Sdk="Microsoft.NET.Sdk.Web">\n  <PropertyGroup>\n    <TargetFramework>net8.0</TargetFramework>\n    <AssemblyName>Shop.Api</AssemblyName>\n  </PropertyGroup>\n</Project>\n';
const TEST = '<Project Sdk="Microsoft.NET.Sdk">\n  <PropertyGroup><OutputType>Exe</OutputType></PropertyGroup>\n  <ItemGroup><PackageReference Include="Microsoft.NET.Test.Sdk" Version="17.8.0" /></ItemGroup>\n</Project>\n';
const LOCK = '{\n  "version": 1,\n  "dependencies": {\n    "net8.0": {},\n    "net8.0/linux-x64": {}\n  }\n}\n';
const SLN = [
  'Microsoft Visual Studio Solution File, Format Version 12.00',
  'Project("{2150E333-8FDC-42A3-9474-1A3956D46DE8}") = "src", "src", "{11111111-1111-1111-1111-111111111111}"',
  'EndProject',
  'Project("{FAE04EC0-301F-11D3-BF4B-00C04F79EFBC}") = "Shop.Core", "src\\Shop.Core\\Shop.Core.csproj", "{22222222-2222-2222-2222-222222222222}"',
  'EndProject',
  'Project("{9A19103F-16F7-4668-BE54-9A1E7A4F7556}") = "Shop.Api", "src\\Shop.Api\\Shop.Api.csproj", "{33333333-3333-3333-3333-333333333333}"',
  'EndProject',
  'Project("{9A19103F-16F7-4668-BE54-9A1E7A4F7556}") = "Shop.Tests", "test\\Shop.Tests\\Shop.Tests.csproj", "{44444444-4444-4444-4444-444444444444}"',
  'EndProject',
  'Global',
  'EndGlobal',
  '',
].join('\r\n');

const yaml = (command?: string[]): UnikYaml => ({ run: { env: {}, ...(command ? { command } : {}) } });

async function errorOf(p: Promise<unknown>): Promise<UserError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof UserError) return e;
    throw e;
  }
  throw new Error('expected a UserError');
}

describe('dotnet pack: detection and project choice', () => {
  it('detects *.csproj or *.sln at the top of the directory', () => {
    expect(dotnetPack.detect(project({ 'app.csproj': EXE }, 'a'), null)).toBe(true);
    expect(dotnetPack.detect(project({ 'Shop.sln': SLN }, 'b'), null)).toBe(true);
    expect(dotnetPack.detect(project({ 'Program.cs': '' }, 'c'), null)).toBe(false);
    expect(dotnetPack.name).toBe('dotnet');
  });

  it('reads what it needs from a csproj', () => {
    const dir = project({ 'app.csproj': EXE, 'lib.csproj': LIB, 'web.csproj': WEB, 'tests.csproj': TEST, 'untrimmed.csproj': EXE.replace('</OutputType>', '</OutputType>\n<PublishTrimmed>false</PublishTrimmed>\n<NuGetLockFilePath>locks\\app.lock.json</NuGetLockFilePath>') });
    expect(readCsproj(join(dir, 'app.csproj'))).toMatchObject({ assemblyName: 'app', isExe: true, publishTrimmed: null, lockFile: join(dir, 'packages.lock.json') });
    expect(readCsproj(join(dir, 'lib.csproj')).isExe).toBe(false);
    expect(readCsproj(join(dir, 'web.csproj'))).toMatchObject({ assemblyName: 'Shop.Api', isExe: true, sdk: 'Microsoft.NET.Sdk.Web' });
    expect(readCsproj(join(dir, 'tests.csproj')).isExe).toBe(false);
    expect(readCsproj(join(dir, 'untrimmed.csproj'))).toMatchObject({ publishTrimmed: false, lockFile: join(dir, 'locks', 'app.lock.json') });
  });

  it('parses the C# projects of a .sln (not solution folders), with / separators', () => {
    expect(parseSln(SLN)).toEqual(['src/Shop.Core/Shop.Core.csproj', 'src/Shop.Api/Shop.Api.csproj', 'test/Shop.Tests/Shop.Tests.csproj']);
  });

  it('a .sln with several projects: the one executable (not the library, not the tests)', () => {
    const dir = project({ 'Shop.sln': SLN, 'src/Shop.Core/Shop.Core.csproj': LIB, 'src/Shop.Api/Shop.Api.csproj': WEB, 'test/Shop.Tests/Shop.Tests.csproj': TEST });
    const p = findDotnetProject(dir, null);
    expect(p.path).toBe(join(dir, 'src', 'Shop.Api', 'Shop.Api.csproj'));
    expect(p.assemblyName).toBe('Shop.Api');
  });

  it('several executables: unik.yaml run.command chooses, otherwise a clear error', () => {
    const dir = project({ 'Shop.sln': SLN, 'src/Shop.Core/Shop.Core.csproj': EXE, 'src/Shop.Api/Shop.Api.csproj': WEB, 'test/Shop.Tests/Shop.Tests.csproj': TEST });
    let err: unknown;
    try { findDotnetProject(dir, null); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).code).toBe('E_INVALID_ARGUMENT');
    expect((err as UserError).message).toMatch(/several executable projects/);
    expect((err as UserError).hint).toContain('run:');
    expect(findDotnetProject(dir, yaml(['/app/Shop.Core'])).assemblyName).toBe('Shop.Core');
  });

  it('a single library project is not an app', () => {
    const dir = project({ 'lib.csproj': LIB });
    expect(() => findDotnetProject(dir, null)).toThrow(/not an executable project/);
  });

  it('the example: one executable project and a lock file with no packages', () => {
    const dir = resolve(import.meta.dirname, '../../../examples/dotnet-http');
    const p = findDotnetProject(dir, null);
    expect(p).toMatchObject({ assemblyName: 'dotnet-http', isExe: true, publishTrimmed: true });
    const lock = JSON.parse(readFileSync(p.lockFile, 'utf8')) as { version: number; dependencies: Record<string, Record<string, unknown>> };
    expect(lock.version).toBe(1);
    expect(Object.values(lock.dependencies).every((deps) => Object.keys(deps).length === 0)).toBe(true);
  });
});

describe('dotnet pack: the command plan', () => {
  it('release: locked restore, then a trimmed self-contained publish without symbols', () => {
    const plan = dotnetPlan('release', '/p/app.csproj', '/w/out');
    expect(plan.restore).toEqual(['restore', '/p/app.csproj', '-r', 'linux-x64', '-p:SelfContained=true', '-p:PublishTrimmed=true', '--locked-mode', '--disable-build-servers']);
    expect(plan.publish).toEqual([
      'publish', '/p/app.csproj', '--no-restore', '-r', 'linux-x64', '--self-contained', 'true', '-p:InvariantGlobalization=true', '-p:UseSharedCompilation=false', '--disable-build-servers',
      '-c', 'Release', '-p:PublishTrimmed=true', '-p:DebugType=None', '-p:DebugSymbols=false', '-p:ContinuousIntegrationBuild=true', '-p:Deterministic=true',
      '-o', '/w/out',
    ]);
  });

  it('debug: no locked mode, Debug configuration, untrimmed, portable PDBs', () => {
    expect(dotnetRestoreArgs('debug', '/p/app.csproj')).not.toContain('--locked-mode');
    const pub = dotnetPublishArgs('debug', '/p/app.csproj', '/w/out');
    expect(pub).toEqual(expect.arrayContaining(['-c', 'Debug', '-p:PublishTrimmed=false', '-p:DebugType=portable', '-p:DebugSymbols=true', '--self-contained', 'true', '-r', 'linux-x64']));
    expect(pub).not.toContain('Release');
    expect(pub.slice(-2)).toEqual(['-o', '/w/out']);
  });

  it('a project that says PublishTrimmed=false is published untrimmed', () => {
    const plan = dotnetPlan('release', '/p/app.csproj', '/w/out', { trim: false });
    expect(plan.restore).not.toContain('-p:PublishTrimmed=true');
    expect(plan.publish).toContain('-p:PublishTrimmed=false');
  });

  it('guest environment: invariant globalization, workstation GC; Kestrel on 8080 for web projects', () => {
    expect(dotnetRunEnv('release', false)).toEqual({ DOTNET_SYSTEM_GLOBALIZATION_INVARIANT: '1', DOTNET_gcServer: '0', DOTNET_EnableDiagnostics: '0' });
    expect(dotnetRunEnv('debug', true)).toEqual({ DOTNET_SYSTEM_GLOBALIZATION_INVARIANT: '1', DOTNET_gcServer: '0', ASPNETCORE_HTTP_PORTS: '8080' });
  });
});

/**
 * A stand-in `dotnet` (this machine has no .NET SDK): records its argv and environment, and `publish` writes a
 * publish folder with a real ELF apphost and a real shared library as libcoreclr.so.
 */
const FAKE_DOTNET = `#!/bin/sh
echo "$*" >> "$FAKE_DOTNET_LOG"
case "$1" in
  --version)
    if [ -n "$FAKE_DOTNET_NOSDK" ]; then echo "The command could not be loaded, possibly because: No .NET SDKs were found." >&2; exit 145; fi
    echo 8.0.404 ;;
  restore)
    echo "NUGET_PACKAGES=$NUGET_PACKAGES TELEMETRY=$DOTNET_CLI_TELEMETRY_OPTOUT FIRST=$DOTNET_SKIP_FIRST_TIME_EXPERIENCE" >> "$FAKE_DOTNET_LOG"
    if [ -n "$FAKE_DOTNET_LOCKFAIL" ]; then echo "error NU1004: The packages lock file is inconsistent with the project dependencies so restore can't be run in locked mode."; exit 1; fi
    echo "  Determining projects to restore..." ;;
  publish)
    if [ -n "$FAKE_DOTNET_FAIL" ]; then echo "Program.cs(3,5): error CS1002: ; expected"; exit 1; fi
    out=""; prev=""
    for a in "$@"; do if [ "$prev" = "-o" ]; then out="$a"; fi; prev="$a"; done
    mkdir -p "$out"
    cp /bin/true "$out/$FAKE_APP"
    printf 'MZ' > "$out/$FAKE_APP.dll"
    cp "$FAKE_CORECLR" "$out/libcoreclr.so"
    echo '{}' > "$out/$FAKE_APP.runtimeconfig.json"
    echo "  $FAKE_APP -> $out/" ;;
esac
`;

function hostSharedLib(): string {
  for (const d of DEFAULT_SEARCH_DIRS) for (const n of ['libgcc_s.so.1', 'libm.so.6']) if (existsSync(join(d, n))) return join(d, n);
  throw new Error('no host shared library to stand in for libcoreclr.so');
}

function fakeDotnet(extra: Record<string, string> = {}): { env: NodeJS.ProcessEnv; log: string } {
  const bin = join(tmp, 'fake-bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'dotnet'), FAKE_DOTNET);
  chmodSync(join(bin, 'dotnet'), 0o755);
  const log = join(tmp, 'dotnet.log');
  writeFileSync(log, '');
  return { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, FAKE_DOTNET_LOG: log, FAKE_APP: 'app', FAKE_CORECLR: hostSharedLib(), ...extra }, log };
}

function ctxFor(dir: string, mode: BuildMode, env: NodeJS.ProcessEnv): BuildContext & { logs: string[]; warnings: string[] } {
  const logs: string[] = [];
  const warnings: string[] = [];
  const cacheDir = join(dir, '.unikctl', 'cache');
  const workDir = join(dir, '.unikctl', 'work');
  mkdirSync(cacheDir, { recursive: true });
  mkdirSync(workDir, { recursive: true });
  return { dir, mode, cacheDir, workDir, config: null, env, log: (l) => logs.push(l), warn: (m) => warnings.push(m), logs, warnings };
}

describe('dotnet pack: build', () => {
  it('no dotnet on PATH: E_TOOLCHAIN_MISSING naming the .NET 8 SDK', async () => {
    const dir = project({ 'app.csproj': EXE, 'packages.lock.json': LOCK });
    const bare = join(tmp, 'bare-bin');
    mkdirSync(bare);
    symlinkSync('/bin/sh', join(bare, 'sh'));
    const err = await errorOf(dotnetPack.build(ctxFor(dir, 'release', { ...process.env, PATH: bare }), new RootfsBuilder(join(tmp, 'stage'))));
    expect(err.code).toBe('E_TOOLCHAIN_MISSING');
    expect(err.message).toContain('dotnet');
    expect(err.hint).toMatch(/install the \.NET 8 SDK/);
  });

  it('dotnet without an SDK: E_TOOLCHAIN_MISSING', async () => {
    const dir = project({ 'app.csproj': EXE, 'packages.lock.json': LOCK });
    const { env } = fakeDotnet({ FAKE_DOTNET_NOSDK: '1' });
    const err = await errorOf(dotnetPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage'))));
    expect(err.code).toBe('E_TOOLCHAIN_MISSING');
    expect(err.message).toContain('No .NET SDKs were found');
  });

  it('release without packages.lock.json: E_LOCK_REQUIRED before restoring anything', async () => {
    const dir = project({ 'app.csproj': EXE });
    const { env, log } = fakeDotnet();
    const err = await errorOf(dotnetPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage'))));
    expect(err.code).toBe('E_LOCK_REQUIRED');
    expect(err.hint).toContain('RestorePackagesWithLockFile');
    expect(readFileSync(log, 'utf8')).not.toMatch(/restore|publish/);
  });

  it('debug without packages.lock.json warns and builds', async () => {
    const dir = project({ 'app.csproj': EXE });
    const { env, log } = fakeDotnet();
    const ctx = ctxFor(dir, 'debug', env);
    const r = await dotnetPack.build(ctx, new RootfsBuilder(join(tmp, 'stage')));
    expect(ctx.warnings.join('\n')).toMatch(/no packages\.lock\.json.*E_LOCK_REQUIRED/);
    const calls = readFileSync(log, 'utf8');
    expect(calls).toContain(`publish ${join(dir, 'app.csproj')} --no-restore`);
    expect(calls).toContain('-c Debug');
    expect(r.run.env).not.toHaveProperty('DOTNET_EnableDiagnostics');
  });

  it('release: runs the plan, puts the publish folder in /app with the apphost as command and the native closure', async () => {
    const dir = project({ 'app.csproj': EXE, 'packages.lock.json': LOCK, 'Program.cs': 'Console.WriteLine("hi");\n' });
    const { env, log } = fakeDotnet();
    const stage = join(tmp, 'stage');
    const ctx = ctxFor(dir, 'release', env);
    const r = await dotnetPack.build(ctx, new RootfsBuilder(stage));

    const csproj = join(dir, 'app.csproj');
    const out = join(dir, '.unikctl', 'work', 'dotnet-publish');
    const calls = readFileSync(log, 'utf8').trim().split('\n');
    const plan = dotnetPlan('release', csproj, out);
    expect(calls).toEqual([
      '--version',
      plan.restore.join(' '),
      `NUGET_PACKAGES=${join(dir, '.unikctl', 'cache', 'nuget')} TELEMETRY=1 FIRST=1`,
      plan.publish.join(' '),
    ]);
    expect(r.run).toEqual({
      command: ['/app/app'], workdir: '/app', memoryMiB: 256,
      env: { DOTNET_SYSTEM_GLOBALIZATION_INVARIANT: '1', DOTNET_gcServer: '0', DOTNET_EnableDiagnostics: '0' },
    });
    expect(existsSync(join(stage, 'app', 'app'))).toBe(true);
    expect(existsSync(join(stage, 'app', 'app.dll'))).toBe(true);
    expect(existsSync(join(stage, 'app', 'libcoreclr.so'))).toBe(true);
    // the apphost (/bin/true here) is dynamic: its loader and libc came from the host
    expect(existsSync(join(stage, 'lib64', 'ld-linux-x86-64.so.2'))).toBe(true);
    expect(r.toolchain).toEqual({ dotnet: '8.0.404', rid: 'linux-x64' });
    expect(r.inputs['packages.lock.json']).toMatch(/^sha256:/);
    expect(r.inputs['app.csproj']).toMatch(/^sha256:/);
    expect(r.artifacts.map((a) => a.path)).toEqual(['/app/app', '/app/app.dll']);
  });

  it('a lock file that does not match (locked-mode restore fails): E_LOCK_REQUIRED with the NuGet message', async () => {
    const dir = project({ 'app.csproj': EXE, 'packages.lock.json': LOCK });
    const { env } = fakeDotnet({ FAKE_DOTNET_LOCKFAIL: '1' });
    const err = await errorOf(dotnetPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage'))));
    expect(err.code).toBe('E_LOCK_REQUIRED');
    expect(err.message).toContain('NU1004');
    expect(err.hint).toContain('--force-evaluate');
  });

  it('a compile error is E_BUILD_FAILED with the compiler output', async () => {
    const dir = project({ 'app.csproj': EXE, 'packages.lock.json': LOCK });
    const { env } = fakeDotnet({ FAKE_DOTNET_FAIL: '1' });
    const err = await errorOf(dotnetPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage'))));
    expect(err.code).toBe('E_BUILD_FAILED');
    expect(err.message).toContain('dotnet publish failed');
    expect(err.message).toContain('error CS1002');
  });
});
