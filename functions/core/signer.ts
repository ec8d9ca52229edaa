import { X509Certificate } from 'node:crypto';
import type { IoTClient } from '@aws-sdk/client-iot';
import type { SignerKind } from '../../domain/signer.js';
import type { PrivateCaClient } from '../aws/acm-pca.js';
import type { Clock } from './clock.js';

/**
 * What signs a rotation's new certificate and makes it an ACTIVE IoT certificate (issue 11,
 * part 1). Issue certificate calls `sign` exactly where it used to call
 * CreateCertificateFromCsr: after the CSR passed the rules and the intent was recorded, and
 * before the id is recorded and the attachments are copied, which stay the same for both.
 */
export interface SignRequest {
  csrPem: string;
  rotationId: string;
  /** keyFingerprint() of the CSR's key: what the issue intent records. */
  keyFingerprint: string;
}

export interface SignedCertificate {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  /** The certificate's notAfter (ISO 8601): 2049 from aws-iot, the configured validity from private-ca. */
  notAfter: string;
}

export interface Signer {
  readonly kind: SignerKind;
  sign(request: SignRequest): Promise<SignedCertificate>;
}

export interface SignerDeps {
  /** IoT with the SDK's retries: RegisterCertificate (a repeat finds the first one's certificate). */
  iot: IoTClient;
  /** The IoT client the one non-idempotent call goes through (one attempt, no SDK retry). */
  iotCreate: IoTClient;
  /** Only needed for private-ca. */
  pca?: PrivateCaClient;
  clock: Clock;
  /** With private-ca: the CA a CA rollover made the issuing one (functions/core/issuing-ca.ts). */
  issuingCaArn?: () => Promise<string | undefined>;
}

export function notAfterOf(certificatePem: string): string {
  return new Date(new X509Certificate(certificatePem).validTo).toISOString();
}

/**
 * Errors a signer raised before any certificate could exist in IoT (a throttled or refused
 * create; a Private CA step before RegisterCertificate). The caller may forget its issue
 * intent for these: there is nothing in IoT for a retry to look for.
 */
const beforeIot = new WeakSet<object>();

export function markCreatedNothing<T>(error: T): T {
  if (typeof error === 'object' && error !== null) beforeIot.add(error);
  return error;
}

export function createdNothing(error: unknown): boolean {
  return typeof error === 'object' && error !== null && beforeIot.has(error);
}
