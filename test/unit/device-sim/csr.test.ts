import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pkcs10CertificateRequest } from '@peculiar/x509';
import { checkCsr } from '../../../domain/csr-rules.js';
import { CsrEncodingError, encodeCsr } from '../../../device-sim/csr.js';
import { createCsrPem, generatePrivateKeyPem, type KeyAlgorithm } from '../../../device-sim/keys.js';

/** OpenSSL's own parse and signature check of the request: an independent reader of the DER. */
function opensslVerifies(csrPem: string): { ok: boolean; subject: string } {
  const dir = mkdtempSync(join(tmpdir(), 'rotor-csr-'));
  try {
    const file = join(dir, 'req.pem');
    writeFileSync(file, csrPem);
    const out = execFileSync('openssl', ['req', '-in', file, '-noout', '-verify', '-subject', '-nameopt', 'utf8,sep_comma_plus'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { ok: true, subject: out.trim() };
  } catch (error) {
    return { ok: false, subject: String((error as Error).message) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('device-sim/csr: the PKCS#10 request the device writes', () => {
  const algorithms: KeyAlgorithm[] = ['ec-p256', 'ec-p384', 'rsa-2048'];

  it.each(algorithms)('%s: OpenSSL and @peculiar/x509 both parse it and verify its signature', async (algorithm) => {
    const csrPem = await createCsrPem(await generatePrivateKeyPem(algorithm), 'sensor-0042');

    const openssl = opensslVerifies(csrPem);
    const parsed = new Pkcs10CertificateRequest(csrPem);

    expect(openssl).toEqual({ ok: true, subject: 'subject=CN=sensor-0042' });
    expect(await parsed.verify()).toBe(true);
    expect(parsed.subjectName.getField('CN')).toEqual(['sensor-0042']);
    expect(parsed.extensions).toEqual([]);
  });

  it('a thing name outside PrintableString (underscore, non-ASCII) is one UTF8String CN, as the cloud reads it', async () => {
    for (const name of ['line_7', 'capteur-é', 'a,CN=b']) {
      const csrPem = await createCsrPem(await generatePrivateKeyPem('ec-p256'), name);

      expect(checkCsr(csrPem, { thingName: name })).toMatchObject({ ok: true, facts: { commonName: name } });
      expect(new Pkcs10CertificateRequest(csrPem).subjectName.getField('CN')).toEqual([name]);
      expect(opensslVerifies(csrPem).ok).toBe(true);
    }
  });

  it('a long common name takes the long length forms and still verifies', async () => {
    const name = 'x'.repeat(200);
    const csrPem = await createCsrPem(await generatePrivateKeyPem('ec-p256'), name);

    expect(checkCsr(csrPem, { thingName: name })).toMatchObject({ ok: true });
    expect(opensslVerifies(csrPem).ok).toBe(true);
  });

  it('a key the cloud does not take for a CSR, or an empty name, is a clear error', () => {
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
    const ed = generateKeyPairSync('ed25519').privateKey;
    const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

    expect(() => encodeCsr(k1, 'x')).toThrow(new CsrEncodingError('EC curve secp256k1 is not supported for CSRs'));
    expect(() => encodeCsr(ed, 'x')).toThrow(new CsrEncodingError('ed25519 keys are not supported for CSRs'));
    expect(() => encodeCsr(p256, '')).toThrow(CsrEncodingError);
  });
});
