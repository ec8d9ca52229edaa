import { CreateCertificateFromCsrCommand } from '@aws-sdk/client-iot';
import { SignerKind } from '../../domain/signer.js';
import { isNamed } from '../aws/errors.js';
import { markCreatedNothing, notAfterOf, type SignedCertificate, type Signer, type SignerDeps } from './signer.js';

/** Errors of CreateCertificateFromCsr that prove nothing was created: safe to try again at once. */
export const REFUSED_BEFORE_CREATE = ['ThrottlingException', 'TooManyRequestsException', 'LimitExceededException'] as const;
export const CREATE_ATTEMPTS = 6;

/**
 * The aws-iot signer: CreateCertificateFromCsr, ACTIVE. It is not idempotent: each call signs
 * another certificate. Its client makes one attempt (no SDK retry after a lost response, which
 * could have created one); only an explicit throttle, which creates nothing, is tried again here.
 */
export function awsIotSigner(deps: Pick<SignerDeps, 'iotCreate' | 'clock'>): Signer {
  return {
    kind: SignerKind.AwsIot,
    async sign({ csrPem }): Promise<SignedCertificate> {
      let delay = 200;
      for (let attempt = 1; ; attempt++) {
        try {
          const created = await deps.iotCreate.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: csrPem, setAsActive: true }));
          if (!created.certificateId || !created.certificateArn || !created.certificatePem) {
            throw new Error('CreateCertificateFromCsr returned no certificate id, ARN or PEM');
          }
          return { certificateId: created.certificateId, certificateArn: created.certificateArn, certificatePem: created.certificatePem, notAfter: notAfterOf(created.certificatePem) };
        } catch (error) {
          const refused = isNamed(error, ...REFUSED_BEFORE_CREATE);
          if (!refused || attempt >= CREATE_ATTEMPTS) throw refused ? markCreatedNothing(error) : error;
          await deps.clock.sleep(delay * (0.5 + Math.random() / 2));
          delay *= 2;
        }
      }
    },
  };
}
