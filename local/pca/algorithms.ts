import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { cryptoProvider, type CryptoProvider } from '@peculiar/x509';
import { derToPem, pemToDer } from '../../domain/pem.js';
import { SigningAlgorithm } from '../../domain/signer.js';
import { AwsError } from '../types.js';

type CryptoKey = webcrypto.CryptoKey;

// @peculiar/x509 needs a WebCrypto provider; node's (as in local/iot/ca.ts).
cryptoProvider.set(webcrypto as unknown as Parameters<CryptoProvider['set']>[0]);

/** AWS Private CA's KeyAlgorithm values, as the API spells them (its SigningAlgorithm values are domain/signer.ts's). */
export const KeyAlgorithm = {
  EcPrime256v1: 'EC_prime256v1',
  EcSecp384r1: 'EC_secp384r1',
  Rsa2048: 'RSA_2048',
  Rsa4096: 'RSA_4096',
} as const;
export type KeyAlgorithm = (typeof KeyAlgorithm)[keyof typeof KeyAlgorithm];

/** The signing algorithms the local Private CA can sign with: all of AWS's (domain/signer.ts) but SM2's, which needs an SM2 key it cannot make. */
export type LocalSigningAlgorithm = Exclude<SigningAlgorithm, typeof SigningAlgorithm.Sm3WithSm2>;

type Family = 'EC' | 'RSA';

const KEYS: Record<KeyAlgorithm, { family: Family; generate: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams; curve?: string }> = {
  EC_prime256v1: { family: 'EC', generate: { name: 'ECDSA', namedCurve: 'P-256' }, curve: 'P-256' },
  EC_secp384r1: { family: 'EC', generate: { name: 'ECDSA', namedCurve: 'P-384' }, curve: 'P-384' },
  RSA_2048: { family: 'RSA', generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } },
  RSA_4096: { family: 'RSA', generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 4096, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } },
};

const SIGNING: Record<LocalSigningAlgorithm, { family: Family; hash: string }> = {
  SHA256WITHECDSA: { family: 'EC', hash: 'SHA-256' },
  SHA384WITHECDSA: { family: 'EC', hash: 'SHA-384' },
  SHA512WITHECDSA: { family: 'EC', hash: 'SHA-512' },
  SHA256WITHRSA: { family: 'RSA', hash: 'SHA-256' },
  SHA384WITHRSA: { family: 'RSA', hash: 'SHA-384' },
  SHA512WITHRSA: { family: 'RSA', hash: 'SHA-512' },
};

function invalidArgs(message: string): AwsError {
  return new AwsError('InvalidArgsException', message);
}

export function keyAlgorithmOf(value: unknown): KeyAlgorithm {
  if (typeof value === 'string' && value in KEYS) return value as KeyAlgorithm;
  throw invalidArgs(`KeyAlgorithm ${JSON.stringify(value)} is not one of ${Object.keys(KEYS).join(', ')}`);
}

export function signingAlgorithmOf(value: unknown): LocalSigningAlgorithm {
  if (typeof value === 'string' && value in SIGNING) return value as LocalSigningAlgorithm;
  if (value === SigningAlgorithm.Sm3WithSm2) throw invalidArgs(`SigningAlgorithm ${value} needs an SM2 key, which the local Private CA does not make: one of ${Object.keys(SIGNING).join(', ')} is expected`);
  throw invalidArgs(`SigningAlgorithm ${JSON.stringify(value)} is not one of ${Object.keys(SIGNING).join(', ')}`);
}

/** AWS: "The specified signing algorithm family (RSA or ECDSA) must match the algorithm family of the CA's secret key." */
export function requireSameFamily(key: KeyAlgorithm, signing: LocalSigningAlgorithm): void {
  if (KEYS[key].family !== SIGNING[signing].family) {
    throw invalidArgs(`SigningAlgorithm ${signing} does not match the CA's key algorithm ${key}`);
  }
}

export async function generateCaKey(algorithm: KeyAlgorithm): Promise<{ privateKeyPem: string; publicKey: CryptoKey; privateKey: CryptoKey }> {
  const keys = (await webcrypto.subtle.generateKey(KEYS[algorithm].generate, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const privateKeyPem = derToPem(new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), 'PRIVATE KEY');
  return { privateKeyPem, publicKey: keys.publicKey, privateKey: keys.privateKey };
}

/** The WebCrypto parameters that sign with this algorithm (for @peculiar/x509's signingAlgorithm). */
export function webSigningAlgorithm(key: KeyAlgorithm, signing: LocalSigningAlgorithm): webcrypto.EcdsaParams | webcrypto.Algorithm {
  requireSameFamily(key, signing);
  const { hash } = SIGNING[signing];
  return KEYS[key].family === 'EC' ? { name: 'ECDSA', hash } : ({ name: 'RSASSA-PKCS1-v1_5', hash } as webcrypto.Algorithm);
}

/**
 * The CA's private key imported for one signing algorithm: WebCrypto binds an RSA key to one
 * hash at import, so a CA that signs with SHA-256 and SHA-384 holds one import per hash.
 */
export async function importSigningKey(privateKeyPem: string, key: KeyAlgorithm, signing: LocalSigningAlgorithm): Promise<CryptoKey> {
  const der = pemToDer(privateKeyPem, 'PRIVATE KEY');
  if (!der) throw new Error('the persisted private CA key is not a PEM "PRIVATE KEY" block');
  const spec = KEYS[key];
  const params = spec.family === 'EC' ? { name: 'ECDSA', namedCurve: spec.curve } : { name: 'RSASSA-PKCS1-v1_5', hash: SIGNING[signing].hash };
  return webcrypto.subtle.importKey('pkcs8', der, params as webcrypto.EcKeyImportParams, true, ['sign']);
}

/** The public half of a PKCS#8 key (for the CA's own CSR), via a JWK round trip. */
export async function publicKeyOf(privateKeyPem: string, key: KeyAlgorithm): Promise<CryptoKey> {
  const privateKey = await importSigningKey(privateKeyPem, key, KEYS[key].family === 'EC' ? SigningAlgorithm.Sha256WithEcdsa : SigningAlgorithm.Sha256WithRsa);
  const jwk = await webcrypto.subtle.exportKey('jwk', privateKey);
  delete jwk.d; delete jwk.p; delete jwk.q; delete jwk.dp; delete jwk.dq; delete jwk.qi;
  jwk.key_ops = ['verify'];
  const spec = KEYS[key];
  const params = spec.family === 'EC' ? { name: 'ECDSA', namedCurve: spec.curve } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  return webcrypto.subtle.importKey('jwk', jwk, params as webcrypto.EcKeyImportParams, true, ['verify']);
}

/** The signing algorithm a CA uses for its own CSR when none is asked: the configuration's. */
export function familyOf(key: KeyAlgorithm): Family {
  return KEYS[key].family;
}
