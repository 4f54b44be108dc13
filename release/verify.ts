import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IN_TOTO_PAYLOAD_TYPE, requireEd25519, verifyEnvelope, type DsseEnvelope } from './dsse.js';
import { SLSA_PROVENANCE_V1, STATEMENT_TYPE } from './provenance.js';
import { sha256Hex } from './tar.js';

/** The files of a release directory (docs/release.md). */
export function releaseFileNames(name: string, version: string) {
  const base = `${name}-${version}`;
  return {
    tarball: `${base}.tgz`,
    cyclonedx: `${base}.cdx.json`,
    spdx: `${base}.spdx.json`,
    provenance: `${base}.provenance.json`,
    envelope: `${base}.provenance.dsse.json`,
    publicKey: 'release-key.pub.pem',
    sums: 'SHA256SUMS',
    sumsSignature: 'SHA256SUMS.sig',
  };
}

/** `sha256sum` format (two spaces, names in byte order): `sha256sum -c SHA256SUMS` checks it. */
export function sha256Sums(files: { name: string; sha256: string }[]): string {
  return [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((f) => `${f.sha256}  ${f.name}\n`).join('');
}

export function parseSums(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n').filter((l) => l.length > 0)) {
    const r = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!r) throw new Error(`SHA256SUMS: bad line ${JSON.stringify(line)}`);
    m.set(r[2]!, r[1]!);
  }
  return m;
}

export interface Verified { tarball: string; sha256: string; commit: string; builderId: string }

/**
 * Checks a release directory against a trusted public key: SHA256SUMS and its signature, every listed file's
 * digest, the DSSE envelope's signature, that its payload is the provenance file, and that the provenance's
 * subject and the SBOMs name the tarball by its digest.
 */
export function verifyRelease(dir: string, trusted: KeyObject): Verified {
  requireEd25519(trusted, 'the trusted key');
  const sumsText = readFileSync(join(dir, 'SHA256SUMS'));
  const sig = Buffer.from(readFileSync(join(dir, 'SHA256SUMS.sig'), 'utf8').trim(), 'base64');
  if (!verify(null, sumsText, trusted, sig)) throw new Error('SHA256SUMS.sig does not verify with the trusted key');
  const sums = parseSums(sumsText.toString('utf8'));
  for (const [name, want] of sums) {
    const got = sha256Hex(readFileSync(join(dir, name)));
    if (got !== want) throw new Error(`${name}: sha256 ${got}, SHA256SUMS says ${want}`);
  }
  const tarball = [...sums.keys()].find((n) => n.endsWith('.tgz'));
  if (!tarball) throw new Error('SHA256SUMS lists no tarball');
  const base = tarball.slice(0, -'.tgz'.length);
  const names = { provenance: `${base}.provenance.json`, envelope: `${base}.provenance.dsse.json`, cdx: `${base}.cdx.json`, spdx: `${base}.spdx.json` };
  for (const n of Object.values(names)) if (!sums.has(n)) throw new Error(`SHA256SUMS does not list ${n}`);

  const env = JSON.parse(readFileSync(join(dir, names.envelope), 'utf8')) as DsseEnvelope;
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) throw new Error(`envelope payloadType ${env.payloadType}`);
  const payload = verifyEnvelope(env, trusted);
  if (!payload.equals(readFileSync(join(dir, names.provenance)))) throw new Error(`the envelope's payload is not ${names.provenance}`);
  const st = JSON.parse(payload.toString('utf8')) as {
    _type: string; predicateType: string; subject: { name: string; digest: { sha256?: string } }[];
    predicate: { buildDefinition: { resolvedDependencies: { name?: string; digest?: { gitCommit?: string } }[] }; runDetails: { builder: { id: string } } };
  };
  if (st._type !== STATEMENT_TYPE || st.predicateType !== SLSA_PROVENANCE_V1) throw new Error(`not an in-toto v1 SLSA v1 statement: ${st._type} ${st.predicateType}`);
  const sha = sums.get(tarball)!;
  if (!st.subject.some((s) => s.name === tarball && s.digest.sha256 === sha)) throw new Error(`the provenance's subject is not ${tarball} sha256:${sha}`);
  const commit = st.predicate.buildDefinition.resolvedDependencies.find((d) => d.name === 'source')?.digest?.gitCommit;
  if (!commit) throw new Error('the provenance names no source commit');

  const cdx = JSON.parse(readFileSync(join(dir, names.cdx), 'utf8')) as { metadata?: { component?: { hashes?: { alg: string; content: string }[] } } };
  if (!cdx.metadata?.component?.hashes?.some((h) => h.alg === 'SHA-256' && h.content === sha)) throw new Error(`${names.cdx} does not describe the tarball`);
  const spdx = JSON.parse(readFileSync(join(dir, names.spdx), 'utf8')) as { packages?: { packageFileName?: string; checksums?: { algorithm: string; checksumValue: string }[] }[] };
  if (!spdx.packages?.some((p) => p.packageFileName === tarball && p.checksums?.some((c) => c.algorithm === 'SHA256' && c.checksumValue === sha))) {
    throw new Error(`${names.spdx} does not describe the tarball`);
  }
  return { tarball, sha256: sha, commit, builderId: st.predicate.runDetails.builder.id };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, keyFile] = process.argv.slice(2);
  if (!dir || !keyFile) {
    process.stderr.write('usage: npm run -s release:verify -- DIR PUBLIC_KEY.pem   (the trusted key, not the one inside DIR)\n');
    process.exit(2);
  }
  try {
    const v = verifyRelease(dir, createPublicKey(readFileSync(keyFile)));
    process.stdout.write(`${JSON.stringify(v)}\n`);
    process.stderr.write(`verified: ${v.tarball} sha256:${v.sha256} from commit ${v.commit}, built by ${v.builderId}\n`);
  } catch (e) {
    process.stderr.write(`release:verify: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
