import { executionConsoleUrl, RotationAlreadySucceeded, RotationStatus, Step } from '../domain/index.js';
import type { Clock } from './core/clock.js';
import { escalationSubject } from './core/escalation.js';
import { classifyFailure, type Failure } from './core/failure.js';
import { optionalEnv, positiveIntegerEnv } from './core/environment.js';
import { once, rotorHandler, taskLogKeys } from './core/handler.js';
import { objectInput, optionalStringField, rotationIdField, stringField } from './core/input.js';
import { finishRotation, type TableDeps } from './core/rotation-table.js';
import { parseRotationState, type RotationState } from './core/rotation-state.js';
import { MetricName, observability, type Telemetry } from './core/telemetry.js';
import { baseDeps } from './core/runtime-deps.js';

/** What the 'Record failure' state sends. */
export interface RecordFailureInput {
  rotation: RotationState;
  rotationId: string;
  executionArn: string;
  startedAt: string;
  failedStep?: string;
}

/** The escalation the 'Escalate' state publishes and the 'Rotation failed' state reports. */
export interface RecordFailureResult {
  subject: string;
  message: string;
  error: string;
  cause: string;
}

export interface RecordFailureDeps extends TableDeps {
  clock: Clock;
  telemetry: Telemetry;
  historyRetentionDays: number;
  /** The local runtime's console (ROTOR_CONSOLE_URL); unset on AWS, where the link is the Step Functions console's. */
  consoleUrl?: string;
}

export function parseRecordFailureInput(event: unknown): RecordFailureInput {
  const input = objectInput(event, 'record-failure input');
  return {
    rotation: parseRotationState(input.rotation),
    rotationId: rotationIdField(input),
    executionArn: stringField(input, 'executionArn', 2048),
    startedAt: stringField(input, 'startedAt', 64),
    failedStep: optionalStringField(input, 'failedStep', 128),
  };
}

export { escalationSubject, MAX_SUBJECT_CHARS } from './core/escalation.js';

/**
 * Records the failure on the thing's record and in its history (finishRotation), and composes
 * the one escalation message. If the record already belongs to another rotation (this one never
 * claimed it, or lost the claim), that rotation's record is left alone and only the history
 * item is written: the failure is still kept and escalated. If this rotation is already
 * recorded SUCCEEDED, nothing is written and RotationAlreadySucceeded ends the execution as
 * the success it was.
 */
export async function recordFailure(event: unknown, deps: RecordFailureDeps): Promise<RecordFailureResult> {
  const input = parseRecordFailureInput(event);
  const { rotation, rotationId } = input;
  const { thingName } = rotation;
  const failure: Failure = classifyFailure({
    failedStep: input.failedStep,
    error: rotation.error,
    rollbackError: rotation.rollbackError,
    oldCertificateStatus: rotation.rollback?.oldCertificateStatus,
  });
  const newCertificateId = rotation.issued?.certificateId ?? rotation.rollback?.newCertificateId ?? null;

  const outcome = await finishRotation(deps, {
    outcome: RotationStatus.Failed,
    thingName,
    rotationId,
    executionArn: input.executionArn,
    step: failure.step,
    reason: failure.reason,
    cause: failure.cause,
    oldCertificateId: rotation.certificateId,
    ...(newCertificateId ? { newCertificateId } : {}),
    // Not rolled back (roll back refused or failed, or Retire failed): the next rotation finishes it.
    ...(newCertificateId && rotation.rollback?.deleted !== true ? { leftoverCertificateId: newCertificateId } : {}),
    trigger: rotation.trigger,
    startedAt: input.startedAt,
    now: deps.clock.now(),
    historyRetentionDays: deps.historyRetentionDays,
  });
  if (outcome === 'already-succeeded') {
    // Retire committed the success and then failed to report it (a timeout): the success stands.
    deps.telemetry.log.warn('the rotation is already recorded SUCCEEDED; the late failure is not recorded', { step: failure.step, reason: failure.reason });
    throw new RotationAlreadySucceeded(thingName, rotationId);
  }
  if (outcome === 'history-only') deps.telemetry.log.warn('the current record belongs to another rotation; the failure was recorded in history only');

  deps.telemetry.count(MetricName.RotationsFailed, 1, { reason: failure.reason });
  deps.telemetry.log.warn('rotation failed', { step: failure.step, reason: failure.reason, cause: failure.cause });

  const message = {
    thingName,
    oldCertificateId: rotation.certificateId,
    newCertificateId,
    step: failure.step,
    reason: failure.reason,
    cause: failure.cause,
    rotationId,
    executionArn: input.executionArn,
    consoleUrl: executionConsoleUrl(input.executionArn, deps.consoleUrl),
  };
  return {
    subject: escalationSubject(thingName, failure.reason),
    message: JSON.stringify(message, null, 2),
    error: failure.reason,
    cause: failure.cause,
  };
}

const obs = observability('record-failure');
const runtime = once(
  (): RecordFailureDeps => ({
    ...baseDeps(obs),
    historyRetentionDays: positiveIntegerEnv('HISTORY_RETENTION_DAYS', 400),
    consoleUrl: optionalEnv('ROTOR_CONSOLE_URL'),
  }),
);

export const handler = rotorHandler({ observability: obs, step: Step.RecordFailure, logKeys: taskLogKeys }, (event: unknown) =>
  recordFailure(event, runtime()),
);
