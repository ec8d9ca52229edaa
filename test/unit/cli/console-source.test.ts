import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeExecutionCommand, DescribeStateMachineCommand, ExecutionDoesNotExist, GetExecutionHistoryCommand, ListExecutionsCommand, type HistoryEvent } from '@aws-sdk/client-sfn';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { bucketWidthMs, executionSeries, RuntimeConsoleSource } from '../../../cli/console/console-source.js';
import fixture from './fixtures/failed-execution-history.json';
import { fakeClients, STATE_MACHINE_ARN } from './fake-target.js';

/** The console's data source: which public API answers what, and how the answers become the pages' data. */
const definition = readFileSync(join(__dirname, '../../../statemachines/rotate-device.asl.json'), 'utf8').replace(/\$\{[A-Za-z]+\}/g, '1');
const events = (fixture.events as unknown as (HistoryEvent & { timestamp: string })[]).map((e) => ({ ...e, timestamp: new Date(e.timestamp) })) as HistoryEvent[];

describe('RuntimeConsoleSource', () => {
  const clients = fakeClients();
  const sfn = mockClient(clients.sfn);
  const ddb = mockClient(clients.ddb);
  const source = new RuntimeConsoleSource({ sfn: clients.sfn, ddb: clients.ddb, tableName: 'rotor-rotations', stateMachineArn: STATE_MACHINE_ARN });

  beforeEach(() => {
    sfn.reset();
    ddb.reset();
  });

  it('builds an execution page from DescribeExecution, DescribeStateMachine and GetExecutionHistory with its data', async () => {
    // Prepare
    sfn.on(DescribeExecutionCommand).resolves({ executionArn: fixture.executionArn, stateMachineArn: STATE_MACHINE_ARN, name: 'pump-7-a1', status: 'FAILED', startDate: new Date('2025-05-01T10:00:00Z'), input: '{}', error: 'NO_CSR_RESPONSE' });
    sfn.on(DescribeStateMachineCommand).resolves({ stateMachineArn: STATE_MACHINE_ARN, name: 'rotor-rotate-device', definition });
    sfn.on(GetExecutionHistoryCommand).resolves({ events });
    // Act
    const view = await source.execution(fixture.executionArn);
    // Assess
    expect(sfn.commandCalls(GetExecutionHistoryCommand)[0].args[0].input).toMatchObject({ executionArn: fixture.executionArn, includeExecutionData: true });
    expect(view?.path.states['Request CSR'].outcome).toBe('caught');
    expect(view?.path.states['Issue certificate'].outcome).toBe('not-reached');
    expect(view?.failure).toMatchObject({ state: 'Request CSR', error: 'States.Timeout' });
    expect(view?.events[0]).toMatchObject({ id: 1, type: 'ExecutionStarted', timestamp: '2025-05-01T10:00:00.000Z' });
    // Rotor's error causes are JSON from Lambda: the page gets the message.
    expect(view?.path.states['Roll back'].errors[0].cause).toBe('Rate exceeded');
  });

  it('answers undefined for an execution that does not exist', async () => {
    sfn.on(DescribeExecutionCommand).rejects(new ExecutionDoesNotExist({ message: 'no', $metadata: {} }));
    expect(await source.execution(fixture.executionArn)).toBeUndefined();
  });

  it('filters the executions list by part of the name and by start time, and says when more matched', async () => {
    const at = (s: number): Date => new Date(Date.UTC(2025, 0, 1, 0, 0, s));
    sfn.on(ListExecutionsCommand).resolves({
      executions: [
        { executionArn: 'a:1', name: 'pump-7-a1', stateMachineArn: STATE_MACHINE_ARN, status: 'FAILED', startDate: at(30) },
        { executionArn: 'a:2', name: 'pump-8-a2', stateMachineArn: STATE_MACHINE_ARN, status: 'FAILED', startDate: at(20) },
        { executionArn: 'a:3', name: 'PUMP-7-a3', stateMachineArn: STATE_MACHINE_ARN, status: 'FAILED', startDate: at(10) },
      ],
    });
    const list = await source.executions({ status: 'FAILED', thing: 'pump-7', since: at(15).toISOString(), limit: 10 });
    expect(sfn.commandCalls(ListExecutionsCommand)[0].args[0].input).toMatchObject({ stateMachineArn: STATE_MACHINE_ARN, statusFilter: 'FAILED' });
    expect(list).toEqual({ executions: [expect.objectContaining({ name: 'pump-7-a1' })], truncated: false });
    expect((await source.executions({ limit: 2 })).truncated).toBe(true);
  });

  it('counts the fleet with rotor status\'s by-status queries and the executions over time', async () => {
    ddb.on(QueryCommand).callsFake((input: { Select?: string; ExpressionAttributeValues: Record<string, string> }) => {
      const status = input.ExpressionAttributeValues[':status'];
      if (input.Select === 'COUNT') return { Count: status === 'FAILED' ? 2 : status === 'IN_PROGRESS' ? 1 : 0 };
      if (status === 'FAILED') return { Items: [{ reason: 'NO_ACK' }, { reason: 'CSR_REJECTED' }] };
      if (status === 'IN_PROGRESS') return { Items: [{ step: 'Deliver certificate' }] };
      return { Items: [] };
    });
    sfn.on(ListExecutionsCommand).resolves({ executions: [{ executionArn: 'a:1', name: 'x', stateMachineArn: STATE_MACHINE_ARN, status: 'RUNNING', startDate: new Date() }] });
    const fleet = await source.fleet();
    expect(fleet.counts).toEqual({ IN_PROGRESS: 1, SUCCEEDED: 0, FAILED: 2 });
    expect(fleet.total).toBe(3);
    expect(fleet.inFlightByStep).toEqual({ 'Deliver certificate': 1 });
    expect(fleet.failuresByReason).toEqual({ NO_ACK: 1, CSR_REJECTED: 1 });
    expect(fleet.executions).toEqual({ total: 1, byStatus: { RUNNING: 1 } });
  });
});

describe('executionSeries', () => {
  it('puts each start and stop in its bucket: stops that are not successes count as failed', () => {
    const t0 = Date.UTC(2025, 0, 1);
    const iso = (ms: number): string => new Date(t0 + ms).toISOString();
    const series = executionSeries(
      [
        { executionArn: 'a', name: 'a', status: 'SUCCEEDED', startDate: iso(0), stopDate: iso(9_500) },
        { executionArn: 'b', name: 'b', status: 'TIMED_OUT', startDate: iso(500), stopDate: iso(3_000) },
        { executionArn: 'c', name: 'c', status: 'RUNNING', startDate: iso(1_200) },
      ],
      t0 + 10_000,
    );
    expect(series.bucketMs).toBe(1_000);
    expect(series.buckets.reduce((n, b) => n + b.started, 0)).toBe(3);
    expect(series.buckets.find((b) => b.succeeded)?.at).toBe(iso(9_000));
    expect(series.buckets.find((b) => b.failed)?.at).toBe(iso(3_000));
    expect(executionSeries([], t0)).toEqual({ bucketMs: 1_000, buckets: [] });
  });

  it('keeps about 40 buckets whatever the span', () => {
    expect(bucketWidthMs(30_000)).toBe(1_000);
    expect(bucketWidthMs(3_600_000)).toBe(120_000);
    expect(3_600_000 / bucketWidthMs(3_600_000)).toBeLessThanOrEqual(40);
  });
});
