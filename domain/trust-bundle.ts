import { createHash, X509Certificate } from 'node:crypto';
import { pemToDer } from './pem.js';

/**
 * Protocol v1.2: a server trust bundle is the PEM text of one or more CA certificates a device
 * verifies the server against. This is the one place that decides whether a bundle is usable
 * and what its id is; the device (simulator) and, next, the cloud's `rotor trust push` use it.
 */

/** Upper bounds: a bundle rides in one MQTT message and is stored on small devices. */
export const MAX_BUNDLE_CHARS = 65_536;
export const MAX_BUNDLE_CERTIFICATES = 10;

export interface BundleCertificate {
  /** SHA-256 of the DER, hex: the same id AWS IoT gives a certificate. */
  fingerprint: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  pem: string;
}

export interface TrustBundle {
  bundleId: string;
  certificates: BundleCertificate[];
}

export type BundleParse = { ok: true; value: TrustBundle } | { ok: false; error: string };

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;
const BUNDLE_ID = /^[0-9a-f]{64}$/;

export function isBundleId(value: string): boolean {
  return BUNDLE_ID.test(value);
}

/**
 * The bundle's id: SHA-256 (hex) over the DER of its certificates, in bundle order. Computed on
 * the DER, not the text, so line endings and blank lines do not change it.
 */
export function bundleIdOf(ders: readonly Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const der of ders) hash.update(der);
  return hash.digest('hex');
}

/**
 * Parses a bundle: only CERTIFICATE blocks and whitespace, at least one, each a CA certificate
 * (basicConstraints cA = true) valid at `now`, no duplicates. Bad input gets one clear error.
 */
export function parseTrustBundle(pem: string, now: Date): BundleParse {
  if (pem.length === 0) return { ok: false, error: 'the bundle is empty' };
  if (pem.length > MAX_BUNDLE_CHARS) return { ok: false, error: `the bundle is longer than ${MAX_BUNDLE_CHARS} characters` };
  const blocks = [...pem.matchAll(BLOCK)];
  const outside = pem.replace(BLOCK, '').trim();
  if (outside.length > 0) return { ok: false, error: 'the bundle holds text outside its PEM blocks' };
  if (blocks.length === 0) return { ok: false, error: 'the bundle holds no certificate' };
  if (blocks.length > MAX_BUNDLE_CERTIFICATES) return { ok: false, error: `the bundle holds more than ${MAX_BUNDLE_CERTIFICATES} certificates` };
  const certificates: BundleCertificate[] = [];
  const ders: Uint8Array[] = [];
  for (const [index, block] of blocks.entries()) {
    const n = index + 1;
    if (block[1] !== 'CERTIFICATE') return { ok: false, error: `block ${n} is a ${block[1]}, not a CERTIFICATE` };
    const der = pemToDer(block[0], 'CERTIFICATE');
    if (!der) return { ok: false, error: `certificate ${n} is not valid PEM` };
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(der);
    } catch {
      return { ok: false, error: `certificate ${n} is not an X.509 certificate` };
    }
    if (!cert.ca) return { ok: false, error: `certificate ${n} (${cert.subject.replace(/\n/g, ', ')}) is not a CA certificate` };
    const notBefore = new Date(cert.validFrom);
    const notAfter = new Date(cert.validTo);
    if (now < notBefore || now > notAfter) {
      return { ok: false, error: `certificate ${n} (${cert.subject.replace(/\n/g, ', ')}) is not valid now: ${notBefore.toISOString()} – ${notAfter.toISOString()}` };
    }
    const fingerprint = createHash('sha256').update(der).digest('hex');
    if (certificates.some((c) => c.fingerprint === fingerprint)) return { ok: false, error: `certificate ${n} appears twice` };
    certificates.push({
      fingerprint,
      subject: cert.subject.replace(/\n/g, ', '),
      notBefore: notBefore.toISOString(),
      notAfter: notAfter.toISOString(),
      pem: cert.toString(),
    });
    ders.push(der);
  }
  return { ok: true, value: { bundleId: bundleIdOf(ders), certificates } };
}
