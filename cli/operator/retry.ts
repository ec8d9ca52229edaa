import { DescribeExecutionCommand, StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { RotationRecord } from '../../domain/records.js';
import { FailureReason, RotationStatus, Trigger, type RotationInput } from '../../domain/rotation.js';
import { retryExecutionName } from '../../domain/naming.js';
import { mapBounded, withBackoff, type BackoffOptions } from './bounded.js';
import { describeError, NotFoundError, UsageError } from './exit-codes.js';
import { getCurrentRecord, listByStatus, requireThingName } from './status.js';

/**
 * `rotor retry`: a fresh rotate-device execution for each FAILED device (docs/operations.md says
 * why fresh and not RedriveExecution). The execution name is retryExecutionName(thing, old
 * certificate, failed rotation): asking twice asks Step Functions for the same name, and the
 * second StartExecution is refused with ExecutionAlreadyExists, so nothing starts twice.
 */
export interface RetryOptions {
  thing?: string;
  allFailed: boolean;
}

export interface RetryDeps {
  ddb: DynamoDBDocumentClient;
  sfn: SFNClient;
  tableName: string;
}

export const SkipReason = {
  InProgress: 'IN_PROGRESS',
  NotFailed: 'NOT_FAILED',
  AlreadyRetried: 'ALREADY_RETRIED',
} as const;
export type SkipReason = (typeof SkipReason)[keyof typeof SkipReason];

export interface PlannedRetry {
  thing: string;
  failedRotationId: string;
  executionName: string;
  input: RotationInput;
  /** Where the failed rotation stopped, for the confirmation list. */
  failedStep: string;
  failedReason?: string;
}

export interface Skipped {
  thing: string;
  reason: SkipReason;
  detail: string;
}

export interface RetryPlan {
  toStart: PlannedRetry[];
  skipped: Skipped[];
}

export type RetryResult =
  | { thing: string; outcome: 'started'; executionName: string; executionArn: string }
  | { thing: string; outcome: 'skipped'; reason: SkipReason; detail: string }
  | { thing: string; outcome: 'failed'; executionName: string; error: string };

export interface RetrySummary {
  dryRun: boolean;
  planned: PlannedRetry[];
  results: RetryResult[];
  started: number;
  skipped: number;
  failed: number;
  skippedByReason: Partial<Record<SkipReason, number>>;
}

export function validateRetryOptions(options: { thing?: string; allFailed?: boolean }): RetryOptions {
  if (options.thing !== undefined && options.allFailed) throw new UsageError('use either --thing NAME or --all-failed, not both');
  if (options.thing === undefined && !options.allFailed) throw new UsageError('say which devices to retry: --thing NAME or --all-failed');
  return options.thing !== undefined ? { thing: requireThingName(options.thing), allFailed: false } : { allFailed: true };
}

const ENDED = new Set(['FAILED', 'TIMED_OUT', 'ABORTED', 'SUCCEEDED']);

/**
 * An IN_PROGRESS record whose execution has ended (it crashed, was stopped or timed out before
 * recording anything) is an abandoned claim: the retry's execution releases it ('Check claim
 * holder' records it FAILED, EXECUTION_ABANDONED) and rotates. undefined: the rotation is live.
 */
async function abandonedStatus(deps: RetryDeps, record: RotationRecord): Promise<string | undefined> {
  if (!record.executionArn) return undefined;
  try {
    const execution = await deps.sfn.send(new DescribeExecutionCommand({ executionArn: record.executionArn }));
    return execution.status && ENDED.has(execution.status) ? execution.status : undefined;
  } catch (error) {
    if ((error as { name?: unknown })?.name === 'ExecutionDoesNotExist') return 'GONE';
    // The record is what the skip rests on; a failed look-up only loses the offer.
    return undefined;
  }
}

function inProgressSkip(record: RotationRecord): Skipped {
  return { thing: record.thingName, reason: SkipReason.InProgress, detail: `rotation ${record.rotationId} is in progress (${record.step})` };
}

function plannedRetry(record: RotationRecord, failedReason: string | undefined): PlannedRetry {
  return {
    thing: record.thingName,
    failedRotationId: record.rotationId,
    executionName: retryExecutionName(record.thingName, record.oldCertificateId, record.rotationId),
    input: retryInput(record),
    failedStep: record.step,
    failedReason,
  };
}

/**
 * The retry's input. A rotation that failed after the device acked over its new certificate
 * (Retire failed, or its claim was abandoned there) is resumed at Retire: the device is on
 * that certificate, so a fresh CSR round would rotate a key it no longer uses.
 */
export function retryInput(record: RotationRecord): RotationInput {
  const base: RotationInput = { thingName: record.thingName, certificateId: record.oldCertificateId, trigger: Trigger.Retry };
  const leftover = record.leftoverCertificateId;
  return leftover && leftover === record.ackedCertificateId ? { ...base, resume: { newCertificateId: leftover } } : base;
}

/**
 * Decides, from the current records (and, for IN_PROGRESS ones, whether their execution still
 * runs), which devices would be retried and why the others are not. --all-failed covers FAILED
 * records and abandoned IN_PROGRESS ones.
 */
export async function planRetries(deps: RetryDeps, options: RetryOptions): Promise<RetryPlan> {
  let records: RotationRecord[];
  if (options.thing !== undefined) {
    const record = await getCurrentRecord(deps, options.thing);
    if (!record) throw new NotFoundError(`no rotation recorded for thing ${options.thing} in table ${deps.tableName}`);
    records = [record];
  } else {
    records = [
      ...(await listByStatus({ ...deps, local: false }, RotationStatus.Failed)),
      ...(await listByStatus({ ...deps, local: false }, RotationStatus.InProgress)),
    ];
  }
  const plan: RetryPlan = { toStart: [], skipped: [] };
  for (const record of records) {
    switch (record.status) {
      case RotationStatus.Failed:
        plan.toStart.push(plannedRetry(record, record.reason));
        break;
      case RotationStatus.InProgress: {
        const ended = await abandonedStatus(deps, record);
        if (ended) plan.toStart.push(plannedRetry(record, `${FailureReason.ExecutionAbandoned} (execution ${ended})`));
        else if (options.thing !== undefined) plan.skipped.push(inProgressSkip(record));
        break;
      }
      case RotationStatus.Succeeded:
        plan.skipped.push({
          thing: record.thingName,
          reason: SkipReason.NotFailed,
          detail: `the last rotation (${record.rotationId}) succeeded; nothing to retry`,
        });
        break;
    }
  }
  return plan;
}

/** The ARN an execution named `name` of `stateMachineArn` has (or will have). */
export function executionArnFor(stateMachineArn: string, name: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
}

/**
 * Step Functions answers a StartExecution with the name *and input* of a running execution
 * with that execution, not an error: so "already retried" is first asked of DescribeExecution,
 * and ExecutionAlreadyExists still covers a retry that finished in between.
 */
async function existingExecution(sfn: SFNClient, executionArn: string): Promise<string | undefined> {
  try {
    const found = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    return found?.status;
  } catch {
    // ExecutionDoesNotExist is the usual answer; anything else is left to StartExecution to report.
    return undefined;
  }
}

function isAlreadyExists(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'ExecutionAlreadyExists';
}

/** Starts the planned executions, a few at a time, backing off while Step Functions throttles. */
export async function executeRetries(
  deps: RetryDeps,
  stateMachineArn: string,
  plan: RetryPlan,
  settings: { concurrency: number; backoff?: Partial<BackoffOptions>; onProgress?: () => void },
): Promise<RetryResult[]> {
  const started = await mapBounded(
    plan.toStart,
    settings.concurrency,
    async (planned): Promise<RetryResult> => {
      const alreadyRetried: RetryResult = {
        thing: planned.thing,
        outcome: 'skipped',
        reason: SkipReason.AlreadyRetried,
        detail: `already retried: execution ${planned.executionName} exists for failed rotation ${planned.failedRotationId}`,
      };
      const existing = await existingExecution(deps.sfn, executionArnFor(stateMachineArn, planned.executionName));
      if (existing) return { ...alreadyRetried, detail: `${alreadyRetried.detail} (${existing})` };
      try {
        const output = await withBackoff(
          () =>
            deps.sfn.send(
              new StartExecutionCommand({ stateMachineArn, name: planned.executionName, input: JSON.stringify(planned.input) }),
            ),
          settings.backoff,
        );
        return { thing: planned.thing, outcome: 'started', executionName: planned.executionName, executionArn: output.executionArn ?? '' };
      } catch (error) {
        if (isAlreadyExists(error)) return alreadyRetried;
        return { thing: planned.thing, outcome: 'failed', executionName: planned.executionName, error: describeError(error).message };
      }
    },
    settings.onProgress,
  );
  const skipped = plan.skipped.map((s): RetryResult => ({ thing: s.thing, outcome: 'skipped', reason: s.reason, detail: s.detail }));
  return [...started, ...skipped];
}

export function summarize(plan: RetryPlan, results: RetryResult[], dryRun: boolean): RetrySummary {
  const skippedByReason: Partial<Record<SkipReason, number>> = {};
  const skippedResults = dryRun
    ? plan.skipped.map((s) => ({ thing: s.thing, outcome: 'skipped' as const, reason: s.reason, detail: s.detail }))
    : results.filter((r): r is Extract<RetryResult, { outcome: 'skipped' }> => r.outcome === 'skipped');
  for (const r of skippedResults) skippedByReason[r.reason] = (skippedByReason[r.reason] ?? 0) + 1;
  return {
    dryRun,
    planned: plan.toStart,
    results: dryRun ? skippedResults : results,
    started: results.filter((r) => r.outcome === 'started').length,
    skipped: skippedResults.length,
    failed: results.filter((r) => r.outcome === 'failed').length,
    skippedByReason,
  };
}

export function formatPlan(plan: RetryPlan): string[] {
  return plan.toStart.map(
    (p) => `  ${p.thing}: failed in ${p.failedStep}${p.failedReason ? ` (${p.failedReason})` : ''} → start ${p.executionName}`,
  );
}

export function formatRetrySummary(summary: RetrySummary): string[] {
  const lines: string[] = [];
  if (summary.dryRun) {
    lines.push(summary.planned.length ? `would start ${summary.planned.length} execution(s):` : 'nothing to retry');
    lines.push(...formatPlan({ toStart: summary.planned, skipped: [] }));
  } else {
    for (const r of summary.results) {
      if (r.outcome === 'started') lines.push(`started  ${r.thing}: ${r.executionArn || r.executionName}`);
      if (r.outcome === 'failed') lines.push(`FAILED   ${r.thing}: ${r.error}`);
    }
  }
  for (const r of summary.results) if (r.outcome === 'skipped') lines.push(`skipped  ${r.thing}: ${r.detail}`);
  const reasons = Object.entries(summary.skippedByReason).map(([reason, n]) => `${reason} ${n}`);
  lines.push(
    summary.dryRun
      ? `dry run: ${summary.planned.length} would start, ${summary.skipped} skipped${reasons.length ? ` (${reasons.join(', ')})` : ''}; nothing was started`
      : `${summary.started} started, ${summary.skipped} skipped${reasons.length ? ` (${reasons.join(', ')})` : ''}, ${summary.failed} failed`,
  );
  return lines;
}
