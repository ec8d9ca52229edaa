import type { IoTClient } from '@aws-sdk/client-iot';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
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
import { latestCompletedAudit, readFindings } from './findings.js';

/**
 * `rotor plan`: what the next audit's rotations would be, without starting any. It reads the
 * latest completed audit's findings (ListAuditTasks, DescribeAuditTask, ListAuditFindings: a
 * page per 250 certificates) and Rotor's own records (the by-status index) — never a
 * DescribeCertificate per certificate, which at a million certificates would spend 28 hours of
 * the 10-TPS quota the rotations need. The figures come from the product's pacing code: the
 * sustainable rate and floor from AdmissionController, the schedule from the calendar.
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
  sources: { findings: string; inFlight: string; quotas: string; calls: Record<string, number> };
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
    calls['dynamodb:Query'] = (calls['dynamodb:Query'] ?? 0) + 1;
    return deps.ddb.send(command);
  } } as DynamoDBDocumentClient;
  const inFlightRecords = await listByStatus({ ddb, tableName: deps.tableName, local: false }, RotationStatus.InProgress);
  const replacing = new Set(inFlightRecords.map((record) => record.oldCertificateId));
  const due = [...certificates].filter((id) => !replacing.has(id));

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
    inFlight: certificates.size - due.length,
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
    `  would rotate           ${report.devices}`,
    `  bottleneck             ${report.bottleneck.bucket}: ${report.bottleneck.rotationsPerSecond.toFixed(2)} rotations/s within the budget`,
    `  quota floor            ${hours(report.quotaFloorS)}`,
    `  spread over            ${hours(report.spreadS)} (at most ${report.dailyBudget} rotations a day)`,
  ];
  if (report.earliestExpiry) lines.push(`  earliest expiry        ${report.earliestExpiry}${report.lateForDeadline ? `: ${report.lateForDeadline} certificates cannot be rotated before it at this budget` : ''}`);
  lines.push(`  expected completion    ${report.expectedCompletion}`, '', '  DATE        ROTATIONS  CUMULATIVE');
  for (const day of report.schedule) lines.push(`  ${day.date}  ${String(day.rotations).padStart(9)}  ${String(day.cumulative).padStart(10)}`);
  lines.push(
    '',
    'Sources:',
    `  findings               ${report.sources.findings}`,
    `  in flight              ${report.sources.inFlight}`,
    `  quotas                 ${report.sources.quotas}`,
    `  calls made             ${Object.entries(report.sources.calls).map(([op, n]) => `${op} ${n}`).join(', ')} (no DescribeCertificate)`,
  );
  return lines;
}
