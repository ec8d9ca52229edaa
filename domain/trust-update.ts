import type { TrustDeviceMessage, TrustErrorCode } from './messages.js';
import { thingPk } from './records.js';

/**
 * The cloud side of the server trust-store update (docs/protocol.md v1.2, cloud rules C1–C6):
 * the states of statemachines/trust-update.asl.json, the record each device's update leaves,
 * why an update fails, and the pure decision what a trust_ack / trust_err may do.
 */

/** Every state of statemachines/trust-update.asl.json. test/contract/trust-asl.test.ts checks both ways. */
export const TrustStep = {
  ClaimTrustUpdate: 'Claim trust update',
  AlreadyUpdating: 'Already updating',
  SendTrustRequest: 'Send trust request',
  RecordTrustUpdated: 'Record trust updated',
  TrustUpdated: 'Trust updated',
  RecordTrustFailure: 'Record trust failure',
  EscalateTrustFailure: 'Escalate trust failure',
  TrustUpdateFailed: 'Trust update failed',
} as const;
export type TrustStep = (typeof TrustStep)[keyof typeof TrustStep];

/**
 * One record per thing beside its rotation record (the same partition, its own sort key):
 * a trust update and a certificate rotation are independent (device rule T7), so neither
 * claims the other's record.
 */
export const TRUST_SK = 'trust';

export function trustKey(thingName: string): { pk: string; sk: typeof TRUST_SK } {
  return { pk: thingPk(thingName), sk: TRUST_SK };
}

export const TrustStatus = {
  InProgress: 'IN_PROGRESS',
  /** The device acked the bundle over its own ACTIVE certificate (C4). */
  Updated: 'UPDATED',
  /** The device answered trust_err (C5): it is on its old bundle. */
  Refused: 'REFUSED',
  /** No answer after the bounded re-sends (C3, C6): reported as not updated, never as moved. */
  NotUpdated: 'NOT_UPDATED',
} as const;
export type TrustStatus = (typeof TrustStatus)[keyof typeof TrustStatus];

/** Why an update did not end with the device on the new bundle. */
export const TRUST_NO_ACK = 'NO_ACK' as const;
/** The update itself failed (its record could not be claimed or written, a function failed for good). */
export const TRUST_INTERNAL_ERROR = 'INTERNAL_ERROR' as const;
export type TrustFailureReason = `TRUST_${TrustErrorCode}` | typeof TRUST_NO_ACK | typeof TRUST_INTERNAL_ERROR;

export function trustFailureReason(code: TrustErrorCode): TrustFailureReason {
  return `TRUST_${code}`;
}

/** What the waiting task fails with when the device answers trust_err; its cause is a TrustRefusal (JSON). */
export const TRUST_REFUSED_ERROR = 'TrustRefused' as const;

export interface TrustRefusal {
  reason: TrustFailureReason;
  error: string;
}

/** The input of one trust-update execution (started by `rotor trust push`; the execution name is the update's id). */
export interface TrustUpdateInput {
  thingName: string;
  bundleId: string;
  /** The bundle's PEM, checked by `rotor trust push` with parseTrustBundle before anything was started (C1). */
  bundle: string;
  /** The push this update belongs to: one id for all devices of one `rotor trust push`. */
  pushId: string;
}

/** The thing's trust record (sk = trust). */
export interface TrustRecord {
  pk: string;
  sk: typeof TRUST_SK;
  thingName: string;
  /**
   * Not `status`: the table's by-status index holds the records with a `status` (rotations);
   * trust records stay out of it, so rotation counts and listings never see them.
   */
  trustStatus: TrustStatus;
  step: string;
  /** The update's id: the execution name, sent as `rotationId` in trust_req. */
  updateId: string;
  executionArn: string;
  pushId: string;
  /** The bundle being sent. */
  bundleId: string;
  /** The bundle the device acked last (C4): its current bundle as far as the cloud knows. */
  currentBundleId?: string;
  startedAt: string;
  updatedAt: string;
  finishedAt?: string;
  requests?: number;
  /** Set while the trust_req's task token is parked. */
  taskToken?: string;
  reason?: TrustFailureReason;
  cause?: string;
  ignoredCount?: number;
  /**
   * When a trust_ack arrived after its update had timed out (C4 otherwise held: the update's id,
   * the bundle sent, over the device's own ACTIVE certificate): the device did switch, and
   * currentBundleId says so, although the update itself ended NOT_UPDATED (NO_ACK).
   */
  ackedLateAt?: string;
}

export type TrustDecision =
  | { kind: 'ignore'; reason: string; detail: string }
  | { kind: 'acked'; taskToken: string; output: string; updateId: string; bundleId: string; certificateId: string }
  | { kind: 'refused'; taskToken: string; error: typeof TRUST_REFUSED_ERROR; cause: string }
  /** A trust_ack that counts but came too late for its update, which ended NOT_UPDATED: recorded, not answered. */
  | { kind: 'acked-late'; updateId: string; bundleId: string; certificateId: string };

export interface TrustMessageContext {
  /** principal() of the connection: the certificate id it was authenticated with. */
  principal: string;
  /** The status of that certificate in IoT, and whether it is attached to the thing (looked up by the caller). */
  principalState?: { status: string; attachedToThing: boolean };
}

/** Why a trust_ack / trust_err was recorded and dropped (added to the ignored count of the trust record). */
export const TrustIgnoredReason = {
  NoUpdateInFlight: 'NO_TRUST_UPDATE_IN_FLIGHT',
  StaleUpdateId: 'STALE_ROTATION_ID',
  WrongBundle: 'WRONG_BUNDLE_ID',
  NotOverActiveCertificate: 'NOT_OVER_ACTIVE_CERTIFICATE',
} as const;

/**
 * docs/protocol.md C4/C5: a trust_ack counts only for the update in flight, with the bundle sent,
 * over the device's own ACTIVE certificate; a trust_err for the update in flight fails it with
 * TRUST_<code>. Everything else is ignored (and recorded by the caller). `principalState` is
 * looked up only when the message would otherwise count: undefined means "not looked up yet".
 */
export function decideTrust(record: TrustRecord | undefined, message: TrustDeviceMessage, context: TrustMessageContext): TrustDecision | { kind: 'look-up-principal' } {
  if (record && record.trustStatus === TrustStatus.NotUpdated && message.type === 'trust_ack' && message.body.rotationId === record.updateId) {
    return decideLateAck(record, message, context);
  }
  if (!record || record.trustStatus !== TrustStatus.InProgress || !record.taskToken) {
    return { kind: 'ignore', reason: TrustIgnoredReason.NoUpdateInFlight, detail: 'no trust update is waiting for an answer' };
  }
  const { rotationId, bundleId } = message.body;
  if (rotationId !== undefined && rotationId !== record.updateId) {
    return { kind: 'ignore', reason: TrustIgnoredReason.StaleUpdateId, detail: `answers ${rotationId}, the update in flight is ${record.updateId}` };
  }
  if (bundleId !== undefined && bundleId !== record.bundleId) {
    return { kind: 'ignore', reason: TrustIgnoredReason.WrongBundle, detail: `names bundle ${bundleId}, the update sent ${record.bundleId}` };
  }
  if (message.type === 'trust_ack' && rotationId === undefined) {
    // An ack must name the update: a bare ack cannot be told from an earlier push's.
    return { kind: 'ignore', reason: TrustIgnoredReason.StaleUpdateId, detail: 'trust_ack without rotationId' };
  }
  const principal = principalCheck(context);
  if (principal) return principal;
  if (message.type === 'trust_ack') {
    return {
      kind: 'acked',
      taskToken: record.taskToken,
      updateId: record.updateId,
      bundleId: record.bundleId,
      certificateId: context.principal,
      output: JSON.stringify({ bundleId: record.bundleId, certificateId: context.principal }),
    };
  }
  const refusal: TrustRefusal = { reason: trustFailureReason(message.body.code), error: message.body.error };
  return { kind: 'refused', taskToken: record.taskToken, error: TRUST_REFUSED_ERROR, cause: JSON.stringify(refusal) };
}

/**
 * A trust_ack for an update that already ended NOT_UPDATED (its last trust_req timed out): the
 * same C4 checks as an answer in time (the update's id, the bundle it sent, the device's own
 * ACTIVE certificate), and then it is recorded rather than dropped, since the device did switch.
 */
function decideLateAck(record: TrustRecord, message: TrustDeviceMessage, context: TrustMessageContext): TrustDecision | { kind: 'look-up-principal' } {
  if (message.body.bundleId !== undefined && message.body.bundleId !== record.bundleId) {
    return { kind: 'ignore', reason: TrustIgnoredReason.WrongBundle, detail: `names bundle ${message.body.bundleId}, the update sent ${record.bundleId}` };
  }
  return principalCheck(context) ?? { kind: 'acked-late', updateId: record.updateId, bundleId: record.bundleId, certificateId: context.principal };
}

/** C4's last rule: the message came over the device's own ACTIVE certificate (undefined: it did). */
function principalCheck(context: TrustMessageContext): Extract<TrustDecision, { kind: 'ignore' }> | { kind: 'look-up-principal' } | undefined {
  if (!context.principalState) return { kind: 'look-up-principal' };
  if (context.principalState.status === 'ACTIVE' && context.principalState.attachedToThing) return undefined;
  return {
    kind: 'ignore',
    reason: TrustIgnoredReason.NotOverActiveCertificate,
    detail: `came over certificate ${context.principal || '(none)'} (${context.principalState.status}${context.principalState.attachedToThing ? '' : ', not attached to the thing'})`,
  };
}

/** The one escalation message of a device whose update failed (C5), as an operator reads it. */
export interface TrustEscalation {
  subject: string;
  message: string;
}

export function trustEscalation(input: { thingName: string; updateId: string; bundleId: string; reason: TrustFailureReason; cause: string; executionArn: string }): TrustEscalation {
  const subject = `Rotor: trust update of ${input.thingName} failed (${input.reason})`.slice(0, 100);
  const message = JSON.stringify(
    {
      kind: 'trust-update-failed',
      thingName: input.thingName,
      updateId: input.updateId,
      bundleId: input.bundleId,
      reason: input.reason,
      cause: input.cause,
      executionArn: input.executionArn,
      action:
        input.reason === TRUST_NO_ACK
          ? 'The device did not answer: it may not implement protocol v1.2 or be offline. It is on its old bundle; keep the old server CA in service.'
          : 'The device refused the bundle and is on its old one; keep the old server CA in service until it acks.',
    },
    null,
    2,
  );
  return { subject, message };
}

/**
 * The calls one device's trust update makes on the account's budgets (domain/pacing), for
 * `rotor trust push` to pace its starts by: the start, the state machine's transitions, one
 * trust_req, the device reconnecting with the new bundle, and device-message's principal
 * check (C4) and answer. Re-sent trust_req are not counted: they come minutes later.
 */
export const TRUST_UPDATE_CALLS = {
  'states:StartExecution': 1,
  'states:StateTransition': 5,
  'iotdata:Publish': 1,
  'iot:Connect': 1,
  'iot:DescribeCertificate': 1,
  'iot:ListThingPrincipals': 1,
  'states:SendTask': 1,
} as const;
