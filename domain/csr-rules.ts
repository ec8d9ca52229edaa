import 'reflect-metadata';
import { createPublicKey, verify as verifySignature, X509Certificate, type KeyObject } from 'node:crypto';
import { BasicConstraintsExtension, Pkcs10CertificateRequest } from '@peculiar/x509';
import { DerError, splitSigned } from './der.js';
import { pemToDer } from './pem.js';

/**
 * PROTOCOL.md cloud rule 4: the reasons a CSR is refused. Pure: the caller supplies the
 * thing name and the PEM of the certificate being replaced.
 */
export const CsrRejection = {
  InvalidPem: 'INVALID_PEM',
  BadSignature: 'BAD_SIGNATURE',
  WrongCommonName: 'WRONG_COMMON_NAME',
  WeakKey: 'WEAK_KEY',
  UnsupportedKey: 'UNSUPPORTED_KEY',
  CaRequested: 'CA_REQUESTED',
  KeyReused: 'KEY_REUSED',
} as const;
export type CsrRejection = (typeof CsrRejection)[keyof typeof CsrRejection];

export const MIN_RSA_BITS = 2048;
/** node:crypto's names for P-256 and P-384. */
export const ALLOWED_EC_CURVES: readonly string[] = ['prime256v1', 'secp384r1'];

export interface CsrFacts {
  commonName: string;
  keyType: 'rsa' | 'ec';
  /** RSA modulus bits, or the EC curve as node:crypto names it. */
  keyDetail: string;
  /** DER SubjectPublicKeyInfo, base64: what the key-reuse check and the device compare. */
  publicKeySpki: string;
}

export type CsrCheck =
  | { ok: true; facts: CsrFacts }
  | { ok: false; reason: CsrRejection; detail: string };

export interface CsrContext {
  thingName: string;
  /** PEM of the certificate being replaced; its key must not be re-used. */
  oldCertificatePem?: string;
}

/** The signature algorithms a CSR may be signed with, by OID: the hash, and the key type they need. */
export const SIGNATURE_ALGORITHMS_BY_OID: Readonly<Record<string, { hash: string; key: 'rsa' | 'ec' }>> = {
  '1.2.840.113549.1.1.11': { hash: 'sha256', key: 'rsa' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', key: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', key: 'rsa' },
  '1.2.840.10045.4.3.2': { hash: 'sha256', key: 'ec' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', key: 'ec' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', key: 'ec' },
};

const BASIC_CONSTRAINTS_OID = '2.5.29.19';

/**
 * Whether two public keys are the same key, compared on the key itself rather than on its
 * encoding: an EC point may be encoded compressed or uncompressed, and the same key must not
 * pass the reuse check by changing its encoding. JWK holds the canonical values (x and y of
 * the point; n and e of an RSA key).
 */
export function sameKey(a: KeyObject, b: KeyObject): boolean {
  if (a.asymmetricKeyType !== b.asymmetricKeyType) return false;
  const ja = a.export({ format: 'jwk' });
  const jb = b.export({ format: 'jwk' });
  if (ja.kty === 'EC') return ja.crv === jb.crv && ja.x === jb.x && ja.y === jb.y;
  if (ja.kty === 'RSA') return ja.n === jb.n && ja.e === jb.e;
  return false;
}

function reject(reason: CsrRejection, detail: string): CsrCheck {
  return { ok: false, reason, detail };
}

/** Checks a CSR against every rule; the first rule broken is the reason. */
export function checkCsr(csrPem: string, context: CsrContext): CsrCheck {
  if (typeof csrPem !== 'string') return reject(CsrRejection.InvalidPem, 'CSR is not a string');
  const der = pemToDer(csrPem, 'CERTIFICATE REQUEST');
  if (!der) return reject(CsrRejection.InvalidPem, 'not a PEM "CERTIFICATE REQUEST" block');

  let csr: Pkcs10CertificateRequest;
  let parts: ReturnType<typeof splitSigned>;
  let key: KeyObject;
  try {
    parts = splitSigned(der);
    csr = new Pkcs10CertificateRequest(der);
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (error) {
    const why = error instanceof DerError ? error.message : 'not a PKCS#10 certification request';
    return reject(CsrRejection.InvalidPem, why);
  }

  // Key rules come before the signature: an unsupported curve cannot be verified anyway.
  const keyType = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  let keyDetail: string;
  if (keyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) return reject(CsrRejection.WeakKey, `RSA key of ${bits} bits; at least ${MIN_RSA_BITS} required`);
    keyDetail = String(bits);
  } else if (keyType === 'ec') {
    const curve = details.namedCurve ?? 'unknown';
    if (!ALLOWED_EC_CURVES.includes(curve)) {
      return reject(CsrRejection.UnsupportedKey, `EC curve ${curve} is not allowed; use P-256 or P-384`);
    }
    keyDetail = curve;
  } else {
    return reject(CsrRejection.UnsupportedKey, `${keyType ?? 'unknown'} keys are not allowed; use EC P-256/P-384 or RSA`);
  }

  const algorithm = SIGNATURE_ALGORITHMS_BY_OID[parts.signatureAlgorithmOid];
  if (!algorithm || algorithm.key !== keyType) {
    return reject(CsrRejection.BadSignature, `signature algorithm ${parts.signatureAlgorithmOid} does not fit a ${keyType} key`);
  }
  let valid = false;
  try {
    valid = verifySignature(algorithm.hash, parts.tbs, key, parts.signature);
  } catch {
    valid = false;
  }
  if (!valid) return reject(CsrRejection.BadSignature, 'the signature does not verify with the CSR public key');

  const commonNames = csr.subjectName.getField('CN');
  if (commonNames.length !== 1 || commonNames[0] !== context.thingName) {
    return reject(
      CsrRejection.WrongCommonName,
      `subject CN is ${commonNames.length ? JSON.stringify(commonNames.join(',')) : 'missing'}; expected ${JSON.stringify(context.thingName)}`,
    );
  }

  const constraints = csr.extensions.find((ext) => ext.type === BASIC_CONSTRAINTS_OID);
  if (constraints && new BasicConstraintsExtension(constraints.rawData).ca) {
    return reject(CsrRejection.CaRequested, 'the CSR asks for CA basic constraints');
  }

  const spki = Buffer.from(csr.publicKey.rawData);
  if (context.oldCertificatePem && sameKey(new X509Certificate(context.oldCertificatePem).publicKey, key)) {
    return reject(CsrRejection.KeyReused, 'the CSR re-uses the key of the certificate being replaced');
  }

  return {
    ok: true,
    facts: { commonName: context.thingName, keyType, keyDetail, publicKeySpki: spki.toString('base64') },
  };
}
