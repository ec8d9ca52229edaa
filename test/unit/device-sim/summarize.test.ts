import { createHash, X509Certificate } from 'node:crypto';
import { summarize } from '../../../device-sim/agent.js';
import { createCa, issueCertificate, newEcKeyPem } from './pki.js';

describe('summarize (what the reducer learns from the key store at boot)', () => {
  it('gives the current certificate\'s id as AWS IoT computes it: SHA-256 of the DER', async () => {
    // Prepare
    const keyPem = newEcKeyPem();
    const certPem = await issueCertificate(await createCa(), keyPem, 'sensor-0001');

    // Act
    const summary = summarize({ current: { keyPem, certPem }, repaired: [] });

    // Assess
    expect(summary).toEqual({ current: true, currentCertificateId: createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex') });
  });

  it('gives no id when there is no current pair, or its certificate does not parse', () => {
    expect(summarize({ repaired: [] })).toEqual({ current: false });
    expect(summarize({ current: { keyPem: 'k', certPem: 'not a certificate' }, repaired: [] })).toEqual({ current: true });
  });
});
