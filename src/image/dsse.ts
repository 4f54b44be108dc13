/**
 * Ed25519 keys and DSSE envelopes (Dead Simple Signing Envelope, v1.0.0), with Node's own crypto: the format is
 * a few lines and fully specified, so no library is needed. Interoperability is checked against an independent
 * implementation (securesystemslib) in test/e2e/supply-chain.test.ts.
 *
 *   PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body      (LEN: ASCII decimal byte count)
 *   envelope        = { payload: base64(body), payloadType: type, signatures: [{ keyid, sig: base64(Sign(PAE)) }] }
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { UserError } from '../errors.js';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

export interface DsseSignature { keyid: string; sig: string; }
export interface DsseEnvelope { payload: string; payloadType: string; signatures: DsseSignature[]; }

/** The pre-authentication encoding the signature covers (DSSE protocol). */
export function pae(payloadType: string, body: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${body.length} `), body]);
}

/** Key id: sha256 of the public key's SubjectPublicKeyInfo DER, as `sha256:<hex>` (stable across PEM formatting). */
export function keyIdOf(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return `sha256:${createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

function requireEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new UserError('E_TRUST_CONFIG', `${what} is a ${key.asymmetricKeyType ?? 'symmetric'} key, not Ed25519`, {
      hint: 'make an Ed25519 key pair: unikctld keygen --out KEY (or openssl genpkey -algorithm ed25519 -out key.pem)',
    });
  }
  return key;
}

/** An Ed25519 private key from a PEM file (PKCS#8, as openssl genpkey writes it). */
export function loadPrivateKey(path: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(path));
  } catch (e) {
    throw new UserError('E_TRUST_CONFIG', `cannot read the signing key ${path}: ${(e as Error).message}`, { hint: 'give a PEM private key file (unikctld keygen writes one)' });
  }
  return requireEd25519(key, `signing key ${path}`);
}

/** An Ed25519 public key from PEM text (SPKI); a private key's PEM gives its public half. */
export function parsePublicKey(pem: string, what: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new UserError('E_TRUST_CONFIG', `${what} is not a PEM public key: ${(e as Error).message}`);
  }
  return requireEd25519(key, what);
}

/** A new Ed25519 key pair: `file` (PKCS#8 PEM, mode 0600) and `file.pub` (SPKI PEM). */
export function writeKeyPair(file: string, force: boolean): { keyid: string; publicKeyFile: string } {
  const pubFile = `${file}.pub`;
  for (const f of [file, pubFile]) {
    if (!force && existsSync(f)) throw new UserError('E_INVALID_ARGUMENT', `${f} exists`, { hint: 'choose another --out, or pass --force to replace it' });
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(pubFile, publicKey.export({ type: 'spki', format: 'pem' }));
  return { keyid: keyIdOf(publicKey), publicKeyFile: pubFile };
}

export const publicKeyPem = (key: KeyObject): string =>
  (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'pem' }).toString();

export function signEnvelope(payloadType: string, body: Buffer, key: KeyObject): DsseEnvelope {
  const sig = sign(null, pae(payloadType, body), key);
  return { payload: body.toString('base64'), payloadType, signatures: [{ keyid: keyIdOf(key), sig: sig.toString('base64') }] };
}

/** Whether `sig` is `key`'s Ed25519 signature over the envelope's PAE. */
export function verifySignature(env: DsseEnvelope, sig: DsseSignature, key: KeyObject): boolean {
  try {
    return verify(null, pae(env.payloadType, Buffer.from(env.payload, 'base64')), key, Buffer.from(sig.sig, 'base64'));
  } catch {
    return false;
  }
}

/** A parsed envelope, or null when the JSON is not shaped like one. */
export function parseEnvelope(text: string): DsseEnvelope | null {
  try {
    const e = JSON.parse(text) as Partial<DsseEnvelope>;
    if (typeof e.payload !== 'string' || typeof e.payloadType !== 'string' || !Array.isArray(e.signatures)) return null;
    if (!e.signatures.every((s) => typeof s?.keyid === 'string' && typeof s.sig === 'string')) return null;
    return e as DsseEnvelope;
  } catch {
    return null;
  }
}
