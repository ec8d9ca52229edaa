import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import {
  DerError,
  Tag,
  children,
  contentBytes,
  elementBytes,
  encode,
  encodeBitString,
  encodeTime,
  encodeUnsignedInteger,
  expectElement,
  oidOf,
} from './der.js';
import { SIGNATURE_ALGORITHMS_BY_OID } from '../../domain/csr-rules.js';

/**
 * The CA's hot path in DER, with node:crypto doing the signatures: a PKCS#10 request read and
 * its signature checked, a device certificate written and signed. It writes what
 * @peculiar/x509's generator wrote for the same inputs (test/unit/local/iot/device-certificate.test.ts
 * holds it to that), at a fraction of the CPU: the generator round-trips every structure
 * through asn1js schemas and re-parses the certificate it made.
 */

/** The parts of a CSR a certificate is made from (views into the CSR's DER). */
export interface CsrParts {
  /** The subject Name, as encoded in the request. */
  readonly subject: Uint8Array;
  /** The SubjectPublicKeyInfo, as encoded in the request. */
  readonly publicKeyInfo: Uint8Array;
  /** The subjectPublicKey BIT STRING's key bytes (what the key identifier hashes). */
  readonly publicKey: Uint8Array;
  readonly signedInfo: Uint8Array;
  readonly signatureAlgorithm: string;
  readonly signature: Uint8Array;
}

/** The curves WebCrypto (and so AWS's own checks and the general path) accepts. */
const WEBCRYPTO_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

/** AlgorithmIdentifier ecdsa-with-SHA256 (parameters absent), what the CA signs with. */
const ECDSA_WITH_SHA256 = Uint8Array.from([0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
/** [0] { INTEGER 2 }: X.509 v3. */
const VERSION_3 = Uint8Array.from([0xa0, 0x03, 0x02, 0x01, 0x02]);
/** The id-at-commonName OBJECT IDENTIFIER. */
const COMMON_NAME_OID = Uint8Array.from([0x06, 0x03, 0x55, 0x04, 0x03]);
/** The SubjectKeyIdentifier extension's OBJECT IDENTIFIER. */
const SUBJECT_KEY_IDENTIFIER_OID = Uint8Array.from([0x06, 0x03, 0x55, 0x1d, 0x0e]);

/**
 * The CSR's parts, or undefined when the request is in a form this reader does not take (BER,
 * trailing bytes, a signature algorithm not in domain/csr-rules.ts's SIGNATURE_ALGORITHMS_BY_OID):
 * the caller then uses the general path, which gives the same answer for everything this reader does take.
 */
export function readCsr(der: Uint8Array): CsrParts | undefined {
  try {
    const request = expectElement(der, 0, Tag.Sequence);
    if (request.end !== der.length) return undefined;
    const [info, algorithm, signature, ...extra] = children(der, request);
    if (!info || !algorithm || !signature || extra.length > 0 || info.tag !== Tag.Sequence || algorithm.tag !== Tag.Sequence || signature.tag !== Tag.BitString) return undefined;
    const [version, subject, publicKeyInfo, attributes, ...rest] = children(der, info);
    if (!version || version.tag !== Tag.Integer || !subject || subject.tag !== Tag.Sequence || !publicKeyInfo || publicKeyInfo.tag !== Tag.Sequence) return undefined;
    if (!attributes || attributes.tag !== Tag.Context0 || rest.length > 0) return undefined;
    const [keyAlgorithm, keyBits, ...keyRest] = children(der, publicKeyInfo);
    if (!keyAlgorithm || keyAlgorithm.tag !== Tag.Sequence || !keyBits || keyBits.tag !== Tag.BitString || keyRest.length > 0) return undefined;
    const algorithmParts = children(der, algorithm);
    if (algorithmParts.length === 0) return undefined;
    const signatureBits = contentBytes(der, signature);
    const keyBytes = contentBytes(der, keyBits);
    if (signatureBits[0] !== 0 || keyBytes[0] !== 0) return undefined;
    return {
      subject: elementBytes(der, subject),
      publicKeyInfo: elementBytes(der, publicKeyInfo),
      publicKey: keyBytes.subarray(1),
      signedInfo: elementBytes(der, info),
      signatureAlgorithm: oidOf(der, algorithmParts[0]),
      signature: signatureBits.subarray(1),
    };
  } catch (error) {
    if (error instanceof DerError) return undefined;
    throw error;
  }
}

/** True, false, or undefined when the algorithm or key is not one checked here. */
export function csrSignatureVerifies(csr: CsrParts): boolean | undefined {
  const algorithm = SIGNATURE_ALGORITHMS_BY_OID[csr.signatureAlgorithm];
  if (!algorithm) return undefined;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(csr.publicKeyInfo), format: 'der', type: 'spki' });
  } catch {
    // A key WebCrypto cannot import either: the request does not verify.
    return false;
  }
  if (key.asymmetricKeyType !== algorithm.key) return false;
  if (algorithm.key === 'ec' && !WEBCRYPTO_CURVES.has(key.asymmetricKeyDetails?.namedCurve ?? '')) return undefined;
  try {
    return verify(algorithm.hash, csr.signedInfo, key, csr.signature);
  } catch {
    return false;
  }
}

/**
 * A Name with one attribute, CN = `commonName`, encoded as @peculiar/x509 encodes a string
 * DN's value: PrintableString when every character allows it, UTF8String otherwise.
 */
export function commonNameDer(commonName: string): Uint8Array {
  const printable = /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(commonName);
  const value = encode(printable ? Tag.PrintableString : Tag.Utf8String, Buffer.from(commonName, 'utf8'));
  return encode(Tag.Sequence, encode(Tag.Set, encode(Tag.Sequence, COMMON_NAME_OID, value)));
}

/** The SubjectKeyIdentifier extension (RFC 5280 4.2.1.2, method 1: SHA-1 of the key bytes), not critical. */
export function subjectKeyIdentifierDer(publicKey: Uint8Array): Uint8Array {
  const keyId = createHash('sha1').update(publicKey).digest();
  return encode(Tag.Sequence, SUBJECT_KEY_IDENTIFIER_OID, encode(Tag.OctetString, encode(Tag.OctetString, keyId)));
}

export interface CertificateFields {
  /** Big-endian magnitude of the (positive) serial number. */
  serialNumber: Uint8Array;
  /** The issuer Name, exactly as encoded in the CA's certificate. */
  issuer: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  subject: Uint8Array;
  publicKeyInfo: Uint8Array;
  /** Each an encoded Extension, in the order they appear. */
  extensions: readonly Uint8Array[];
}

/** The TBSCertificate of an X.509 v3 certificate signed with ecdsa-with-SHA256. */
export function tbsCertificateDer(fields: CertificateFields): Uint8Array {
  return encode(
    Tag.Sequence,
    VERSION_3,
    encodeUnsignedInteger(fields.serialNumber),
    ECDSA_WITH_SHA256,
    fields.issuer,
    encode(Tag.Sequence, encodeTime(fields.notBefore), encodeTime(fields.notAfter)),
    fields.subject,
    fields.publicKeyInfo,
    encode(Tag.Context3, encode(Tag.Sequence, ...fields.extensions)),
  );
}

/** The certificate: the TBSCertificate signed by `signingKey` (an EC key) with ECDSA over SHA-256. */
export function signCertificateDer(tbs: Uint8Array, signingKey: KeyObject): Uint8Array {
  return encode(Tag.Sequence, tbs, ECDSA_WITH_SHA256, encodeBitString(sign('sha256', tbs, signingKey)));
}

/** The subject Name of a certificate, exactly as encoded (what certificates it issues name as their issuer). */
export function subjectOfCertificate(der: Uint8Array): Uint8Array {
  const certificate = expectElement(der, 0, Tag.Sequence);
  const tbs = expectElement(der, certificate.contentStart, Tag.Sequence, certificate.end);
  const fields = children(der, tbs);
  // version [0] is optional in the encoding: skip it when present.
  const first = fields[0]?.tag === Tag.Context0 ? 1 : 0;
  const subject = fields[first + 4];
  if (!subject || subject.tag !== Tag.Sequence) throw new DerError('the certificate has no subject Name');
  return elementBytes(der, subject);
}
