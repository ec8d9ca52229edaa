import {
  DescribeCertificateCommand,
  ListCertificatesCommand,
  ListPrincipalThingsCommand,
  type Certificate,
  type IoTClient,
} from '@aws-sdk/client-iot';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { RotationStatus } from '../../domain/rotation.js';
import { mapBounded, withBackoff, type BackoffOptions } from './bounded.js';
import { getCurrentRecord } from './status.js';
import { renderTable, shortTime, type Column } from './text-table.js';

/**
 * `rotor expiring`: ACTIVE certificates whose notAfter falls within N days, with their thing
 * and whether a rotation is already in flight for them. ListCertificates carries no validity,
 * so each ACTIVE certificate costs a DescribeCertificate: kept to a few in flight, with
 * backoff, because IoT throttles these per account.
 */
export interface ExpiringOptions {
  days: number;
  concurrency: number;
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

export interface ExpiringCertificate {
  certificateId: string;
  certificateArn: string;
  notAfter: string;
  daysLeft: number;
  expired: boolean;
  things: string[];
  /** Keyed by thing name; absent when the thing has no record yet. */
  rotations: Record<string, RotationState>;
}

export interface ExpiringReport {
  days: number;
  checkedAt: string;
  /** ACTIVE certificates examined. */
  scanned: number;
  certificates: ExpiringCertificate[];
}

const DAY_MS = 86_400_000;

async function listActiveCertificates(deps: ExpiringDeps): Promise<Certificate[]> {
  const active: Certificate[] = [];
  let marker: string | undefined;
  do {
    const page = await withBackoff(() => deps.iot.send(new ListCertificatesCommand({ pageSize: 250, marker })), deps.backoff);
    active.push(...(page.certificates ?? []).filter((c) => c.status === 'ACTIVE' && c.certificateId && c.certificateArn));
    marker = page.nextMarker;
  } while (marker);
  return active;
}

async function thingsOf(deps: ExpiringDeps, principal: string): Promise<string[]> {
  const things: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await withBackoff(() => deps.iot.send(new ListPrincipalThingsCommand({ principal, nextToken })), deps.backoff);
    things.push(...(page.things ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  return things;
}

export async function expiring(deps: ExpiringDeps, options: ExpiringOptions): Promise<ExpiringReport> {
  const now = deps.now();
  const horizon = now.getTime() + options.days * DAY_MS;
  const active = await listActiveCertificates(deps);
  let done = 0;
  const validity = await mapBounded(
    active,
    options.concurrency,
    async (certificate) => {
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
    const things = await thingsOf(deps, certificate.certificateArn as string);
    const rotations: Record<string, RotationState> = {};
    for (const thing of things) {
      const record = await getCurrentRecord(deps, thing);
      if (record) {
        rotations[thing] = {
          status: record.status,
          step: record.step,
          rotationId: record.rotationId,
          inFlight: record.status === RotationStatus.InProgress && record.oldCertificateId === certificateId,
        };
      }
    }
    const msLeft = notAfter.getTime() - now.getTime();
    return {
      certificateId,
      certificateArn: certificate.certificateArn as string,
      notAfter: notAfter.toISOString(),
      daysLeft: Math.floor(msLeft / DAY_MS),
      expired: msLeft <= 0,
      things,
      rotations,
    };
  });
  return { days: options.days, checkedAt: now.toISOString(), scanned: active.length, certificates };
}

function rotationText(c: ExpiringCertificate): string {
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

const COLUMNS: readonly Column<ExpiringCertificate>[] = [
  { header: 'CERTIFICATE', value: (c) => c.certificateId.slice(0, 12) },
  { header: 'NOT AFTER', value: (c) => shortTime(c.notAfter) },
  { header: 'DAYS LEFT', value: (c) => (c.expired ? 'EXPIRED' : String(c.daysLeft)) },
  { header: 'THING', value: (c) => (c.things.length ? c.things.join(', ') : '(none attached)'), maxWidth: 40 },
  { header: 'ROTATION', value: rotationText, maxWidth: 80 },
];

export function formatExpiring(report: ExpiringReport): string[] {
  const header = `${report.certificates.length} of ${report.scanned} ACTIVE certificate(s) expire within ${report.days} day(s)`;
  if (report.certificates.length === 0) return [header];
  return [header, '', ...renderTable(COLUMNS, report.certificates)];
}
