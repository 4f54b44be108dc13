import { execFile, execFileSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homeLayout } from '../../src/paths.js';
import { verifyRelease } from '../../release/verify.js';
import { ROOT } from './helpers.js';

/**
 * The release of unikctl itself (docs/release.md): two clean clones of HEAD build byte-identical release files
 * (tests skipped inside this test with --skip-tests), the provenance's DSSE envelope verifies, the SBOMs describe
 * the tarball, and the tarball installs with `npm install -g` into an empty prefix, sets itself up from there,
 * builds an image with the installed CLI and boots it.
 */
const run = (file: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((res) => {
    execFile(file, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, maxBuffer: 64 << 20, timeout: opts.timeout ?? 0 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      res({ code, stdout, stderr });
    });
  });

const tmp = mkdtempSync(join(tmpdir(), 'unikctl-release-'));
const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const tarball = `unikctl-${version}.tgz`;
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const keyFile = join(tmp, 'release.key');
const outs = [join(tmp, 'out-a'), join(tmp, 'out-b')];

/** A clean clone of HEAD (committed work only), sharing the checkout's installed npm packages. */
function cleanClone(dir: string): void {
  execFileSync('git', ['clone', '-q', '--no-checkout', ROOT, dir]);
  execFileSync('git', ['-C', dir, 'checkout', '-q', '--detach', head]);
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(dir, 'node_modules'));
}

/**
 * Where better-sqlite3's install script gets its native module: its prebuilt binaries come from outside the npm
 * registry, so here either a local prebuild (prebuild-install's documented `<pkg>_local_prebuilds` directory) made
 * from the module this checkout's `npm ci` compiled for the same locked version and Node ABI, or, without one, a
 * compile from source (minutes on a loaded 2-core machine).
 */
function nativeModuleSource(): NodeJS.ProcessEnv {
  const mod = join(ROOT, 'node_modules', 'better-sqlite3');
  const locked = (JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> }).packages['node_modules/better-sqlite3']?.version;
  const built = join(mod, 'build', 'Release', 'better_sqlite3.node');
  const have = existsSync(built) ? (JSON.parse(readFileSync(join(mod, 'package.json'), 'utf8')) as { version: string }).version : undefined;
  if (!locked || have !== locked) {
    console.log(`better-sqlite3 ${locked} compiles from source (the checkout has ${have ?? 'no compiled module'})`);
    return { npm_config_build_from_source: 'true' };
  }
  const dir = join(tmp, 'prebuilds');
  mkdirSync(dir);
  execFileSync('tar', ['czf', join(dir, `better-sqlite3-v${locked}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`), '-C', mod, 'build/Release/better_sqlite3.node']);
  return { npm_config_better_sqlite3_local_prebuilds: dir };
}

beforeAll(async () => {
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const clones = [join(tmp, 'clone-a'), join(tmp, 'clone-b')];
  clones.forEach(cleanClone);
  // the environment a CI job would give both builds alike; the variables that name a build stay out
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['SOURCE_DATE_EPOCH', 'UNIKCTL_RELEASE_KEY', 'UNIKCTL_RELEASE_KEY_FILE'].includes(k)));
  const results = await Promise.all(clones.map((c, i) => run(join(c, 'scripts', 'release.sh'), ['--skip-tests', '--out', outs[i]!, '--key', keyFile], { cwd: c, env })));
  results.forEach((r, i) => {
    if (r.code !== 0) throw new Error(`release in clone ${i} failed (exit ${r.code}):\n${r.stderr}`);
  });
}, 900_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('release', () => {
  it('two clean clones of one commit write byte-identical release files', () => {
    const [a, b] = outs as [string, string];
    const files = readdirSync(a).sort();
    expect(files).toEqual(['SHA256SUMS', 'SHA256SUMS.sig', 'release-key.pub.pem', `unikctl-${version}.cdx.json`, `unikctl-${version}.provenance.dsse.json`,
      `unikctl-${version}.provenance.json`, `unikctl-${version}.spdx.json`, tarball].sort());
    expect(readdirSync(b).sort()).toEqual(files);
    for (const f of files) expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f))), f).toBe(true);
    console.log(`release ${head}: SHA256SUMS\n${readFileSync(join(a, 'SHA256SUMS'), 'utf8')}tarball ${readFileSync(join(a, tarball)).length} bytes`);
  });

  it('the DSSE envelope verifies with Node crypto and carries the provenance of the tarball and commit', () => {
    const dir = outs[0]!;
    const env = JSON.parse(readFileSync(join(dir, `unikctl-${version}.provenance.dsse.json`), 'utf8')) as { payloadType: string; payload: string; signatures: { sig: string }[] };
    const payload = Buffer.from(env.payload, 'base64');
    // PAE by hand (the DSSE spec), not through release/dsse.ts: the test must not trust the code it tests
    const type = Buffer.from(env.payloadType);
    const signed = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
    expect(env.payloadType).toBe('application/vnd.in-toto+json');
    expect(verify(null, signed, publicKey, Buffer.from(env.signatures[0]!.sig, 'base64'))).toBe(true);
    expect(verify(null, Buffer.concat([signed, Buffer.from(' ')]), publicKey, Buffer.from(env.signatures[0]!.sig, 'base64'))).toBe(false);
    const st = JSON.parse(payload.toString()) as { subject: unknown[]; predicate: { buildDefinition: { externalParameters: { skipTests: boolean }; resolvedDependencies: { name: string; digest?: Record<string, string> }[] } } };
    const sha = readFileSync(join(dir, 'SHA256SUMS'), 'utf8').split('\n').find((l) => l.endsWith(`  ${tarball}`))!.split(' ')[0];
    expect(st.subject).toEqual([{ name: tarball, digest: { sha256: sha } }]);
    const deps = st.predicate.buildDefinition.resolvedDependencies;
    expect(deps.find((d) => d.name === 'source')?.digest).toEqual({ gitCommit: head });
    const lockSha = execFileSync('sha256sum', [join(ROOT, 'package-lock.json')], { encoding: 'utf8' }).split(' ')[0];
    expect(deps.find((d) => d.name === 'package-lock.json')?.digest).toEqual({ sha256: lockSha });
    expect(st.predicate.buildDefinition.externalParameters.skipTests).toBe(true);
    // the whole directory against the trusted key (release:verify), and sha256sum's own check
    expect(verifyRelease(dir, createPublicKey(publicKey.export({ type: 'spki', format: 'pem' })))).toMatchObject({ tarball, commit: head });
    execFileSync('sha256sum', ['--check', '--strict', '--quiet', 'SHA256SUMS'], { cwd: dir });
    expect(() => verifyRelease(dir, generateKeyPairSync('ed25519').publicKey)).toThrow(/does not verify/);
  });

  it('the CycloneDX SBOM is structurally valid and lists the locked runtime dependencies (no dev ones)', () => {
    // structural checks only: no CycloneDX schema validator is installed on this machine
    const bom = JSON.parse(readFileSync(join(outs[0]!, `unikctl-${version}.cdx.json`), 'utf8')) as {
      bomFormat: string; specVersion: string; serialNumber: string; version: number;
      metadata: { timestamp: string; component: { 'bom-ref': string; type: string; name: string; version: string; purl: string } };
      components: { 'bom-ref': string; type: string; name: string; version: string; purl: string; hashes?: { alg: string; content: string }[] }[];
      dependencies: { ref: string; dependsOn?: string[] }[];
    };
    expect(bom.bomFormat).toBe('CycloneDX');
    expect(['1.4', '1.5', '1.6']).toContain(bom.specVersion);
    expect(bom.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(bom.version).toBe(1);
    expect(bom.metadata.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(bom.metadata.component).toMatchObject({ type: 'application', name: 'unikctl', version, purl: `pkg:npm/unikctl@${version}` });
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; dev?: boolean }> };
    const runtime = new Set(Object.entries(lock.packages).filter(([p, v]) => p !== '' && !v.dev).map(([p, v]) => `${p.replace(/^.*node_modules\//, '')}@${v.version}`));
    const listed = new Set(bom.components.map((c) => `${c.name}@${c.version}`));
    expect(listed).toEqual(runtime);
    const refs = new Set([bom.metadata.component['bom-ref'], ...bom.components.map((c) => c['bom-ref'])]);
    expect(refs.size).toBe(bom.components.length + 1);
    for (const c of bom.components) {
      expect(['library', 'application', 'framework']).toContain(c.type);
      expect(c.purl).toBe(`pkg:npm/${c.name.replace('@', '%40')}@${c.version}`);
      expect(c.hashes?.[0]?.content ?? '').toMatch(/^[0-9a-f]{128}$/);
    }
    for (const d of bom.dependencies) {
      expect(refs.has(d.ref)).toBe(true);
      for (const x of d.dependsOn ?? []) expect(refs.has(x), `${d.ref} → ${x}`).toBe(true);
    }
    expect(bom.components.map((c) => c['bom-ref'])).toEqual(bom.components.map((c) => c['bom-ref']).sort());
  });

  it('the tarball holds dist/, the set-up sources and the lock as npm-shrinkwrap.json; no tests, benchmarks or sources', () => {
    const tar = gunzipSync(readFileSync(join(outs[0]!, tarball)));
    const names: string[] = [];
    const mtimes = new Set<number>();
    for (let at = 0; at + 512 <= tar.length && tar[at] !== 0;) {
      const f = (o: number, n: number): string => tar.subarray(at + o, at + o + n).toString('ascii').replace(/\0.*$/s, '');
      names.push(f(345, 155) ? `${f(345, 155)}/${f(0, 100)}` : f(0, 100));
      mtimes.add(parseInt(f(136, 12), 8));
      at += 512 + Math.ceil(parseInt(f(124, 12), 8) / 512) * 512;
    }
    for (const want of ['bin/unikctl.js', 'bin/unikctld.js', 'dist/cli/main.js', 'dist/cli/daemon.js', 'guest/init.c', 'guest/Makefile', 'host/launch.c',
      'kernel/build.sh', 'kernel/config/base.config', 'kernel/config/release.config', 'scripts/setup.sh', 'npm-shrinkwrap.json', 'package.json', 'README.md', 'LICENSE']) {
      expect(names, want).toContain(`package/${want}`);
    }
    for (const p of readdirSync(join(ROOT, 'kernel', 'patches'))) expect(names).toContain(`package/kernel/patches/${p}`);
    expect(names.filter((n) => /^package\/(test|bench|src|examples|release)\/|\.test\.js$|\.map$/.test(n))).toEqual([]);
    expect(names).toEqual([...names].sort());
    const epoch = Number(execFileSync('git', ['log', '-1', '--format=%ct', head], { cwd: ROOT, encoding: 'utf8' }));
    expect([...mtimes]).toEqual([epoch]);
  });

  it('installs with npm install -g into an empty prefix; unikctl and unikctld run, set up from there, build and boot an image', async () => {
    const prefix = join(tmp, 'prefix');
    const t0 = Date.now();
    const env = { ...process.env, ...nativeModuleSource(), NO_COLOR: '1' };
    const inst = await run('npm', ['install', '-g', '--prefix', prefix, '--allow-scripts=better-sqlite3', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error',
      join(outs[0]!, tarball)], { env, cwd: tmp });
    expect(inst.code, inst.stderr).toBe(0);
    console.log(`npm install -g of ${tarball}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    const bin = join(prefix, 'bin');
    const home = join(tmp, 'home');
    const cliEnv = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`, UNIKCTL_HOME: home, UNIKCTL_KERNEL_DIR: homeLayout(process.env).kernels, NO_COLOR: '1' };
    const help = await run(join(bin, 'unikctl'), ['--help'], { env: cliEnv });
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/deploy/);
    expect((await run(join(bin, 'unikctl'), ['--version'], { env: cliEnv })).stdout.trim()).toBe(version);
    const dhelp = await run(join(bin, 'unikctld'), ['--help'], { env: cliEnv });
    expect(dhelp.code, dhelp.stderr).toBe(0);
    expect(dhelp.stdout).toMatch(/serve/);

    // first use: the installed package's own set-up builds the guest init and launcher next to it and finds the
    // kernels (cached by config hash, so here in seconds)
    const pkgDir = join(prefix, 'lib', 'node_modules', 'unikctl');
    // npm reads a package's npm-shrinkwrap.json only from registry metadata, not from a tarball file: the
    // documented `npm ci --omit=dev` in the installed package gives exactly the locked production packages
    const ci = await run('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { env, cwd: pkgDir });
    expect(ci.code, ci.stderr).toBe(0);
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; dev?: boolean }> };
    for (const [p, v] of Object.entries(lock.packages)) {
      if (p === '' || v.dev) continue;
      expect((JSON.parse(readFileSync(join(pkgDir, p, 'package.json'), 'utf8')) as { version: string }).version, p).toBe(v.version);
    }
    expect((await run(join(bin, 'unikctl'), ['--version'], { env: cliEnv })).stdout.trim()).toBe(version);
    expect(existsSync(join(pkgDir, 'guest', 'build', 'unik-init'))).toBe(false);
    const app = join(tmp, 'c-hello');
    execFileSync('cp', ['-r', join(ROOT, 'examples', 'c-hello'), app]);
    // without the set-up, a build says which command sets this installation up (not the checkout's make setup)
    const early = await run(join(bin, 'unikctl'), ['build', app], {
      env: { ...cliEnv, UNIKCTL_KERNEL_DIR: join(tmp, 'no-kernels'), UNIKCTL_INIT: join(ROOT, 'guest', 'build', 'unik-init') }, cwd: tmp,
    });
    expect(early.code).toBe(1);
    expect(early.stderr).toContain('E_KERNEL_MISSING');
    expect(early.stderr).toContain(join(pkgDir, 'scripts', 'setup.sh'));
    const setup = await run(join(pkgDir, 'scripts', 'setup.sh'), [], { env: cliEnv, cwd: tmp });
    expect(setup.code, setup.stderr).toBe(0);
    expect(setup.stderr).toMatch(new RegExp(`set-up complete: ${version.replace(/\./g, '\\.')}`));
    expect(existsSync(join(pkgDir, 'guest', 'build', 'unik-init'))).toBe(true);
    rmSync(join(app, '.unikctl'), { recursive: true, force: true });
    const build = await run(join(bin, 'unikctl'), ['build', app, '--json'], { env: cliEnv, cwd: tmp });
    expect(build.code, build.stderr).toBe(0);
    expect(existsSync(join(app, '.unikctl', 'image', 'rootfs.erofs'))).toBe(true);
    // and boots it: the installed supervisor, launcher, guest init and kernel together
    const vmEnv = { ...cliEnv, UNIKCTL_ACCEL: process.env.UNIKCTL_ACCEL ?? 'tcg' };
    try {
      const dep = await run(join(bin, 'unikctl'), ['deploy', join(app, '.unikctl', 'image'), '--name', 'hello', '--wait'], { env: vmEnv, cwd: tmp });
      expect(dep.code, dep.stderr).toBe(0);
      let logs = '';
      for (let i = 0; i < 240 && !logs.includes('hello from C in a unikctl VM'); i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 500));
        logs = (await run(join(bin, 'unikctl'), ['logs', 'hello'], { env: vmEnv, cwd: tmp })).stdout;
      }
      expect(logs).toContain('hello from C in a unikctl VM');
    } finally {
      await run(join(bin, 'unikctl'), ['destroy', 'hello', '--wait', '--timeout', '1'], { env: vmEnv, cwd: tmp });
    }
  }, 1_200_000);

  const actionlint = [join(ROOT, '.tools', 'bin'), ...(process.env.PATH ?? '').split(delimiter)].map((d) => join(d, 'actionlint')).find((p) => existsSync(p));
  if (!actionlint) console.log('SKIP actionlint: not installed (scripts/ci-tools.sh installs it into .tools/bin)');
  it.skipIf(!actionlint)('the GitHub Actions workflows pass actionlint', async () => {
    const r = await run(actionlint!, ['-no-color'], { cwd: ROOT });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(readdirSync(join(ROOT, '.github', 'workflows')).sort()).toEqual(['ci.yml', 'release.yml']);
  });
});
