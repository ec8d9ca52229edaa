import { createPublicKey, sign, type KeyObject } from 'node:crypto';

/**
 * PKCS#10 (RFC 2986) certification requests as the device writes them: subject CN = the thing
 * name, the key's SubjectPublicKeyInfo, no attributes, signed with the key. The DER is written
 * directly with node:crypto's signature: the request has one fixed shape, and building it
 * through a generic ASN.1 object model cost ~12 ms of CPU per CSR (a third of a simulated
 * device's work per rotation, and of the factory line's at 10,000 devices) against well under
 * one here. domain/csr-rules.ts parses what this writes with @peculiar/x509, as the cloud does.
 */
export class CsrEncodingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CsrEncodingError';
  }
}

interface SignatureAlgorithm {
  hash: 'sha256' | 'sha384';
  /** The DER AlgorithmIdentifier of the signature. */
  identifier: Buffer;
}

const hex = (value: string): Buffer => Buffer.from(value, 'hex');

// ecdsa-with-SHA256 / -SHA384 (RFC 5758: no parameters); sha256WithRSAEncryption (RFC 4055: NULL parameters).
const ECDSA_SHA256: SignatureAlgorithm = { hash: 'sha256', identifier: hex('300a06082a8648ce3d040302') };
const ECDSA_SHA384: SignatureAlgorithm = { hash: 'sha384', identifier: hex('300a06082a8648ce3d040303') };
const RSA_SHA256: SignatureAlgorithm = { hash: 'sha256', identifier: hex('300d06092a864886f70d01010b0500') };
/** id-at-commonName, 2.5.4.3. */
const COMMON_NAME_OID = hex('0603550403');
const TAG = { integer: 0x02, bitString: 0x03, utf8String: 0x0c, printableString: 0x13, sequence: 0x30, set: 0x31, attributes: 0xa0 } as const;

function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return RSA_SHA256;
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return ECDSA_SHA256;
    if (curve === 'secp384r1') return ECDSA_SHA384;
    throw new CsrEncodingError(`EC curve ${curve ?? 'unknown'} is not supported for CSRs`);
  }
  throw new CsrEncodingError(`${key.asymmetricKeyType ?? 'unknown'} keys are not supported for CSRs`);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const length = body.length;
  let header: Buffer;
  if (length < 0x80) header = Buffer.from([tag, length]);
  else if (length < 0x100) header = Buffer.from([tag, 0x81, length]);
  else if (length < 0x10000) header = Buffer.from([tag, 0x82, length >> 8, length & 0xff]);
  else throw new CsrEncodingError(`a DER element of ${length} bytes is too long for a CSR`);
  return Buffer.concat([header, body]);
}

/** X.520's PrintableString alphabet; anything else (an underscore, a non-ASCII letter) goes as UTF8String. */
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

function directoryString(value: string): Buffer {
  return PRINTABLE.test(value) ? tlv(TAG.printableString, Buffer.from(value, 'ascii')) : tlv(TAG.utf8String, Buffer.from(value, 'utf8'));
}

/** The DER of a CSR for `privateKey`, subject CN = `commonName`, signed with it. */
export function encodeCsr(privateKey: KeyObject, commonName: string): Buffer {
  if (commonName.length === 0) throw new CsrEncodingError('a CSR needs a common name');
  const algorithm = signatureAlgorithmFor(privateKey);
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  // The subject is one RDN holding one CN: a thing name is never parsed as a DN string.
  const subject = tlv(TAG.sequence, tlv(TAG.set, tlv(TAG.sequence, COMMON_NAME_OID, directoryString(commonName))));
  const info = tlv(TAG.sequence, tlv(TAG.integer, Buffer.from([0])), subject, spki, tlv(TAG.attributes));
  const signature = sign(algorithm.hash, info, privateKey);
  return tlv(TAG.sequence, info, algorithm.identifier, tlv(TAG.bitString, Buffer.from([0]), signature));
}

export function csrPemOf(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE REQUEST-----\n${lines.join('\n')}\n-----END CERTIFICATE REQUEST-----`;
}
