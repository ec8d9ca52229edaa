import { DescribeAuditTaskCommand, DescribeCertificateCommand, IoTClient, ListAuditFindingsCommand, ListAuditTasksCommand, type AuditFinding } from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, ScanCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { Command } from 'commander';
import { mockClient } from 'aws-sdk-client-mock';
import { formatPlan, plan, registerPlanCommand, type PlanReport } from '../../../../cli/plan/index.js';
import { AuditCheck } from '../../../../domain/rotation.js';
import { CALENDAR_KEY, dailyLoad, deferredPk, deferredSk, planCohort } from '../../../../domain/pacing/index.js';
import { capturedIo, fakeClients, fakeTarget, operatorDeps, record } from '../fake-target.js';

const iotMock = mockClient(IoTClient);
const ddbMock = mockClient(DynamoDBDocumentClient);
const NOW = new Date('2025-06-01T00:00:00Z');

function certificateId(i: number): string {
  return i.toString(16).padStart(64, '0');
}

function finding(id: string, expires?: string): AuditFinding {
  return {
    nonCompliantResource: {
      resourceType: 'DEVICE_CERTIFICATE',
      resourceIdentifier: { deviceCertificateId: id },
      ...(expires ? { additionalInfo: { EXPIRATION_TIME: expires } } : {}),
    },
  };
}

/** Two audits; the later one flags 600 certificates by age (two pages) and 2 by expiry, one of them also by age. */
function givenAudits(): void {
  iotMock.on(ListAuditTasksCommand).resolves({ tasks: [{ taskId: 'old-task', taskStatus: 'COMPLETED' }, { taskId: 'new-task', taskStatus: 'COMPLETED' }] });
  iotMock.on(DescribeAuditTaskCommand, { taskId: 'old-task' }).resolves({ taskStatus: 'COMPLETED', taskStartTime: new Date('2025-05-01T00:00:00Z') });
  iotMock.on(DescribeAuditTaskCommand, { taskId: 'new-task' }).resolves({ taskStatus: 'COMPLETED', taskStartTime: new Date('2025-05-31T00:00:00Z') });
  const age = Array.from({ length: 600 }, (_, i) => finding(certificateId(i)));
  iotMock.on(ListAuditFindingsCommand).callsFake((input: { taskId?: string; checkName?: string; nextToken?: string }) => {
    if (input.taskId !== 'new-task') return { findings: [] };
    if (input.checkName === AuditCheck.Expiring) return { findings: [finding(certificateId(0), '2025-06-20T00:00:00Z'), finding(certificateId(9999), '2025-06-10T00:00:00Z')] };
    return input.nextToken === 'p2' ? { findings: age.slice(250) } : { findings: age.slice(0, 250), nextToken: 'p2' };
  });
  // One of the flagged certificates is already being replaced.
  ddbMock.on(QueryCommand).resolves({ Items: [record('pump-1', 'IN_PROGRESS', { oldCertificateId: certificateId(5) })] });
}

beforeEach(() => {
  iotMock.reset();
  ddbMock.reset();
});

describe('rotor plan', () => {
  it('counts what the latest audit would rotate from its findings and Rotor\'s records, without a DescribeCertificate', async () => {
    // Prepare
    givenAudits();
    const clients = fakeClients();
    // Act
    const report = await plan({ iot: clients.iot, ddb: clients.ddb, tableName: 'rotor-rotations', now: () => NOW }, { lookbackDays: 30 });
    // Assess
    expect(report.audit).toEqual({ taskId: 'new-task', startedAt: '2025-05-31T00:00:00.000Z', findingsByCheck: { [AuditCheck.Expiring]: 2, [AuditCheck.Age]: 600 } });
    expect(report.flagged).toBe(601);
    expect(report.inFlight).toBe(1);
    expect(report.devices).toBe(600);
    expect(iotMock.commandCalls(DescribeCertificateCommand)).toHaveLength(0);
    expect(report.sources.calls).toEqual({ 'iot:ListAuditTasks': 1, 'iot:DescribeAuditTask': 2, 'iot:ListAuditFindings': 3, 'dynamodb:Query': 1, 'dynamodb:GetItem': 1 });
    expect(ddbMock.commandCalls(QueryCommand)[0].args[0].input).toMatchObject({ ExpressionAttributeValues: { ':status': 'IN_PROGRESS' } });
    expect(report.alreadyDeferred).toBe(0);
    expect(report.deferredStarts).toEqual({ total: 0, byDay: [] });
  });

  it('shows the starts the renewal calendar holds, by day, and does not plan their certificates again', async () => {
    // Prepare: the calendar lists three days. 2025-06-02 holds 3 starts over two Query pages
    // (two flagged certificates and one of another audit's), 2025-06-03 one (the in-flight
    // certificate's), and 2025-06-01 was emptied by the sweep.
    givenAudits();
    const at = (day: string, hour: number): number => Date.parse(`${day}T${String(hour).padStart(2, '0')}:00:00Z`);
    const partitions: Record<string, string[][]> = {
      [deferredPk('2025-06-01')]: [[]],
      [deferredPk('2025-06-02')]: [
        [deferredSk(at('2025-06-02', 3), certificateId(10), 'new-task'), deferredSk(at('2025-06-02', 7), certificateId(11), 'new-task')],
        [deferredSk(at('2025-06-02', 9), certificateId(77777), 'old-task')],
      ],
      [deferredPk('2025-06-03')]: [[deferredSk(at('2025-06-03', 1), certificateId(5), 'new-task')]],
    };
    ddbMock.on(GetCommand, { Key: CALENDAR_KEY }).resolves({ Item: { ...CALENDAR_KEY, days: new Set(['2025-06-03', '2025-06-01', '2025-06-02']) } });
    ddbMock.on(QueryCommand).callsFake((input: QueryCommandInput) => {
      const pk = input.ExpressionAttributeValues?.[':pk'] as string | undefined;
      if (pk === undefined) return { Items: [record('pump-1', 'IN_PROGRESS', { oldCertificateId: certificateId(5) })] };
      const pages = partitions[pk];
      const page = Number(input.ExclusiveStartKey?.page ?? 0);
      return { Items: pages[page].map((sk) => ({ sk })), ...(page + 1 < pages.length ? { LastEvaluatedKey: { page: page + 1 } } : {}) };
    });
    const clients = fakeClients();
    // Act
    const report = await plan({ iot: clients.iot, ddb: clients.ddb, tableName: 'rotor-rotations', now: () => NOW }, { lookbackDays: 30 });
    // Assess: the two flagged certificates with a deferred start are not planned again; the
    // in-flight one counts as in flight.
    expect(report.flagged).toBe(601);
    expect(report.inFlight).toBe(1);
    expect(report.alreadyDeferred).toBe(2);
    expect(report.devices).toBe(598);
    expect(report.schedule.at(-1)?.cumulative).toBe(598);
    expect(report.deferredStarts).toEqual({
      total: 4,
      nextAt: '2025-06-02T03:00:00.000Z',
      byDay: [
        { date: '2025-06-02', starts: 3 },
        { date: '2025-06-03', starts: 1 },
      ],
    });
    // Cheap: one GetItem, one Query per page of each listed day, sort keys only, no Scan.
    expect(report.sources.calls).toMatchObject({ 'dynamodb:GetItem': 1, 'dynamodb:Query': 1 + 4 });
    const dayQueries = ddbMock.commandCalls(QueryCommand).map((call) => call.args[0].input).filter((input) => input.ExpressionAttributeValues?.[':pk']);
    expect(dayQueries.every((input) => input.ProjectionExpression === 'sk')).toBe(true);
    expect(ddbMock.commandCalls(ScanCommand)).toHaveLength(0);
    const text = formatPlan(report).join('\n');
    expect(text).toMatch(/already deferred +2 /);
    expect(text).toMatch(/Deferred starts \(renewal calendar\): 4, next due 2025-06-02T03:00:00.000Z\n  DATE +STARTS\n  2025-06-02 +3\n  2025-06-03 +1/);
    expect(text).toMatch(/deferred +rotation table rotor-rotations, the calendar item/);
  });

  it('plans with the product\'s pacing: floor, spread and schedule from admission and the calendar', async () => {
    givenAudits();
    const clients = fakeClients();
    const report = await plan({ iot: clients.iot, ddb: clients.ddb, tableName: 'rotor-rotations', now: () => NOW }, { lookbackDays: 30 });
    expect(report.bottleneck).toEqual({ bucket: 'iot:ListPrincipalThings', rotationsPerSecond: 4.5 });
    expect(report.quotaFloorS).toBeCloseTo(600 / 4.5, 6);
    expect(report.earliestExpiry).toBe('2025-06-10T00:00:00.000Z');
    expect(report.lateForDeadline).toBe(0);
    const cohort = planCohort(600, 4.5);
    expect(report.spreadS).toBeCloseTo(cohort.spreadS, 6);
    expect(report.schedule).toEqual([{ date: '2025-06-01', rotations: 600, cumulative: 600 }]);
    expect(report.expectedCompletion).toBe(new Date(NOW.getTime() + cohort.spreadS * 1000).toISOString());
  });

  it('says how many certificates the budget cannot rotate before the earliest expiry', async () => {
    // Prepare: the same audit, but one certificate expires a minute from now.
    givenAudits();
    iotMock.on(ListAuditFindingsCommand, { checkName: AuditCheck.Expiring }).resolves({ findings: [finding(certificateId(9999), '2025-06-01T00:01:00Z')] });
    const clients = fakeClients();
    // Act
    const report = await plan({ iot: clients.iot, ddb: clients.ddb, tableName: 'rotor-rotations', now: () => NOW }, { lookbackDays: 30 });
    // Assess: 600 due at 4.5 rotations/s need 133.3 s; 60 s fit 270.
    expect(report.spreadS).toBe(60);
    expect(report.lateForDeadline).toBe(600 - 270);
    expect(report.expectedCompletion).toBe('2025-06-01T00:02:13.333Z');
    expect(formatPlan(report).join('\n')).toMatch(/330 certificates cannot be rotated before it at this budget/);
  });

  it('spreads over days when asked for a window, and the schedule adds up', async () => {
    givenAudits();
    const io = capturedIo();
    const program = registerPlanCommand(new Command('rotor').exitOverride(), { ...operatorDeps(fakeTarget(), io, NOW), setExitCode: () => undefined });
    await program.parseAsync(['plan', '--window-days', '3', '--json'], { from: 'user' });
    const report = JSON.parse(io.stdout.join('\n')) as PlanReport;
    expect(report.schedule.map((day) => day.date)).toEqual(['2025-06-01', '2025-06-02', '2025-06-03']);
    expect(report.schedule[2].cumulative).toBe(600);
    // The due certificates: the audit's, less the one in flight.
    const ids = [...Array.from({ length: 600 }, (_, i) => certificateId(i)).filter((id) => id !== certificateId(5)), certificateId(9999)];
    expect(report.schedule.map((day) => day.rotations)).toEqual(dailyLoad(ids, { spreadS: 3 * 86_400 }));
    expect(io.stderr).toEqual([]);
  });

  it('prints where its figures come from', async () => {
    givenAudits();
    const clients = fakeClients();
    const report = await plan({ iot: clients.iot, ddb: clients.ddb, tableName: 'rotor-rotations', now: () => NOW }, { lookbackDays: 30 });
    const text = formatPlan(report).join('\n');
    expect(text).toMatch(/would rotate +600/);
    expect(text).toMatch(/findings +ListAuditFindings of audit new-task/);
    expect(text).toMatch(/no DescribeCertificate/);
  });

  it('says so when there is no completed audit to plan from', async () => {
    iotMock.on(ListAuditTasksCommand).resolves({ tasks: [] });
    const io = capturedIo();
    let code: number | undefined;
    const program = registerPlanCommand(new Command('rotor').exitOverride(), { ...operatorDeps(fakeTarget(), io, NOW), setExitCode: (c) => (code = c) });
    await program.parseAsync(['plan'], { from: 'user' });
    expect(code).toBe(3);
    expect(io.stderr.join('\n')).toMatch(/no completed Device Defender audit in the last 30 days/);
  });

  it('refuses a bad quotas file before connecting', async () => {
    const io = capturedIo();
    const target = fakeTarget();
    let code: number | undefined;
    const program = registerPlanCommand(new Command('rotor').exitOverride(), { ...operatorDeps(target, io, NOW), setExitCode: (c) => (code = c) });
    await program.parseAsync(['plan', '--quotas', '/nonexistent/quotas.json'], { from: 'user' });
    expect(code).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/cannot read the quotas file/);
    expect(target.seen).toEqual([]);
  });
});
