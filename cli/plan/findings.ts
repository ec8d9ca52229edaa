import { DescribeAuditTaskCommand, ListAuditFindingsCommand, ListAuditTasksCommand, type IoTClient } from '@aws-sdk/client-iot';
import { DAY_S } from '../../domain/pacing/index.js';
import type { AuditCheck } from '../../domain/rotation.js';
import { NotFoundError } from '../operator/exit-codes.js';

/**
 * The latest Device Defender audit's findings for Rotor's checks: what `rotor plan` and
 * `rotor expiring` read instead of one DescribeCertificate per certificate (a 10-TPS API the
 * rotations need). A page of ListAuditFindings carries 250 certificates, with the expiry
 * (EXPIRATION_TIME) or the age (CERTIFICATE_AGE_IN_DAYS) the check found.
 */
export interface FindingsDeps {
  iot: IoTClient;
  now: () => Date;
}

export interface AuditChoice {
  /** This audit task instead of the latest completed one. */
  auditTaskId?: string;
  /** How far back to look for the latest completed audit. */
  lookbackDays: number;
}

export interface CompletedAudit {
  taskId: string;
  startedAt?: Date;
}

/** One flagged device certificate, merged over the checks that flagged it. */
export interface FlaggedCertificate {
  certificateId: string;
  certificateArn?: string;
  checks: AuditCheck[];
  /** From the expiring check's EXPIRATION_TIME. */
  notAfter?: Date;
  /** From the age check's CERTIFICATE_AGE_IN_DAYS. */
  ageDays?: number;
}

export interface AuditFindings {
  audit: CompletedAudit;
  certificates: Map<string, FlaggedCertificate>;
  findingsByCheck: Partial<Record<AuditCheck, number>>;
}

/** Calls made, per `service:Operation`: the commands print them as where their figures come from. */
export type CallCount = Record<string, number>;

const PAGE = 250;
const EXPIRATION_INFO = 'EXPIRATION_TIME';
const AGE_INFO = 'CERTIFICATE_AGE_IN_DAYS';

function counter(calls: CallCount): (operation: string) => void {
  return (operation) => {
    calls[operation] = (calls[operation] ?? 0) + 1;
  };
}

/** The audit task asked for, or the latest COMPLETED one within the lookback; NotFoundError (exit 3) when none. */
export async function latestCompletedAudit(deps: FindingsDeps, choice: AuditChoice, calls: CallCount): Promise<CompletedAudit> {
  const count = counter(calls);
  if (choice.auditTaskId) {
    count('iot:DescribeAuditTask');
    const task = await deps.iot.send(new DescribeAuditTaskCommand({ taskId: choice.auditTaskId }));
    if (task.taskStatus !== 'COMPLETED') throw new NotFoundError(`audit task ${choice.auditTaskId} is ${task.taskStatus ?? 'unknown'}, not COMPLETED`);
    return { taskId: choice.auditTaskId, startedAt: task.taskStartTime };
  }
  const endTime = deps.now();
  const startTime = new Date(endTime.getTime() - choice.lookbackDays * DAY_S * 1000);
  const taskIds: string[] = [];
  let nextToken: string | undefined;
  do {
    count('iot:ListAuditTasks');
    const page = await deps.iot.send(new ListAuditTasksCommand({ startTime, endTime, taskStatus: 'COMPLETED', maxResults: PAGE, nextToken }));
    for (const task of page.tasks ?? []) if (task.taskId && (task.taskStatus ?? 'COMPLETED') === 'COMPLETED') taskIds.push(task.taskId);
    nextToken = page.nextToken;
  } while (nextToken);
  if (taskIds.length === 0) throw new NotFoundError(`no completed Device Defender audit in the last ${choice.lookbackDays} days: run one, or pass --audit-task ID`);
  // ListAuditTasks carries no start time: one DescribeAuditTask per task (a few per month) finds the latest.
  let latest: CompletedAudit | undefined;
  for (const taskId of taskIds) {
    count('iot:DescribeAuditTask');
    const task = await deps.iot.send(new DescribeAuditTaskCommand({ taskId }));
    const startedAt = task.taskStartTime;
    if (!latest || (startedAt && (!latest.startedAt || startedAt > latest.startedAt))) latest = { taskId, startedAt };
  }
  return latest as CompletedAudit;
}

/** Every device-certificate finding of the checks, across pages, merged per certificate. */
export async function readFindings(deps: FindingsDeps, audit: CompletedAudit, checks: readonly AuditCheck[], calls: CallCount): Promise<AuditFindings> {
  const count = counter(calls);
  const certificates = new Map<string, FlaggedCertificate>();
  const findingsByCheck: Partial<Record<AuditCheck, number>> = {};
  for (const checkName of checks) {
    let nextToken: string | undefined;
    let findings = 0;
    do {
      count('iot:ListAuditFindings');
      const page = await deps.iot.send(new ListAuditFindingsCommand({ taskId: audit.taskId, checkName, maxResults: PAGE, nextToken }));
      for (const finding of page.findings ?? []) {
        const resource = finding.nonCompliantResource;
        const certificateId = resource?.resourceIdentifier?.deviceCertificateId;
        if (!certificateId) continue;
        findings++;
        const flagged = certificates.get(certificateId) ?? { certificateId, checks: [] };
        flagged.certificateArn ??= resource?.resourceIdentifier?.deviceCertificateArn;
        if (!flagged.checks.includes(checkName)) flagged.checks.push(checkName);
        const expires = resource?.additionalInfo?.[EXPIRATION_INFO];
        const at = expires ? new Date(expires) : undefined;
        if (at && !Number.isNaN(at.getTime())) flagged.notAfter = at;
        const age = Number(resource?.additionalInfo?.[AGE_INFO]);
        if (resource?.additionalInfo?.[AGE_INFO] !== undefined && Number.isFinite(age)) flagged.ageDays = age;
        certificates.set(certificateId, flagged);
      }
      nextToken = page.nextToken;
    } while (nextToken);
    findingsByCheck[checkName] = findings;
  }
  return { audit, certificates, findingsByCheck };
}
