import type { IoTClient } from '@aws-sdk/client-iot';
import { GetCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  AdmissionController,
  bottleneck,
  DAY_S,
  DEFAULT_CALENDAR,
  DEFAULT_PACING,
  dailyLoad,
  planCohort,
  quotaFloorSeconds,
  type Bucket,
  type CalendarSettings,
  type PacingSettings,
} from '../../domain/pacing/index.js';
import { AUDIT_CHECKS, RotationStatus, type AuditCheck } from '../../domain/rotation.js';
import { listByStatus } from '../operator/status.js';
import { readDeferredStarts, type DeferredDay } from './deferred.js';
import { latestCompletedAudit, readFindings } from './findings.js';

/**
 * `rotor plan`: what the next audit's rotations would be, without starting any. It reads the
 * latest completed audit's findings (ListAuditTasks, DescribeAuditTask, ListAuditFindings: a
 * page per 250 certificates) and Rotor's own records (the by-status index) — never a
 * DescribeCertificate per certificate, which at a million certificates would spend 28 hours of
 * the 10-TPS quota the rotations need. The figures come from the product's pacing code: the
 * sustainable rate and floor from AdmissionController, the schedule from the calendar. The
 * starts the renewal calendar already holds (deferred by earlier audits) are shown by day from
 * the calendar's own records, and their certificates are not planned again.
 */
export interface PlanDeps {
  iot: IoTClient;
  ddb: DynamoDBDocumentClient;
  tableName: string;
  now: () => Date;
  pacing?: PacingSettings;
  calendar?: CalendarSettings;
  checks?: readonly AuditCheck[];
  /** Where the quotas came from, for the report. */
  quotasSource?: string;
}

export interface PlanOptions {
  /** This audit task instead of the latest completed one. */
  auditTaskId?: string;
  /** How far back to look for the latest completed audit. */
  lookbackDays: number;
}

export interface PlanDay {
  date: string;
  rotations: number;
  cumulative: number;
}

export interface PlanReport {
  generatedAt: string;
  audit: { taskId: string; startedAt?: string; findingsByCheck: Partial<Record<AuditCheck, number>> };
  /** Distinct certificates the audit flagged. */
  flagged: number;
  /** Flagged certificates that a rotation in flight already replaces (skipped at start). */
  inFlight: number;
  /** Flagged certificates (not in flight) whose start the renewal calendar already holds. */
  alreadyDeferred: number;
  /** Every start the renewal calendar holds (any audit's), by day, with the next one due. */
  deferredStarts: { total: number; nextAt?: string; byDay: DeferredDay[] };
  /** What the next run would rotate. */
  devices: number;
  /** The scarcest budget and the rotations per second it sustains. */
  bottleneck: { bucket: Bucket; rotationsPerSecond: number };
  quotaFloorS: number;
  spreadS: number;
  dailyBudget: number;
  /** The earliest notAfter among the findings that carry one, and how many would be late for it. */
  earliestExpiry?: string;
  lateForDeadline: number;
  schedule: PlanDay[];
  expectedCompletion: string;
  sources: { findings: string; inFlight: string; deferred: string; quotas: string; calls: Record<string, number> };
}

export async function plan(deps: PlanDeps, options: PlanOptions): Promise<PlanReport> {
  const pacing = deps.pacing ?? DEFAULT_PACING;
  const calendar = deps.calendar ?? DEFAULT_CALENDAR;
  const checks = deps.checks ?? AUDIT_CHECKS;
  const now = deps.now();
  const calls: Record<string, number> = {};

  const audit = await latestCompletedAudit(deps, options, calls);
  const { certificates: flagged, findingsByCheck } = await readFindings(deps, audit, checks, calls);
  const certificates = new Set(flagged.keys());
  let earliestExpiry: Date | undefined;
  for (const { notAfter } of flagged.values()) if (notAfter && (!earliestExpiry || notAfter < earliestExpiry)) earliestExpiry = notAfter;

  // Rotations in flight already replace some of these certificates: the start would skip them.
  const ddb = { send: (command: Parameters<DynamoDBDocumentClient['send']>[0]) => {
    const operation = command instanceof GetCommand ? 'dynamodb:GetItem' : command instanceof QueryCommand ? 'dynamodb:Query' : 'dynamodb:other';
    calls[operation] = (calls[operation] ?? 0) + 1;
    return deps.ddb.send(command);
  } } as DynamoDBDocumentClient;
  const inFlightRecords = await listByStatus({ ddb, tableName: deps.tableName, local: false }, RotationStatus.InProgress);
  const replacing = new Set(inFlightRecords.map((record) => record.oldCertificateId));
  // Certificates the renewal calendar already holds a start for start on their day: not planned twice.
  const deferred = await readDeferredStarts({ ddb, tableName: deps.tableName });
  const notInFlight = [...certificates].filter((id) => !replacing.has(id));
  const due = notInFlight.filter((id) => !deferred.certificates.has(id));

  const admission = new AdmissionController(pacing, now.getTime());
  const rate = admission.sustainableRate();
  const limit = bottleneck(pacing.quotas);
  const deadlineS = earliestExpiry ? (earliestExpiry.getTime() - now.getTime()) / 1000 : undefined;
  const cohort = planCohort(due.length, rate, calendar, deadlineS);
  const load = due.length ? dailyLoad(due, cohort) : [];
  let cumulative = 0;
  const schedule = load.map((rotations, day) => {
    cumulative += rotations;
    return { date: new Date(now.getTime() + day * DAY_S * 1000).toISOString().slice(0, 10), rotations, cumulative };
  });

  return {
    generatedAt: now.toISOString(),
    audit: { taskId: audit.taskId, startedAt: audit.startedAt?.toISOString(), findingsByCheck },
    flagged: certificates.size,
    inFlight: certificates.size - notInFlight.length,
    alreadyDeferred: notInFlight.length - due.length,
    deferredStarts: { total: deferred.total, ...(deferred.nextAt ? { nextAt: deferred.nextAt } : {}), byDay: deferred.byDay },
    devices: due.length,
    bottleneck: { bucket: limit.bucket, rotationsPerSecond: limit.rate },
    quotaFloorS: quotaFloorSeconds(due.length, pacing.quotas),
    spreadS: cohort.spreadS,
    dailyBudget: cohort.dailyBudget,
    ...(earliestExpiry ? { earliestExpiry: earliestExpiry.toISOString() } : {}),
    lateForDeadline: cohort.lateForDeadline,
    schedule,
    // Late certificates (a deadline the budget cannot meet) still take the budget's time.
    expectedCompletion: new Date(now.getTime() + Math.max(cohort.spreadS, due.length ? due.length / rate : 0) * 1000).toISOString(),
    sources: {
      findings: `ListAuditFindings of audit ${audit.taskId} (${checks.join(', ')})`,
      inFlight: `rotation table ${deps.tableName}, IN_PROGRESS records on the by-status index`,
      deferred: `rotation table ${deps.tableName}, the calendar item (pk=calendar, sk=days) and a Query per day it lists (sort keys only)`,
      quotas: deps.quotasSource ?? `AWS defaults × safety fraction ${pacing.quotas.safetyFraction}`,
      calls,
    },
  };
}

function hours(seconds: number): string {
  return seconds < 7_200 ? `${(seconds / 60).toFixed(1)} min` : `${(seconds / 3_600).toFixed(1)} h`;
}

export function formatPlan(report: PlanReport): string[] {
  const lines = [
    `Next audit (from audit ${report.audit.taskId}${report.audit.startedAt ? `, ${report.audit.startedAt}` : ''}):`,
    `  flagged certificates   ${report.flagged}  (${Object.entries(report.audit.findingsByCheck).map(([check, n]) => `${check} ${n}`).join(', ')})`,
    `  already in flight      ${report.inFlight}`,
    `  already deferred       ${report.alreadyDeferred}  (on the renewal calendar; they start on their day)`,
    `  would rotate           ${report.devices}`,
    `  bottleneck             ${report.bottleneck.bucket}: ${report.bottleneck.rotationsPerSecond.toFixed(2)} rotations/s within the budget`,
    `  quota floor            ${hours(report.quotaFloorS)}`,
    `  spread over            ${hours(report.spreadS)} (at most ${report.dailyBudget} rotations a day)`,
  ];
  if (report.earliestExpiry) lines.push(`  earliest expiry        ${report.earliestExpiry}${report.lateForDeadline ? `: ${report.lateForDeadline} certificates cannot be rotated before it at this budget` : ''}`);
  lines.push(`  expected completion    ${report.expectedCompletion}`, '', '  DATE        ROTATIONS  CUMULATIVE');
  for (const day of report.schedule) lines.push(`  ${day.date}  ${String(day.rotations).padStart(9)}  ${String(day.cumulative).padStart(10)}`);
  const { deferredStarts } = report;
  lines.push('', `Deferred starts (renewal calendar): ${deferredStarts.total}${deferredStarts.nextAt ? `, next due ${deferredStarts.nextAt}` : ''}`);
  if (deferredStarts.byDay.length) lines.push('  DATE        STARTS');
  for (const day of deferredStarts.byDay) lines.push(`  ${day.date}  ${String(day.starts).padStart(6)}`);
  lines.push(
    '',
    'Sources:',
    `  findings               ${report.sources.findings}`,
    `  in flight              ${report.sources.inFlight}`,
    `  deferred               ${report.sources.deferred}`,
    `  quotas                 ${report.sources.quotas}`,
    `  calls made             ${Object.entries(report.sources.calls).map(([op, n]) => `${op} ${n}`).join(', ')} (no DescribeCertificate)`,
  );
  return lines;
}
