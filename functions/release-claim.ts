import { DescribeExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { ClaimHeld, executionConsoleUrl, FailureReason, RotationStatus, Step } from '../domain/index.js';
import { isNamed } from './aws/errors.js';
import type { Clock } from './core/clock.js';
import { optionalEnv, positiveIntegerEnv } from './core/environment.js';
import { escalationSubject } from './core/escalation.js';
import { once, rotorHandler, taskLogKeys } from './core/handler.js';
import { objectInput, rotationIdField, thingNameField } from './core/input.js';
import { finishRotation, getCurrentRecord, type TableDeps } from './core/rotation-table.js';
import { MetricName, observability, type Telemetry } from './core/telemetry.js';

import { baseDeps, tracedSfn } from './core/runtime-deps.js';

/** What the 'Check claim holder' state sends, after 'Claim device' found the thing claimed. */
export interface ReleaseClaimInput {
  thingName: string;
  /** The execution asking (it wants the claim). */
  rotationId: string;
}

export interface ReleaseClaimDeps extends TableDeps {
  sfn: SFNClient;
  clock: Clock;
  telemetry: Telemetry;
  historyRetentionDays: number;
  /** The local runtime's console, linked from escalations instead of the Step Functions console. */
  consoleUrl?: string;
}

/**
 * Released: the abandoned rotation's one escalation (subject and message, as Record failure
 * composes them), which 'Escalate abandoned rotation' publishes before the claim is tried again.
 */
export type ReleaseClaimResult =
  | { released: true; holder: string; holderStatus: string; subject: string; message: string }
  | { released: false; reason: 'NOT_HELD' };

export function parseReleaseClaimInput(event: unknown): ReleaseClaimInput {
  const input = objectInput(event, 'release-claim input');
  return { thingName: thingNameField(input), rotationId: rotationIdField(input) };
}

/** DescribeExecution's status, 'GONE' when Step Functions no longer knows the execution. */
async function executionStatus(sfn: SFNClient, executionArn: string): Promise<string> {
  try {
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    return described.status ?? 'UNKNOWN';
  } catch (error) {
    if (isNamed(error, 'ExecutionDoesNotExist')) return 'GONE';
    throw error;
  }
}

/**
 * A claim whose execution is no longer RUNNING (it failed before recording, was stopped, or
 * timed out) would lock the thing forever: every later audit would end in 'Already rotating'.
 * This releases it, recorded as its own outcome (FAILED, EXECUTION_ABANDONED, a history item),
 * so that 'Claim device' can be tried again; a claim whose execution still runs is left alone
 * (ClaimHeld → 'Already rotating'). The record's newCertificateId is kept: the rotation that
 * follows finds what the abandoned one left.
 */
export async function releaseClaim(event: unknown, deps: ReleaseClaimDeps): Promise<ReleaseClaimResult> {
  const input = parseReleaseClaimInput(event);
  const record = await getCurrentRecord(deps, input.thingName);
  if (!record || record.status !== RotationStatus.InProgress || record.rotationId === input.rotationId) {
    // Released meanwhile (or ours): just claim again.
    return { released: false, reason: 'NOT_HELD' };
  }
  const holderStatus = await executionStatus(deps.sfn, record.executionArn);
  if (holderStatus === 'RUNNING') throw new ClaimHeld(input.thingName, record.rotationId);

  const cause = `execution ${record.rotationId} ended ${holderStatus} in '${record.step}' without recording an outcome; released by ${input.rotationId}`;
  const outcome = await finishRotation(deps, {
    outcome: RotationStatus.Failed,
    onlyIfInProgress: true,
    thingName: input.thingName,
    rotationId: record.rotationId,
    executionArn: record.executionArn,
    step: record.step,
    reason: FailureReason.ExecutionAbandoned,
    cause,
    oldCertificateId: record.oldCertificateId,
    ...(record.newCertificateId ? { newCertificateId: record.newCertificateId, leftoverCertificateId: record.newCertificateId } : {}),
    trigger: record.trigger,
    startedAt: record.startedAt,
    now: deps.clock.now(),
    historyRetentionDays: deps.historyRetentionDays,
  });
  deps.telemetry.count(MetricName.RotationsFailed, 1, { reason: FailureReason.ExecutionAbandoned });
  deps.telemetry.log.warn('released the claim of an execution that is no longer running', { holder: record.rotationId, holderStatus, outcome });
  // The abandoned execution never reached Record failure: this is the one escalation it gets.
  const message = {
    thingName: input.thingName,
    oldCertificateId: record.oldCertificateId,
    newCertificateId: record.newCertificateId ?? null,
    step: record.step,
    reason: FailureReason.ExecutionAbandoned,
    cause,
    rotationId: record.rotationId,
    executionArn: record.executionArn,
    consoleUrl: executionConsoleUrl(record.executionArn, deps.consoleUrl),
    releasedBy: input.rotationId,
  };
  return {
    released: true,
    holder: record.rotationId,
    holderStatus,
    subject: escalationSubject(input.thingName, FailureReason.ExecutionAbandoned),
    message: JSON.stringify(message, null, 2),
  };
}

const obs = observability('release-claim');
const runtime = once(
  (): ReleaseClaimDeps => ({
    ...baseDeps(obs),
    sfn: tracedSfn(obs),
    historyRetentionDays: positiveIntegerEnv('HISTORY_RETENTION_DAYS', 400),
    consoleUrl: optionalEnv('ROTOR_CONSOLE_URL'),
  }),
);

export const handler = rotorHandler({ observability: obs, step: Step.CheckClaimHolder, logKeys: taskLogKeys }, (event: unknown) =>
  releaseClaim(event, runtime()),
);
