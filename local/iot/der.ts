/**
 * Just enough DER (X.690) to read a PKCS#10 request and write an X.509 certificate without
 * asn1js: the CA's hot path (a CSR in, a device certificate out) spent most of its time in
 * asn1js's schema parsing and serialisation (docs/demo.md, session 12). Anything this reader
 * does not know is refused with DerError, and the CA then takes its general path.
 */

export class DerError extends Error {
  override readonly name = 'DerError';
}

/** One TLV: its tag, where its contents are, and where the whole element ends. */
export interface DerElement {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  /** Offset of the first content byte. */
  readonly contentStart: number;
  /** Offset just past the last content byte. */
  readonly end: number;
}

export const Tag = {
  Integer: 0x02,
  BitString: 0x03,
  OctetString: 0x04,
  Null: 0x05,
  Oid: 0x06,
  Utf8String: 0x0c,
  PrintableString: 0x13,
  UtcTime: 0x17,
  GeneralizedTime: 0x18,
  Sequence: 0x30,
  Set: 0x31,
  /** [0] constructed, context-specific. */
  Context0: 0xa0,
  /** [3] constructed, context-specific. */
  Context3: 0xa3,
} as const;

/** Reads the element at `offset`; its contents must end within `limit`. Definite lengths only, as DER requires. */
export function readElement(bytes: Uint8Array, offset: number, limit = bytes.length): DerElement {
  if (offset + 2 > limit) throw new DerError(`truncated element at ${offset}`);
  const tag = bytes[offset];
  if ((tag & 0x1f) === 0x1f) throw new DerError(`multi-byte tag at ${offset}`);
  let length = bytes[offset + 1];
  let contentStart = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new DerError(`unsupported length form at ${offset}`);
    if (contentStart + count > limit) throw new DerError(`truncated length at ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[contentStart + i];
    contentStart += count;
    if (length < 0x80 || (count > 1 && bytes[offset + 2] === 0)) throw new DerError(`non-minimal length at ${offset}`);
  }
  const end = contentStart + length;
  if (end > limit) throw new DerError(`element at ${offset} overruns its container`);
  return { tag, start: offset, contentStart, end };
}

/** The element at `offset`, which must carry `tag`. */
export function expectElement(bytes: Uint8Array, offset: number, tag: number, limit = bytes.length): DerElement {
  const element = readElement(bytes, offset, limit);
  if (element.tag !== tag) throw new DerError(`expected tag 0x${tag.toString(16)} at ${offset}, found 0x${element.tag.toString(16)}`);
  return element;
}

/** The children of a constructed element, in order; they must fill it exactly. */
export function children(bytes: Uint8Array, parent: DerElement): DerElement[] {
  const list: DerElement[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const child = readElement(bytes, offset, parent.end);
    list.push(child);
    offset = child.end;
  }
  return list;
}

/** The whole TLV's bytes (a view, not a copy). */
export function elementBytes(bytes: Uint8Array, element: DerElement): Uint8Array {
  return bytes.subarray(element.start, element.end);
}

/** The contents' bytes (a view, not a copy). */
export function contentBytes(bytes: Uint8Array, element: DerElement): Uint8Array {
  return bytes.subarray(element.contentStart, element.end);
}

/** An OBJECT IDENTIFIER's contents in dotted form. */
export function oidOf(bytes: Uint8Array, element: DerElement): string {
  if (element.tag !== Tag.Oid || element.end === element.contentStart) throw new DerError(`not an OBJECT IDENTIFIER at ${element.start}`);
  const arcs: number[] = [];
  let value = 0;
  for (let i = element.contentStart; i < element.end; i++) {
    value = value * 128 + (bytes[i] & 0x7f);
    if (!(bytes[i] & 0x80)) {
      if (arcs.length === 0) arcs.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else arcs.push(value);
      value = 0;
    }
  }
  if (bytes[element.end - 1] & 0x80) throw new DerError(`truncated OBJECT IDENTIFIER at ${element.start}`);
  return arcs.join('.');
}

// ---- writing ----------------------------------------------------------------------------

function lengthBytes(length: number): number[] {
  if (length < 0x80) return [length];
  const out: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) out.unshift(rest & 0xff);
  return [0x80 | out.length, ...out];
}

/** One TLV around the given contents. */
export function encode(tag: number, ...contents: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of contents) length += part.length;
  const header = [tag, ...lengthBytes(length)];
  const out = new Uint8Array(header.length + length);
  out.set(header, 0);
  let offset = header.length;
  for (const part of contents) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A non-negative INTEGER from big-endian magnitude bytes, minimally encoded. */
export function encodeUnsignedInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  return trimmed[0] & 0x80 ? encode(Tag.Integer, Uint8Array.of(0), trimmed) : encode(Tag.Integer, trimmed);
}

/** A BIT STRING with no unused bits. */
export function encodeBitString(bits: Uint8Array): Uint8Array {
  return encode(Tag.BitString, Uint8Array.of(0), bits);
}

const two = (n: number): string => String(n).padStart(2, '0');

/**
 * A certificate validity time as RFC 5280 4.1.2.5 says: UTCTime through 2049, GeneralizedTime
 * from 2050, whole seconds in UTC.
 */
export function encodeTime(date: Date): Uint8Array {
  const year = date.getUTCFullYear();
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  if (year < 1950 || year > 9999) throw new DerError(`${date.toISOString()} is outside what a certificate can say`);
  return year < 2050
    ? encode(Tag.UtcTime, Buffer.from(`${two(year % 100)}${rest}`, 'latin1'))
    : encode(Tag.GeneralizedTime, Buffer.from(`${year}${rest}`, 'latin1'));
}
