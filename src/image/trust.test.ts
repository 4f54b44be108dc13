import { createHash, generateKeyPairSync } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUserError } from '../errors.js';
import { ATTESTATION_FILE, attestImage, type BuildFacts } from './attest.js';
import { keyIdOf, pae, parseEnvelope, publicKeyPem, writeKeyPair } from './dsse.js';
import { makeErofs, MANIFEST_SCHEMA, type ImageManifest } from './image.js';
import { SBOM_FILE } from './sbom.js';
import { checkImage, loadTrustPolicy, manifestDigest, ruleFor, tenantRuleFor } from './trust.js';
import type { TrustRule } from '../store/types.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const tmp = mkdtempSync(join(tmpdir(), 'unikctl-trust-'));
const k1 = generateKeyPairSync('ed25519').privateKey;
const k2 = generateKeyPairSync('ed25519').privateKey;
const facts: BuildFacts = { builderId: 'urn:unikctl:builder:test', toolchain: { go: 'go1.22.0' }, inputs: { 'go.sum': `sha256:${'a'.repeat(64)}` }, startedOn: new Date(0) };
const rule = (mode: TrustRule['mode'], builders: string[] = []): TrustRule => ({ scope: 'local', mode, keys: [{ keyid: keyIdOf(k1), publicKeyPem: publicKeyPem(k1) }], builders });

/** A small but real image directory: an erofs root with /init and an app file, a stand-in kernel file. */
async function image(name: string, appText: string, key = k1): Promise<string> {
  const dir = join(tmp, name);
  const stage = join(tmp, `${name}-stage`);
  mkdirSync(join(stage, 'app'), { recursive: true });
  writeFileSync(join(stage, 'init'), 'init bytes');
  writeFileSync(join(stage, 'app', 'hello'), appText);
  mkdirSync(dir, { recursive: true });
  await makeErofs(stage, join(dir, 'rootfs.erofs'));
  writeFileSync(join(dir, 'vmlinux.gz'), 'kernel bytes');
  const manifest: ImageManifest = {
    schema: MANIFEST_SCHEMA, name, pack: 'go', mode: 'release',
    kernel: { file: 'vmlinux.gz', encoding: 'gzip', sha256: sha(readFileSync(join(dir, 'vmlinux.gz'))), size: 12, rawSha256: 'b'.repeat(64), rawSize: 1, variant: 'release', configHash: 'cafe' },
    rootfs: { file: 'rootfs.erofs', sha256: sha(readFileSync(join(dir, 'rootfs.erofs'))), size: 1, format: 'erofs' },
    run: { command: ['/app/hello'], env: {}, workdir: '/', memoryMiB: 64, ports: [] }, size: 2,
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  await attestImage(dir, manifest, { facts, key, scratch: tmp });
  return dir;
}

const variant = (src: string, name: string): string => {
  const dst = join(tmp, name);
  cpSync(src, dst, { recursive: true });
  return dst;
};

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    if (isUserError(e)) return e.code;
    throw e;
  }
  return 'ok';
};

let a = '';
let b = '';
beforeAll(async () => {
  a = await image('a', 'app A');
  b = await image('b', 'app B');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('DSSE', () => {
  it('PAE is the spec\'s encoding (lengths in bytes, ASCII decimal)', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
    expect(pae('t', Buffer.from('é')).toString()).toBe('DSSEv1 1 t 2 é');
  });

  it('key ids are the sha256 of the SPKI DER, the same from the private and the public half', () => {
    const pub = k1.type === 'private' ? publicKeyPem(k1) : '';
    expect(keyIdOf(k1)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(keyIdOf(k1)).not.toBe(keyIdOf(k2));
    const written = writeKeyPair(join(tmp, 'gen.pem'), false);
    expect(written.keyid).toMatch(/^sha256:/);
    expect(() => writeKeyPair(join(tmp, 'gen.pem'), false)).toThrow(/exists/);
    expect(pub).toContain('BEGIN PUBLIC KEY');
  });
});

describe('attestation', () => {
  it('signs a Statement v1 with SLSA provenance v1 about the manifest, the SBOM, the kernel and the rootfs', () => {
    const env = parseEnvelope(readFileSync(join(a, ATTESTATION_FILE), 'utf8'));
    expect(env?.payloadType).toBe('application/vnd.in-toto+json');
    const st = JSON.parse(Buffer.from(env?.payload ?? '', 'base64').toString()) as { _type: string; predicateType: string; subject: Array<{ name: string; digest: { sha256: string } }>; predicate: { runDetails: { builder: { id: string } } } };
    expect(st._type).toBe('https://in-toto.io/Statement/v1');
    expect(st.predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(st.subject.map((s) => s.name)).toEqual(['manifest.json', SBOM_FILE, 'vmlinux.gz', 'rootfs.erofs']);
    expect(st.subject[0]?.digest.sha256).toBe(manifestDigest(a));
    expect(st.predicate.runDetails.builder.id).toBe('urn:unikctl:builder:test');
  });

  it('the SBOM lists the kernel, init, runtime and every root filesystem file with its digest', () => {
    const sbom = JSON.parse(readFileSync(join(a, SBOM_FILE), 'utf8')) as { specVersion: string; components: Array<{ type: string; name: string; hashes?: Array<{ content: string }> }> };
    expect(sbom.specVersion).toBe('1.5');
    const files = sbom.components.filter((c) => c.type === 'file').map((c) => [c.name, c.hashes?.[0]?.content]);
    expect(files).toEqual([['/app/hello', sha('app A')], ['/init', sha('init bytes')]]);
    expect(sbom.components.find((c) => c.type === 'operating-system')?.name).toBe('linux');
    expect(sbom.components.find((c) => c.type === 'platform')).toMatchObject({ name: 'go' });
  });
});

describe('checkImage: one stable code per failure', () => {
  it('accepts the signed image and names its signer', () => {
    expect(checkImage(a, rule('enforce')).verified).toMatchObject({ keyid: keyIdOf(k1), builderId: 'urn:unikctl:builder:test', manifestSha256: manifestDigest(a) });
  });

  it('unsigned → E_SIGNATURE_MISSING', () => {
    const d = variant(a, 'unsigned');
    rmSync(join(d, ATTESTATION_FILE));
    expect(codeOf(() => checkImage(d, rule('enforce')))).toBe('E_SIGNATURE_MISSING');
  });

  it('a flipped rootfs byte → E_ARTIFACT_TAMPERED', () => {
    const d = variant(a, 'flipped');
    const bytes = readFileSync(join(d, 'rootfs.erofs'));
    bytes[2000] = (bytes[2000] ?? 0) ^ 0xff;
    writeFileSync(join(d, 'rootfs.erofs'), bytes);
    expect(codeOf(() => checkImage(d, rule('enforce')))).toBe('E_ARTIFACT_TAMPERED');
  });

  it('an edited manifest → E_SIGNATURE_INVALID; so are an edited SBOM and a changed signature', () => {
    const d = variant(a, 'edited');
    const m = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8')) as ImageManifest;
    writeFileSync(join(d, 'manifest.json'), JSON.stringify({ ...m, run: { ...m.run, memoryMiB: 4096 } }));
    expect(codeOf(() => checkImage(d, rule('enforce')))).toBe('E_SIGNATURE_INVALID');
    const s = variant(a, 'sbom-edited');
    writeFileSync(join(s, SBOM_FILE), '{}');
    expect(codeOf(() => checkImage(s, rule('enforce')))).toBe('E_SIGNATURE_INVALID');
    const g = variant(a, 'sig-edited');
    const env = JSON.parse(readFileSync(join(g, ATTESTATION_FILE), 'utf8')) as { signatures: Array<{ sig: string }> };
    const sig = Buffer.from(env.signatures[0]?.sig ?? '', 'base64');
    sig[0] = (sig[0] ?? 0) ^ 1;
    if (env.signatures[0]) env.signatures[0].sig = sig.toString('base64');
    writeFileSync(join(g, ATTESTATION_FILE), JSON.stringify(env));
    expect(codeOf(() => checkImage(g, rule('enforce')))).toBe('E_SIGNATURE_INVALID');
  });

  it('a key the policy does not list → E_SIGNATURE_UNTRUSTED', async () => {
    const other = await image('other-key', 'app A', k2);
    expect(codeOf(() => checkImage(other, rule('enforce')))).toBe('E_SIGNATURE_UNTRUSTED');
  });

  it('the envelope of image A attached to image B → E_PROVENANCE_MISMATCH; so is a builder the policy does not accept', () => {
    const d = variant(b, 'b-with-a-envelope');
    cpSync(join(a, ATTESTATION_FILE), join(d, ATTESTATION_FILE));
    cpSync(join(a, SBOM_FILE), join(d, SBOM_FILE));
    expect(codeOf(() => checkImage(d, rule('enforce')))).toBe('E_PROVENANCE_MISMATCH');
    expect(codeOf(() => checkImage(a, rule('enforce', ['urn:unikctl:builder:ci'])))).toBe('E_PROVENANCE_MISMATCH');
    expect(codeOf(() => checkImage(a, rule('enforce', ['urn:unikctl:builder:test'])))).toBe('ok');
  });

  it('warn mode returns the failure instead of throwing; off checks nothing', () => {
    const d = variant(a, 'unsigned-warn');
    rmSync(join(d, ATTESTATION_FILE));
    expect(checkImage(d, rule('warn'))).toMatchObject({ mode: 'warn', verified: null, warning: { code: 'E_SIGNATURE_MISSING' } });
    expect(checkImage(d, rule('off'))).toEqual({ mode: 'off', verified: null, warning: null });
  });

  it('an image other than the accepted digest is E_ARTIFACT_TAMPERED in every mode (a swap after admission)', () => {
    const accepted = manifestDigest(a);
    const d = variant(a, 'swapped');
    cpSync(join(b, 'rootfs.erofs'), join(d, 'rootfs.erofs'));
    for (const mode of ['enforce', 'warn', 'off'] as const) expect(codeOf(() => checkImage(d, rule(mode), accepted)), mode).toBe('E_ARTIFACT_TAMPERED');
    expect(codeOf(() => checkImage(b, rule('off'), accepted))).toBe('E_ARTIFACT_TAMPERED');
    expect(codeOf(() => checkImage(a, rule('enforce'), accepted))).toBe('ok');
  });
});

describe('trust policy file', () => {
  it('reads scopes with key files relative to it, inline PEM and builders', () => {
    writeFileSync(join(tmp, 'k1.pub'), publicKeyPem(k1));
    const file = join(tmp, 'policy.yaml');
    writeFileSync(file, ['local:', '  mode: enforce', '  keys: [k1.pub]', '  builders: [urn:unikctl:builder:ci]', 'controlplane:', '  mode: warn', '  keys:', `    - ${JSON.stringify(publicKeyPem(k2))}`, ''].join('\n'));
    const p = loadTrustPolicy(file);
    expect(ruleFor(p, 'local')).toMatchObject({ mode: 'enforce', keys: [{ keyid: keyIdOf(k1) }], builders: ['urn:unikctl:builder:ci'] });
    expect(ruleFor(p, 'controlplane')).toMatchObject({ mode: 'warn', keys: [{ keyid: keyIdOf(k2) }] });
    expect(ruleFor(null, 'local').mode).toBe('off');
  });

  it('reads per-tenant rules (checked in addition to controlplane); a bad tenant name or rule is E_TRUST_CONFIG', () => {
    writeFileSync(join(tmp, 'k2.pub'), publicKeyPem(k2));
    const file = join(tmp, 'tenants.yaml');
    writeFileSync(file, ['controlplane:', '  mode: off', 'tenants:', '  acme:', '    mode: enforce', '    keys: [k2.pub]', ''].join('\n'));
    const p = loadTrustPolicy(file);
    expect(tenantRuleFor(p, 'acme')).toMatchObject({ scope: 'tenant:acme', mode: 'enforce', keys: [{ keyid: keyIdOf(k2) }] });
    expect(tenantRuleFor(p, 'beta')).toBeNull();
    expect(tenantRuleFor(null, 'acme')).toBeNull();
    for (const text of ['tenants:\n  Bad-Name:\n    mode: off\n', 'tenants: [acme]\n', 'tenants:\n  acme:\n    mode: enforce\n']) {
      writeFileSync(file, text);
      expect(codeOf(() => loadTrustPolicy(file)), text).toBe('E_TRUST_CONFIG');
    }
  });

  it('refuses unknown scopes, modes and enforce without keys (E_TRUST_CONFIG)', () => {
    const file = join(tmp, 'bad.yaml');
    for (const text of ['tenant-x:\n  mode: enforce\n', 'local:\n  mode: strict\n', 'local:\n  mode: enforce\n', 'local:\n  mode: warn\n  keys: [missing.pub]\n']) {
      writeFileSync(file, text);
      expect(codeOf(() => loadTrustPolicy(file)), text).toBe('E_TRUST_CONFIG');
    }
  });
});
