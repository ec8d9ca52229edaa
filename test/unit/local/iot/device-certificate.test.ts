import 'reflect-metadata';
import { createPrivateKey, webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Pkcs10CertificateRequest,
  Pkcs10CertificateRequestGenerator,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
  type PublicKey,
} from '@peculiar/x509';
import { derToPem, pemToDer } from '../../../../domain/pem.js';
import { createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem } from '../../../../device-sim/keys.js';
import { LocalCa } from '../../../../local/iot/ca.js';
import { children, encode, expectElement, Tag } from '../../../../local/iot/der.js';
import { readCsr } from '../../../../local/iot/device-certificate.js';
import { AwsError } from '../../../../local/types.js';

/**
 * The CA's DER path (local/iot/device-certificate.ts) against what it replaced: for the same
 * request, serial and validity it writes the TBSCertificate @peculiar/x509's generator wrote,
 * byte for byte; node's X.509 (OpenSSL) verifies what it signs; a request whose signature does
 * not verify is refused as before.
 */

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 } as const;

function derOf(pem: string, label: string): Uint8Array {
  const der = pemToDer(pem, label);
  if (!der) throw new Error(`not a ${label}`);
  return der;
}

/** The TBSCertificate and the serial number of a certificate, as encoded. */
function tbsOf(pem: string): { tbs: Buffer; serial: string } {
  const der = derOf(pem, 'CERTIFICATE');
  const certificate = expectElement(der, 0, Tag.Sequence);
  const tbs = children(der, certificate)[0];
  const serial = children(der, tbs)[1];
  return { tbs: Buffer.from(der.subarray(tbs.start, tbs.end)), serial: Buffer.from(der.subarray(serial.contentStart, serial.end)).toString('hex') };
}

/** What LocalCa.issue wrote with @peculiar/x509 before the DER path, for this subject and key. */
async function peculiarCertificate(ca: LocalCa, subject: string, publicKey: PublicKey | webcrypto.CryptoKey, serial: string, notBefore: Date, notAfter: Date): Promise<string> {
  const caCertificate = new X509Certificate(ca.certificatePem);
  const signingKey = await webcrypto.subtle.importKey('pkcs8', derOf(ca.material().privateKeyPem, 'PRIVATE KEY'), P256, false, ['sign']);
  const certificate = await X509CertificateGenerator.create({
    serialNumber: serial,
    subject,
    issuer: caCertificate.subjectName,
    notBefore,
    notAfter,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    publicKey,
    signingKey,
    extensions: [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth]),
      await SubjectKeyIdentifierExtension.create(publicKey),
      await AuthorityKeyIdentifierExtension.create(caCertificate.publicKey),
    ],
  });
  return certificate.toString('pem');
}

async function rsaCsr(name: string): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  return (await Pkcs10CertificateRequestGenerator.create({ name, keys, signingAlgorithm: RSA }, webcrypto)).toString('pem');
}

describe('the CA\'s DER path', () => {
  let ca: LocalCa;
  let caCertificate: NodeX509Certificate;

  beforeAll(async () => {
    ca = await LocalCa.create('Rotor DER test CA');
    caCertificate = new NodeX509Certificate(ca.certificatePem);
  });

  it('writes the TBSCertificate @peculiar/x509 wrote for a device CSR, UTCTime and GeneralizedTime alike', async () => {
    const csrPem = await createCsrPem(await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM), 'thing-0001');
    const csr = new Pkcs10CertificateRequest(csrPem);
    for (const notAfter of [new Date('2049-12-31T23:59:59Z'), new Date('2050-01-01T00:00:00.250Z')]) {
      const notBefore = new Date('2026-12-01T04:27:41.789Z');
      const issued = await ca.signCsr(csrPem, { notBefore, notAfter });
      const { tbs, serial } = tbsOf(issued.certificatePem);
      const reference = tbsOf(await peculiarCertificate(ca, csr.subject, csr.publicKey, serial, notBefore, notAfter));
      expect(tbs.toString('hex')).toBe(reference.tbs.toString('hex'));
      expect(issued.notBefore.toISOString()).toBe('2026-12-01T04:27:41.000Z');
      expect(issued.notAfter.toISOString()).toBe(new Date(Math.floor(notAfter.getTime() / 1000) * 1000).toISOString());
      const node = new NodeX509Certificate(issued.certificatePem);
      expect(node.verify(caCertificate.publicKey)).toBe(true);
      expect(node.checkIssued(caCertificate)).toBe(true);
      expect(node.subject).toBe('CN=thing-0001');
      expect(new Date(node.validTo).getTime()).toBe(issued.notAfter.getTime());
    }
  });

  it('writes the TBSCertificate @peculiar/x509 wrote for a key made here, UTF8String for a name that is not printable', async () => {
    const validity = { notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2027-01-01T00:00:00Z') };
    for (const name of ['thing_with_underscore', 'plain-thing:1']) {
      const issued = await ca.createKeyAndCertificate(validity, name);
      const { tbs, serial } = tbsOf(issued.certificatePem);
      const publicKey = await webcrypto.subtle.importKey('spki', derOf(issued.publicKeyPem, 'PUBLIC KEY'), P256, true, ['verify']);
      const reference = tbsOf(await peculiarCertificate(ca, `CN=${name}`, publicKey, serial, validity.notBefore, validity.notAfter));
      expect(tbs.toString('hex')).toBe(reference.tbs.toString('hex'));
      const node = new NodeX509Certificate(issued.certificatePem);
      expect(node.checkPrivateKey(createPrivateKey(issued.privateKeyPem))).toBe(true);
      expect(node.verify(caCertificate.publicKey)).toBe(true);
    }
  });

  it('signs an RSA CSR, keeping its key and subject', async () => {
    const csrPem = await rsaCsr('CN=rsa-device, O=Example');
    const issued = await ca.signCsr(csrPem, { notBefore: new Date(Date.now() - 60_000), notAfter: new Date('2049-12-31T23:59:59Z') });
    const node = new NodeX509Certificate(issued.certificatePem);
    expect(node.verify(caCertificate.publicKey)).toBe(true);
    expect(node.subject).toBe('CN=rsa-device\nO=Example');
    const csrKey = Buffer.from(new Pkcs10CertificateRequest(csrPem).publicKey.rawData);
    expect(node.publicKey.export({ type: 'spki', format: 'der' }).equals(csrKey)).toBe(true);
  });

  it('names a certificate for a CSR without a subject CN=AWS IoT Certificate, as before', async () => {
    const keys = (await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csrPem = (await Pkcs10CertificateRequestGenerator.create({ name: [], keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } }, webcrypto)).toString('pem');
    const issued = await ca.signCsr(csrPem, { notBefore: new Date(Date.now() - 60_000), notAfter: new Date('2049-12-31T23:59:59Z') });
    expect(new NodeX509Certificate(issued.certificatePem).subject).toBe('CN=AWS IoT Certificate');
  });

  it('refuses a CSR whose signature does not verify, and one that is not PKCS#10', async () => {
    const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date('2049-12-31T23:59:59Z') };
    const der = derOf(await createCsrPem(await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM), 'thing-0002'), 'CERTIFICATE REQUEST');
    // The subject's last byte, changed: the signature no longer covers what the request says.
    const tampered = Uint8Array.from(der);
    const subjectEnd = children(tampered, children(tampered, expectElement(tampered, 0, Tag.Sequence))[0])[1].end;
    tampered[subjectEnd - 1] ^= 0x01;
    await expect(ca.signCsr(derToPem(tampered, 'CERTIFICATE REQUEST'), validity)).rejects.toThrow(new AwsError('InvalidRequestException', 'the signature of the certificate signing request does not verify'));
    const notPkcs10 = derToPem(encode(Tag.Sequence, encode(Tag.Integer, Uint8Array.of(1))), 'CERTIFICATE REQUEST');
    await expect(ca.signCsr(notPkcs10, validity)).rejects.toThrow('certificateSigningRequest is not a valid PKCS#10 request');
    await expect(ca.signCsr('not a pem', validity)).rejects.toThrow('certificateSigningRequest is not a PEM "CERTIFICATE REQUEST"');
  });

  it('leaves to the general path a request it does not read: trailing or missing bytes', async () => {
    const der = derOf(await createCsrPem(await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM), 'thing-0003'), 'CERTIFICATE REQUEST');
    expect(readCsr(der)?.signatureAlgorithm).toBe('1.2.840.10045.4.3.2');
    expect(readCsr(Uint8Array.from([...der, 0]))).toBeUndefined();
    expect(readCsr(der.subarray(0, der.length - 1))).toBeUndefined();
  });
});
