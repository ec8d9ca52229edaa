import {
  DescribeCertificateCommand,
  ListCertificatesCommand,
  ListPrincipalThingsCommand,
  type Certificate,
  type IoTClient,
} from '@aws-sdk/client-iot';
import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { RotationRecord } from '../../domain/records.js';
import { AUDIT_CHECKS, AuditCheck, RotationStatus } from '../../domain/rotation.js';
import { loadWiring } from '../../wiring/index.js';
import { latestCompletedAudit, readFindings, type CallCount, type FlaggedCertificate } from '../plan/findings.js';
import { mapBounded, withBackoff, type BackoffOptions } from './bounded.js';
import { getCurrentRecord, listByStatus } from './status.js';
import { renderTable, shortTime, type Column } from './text-table.js';

/**
 * `rotor expiring`: the certificates due for rotation within N days, with their thing and
 * whether a rotation is already in flight for them.
 *
 * By default it reads what already exists: the latest completed Device Defender audit's
 * findings (the expiring check's EXPIRATION_TIME, the age check's flag) and Rotor's own records
 * (the by-status index: rotations in flight and failed, and those that succeeded since the
 * audit, whose flagged certificate is gone). It never spends DescribeCertificate, a 10-TPS API
 * the rotations need: one per certificate is 28 hours of it for a million certificates.
 *
 * `--describe` is the exact, expensive way, for an account without audits or a fleet small
 * enough: ListCertificates, one DescribeCertificate per ACTIVE certificate and a
 * ListPrincipalThings per due one, a few in flight with backoff.
 */
export const ExpiringSource = {
  AuditFindings: 'audit-findings',
  Describe: 'describe',
} as const;
export type ExpiringSource = (typeof ExpiringSource)[keyof typeof ExpiringSource];

/** Printed on stderr by `--describe`: what it costs. */
export const DESCRIBE_WARNING =
  'rotor: --describe spends one DescribeCertificate per ACTIVE certificate, a 10-TPS API the rotations also need (1,000,000 certificates: about 28 hours of it); without it, rotor expiring reads the latest audit\'s findings';

export interface ExpiringOptions {
  days: number;
  /** --describe: DescribeCertificate calls in flight. */
  concurrency: number;
  source?: ExpiringSource;
  /** From the findings of this audit task instead of the latest completed one. */
  auditTaskId?: string;
  /** How far back to look for the latest completed audit (default 30 days). */
  lookbackDays?: number;
}

export interface ExpiringDeps {
  iot: IoTClient;
  ddb: DynamoDBDocumentClient;
  tableName: string;
  now: () => Date;
  backoff?: Partial<BackoffOptions>;
  onProgress?: (done: number, total: number) => void;
}

export interface RotationState {
  status: RotationStatus;
  step: string;
  rotationId: string;
  /** True when the thing's rotation in flight replaces this very certificate. */
  inFlight: boolean;
}

/**
 * Where a certificate's notAfter was read: the audit's finding (EXPIRATION_TIME), the rotation
 * record Rotor wrote when it issued the certificate (newCertificateNotAfter, read off the
 * certificate itself), or DescribeCertificate (--describe).
 */
export const NotAfterSource = {
  AuditFinding: 'audit-finding',
  RotorRecord: 'rotor-record',
  DescribeCertificate: 'describe-certificate',
} as const;
export type NotAfterSource = (typeof NotAfterSource)[keyof typeof NotAfterSource];

export interface ExpiringCertificate {
  certificateId: string;
  certificateArn?: string;
  /** Absent for a certificate only the age check flagged (its finding carries no expiry) and that Rotor did not issue. */
  notAfter?: string;
  /** Where notAfter comes from; absent with notAfter. */
  notAfterFrom?: NotAfterSource;
  daysLeft?: number;
  expired: boolean;
  /** The audit checks that flagged it (none with --describe). */
  checks: AuditCheck[];
  ageDays?: number;
  things: string[];
  /** False when nothing read says which thing holds it (a certificate Rotor has no record of, from findings). */
  thingsKnown: boolean;
  /** Keyed by thing name; absent when the thing has no record yet. */
  rotations: Record<string, RotationState>;
}

export interface ExpiringReport {
  days: number;
  checkedAt: string;
  source: ExpiringSource;
  /** The audit the findings come from. */
  audit?: { taskId: string; startedAt?: string };
  /** Certificates examined: those the audit flagged, or the ACTIVE ones described. */
  scanned: number;
  /** Flagged certificates that a rotation succeeding since the audit already replaced (not listed). */
  rotatedSinceAudit?: number;
  /** Listed certificates the audit did not flag: Rotor issued them, and its records say they expire within the horizon. */
  issuedByRotor?: number;
  certificates: ExpiringCertificate[];
  /** Where the figures come from, and the calls made to get them. */
  sources: { certificates: string; things: string; dates?: string; calls: CallCount };
}

const DAY_MS = 86_400_000;
const DEFAULT_LOOKBACK_DAYS = 30;

export async function expiring(deps: ExpiringDeps, options: ExpiringOptions): Promise<ExpiringReport> {
  return options.source === ExpiringSource.Describe ? expiringByDescribe(deps, options) : expiringFromFindings(deps, options);
}

// ---- from the audit's findings and Rotor's records ----------------------------------------

/** Current records by the certificate they name: the one being replaced, and the one issued. */
interface RecordIndex {
  byOld: Map<string, RotationRecord>;
  byNew: Map<string, RotationRecord>;
}

/** The document client, with each Query counted in `calls`. */
function countingDdb(deps: ExpiringDeps, calls: CallCount): DynamoDBDocumentClient {
  return {
    send: (command: Parameters<DynamoDBDocumentClient['send']>[0]) => {
      calls['dynamodb:Query'] = (calls['dynamodb:Query'] ?? 0) + 1;
      return deps.ddb.send(command);
    },
  } as DynamoDBDocumentClient;
}

async function readRecords(deps: ExpiringDeps, since: Date | undefined, calls: CallCount): Promise<RecordIndex> {
  const ddb = countingDdb(deps, calls);
  const statusDeps = { ddb, tableName: deps.tableName, local: false };
  const [inProgress, failed, succeeded] = await Promise.all([
    listByStatus(statusDeps, RotationStatus.InProgress),
    listByStatus(statusDeps, RotationStatus.Failed),
    succeededSince(ddb, deps.tableName, since),
  ]);
  const index: RecordIndex = { byOld: new Map(), byNew: new Map() };
  // Later statuses win: a SUCCEEDED record says the flagged certificate is gone.
  for (const record of [...failed, ...inProgress, ...succeeded]) {
    index.byOld.set(record.oldCertificateId, record);
    if (record.status === RotationStatus.Succeeded && record.newCertificateId) index.byNew.set(record.newCertificateId, record);
  }
  return index;
}

/** SUCCEEDED records updated since the audit began (the by-status index's sort key): the only ones that can have replaced a flagged certificate. */
async function succeededSince(ddb: DynamoDBDocumentClient, tableName: string, since: Date | undefined): Promise<RotationRecord[]> {
  const records: RotationRecord[] = [];
  let exclusiveStartKey: Record<string, unknown> | undefined;
  do {
    const page = await ddb.send(
      new QueryCommand({
        TableName: tableName,
        IndexName: loadWiring().table.statusIndex.name,
        KeyConditionExpression: since ? '#status = :status AND updatedAt >= :since' : '#status = :status',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':status': RotationStatus.Succeeded, ...(since ? { ':since': since.toISOString() } : {}) },
        ExclusiveStartKey: exclusiveStartKey,
      }),
    );
    records.push(...((page.Items ?? []) as RotationRecord[]));
    exclusiveStartKey = page.LastEvaluatedKey;
  } while (exclusiveStartKey);
  return records;
}

function rotationState(record: RotationRecord, certificateId: string): RotationState {
  return {
    status: record.status,
    step: record.step,
    rotationId: record.rotationId,
    inFlight: record.status === RotationStatus.InProgress && record.oldCertificateId === certificateId,
  };
}

function timing(notAfter: Date | undefined, now: Date, from: NotAfterSource): Pick<ExpiringCertificate, 'notAfter' | 'notAfterFrom' | 'daysLeft' | 'expired'> {
  if (!notAfter) return { expired: false };
  const msLeft = notAfter.getTime() - now.getTime();
  return { notAfter: notAfter.toISOString(), notAfterFrom: from, daysLeft: Math.floor(msLeft / DAY_MS), expired: msLeft <= 0 };
}

/**
 * The certificates Rotor issued that are the things' current ones (their rotation SUCCEEDED)
 * and expire within the horizon, by the date recorded when they were issued. The audit flags a
 * certificate only within its own threshold (30 days by default); with the private-ca signer
 * these dates are what the next cycles' rotations follow. A FAILED or IN_PROGRESS record's
 * newCertificateNotAfter is not the thing's current certificate, so only SUCCEEDED ones count.
 */
async function issuedWithin(ddb: DynamoDBDocumentClient, tableName: string, horizon: number): Promise<RotationRecord[]> {
  const records: RotationRecord[] = [];
  let exclusiveStartKey: Record<string, unknown> | undefined;
  const until = new Date(horizon).toISOString();
  do {
    const page = await ddb.send(
      new QueryCommand({
        TableName: tableName,
        IndexName: loadWiring().table.statusIndex.name,
        KeyConditionExpression: '#status = :status',
        FilterExpression: 'newCertificateNotAfter <= :until',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':status': RotationStatus.Succeeded, ':until': until },
        ExclusiveStartKey: exclusiveStartKey,
      }),
    );
    records.push(...((page.Items ?? []) as RotationRecord[]));
    exclusiveStartKey = page.LastEvaluatedKey;
  } while (exclusiveStartKey);
  // ISO 8601 in UTC sorts as time: the filter's comparison is the date's.
  return records.filter((r) => r.newCertificateId && r.newCertificateNotAfter && r.newCertificateNotAfter <= until);
}

async function expiringFromFindings(deps: ExpiringDeps, options: ExpiringOptions): Promise<ExpiringReport> {
  const now = deps.now();
  const horizon = now.getTime() + options.days * DAY_MS;
  const calls: CallCount = {};
  const audit = await latestCompletedAudit(deps, { auditTaskId: options.auditTaskId, lookbackDays: options.lookbackDays ?? DEFAULT_LOOKBACK_DAYS }, calls);
  const { certificates: flagged } = await readFindings(deps, audit, AUDIT_CHECKS, calls);
  const records = await readRecords(deps, audit.startedAt, calls);
  const issued = await issuedWithin(countingDdb(deps, calls), deps.tableName, horizon);
  const issuedById = new Map(issued.map((r) => [r.newCertificateId as string, r]));

  let rotatedSinceAudit = 0;
  const due: ExpiringCertificate[] = [];
  for (const certificate of flagged.values()) {
    const replacedBy = records.byOld.get(certificate.certificateId);
    if (replacedBy?.status === RotationStatus.Succeeded) {
      rotatedSinceAudit++;
      continue;
    }
    if (!isDue(certificate, horizon)) continue;
    const issuedRecord = issuedById.get(certificate.certificateId);
    const record = replacedBy ?? records.byNew.get(certificate.certificateId) ?? issuedRecord;
    // Flagged by age alone, the finding has no date; Rotor's record has one if Rotor issued it.
    const recorded = !certificate.notAfter && issuedRecord?.newCertificateNotAfter ? new Date(issuedRecord.newCertificateNotAfter) : undefined;
    due.push({
      certificateId: certificate.certificateId,
      ...(certificate.certificateArn ? { certificateArn: certificate.certificateArn } : {}),
      ...(recorded ? timing(recorded, now, NotAfterSource.RotorRecord) : timing(certificate.notAfter, now, NotAfterSource.AuditFinding)),
      checks: certificate.checks,
      ...(certificate.ageDays !== undefined ? { ageDays: certificate.ageDays } : {}),
      things: record ? [record.thingName] : [],
      thingsKnown: !!record,
      rotations: record ? { [record.thingName]: rotationState(record, certificate.certificateId) } : {},
    });
  }
  // What Rotor issued and the audit did not flag (yet): due by the date Rotor recorded.
  const listed = new Set(due.map((c) => c.certificateId));
  let issuedByRotor = 0;
  for (const record of issued) {
    const certificateId = record.newCertificateId as string;
    if (listed.has(certificateId)) continue;
    listed.add(certificateId);
    issuedByRotor++;
    due.push({
      certificateId,
      ...timing(new Date(record.newCertificateNotAfter as string), now, NotAfterSource.RotorRecord),
      checks: [],
      things: [record.thingName],
      thingsKnown: true,
      rotations: { [record.thingName]: rotationState(record, certificateId) },
    });
  }
  return {
    days: options.days,
    checkedAt: now.toISOString(),
    source: ExpiringSource.AuditFindings,
    audit: { taskId: audit.taskId, startedAt: audit.startedAt?.toISOString() },
    scanned: flagged.size,
    rotatedSinceAudit,
    issuedByRotor,
    certificates: due.sort(soonestFirst),
    sources: {
      certificates:
        `ListAuditFindings of audit ${audit.taskId}${audit.startedAt ? ` (${audit.startedAt.toISOString()})` : ''}: ${AUDIT_CHECKS.join(', ')}; ` +
        `and the certificates Rotor issued (SUCCEEDED records) whose recorded notAfter is within ${options.days} day(s)`,
      things: `rotation table ${deps.tableName}, by-status index: IN_PROGRESS and FAILED records, SUCCEEDED since the audit`,
      dates: 'DATE FROM: "audit" = the finding\'s EXPIRATION_TIME; "rotor" = newCertificateNotAfter, recorded off the certificate when Rotor issued it',
      calls,
    },
  };
}

/** Expires within the horizon (the expiring check's date), or flagged by the age check (due whatever its expiry). */
function isDue(certificate: FlaggedCertificate, horizon: number): boolean {
  if (certificate.checks.includes(AuditCheck.Age)) return true;
  return certificate.notAfter !== undefined && certificate.notAfter.getTime() <= horizon;
}

function soonestFirst(a: ExpiringCertificate, b: ExpiringCertificate): number {
  if (a.notAfter !== b.notAfter) return a.notAfter === undefined ? 1 : b.notAfter === undefined ? -1 : a.notAfter.localeCompare(b.notAfter);
  return a.certificateId.localeCompare(b.certificateId);
}

// ---- --describe: every ACTIVE certificate, described -------------------------------------

async function listActiveCertificates(deps: ExpiringDeps, count: (op: string) => void): Promise<Certificate[]> {
  const active: Certificate[] = [];
  let marker: string | undefined;
  do {
    count('iot:ListCertificates');
    const page = await withBackoff(() => deps.iot.send(new ListCertificatesCommand({ pageSize: 250, marker })), deps.backoff);
    active.push(...(page.certificates ?? []).filter((c) => c.status === 'ACTIVE' && c.certificateId && c.certificateArn));
    marker = page.nextMarker;
  } while (marker);
  return active;
}

async function thingsOf(deps: ExpiringDeps, principal: string, count: (op: string) => void): Promise<string[]> {
  const things: string[] = [];
  let nextToken: string | undefined;
  do {
    count('iot:ListPrincipalThings');
    const page = await withBackoff(() => deps.iot.send(new ListPrincipalThingsCommand({ principal, nextToken })), deps.backoff);
    things.push(...(page.things ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  return things;
}

async function expiringByDescribe(deps: ExpiringDeps, options: ExpiringOptions): Promise<ExpiringReport> {
  const now = deps.now();
  const horizon = now.getTime() + options.days * DAY_MS;
  const calls: CallCount = {};
  const count = (op: string): void => {
    calls[op] = (calls[op] ?? 0) + 1;
  };
  const active = await listActiveCertificates(deps, count);
  let done = 0;
  const validity = await mapBounded(
    active,
    options.concurrency,
    async (certificate) => {
      count('iot:DescribeCertificate');
      const described = await withBackoff(
        () => deps.iot.send(new DescribeCertificateCommand({ certificateId: certificate.certificateId })),
        deps.backoff,
      );
      return described.certificateDescription?.validity?.notAfter;
    },
    () => deps.onProgress?.(++done, active.length),
  );
  const due = active
    .map((certificate, i) => ({ certificate, notAfter: validity[i] }))
    .filter((c): c is { certificate: Certificate; notAfter: Date } => c.notAfter !== undefined && c.notAfter.getTime() <= horizon)
    .sort((a, b) => a.notAfter.getTime() - b.notAfter.getTime());

  const certificates = await mapBounded(due, options.concurrency, async ({ certificate, notAfter }): Promise<ExpiringCertificate> => {
    const certificateId = certificate.certificateId as string;
    const things = await thingsOf(deps, certificate.certificateArn as string, count);
    const rotations: Record<string, RotationState> = {};
    for (const thing of things) {
      count('dynamodb:GetItem');
      const record = await getCurrentRecord(deps, thing);
      if (record) rotations[thing] = rotationState(record, certificateId);
    }
    return { certificateId, certificateArn: certificate.certificateArn as string, ...timing(notAfter, now, NotAfterSource.DescribeCertificate), checks: [], things, thingsKnown: true, rotations };
  });
  return {
    days: options.days,
    checkedAt: now.toISOString(),
    source: ExpiringSource.Describe,
    scanned: active.length,
    certificates,
    sources: {
      certificates: 'ListCertificates, one DescribeCertificate per ACTIVE certificate (--describe)',
      things: `ListPrincipalThings per due certificate, the things' current records in ${deps.tableName}`,
      calls,
    },
  };
}

// ---- the table ----------------------------------------------------------------------------

function rotationText(c: ExpiringCertificate): string {
  if (!c.thingsKnown) return 'unknown (no record in Rotor)';
  if (c.things.length === 0) return '-';
  return c.things
    .map((thing) => {
      const r = c.rotations[thing];
      if (!r) return 'none';
      if (r.inFlight) return `in flight (${r.step})`;
      // The thing is rotating, but away from another of its certificates: this one still waits.
      if (r.status === RotationStatus.InProgress) return `another certificate in flight (${r.step})`;
      return `no rotation in flight (last ${r.status.toLowerCase()})`;
    })
    .join(', ');
}

const CHECK_NAMES: Readonly<Record<AuditCheck, string>> = { [AuditCheck.Expiring]: 'expiring', [AuditCheck.Age]: 'age' };

const CERTIFICATE: Column<ExpiringCertificate> = { header: 'CERTIFICATE', value: (c) => c.certificateId.slice(0, 12) };
const NOT_AFTER: Column<ExpiringCertificate> = { header: 'NOT AFTER', value: (c) => (c.notAfter ? shortTime(c.notAfter) : '-') };
const DATE_FROM_TEXT: Readonly<Record<NotAfterSource, string>> = { [NotAfterSource.AuditFinding]: 'audit', [NotAfterSource.RotorRecord]: 'rotor', [NotAfterSource.DescribeCertificate]: 'describe' };
const DATE_FROM: Column<ExpiringCertificate> = { header: 'DATE FROM', value: (c) => (c.notAfterFrom ? DATE_FROM_TEXT[c.notAfterFrom] : '-') };
const DAYS_LEFT: Column<ExpiringCertificate> = { header: 'DAYS LEFT', value: (c) => (c.expired ? 'EXPIRED' : c.daysLeft === undefined ? '-' : String(c.daysLeft)) };
const FLAGGED_BY: Column<ExpiringCertificate> = {
  header: 'FLAGGED BY',
  value: (c) => c.checks.map((check) => (check === AuditCheck.Age && c.ageDays !== undefined ? `age (${c.ageDays} d)` : CHECK_NAMES[check])).join(', ') || '-',
};
const THING: Column<ExpiringCertificate> = {
  header: 'THING',
  value: (c) => (!c.thingsKnown ? '?' : c.things.length ? c.things.join(', ') : '(none attached)'),
  maxWidth: 40,
};
const ROTATION: Column<ExpiringCertificate> = { header: 'ROTATION', value: rotationText, maxWidth: 80 };

function callsText(calls: CallCount): string {
  const made = Object.entries(calls).map(([op, n]) => `${op} ${n}`).join(', ') || 'none';
  return calls['iot:DescribeCertificate'] ? made : `${made} (no DescribeCertificate)`;
}

export function formatExpiring(report: ExpiringReport): string[] {
  const fromFindings = report.source === ExpiringSource.AuditFindings;
  const header = fromFindings
    ? `${report.certificates.length - (report.issuedByRotor ?? 0)} of ${report.scanned} certificate(s) the audit flagged are due: expiring within ${report.days} day(s) or past the age threshold${report.rotatedSinceAudit ? ` (${report.rotatedSinceAudit} rotated since the audit)` : ''}` +
      (report.issuedByRotor ? `; and ${report.issuedByRotor} certificate(s) Rotor issued expire within ${report.days} day(s), by its records` : '')
    : `${report.certificates.length} of ${report.scanned} ACTIVE certificate(s) expire within ${report.days} day(s)`;
  const columns = fromFindings ? [CERTIFICATE, NOT_AFTER, DATE_FROM, DAYS_LEFT, FLAGGED_BY, THING, ROTATION] : [CERTIFICATE, NOT_AFTER, DAYS_LEFT, THING, ROTATION];
  const lines = [header];
  if (report.certificates.length) lines.push('', ...renderTable(columns, report.certificates));
  lines.push(
    '',
    'Source:',
    `  certificates           ${report.sources.certificates}`,
    `  things, rotations      ${report.sources.things}`,
    ...(report.sources.dates ? [`  dates                  ${report.sources.dates}`] : []),
    `  calls made             ${callsText(report.sources.calls)}`,
  );
  return lines;
}
