import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { IN_TOTO_PAYLOAD_TYPE, requireEd25519, signEnvelope } from './dsse.js';
import { provenanceStatement } from './provenance.js';
import { jsonText, normalizeCycloneDx, normalizeSpdx, runtimePackages } from './sbom.js';
import { deterministicTgz, entriesFromDir, sha256Hex } from './tar.js';
import { releaseFileNames, sha256Sums } from './verify.js';

/**
 * The release of unikctl itself (docs/release.md): from a clean checkout, run the tests, build, and write the npm
 * tarball, its SBOMs (CycloneDX, SPDX), SLSA provenance, a DSSE envelope over it, SHA256SUMS and its signature.
 * Two runs on the same commit with the same key and toolchain write byte-identical files. Progress on stderr;
 * stdout gets SHA256SUMS.
 */
interface Options {
  out: string;
  skipTests: boolean;
  key: KeyObject;
  builderId: string;
  repository?: string;
}

const USAGE = `usage: npm run release -- [--out DIR] [--skip-tests] [--key FILE] [--builder-id ID] [--repository URL]
  --out DIR         where the release files go (new or empty; default release-out)
  --skip-tests      do not run npm test first (also UNIKCTL_RELEASE_SKIP_TESTS=1); the provenance records it
  --key FILE        Ed25519 private key, PKCS#8 PEM (also UNIKCTL_RELEASE_KEY_FILE, or the PEM itself in UNIKCTL_RELEASE_KEY)
  --builder-id ID   the provenance's builder id (also UNIKCTL_RELEASE_BUILDER_ID; in GitHub Actions the workflow)
  --repository URL  the source repository named in the provenance (default: GitHub Actions' repository, else none)`;

const say = (m: string): void => void process.stderr.write(`release: ${m}\n`);

function parse(argv: string[], env: NodeJS.ProcessEnv): Options {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') { process.stdout.write(`${USAGE}\n`); process.exit(0); }
    if (a === '--skip-tests') { flags.set(a, true); continue; }
    if (['--out', '--key', '--builder-id', '--repository'].includes(a)) {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      flags.set(a, v);
      continue;
    }
    throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  const get = (f: string): string | undefined => { const v = flags.get(f); return typeof v === 'string' ? v : undefined; };
  const keyFile = get('--key') ?? nonEmpty(env.UNIKCTL_RELEASE_KEY_FILE);
  const keyPem = keyFile ? readFileSync(keyFile, 'utf8') : nonEmpty(env.UNIKCTL_RELEASE_KEY);
  if (!keyPem) {
    throw new Error('no signing key: pass --key FILE (or UNIKCTL_RELEASE_KEY_FILE / UNIKCTL_RELEASE_KEY); make one with: openssl genpkey -algorithm ed25519 -out release.key');
  }
  const github = env.GITHUB_SERVER_URL && env.GITHUB_REPOSITORY ? `${env.GITHUB_SERVER_URL}/${env.GITHUB_REPOSITORY}` : undefined;
  const workflow = env.GITHUB_SERVER_URL && env.GITHUB_WORKFLOW_REF ? `${env.GITHUB_SERVER_URL}/${env.GITHUB_WORKFLOW_REF}` : undefined;
  const repository = get('--repository') ?? github;
  return {
    out: resolve(get('--out') ?? 'release-out'),
    skipTests: flags.has('--skip-tests') || env.UNIKCTL_RELEASE_SKIP_TESTS === '1',
    key: requireEd25519(createPrivateKey(keyPem), 'the signing key'),
    builderId: get('--builder-id') ?? nonEmpty(env.UNIKCTL_RELEASE_BUILDER_ID) ?? workflow ?? 'urn:unikctl:builder:local',
    ...(repository ? { repository } : {}),
  };
}

const nonEmpty = (s: string | undefined): string | undefined => (s && s.length > 0 ? s : undefined);

function git(root: string, args: string[]): string {
  return execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
}

/** Runs a step with its output on stderr (stdout is this script's data). */
function step(root: string, env: NodeJS.ProcessEnv, file: string, args: string[]): void {
  say(`${file} ${args.join(' ')}`);
  const r = spawnSync(file, args, { cwd: root, env, stdio: ['ignore', 2, 2] });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
}

function capture(root: string, env: NodeJS.ProcessEnv, file: string, args: string[]): string {
  return execFileSync(file, args, { cwd: root, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
}

export function release(root: string, o: Options): string {
  const commit = git(root, ['rev-parse', 'HEAD']);
  const dirty = git(root, ['status', '--porcelain', '--untracked-files=normal']);
  if (dirty) throw new Error(`the work tree has changes; a release is built from a commit only:\n${dirty}`);
  const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? git(root, ['log', '-1', '--format=%ct', 'HEAD']));
  if (!Number.isInteger(epoch) || epoch < 0) throw new Error(`SOURCE_DATE_EPOCH is not a number of seconds: ${process.env.SOURCE_DATE_EPOCH}`);
  if (existsSync(o.out) && readdirSync(o.out).length > 0) throw new Error(`${o.out} is not empty: pass a new or empty --out`);
  // one environment for every tool: no locale, zone or colour in anything they write
  const env: NodeJS.ProcessEnv = { ...process.env, SOURCE_DATE_EPOCH: String(epoch), TZ: 'UTC', LC_ALL: 'C', NO_COLOR: '1' };
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
  say(`${pkg.name} ${pkg.version} at ${commit} (SOURCE_DATE_EPOCH=${epoch})`);

  if (o.skipTests) say('tests skipped (--skip-tests / UNIKCTL_RELEASE_SKIP_TESTS=1); the provenance says so');
  else step(root, env, 'npm', ['test']);

  // a fresh dist/: nothing left over from an older build may reach the tarball
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  step(root, env, 'npm', ['run', '--silent', 'build']);

  // npm chooses the files (package.json "files" + what it always adds); this script writes the archive
  const listed = JSON.parse(capture(root, env, 'npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--loglevel=error'])) as { files: { path: string }[] }[];
  const files = (listed[0]?.files ?? []).map((f) => f.path).filter((p) => p !== 'npm-shrinkwrap.json');
  checkContents(files);
  // the lock file ships as npm-shrinkwrap.json: a global install gets exactly the tested dependency versions
  const entries = [
    ...entriesFromDir(root, files, 'package/'),
    { path: 'package/npm-shrinkwrap.json', data: readFileSync(join(root, 'package-lock.json')), executable: false },
  ];
  const tarball = `${pkg.name}-${pkg.version}.tgz`;
  const tgz = deterministicTgz(entries, epoch);
  const tgzSha = sha256Hex(tgz);
  say(`${tarball}: ${entries.length} files, ${tgz.length} bytes, sha256 ${tgzSha}`);

  const names = releaseFileNames(pkg.name, pkg.version);
  const subject = { name: pkg.name, version: pkg.version, tarball, tarballSha256: tgzSha, epoch };
  const runtime = runtimePackages(JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')));
  const sbomArgs = ['sbom', '--package-lock-only', '--loglevel=error', '--sbom-format'];
  const cdx = jsonText(normalizeCycloneDx(JSON.parse(capture(root, env, 'npm', [...sbomArgs, 'cyclonedx'])), subject, runtime));
  const spdx = jsonText(normalizeSpdx(JSON.parse(capture(root, env, 'npm', [...sbomArgs, 'spdx'])), subject, runtime));

  const npmVersion = capture(root, env, 'npm', ['--version']).trim();
  const statement = jsonText(provenanceStatement({
    subjects: [{ name: tarball, sha256: tgzSha }],
    builderId: o.builderId,
    commit,
    ...(o.repository ? { repository: o.repository } : {}),
    sourceDateEpoch: epoch,
    skipTests: o.skipTests,
    inputs: ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']
      .map((p) => ({ path: p, sha256: sha256Hex(readFileSync(join(root, p))) })),
    toolchain: [
      { name: 'node', version: process.versions.node, sha256: sha256Hex(readFileSync(process.execPath)) },
      { name: 'npm', version: npmVersion },
    ],
    byproducts: [
      { name: names.cyclonedx, sha256: sha256Hex(cdx), mediaType: 'application/vnd.cyclonedx+json' },
      { name: names.spdx, sha256: sha256Hex(spdx), mediaType: 'application/spdx+json' },
    ],
  }));
  const envelope = jsonText(signEnvelope(IN_TOTO_PAYLOAD_TYPE, Buffer.from(statement), o.key));
  const publicPem = createPublicKey(o.key).export({ type: 'spki', format: 'pem' }).toString();

  const outputs = new Map<string, Buffer | string>([
    [names.tarball, tgz],
    [names.cyclonedx, cdx],
    [names.spdx, spdx],
    [names.provenance, statement],
    [names.envelope, envelope],
    [names.publicKey, publicPem],
  ]);
  const sums = sha256Sums([...outputs].map(([n, d]) => ({ name: n, sha256: sha256Hex(d) })));
  outputs.set(names.sums, sums);
  outputs.set(names.sumsSignature, `${sign(null, Buffer.from(sums), o.key).toString('base64')}\n`);
  mkdirSync(o.out, { recursive: true });
  for (const [n, d] of outputs) writeFileSync(join(o.out, n), d, { mode: 0o644 });
  say(`wrote ${outputs.size} files to ${o.out}`);
  return sums;
}

/** The tarball must run (dist/, bin/) and set itself up (guest init, kernel config), and carry no tests. */
function checkContents(files: string[]): void {
  const need = ['bin/unikctl.js', 'bin/unikctld.js', 'dist/cli/main.js', 'dist/cli/daemon.js', 'guest/init.c', 'host/launch.c',
    'kernel/build.sh', 'kernel/config/base.config', 'scripts/setup.sh'];
  const missing = need.filter((f) => !files.includes(f));
  if (missing.length > 0) throw new Error(`the package would miss ${missing.join(', ')} (package.json "files")`);
  const unwanted = files.filter((f) => /^(test|bench|src|examples|release)\//.test(f) || /\.test\.js$|\.map$/.test(f));
  if (unwanted.length > 0) throw new Error(`the package would ship ${unwanted.slice(0, 5).join(', ')}… (package.json "files")`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const o = parse(process.argv.slice(2), process.env);
    process.stdout.write(release(process.cwd(), o));
  } catch (e) {
    say(`error: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
