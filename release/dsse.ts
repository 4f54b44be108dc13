import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

/**
 * DSSE (Dead Simple Signing Envelope, github.com/secure-systems-lab/dsse) with Ed25519 keys in standard PEM
 * (PKCS#8 private, SPKI public). Ed25519 signatures are deterministic: the same payload and key give the same
 * envelope bytes, which is what lets two release builds compare their signatures too.
 */
export interface DsseEnvelope {
  payloadType: string;
  payload: string; // base64
  signatures: { keyid: string; sig: string }[]; // sig: base64
}

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

/** Pre-Authentication Encoding: what is signed, never the bare payload. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

/** The key id: SHA-256 of the public key's DER (SPKI), hex — the same for the private key and its public half. */
export function keyId(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex');
}

export function requireEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${what} is a ${key.asymmetricKeyType ?? key.type} key; an Ed25519 key is required`);
  return key;
}

export function signEnvelope(payloadType: string, payload: Buffer, privateKey: KeyObject): DsseEnvelope {
  requireEd25519(privateKey, 'the signing key');
  const sig = sign(null, pae(payloadType, payload), privateKey).toString('base64');
  return { payloadType, payload: payload.toString('base64'), signatures: [{ keyid: keyId(privateKey), sig }] };
}

/** The payload when a signature by `publicKey` verifies; otherwise an error saying why. */
export function verifyEnvelope(env: DsseEnvelope, publicKey: KeyObject): Buffer {
  requireEd25519(publicKey, 'the verification key');
  if (typeof env.payloadType !== 'string' || typeof env.payload !== 'string' || !Array.isArray(env.signatures)) {
    throw new Error('not a DSSE envelope (payloadType, payload, signatures)');
  }
  const payload = Buffer.from(env.payload, 'base64');
  const id = keyId(publicKey);
  const mine = env.signatures.filter((s) => s.keyid === id || s.keyid === '');
  if (mine.length === 0) throw new Error(`no signature by key ${id} (signed by ${env.signatures.map((s) => s.keyid).join(', ') || 'nobody'})`);
  const ok = mine.some((s) => verify(null, pae(env.payloadType, payload), publicKey, Buffer.from(s.sig, 'base64')));
  if (!ok) throw new Error(`the signature by key ${id} does not verify`);
  return payload;
}
