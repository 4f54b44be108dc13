/**
 * Signed images: `attestation.dsse.json` in the image directory is a DSSE envelope whose payload is an in-toto
 * Statement v1 with an SLSA Provenance v1 predicate. Its subjects are the image's four files by sha256:
 * manifest.json (which pins the kernel and rootfs digests), sbom.cdx.json (so the SBOM is signed too),
 * the kernel (vmlinux.br) and rootfs.erofs (which name the image's identity even when the manifest is edited).
 * Verification (verifyAttestation) maps each way an image can fail to one stable code (docs/supply-chain.md).
 */
import { createHash, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UserError, type ErrorCode } from '../errors.js';
import { kernelSourceVersion } from '../kernel/kernel.js';
import { projectRoot } from '../paths.js';
import { IN_TOTO_PAYLOAD_TYPE, keyIdOf, parseEnvelope, signEnvelope, verifySignature, type DsseEnvelope } from './dsse.js';
import { sha256File, type ImageManifest } from './image.js';
import { lockedDependencies } from './lockdeps.js';
import { erofsFiles, makeSbom, SBOM_FILE } from './sbom.js';

export const ATTESTATION_FILE = 'attestation.dsse.json';
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const PROVENANCE_TYPE = 'https://slsa.dev/provenance/v1';
export const BUILD_TYPE = 'urn:unikctl:build-type:image:v1';

/** What a build knows about itself, for the provenance. */
export interface BuildFacts {
  /** SLSA builder.id: who ran the build (UNIKCTL_BUILDER_ID; default urn:unikctl:builder:HOSTNAME) */
  builderId: string;
  toolchain: Record<string, string>;
  /** digests of the build inputs (lock files, sources) as the pack recorded them (`sha256:<hex>`) */
  inputs: Record<string, string>;
  /** the project directory whose lock files name the dependencies (none for a binary or a sandboxed build's copy) */
  projectDir?: string;
  startedOn: Date;
}

export const defaultBuilderId = (env: NodeJS.ProcessEnv = process.env): string => env.UNIKCTL_BUILDER_ID || `urn:unikctl:builder:${hostname()}`;

export const unikctlVersion = (): string => (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;

const sha256Of = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

export interface Statement {
  _type: string;
  subject: Array<{ name: string; digest: { sha256: string } }>;
  predicateType: string;
  predicate: {
    buildDefinition: { buildType: string; externalParameters: Record<string, unknown>; internalParameters: Record<string, unknown>; resolvedDependencies: Array<{ name: string; digest: Record<string, string> }> };
    runDetails: { builder: { id: string; version?: Record<string, string> }; metadata?: Record<string, string> };
  };
}

/**
 * Writes sbom.cdx.json into an image directory and, with a key, attestation.dsse.json. Run on the finished
 * image directory before it is published (writeImage's `finish`), so readers never see a half-signed image.
 */
export async function attestImage(dir: string, manifest: ImageManifest, o: { facts: BuildFacts; key: KeyObject | null; scratch: string }): Promise<{ keyid: string | null; sbomSha256: string }> {
  const manifestSha256 = sha256File(join(dir, 'manifest.json'));
  const files = await erofsFiles(join(dir, manifest.rootfs.file), o.scratch);
  const sbom = makeSbom({
    manifest, manifestSha256, kernelVersion: kernelSourceVersion() ?? 'unknown', toolchain: o.facts.toolchain,
    dependencies: o.facts.projectDir ? lockedDependencies(o.facts.projectDir) : [], files, unikctlVersion: unikctlVersion(),
  });
  const sbomText = `${JSON.stringify(sbom, null, 2)}\n`;
  writeFileSync(join(dir, SBOM_FILE), sbomText);
  const sbomSha256 = sha256Of(sbomText);
  if (!o.key) return { keyid: null, sbomSha256 };

  const init = files.find((f) => f.path === '/init');
  const digestOf = (v: string): Record<string, string> => (v.startsWith('sha256:') ? { sha256: v.slice(7) } : { unikctl: v });
  const statement: Statement = {
    _type: STATEMENT_TYPE,
    subject: [
      { name: 'manifest.json', digest: { sha256: manifestSha256 } },
      { name: SBOM_FILE, digest: { sha256: sbomSha256 } },
      { name: manifest.kernel.file, digest: { sha256: manifest.kernel.sha256 } },
      { name: manifest.rootfs.file, digest: { sha256: manifest.rootfs.sha256 } },
    ],
    predicateType: PROVENANCE_TYPE,
    predicate: {
      buildDefinition: {
        buildType: BUILD_TYPE,
        externalParameters: { name: manifest.name, pack: manifest.pack, mode: manifest.mode },
        internalParameters: {
          kernel: { variant: manifest.kernel.variant, configHash: manifest.kernel.configHash, rawSha256: manifest.kernel.rawSha256 },
          ...(init ? { init: { sha256: init.sha256 } } : {}),
          toolchain: o.facts.toolchain,
        },
        resolvedDependencies: Object.entries(o.facts.inputs).filter(([, v]) => v).sort(([a], [b]) => a.localeCompare(b)).map(([name, v]) => ({ name, digest: digestOf(v) })),
      },
      runDetails: {
        builder: { id: o.facts.builderId, version: { unikctl: unikctlVersion() } },
        metadata: { startedOn: o.facts.startedOn.toISOString(), finishedOn: new Date().toISOString() },
      },
    },
  };
  const envelope = signEnvelope(IN_TOTO_PAYLOAD_TYPE, Buffer.from(JSON.stringify(statement)), o.key);
  writeFileSync(join(dir, ATTESTATION_FILE), `${JSON.stringify(envelope, null, 2)}\n`);
  return { keyid: keyIdOf(o.key), sbomSha256 };
}

/** A trusted key as the policy names it. */
export interface TrustedKey { keyid: string; key: KeyObject; }

export interface Verified { keyid: string; builderId: string; manifestSha256: string; }

const fail = (code: ErrorCode, message: string, hint: string, details?: Record<string, unknown>): UserError =>
  new UserError(code, message, { hint, ...(details ? { details } : {}) });

/**
 * Checks an image directory against trusted keys (and, when given, accepted builder ids). The order decides
 * which code an image gets when several things are wrong:
 *   no envelope                                            E_SIGNATURE_MISSING
 *   no signature by a trusted key                          E_SIGNATURE_UNTRUSTED
 *   the trusted key's signature does not verify / not a Statement    E_SIGNATURE_INVALID
 *   builder id not accepted, or the statement is about other kernel/rootfs bytes (an envelope of another image)
 *                                                          E_PROVENANCE_MISMATCH
 *   manifest.json or sbom.cdx.json differ from the signed digests (edited after signing)   E_SIGNATURE_INVALID
 *   a kernel/rootfs file differs from its manifest digest  E_ARTIFACT_TAMPERED
 */
export function verifyAttestation(dir: string, keys: TrustedKey[], builders: string[]): Verified {
  const file = join(dir, ATTESTATION_FILE);
  if (!existsSync(file)) {
    throw fail('E_SIGNATURE_MISSING', `${dir} is not signed (no ${ATTESTATION_FILE})`, 'build it with a signing key (unikctl build --sign-key KEY, or UNIKCTL_SIGNING_KEY)');
  }
  const env: DsseEnvelope | null = parseEnvelope(readFileSync(file, 'utf8'));
  if (!env) throw fail('E_SIGNATURE_INVALID', `${file} is not a DSSE envelope`, 'rebuild and sign the image again');
  const trusted = env.signatures.map((s) => ({ s, k: keys.find((k) => k.keyid === s.keyid) })).filter((x) => x.k);
  if (trusted.length === 0) {
    throw fail('E_SIGNATURE_UNTRUSTED', `${dir} is signed by ${env.signatures.map((s) => s.keyid).join(', ') || 'no key'}, which the trust policy does not list`,
      'add the signer\'s public key to the trust policy, or sign the image with a trusted key', { keyids: env.signatures.map((s) => s.keyid) });
  }
  const good = trusted.find(({ s, k }) => k && verifySignature(env, s, k.key));
  if (!good) throw fail('E_SIGNATURE_INVALID', `the signature of ${dir} by ${trusted[0]?.s.keyid} does not verify`, 'the attestation was altered: rebuild and sign the image again');
  let st: Statement;
  try {
    st = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as Statement;
  } catch {
    throw fail('E_SIGNATURE_INVALID', `the signed payload of ${dir} is not JSON`, 'rebuild and sign the image again');
  }
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE || st._type !== STATEMENT_TYPE || st.predicateType !== PROVENANCE_TYPE || !Array.isArray(st.subject)) {
    throw fail('E_SIGNATURE_INVALID', `the signed payload of ${dir} is not an in-toto Statement v1 with SLSA provenance v1`, 'rebuild and sign the image with unikctl');
  }
  const builderId = st.predicate?.runDetails?.builder?.id ?? '';
  if (builders.length > 0 && !builders.includes(builderId)) {
    throw fail('E_PROVENANCE_MISMATCH', `${dir} was built by ${builderId || 'an unnamed builder'}, which the trust policy does not accept (${builders.join(', ')})`,
      'build it on an accepted builder, or add its id to builders: in the trust policy', { builderId });
  }
  const signed = new Map(st.subject.map((s) => [s.name, s.digest?.sha256]));
  let manifest: ImageManifest;
  const manifestText = readFileSync(join(dir, 'manifest.json'));
  try {
    manifest = JSON.parse(manifestText.toString('utf8')) as ImageManifest;
  } catch {
    throw fail('E_SIGNATURE_INVALID', `${dir}/manifest.json is not JSON (it was changed after signing)`, 'rebuild and sign the image again');
  }
  if (signed.get(manifest.kernel?.file) !== manifest.kernel?.sha256 || signed.get(manifest.rootfs?.file) !== manifest.rootfs?.sha256) {
    throw fail('E_PROVENANCE_MISMATCH', `the attestation in ${dir} is about another image (its kernel/rootfs digests are not this manifest's)`,
      'an attestation belongs to the image it was made for: rebuild and sign this image', { signed: Object.fromEntries(signed) });
  }
  const manifestSha256 = sha256Of(manifestText);
  if (signed.get('manifest.json') !== manifestSha256) {
    throw fail('E_SIGNATURE_INVALID', `${dir}/manifest.json was changed after it was signed`, 'rebuild and sign the image again', { signed: signed.get('manifest.json'), actual: manifestSha256 });
  }
  const sbom = join(dir, SBOM_FILE);
  if (signed.has(SBOM_FILE) && (!existsSync(sbom) || sha256File(sbom) !== signed.get(SBOM_FILE))) {
    throw fail('E_SIGNATURE_INVALID', `${sbom} is missing or was changed after it was signed`, 'rebuild and sign the image again');
  }
  for (const part of [manifest.kernel, manifest.rootfs]) {
    const p = join(dir, part.file);
    if (!existsSync(p) || sha256File(p) !== part.sha256) {
      throw fail('E_ARTIFACT_TAMPERED', `${p} does not match the sha256 its signed manifest records`, 'the image was altered after it was built: rebuild it (or deploy a trusted copy)', { file: part.file });
    }
  }
  return { keyid: good.s.keyid, builderId, manifestSha256 };
}
