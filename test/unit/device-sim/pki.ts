import 'reflect-metadata';
import { createPrivateKey, createPublicKey, generateKeyPairSync, webcrypto } from 'node:crypto';
import { BasicConstraintsExtension, KeyUsageFlags, KeyUsagesExtension, SubjectAlternativeNameExtension, X509CertificateGenerator } from '@peculiar/x509';

/** A throwaway CA made at test time; nothing here is ever written to the repository. */
export interface TestCa {
  certPem: string;
  keyPem: string;
  subject: string;
}

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

export function newEcKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

async function signingKey(keyPem: string): Promise<webcrypto.CryptoKey> {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, EC_P256, false, ['sign']);
}

function spkiOf(keyPem: string): Buffer {
  return createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
}

export async function createCa(name = 'Rotor Test CA'): Promise<TestCa> {
  const keyPem = newEcKeyPem();
  const cert = await X509CertificateGenerator.create(
    {
      subject: `CN=${name}`,
      issuer: `CN=${name}`,
      publicKey: spkiOf(keyPem),
      signingKey: await signingKey(keyPem),
      signingAlgorithm: SIGN,
      notBefore: new Date(Date.now() - 60_000),
      extensions: [new BasicConstraintsExtension(true, undefined, true), new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true)],
    },
    webcrypto,
  );
  return { certPem: cert.toString('pem'), keyPem, subject: `CN=${name}` };
}

/** A certificate for `keyPem` (private or public PEM) signed by the CA. */
export async function issueCertificate(ca: TestCa, keyPem: string, commonName: string, options: { server?: boolean } = {}): Promise<string> {
  const cert = await X509CertificateGenerator.create(
    {
      subject: `CN=${commonName}`,
      issuer: ca.subject,
      publicKey: spkiOf(keyPem),
      signingKey: await signingKey(ca.keyPem),
      signingAlgorithm: SIGN,
      notBefore: new Date(Date.now() - 60_000),
      extensions: options.server
        ? [new SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: 'localhost' }])]
        : [],
    },
    webcrypto,
  );
  return cert.toString('pem');
}
