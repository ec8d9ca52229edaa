import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pkcs10CertificateRequestGenerator } from '@peculiar/x509';
import { certificateIdOf } from '../iot/ca.js';
import type { IotRegistry } from '../iot/registry.js';
import { AwsError } from '../types.js';
import { createActiveRootCa, type RootCaInput } from './root-ca.js';
import type { PrivateCa } from './private-ca.js';

/** The idempotency token of the private CA `rotor local up` makes: a restart with the data dir finds the same CA. */
export const DEFAULT_PRIVATE_CA_TOKEN = 'rotor-local-default';

export interface DefaultPrivateCa {
  certificateAuthorityArn: string;
  /** Its id as a CA certificate registered with IoT. */
  caCertificateId: string;
}

/** The certificate once the local Private CA has issued it (IssueCertificate is asynchronous, as on AWS). */
export async function certificateWhenIssued(pca: PrivateCa, caArn: string, certificateArn: string): Promise<string> {
  for (;;) {
    try {
      return pca.getCertificate(caArn, certificateArn).certificatePem;
    } catch (error) {
      if (!(error instanceof AwsError && error.code === 'RequestInProgressException')) throw error;
      await sleep(25);
    }
  }
}

/**
 * The private CA of a local deployment: an ACTIVE root in the local Private CA, registered
 * with IoT in DEFAULT mode the way an operator does it — a verification certificate, issued by
 * the CA for a key made here, whose common name is IoT's registration code — and ACTIVE there.
 */
export async function ensureDefaultPrivateCa(pca: PrivateCa, registry: IotRegistry): Promise<DefaultPrivateCa> {
  return ensureRegisteredPrivateCa(pca, registry, { commonName: 'Rotor Local Private CA 1', idempotencyToken: DEFAULT_PRIVATE_CA_TOKEN });
}

/**
 * Any ACTIVE local Private CA registered with IoT as above: the default one, or a successor such
 * as the CA-2 of `rotor demo --scenario ca-rollover`. The same token finds the same CA again.
 */
export async function ensureRegisteredPrivateCa(pca: PrivateCa, registry: IotRegistry, input: RootCaInput & { idempotencyToken: string }): Promise<DefaultPrivateCa> {
  const arn = await createActiveRootCa(pca, input);
  const { certificatePem } = pca.caCertificate(arn);
  const caCertificateId = certificateIdOf(certificatePem);
  if (registry.listCaCertificates().some((c) => c.certificateId === caCertificateId)) return { certificateAuthorityArn: arn, caCertificateId };
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await Pkcs10CertificateRequestGenerator.create({ name: [{ CN: [registry.registrationCode()] }], keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  const verificationArn = await pca.issueCertificate({ caArn: arn, csrPem: csr.toString('pem'), signingAlgorithm: 'SHA256WITHECDSA', validity: { Type: 'DAYS', Value: 1 } });
  registry.registerCaCertificate({ caCertificatePem: certificatePem, verificationCertificatePem: await certificateWhenIssued(pca, arn, verificationArn), setAsActive: true });
  return { certificateAuthorityArn: arn, caCertificateId };
}
