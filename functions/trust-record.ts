import {
  InvalidInput,
  isBundleId,
  TRUST_INTERNAL_ERROR,
  TRUST_NO_ACK,
  TRUST_REFUSED_ERROR,
  trustEscalation,
  TrustStatus,
  TrustStep,
  type TrustEscalation,
  type TrustFailureReason,
  type TrustRefusal,
} from '../domain/index.js';
import type { Clock } from './core/clock.js';
import { once, rotorHandler } from './core/handler.js';
import { certificateIdField, objectInput, rotationIdField, stringField, thingNameField, type Fields } from './core/input.js';
import type { TableDeps } from './core/rotation-table.js';
import { MetricName, observability, type Telemetry } from './core/telemetry.js';
import { finishTrustUpdate, type TrustOutcome } from './core/trust-table.js';
import { baseDeps } from './core/runtime-deps.js';

/**
 * What 'Record trust updated' and 'Record trust failure' send: the answer device-message gave
 * the task (a trust_ack that counted, C4), or the error the update failed with — the device's
 * trust_err (TrustRefused), no answer after the re-sends (States.Timeout), or anything else.
 */
export type TrustRecordInput =
  | { thingName: string; updateId: string; executionArn: string; bundleId: string; answer: { bundleId: string; certificateId: string } }
  | { thingName: string; updateId: string; executionArn: string; bundleId: string; error: { Error: string; Cause?: string } };

export type TrustRecordResult = { outcome: typeof TrustStatus.Updated } | { outcome: typeof TrustStatus.Refused | typeof TrustStatus.NotUpdated; escalation: TrustEscalation };

export interface TrustRecordDeps extends TableDeps {
  clock: Clock;
  telemetry: Telemetry;
}

export function parseTrustRecordInput(event: unknown): TrustRecordInput {
  const input = objectInput(event, 'trust-record input');
  const bundleId = stringField(input, 'bundleId', 64);
  if (!isBundleId(bundleId)) throw new InvalidInput('bundleId must be 64 lowercase hex characters');
  const base = { thingName: thingNameField(input), updateId: rotationIdField(input, 'updateId'), executionArn: stringField(input, 'executionArn', 2048), bundleId };
  if (input.answer !== undefined) {
    const answer = objectInput(input.answer, 'answer');
    return { ...base, answer: { bundleId: stringField(answer, 'bundleId', 64), certificateId: certificateIdField(answer, 'certificateId') } };
  }
  const error: Fields = objectInput(input.error, 'error');
  return { ...base, error: { Error: stringField(error, 'Error', 256), ...(typeof error.Cause === 'string' ? { Cause: error.Cause } : {}) } };
}

/** The reason and cause of a failed update, from the error the waiting state failed with. */
export function failureOf(error: { Error: string; Cause?: string }): { status: typeof TrustStatus.Refused | typeof TrustStatus.NotUpdated; reason: TrustFailureReason; cause: string } {
  if (error.Error === 'States.Timeout') {
    return { status: TrustStatus.NotUpdated, reason: TRUST_NO_ACK, cause: 'the device did not answer trust_req, sent again with backoff until the bounded number of requests ran out' };
  }
  if (error.Error === TRUST_REFUSED_ERROR && error.Cause) {
    try {
      const refusal = JSON.parse(error.Cause) as Partial<TrustRefusal>;
      if (typeof refusal.reason === 'string' && refusal.reason.startsWith('TRUST_') && typeof refusal.error === 'string') {
        return { status: TrustStatus.Refused, reason: refusal.reason as TrustFailureReason, cause: refusal.error };
      }
    } catch {
      // Not the cause device-message writes: reported as an internal error below.
    }
  }
  return { status: TrustStatus.NotUpdated, reason: TRUST_INTERNAL_ERROR, cause: `${error.Error}: ${error.Cause ?? ''}`.slice(0, 1024) };
}

/**
 * Records how one device's trust update ended (C4–C6): UPDATED with the bundle as the device's
 * current one; or REFUSED (trust_err, TRUST_<code>) / NOT_UPDATED (no answer) with the one
 * escalation message the next state publishes. A record another update has claimed since is
 * left alone; the escalation is still composed, so the failure is not lost.
 */
export async function recordTrust(event: unknown, deps: TrustRecordDeps): Promise<TrustRecordResult> {
  const input = parseTrustRecordInput(event);
  const now = deps.clock.now();
  if ('answer' in input) {
    const outcome: TrustOutcome = { status: TrustStatus.Updated, bundleId: input.bundleId, certificateId: input.answer.certificateId };
    const recorded = await finishTrustUpdate(deps, { thingName: input.thingName, updateId: input.updateId, step: TrustStep.TrustUpdated, now, outcome });
    deps.telemetry.log.info('trust update recorded', { outcome: outcome.status, bundleId: input.bundleId, recorded });
    deps.telemetry.count(MetricName.TrustUpdatesUpdated);
    return { outcome: TrustStatus.Updated };
  }
  const failure = failureOf(input.error);
  const recorded = await finishTrustUpdate(deps, { thingName: input.thingName, updateId: input.updateId, step: TrustStep.RecordTrustFailure, now, outcome: failure });
  deps.telemetry.log.warn('trust update failed', { reason: failure.reason, recorded });
  deps.telemetry.count(failure.status === TrustStatus.Refused ? MetricName.TrustUpdatesRefused : MetricName.TrustUpdatesNotUpdated, 1, { reason: failure.reason });
  const escalation = trustEscalation({ thingName: input.thingName, updateId: input.updateId, bundleId: input.bundleId, reason: failure.reason, cause: failure.cause, executionArn: input.executionArn });
  return { outcome: failure.status, escalation };
}

function trustLogKeys(event: unknown): Record<string, string | undefined> {
  const fields = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
  return { thingName: text(fields.thingName), rotationId: text(fields.updateId) };
}

const obs = observability('trust-record');
const runtime = once((): TrustRecordDeps => baseDeps(obs));

export const handler = rotorHandler({ observability: obs, step: 'Record trust', logKeys: trustLogKeys }, (event: unknown) => recordTrust(event, runtime()));
