import {
  DescribeAuditTaskCommand,
  DescribeCertificateCommand,
  IoTClient,
  ListAuditFindingsCommand,
  ListAuditTasksCommand,
  ListCertificatesCommand,
  ListPrincipalThingsCommand,
  type AuditFinding,
  type Certificate,
  type CertificateStatus,
} from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { RotationRecord } from '../../../domain/records.js';
import { AuditCheck } from '../../../domain/rotation.js';
import { mockClient } from 'aws-sdk-client-mock';
import { DESCRIBE_WARNING, expiring, formatExpiring } from '../../../cli/operator/expiring.js';
import { runOperatorCli } from '../../../cli/operator/index.js';
import { capturedIo, fakeClients, fakeTarget, operatorDeps, record } from './fake-target.js';

const iotMock = mockClient(IoTClient);
const ddbMock = mockClient(DynamoDBDocumentClient);
beforeEach(() => {
  iotMock.reset();
  ddbMock.reset();
});

const NOW = new Date('2025-06-01T00:00:00Z');
const DAY = 86_400_000;
const id = (n: number) => String(n).repeat(64).slice(0, 64);
const arn = (n: number) => `arn:aws:iot:eu-west-1:123456789012:cert/${id(n)}`;
const cert = (n: number, status: CertificateStatus = 'ACTIVE'): Certificate => ({ certificateId: id(n), certificateArn: arn(n), status, creationDate: new Date('2024-06-01T00:00:00Z') });

function fleet() {
  // Two pages; certificate 4 is INACTIVE (a retired one kept) and is never described.
  iotMock
    .on(ListCertificatesCommand, { marker: undefined }).resolves({ certificates: [cert(1), cert(2)], nextMarker: 'm2' })
    .on(ListCertificatesCommand, { marker: 'm2' }).resolves({ certificates: [cert(3), cert(4, 'INACTIVE'), cert(5)] });
  const notAfter: Record<string, Date> = {
    [id(1)]: new Date(NOW.getTime() + 10 * DAY), // due
    [id(2)]: new Date(NOW.getTime() + 45 * DAY), // beyond 30 days
    [id(3)]: new Date(NOW.getTime() - 2 * DAY), // already expired
    [id(5)]: new Date(NOW.getTime() + 30 * DAY), // exactly on the horizon
  };
  iotMock.on(DescribeCertificateCommand).callsFake(async ({ certificateId }: { certificateId: string }) => ({
    certificateDescription: { certificateId, validity: { notBefore: new Date('2024-06-01T00:00:00Z'), notAfter: notAfter[certificateId] } },
  }));
  iotMock
    .on(ListPrincipalThingsCommand, { principal: arn(1) }).resolves({ things: ['pump-1'] })
    .on(ListPrincipalThingsCommand, { principal: arn(3) }).resolves({ things: [] })
    .on(ListPrincipalThingsCommand, { principal: arn(5) }).resolvesOnce({ things: ['pump-5'], nextToken: 't' }).resolvesOnce({ things: ['pump-5b'] });
  ddbMock
    .on(GetCommand, { Key: { pk: 'thing#pump-1', sk: 'current' } }).resolves({ Item: record('pump-1', 'IN_PROGRESS', { oldCertificateId: id(1), step: 'Request CSR' }) })
    .on(GetCommand, { Key: { pk: 'thing#pump-5', sk: 'current' } }).resolves({ Item: record('pump-5', 'FAILED', { oldCertificateId: id(5) }) })
    .on(GetCommand, { Key: { pk: 'thing#pump-5b', sk: 'current' } }).resolves({});
}

function deps() {
  const clients = fakeClients();
  return { iot: clients.iot, ddb: clients.ddb, tableName: 'rotor-rotations', now: () => NOW, backoff: { sleep: async () => undefined } };
}

describe('rotor expiring --describe (every ACTIVE certificate, described)', () => {
  it('keeps the ACTIVE certificates that expire within N days, soonest first, with thing and rotation', async () => {
    fleet();

    const report = await expiring(deps(), { days: 30, concurrency: 2, source: 'describe' });

    expect(report.scanned).toBe(4);
    expect(report.certificates.map((c) => [c.certificateId, c.daysLeft, c.expired, c.things])).toEqual([
      [id(3), -2, true, []],
      [id(1), 10, false, ['pump-1']],
      [id(5), 30, false, ['pump-5', 'pump-5b']],
    ]);
    expect(report.certificates[1].rotations['pump-1']).toMatchObject({ status: 'IN_PROGRESS', inFlight: true, step: 'Request CSR' });
    expect(report.certificates[2].rotations['pump-5']).toMatchObject({ status: 'FAILED', inFlight: false });
    expect(report.certificates[2].rotations['pump-5b']).toBeUndefined();
    expect(iotMock.commandCalls(DescribeCertificateCommand).map((c) => c.args[0].input.certificateId)).not.toContain(id(4));
    // Certificates beyond the horizon cost no ListPrincipalThings.
    expect(iotMock.commandCalls(ListPrincipalThingsCommand, { principal: arn(2) })).toHaveLength(0);
  });

  it('a shorter horizon keeps fewer', async () => {
    fleet();
    const report = await expiring(deps(), { days: 5, concurrency: 4, source: 'describe' });
    expect(report.certificates.map((c) => c.certificateId)).toEqual([id(3)]);
  });

  it('backs off when DescribeCertificate is throttled', async () => {
    iotMock.on(ListCertificatesCommand).resolves({ certificates: [cert(7)] });
    iotMock
      .on(DescribeCertificateCommand)
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }))
      .resolves({ certificateDescription: { validity: { notAfter: new Date(NOW.getTime() + DAY) } } });
    iotMock.on(ListPrincipalThingsCommand).resolves({ things: [] });

    const report = await expiring(deps(), { days: 30, concurrency: 1, source: 'describe' });

    expect(report.certificates).toHaveLength(1);
    expect(iotMock.commandCalls(DescribeCertificateCommand)).toHaveLength(2);
  });

  it('prints a table', async () => {
    fleet();
    const lines = formatExpiring(await expiring(deps(), { days: 30, concurrency: 2, source: 'describe' }));
    expect(lines[0]).toBe('3 of 4 ACTIVE certificate(s) expire within 30 day(s)');
    expect(lines[2]).toMatch(/^CERTIFICATE\s+NOT AFTER\s+DAYS LEFT\s+THING\s+ROTATION$/);
    expect(lines.slice(-4)).toEqual([
      'Source:',
      '  certificates           ListCertificates, one DescribeCertificate per ACTIVE certificate (--describe)',
      "  things, rotations      ListPrincipalThings per due certificate, the things' current records in rotor-rotations",
      expect.stringMatching(/^  calls made {13}iot:ListCertificates 2, iot:DescribeCertificate 4, iot:ListPrincipalThings 4, dynamodb:GetItem 3$/),
    ]);
    expect(lines[3]).toMatch(/^333333333333\s+2025-05-30 00:00:00Z\s+EXPIRED\s+\(none attached\)\s+-$/);
    expect(lines[4]).toMatch(/^111111111111\s+2025-06-11 00:00:00Z\s+10\s+pump-1\s+in flight \(Request CSR\)$/);
    expect(lines[5]).toMatch(/pump-5, pump-5b\s+no rotation in flight \(last failed\), none$/);
  });

  it('says whether the rotation in flight is for this certificate or another one of the thing', () => {
    const due = (n: number, rotation: { status: 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED'; step: string; inFlight: boolean }) => ({
      certificateId: id(n),
      certificateArn: arn(n),
      notAfter: new Date(NOW.getTime() + n * DAY).toISOString(),
      daysLeft: n,
      expired: false,
      checks: [],
      things: [`pump-${n}`],
      thingsKnown: true,
      rotations: { [`pump-${n}`]: { ...rotation, rotationId: `pump-${n}-a0` } },
    });
    const lines = formatExpiring({
      days: 30,
      checkedAt: NOW.toISOString(),
      source: 'describe',
      sources: { certificates: '', things: '', calls: {} },
      scanned: 3,
      certificates: [
        due(1, { status: 'IN_PROGRESS', step: 'Deliver certificate', inFlight: true }),
        // The thing is rotating away from a second certificate it holds: not this one.
        due(2, { status: 'IN_PROGRESS', step: 'Request CSR', inFlight: false }),
        due(3, { status: 'SUCCEEDED', step: 'Rotated', inFlight: false }),
      ],
    });
    expect(lines.slice(3, 6).map((line) => line.split(/\s{2,}/).pop())).toEqual([
      'in flight (Deliver certificate)',
      'another certificate in flight (Request CSR)',
      'no rotation in flight (last succeeded)',
    ]);
  });

  it.each([['abc'], ['0'], ['-3'], ['1.5']])('--days %s is a usage error', async (days) => {
    const io = capturedIo();
    expect(await runOperatorCli(['expiring', '--days', days], operatorDeps(fakeTarget(), io))).toBe(2);
    expect(io.stderr[0]).toMatch(/--days must be a whole number from 1 to 3650/);
    expect(iotMock.calls()).toHaveLength(0);
  });

  it('--json through the command, with a warning about the quota it spends', async () => {
    fleet();
    const io = capturedIo();
    expect(await runOperatorCli(['expiring', '--days', '30', '--describe', '--json'], operatorDeps(fakeTarget(), io, NOW))).toBe(0);
    expect(JSON.parse(io.stdout.join('\n'))).toMatchObject({ days: 30, scanned: 4, checkedAt: NOW.toISOString(), source: 'describe' });
    expect(io.stderr).toEqual([DESCRIBE_WARNING]);
  });

  it('refuses --describe with --audit-task', async () => {
    const io = capturedIo();
    expect(await runOperatorCli(['expiring', '--describe', '--audit-task', 'abc'], operatorDeps(fakeTarget(), io, NOW))).toBe(2);
    expect(io.stderr[0]).toBe('rotor: use either --describe or --audit-task ID, not both');
    expect(iotMock.calls()).toHaveLength(0);
  });
});

/** The latest audit flagged five certificates; Rotor's records know three of them. */
function audited(): void {
  const finding = (n: number, info: Record<string, string>): AuditFinding => ({
    nonCompliantResource: { resourceType: 'DEVICE_CERTIFICATE', resourceIdentifier: { deviceCertificateId: id(n), deviceCertificateArn: arn(n) }, additionalInfo: info },
  });
  const expires = (days: number) => ({ EXPIRATION_TIME: new Date(NOW.getTime() + days * DAY).toISOString() });
  iotMock.on(ListAuditTasksCommand).resolves({ tasks: [{ taskId: 'old-task', taskStatus: 'COMPLETED' }, { taskId: 'new-task', taskStatus: 'COMPLETED' }] });
  iotMock.on(DescribeAuditTaskCommand, { taskId: 'old-task' }).resolves({ taskStatus: 'COMPLETED', taskStartTime: new Date('2025-05-01T00:00:00Z') });
  iotMock.on(DescribeAuditTaskCommand, { taskId: 'new-task' }).resolves({ taskStatus: 'COMPLETED', taskStartTime: AUDIT_START });
  iotMock.on(ListAuditFindingsCommand).callsFake((input: { taskId?: string; checkName?: string; nextToken?: string }) => {
    if (input.taskId !== 'new-task') return { findings: [] };
    if (input.checkName === AuditCheck.Age) return { findings: [finding(4, { CERTIFICATE_AGE_IN_DAYS: '400' }), finding(1, { CERTIFICATE_AGE_IN_DAYS: '380' })] };
    // Expiring, two pages: 1 in 10 days (in flight), 2 in 45 (beyond 30), 3 expired (failed), 5 rotated since the audit.
    return input.nextToken === 'p2'
      ? { findings: [finding(3, expires(-2)), finding(5, expires(12))] }
      : { findings: [finding(1, expires(10)), finding(2, expires(45))], nextToken: 'p2' };
  });
  const byStatus: Record<string, RotationRecord[]> = {
    IN_PROGRESS: [record('pump-1', 'IN_PROGRESS', { oldCertificateId: id(1), step: 'Request CSR' })],
    FAILED: [record('pump-3', 'FAILED', { oldCertificateId: id(3) })],
    SUCCEEDED: [record('pump-5', 'SUCCEEDED', { oldCertificateId: id(5), newCertificateId: id(8) })],
  };
  ddbMock.on(QueryCommand).callsFake((input: { ExpressionAttributeValues: Record<string, string> }) => ({ Items: byStatus[input.ExpressionAttributeValues[':status']] }));
}
const AUDIT_START = new Date('2025-05-31T00:00:00Z');

describe('rotor expiring (from the latest audit\'s findings and Rotor\'s records)', () => {
  it('lists what the audit flagged that is due and not rotated since, with no DescribeCertificate and no ListPrincipalThings', async () => {
    audited();

    const report = await expiring(deps(), { days: 30, concurrency: 8 });

    expect(report).toMatchObject({ source: 'audit-findings', audit: { taskId: 'new-task', startedAt: AUDIT_START.toISOString() }, scanned: 5, rotatedSinceAudit: 1 });
    expect(report.certificates.map((c) => [c.certificateId, c.daysLeft, c.expired, c.checks, c.things, c.thingsKnown])).toEqual([
      [id(3), -2, true, [AuditCheck.Expiring], ['pump-3'], true],
      [id(1), 10, false, [AuditCheck.Expiring, AuditCheck.Age], ['pump-1'], true],
      // Flagged by age alone: due whatever its expiry, and no record says which thing holds it.
      [id(4), undefined, false, [AuditCheck.Age], [], false],
    ]);
    expect(report.certificates[1]).toMatchObject({ ageDays: 380, rotations: { 'pump-1': { status: 'IN_PROGRESS', inFlight: true, step: 'Request CSR' } } });
    expect(report.certificates[0].rotations['pump-3']).toMatchObject({ status: 'FAILED', inFlight: false });
    expect(iotMock.commandCalls(DescribeCertificateCommand)).toEqual([]);
    expect(iotMock.commandCalls(ListPrincipalThingsCommand)).toEqual([]);
    expect(iotMock.commandCalls(ListCertificatesCommand)).toEqual([]);
    expect(report.sources.calls).toEqual({ 'iot:ListAuditTasks': 1, 'iot:DescribeAuditTask': 2, 'iot:ListAuditFindings': 3, 'dynamodb:Query': 4 });
    // Only rotations that succeeded since the audit began can have replaced a flagged certificate.
    const succeeded = ddbMock.commandCalls(QueryCommand).map((c) => c.args[0].input).find((i) => i.ExpressionAttributeValues?.[':status'] === 'SUCCEEDED');
    expect(succeeded).toMatchObject({ KeyConditionExpression: '#status = :status AND updatedAt >= :since', ExpressionAttributeValues: { ':since': AUDIT_START.toISOString() } });
  });

  it('prints the table and where its figures come from', async () => {
    audited();
    const lines = formatExpiring(await expiring(deps(), { days: 30, concurrency: 8 }));
    expect(lines[0]).toBe('3 of 5 certificate(s) the audit flagged are due: expiring within 30 day(s) or past the age threshold (1 rotated since the audit)');
    expect(lines[2]).toMatch(/^CERTIFICATE\s+NOT AFTER\s+DATE FROM\s+DAYS LEFT\s+FLAGGED BY\s+THING\s+ROTATION$/);
    expect(lines[3]).toMatch(/^333333333333\s+2025-05-30 00:00:00Z\s+audit\s+EXPIRED\s+expiring\s+pump-3\s+no rotation in flight \(last failed\)$/);
    expect(lines[4]).toMatch(/^111111111111\s+2025-06-11 00:00:00Z\s+audit\s+10\s+expiring, age \(380 d\)\s+pump-1\s+in flight \(Request CSR\)$/);
    expect(lines[5]).toMatch(/^444444444444\s+-\s+-\s+-\s+age \(400 d\)\s+\?\s+unknown \(no record in Rotor\)$/);
    expect(lines.slice(-5)).toEqual([
      'Source:',
      `  certificates           ListAuditFindings of audit new-task (${AUDIT_START.toISOString()}): DEVICE_CERTIFICATE_EXPIRING_CHECK, DEVICE_CERTIFICATE_AGE_CHECK; and the certificates Rotor issued (SUCCEEDED records) whose recorded notAfter is within 30 day(s)`,
      '  things, rotations      rotation table rotor-rotations, by-status index: IN_PROGRESS and FAILED records, SUCCEEDED since the audit',
      '  dates                  DATE FROM: "audit" = the finding\'s EXPIRATION_TIME; "rotor" = newCertificateNotAfter, recorded off the certificate when Rotor issued it',
      '  calls made             iot:ListAuditTasks 1, iot:DescribeAuditTask 2, iot:ListAuditFindings 3, dynamodb:Query 4 (no DescribeCertificate)',
    ]);
  });

  it('adds, by the date its records hold, what Rotor issued that expires within the horizon, and dates an age-only finding Rotor issued', async () => {
    // Prepare: pump-5's rotation since the audit gave it certificate 8 (private-ca, 20 days);
    // pump-6 got 6 long ago, due in 25 days (beyond the audit's own window); 4, flagged by age
    // alone, is one Rotor issued to pump-4, due in 28 days.
    audited();
    const issued = [
      record('pump-5', 'SUCCEEDED', { oldCertificateId: id(5), newCertificateId: id(8), newCertificateNotAfter: new Date(NOW.getTime() + 20 * DAY).toISOString() }),
      record('pump-6', 'SUCCEEDED', { oldCertificateId: id(2), newCertificateId: id(6), newCertificateNotAfter: new Date(NOW.getTime() + 25 * DAY).toISOString() }),
      record('pump-4', 'SUCCEEDED', { oldCertificateId: id(9), newCertificateId: id(4), newCertificateNotAfter: new Date(NOW.getTime() + 28 * DAY).toISOString() }),
      // A far date (aws-iot's 2049) that the filter would have dropped: checked again here.
      record('pump-7', 'SUCCEEDED', { oldCertificateId: id(3), newCertificateId: id(7), newCertificateNotAfter: '2049-12-31T23:59:59.000Z' }),
    ];
    ddbMock.on(QueryCommand).callsFake((input: { FilterExpression?: string; ExpressionAttributeValues: Record<string, string> }) =>
      input.FilterExpression ? { Items: issued } : { Items: input.ExpressionAttributeValues[':status'] === 'SUCCEEDED' ? issued.slice(0, 1) : [] },
    );
    // Act
    const report = await expiring(deps(), { days: 30, concurrency: 8 });
    const lines = formatExpiring(report);
    // Assess
    expect(report.issuedByRotor).toBe(2);
    expect(report.certificates.map((c) => [c.certificateId, c.daysLeft, c.notAfterFrom, c.things])).toEqual([
      [id(3), -2, 'audit-finding', []],
      [id(1), 10, 'audit-finding', []],
      [id(8), 20, 'rotor-record', ['pump-5']],
      [id(6), 25, 'rotor-record', ['pump-6']],
      [id(4), 28, 'rotor-record', ['pump-4']],
    ]);
    const filtered = ddbMock.commandCalls(QueryCommand).map((c) => c.args[0].input).find((i) => i.FilterExpression);
    expect(filtered).toMatchObject({ KeyConditionExpression: '#status = :status', FilterExpression: 'newCertificateNotAfter <= :until', ExpressionAttributeValues: { ':status': 'SUCCEEDED', ':until': new Date(NOW.getTime() + 30 * DAY).toISOString() } });
    expect(lines[0]).toBe('3 of 5 certificate(s) the audit flagged are due: expiring within 30 day(s) or past the age threshold (1 rotated since the audit); and 2 certificate(s) Rotor issued expire within 30 day(s), by its records');
    expect(lines.find((line) => line.startsWith('888888888888'))).toMatch(/^888888888888\s+2025-06-21 00:00:00Z\s+rotor\s+20\s+-\s+pump-5\s+no rotation in flight \(last succeeded\)$/);
    expect(lines.find((line) => line.startsWith('444444444444'))).toMatch(/^444444444444\s+2025-06-29 00:00:00Z\s+rotor\s+28\s+age \(400 d\)\s+pump-4\s+no rotation in flight \(last succeeded\)$/);
  });

  it('reads the audit task it is given', async () => {
    audited();
    const report = await expiring(deps(), { days: 30, concurrency: 8, auditTaskId: 'new-task' });
    expect(report.sources.calls).toMatchObject({ 'iot:DescribeAuditTask': 1 });
    expect(iotMock.commandCalls(ListAuditTasksCommand)).toEqual([]);
  });

  it('exits 3, saying what to do, when there is no completed audit', async () => {
    iotMock.on(ListAuditTasksCommand).resolves({ tasks: [] });
    const io = capturedIo();
    expect(await runOperatorCli(['expiring'], operatorDeps(fakeTarget(), io, NOW))).toBe(3);
    expect(io.stderr.join('\n')).toMatch(/no completed Device Defender audit in the last 30 days: run one, or pass --audit-task ID/);
    expect(iotMock.commandCalls(DescribeCertificateCommand)).toEqual([]);
  });

  it('--json through the command', async () => {
    audited();
    const io = capturedIo();
    expect(await runOperatorCli(['expiring', '--days', '30', '--json'], operatorDeps(fakeTarget(), io, NOW))).toBe(0);
    expect(JSON.parse(io.stdout.join('\n'))).toMatchObject({ days: 30, scanned: 5, source: 'audit-findings', sources: { calls: { 'iot:ListAuditFindings': 3 } } });
    expect(io.stderr).toEqual([]);
  });
});
