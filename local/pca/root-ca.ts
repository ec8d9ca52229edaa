import { setTimeout as sleep } from 'node:timers/promises';
import { AwsError } from '../types.js';
import type { KeyAlgorithm, LocalSigningAlgorithm } from './algorithms.js';
import type { PrivateCa } from './private-ca.js';
import { Template, templateArn } from './templates.js';

export interface RootCaInput {
  commonName: string;
  organization?: string;
  keyAlgorithm?: KeyAlgorithm;
  signingAlgorithm?: LocalSigningAlgorithm;
  /** The root certificate's validity in days (default ten years). */
  validityDays?: number;
  /** Makes the call idempotent across restarts: the same token answers the same CA. */
  idempotencyToken?: string;
}

/**
 * Makes an ACTIVE root CA the way Terraform's aws_acmpca_certificate_authority +
 * aws_acmpca_certificate + aws_acmpca_certificate_authority_certificate do: create it, have
 * it sign its own CSR with RootCACertificate/V1, wait for the certificate, import it.
 */
export async function createActiveRootCa(pca: PrivateCa, input: RootCaInput): Promise<string> {
  const keyAlgorithm = input.keyAlgorithm ?? 'EC_prime256v1';
  const signingAlgorithm = input.signingAlgorithm ?? (keyAlgorithm.startsWith('EC') ? 'SHA256WITHECDSA' : 'SHA256WITHRSA');
  const arn = await pca.createCertificateAuthority({
    CertificateAuthorityType: 'ROOT',
    CertificateAuthorityConfiguration: {
      KeyAlgorithm: keyAlgorithm,
      SigningAlgorithm: signingAlgorithm,
      Subject: { CommonName: input.commonName, Organization: input.organization ?? 'Rotor local' },
    },
    IdempotencyToken: input.idempotencyToken,
  });
  if (pca.describe(arn).status !== 'PENDING_CERTIFICATE') return arn;
  const certificateArn = await pca.issueCertificate({
    caArn: arn,
    csrPem: pca.csrOf(arn),
    signingAlgorithm,
    templateArn: templateArn(Template.RootCa),
    validity: { Type: 'DAYS', Value: input.validityDays ?? 3650 },
  });
  for (;;) {
    try {
      const { certificatePem } = pca.getCertificate(arn, certificateArn);
      await pca.importCertificate(arn, certificatePem);
      return arn;
    } catch (error) {
      if (!(error instanceof AwsError && error.code === 'RequestInProgressException')) throw error;
      await sleep(25);
    }
  }
}
