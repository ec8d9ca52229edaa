import { createHash, createPrivateKey, createPublicKey, generateKeyPair, X509Certificate, type KeyObject } from 'node:crypto';
import { csrPemOf, encodeCsr } from './csr.js';

/**
 * Key pairs made on the device. The private key never leaves the device: only its CSR does.
 * PROTOCOL.md device rule 1 names the algorithms the cloud accepts; `rsa-1024` exists only
 * so that the weak-key fault can send a key the cloud must refuse.
 */
export const KeyAlgorithm = {
  EcP256: 'ec-p256',
  EcP384: 'ec-p384',
  Rsa2048: 'rsa-2048',
  Rsa1024: 'rsa-1024',
} as const;
export type KeyAlgorithm = (typeof KeyAlgorithm)[keyof typeof KeyAlgorithm];

/** What an operator may choose for a device (the weak key is a fault, never a choice). */
export const SELECTABLE_KEY_ALGORITHMS: readonly KeyAlgorithm[] = [KeyAlgorithm.EcP256, KeyAlgorithm.EcP384, KeyAlgorithm.Rsa2048];
export const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = KeyAlgorithm.EcP256;

/** A new private key as PKCS#8 PEM (generated off the event loop: RSA takes a while). */
export function generatePrivateKeyPem(algorithm: KeyAlgorithm): Promise<string> {
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, key: KeyObject): void => {
      if (error) reject(error);
      else resolve(key.export({ type: 'pkcs8', format: 'pem' }).toString());
    };
    switch (algorithm) {
      case KeyAlgorithm.EcP256:
        return generateKeyPair('ec', { namedCurve: 'prime256v1' }, (e, _pub, priv) => done(e, priv));
      case KeyAlgorithm.EcP384:
        return generateKeyPair('ec', { namedCurve: 'secp384r1' }, (e, _pub, priv) => done(e, priv));
      case KeyAlgorithm.Rsa2048:
        return generateKeyPair('rsa', { modulusLength: 2048 }, (e, _pub, priv) => done(e, priv));
      case KeyAlgorithm.Rsa1024:
        return generateKeyPair('rsa', { modulusLength: 1024 }, (e, _pub, priv) => done(e, priv));
      default:
        return reject(new Error(`unknown key algorithm ${String(algorithm)}`));
    }
  });
}

/** DER SubjectPublicKeyInfo of a private key, base64: how the device recognises "its" certificate. */
export function publicKeySpkiOfPrivateKey(privateKeyPem: string): string {
  return createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'der' }).toString('base64');
}

/** The id AWS IoT gives a certificate: the SHA-256 of its DER, in hex; undefined when the PEM is not a certificate. */
export function certificateIdOfPem(certificatePem: string): string | undefined {
  try {
    return createHash('sha256').update(new X509Certificate(certificatePem).raw).digest('hex');
  } catch {
    return undefined;
  }
}

/** DER SubjectPublicKeyInfo of a certificate's key, base64; undefined when the PEM is not a certificate. */
export function publicKeySpkiOfCertificate(certificatePem: string): string | undefined {
  try {
    return new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  } catch {
    return undefined;
  }
}

/**
 * A PKCS#10 request for the key, signed with it, subject CN = `commonName`. The subject is
 * given as a structured name, not a "CN=..." string, so a thing name is never parsed as a DN.
 */
export async function createCsrPem(privateKeyPem: string, commonName: string): Promise<string> {
  // Parsed once: PEM parsing is the costly part of a CSR after the signature itself.
  return csrPemOf(encodeCsr(createPrivateKey(privateKeyPem), commonName));
}
