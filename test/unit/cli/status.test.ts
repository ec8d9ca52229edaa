import { GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { UsageError, NotFoundError } from '../../../cli/operator/exit-codes.js';
import { countByStatus, formatStatus, parseStatus, status } from '../../../cli/operator/status.js';
import { runOperatorCli } from '../../../cli/operator/index.js';
import { historySk, thingPk } from '../../../domain/records.js';
import { executionConsoleUrl } from '../../../domain/naming.js';
import { capturedIo, fakeClients, fakeTarget, operatorDeps, record } from './fake-target.js';

const ddbMock = mockClient(DynamoDBDocumentClient);
beforeEach(() => ddbMock.reset());

function deps() {
  return { ddb: fakeClients().ddb, tableName: 'rotor-rotations', local: false };
}

function countQuery(status: string, startKey?: Record<string, unknown>) {
  return { IndexName: 'by-status', Select: 'COUNT', ExpressionAttributeValues: { ':status': status }, ...(startKey ? { ExclusiveStartKey: startKey } : {}) } as const;
}

describe('rotor status: counts', () => {
  it('sums COUNT queries on the by-status index across pages, one status at a time', async () => {
    // Prepare: FAILED spans two pages; the second page is asked for with the first page's key.
    const page2Key = { pk: 'thing#t-17', sk: 'current', status: 'FAILED', updatedAt: '2025-05-01T00:00:00Z' };
    ddbMock
      .on(QueryCommand, countQuery('IN_PROGRESS')).resolves({ Count: 3 })
      .on(QueryCommand, countQuery('SUCCEEDED')).resolves({ Count: 120 })
      .on(QueryCommand, countQuery('FAILED')).resolves({ Count: 1000, LastEvaluatedKey: page2Key })
      .on(QueryCommand, countQuery('FAILED', page2Key)).resolves({ Count: 7 });

    // Act
    const counts = await countByStatus(deps());

    // Assess
    expect(counts).toEqual({ IN_PROGRESS: 3, SUCCEEDED: 120, FAILED: 1007 });
    const calls = ddbMock.commandCalls(QueryCommand);
    expect(calls).toHaveLength(4);
    for (const call of calls) {
      expect(call.args[0].input).toMatchObject({ TableName: 'rotor-rotations', IndexName: 'by-status', KeyConditionExpression: '#status = :status' });
    }
  });

  it('lists the most recently updated rotations of every status under the counts', async () => {
    const failed = record('pump-7', 'FAILED', { updatedAt: '2025-05-03T09:00:00.000Z' });
    const running = record('pump-8', 'IN_PROGRESS', { updatedAt: '2025-05-04T09:00:00.000Z' });
    ddbMock
      .on(QueryCommand, { Select: 'COUNT', ExpressionAttributeValues: { ':status': 'FAILED' } }).resolves({ Count: 1 })
      .on(QueryCommand, { Select: 'COUNT', ExpressionAttributeValues: { ':status': 'IN_PROGRESS' } }).resolves({ Count: 1 })
      .on(QueryCommand, { Select: 'COUNT', ExpressionAttributeValues: { ':status': 'SUCCEEDED' } }).resolves({ Count: 0 })
      .on(QueryCommand, { ScanIndexForward: false, ExpressionAttributeValues: { ':status': 'FAILED' } }).resolves({ Items: [failed] })
      .on(QueryCommand, { ScanIndexForward: false, ExpressionAttributeValues: { ':status': 'IN_PROGRESS' } }).resolves({ Items: [running] })
      .on(QueryCommand, { ScanIndexForward: false, ExpressionAttributeValues: { ':status': 'SUCCEEDED' } }).resolves({ Items: [] });

    const report = await status(deps(), { limit: 50 });

    expect(report.kind).toBe('fleet');
    if (report.kind !== 'fleet') return;
    expect(report.rows.map((r) => r.thing)).toEqual(['pump-8', 'pump-7']);
    expect(report.truncated).toBe(false);
    const lines = formatStatus(report);
    expect(lines[0]).toBe('IN_PROGRESS 1   SUCCEEDED 0   FAILED 1   (total 2)');
    // The fleet figures, a blank line, then the table.
    const header = lines.indexOf('') + 1;
    expect(lines[header]).toMatch(/^THING\s+STATUS\s+STEP\s+REASON\s+STARTED\s+UPDATED\s+ATTEMPTS$/);
    expect(lines[header + 2]).toMatch(/^pump-7\s+FAILED\s+Request CSR\s+NO_CSR_RESPONSE\s+2025-05-0\d 10:00:00Z\s+2025-05-03 09:00:00Z\s+1$/);
  });

  it('says when the listing is cut by --limit', async () => {
    const items = [record('a', 'FAILED'), record('b', 'FAILED')];
    ddbMock
      .on(QueryCommand, { Select: 'COUNT' }).resolves({ Count: 0 })
      .on(QueryCommand, { Select: 'COUNT', ExpressionAttributeValues: { ':status': 'FAILED' } }).resolves({ Count: 2 })
      .on(QueryCommand, { ScanIndexForward: false, Limit: 1 }).resolves({ Items: items.slice(0, 1), LastEvaluatedKey: { pk: 'x' } });

    const report = await status(deps(), { status: 'FAILED', limit: 1 });

    expect(report.kind === 'fleet' && report.rows.length).toBe(1);
    expect(report.kind === 'fleet' && report.truncated).toBe(true);
    // One page was enough for the limit: the second page is never read.
    expect(ddbMock.commandCalls(QueryCommand, { ScanIndexForward: false })).toHaveLength(1);
  });
});

describe('rotor status --thing', () => {
  it('shows the current record and the whole history newest first, paginated, with console links', async () => {
    const current = record('pump-7', 'FAILED');
    const older = { pk: thingPk('pump-7'), sk: historySk('2025-01-01T00:00:00.000Z', 'r1'), thingName: 'pump-7', rotationId: 'r1', outcome: 'SUCCEEDED', step: 'Rotated', executionArn: 'arn:aws:states:eu-west-1:123456789012:execution:rotor-rotate-device:r1', oldCertificateId: 'c0', startedAt: '2025-01-01T00:00:00.000Z', finishedAt: '2025-01-01T00:05:00.000Z', expiresAt: 1 };
    const newer = { ...older, sk: historySk('2025-05-01T00:00:00.000Z', 'r2'), rotationId: 'r2', outcome: 'FAILED', step: 'Request CSR', reason: 'NO_CSR_RESPONSE', executionArn: older.executionArn.replace(':r1', ':r2'), startedAt: '2025-05-01T00:00:00.000Z', finishedAt: '2025-05-01T02:00:00.000Z' };
    ddbMock.on(GetCommand, { Key: { pk: 'thing#pump-7', sk: 'current' } }).resolves({ Item: current });
    ddbMock
      .on(QueryCommand, { ExpressionAttributeValues: { ':pk': 'thing#pump-7', ':history': 'rotation#' } })
      .resolvesOnce({ Items: [newer], LastEvaluatedKey: { pk: 'thing#pump-7', sk: newer.sk } })
      .resolvesOnce({ Items: [older] });

    const report = await status(deps(), { thing: 'pump-7', limit: 50 });

    if (report.kind !== 'thing') throw new Error('expected a thing report');
    expect(report.history.map((h) => h.rotationId)).toEqual(['r2', 'r1']);
    expect(report.history[0].link).toBe(executionConsoleUrl(newer.executionArn));
    expect(report.current?.status).toBe('FAILED');
    const historyQuery = ddbMock.commandCalls(QueryCommand)[0].args[0].input;
    expect(historyQuery).toMatchObject({ ScanIndexForward: false, KeyConditionExpression: 'pk = :pk AND begins_with(sk, :history)' });
    expect(ddbMock.commandCalls(QueryCommand)[1].args[0].input.ExclusiveStartKey).toEqual({ pk: 'thing#pump-7', sk: newer.sk });
    const text = formatStatus(report).join('\n');
    expect(text).toContain('reason     NO_CSR_RESPONSE: no csr_res after 4 requests');
    expect(text).toContain('history (2, newest first)');
  });

  it('for the local runtime prints the execution ARN and how to trace it instead of a console URL', async () => {
    const current = record('pump-9', 'SUCCEEDED');
    ddbMock.on(GetCommand).resolves({ Item: current });
    ddbMock.on(QueryCommand).resolves({ Items: [] });

    const report = await status({ ...deps(), local: true }, { thing: 'pump-9', limit: 50 });

    expect(report.kind === 'thing' && report.current?.link).toBe(`rotor trace --local --execution ${current.executionArn}`);
  });

  it('for a local runtime that serves the console links each execution to its console page', async () => {
    const current = record('pump-9', 'FAILED');
    ddbMock.on(GetCommand).resolves({ Item: current });
    ddbMock.on(QueryCommand).resolves({ Items: [] });

    const report = await status({ ...deps(), local: true, consoleBase: 'http://127.0.0.1:4566' }, { thing: 'pump-9', limit: 50 });

    expect(report.kind === 'thing' && report.current?.link).toBe(`http://127.0.0.1:4566/console/executions/${current.executionArn}`);
  });

  it('an unknown thing is "not found", not an empty table', async () => {
    ddbMock.on(GetCommand).resolves({});
    ddbMock.on(QueryCommand).resolves({ Items: [] });
    await expect(status(deps(), { thing: 'ghost', limit: 50 })).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('rotor status: arguments and exit codes', () => {
  it('rejects an unknown status and an invalid thing name as usage errors', () => {
    expect(parseStatus('failed')).toBe('FAILED');
    expect(parseStatus('in-progress')).toBe('IN_PROGRESS');
    expect(() => parseStatus('broken')).toThrow(UsageError);
  });

  it.each([
    [['status', '--status', 'broken'], /--status must be one of IN_PROGRESS, SUCCEEDED, FAILED/],
    [['status', '--thing', 'bad name!'], /not a valid thing name/],
    [['status', '--thing', 'a', '--status', 'FAILED'], /either --thing or --status/],
    [['status', '--limit', '0'], /--limit must be a whole number/],
  ])('%j exits 2 with one line and connects to nothing', async (argv, message) => {
    const io = capturedIo();
    const target = fakeTarget();
    const code = await runOperatorCli(argv, operatorDeps(target, io));
    expect(code).toBe(2);
    expect(io.stderr).toHaveLength(1);
    expect(io.stderr[0]).toMatch(message);
    expect(target.seen).toHaveLength(0);
  });

  it('an unknown option is a usage error (2)', async () => {
    const io = capturedIo();
    expect(await runOperatorCli(['status', '--colour'], operatorDeps(fakeTarget(), io))).toBe(2);
    expect(io.stderr.join('\n')).toContain("unknown option '--colour'");
  });

  it('a missing table is one line and exit 3; missing credentials one line and exit 1', async () => {
    const io = capturedIo();
    ddbMock.on(QueryCommand).rejects(Object.assign(new Error('Requested resource not found'), { name: 'ResourceNotFoundException' }));
    expect(await runOperatorCli(['status'], operatorDeps(fakeTarget(), io))).toBe(3);
    expect(io.stderr).toEqual(['rotor: table rotor-rotations not found in eu-west-1: pass --table NAME or --name-prefix PREFIX (Requested resource not found)']);

    const io2 = capturedIo();
    ddbMock.reset();
    ddbMock.on(QueryCommand).rejects(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }));
    expect(await runOperatorCli(['status'], operatorDeps(fakeTarget(), io2))).toBe(1);
    expect(io2.stderr).toHaveLength(1);
    expect(io2.stderr[0]).toMatch(/^rotor: no AWS credentials found/);
  });

  it('an unreachable endpoint is one line naming it', async () => {
    const io = capturedIo();
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4566'), { code: 'ECONNREFUSED' });
    ddbMock.on(QueryCommand).rejects(refused);
    const target = fakeTarget({ kind: 'local', endpoint: 'http://127.0.0.1:4566' });
    expect(await runOperatorCli(['status', '--local'], operatorDeps(target, io))).toBe(1);
    expect(io.stderr).toEqual(['rotor: cannot reach http://127.0.0.1:4566 (ECONNREFUSED)']);
  });

  it('--json prints the report as JSON', async () => {
    ddbMock.on(QueryCommand, { Select: 'COUNT' }).resolves({ Count: 0 }).on(QueryCommand, { ScanIndexForward: false }).resolves({ Items: [] });
    const io = capturedIo();
    expect(await runOperatorCli(['status', '--json'], operatorDeps(fakeTarget(), io))).toBe(0);
    const printed = JSON.parse(io.stdout.join('\n'));
    expect(printed).toMatchObject({ kind: 'fleet', counts: { IN_PROGRESS: 0, SUCCEEDED: 0, FAILED: 0 }, total: 0, rows: [], truncated: false });
    expect(printed.fleet).toMatchObject({ started: 0, inFlight: 0, succeeded: 0, failed: 0, failuresByReason: {}, deferred: { total: 0, byDay: {} }, truncated: false });
  });
});

describe('rotor status: fleet figures', () => {
  const NOW = new Date('2026-11-30T12:00:00.000Z');

  it('adds failures by reason, the oldest in flight and the pacing queue from the index and the budget item, with no Scan', async () => {
    // Prepare: FAILED reasons over two pages; the oldest in-flight start is not the first listed.
    const page2Key = { pk: 'thing#t-9', sk: 'current', status: 'FAILED', updatedAt: '2026-11-30T11:00:00Z' };
    ddbMock
      .on(QueryCommand, countQuery('IN_PROGRESS')).resolves({ Count: 2 })
      .on(QueryCommand, countQuery('SUCCEEDED')).resolves({ Count: 40 })
      .on(QueryCommand, countQuery('FAILED')).resolves({ Count: 3 })
      .on(QueryCommand, { ScanIndexForward: false }).resolves({ Items: [] })
      .on(QueryCommand, { ExpressionAttributeValues: { ':status': 'FAILED' }, ProjectionExpression: '#a0' }).resolves({ Items: [{ reason: 'NO_ACK' }, { reason: 'NO_CSR_RESPONSE' }], LastEvaluatedKey: page2Key })
      .on(QueryCommand, { ExpressionAttributeValues: { ':status': 'FAILED' }, ExclusiveStartKey: page2Key }).resolves({ Items: [{ reason: 'NO_ACK' }] })
      .on(QueryCommand, { ExpressionAttributeValues: { ':status': 'IN_PROGRESS' }, ProjectionExpression: '#a0, #a1' }).resolves({
        Items: [
          { thingName: 'pump-2', startedAt: '2026-11-30T11:58:00.000Z' },
          { thingName: 'pump-1', startedAt: '2026-11-30T11:30:00.000Z' },
        ],
      });
    ddbMock.on(GetCommand, { Key: { pk: 'pacing', sk: 'budget' } }).resolves({
      Item: {
        pk: 'pacing',
        sk: 'budget',
        state: JSON.stringify({
          tatMs: { 'iot:ListPrincipalThings': NOW.getTime() + 2_500, 'iot:DeleteCertificate': NOW.getTime() - 60_000 },
          share: { 'iot:ListPrincipalThings': 0.7 },
          lastCutMs: { 'iot:ListPrincipalThings': NOW.getTime() - 4_000 },
          lastGrowMs: {},
          startTatMs: NOW.getTime(),
        }),
      },
    });

    // The renewal calendar: two days listed, one already emptied by the sweep.
    ddbMock.on(GetCommand, { Key: { pk: 'calendar', sk: 'days' } }).resolves({ Item: { pk: 'calendar', sk: 'days', days: new Set(['2026-12-02', '2026-12-01', '2026-11-29']) } });
    ddbMock
      .on(QueryCommand, { ExpressionAttributeValues: { ':pk': 'deferred#2026-11-29' }, Select: 'COUNT' }).resolves({ Count: 0 })
      .on(QueryCommand, { ExpressionAttributeValues: { ':pk': 'deferred#2026-12-01' }, Select: 'COUNT' }).resolves({ Count: 700, LastEvaluatedKey: { pk: 'x' } })
      .on(QueryCommand, { ExpressionAttributeValues: { ':pk': 'deferred#2026-12-01' }, Select: 'COUNT', ExclusiveStartKey: { pk: 'x' } }).resolves({ Count: 300 })
      .on(QueryCommand, { ExpressionAttributeValues: { ':pk': 'deferred#2026-12-01' }, Limit: 1 }).resolves({ Items: [{ startAt: '2026-12-01T00:03:00.000Z' }] })
      .on(QueryCommand, { ExpressionAttributeValues: { ':pk': 'deferred#2026-12-02' }, Select: 'COUNT' }).resolves({ Count: 12 });

    // Act
    const report = await status({ ...deps(), now: () => NOW, throttledCalls: async () => ({ total: 5, byApi: { 'iot:ListPrincipalThings': 5 } }) }, { limit: 10 });

    // Assess
    if (report.kind !== 'fleet') throw new Error('expected the fleet report');
    expect(report.fleet).toEqual({
      started: 45,
      inFlight: 2,
      succeeded: 40,
      failed: 3,
      failuresByReason: { NO_ACK: 2, NO_CSR_RESPONSE: 1 },
      oldestInFlight: { thing: 'pump-1', startedAt: '2026-11-30T11:30:00.000Z', ageSeconds: 1_800 },
      pacing: {
        'iot:ListPrincipalThings': { queuedAheadS: 2.5, share: 0.7, lastCutAt: '2026-11-30T11:59:56.000Z' },
        'iot:DeleteCertificate': { queuedAheadS: 0, share: 1 },
      },
      throttledCalls: { total: 5, byApi: { 'iot:ListPrincipalThings': 5 } },
      deferred: { total: 1_012, byDay: { '2026-12-01': 1_000, '2026-12-02': 12 }, nextAt: '2026-12-01T00:03:00.000Z' },
      truncated: false,
      sources: expect.objectContaining({ throttled: "the local runtime's edge (/_rotor/quotas)" }),
    });
    // Every Query is on the by-status index or one of the calendar's day partitions: never a Scan of the table.
    for (const call of ddbMock.commandCalls(QueryCommand)) {
      const input = call.args[0].input;
      expect(input.IndexName === 'by-status' || String(input.ExpressionAttributeValues?.[':pk']).startsWith('deferred#')).toBe(true);
    }
    const text = formatStatus(report).join('\n');
    expect(text).toContain('started 45   in flight 2   succeeded 40   failed 3');
    expect(text).toContain('oldest in flight    30 min (pump-1, since 2026-11-30T11:30:00.000Z)');
    expect(text).toContain('failures by reason  NO_ACK 2, NO_CSR_RESPONSE 1');
    expect(text).toContain('pacing queue        iot:ListPrincipalThings 2.5 s ahead, 70% of budget (cut 2026-11-30T11:59:56.000Z)');
    expect(text).toContain('throttled calls     5 (iot:ListPrincipalThings 5)');
    expect(text).toContain('deferred starts     1012 (2026-12-01 1000, 2026-12-02 12); next due 2026-12-01T00:03:00.000Z');
  });

  it('reads no record when nothing is in flight or failed, and says where throttles are counted on AWS', async () => {
    ddbMock.on(QueryCommand, { Select: 'COUNT' }).resolves({ Count: 0 }).on(QueryCommand, { ScanIndexForward: false }).resolves({ Items: [] });
    const report = await status({ ...deps(), now: () => NOW }, { limit: 10 });
    if (report.kind !== 'fleet') throw new Error('expected the fleet report');
    expect(ddbMock.commandCalls(QueryCommand).every((call) => call.args[0].input.Select === 'COUNT' || call.args[0].input.ScanIndexForward === false)).toBe(true);
    expect(formatStatus(report).join('\n')).toContain('throttled calls     see CloudWatch metric Rotor ThrottledCalls (dimension Api), on the fleet dashboard');
  });

  it('bounds each Query and says the figures are a lower bound past it', async () => {
    ddbMock
      .on(QueryCommand, { Select: 'COUNT' }).resolves({ Count: 0 })
      .on(QueryCommand, countQuery('FAILED')).resolves({ Count: 5_000 })
      .on(QueryCommand, { ScanIndexForward: false }).resolves({ Items: [] })
      .on(QueryCommand, { ProjectionExpression: '#a0' }).resolves({ Items: [{ reason: 'NO_ACK' }], LastEvaluatedKey: { pk: 'x' } });
    const { fleetFigures } = await import('../../../cli/operator/fleet.js');
    const fleet = await fleetFigures({ ddb: deps().ddb, tableName: 'rotor-rotations', now: () => NOW, maxPages: 3 }, { IN_PROGRESS: 0, SUCCEEDED: 0, FAILED: 5_000 });
    expect(fleet).toMatchObject({ failuresByReason: { NO_ACK: 3 }, truncated: true });
    expect(ddbMock.commandCalls(QueryCommand, { ProjectionExpression: '#a0' })).toHaveLength(3);
  });
});
