import { checkCsr, CsrRejection } from '../../../domain/csr-rules.js';
import { X509Certificate } from 'node:crypto';
import { generateKeys, makeCertificate, makeCsr, opensslCompressedPointCsr, opensslCsr, tamperSignature, type KeyKind } from '../../fixtures/pki.js';

const THING = 'sensor-0001';

describe('checkCsr (PROTOCOL.md cloud rule 4) on real CSRs', () => {
  it.each<KeyKind>(['ec-p256', 'ec-p384', 'rsa-2048'])('accepts a %s CSR for the thing', async (kind) => {
    // Prepare
    const csr = await makeCsr({ commonName: THING, key: await generateKeys(kind) });

    // Act
    const result = checkCsr(csr, { thingName: THING });

    // Assess
    expect(result).toMatchObject({ ok: true, facts: { commonName: THING, keyType: kind.startsWith('rsa') ? 'rsa' : 'ec' } });
  });

  it('accepts a new key while the old certificate has another key', async () => {
    const old = await makeCertificate(THING, await generateKeys('ec-p256'));
    const csr = await makeCsr({ commonName: THING, key: await generateKeys('ec-p256') });

    expect(checkCsr(csr, { thingName: THING, oldCertificatePem: old.pem }).ok).toBe(true);
  });

  const rejections: [string, () => Promise<string>, CsrRejection][] = [
    ['garbage text', async () => 'this is not a CSR', CsrRejection.InvalidPem],
    ['a PEM block of the wrong type', async () => (await makeCertificate(THING, await generateKeys('ec-p256'))).pem, CsrRejection.InvalidPem],
    [
      'a CSR PEM whose body is not DER',
      async () => '-----BEGIN CERTIFICATE REQUEST-----\nAAAAAAAAAAAAAAAA\n-----END CERTIFICATE REQUEST-----\n',
      CsrRejection.InvalidPem,
    ],
    ['a CSR whose signature bytes were tampered with', async () => tamperSignature(await makeCsr({ commonName: THING, key: await generateKeys('ec-p256') })), CsrRejection.BadSignature],
    [
      'a CSR signed by a different key than its public key',
      async () => makeCsr({ commonName: THING, key: await generateKeys('ec-p256'), signWith: await generateKeys('ec-p256') }),
      CsrRejection.BadSignature,
    ],
    ['a CSR for another thing', async () => makeCsr({ commonName: 'sensor-0002', key: await generateKeys('ec-p256') }), CsrRejection.WrongCommonName],
    ['an RSA-1024 CSR (openssl)', async () => opensslCsr(THING, 'rsa-1024'), CsrRejection.WeakKey],
    ['a P-521 CSR', async () => makeCsr({ commonName: THING, key: await generateKeys('ec-p521') }), CsrRejection.UnsupportedKey],
    ['a secp256k1 CSR (openssl)', async () => opensslCsr(THING, 'secp256k1'), CsrRejection.UnsupportedKey],
    ['a CSR asking for CA:true', async () => makeCsr({ commonName: THING, key: await generateKeys('ec-p256'), ca: true }), CsrRejection.CaRequested],
  ];

  it.each(rejections)('rejects %s', async (_name, make, reason) => {
    // Prepare
    const csr = await make();

    // Act
    const result = checkCsr(csr, { thingName: THING });

    // Assess
    expect(result).toMatchObject({ ok: false, reason });
    if (!result.ok) expect(result.detail.length).toBeGreaterThan(0);
  });

  it('rejects a CSR that re-uses the key of the certificate being replaced', async () => {
    // Prepare
    const key = await generateKeys('ec-p256');
    const old = await makeCertificate(THING, key);
    const csr = await makeCsr({ commonName: THING, key });

    // Act
    const result = checkCsr(csr, { thingName: THING, oldCertificatePem: old.pem });

    // Assess
    expect(result).toMatchObject({ ok: false, reason: CsrRejection.KeyReused });
  });

  it('rejects the old key even when the CSR encodes it as a compressed EC point (key reuse is checked on the key)', async () => {
    // Prepare: the old certificate carries the uncompressed point; the CSR the compressed one.
    const key = await generateKeys('ec-p256');
    const old = await makeCertificate(THING, key);
    const csr = await opensslCompressedPointCsr(THING, key);
    const oldSpki = new X509Certificate(old.pem).publicKey.export({ type: 'spki', format: 'der' });
    expect(csr).toContain('BEGIN CERTIFICATE REQUEST');

    // Act
    const result = checkCsr(csr, { thingName: THING, oldCertificatePem: old.pem });

    // Assess: a different encoding (33-byte point, prefix 02/03), the same key.
    expect(result).toMatchObject({ ok: false, reason: CsrRejection.KeyReused });
    const accepted = checkCsr(csr, { thingName: THING });
    expect(accepted.ok).toBe(true);
    if (accepted.ok) expect(Buffer.from(accepted.facts.publicKeySpki, 'base64').equals(oldSpki)).toBe(false);
  });

  it('rejects input that is not a string', () => {
    expect(checkCsr(42 as unknown as string, { thingName: THING })).toMatchObject({ ok: false, reason: CsrRejection.InvalidPem });
  });
});
