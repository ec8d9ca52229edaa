import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  ListAttachedPoliciesCommand,
  ListCertificatesCommand,
  ListPrincipalThingsCommand,
  UpdateCertificateCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { isNamed, RESOURCE_NOT_FOUND } from '../aws/errors.js';
import type { Clock } from './clock.js';

/**
 * A certificate's ARN from its id and any ARN of the same account and region (e.g. the state
 * machine's): arn:<partition>:iot:<region>:<account>:cert/<id>. Saves a DescribeCertificate
 * where only the ARN is needed.
 */
export function certificateArnFor(certificateId: string, sameAccountArn: string): string {
  const [arn, partition, , region, account] = sameAccountArn.split(':');
  if (arn !== 'arn' || !partition || !region || !account) throw new Error(`not an ARN with a region and an account: ${sameAccountArn}`);
  return `arn:${partition}:iot:${region}:${account}:cert/${certificateId}`;
}

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
export async function copyAttachments(
  iot: IoTClient,
  copy: { fromArn: string; toArn: string; thingName: string; policies?: readonly string[] },
): Promise<string[]> {
  const policies = copy.policies ? [...copy.policies] : await attachedPolicyNames(iot, copy.fromArn);
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
  target: {
    certificate: CertificateFacts;
    thingName: string;
    keep: boolean;
    retry?: DeleteRetry;
    /**
     * The policies known to be attached (read earlier in the rotation): detached without
     * listing them again. A policy attached since shows as DeleteConflictException on delete,
     * and is then listed and detached.
     */
    policies?: readonly string[];
  },
): Promise<TakeDownResult> {
  const { certificate, thingName } = target;
  const { certificateId, certificateArn } = certificate;
  // REVOKED cannot be set back to INACTIVE, and INACTIVE needs no update.
  if (certificate.status !== 'INACTIVE' && certificate.status !== 'REVOKED') {
    const exists = await unlessGone(() => iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' })));
    if (!exists) return 'deleted';
  }
  const detachPolicies = async (known?: readonly string[]): Promise<boolean> => {
    let policies: readonly string[];
    try {
      policies = known ?? (await attachedPolicyNames(iot, certificateArn));
    } catch (error) {
      if (isNamed(error, RESOURCE_NOT_FOUND)) return false;
      throw error;
    }
    for (const policyName of policies) {
      await unlessGone(() => iot.send(new DetachPolicyCommand({ policyName, target: certificateArn })));
    }
    return true;
  };
  if (!(await detachPolicies(target.policies))) return 'deleted';
  await unlessGone(() => iot.send(new DetachThingPrincipalCommand({ thingName, principal: certificateArn })));
  if (target.keep) return 'inactive';

  const retry = target.retry ?? DEFAULT_DELETE_RETRY;
  let delay = retry.initialDelayMs;
  let relisted = target.policies === undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      await unlessGone(() => iot.send(new DeleteCertificateCommand({ certificateId })));
      return 'deleted';
    } catch (error) {
      if (!isNamed(error, 'DeleteConflictException') || attempt >= retry.attempts) throw error;
      if (!relisted) {
        // The known list may be stale: what is attached now is listed once (unhappy path only).
        relisted = true;
        if (!(await detachPolicies())) return 'deleted';
      }
      await clock.sleep(delay);
      delay *= 2;
    }
  }
}

/**
 * The fingerprint Issue certificate records as its intent: SHA-256 of the key's public JWK
 * members in a fixed order (EC: crv, x, y; RSA: e, n). Not of the SPKI bytes: an EC point sent
 * compressed in a CSR is stored uncompressed in the certificate, and it is the same key.
 */
export function keyFingerprint(spkiDer: Uint8Array): string {
  const jwk = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' }).export({ format: 'jwk' });
  const canonical = jwk.kty === 'EC' ? ['EC', jwk.crv, jwk.x, jwk.y] : [jwk.kty, jwk.e, jwk.n];
  return createHash('sha256').update(canonical.join('.')).digest('hex');
}

export function certificateKeyFingerprint(certificatePem: string): string {
  return keyFingerprint(new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'der' }));
}

/** The things a certificate is attached to, across pages; none when the certificate is gone. */
export async function thingsOf(iot: IoTClient, certificateArn: string): Promise<string[]> {
  const things: string[] = [];
  let nextToken: string | undefined;
  try {
    do {
      const page = await iot.send(new ListPrincipalThingsCommand({ principal: certificateArn, nextToken, maxResults: 250 }));
      things.push(...(page.things ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
  } catch (error) {
    if (isNamed(error, RESOURCE_NOT_FOUND)) return [];
    throw error;
  }
  return things;
}

/** Clock skew allowed between the intent's timestamp (the function) and IoT's creationDate. */
const INTENT_SKEW_MS = 60_000;

/**
 * The certificates created from the key of an issue intent, found after a crash between
 * CreateCertificateFromCsr and recording its id. IoT cannot be asked "which certificate has
 * this key", and a certificate id (SHA-256 of its DER) cannot be predicted before it is
 * signed, so this walks ListCertificates newest first and stops at the first certificate
 * created before the intent: the cost is the certificates created since the intent (one page
 * of 250 for most fleets), and it is paid only on a retry that finds an intent without a
 * recorded certificate, never on the happy path.
 */
export async function certificatesWithKey(iot: IoTClient, intent: { keyFingerprint: string; at: string }): Promise<CertificateFacts[]> {
  const since = new Date(intent.at).getTime() - INTENT_SKEW_MS;
  const found: CertificateFacts[] = [];
  let marker: string | undefined;
  for (;;) {
    const page = await iot.send(new ListCertificatesCommand({ ascendingOrder: false, pageSize: 250, marker }));
    const recent = (page.certificates ?? []).filter((c) => !c.creationDate || c.creationDate.getTime() >= since);
    for (const listed of recent) {
      if (!listed.certificateId) continue;
      const described = await describeCertificate(iot, listed.certificateId);
      if (described?.certificatePem && certificateKeyFingerprint(described.certificatePem) === intent.keyFingerprint) found.push(described);
    }
    marker = page.nextMarker;
    const reachedOlder = recent.length < (page.certificates ?? []).length;
    if (!marker || reachedOlder) return found;
  }
}
