import 'reflect-metadata';
import { DeleteCertificateCommand, UpdateCertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import { checkCsr } from '../domain/csr-rules.js';
import {
  CertificateNotFound,
  ClaimLost,
  CsrRejected,
  OldCertificateInactive,
  OldCertificateRevoked,
  REVOKED_STATUSES,
  RotationStatus,
  Step,
  type IssueIntent,
  type RotationRecord,
} from '../domain/index.js';
import { parseSignerSettings, SignerKind } from '../domain/signer.js';
import { privateCaClient } from './aws/acm-pca.js';
import { iotClient } from './aws/iot.js';
import { CONDITIONAL_CHECK_FAILED, errorMessage, isNamed } from './aws/errors.js';
import type { Clock } from './core/clock.js';
import { attachedPolicyNames, certificatesWithKey, copyAttachments, describeCertificate, keyFingerprint, takeDownCertificate, type CertificateFacts } from './core/certificates.js';
import { once, rotorHandler, taskLogKeys } from './core/handler.js';
import { certificateIdField, objectInput, pemField, rotationIdField, thingNameField } from './core/input.js';
import { clearIssueIntent, clearLeftover, getCurrentRecord, recordIssueIntent, recordNewCertificate, type TableDeps } from './core/rotation-table.js';
import { observability, type Telemetry } from './core/telemetry.js';
import { baseDeps, tracedIot } from './core/runtime-deps.js';
import { createdNothing, notAfterOf, type Signer } from './core/signer.js';
import { createSigner } from './core/signer-from-settings.js';
import { readIssuingCa } from './core/issuing-ca.js';
import { awsIotSigner, REFUSED_BEFORE_CREATE } from './core/signer-aws-iot.js';
import { pacedRuntime, pacedStep } from './core/pacing.js';
import { pacingConfig } from './core/pacing-settings.js';
import { signerPacing } from './core/signer-pacing.js';
import { CallSite } from '../domain/pacing/index.js';

/** What the 'Issue certificate' state sends. */
export interface IssueCertificateInput {
  thingName: string;
  rotationId: string;
  oldCertificateId: string;
  csrPem: string;
}

export interface IssuedCertificate {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  /** The certificate's notAfter (ISO 8601), in the execution's output; null when IoT gave no PEM. */
  notAfter: string | null;
}

export interface IssueCertificateDeps extends TableDeps {
  iot: IoTClient;
  /** The client CreateCertificateFromCsr goes through: one attempt per call (see signer-aws-iot.ts). */
  iotCreate: IoTClient;
  /** Who signs (core/signer.ts, from the ROTOR_SIGNER settings); aws-iot when absent. */
  signer?: Signer;
  clock: Clock;
  telemetry: Telemetry;
}

export function parseIssueCertificateInput(event: unknown): IssueCertificateInput {
  const input = objectInput(event, 'issue-certificate input');
  return {
    thingName: thingNameField(input),
    rotationId: rotationIdField(input),
    oldCertificateId: certificateIdField(input, 'oldCertificateId'),
    // The CSR is checked below, with a CsrRejected the state machine tells apart; only its
    // presence is input validation.
    csrPem: pemField(input, 'csrPem'),
  };
}

/** The attachments of a certificate that already exists for this rotation, then the certificate. */
async function complete(deps: IssueCertificateDeps, input: IssueCertificateInput, old: CertificateFacts, issued: CertificateFacts): Promise<IssuedCertificate> {
  await copyAttachments(deps.iot, { fromArn: old.certificateArn, toArn: issued.certificateArn, thingName: input.thingName });
  return { certificateId: issued.certificateId, certificateArn: issued.certificateArn, certificatePem: issued.certificatePem, notAfter: issued.certificatePem ? notAfterOf(issued.certificatePem) : null };
}

/** Removes a certificate that was created but could not be recorded, so none is orphaned. */
async function discard(deps: IssueCertificateDeps, certificateId: string): Promise<void> {
  try {
    await deps.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
    await deps.iot.send(new DeleteCertificateCommand({ certificateId }));
  } catch (error) {
    // The original failure is what the state machine must see; this one is for the operator.
    deps.telemetry.log.error('could not delete an unrecorded new certificate; delete it by hand', {
      certificateId,
      error: errorMessage(error),
    });
  }
}

/**
 * A certificate an earlier, failed rotation left in service (retire or roll back failed). The
 * device never acked over it (else `rotor retry` resumes at Retire), and the old certificate
 * is ACTIVE (checked just before): taking it down strands nothing. One the device did ack over
 * is left for Retire, which takes it down once the device is on this rotation's certificate.
 */
async function finishLeftover(deps: IssueCertificateDeps, input: IssueCertificateInput, record: RotationRecord): Promise<void> {
  const leftover = record.leftoverCertificateId;
  if (!leftover || leftover === input.oldCertificateId || leftover === record.ackedCertificateId) return;
  const certificate = await describeCertificate(deps.iot, leftover);
  if (certificate) await takeDownCertificate(deps.iot, deps.clock, { certificate, thingName: input.thingName, keep: false });
  await clearLeftover(deps, input.thingName, input.rotationId);
  deps.telemetry.log.warn('took down the certificate a failed rotation left in service', { certificateId: leftover, found: !!certificate });
}

export { CREATE_ATTEMPTS } from './core/signer-aws-iot.js';

/**
 * What a crashed attempt of this rotation created and never recorded: the first such
 * certificate is adopted (recorded, then completed), any other is removed.
 */
async function recoverCrashedAttempt(deps: IssueCertificateDeps, input: IssueCertificateInput, intent: IssueIntent): Promise<CertificateFacts | undefined> {
  const found = (await certificatesWithKey(deps.iot, intent)).filter((c) => c.status === 'ACTIVE' || c.status === 'INACTIVE');
  deps.telemetry.log.warn('an earlier attempt crashed after announcing a create; looked for what it made', { found: found.map((c) => c.certificateId) });
  const [adopted, ...extra] = found;
  for (const certificate of extra) await discard(deps, certificate.certificateId);
  if (!adopted) return undefined;
  await recordNewCertificate(deps, {
    thingName: input.thingName,
    rotationId: input.rotationId,
    certificateId: adopted.certificateId,
    notAfter: adopted.certificatePem ? notAfterOf(adopted.certificatePem) : undefined,
    now: deps.clock.now(),
  });
  return adopted;
}

/**
 * Issues the new certificate. Idempotent across retries and crashes: the key it is about to
 * certify is recorded (issueIntent) before CreateCertificateFromCsr, the new certificate's id
 * the moment it exists; a retry that finds the id completes that certificate (attachments are
 * idempotent), one that finds only the intent looks for what the crashed attempt created.
 * The old certificate is re-checked first: REVOKED or PENDING_TRANSFER is a security decision
 * and INACTIVE somebody else's, and either way no new certificate is issued.
 */
export async function issueCertificate(event: unknown, deps: IssueCertificateDeps): Promise<IssuedCertificate> {
  const input = parseIssueCertificateInput(event);
  const { thingName, rotationId } = input;

  const record = await getCurrentRecord(deps, thingName);
  if (!record || record.rotationId !== rotationId || record.status !== RotationStatus.InProgress) throw new ClaimLost(thingName, rotationId);

  const old = await describeCertificate(deps.iot, input.oldCertificateId);
  if (!old) throw new CertificateNotFound(input.oldCertificateId);
  if (REVOKED_STATUSES.includes(old.status)) throw new OldCertificateRevoked(old.certificateId, old.status);
  if (old.status !== 'ACTIVE') throw new OldCertificateInactive(old.certificateId);
  await finishLeftover(deps, input, record);

  if (record.newCertificateId) {
    const existing = await describeCertificate(deps.iot, record.newCertificateId);
    if (existing) {
      deps.telemetry.log.info('the new certificate already exists for this rotation; completing it', { certificateId: existing.certificateId });
      return complete(deps, input, old, existing);
    }
    deps.telemetry.log.warn('the recorded new certificate no longer exists; issuing another', { certificateId: record.newCertificateId });
  } else if (record.issueIntent) {
    const recovered = await recoverCrashedAttempt(deps, input, record.issueIntent);
    if (recovered) return complete(deps, input, old, recovered);
  }

  const check = checkCsr(input.csrPem, { thingName, oldCertificatePem: old.certificatePem || undefined });
  if (!check.ok) {
    deps.telemetry.log.warn('CSR rejected', { rule: check.reason, detail: check.detail });
    throw new CsrRejected(check.reason, `${check.reason}: ${check.detail}`);
  }

  const fingerprint = keyFingerprint(Buffer.from(check.facts.publicKeySpki, 'base64'));
  // Listed once, before the create, so that the new certificate's record carries them for
  // Retire (which detaches exactly these from the old certificate without listing again).
  const oldPolicies = await attachedPolicyNames(deps.iot, old.certificateArn);
  await recordIssueIntent(deps, { thingName, rotationId, intent: { keyFingerprint: fingerprint, at: deps.clock.now().toISOString() } });
  let issued: IssuedCertificate;
  try {
    issued = await (deps.signer ?? awsIotSigner(deps)).sign({ csrPem: input.csrPem, rotationId, keyFingerprint: fingerprint });
  } catch (error) {
    // Refused outright: nothing exists to look for. Anything else may have created one.
    if (isNamed(error, ...REFUSED_BEFORE_CREATE) || isClientError(error) || createdNothing(error)) await clearIssueIntent(deps, thingName, rotationId);
    throw error;
  }

  try {
    await recordNewCertificate(deps, {
      thingName,
      rotationId,
      certificateId: issued.certificateId,
      notAfter: issued.notAfter ?? undefined,
      replaces: record.newCertificateId,
      issuedFrom: { newCertificateId: issued.certificateId, oldCertificateId: old.certificateId, oldCertificateArn: old.certificateArn, oldPolicies },
      now: deps.clock.now(),
    });
  } catch (error) {
    await discard(deps, issued.certificateId);
    if (!isNamed(error, CONDITIONAL_CHECK_FAILED)) throw error;
    const now = await getCurrentRecord(deps, thingName);
    const winner = now?.rotationId === rotationId && now.status === RotationStatus.InProgress && now.newCertificateId
      ? await describeCertificate(deps.iot, now.newCertificateId)
      : undefined;
    if (!winner) throw new ClaimLost(thingName, rotationId);
    return complete(deps, input, old, winner);
  }

  const policies = await copyAttachments(deps.iot, { fromArn: old.certificateArn, toArn: issued.certificateArn, thingName, policies: oldPolicies });
  deps.telemetry.log.info('new certificate issued', {
    certificateId: issued.certificateId,
    keyType: check.facts.keyType,
    keyDetail: check.facts.keyDetail,
    notAfter: issued.notAfter,
    policies,
  });
  return issued;
}

/** A 4xx answer (other than a throttle) is a refusal: the request created nothing. */
function isClientError(error: unknown): boolean {
  const status = (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  return typeof status === 'number' && status >= 400 && status < 500;
}

const obs = observability('issue-certificate');
const runtime = once(() => {
  // Bad signer settings fail the cold start with a message naming the variable.
  const settings = parseSignerSettings(process.env);
  const base = baseDeps(obs);
  // With private-ca the step reserves Private CA's calls and RegisterCertificate (signer-pacing.ts).
  const paced = pacedRuntime(base, signerPacing(pacingConfig(), settings));
  const iot = paced.observe(tracedIot(obs), 'iot');
  const iotCreate = paced.observe(obs.tracer.captureClient(iotClient({ maxAttempts: 1 })), 'iot');
  const pca = settings.kind === SignerKind.PrivateCa ? privateCaClient({ onThrottle: paced.onThrottle }) : undefined;
  const deps: IssueCertificateDeps = { ...base, iot, iotCreate, signer: createSigner(settings, { iot, iotCreate, pca, clock: base.clock, issuingCaArn: async () => (await readIssuingCa(base))?.caArn }) };
  return { ...deps, pacing: paced.pacing };
});

/** Paced (docs/fleet-scale.md): the step's IoT calls are reserved on the shared budget first. */
export const handler = rotorHandler({ observability: obs, step: Step.IssueCertificate, logKeys: taskLogKeys }, (event: unknown) => {
  const deps = runtime();
  return pacedStep(deps, event, CallSite.IssueCertificate, () => issueCertificate(event, deps));
});
