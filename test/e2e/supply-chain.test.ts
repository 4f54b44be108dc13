// Signed images end to end (issue 15): real builds of examples/c-hello, signed with keys from `unikctld keygen`,
// refused by an enforce-mode trust policy locally and through the control plane before any VM starts, a swap of
// the image on the node after the API accepted it refused before boot, warn mode deploying and counting, and the
// envelope and SBOMs checked by independent implementations (securesystemslib, the official CycloneDX schema).
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockedDependencies } from '../../src/image/lockdeps.js';
import { makeSbom } from '../../src/image/sbom.js';
import type { ImageManifest } from '../../src/image/image.js';
import { TENANT_TOKENS, TestServer } from './cp-helpers.js';
import { ROOT, TestHome, type DeploymentJson } from './helpers.js';

const PY = join(ROOT, '.venv-tools', 'bin', 'python');
const CHECK = join(ROOT, 'test', 'e2e', 'supply-chain-check.py');
const venvHas = (mod: string): boolean => {
  try {
    execFileSync(PY, ['-c', `import ${mod}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const INTEROP = existsSync(PY) && venvHas('securesystemslib.dsse') && venvHas('cyclonedx.validation.json');
if (!INTEROP) console.log('supply-chain interop checks skipped: .venv-tools lacks securesystemslib / cyclonedx-python-lib (run scripts/ci-tools.sh)');

const scratch = mkdtempSync(join(tmpdir(), 'unikctl-supply-'));
const home = new TestHome();
const T = 240_000;

const daemon = (args: string[]): string => execFileSync(process.execPath, [join(ROOT, 'bin', 'unikctld.js'), ...args], { encoding: 'utf8' });
const keys: Record<'k1' | 'k2', { file: string; keyid: string }> = { k1: { file: '', keyid: '' }, k2: { file: '', keyid: '' } };
/** image directories (real copies) of each case */
const img: Record<string, string> = {};

function python(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => execFile(PY, [CHECK, ...args], { encoding: 'utf8' }, (err, stdout, stderr) => res({ code: err ? 1 : 0, stdout, stderr })));
}

/** Builds the c-hello copy at `app` into local/NAME, and keeps a real copy of its image directory as img[NAME]. */
async function build(app: string, name: string, extra: string[]): Promise<void> {
  const r = await home.cli(['build', app, '--tag', name, '--json', ...extra]);
  expect(r.code, r.stderr + r.stdout).toBe(0);
  img[name] = join(scratch, 'images', name);
  cpSync(JSON.parse(r.stdout).imageDir as string, img[name], { recursive: true });
}

function variant(from: string, name: string, change: (dir: string) => void): void {
  img[name] = join(scratch, 'images', name);
  cpSync(from, img[name], { recursive: true });
  change(img[name]);
}

/** The five images the policy refuses, by the code each must get. */
const REFUSED: Array<[string, string]> = [
  ['unsigned', 'E_SIGNATURE_MISSING'],
  ['flipped', 'E_ARTIFACT_TAMPERED'],
  ['edited', 'E_SIGNATURE_INVALID'],
  ['otherkey', 'E_SIGNATURE_UNTRUSTED'],
  ['b-with-a-envelope', 'E_PROVENANCE_MISMATCH'],
];

function policy(file: string, scope: 'local' | 'controlplane', mode: string): string {
  writeFileSync(file, `${scope}:\n  mode: ${mode}\n  keys: [${keys.k1.file}.pub]\n`);
  return file;
}

const qemuUnder = (dir: string): string[] => {
  try {
    return execFileSync('pgrep', ['-af', `qemu-system.*${dir}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

beforeAll(async () => {
  const t0 = Date.now();
  for (const k of ['k1', 'k2'] as const) {
    keys[k] = { file: join(scratch, `${k}.pem`), keyid: (JSON.parse(daemon(['keygen', '--out', join(scratch, `${k}.pem`)])) as { keyid: string }).keyid };
  }
  const appA = join(scratch, 'a', 'c-hello');
  const appB = join(scratch, 'b', 'c-hello');
  for (const app of [appA, appB]) cpSync(join(ROOT, 'examples', 'c-hello'), app, { recursive: true, filter: (p) => !p.includes('.unikctl') });
  // image B differs in its root filesystem (an extra file), not only in its manifest
  mkdirSync(join(scratch, 'extra', 'etc'), { recursive: true });
  writeFileSync(join(scratch, 'extra', 'etc', 'image-b'), 'B\n');
  await build(appA, 'signed', ['--sign-key', keys.k1.file]);
  await build(appB, 'signed-b', ['--sign-key', keys.k1.file, '--rootfs', join(scratch, 'extra')]);
  await build(appA, 'otherkey', ['--sign-key', keys.k2.file]);
  const a = img.signed ?? '';
  variant(a, 'unsigned', (d) => rmSync(join(d, 'attestation.dsse.json')));
  variant(a, 'flipped', (d) => {
    const bytes = readFileSync(join(d, 'rootfs.erofs'));
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0x01;
    writeFileSync(join(d, 'rootfs.erofs'), bytes);
  });
  variant(a, 'edited', (d) => {
    const m = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8')) as ImageManifest;
    m.run.env = { ...m.run.env, GREETING: 'edited after signing' };
    writeFileSync(join(d, 'manifest.json'), JSON.stringify(m, null, 2));
  });
  variant(img['signed-b'] ?? '', 'b-with-a-envelope', (d) => {
    for (const f of ['attestation.dsse.json', 'sbom.cdx.json']) cpSync(join(a, f), join(d, f));
  });
  console.log(`supply-chain: keys and 3 signed builds of c-hello in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}, T);

afterAll(async () => {
  await home.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

describe('local mode, enforce', () => {
  it('refuses each bad image with its code before anything is recorded or started', async () => {
    home.env.UNIKCTL_TRUST_POLICY = policy(join(scratch, 'local-enforce.yaml'), 'local', 'enforce');
    for (const [name, code] of REFUSED) {
      const r = await home.cli(['deploy', img[name] ?? '', '--name', `bad-${name}`, '--json']);
      expect(r.code, `${name}: ${r.stdout}${r.stderr}`).not.toBe(0);
      expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code, name).toBe(code);
    }
    expect((await home.status()).deployments).toEqual([]);
    expect(home.qemuProcesses()).toEqual([]);
  }, T);

  it('boots the signed image; status --json names the signer', async () => {
    const r = await home.cli(['deploy', img.signed ?? '', '--name', 'good', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const d = await home.waitState('good', ['exited', 'failed'], T) as DeploymentJson & { signedBy: string | null; trust: { mode: string } };
    expect(d.state, d.reason ?? '').toBe('exited');
    expect(d.signedBy).toBe(keys.k1.keyid);
    expect(d.trust.mode).toBe('enforce');
    expect((await home.cli(['logs', 'good'])).stdout).toContain('hello from C');
    await home.cli(['destroy', 'good', '--wait']);
  }, T);
});

describe('control plane, enforce', () => {
  const data = join(scratch, 'cp');
  const cpPolicy = join(scratch, 'cp-enforce.yaml');
  let server: TestServer;
  afterAll(async () => {
    await server?.stop();
    expect(qemuUnder(data)).toEqual([]);
  });

  it('refuses each bad image at the API (the code travels to the CLI) with no job and no VM', async () => {
    // no general workers: an accepted deploy stays queued until the restart below
    policy(cpPolicy, 'controlplane', 'enforce');
    server = new TestServer({ data, workers: 0, extra: ['--trust-policy', cpPolicy] });
    await server.start();
    const cli = (args: string[]): ReturnType<typeof execCli> => execCli(server, args);
    for (const [name, code] of REFUSED) {
      const r = await cli(['deploy', img[name] ?? '', '--name', `bad-${name}`, '--json']);
      expect(r.code, `${name}: ${r.stdout}${r.stderr}`).not.toBe(0);
      expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code, name).toBe(code);
    }
    const status = (await (await server.api('/v1/status')).json()) as { deployments: unknown[]; operations: unknown[] };
    expect(status).toMatchObject({ deployments: [], operations: [] });
    expect(qemuUnder(data)).toEqual([]);
  }, T);

  it('an image swapped on the node after the API accepted it is refused before boot', async () => {
    const artifacts = join(data, 'artifacts');
    const before = new Set(existsSync(artifacts) ? readdirSync(artifacts) : []);
    const r = await execCli(server, ['deploy', img.signed ?? '', '--name', 'swapped', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const accepted = JSON.parse(r.stdout) as { operationId: string };
    const fresh = readdirSync(artifacts).filter((a) => !before.has(a) && existsSync(join(artifacts, a, 'root', 'manifest.json')));
    expect(fresh).toHaveLength(1);
    await server.stop();
    // the node's copy of the accepted package is replaced by image B, whole: a valid image signed by the trusted key,
    // so only the digest recorded with the operation tells it from the image the API accepted
    for (const f of readdirSync(img['signed-b'] ?? '')) cpSync(join(img['signed-b'] ?? '', f), join(artifacts, fresh[0] ?? '', 'root', f));
    server = new TestServer({ data, workers: 1, extra: ['--trust-policy', cpPolicy] });
    await server.start();
    const deadline = Date.now() + T / 2;
    type Op = { id: string; state: string; error: { code: string } | null };
    let op: Op = { id: accepted.operationId, state: 'queued', error: null };
    while (Date.now() < deadline && (op.state === 'queued' || op.state === 'running')) {
      const s = (await (await server.api('/v1/status')).json()) as { operations: Op[] };
      op = s.operations.find((o) => o.id === accepted.operationId) ?? op;
      await new Promise((res) => setTimeout(res, 250));
    }
    expect(op).toMatchObject({ state: 'failed', error: { code: 'E_ARTIFACT_TAMPERED' } });
    expect(qemuUnder(data)).toEqual([]);
  }, T);
});

describe('control plane, a tenant\'s own rule (docs/tenants.md)', () => {
  const data = join(scratch, 'cp-tenants');
  let server: TestServer;
  afterAll(async () => {
    await server?.stop();
    expect(qemuUnder(data)).toEqual([]);
  });

  it('acme requires its own key on top of the operator\'s (off) rule; beta, without a rule of its own, is not held to it', async () => {
    const file = join(scratch, 'cp-tenant-policy.yaml');
    writeFileSync(file, `controlplane:\n  mode: off\ntenants:\n  acme:\n    mode: enforce\n    keys: [${keys.k2.file}.pub]\n`);
    server = new TestServer({ data, workers: 0, extra: ['--trust-policy', file], tenants: 'tenants:\n  acme: {}\n  beta: {}\n' });
    await server.start();
    const deploy = async (token: string, image: string, name: string): Promise<{ code: number; error?: string }> => {
      const r = await execCli(server, ['deploy', image, '--name', name, '--json'], token);
      return { code: r.code, ...(r.code !== 0 ? { error: (JSON.parse(r.stdout) as { error: { code: string } }).error.code } : {}) };
    };
    expect(await deploy(TENANT_TOKENS.acme, img.unsigned ?? '', 'u')).toEqual({ code: 1, error: 'E_SIGNATURE_MISSING' });
    expect(await deploy(TENANT_TOKENS.acme, img.signed ?? '', 's')).toEqual({ code: 1, error: 'E_SIGNATURE_UNTRUSTED' }); // k1 is not acme's key
    expect((await deploy(TENANT_TOKENS.acme, img.otherkey ?? '', 'k2')).code).toBe(0); // signed with k2: acme's key
    expect((await deploy(TENANT_TOKENS.beta, img.unsigned ?? '', 'u')).code).toBe(0);
  }, T);
});

describe('control plane, warn', () => {
  const data = join(scratch, 'cp-warn');
  let server: TestServer;
  afterAll(async () => {
    await server?.stop();
    expect(qemuUnder(data)).toEqual([]);
  });

  it('deploys an unsigned image, says why it would be refused, and counts it in the metrics', async () => {
    server = new TestServer({ data, workers: 1, extra: ['--trust-policy', policy(join(scratch, 'cp-warn.yaml'), 'controlplane', 'warn')] });
    await server.start();
    const r = await execCli(server, ['deploy', img.unsigned ?? '', '--name', 'warned', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const deadline = Date.now() + T / 2;
    let d: { state?: string; reason?: string | null; signedBy?: string | null; trust?: { mode: string; warning: { code: string } | null } } = {};
    while (Date.now() < deadline && d.state !== 'exited' && d.state !== 'failed') {
      const s = JSON.parse((await execCli(server, ['status', 'warned', '--json'])).stdout) as { deployments: Array<typeof d> };
      d = s.deployments[0] ?? {};
      await new Promise((res) => setTimeout(res, 500));
    }
    expect(d.state, d.reason ?? '').toBe('exited');
    expect(d.signedBy).toBeNull();
    expect(d.trust).toMatchObject({ mode: 'warn', warning: { code: 'E_SIGNATURE_MISSING' } });
    const metrics = await (await server.api('/v1/metrics')).text();
    expect(metrics).toMatch(/unikctld_trust_policy_warnings_total\{scope="controlplane",code="E_SIGNATURE_MISSING"\} 1/);
    await execCli(server, ['destroy', 'warned', '--wait']);
  }, T);
});

describe.skipIf(!INTEROP)('independent verifiers', () => {
  it('securesystemslib verifies the envelope with the public key, and rejects it with another key', async () => {
    const env = join(img.signed ?? '', 'attestation.dsse.json');
    const ok = await python(['dsse', env, `${keys.k1.file}.pub`, keys.k1.keyid]);
    expect(ok.code, ok.stderr).toBe(0);
    const out = JSON.parse(ok.stdout) as { verified: string[]; statement: { subject: Array<{ name: string }>; predicateType: string } };
    expect(out.verified).toEqual([keys.k1.keyid]);
    expect(out.statement.predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(out.statement.subject.map((s) => s.name)).toContain('sbom.cdx.json');
    const wrong = await python(['dsse', env, `${keys.k2.file}.pub`, keys.k1.keyid]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/VerificationError/);
  });

  it('every SBOM validates against the official CycloneDX 1.5 schema (built images and every example\'s lock files); a broken one does not', async () => {
    const files = ['signed', 'signed-b', 'otherkey'].map((n) => join(img[n] ?? '', 'sbom.cdx.json'));
    // the dependency readers of every ecosystem, on the examples' real lock files, through the same document writer
    const manifest = JSON.parse(readFileSync(join(img.signed ?? '', 'manifest.json'), 'utf8')) as ImageManifest;
    for (const ex of readdirSync(join(ROOT, 'examples'))) {
      const deps = lockedDependencies(join(ROOT, 'examples', ex));
      if (deps.length === 0) continue;
      const f = join(scratch, `sbom-${ex}.json`);
      writeFileSync(f, JSON.stringify(makeSbom({ manifest, manifestSha256: 'f'.repeat(64), kernelVersion: '6.1', toolchain: { node: 'v20.0.0' }, dependencies: deps, files: [], unikctlVersion: '0.1.0' })));
      files.push(f);
    }
    expect(files.length).toBeGreaterThan(6);
    const ok = await python(['sbom', ...files]);
    expect(ok.code, ok.stderr).toBe(0);
    const broken = join(scratch, 'sbom-broken.json');
    writeFileSync(broken, JSON.stringify({ ...JSON.parse(readFileSync(files[0] ?? '', 'utf8')) as object, components: [{ type: 'no-such-type', name: 'x' }] }));
    const bad = await python(['sbom', broken]);
    expect(bad.code, bad.stdout).toBe(1);
  }, T);
});

/** The CLI in remote mode against `server`, with the test home's environment otherwise. */
function execCli(server: TestServer, args: string[], token?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [join(ROOT, 'bin', 'unikctl.js'), ...args], { env: { ...home.env, ...server.cliEnv(token), UNIKCTL_TRUST_POLICY: '' }, cwd: ROOT, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
    });
  });
}
