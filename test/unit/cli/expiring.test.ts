import { DescribeCertificateCommand, IoTClient, ListCertificatesCommand, ListPrincipalThingsCommand, type Certificate, type CertificateStatus } from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { expiring, formatExpiring } from '../../../cli/operator/expiring.js';
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

describe('rotor expiring', () => {
  it('keeps the ACTIVE certificates that expire within N days, soonest first, with thing and rotation', async () => {
    fleet();

    const report = await expiring(deps(), { days: 30, concurrency: 2 });

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
    const report = await expiring(deps(), { days: 5, concurrency: 4 });
    expect(report.certificates.map((c) => c.certificateId)).toEqual([id(3)]);
  });

  it('backs off when DescribeCertificate is throttled', async () => {
    iotMock.on(ListCertificatesCommand).resolves({ certificates: [cert(7)] });
    iotMock
      .on(DescribeCertificateCommand)
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }))
      .resolves({ certificateDescription: { validity: { notAfter: new Date(NOW.getTime() + DAY) } } });
    iotMock.on(ListPrincipalThingsCommand).resolves({ things: [] });

    const report = await expiring(deps(), { days: 30, concurrency: 1 });

    expect(report.certificates).toHaveLength(1);
    expect(iotMock.commandCalls(DescribeCertificateCommand)).toHaveLength(2);
  });

  it('prints a table', async () => {
    fleet();
    const lines = formatExpiring(await expiring(deps(), { days: 30, concurrency: 2 }));
    expect(lines[0]).toBe('3 of 4 ACTIVE certificate(s) expire within 30 day(s)');
    expect(lines[2]).toMatch(/^CERTIFICATE\s+NOT AFTER\s+DAYS LEFT\s+THING\s+ROTATION$/);
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
      things: [`pump-${n}`],
      rotations: { [`pump-${n}`]: { ...rotation, rotationId: `pump-${n}-a0` } },
    });
    const lines = formatExpiring({
      days: 30,
      checkedAt: NOW.toISOString(),
      scanned: 3,
      certificates: [
        due(1, { status: 'IN_PROGRESS', step: 'Deliver certificate', inFlight: true }),
        // The thing is rotating away from a second certificate it holds: not this one.
        due(2, { status: 'IN_PROGRESS', step: 'Request CSR', inFlight: false }),
        due(3, { status: 'SUCCEEDED', step: 'Rotated', inFlight: false }),
      ],
    });
    expect(lines.slice(3).map((line) => line.split(/\s{2,}/).pop())).toEqual([
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

  it('--json through the command', async () => {
    fleet();
    const io = capturedIo();
    expect(await runOperatorCli(['expiring', '--days', '30', '--json'], operatorDeps(fakeTarget(), io, NOW))).toBe(0);
    expect(JSON.parse(io.stdout.join('\n'))).toMatchObject({ days: 30, scanned: 4, checkedAt: NOW.toISOString() });
  });
});
