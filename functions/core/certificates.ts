import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  ListAttachedPoliciesCommand,
  UpdateCertificateCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import { isNamed, RESOURCE_NOT_FOUND } from '../aws/errors.js';
import type { Clock } from './clock.js';

/** What Rotor needs to know about one IoT certificate. */
export interface CertificateFacts {
  certificateId: string;
  certificateArn: string;
  status: string;
  certificatePem: string;
}

/** DescribeCertificate; undefined when the certificate does not exist. */
export async function describeCertificate(iot: IoTClient, certificateId: string): Promise<CertificateFacts | undefined> {
  try {
    const out = await iot.send(new DescribeCertificateCommand({ certificateId }));
    const description = out.certificateDescription;
    if (!description?.certificateArn) throw new Error(`DescribeCertificate returned no ARN for ${certificateId}`);
    return {
      certificateId,
      certificateArn: description.certificateArn,
      status: description.status ?? 'UNKNOWN',
      certificatePem: description.certificatePem ?? '',
    };
  } catch (error) {
    if (isNamed(error, RESOURCE_NOT_FOUND)) return undefined;
    throw error;
  }
}

/** Every policy attached to a certificate, across pages. */
export async function attachedPolicyNames(iot: IoTClient, certificateArn: string): Promise<string[]> {
  const names: string[] = [];
  let marker: string | undefined;
  do {
    const page = await iot.send(new ListAttachedPoliciesCommand({ target: certificateArn, marker, pageSize: 250 }));
    for (const policy of page.policies ?? []) if (policy.policyName) names.push(policy.policyName);
    marker = page.nextMarker;
  } while (marker);
  return names;
}

/**
 * Gives the new certificate what the old one has: its policies and its thing. AttachPolicy
 * and AttachThingPrincipal succeed when the attachment already exists, so a retry after a
 * partial run simply completes it.
 */
export async function copyAttachments(iot: IoTClient, copy: { fromArn: string; toArn: string; thingName: string }): Promise<string[]> {
  const policies = await attachedPolicyNames(iot, copy.fromArn);
  for (const policyName of policies) {
    await iot.send(new AttachPolicyCommand({ policyName, target: copy.toArn }));
  }
  await iot.send(new AttachThingPrincipalCommand({ thingName: copy.thingName, principal: copy.toArn }));
  return policies;
}

/** Runs an IoT call whose target may already be gone; gone means the work is done. */
async function unlessGone(call: () => Promise<unknown>): Promise<boolean> {
  try {
    await call();
    return true;
  } catch (error) {
    if (isNamed(error, RESOURCE_NOT_FOUND)) return false;
    throw error;
  }
}

export interface DeleteRetry {
  /** Total DeleteCertificate attempts while IoT still reports an attachment. */
  attempts: number;
  /** Pause before the second attempt; doubles each time. */
  initialDelayMs: number;
}

/**
 * DetachThingPrincipal is eventually consistent: DeleteCertificate right after it can fail
 * with DeleteConflictException although nothing is attached any more.
 */
export const DEFAULT_DELETE_RETRY: DeleteRetry = { attempts: 5, initialDelayMs: 500 };

export type TakeDownResult = 'deleted' | 'inactive';

/**
 * Takes a certificate out of service: INACTIVE first (so it stops authenticating at once),
 * then detached from its policies and from the thing, then deleted unless `keep` is set.
 * Every step treats "not found" as already done, so a retried call finishes the job.
 */
export async function takeDownCertificate(
  iot: IoTClient,
  clock: Clock,
  target: { certificate: CertificateFacts; thingName: string; keep: boolean; retry?: DeleteRetry },
): Promise<TakeDownResult> {
  const { certificate, thingName } = target;
  const { certificateId, certificateArn } = certificate;
  // REVOKED cannot be set back to INACTIVE, and INACTIVE needs no update.
  if (certificate.status !== 'INACTIVE' && certificate.status !== 'REVOKED') {
    const exists = await unlessGone(() => iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' })));
    if (!exists) return 'deleted';
  }
  let policies: string[];
  try {
    policies = await attachedPolicyNames(iot, certificateArn);
  } catch (error) {
    if (isNamed(error, RESOURCE_NOT_FOUND)) return 'deleted';
    throw error;
  }
  for (const policyName of policies) {
    await unlessGone(() => iot.send(new DetachPolicyCommand({ policyName, target: certificateArn })));
  }
  await unlessGone(() => iot.send(new DetachThingPrincipalCommand({ thingName, principal: certificateArn })));
  if (target.keep) return 'inactive';

  const retry = target.retry ?? DEFAULT_DELETE_RETRY;
  let delay = retry.initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      await unlessGone(() => iot.send(new DeleteCertificateCommand({ certificateId })));
      return 'deleted';
    } catch (error) {
      if (!isNamed(error, 'DeleteConflictException') || attempt >= retry.attempts) throw error;
      await clock.sleep(delay);
      delay *= 2;
    }
  }
}
