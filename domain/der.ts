/**
 * Just enough DER to split a signed PKCS#10 request into the bytes that were signed, the
 * signature algorithm and the signature, so the signature is checked with node:crypto
 * exactly as it was made (ECDSA signatures stay DER-encoded; no library re-encodes them).
 */
export interface Tlv {
  tag: number;
  /** Offset of the whole element (tag included) in the input. */
  start: number;
  /** Offset of the contents. */
  contentStart: number;
  /** Offset just past the element. */
  end: number;
}

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

export function readTlv(buf: Uint8Array, offset: number): Tlv {
  if (offset + 2 > buf.length) throw new DerError('truncated element');
  const tag = buf[offset];
  let len = buf[offset + 1];
  let pos = offset + 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    if (count === 0 || count > 4) throw new DerError('unsupported length encoding');
    if (pos + count > buf.length) throw new DerError('truncated length');
    len = 0;
    for (let i = 0; i < count; i++) len = len * 256 + buf[pos + i];
    pos += count;
  }
  const end = pos + len;
  if (end > buf.length) throw new DerError('element runs past the end of the input');
  return { tag, start: offset, contentStart: pos, end };
}

/** The children of a constructed element. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = parent.contentStart;
  while (pos < parent.end) {
    const child = readTlv(buf, pos);
    out.push(child);
    pos = child.end;
  }
  return out;
}

export function decodeOid(bytes: Uint8Array): string {
  if (bytes.length === 0) throw new DerError('empty OID');
  const parts: number[] = [Math.floor(bytes[0] / 40), bytes[0] % 40];
  let value = 0;
  for (let i = 1; i < bytes.length; i++) {
    value = value * 128 + (bytes[i] & 0x7f);
    if (!(bytes[i] & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

const SEQUENCE = 0x30;
const OID = 0x06;
const BIT_STRING = 0x03;

export interface SignedParts {
  tbs: Uint8Array;
  signatureAlgorithmOid: string;
  signature: Uint8Array;
}

/** Splits SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING } (a CSR or a certificate). */
export function splitSigned(der: Uint8Array): SignedParts {
  const outer = readTlv(der, 0);
  if (outer.tag !== SEQUENCE || outer.end !== der.length) throw new DerError('not a single DER SEQUENCE');
  const [tbs, alg, sig] = children(der, outer);
  if (!tbs || !alg || !sig || tbs.tag !== SEQUENCE || alg.tag !== SEQUENCE || sig.tag !== BIT_STRING) {
    throw new DerError('not a signed structure');
  }
  const [oid] = children(der, alg);
  if (!oid || oid.tag !== OID) throw new DerError('signature algorithm has no OID');
  // The first content byte of a BIT STRING counts the unused bits; signatures use none.
  if (der[sig.contentStart] !== 0) throw new DerError('signature has unused bits');
  return {
    tbs: der.subarray(tbs.start, tbs.end),
    signatureAlgorithmOid: decodeOid(der.subarray(oid.contentStart, oid.end)),
    signature: der.subarray(sig.contentStart + 1, sig.end),
  };
}
