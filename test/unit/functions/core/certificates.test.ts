import { createPublicKey, ECDH, generateKeyPairSync } from 'node:crypto';
import { certificateKeyFingerprint, keyFingerprint } from '../../../../functions/core/certificates.js';
import { generateKeys, makeCertificate } from '../../../fixtures/pki.js';

/** The DER SPKI of a P-256 key with its point compressed (33 bytes) instead of uncompressed (65). */
function compressedSpki(uncompressed: Buffer): Buffer {
  const point = uncompressed.subarray(uncompressed.length - 65);
  const compressed = ECDH.convertKey(point, 'prime256v1', undefined, undefined, 'compressed') as Buffer;
  return Buffer.concat([Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'), compressed]);
}

describe('keyFingerprint (the issue intent)', () => {
  it('is the same for a key whether its EC point is compressed or not, and differs between keys', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const compressed = compressedSpki(spki);
    expect(createPublicKey({ key: compressed, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' }).equals(spki)).toBe(false);

    expect(keyFingerprint(compressed)).toBe(keyFingerprint(spki));
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
    expect(keyFingerprint(other)).not.toBe(keyFingerprint(spki));
  });

  it('matches the certificate issued for the key (RSA and EC)', async () => {
    for (const kind of ['ec-p256', 'rsa-2048'] as const) {
      const key = await generateKeys(kind);
      const certificate = await makeCertificate('sensor-1', key);
      const spki = Buffer.from(await crypto.subtle.exportKey('spki', key.keys.publicKey));
      expect(certificateKeyFingerprint(certificate.pem)).toBe(keyFingerprint(spki));
    }
  });
});
