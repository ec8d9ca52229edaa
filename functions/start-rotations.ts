import { ListAuditFindingsCommand, ListPrincipalThingsCommand, type AuditFinding, type IoTClient } from '@aws-sdk/client-iot';
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';
import * as z from 'zod/mini';
import {
  AUDIT_CHECKS,
  auditExecutionName,
  auditPk,
  REPORT_SK,
  StartOutcome,
  Trigger,
  type AuditCheck,
  type RotationInput,
} from '../domain/index.js';
import { AdmissionController, DEFAULT_CALENDAR, deferredPk, deferredSk, planCohort, renewalDecision, type Cohort, type DeferredStart, type RenewalSettings } from '../domain/pacing/index.js';
import { calendarDays, calendarSettings, deferStarts, dueStarts, fixCohort, leaseSweep, pruneDays, startedDeferred } from './core/pacing-calendar.js';
import { isNamed, RESOURCE_NOT_FOUND } from './aws/errors.js';
import { certificateArnFor } from './core/certificates.js';
import type { Clock } from './core/clock.js';
import { ConfigurationError, optionalEnv, requiredEnv } from './core/environment.js';
import { once, rotorHandler } from './core/handler.js';
import type { TableDeps } from './core/rotation-table.js';
import { MetricName, observability, type Telemetry } from './core/telemetry.js';
import { baseDeps, tracedIot, tracedSfn, tracedLambda } from './core/runtime-deps.js';
import { pacedRuntime, type Pacing } from './core/pacing.js';
import { startCaRollovers, type CaRolloverStarts } from './core/ca-expiry-rollover.js';

/** Where one audit's processing stands; the payload of a continuation invocation. */
export interface AuditPosition {
  taskId: string;
  /** The non-compliant checks to page through, in order. */
  checks: AuditCheck[];
  checkIndex: number;
  nextToken?: string;
  /** Findings of the page at nextToken already handled: admission stopped the invocation mid-page. */
  skip?: number;
  /** The audit's place in the renewal calendar, fixed by its first invocation; absent: every finding starts now. */
  cohort?: Cohort;
  /** Flagged devices the notification counts (its nonCompliantResourcesCount), to plan the cohort. */
  devices?: number;
}

/** The scheduled sweep of the renewal calendar (EventBridge's input), or its continuation with the lease it holds. */
export interface SweepEvent {
  sweep: 'calendar';
  lease?: string;
}

export interface ContinuationEvent {
  continuation: AuditPosition;
}

export type SkipReason = Exclude<StartOutcome, typeof StartOutcome.Started>;

export interface StartReport {
  taskId: string | null;
  started: number;
  skipped: Partial<Record<SkipReason, number>>;
  /** True when the work did not fit in this invocation and continues in another. */
  continued: boolean;
  /** How long starts waited for admission (pacing), in this invocation. */
  admissionWaitMs?: number;
  /** Why nothing was done, for input that is not an actionable audit notification. */
  ignored?: string;
  /** CA rollovers the audit's CA_CERTIFICATE_EXPIRING_CHECK findings started (core/ca-expiry-rollover.ts). */
  caRollovers?: CaRolloverStarts;
}

export interface StartRotationsDeps extends TableDeps {
  iot: IoTClient;
  sfn: SFNClient;
  lambda: LambdaClient;
  stateMachineArn: string;
  auditChecks: readonly AuditCheck[];
  clock: Clock;
  telemetry: Telemetry;
  /** This invocation: where to continue, and how much time is left. */
  invocation: { functionArn: string; remainingMs: () => number };
  /** Stop taking new pages when less than this is left. */
  safetyMarginMs?: number;
  pageSize?: number;
  concurrency?: number;
  /**
   * The renewal calendar (docs/fleet-scale.md): a finding whose place in its audit's cohort is
   * after the next sweep is deferred, and the sweep starts it. Undefined (or pacing off): every
   * finding starts now.
   */
  calendar?: RenewalSettings;
  /**
   * The shared budget (docs/fleet-scale.md): each start is admitted first — the start pace and
   * the backpressure of the steps in flight. Undefined: pacing is off, starts go at once.
   */
  pacing?: Pacing;
  /** The ca-rollover state machine a CA_CERTIFICATE_EXPIRING_CHECK finding starts; undefined: such findings are ignored. */
  caRolloverStateMachineArn?: string;
  /** The successor CA those rollovers move to (setting nextPrivateCaArn); empty: they escalate "no successor configured". */
  nextPrivateCaArn?: string;
}

export const DEFAULT_SAFETY_MARGIN_MS = 60_000;
/** ListAuditFindings allows up to 250; 100 keeps one page well inside the safety margin. */
export const DEFAULT_PAGE_SIZE = 100;
/** Per-finding calls in flight; IoT's certificate APIs allow 10–15 TPS, adaptive retry does the rest. */
export const DEFAULT_CONCURRENCY = 8;
/**
 * Things one shared certificate starts executions for, at most. Each refuses it (SHARED_CERTIFICATE);
 * a certificate on more things than this is already an incident the escalations make visible.
 */
export const MAX_THINGS_PER_CERTIFICATE = 10;
/** How much older than this invocation an execution's start must be to count as started before. */
const CLOCK_TOLERANCE_MS = 2_000;

const AUDIT_TASK_ID = /^[a-zA-Z0-9-]{1,40}$/;
const NON_COMPLIANT = 'COMPLETED_NON_COMPLIANT';
const KNOWN_CHECKS: readonly string[] = AUDIT_CHECKS;

/** AUDIT_CHECKS: comma-separated check names; every one must be a check Rotor can act on. */
export function parseAuditChecks(value: string | undefined): AuditCheck[] {
  if (value === undefined) return [...AUDIT_CHECKS];
  const names = [...new Set(value.split(',').map((name) => name.trim()).filter(Boolean))];
  const unknown = names.filter((name) => !KNOWN_CHECKS.includes(name));
  if (unknown.length || names.length === 0) {
    throw new ConfigurationError(`AUDIT_CHECKS must list checks among ${AUDIT_CHECKS.join(', ')}; got ${JSON.stringify(value)}`);
  }
  return names as AuditCheck[];
}

type Parsed = { ok: true; positions: AuditPosition[] } | { ok: false; reason: string; taskId?: string };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const TaskIdSchema = z.string().check(z.regex(AUDIT_TASK_ID));

/** The payload this function sends itself to continue an audit (continueLater). */
const ContinuationSchema = z.object({
  taskId: TaskIdSchema,
  checks: z.array(z.string()).check(z.minLength(1)),
  checkIndex: z.int().check(z.gte(0)),
  nextToken: z.optional(z.string().check(z.minLength(1))),
  skip: z.optional(z.int().check(z.gte(0))),
  cohort: z.optional(z.object({ startMs: z.number().check(z.gte(0)), spreadS: z.number().check(z.gte(0)) })),
});

/** What a continuation failed on, by the first field its schema refused. */
const CONTINUATION_FIELD_REASONS: Readonly<Record<string, string>> = {
  taskId: 'continuation has no valid taskId',
  checks: 'continuation lists checks that are not configured',
  checkIndex: 'continuation has no valid checkIndex',
  nextToken: 'continuation has an invalid nextToken',
  skip: 'continuation has an invalid skip',
  cohort: 'continuation has an invalid cohort',
};

/**
 * The Device Defender audit-completion notification: {accountId, taskId, taskStatus,
 * taskType, ..., auditDetails: [{checkName, checkRunStatus, nonCompliantResourcesCount, ...}]}.
 * Unknown fields are allowed: AWS adds fields without notice.
 */
const NotificationSchema = z.object({
  taskId: TaskIdSchema,
  taskStatus: z.string(),
  auditDetails: z.array(z.unknown()),
});
const AuditDetailSchema = z.object({ checkName: z.string(), checkRunStatus: z.string(), nonCompliantResourcesCount: z.optional(z.number()) });

/** The SNS event Lambda receives: one record per notification, the notification as a string. */
const SnsEventSchema = z.object({ Records: z.array(z.unknown()).check(z.minLength(1)) });
const SnsRecordSchema = z.object({ Sns: z.object({ Message: z.string() }) });

function parseContinuation(value: unknown, configured: readonly AuditCheck[]): Parsed {
  if (!isObject(value)) return { ok: false, reason: 'continuation is not an object' };
  const parsed = ContinuationSchema.safeParse(value);
  const taskId = TaskIdSchema.safeParse(value.taskId).data;
  if (!parsed.success) {
    const field = String(parsed.error.issues[0]?.path[0] ?? 'taskId');
    return { ok: false, reason: CONTINUATION_FIELD_REASONS[field] ?? `continuation is invalid at ${field}`, ...(taskId ? { taskId } : {}) };
  }
  const { checks, checkIndex, nextToken, skip, cohort } = parsed.data;
  if (!checks.every((check) => configured.includes(check as AuditCheck))) return { ok: false, reason: CONTINUATION_FIELD_REASONS.checks, taskId: parsed.data.taskId };
  if (checkIndex >= checks.length) return { ok: false, reason: CONTINUATION_FIELD_REASONS.checkIndex, taskId: parsed.data.taskId };
  return { ok: true, positions: [{ taskId: parsed.data.taskId, checks: checks as AuditCheck[], checkIndex, ...(nextToken ? { nextToken } : {}), ...(skip ? { skip } : {}), ...(cohort ? { cohort } : {}) }] };
}

function parseNotification(message: string, configured: readonly AuditCheck[]): Parsed {
  let body: unknown;
  try {
    body = JSON.parse(message);
  } catch {
    return { ok: false, reason: 'the SNS message is not JSON' };
  }
  if (!isObject(body)) return { ok: false, reason: 'the SNS message is not a JSON object' };
  const parsed = NotificationSchema.safeParse(body);
  if (!parsed.success) return { ok: false, reason: 'the SNS message is not a Device Defender audit notification' };
  const { taskId, taskStatus, auditDetails } = parsed.data;
  if (taskStatus !== 'COMPLETED') return { ok: false, reason: `audit task ${taskId} is ${taskStatus}, not COMPLETED`, taskId };
  const details = auditDetails.map((detail) => AuditDetailSchema.safeParse(detail).data).filter((detail) => detail?.checkRunStatus === NON_COMPLIANT);
  const nonCompliant = new Set(details.map((detail) => detail?.checkName));
  const checks = configured.filter((check) => nonCompliant.has(check));
  if (checks.length === 0) return { ok: false, reason: `audit task ${taskId} has no non-compliant finding for ${configured.join(', ')}`, taskId };
  // A certificate both checks flag counts twice: the cohort is planned a little wider, never narrower.
  const devices = details.filter((detail) => checks.includes(detail?.checkName as AuditCheck)).reduce((sum, detail) => sum + Math.max(0, detail?.nonCompliantResourcesCount ?? 0), 0);
  return { ok: true, positions: [{ taskId, checks, checkIndex: 0, ...(devices > 0 ? { devices } : {}) }] };
}

/** Accepts the SNS event (one record per notification) or a continuation payload. */
export function parseStartEvent(event: unknown, configured: readonly AuditCheck[]): Parsed {
  if (!isObject(event)) return { ok: false, reason: 'the event is not an object' };
  if ('continuation' in event) return parseContinuation(event.continuation, configured);
  const sns = SnsEventSchema.safeParse(event);
  if (!sns.success) return { ok: false, reason: 'the event is neither an SNS event nor a continuation' };
  const positions: AuditPosition[] = [];
  let firstFailure: Parsed | undefined;
  for (const record of sns.data.Records) {
    const message = SnsRecordSchema.safeParse(record).data?.Sns.Message;
    const parsed: Parsed = message !== undefined ? parseNotification(message, configured) : { ok: false, reason: 'an SNS record has no Message' };
    if (parsed.ok) positions.push(...parsed.positions);
    else firstFailure ??= parsed;
  }
  return positions.length ? { ok: true, positions } : (firstFailure ?? { ok: false, reason: 'no SNS record to act on' });
}

class AuditRun {
  readonly report: StartReport;
  private readonly began: Date;
  private pagesDone = 0;
  private admitted = 0;
  /** Admitted start times not used yet (admission hands out several at once). */
  private readonly slots: number[] = [];

  constructor(
    private readonly deps: StartRotationsDeps,
    taskId: string | null,
  ) {
    this.report = { taskId, started: 0, skipped: {}, continued: false };
    this.began = deps.clock.now();
  }

  private get outOfTime(): boolean {
    // At least one page per invocation, so that a margin too large for the timeout still progresses.
    return this.pagesDone > 0 && this.deps.invocation.remainingMs() < (this.deps.safetyMarginMs ?? DEFAULT_SAFETY_MARGIN_MS);
  }

  /** Pages through the position; returns where it stopped, or undefined when the audit is done. */
  async run(start: AuditPosition): Promise<AuditPosition | undefined> {
    const position = { ...start };
    while (position.checkIndex < position.checks.length) {
      if (this.outOfTime) return position;
      const checkName = position.checks[position.checkIndex];
      const page = await this.deps.iot.send(
        new ListAuditFindingsCommand({
          taskId: position.taskId,
          checkName,
          maxResults: this.deps.pageSize ?? DEFAULT_PAGE_SIZE,
          nextToken: position.nextToken,
        }),
      );
      const findings = page.findings ?? [];
      const { outcomes, stoppedAt } = await this.startAll(findings, position.skip ?? 0, position.taskId, checkName, position.cohort);
      await this.tally(position.taskId, outcomes.flat(), stoppedAt === undefined);
      if (stoppedAt !== undefined) {
        // Out of time while waiting for admission: the next invocation takes this page from here.
        position.skip = stoppedAt;
        return position;
      }
      this.pagesDone++;
      delete position.skip;
      if (page.nextToken) {
        position.nextToken = page.nextToken;
      } else {
        position.checkIndex++;
        delete position.nextToken;
      }
    }
    return undefined;
  }

  /**
   * Starts the page's findings from `skip` on, each admitted first (in order, so that what is
   * left when time runs out is the page's tail), at most `concurrency` in flight.
   */
  private async startAll(findings: readonly AuditFinding[], skip: number, taskId: string, checkName: AuditCheck, cohort?: Cohort): Promise<{ outcomes: StartOutcome[][]; stoppedAt?: number }> {
    const limit = this.deps.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency limit must be a positive integer, got ${limit}`);
    const outcomes: StartOutcome[][] = [];
    const running = new Set<Promise<void>>();
    let stoppedAt: number | undefined;
    // The calendar's decisions first: a deferred finding is recorded, not admitted nor started.
    const deferred = this.deferrals(findings, skip, taskId, checkName, cohort);
    const startsNow = (finding: AuditFinding): boolean => startsARotation(finding) && !deferred.has(finding);
    try {
      await deferStarts(this.deps, [...deferred.values()]);
      for (let i = skip; i < findings.length; i++) {
        if (deferred.has(findings[i])) {
          outcomes.push([StartOutcome.Deferred]);
          continue;
        }
        if (startsNow(findings[i]) && !(await this.admit(findings.slice(i).filter(startsNow).length))) {
          stoppedAt = i;
          break;
        }
        const started: Promise<void> = this.startOne(findings[i], taskId, checkName).then((outcome) => {
          outcomes.push(outcome);
          running.delete(started);
        });
        running.add(started);
        if (running.size >= limit) await Promise.race(running);
      }
      await Promise.all(running);
    } catch (error) {
      // The starts already running finish (as mapWithConcurrency did); the first error is the answer.
      await Promise.allSettled(running);
      throw error;
    }
    return { outcomes, ...(stoppedAt !== undefined ? { stoppedAt } : {}) };
  }

  /** The findings of a page from `skip` on that the calendar places after the next sweep, as the items that defer them. */
  private deferrals(findings: readonly AuditFinding[], skip: number, taskId: string, checkName: AuditCheck, cohort?: Cohort): Map<AuditFinding, DeferredStart> {
    const deferred = new Map<AuditFinding, DeferredStart>();
    const calendar = this.deps.calendar;
    if (!cohort || !calendar) return deferred;
    const nowMs = this.deps.clock.now().getTime();
    for (const finding of findings.slice(skip)) {
      if (!startsARotation(finding)) continue;
      const resource = finding.nonCompliantResource;
      const certificateId = resource?.resourceIdentifier?.deviceCertificateId as string;
      const expires = Date.parse(resource?.additionalInfo?.[EXPIRATION_INFO] ?? '');
      const notAfterMs = Number.isNaN(expires) ? undefined : expires;
      const decision = renewalDecision(certificateId, cohort, nowMs, calendar, notAfterMs);
      if (decision.kind === 'now') continue;
      const certificateArn = resource?.resourceIdentifier?.deviceCertificateArn;
      deferred.set(finding, {
        pk: deferredPk(new Date(decision.atMs).toISOString().slice(0, 10)),
        sk: deferredSk(decision.atMs, certificateId, taskId),
        certificateId,
        ...(certificateArn ? { certificateArn } : {}),
        auditTaskId: taskId,
        checkName,
        startAt: new Date(decision.atMs).toISOString(),
        ...(notAfterMs !== undefined ? { notAfter: new Date(notAfterMs).toISOString() } : {}),
      });
    }
    return deferred;
  }

  /**
   * The calendar's sweep: starts the deferred starts due before the next sweep, earliest first,
   * each admitted like any start, and deletes each only once its start was made or refused.
   * Returns true when time ran out with more due (the caller continues in another invocation).
   */
  async sweep(): Promise<boolean> {
    const calendar = this.deps.calendar as RenewalSettings;
    for (;;) {
      if (this.outOfTime) return true;
      const nowMs = this.deps.clock.now().getTime();
      const due = await dueStarts(this.deps, nowMs + calendar.sweepS * 1000, this.deps.pageSize ?? DEFAULT_PAGE_SIZE);
      if (due.length === 0) {
        await pruneDays(this.deps, nowMs);
        return false;
      }
      // One audit and check at a time, in due order, so each start is tallied on its audit.
      let stopped = false;
      for (let i = 0; i < due.length && !stopped; ) {
        let j = i;
        while (j < due.length && due[j].auditTaskId === due[i].auditTaskId && due[j].checkName === due[i].checkName) j++;
        const group = due.slice(i, j);
        const findings = group.map((start): AuditFinding => ({ nonCompliantResource: { resourceType: 'DEVICE_CERTIFICATE', resourceIdentifier: { deviceCertificateId: start.certificateId, ...(start.certificateArn ? { deviceCertificateArn: start.certificateArn } : {}) } } }));
        const { outcomes, stoppedAt } = await this.startAll(findings, 0, group[0].auditTaskId, group[0].checkName as AuditCheck);
        const handled = group.slice(0, stoppedAt ?? group.length);
        for (const start of handled) await startedDeferred(this.deps, start);
        await this.tally(group[0].auditTaskId, outcomes.flat(), false);
        stopped = stoppedAt !== undefined;
        i = j;
      }
      this.pagesDone++;
      if (stopped) return true;
    }
  }

  /**
   * Waits until the shared budget admits one more rotation: the start pace, and no API-bound
   * step queued too far ahead (the rotations in flight go first). False when this invocation
   * ran out of time first: the rest continues in another one.
   */
  private async admit(wanted: number): Promise<boolean> {
    const { pacing, clock, invocation } = this.deps;
    if (!pacing) return true;
    const margin = this.deps.safetyMarginMs ?? DEFAULT_SAFETY_MARGIN_MS;
    for (;;) {
      const slot = this.slots.shift();
      if (slot !== undefined) {
        const waitMs = slot - clock.now().getTime();
        if (waitMs > 0) await clock.sleep(waitMs);
        this.report.admissionWaitMs = (this.report.admissionWaitMs ?? 0) + Math.max(0, waitMs);
        this.admitted++;
        return true;
      }
      // An invocation that has started nothing yet waits into its margin rather than hand on
      // nothing (a margin too large for the timeout must still progress).
      const available = (): number => invocation.remainingMs() - (this.admitted > 0 ? margin : Math.min(margin, 5_000));
      if (this.admitted > 0 && available() <= 0) return false;
      // One decision admits as many of the page's next findings as the pace allows within
      // the budget's queue horizon: a write of the shared item per batch, not per start.
      let batch: Awaited<ReturnType<typeof pacing.store.admitStarts>>;
      try {
        batch = await pacing.store.admitStarts(Math.max(1, wanted));
      } catch (error) {
        // Pacing must not stop an audit: unpaced, starts go at once as they did before it.
        this.deps.telemetry.log.error('pacing budget unavailable; starting unpaced', { error: error instanceof Error ? error.message : String(error) });
        this.admitted++;
        return true;
      }
      const { atMs, retryAtMs, nowMs } = batch;
      if (atMs.length) {
        this.slots.push(...atMs);
        continue;
      }
      const waitMs = Math.max(1, Math.ceil((retryAtMs ?? nowMs) - nowMs));
      if (available() <= 0) return false;
      const sleepMs = Math.max(1, Math.min(waitMs, available()));
      await clock.sleep(sleepMs);
      this.report.admissionWaitMs = (this.report.admissionWaitMs ?? 0) + sleepMs;
    }
  }

  private async startOne(finding: AuditFinding, taskId: string, checkName: AuditCheck): Promise<StartOutcome[]> {
    const { iot, telemetry } = this.deps;
    const certificateId = finding.nonCompliantResource?.resourceIdentifier?.deviceCertificateId;
    if (!certificateId) return [StartOutcome.NotADeviceCertificate];
    // An operator suppressed this finding in Device Defender: it is not Rotor's to act on.
    if (finding.isSuppressed) return [StartOutcome.Suppressed];
    // No DescribeCertificate here (API thrift, docs/design.md): the audit checks only ACTIVE and
    // PENDING_TRANSFER certificates, and Issue certificate describes the certificate anyway,
    // fresh, before it issues anything. The finding names its ARN.
    const certificateArn = finding.nonCompliantResource?.resourceIdentifier?.deviceCertificateArn ?? certificateArnFor(certificateId, this.deps.stateMachineArn);
    let listed: { things?: string[]; nextToken?: string };
    try {
      listed = await iot.send(new ListPrincipalThingsCommand({ principal: certificateArn, maxResults: MAX_THINGS_PER_CERTIFICATE }));
    } catch (error) {
      if (isNamed(error, RESOURCE_NOT_FOUND)) return [StartOutcome.CertificateNotFound];
      throw error;
    }
    const things = listed.things ?? [];
    if (things.length === 0) return [StartOutcome.NoThing];
    if (things.length > 1 || listed.nextToken) {
      // A shared certificate is refused by the workflow itself (SHARED_CERTIFICATE, docs/protocol.md
      // cloud rule 8): each thing gets its own execution, so each gets a FAILED record and an
      // escalation instead of one being rotated and the others cut off.
      telemetry.log.warn('certificate is attached to several things; each rotation will refuse it', { certificateId, things, more: listed.nextToken !== undefined });
    }
    // The complete list rides along: Request CSR refuses a shared certificate from it without listing again.
    const certificateThings = listed.nextToken === undefined ? { certificateThings: things } : {};
    return Promise.all(
      things.map((thingName) => this.startExecution({ thingName, certificateId, trigger: Trigger.Audit, auditTaskId: taskId, checkName, ...certificateThings })),
    );
  }

  private async startExecution(input: RotationInput & { auditTaskId: string }): Promise<StartOutcome> {
    try {
      const out = await this.deps.sfn.send(
        new StartExecutionCommand({
          stateMachineArn: this.deps.stateMachineArn,
          name: auditExecutionName(input.thingName, input.certificateId, input.auditTaskId),
          input: JSON.stringify(input),
        }),
      );
      // A standard workflow answers a repeated start with the same name and input with the
      // running execution instead of an error: one that began before this invocation is not ours.
      if (out.startDate && out.startDate.getTime() < this.began.getTime() - CLOCK_TOLERANCE_MS) return StartOutcome.AlreadyStarted;
      return StartOutcome.Started;
    } catch (error) {
      if (isNamed(error, 'ExecutionAlreadyExists')) return StartOutcome.AlreadyStarted;
      throw error;
    }
  }

  /** Adds one page's outcomes to the report and to the audit's report item (ADD: pages and invocations add up). */
  private async tally(taskId: string, outcomes: readonly StartOutcome[], pageDone = true): Promise<void> {
    const page: Partial<Record<StartOutcome, number>> = {};
    for (const outcome of outcomes) page[outcome] = (page[outcome] ?? 0) + 1;
    const names: Record<string, string> = {};
    // A page left half done (admission ran out of time) counts once, when it is finished.
    const values: Record<string, unknown> = { ...(pageDone ? { ':one': 1 } : {}), ':now': this.deps.clock.now().toISOString(), ':taskId': taskId };
    const adds = pageDone ? ['pages :one'] : [];
    Object.entries(page).forEach(([outcome, count], i) => {
      if (outcome === StartOutcome.Started) {
        this.report.started += count;
        adds.push(`started :n${i}`);
      } else {
        this.report.skipped[outcome as SkipReason] = (this.report.skipped[outcome as SkipReason] ?? 0) + count;
        names[`#o${i}`] = `skipped_${outcome}`;
        adds.push(`#o${i} :n${i}`);
      }
      values[`:n${i}`] = count;
    });
    await this.deps.db.send(
      new UpdateCommand({
        TableName: this.deps.tableName,
        Key: { pk: auditPk(taskId), sk: REPORT_SK },
        UpdateExpression: `SET taskId = :taskId, updatedAt = :now${adds.length ? ` ADD ${adds.join(', ')}` : ''}`,
        ...(Object.keys(names).length ? { ExpressionAttributeNames: names } : {}),
        ExpressionAttributeValues: values,
      }),
    );
  }
}

const EXPIRATION_INFO = 'EXPIRATION_TIME';

/** A finding that gets as far as describing its certificate: what admission is asked for. */
function startsARotation(finding: AuditFinding): boolean {
  return !!finding.nonCompliantResource?.resourceIdentifier?.deviceCertificateId && !finding.isSuppressed;
}

const encoder = new TextEncoder();

async function continueLater(deps: StartRotationsDeps, position: AuditPosition): Promise<void> {
  const payload: ContinuationEvent = { continuation: position };
  await deps.lambda.send(
    new InvokeCommand({ FunctionName: deps.invocation.functionArn, InvocationType: 'Event', Payload: encoder.encode(JSON.stringify(payload)) }),
  );
  deps.telemetry.log.info('continuing the audit in another invocation', { ...position });
}

/**
 * Starts one rotation per non-compliant device certificate of a Device Defender audit. The
 * findings of a large fleet do not fit in one invocation: pages are processed while time
 * allows, then the rest continues in an asynchronous invocation of this same function.
 * Starting twice is harmless (execution names are deterministic). Bad input is reported and
 * dropped, never thrown: SNS would retry it.
 */
export async function startRotations(event: unknown, deps: StartRotationsDeps): Promise<StartReport> {
  if (isObject(event) && event.sweep === 'calendar') return sweepCalendar(event as unknown as SweepEvent, deps);
  const caRollovers = await startCaRollovers(event, deps);
  const parsed = parseStartEvent(event, deps.auditChecks);
  if (!parsed.ok) {
    deps.telemetry.log.warn('nothing to start', { reason: parsed.reason, taskId: parsed.taskId });
    return { taskId: parsed.taskId ?? null, started: 0, skipped: {}, continued: false, ignored: parsed.reason, ...(caRollovers ? { caRollovers } : {}) };
  }
  const [first, ...rest] = parsed.positions;
  if (!first.cohort && first.devices && deps.calendar && deps.pacing) first.cohort = await planAuditCohort(deps, first.taskId, first.devices, deps.calendar);
  delete first.devices;
  const run = new AuditRun(deps, first.taskId);
  const stopped = await run.run(first);
  // SNS delivers one record per invocation; should there be more, each further audit gets its own invocation.
  for (const position of stopped ? [stopped, ...rest] : rest) await continueLater(deps, position);
  run.report.continued = stopped !== undefined;
  if (caRollovers) run.report.caRollovers = caRollovers;
  if (run.report.started) deps.telemetry.count(MetricName.RotationsStarted, run.report.started);
  deps.telemetry.log.info('audit processed', { ...run.report });
  return run.report;
}

/**
 * The cohort of an audit: its devices spread over the longer of the renewal window and what the
 * budget needs at the calendar's fill of the sustainable rate; fixed once on the audit's report item.
 */
async function planAuditCohort(deps: StartRotationsDeps, taskId: string, devices: number, calendar: RenewalSettings): Promise<Cohort> {
  const rate = new AdmissionController((deps.pacing as Pacing).store.settings, deps.clock.now().getTime()).sustainableRate();
  const { spreadS } = planCohort(devices, rate, { ...DEFAULT_CALENDAR, minWindowS: calendar.windowS });
  const cohort = await fixCohort(deps, taskId, { startMs: deps.clock.now().getTime(), spreadS, devices });
  deps.telemetry.log.info('audit cohort on the renewal calendar', { auditTaskId: taskId, devices, spreadS: cohort.spreadS, startMs: cohort.startMs });
  return cohort;
}

/**
 * The scheduled sweep: holds the calendar's lease (one sweep at a time; a crashed one's lease
 * runs out), starts what is due, and continues in another invocation while more is due.
 */
async function sweepCalendar(event: SweepEvent, deps: StartRotationsDeps): Promise<StartReport> {
  if (!deps.calendar) return { taskId: null, started: 0, skipped: {}, continued: false, ignored: 'the renewal calendar is off' };
  // Most sweeps find nothing deferred: one read, no lease taken.
  if (!event.lease && (await calendarDays(deps)).length === 0) return { taskId: null, started: 0, skipped: {}, continued: false, ignored: 'nothing is deferred' };
  const lease = event.lease ?? randomUUID();
  const untilMs = deps.clock.now().getTime() + deps.invocation.remainingMs() + 60_000;
  if (!(await leaseSweep(deps, lease, deps.clock.now().getTime(), untilMs))) {
    deps.telemetry.log.info('another sweep of the renewal calendar holds the lease', {});
    return { taskId: null, started: 0, skipped: {}, continued: false, ignored: 'another sweep is running' };
  }
  const run = new AuditRun(deps, null);
  let more: boolean;
  try {
    more = await run.sweep();
  } catch (error) {
    // What was not started stays deferred; the lease is given back for the retry or the next sweep.
    await leaseSweep(deps, lease, deps.clock.now().getTime(), 0).catch(() => undefined);
    throw error;
  }
  if (more) {
    const payload: SweepEvent = { sweep: 'calendar', lease };
    await deps.lambda.send(new InvokeCommand({ FunctionName: deps.invocation.functionArn, InvocationType: 'Event', Payload: encoder.encode(JSON.stringify(payload)) }));
  } else {
    await leaseSweep(deps, lease, deps.clock.now().getTime(), 0);
  }
  run.report.continued = more;
  if (run.report.started) deps.telemetry.count(MetricName.RotationsStarted, run.report.started);
  deps.telemetry.log.info('renewal calendar swept', { ...run.report });
  return run.report;
}

const obs = observability('start-rotations');
const runtime = once(() => {
  const base = baseDeps(obs);
  const paced = pacedRuntime(base);
  return {
    ...base,
    iot: paced.observe(tracedIot(obs), 'iot'),
    sfn: paced.observe(tracedSfn(obs), 'states'),
    lambda: tracedLambda(obs),
    stateMachineArn: requiredEnv('STATE_MACHINE_ARN'),
    auditChecks: parseAuditChecks(optionalEnv('AUDIT_CHECKS')),
    pacing: paced.pacing,
    calendar: calendarSettings(),
    caRolloverStateMachineArn: optionalEnv('CA_ROLLOVER_STATE_MACHINE_ARN'),
    nextPrivateCaArn: optionalEnv('NEXT_PRIVATE_CA_ARN'),
  };
});

function auditLogKeys(event: unknown): Record<string, string | undefined> {
  const continuation = isObject(event) && isObject(event.continuation) ? event.continuation : undefined;
  return { auditTaskId: typeof continuation?.taskId === 'string' ? continuation.taskId : undefined };
}

export const handler = rotorHandler({ observability: obs, step: 'Start rotations', logKeys: auditLogKeys }, (event: unknown, context: Context) =>
  startRotations(event, {
    ...runtime(),
    invocation: { functionArn: context.invokedFunctionArn, remainingMs: () => context.getRemainingTimeInMillis() },
  }),
);
