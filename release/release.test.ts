import { generateKeyPairSync, sign } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { keyId, pae, signEnvelope, verifyEnvelope } from './dsse.js';
import { provenanceStatement } from './provenance.js';
import { nameUuid, normalizeCycloneDx, normalizeSpdx, runtimePackages } from './sbom.js';
import { deterministicTgz } from './tar.js';
import { parseSums, sha256Sums } from './verify.js';

/** Reads a ustar archive back (name, prefix, mode, size, mtime) without the code under test. */
function readTar(tgz: Buffer): { path: string; mode: number; mtime: number; uid: number; data: string }[] {
  const tar = gunzipSync(tgz);
  const out = [];
  for (let at = 0; at + 512 <= tar.length;) {
    const h = tar.subarray(at, at + 512);
    if (h.every((b) => b === 0)) break;
    const field = (o: number, n: number): string => h.subarray(o, o + n).toString('ascii').replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12), 8);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    expect(parseInt(field(148, 8), 8)).toBe(sum);
    const prefix = field(345, 155);
    out.push({
      path: prefix ? `${prefix}/${field(0, 100)}` : field(0, 100),
      mode: parseInt(field(100, 8), 8),
      mtime: parseInt(field(136, 12), 8),
      uid: parseInt(field(108, 8), 8),
      data: tar.subarray(at + 512, at + 512 + size).toString('utf8'),
    });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

describe('deterministic tarball', () => {
  const long = `package/${'d'.repeat(60)}/${'e'.repeat(60)}/file.js`;
  const entries = [
    { path: 'package/b.js', data: Buffer.from('b'), executable: false },
    { path: 'package/bin/x.js', data: Buffer.from('#!/usr/bin/env node\n'), executable: true },
    { path: long, data: Buffer.from('x'.repeat(1000)), executable: false },
    { path: 'package/a.js', data: Buffer.alloc(0), executable: false },
  ];

  it('orders entries by path, fixes mtime, modes and owner, and splits long paths into the ustar prefix', () => {
    const files = readTar(deterministicTgz(entries, 1_700_000_000));
    expect(files.map((f) => f.path)).toEqual(['package/a.js', 'package/b.js', 'package/bin/x.js', long]);
    expect(files.map((f) => f.mode.toString(8))).toEqual(['644', '644', '755', '644']);
    expect(new Set(files.map((f) => f.mtime))).toEqual(new Set([1_700_000_000]));
    expect(new Set(files.map((f) => f.uid))).toEqual(new Set([0]));
    expect(files[3]!.data).toBe('x'.repeat(1000));
  });

  it('gives the same bytes whatever the input order, and other bytes for another epoch', () => {
    const a = deterministicTgz(entries, 1);
    expect(deterministicTgz([...entries].reverse(), 1).equals(a)).toBe(true);
    expect(deterministicTgz(entries, 2).equals(a)).toBe(false);
  });

  it('refuses duplicates and paths ustar cannot hold', () => {
    expect(() => deterministicTgz([entries[0]!, entries[0]!], 1)).toThrow(/duplicate/);
    expect(() => deterministicTgz([{ path: `package/${'x'.repeat(120)}`, data: Buffer.alloc(0), executable: false }], 1)).toThrow(/too long/);
    expect(() => deterministicTgz([{ path: 'package/é', data: Buffer.alloc(0), executable: false }], 1)).toThrow(/ASCII/);
  });
});

describe('DSSE', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');

  it('encodes PAE as the DSSE spec example', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
  });

  it('signs deterministically and verifies; a changed payload, type or key fails', () => {
    const payload = Buffer.from('{"a":1}');
    const env = signEnvelope('application/vnd.in-toto+json', payload, privateKey);
    expect(signEnvelope('application/vnd.in-toto+json', payload, privateKey)).toEqual(env);
    expect(env.signatures[0]!.keyid).toBe(keyId(publicKey));
    expect(verifyEnvelope(env, publicKey).equals(payload)).toBe(true);
    expect(() => verifyEnvelope({ ...env, payload: Buffer.from('{"a":2}').toString('base64') }, publicKey)).toThrow(/does not verify/);
    expect(() => verifyEnvelope({ ...env, payloadType: 'text/plain' }, publicKey)).toThrow(/does not verify/);
    expect(() => verifyEnvelope(env, generateKeyPairSync('ed25519').publicKey)).toThrow(/no signature by key/);
    // the signature is over PAE, not over the bare payload
    const bare = { ...env, signatures: [{ keyid: env.signatures[0]!.keyid, sig: sign(null, payload, privateKey).toString('base64') }] };
    expect(() => verifyEnvelope(bare, publicKey)).toThrow(/does not verify/);
  });

  it('refuses keys that are not Ed25519', () => {
    const rsa = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => signEnvelope('t', Buffer.from('x'), rsa.privateKey)).toThrow(/Ed25519/);
  });
});

describe('SBOM normalization', () => {
  const subject = { name: 'unikctl', version: '1.2.3', tarball: 'unikctl-1.2.3.tgz', tarballSha256: 'ab'.repeat(32), epoch: 1_700_000_000 };
  const cdx = (order: number[]) => {
    const comps = [
      { 'bom-ref': 'b@1', name: 'b', properties: [{ name: 'z', value: '1' }, { name: 'a', value: '2' }] },
      { 'bom-ref': 'a@1', name: 'a', properties: [] },
      { 'bom-ref': 'c@1', name: 'c', properties: [] },
      { 'bom-ref': 'dev@1', name: 'dev', properties: [] },
    ];
    return {
      $schema: 'http://cyclonedx.org/schema/bom-1.5.schema.json', bomFormat: 'CycloneDX', specVersion: '1.5',
      serialNumber: `urn:uuid:${order.join('')}`, version: 1,
      metadata: { timestamp: new Date().toISOString(), component: { 'bom-ref': 'x@1', type: 'library', name: 'checkout-dir' } },
      components: [...order, 3].map((i) => ({ ...comps[i]!, version: '1' })),
      dependencies: [{ ref: 'x@1', dependsOn: [...order, 3].map((i) => comps[i]!['bom-ref']) }, { ref: 'dev@1', dependsOn: ['a@1'] }],
    };
  };

  const runtime = runtimePackages({ packages: {
    '': { name: 'unikctl', version: '1.2.3' }, 'node_modules/a': { version: '1' }, 'node_modules/b': { version: '1' },
    'node_modules/x/node_modules/c': { version: '1' }, 'node_modules/dev': { version: '1', dev: true },
  } });

  it('takes the production packages from the lock file (nested ones too, dev ones not)', () => {
    expect([...runtime].sort()).toEqual(['a@1', 'b@1', 'c@1']);
  });

  it('gives one document whatever npm ordered or stamped, bound to the tarball, without dev packages', () => {
    const a = normalizeCycloneDx(cdx([0, 1, 2]), subject, runtime);
    expect(normalizeCycloneDx(cdx([2, 0, 1]), subject, runtime)).toEqual(a);
    expect(JSON.stringify(a)).toBe(JSON.stringify(normalizeCycloneDx(cdx([1, 2, 0]), subject, runtime)));
    const doc = a as { serialNumber: string; metadata: { timestamp: string; component: { name: string; type: string; hashes: unknown } }; components: { name: string; properties: { name: string }[] }[]; dependencies: { dependsOn: string[] }[] };
    expect(doc.components.map((c) => c.name)).toEqual(['a', 'b', 'c']);
    expect(doc.components[1]!.properties.map((p) => p.name)).toEqual(['a', 'z']);
    expect(doc.dependencies).toEqual([{ ref: 'x@1', dependsOn: ['a@1', 'b@1', 'c@1'] }]);
    expect(doc.metadata.timestamp).toBe('2023-11-14T22:13:20Z');
    expect(doc.metadata.component).toMatchObject({ name: 'unikctl', type: 'application', hashes: [{ alg: 'SHA-256', content: subject.tarballSha256 }] });
    expect(doc.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const other = normalizeCycloneDx(cdx([0, 1, 2]), { ...subject, tarballSha256: 'cd'.repeat(32) }, runtime) as { serialNumber: string };
    expect(other.serialNumber).not.toBe(doc.serialNumber);
  });

  it('SPDX: namespace from the content, creation time from the epoch, packages and relationships sorted', () => {
    const spdx = (rev: boolean) => ({
      spdxVersion: 'SPDX-2.3', dataLicense: 'CC0-1.0', SPDXID: 'SPDXRef-DOCUMENT', name: 'x',
      documentNamespace: `http://spdx.org/spdxdocs/x-${Math.random()}`,
      creationInfo: { created: new Date().toISOString(), creators: ['Tool: npm/cli-11'] },
      documentDescribes: ['SPDXRef-Package-root'],
      packages: (rev ? ['root', 'a', 'dev'] : ['dev', 'a', 'root']).map((n) => ({ SPDXID: `SPDXRef-Package-${n}`, name: n, versionInfo: '1' })),
      relationships: (rev ? ['a', 'dev', 'root'] : ['root', 'dev', 'a']).map((n) => ({ spdxElementId: `SPDXRef-Package-${n}`, relationshipType: 'DEPENDENCY_OF', relatedSpdxElement: 'SPDXRef-Package-root' })),
    });
    const a = normalizeSpdx(spdx(false), subject, runtime);
    expect(JSON.stringify(normalizeSpdx(spdx(true), subject, runtime))).toBe(JSON.stringify(a));
    expect((a.relationships as { spdxElementId: string }[]).map((r) => r.spdxElementId)).toEqual(['SPDXRef-Package-a', 'SPDXRef-Package-root']);
    expect(a).toMatchObject({ name: 'unikctl@1.2.3', creationInfo: { created: '2023-11-14T22:13:20Z' } });
    expect(a.documentNamespace).toMatch(/^urn:uuid:/);
    expect((a.packages as { SPDXID: string }[]).map((p) => p.SPDXID)).toEqual(['SPDXRef-Package-a', 'SPDXRef-Package-root']);
    expect((a.packages as object[])[1]).toMatchObject({ packageFileName: 'unikctl-1.2.3.tgz', checksums: [{ algorithm: 'SHA256', checksumValue: subject.tarballSha256 }] });
  });

  it('name-based UUIDs are stable and distinct', () => {
    expect(nameUuid('a')).toBe(nameUuid('a'));
    expect(nameUuid('a')).not.toBe(nameUuid('b'));
  });
});

describe('provenance and SHA256SUMS', () => {
  it('is an in-toto v1 statement with a SLSA v1 predicate naming the commit and the inputs', () => {
    const st = provenanceStatement({
      subjects: [{ name: 'u.tgz', sha256: '11'.repeat(32) }], builderId: 'urn:b', commit: 'c0ffee', sourceDateEpoch: 5, skipTests: true,
      inputs: [{ path: 'package-lock.json', sha256: '22'.repeat(32) }], toolchain: [{ name: 'node', version: '20.0.0' }], byproducts: [],
    }) as { _type: string; predicateType: string; subject: unknown; predicate: { buildDefinition: { resolvedDependencies: unknown[] }; runDetails: { builder: { id: string } } } };
    expect(st._type).toBe('https://in-toto.io/Statement/v1');
    expect(st.predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(st.subject).toEqual([{ name: 'u.tgz', digest: { sha256: '11'.repeat(32) } }]);
    expect(st.predicate.runDetails.builder.id).toBe('urn:b');
    expect(st.predicate.buildDefinition.resolvedDependencies).toEqual([
      { name: 'source', digest: { gitCommit: 'c0ffee' } },
      { name: 'package-lock.json', digest: { sha256: '22'.repeat(32) } },
      { name: 'node', uri: 'pkg:generic/node@20.0.0' },
    ]);
  });

  it('writes sha256sum format in name order and reads it back', () => {
    const text = sha256Sums([{ name: 'b', sha256: 'f'.repeat(64) }, { name: 'a', sha256: '0'.repeat(64) }]);
    expect(text).toBe(`${'0'.repeat(64)}  a\n${'f'.repeat(64)}  b\n`);
    expect([...parseSums(text)]).toEqual([['a', '0'.repeat(64)], ['b', 'f'.repeat(64)]]);
    expect(() => parseSums('nonsense\n')).toThrow(/bad line/);
  });
});
