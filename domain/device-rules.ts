import { ErrorName } from './errors.js';
import type { DeviceMessage } from './messages.js';
import { resumeExecutionName } from './naming.js';
import type { RotationRecord } from './records.js';
import { FailureReason, IgnoredReason, RotationStatus, Step, Trigger, WaitFor, type RotationInput } from './rotation.js';
import { MessageType, type DeviceToCloudType } from './topics.js';

/**
 * The cloud's rules for one device → cloud message (docs/protocol.md, "Cloud rules"), as a
 * pure function: `decide(record, message, context)` says what to do, and
 * functions/device-message.ts only does it. Like device-sim/reducer.ts, each branch names the
 * rule it implements, and the unit tests exercise every branch on plain values.
 *
 * Some rules depend on the statuses of the rotation's certificates (an abort is only safe
 * while the old one is ACTIVE). Those are I/O, so `decide` asks for them with
 * `look-up-certificates` and is called again with them in `context.certificates`.
 */

/** A certificate's status as DescribeCertificate reports it, or GONE when it no longer exists. */
export type CertificateState = 'ACTIVE' | 'INACTIVE' | 'REVOKED' | 'PENDING_TRANSFER' | 'PENDING_ACTIVATION' | 'REGISTER_INACTIVE' | 'GONE';

/** Statuses of the rotation's certificates: a security decision was taken on the old one. */
const CUT_OFF_ON_PURPOSE: readonly CertificateState[] = ['REVOKED', 'PENDING_TRANSFER'];

export interface MessageContext {
  /** principal(): the id of the certificate the MQTT connection was authenticated with. */
  principal: string;
  /** When the broker received the message (ISO 8601). */
  receivedAt: string;
  /** Filled in by the caller after a `look-up-certificates` decision. */
  certificates?: { old: CertificateState; new?: CertificateState };
}

export type Decision =
  /** Answer the parked token with SendTaskSuccess. `ack`: record the ack's certificate first. */
  | { kind: 'answer-success'; taskToken: string; output: string; ack?: { certificateId: string } }
  /** Answer the parked token with SendTaskFailure. */
  | { kind: 'answer-failure'; taskToken: string; error: string; cause: string }
  /** Record, count and drop the message. */
  | { kind: 'ignore'; reason: IgnoredReason; detail?: string }
  /** Tell the device to drop its pending pair. `reasonCode` is all it is told: never AWS text. */
  | { kind: 'abort'; rotationId: string; reasonCode: FailureReason | string }
  /** A late ack over the new certificate of a failed rotation: record it and start the execution that finishes it. */
  | { kind: 'finish-late-ack'; rotationId: string; newCertificateId: string; executionName: string; input: RotationInput }
  /** Call again with `context.certificates` filled in. */
  | { kind: 'look-up-certificates'; newCertificateId?: string };

export type DecisionKind = Decision['kind'];

/** Which parked tokens each message may answer. crt_err answers either: a v1.1 device refuses a csr_req with it. */
const ANSWERS: Readonly<Record<DeviceToCloudType, readonly WaitFor[]>> = {
  [MessageType.CsrResponse]: [WaitFor.CsrResponse],
  [MessageType.CertificateAck]: [WaitFor.CertificateAck],
  [MessageType.CertificateError]: [WaitFor.CsrResponse, WaitFor.CertificateAck],
};

const FAILURE_REASONS: readonly string[] = Object.values(FailureReason);

function ignore(reason: IgnoredReason, detail?: string): Decision {
  return detail === undefined ? { kind: 'ignore', reason } : { kind: 'ignore', reason, detail };
}

function over(principal: string): string {
  return principal ? `over certificate ${principal}` : 'over an unknown principal';
}

/**
 * Cloud rule 9: every device message is tied to a certificate of the rotation, so that a fleet
 * whose policy lets a device connect with any client id (`client/*`) still cannot act for
 * another device. Returns the reason to ignore the message, or undefined when it may act.
 */
export function principalRefusal(record: RotationRecord, type: DeviceToCloudType, principal: string): Decision | undefined {
  switch (type) {
    case MessageType.CsrResponse:
      // The CSR must come from the device that holds the certificate being replaced.
      return principal === record.oldCertificateId ? undefined : ignore(IgnoredReason.CsrNotOverOldCertificate, `csr_res ${over(principal)}`);
    case MessageType.CertificateAck:
      // Cloud rule 2: only an ack made over the new certificate proves the device can use it.
      return principal !== '' && principal === record.newCertificateId ? undefined : ignore(IgnoredReason.WrongPrincipal, `ack ${over(principal)}`);
    case MessageType.CertificateError:
      return principal === record.oldCertificateId || (principal !== '' && principal === record.newCertificateId)
        ? undefined
        : ignore(IgnoredReason.ErrorNotOverRotationCertificate, `crt_err ${over(principal)}`);
  }
}

/** What to do with a validated device message, given the thing's current record. */
export function decide(record: RotationRecord | undefined, message: DeviceMessage, context: MessageContext): Decision {
  if (!record) return ignore(IgnoredReason.UnknownThing);
  if (record.status === RotationStatus.InProgress) return decideInFlight(record, message, context);
  return decideFinished(record, message, context);
}

function decideInFlight(record: RotationRecord, message: DeviceMessage, context: MessageContext): Decision {
  const rotationId = message.body.rotationId;
  // Stale ids: a message of an earlier rotation is never acted on.
  if (rotationId !== undefined && rotationId !== record.rotationId) return ignore(IgnoredReason.StaleRotationId);
  const refusal = principalRefusal(record, message.type, context.principal);
  if (refusal) return refusal;
  if (!record.taskToken || !record.waitFor || !ANSWERS[message.type].includes(record.waitFor)) {
    return ignore(IgnoredReason.Unexpected, `waiting for ${record.waitFor ?? 'nothing'}`);
  }
  const taskToken = record.taskToken;
  switch (message.type) {
    case MessageType.CsrResponse:
      return { kind: 'answer-success', taskToken, output: JSON.stringify({ pem: message.body.CSR, receivedAt: context.receivedAt }) };
    case MessageType.CertificateAck:
      // The ack's certificate is recorded before the token is answered: Retire checks it.
      return {
        kind: 'answer-success',
        taskToken,
        output: JSON.stringify({ principal: context.principal, ackedAt: context.receivedAt }),
        ack: { certificateId: context.principal },
      };
    case MessageType.CertificateError:
      // Cloud rule 5 (and rule 11 for a v1.1 device that does not hold the named certificate).
      return { kind: 'answer-failure', taskToken, error: ErrorName.DeviceReportedError, cause: message.body.error };
  }
}

function decideFinished(record: RotationRecord, message: DeviceMessage, context: MessageContext): Decision {
  const rotationId = message.body.rotationId;
  const forThisRotation = (rotationId ?? record.rotationId) === record.rotationId;
  if (record.status !== RotationStatus.Failed || !forThisRotation || message.type === MessageType.CertificateError) {
    return ignore(IgnoredReason.NoRotationInFlight);
  }
  const refusal = principalRefusal(record, message.type, context.principal);
  if (refusal) return refusal;

  const certificates = context.certificates;
  if (!certificates || (record.newCertificateId !== undefined && certificates.new === undefined)) {
    return record.newCertificateId === undefined ? { kind: 'look-up-certificates' } : { kind: 'look-up-certificates', newCertificateId: record.newCertificateId };
  }

  if (message.type === MessageType.CertificateAck && record.newCertificateId !== undefined) {
    // Cloud rule 10: the device is on the new certificate and it is still live — finish the
    // rotation rather than make the device drop the pair that works. Never after a security
    // decision on the old certificate.
    if (certificates.new === 'ACTIVE' && !CUT_OFF_ON_PURPOSE.includes(certificates.old)) {
      const newCertificateId = record.newCertificateId;
      const input: RotationInput = {
        thingName: record.thingName,
        certificateId: record.oldCertificateId,
        trigger: Trigger.Resume,
        resume: { newCertificateId },
        ...(record.auditTaskId ? { auditTaskId: record.auditTaskId } : {}),
      };
      return { kind: 'finish-late-ack', rotationId: record.rotationId, newCertificateId, executionName: resumeExecutionName(record.thingName, newCertificateId), input };
    }
  }
  return abortIfSafe(record, certificates.old);
}

/**
 * Cloud rule 2: a late csr_res or crt_ack of a failed rotation is answered with abort — but
 * only while the old certificate is ACTIVE. Otherwise the device's pending pair may be the only
 * one that still works, and abort would make it throw that pair away.
 */
function abortIfSafe(record: RotationRecord, old: CertificateState): Decision {
  if (old !== 'ACTIVE') return ignore(IgnoredReason.OldCertificateNotActive, `old certificate is ${old}: not answered with abort`);
  // A rotation that failed in Retire may have touched the old certificate since this status was read.
  if (record.step === Step.RetireOldCertificate || record.reason === FailureReason.RetireFailed) {
    return ignore(IgnoredReason.NoRotationInFlight, 'the rotation failed while retiring the old certificate: not answered with abort');
  }
  const reasonCode = record.reason !== undefined && FAILURE_REASONS.includes(record.reason) ? record.reason : FailureReason.Internal;
  return { kind: 'abort', rotationId: record.rotationId, reasonCode };
}
