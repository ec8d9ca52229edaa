import { DescribeExecutionCommand, ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { runOperatorCli } from '../../../cli/operator/index.js';
import { executeRetries, planRetries, SkipReason, validateRetryOptions } from '../../../cli/operator/retry.js';
import { UsageError } from '../../../cli/operator/exit-codes.js';
import { retryExecutionName } from '../../../domain/naming.js';
import { capturedIo, fakeClients, fakeTarget, operatorDeps, record, STATE_MACHINE_ARN } from './fake-target.js';

const ddbMock = mockClient(DynamoDBDocumentClient);
const sfnMock = mockClient(SFNClient);
beforeEach(() => {
  ddbMock.reset();
  sfnMock.reset();
});

function deps() {
  const clients = fakeClients();
  return { ddb: clients.ddb, sfn: clients.sfn, tableName: 'rotor-rotations' };
}

/** The by-status index holds these FAILED records and no IN_PROGRESS one. */
function failedOnly(items: object[]): void {
  ddbMock.on(QueryCommand).resolves({ Items: [] });
  ddbMock.on(QueryCommand, { ExpressionAttributeValues: { ':status': 'FAILED' } }).resolves({ Items: items });
}

const alreadyExists = () => new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} });

describe('rotor retry: which devices', () => {
  it('plans a fresh execution for FAILED devices and skips IN_PROGRESS and SUCCEEDED ones with a reason', async () => {
    const failed = record('pump-1', 'FAILED');
    const running = record('pump-2', 'IN_PROGRESS');
    ddbMock.on(GetCommand, { Key: { pk: 'thing#pump-1', sk: 'current' } }).resolves({ Item: failed });
    ddbMock.on(GetCommand, { Key: { pk: 'thing#pump-2', sk: 'current' } }).resolves({ Item: running });
    ddbMock.on(GetCommand, { Key: { pk: 'thing#pump-3', sk: 'current' } }).resolves({ Item: record('pump-3', 'SUCCEEDED') });
    sfnMock.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' });

    const one = await planRetries(deps(), { thing: 'pump-1', allFailed: false });
    const two = await planRetries(deps(), { thing: 'pump-2', allFailed: false });
    const three = await planRetries(deps(), { thing: 'pump-3', allFailed: false });

    expect(one.toStart).toEqual([
      {
        thing: 'pump-1',
        failedRotationId: failed.rotationId,
        executionName: retryExecutionName('pump-1', failed.oldCertificateId, failed.rotationId),
        input: { thingName: 'pump-1', certificateId: failed.oldCertificateId, trigger: 'retry' },
        failedStep: 'Request CSR',
        failedReason: 'NO_CSR_RESPONSE',
      },
    ]);
    expect(two.toStart).toEqual([]);
    expect(two.skipped).toEqual([{ thing: 'pump-2', reason: SkipReason.InProgress, detail: `rotation ${running.rotationId} is in progress (Deliver certificate)` }]);
    expect(three.skipped[0].reason).toBe(SkipReason.NotFailed);
  });

  it.each(['FAILED', 'ABORTED', 'TIMED_OUT'] as const)('offers an IN_PROGRESS record whose execution ended %s: the retry releases the abandoned claim', async (status) => {
    const stuck = record('pump-4', 'IN_PROGRESS', { step: 'Record failure' });
    ddbMock.on(GetCommand).resolves({ Item: stuck });
    sfnMock.on(DescribeExecutionCommand, { executionArn: stuck.executionArn }).resolves({ status });

    const plan = await planRetries(deps(), { thing: 'pump-4', allFailed: false });

    expect(plan.skipped).toEqual([]);
    expect(plan.toStart).toEqual([
      expect.objectContaining({
        thing: 'pump-4',
        failedRotationId: stuck.rotationId,
        executionName: retryExecutionName('pump-4', stuck.oldCertificateId, stuck.rotationId),
        failedStep: 'Record failure',
        failedReason: `EXECUTION_ABANDONED (execution ${status})`,
      }),
    ]);
  });

  it('--all-failed reads every FAILED record from the by-status index, all pages, and the abandoned IN_PROGRESS ones', async () => {
    ddbMock
      .on(QueryCommand, { IndexName: 'by-status', ExpressionAttributeValues: { ':status': 'FAILED' } })
      .resolvesOnce({ Items: [record('a', 'FAILED')], LastEvaluatedKey: { pk: 'thing#a' } })
      .resolvesOnce({ Items: [record('b', 'FAILED')] });
    const live = record('c', 'IN_PROGRESS');
    const abandoned = { ...record('d', 'IN_PROGRESS'), executionArn: `${STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:d-stopped` };
    ddbMock.on(QueryCommand, { IndexName: 'by-status', ExpressionAttributeValues: { ':status': 'IN_PROGRESS' } }).resolves({ Items: [live, abandoned] });
    sfnMock.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' });
    sfnMock.on(DescribeExecutionCommand, { executionArn: abandoned.executionArn }).resolves({ status: 'ABORTED' });

    const plan = await planRetries(deps(), { allFailed: true });

    expect(plan.toStart.map((p) => p.thing)).toEqual(['a', 'b', 'd']);
    // A live rotation is simply not a candidate for --all-failed.
    expect(plan.skipped).toEqual([]);
  });

  it('resumes at Retire a rotation that failed after the device acked over its new certificate (RETIRE_FAILED)', async () => {
    const acked = 'c'.repeat(64);
    const retireFailed = record('pump-5', 'FAILED', { step: 'Retire old certificate', reason: 'RETIRE_FAILED', leftoverCertificateId: acked, ackedCertificateId: acked });
    const neverAcked = record('pump-6', 'FAILED', { step: 'Roll back', reason: 'ROLLBACK_FAILED', leftoverCertificateId: acked });
    ddbMock.on(GetCommand, { Key: { pk: 'thing#pump-5', sk: 'current' } }).resolves({ Item: retireFailed });
    ddbMock.on(GetCommand, { Key: { pk: 'thing#pump-6', sk: 'current' } }).resolves({ Item: neverAcked });

    const resumed = await planRetries(deps(), { thing: 'pump-5', allFailed: false });
    const fresh = await planRetries(deps(), { thing: 'pump-6', allFailed: false });

    expect(resumed.toStart[0].input).toEqual({ thingName: 'pump-5', certificateId: retireFailed.oldCertificateId, trigger: 'retry', resume: { newCertificateId: acked } });
    expect(fresh.toStart[0].input).toEqual({ thingName: 'pump-6', certificateId: neverAcked.oldCertificateId, trigger: 'retry' });
  });

  it('refuses --thing with --all-failed, and neither', () => {
    expect(() => validateRetryOptions({ thing: 'a', allFailed: true })).toThrow(UsageError);
    expect(() => validateRetryOptions({})).toThrow(/--thing NAME or --all-failed/);
  });
});

describe('rotor retry: starting', () => {
  it('starts the deterministic execution; a second retry hits ExecutionAlreadyExists and is skipped as already retried', async () => {
    const failed = record('pump-5', 'FAILED');
    ddbMock.on(GetCommand).resolves({ Item: failed });
    const name = retryExecutionName('pump-5', failed.oldCertificateId, failed.rotationId);
    sfnMock
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: `${STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:${name}`, startDate: new Date() })
      .rejects(alreadyExists());

    const plan = await planRetries(deps(), { thing: 'pump-5', allFailed: false });
    const first = await executeRetries(deps(), STATE_MACHINE_ARN, plan, { concurrency: 2 });
    const second = await executeRetries(deps(), STATE_MACHINE_ARN, await planRetries(deps(), { thing: 'pump-5', allFailed: false }), { concurrency: 2 });

    expect(first).toEqual([expect.objectContaining({ outcome: 'started', executionName: name })]);
    expect(second).toEqual([expect.objectContaining({ outcome: 'skipped', reason: SkipReason.AlreadyRetried })]);
    const calls = sfnMock.commandCalls(StartExecutionCommand);
    expect(calls).toHaveLength(2);
    for (const call of calls) {
      expect(call.args[0].input).toEqual({
        stateMachineArn: STATE_MACHINE_ARN,
        name,
        input: JSON.stringify({ thingName: 'pump-5', certificateId: failed.oldCertificateId, trigger: 'retry' }),
      });
    }
  });

  it('a retry whose execution is still running is found with DescribeExecution and not started again', async () => {
    // Step Functions would answer a same-name, same-input StartExecution with the running execution, not an error.
    const failed = record('pump-6', 'FAILED');
    ddbMock.on(GetCommand).resolves({ Item: failed });
    const name = retryExecutionName('pump-6', failed.oldCertificateId, failed.rotationId);
    sfnMock.on(DescribeExecutionCommand, { executionArn: `arn:aws:states:eu-west-1:123456789012:execution:rotor-rotate-device:${name}` }).resolves({ status: 'RUNNING' });

    const results = await executeRetries(deps(), STATE_MACHINE_ARN, await planRetries(deps(), { thing: 'pump-6', allFailed: false }), { concurrency: 1 });

    expect(results).toEqual([expect.objectContaining({ outcome: 'skipped', reason: SkipReason.AlreadyRetried, detail: expect.stringContaining('(RUNNING)') })]);
    expect(sfnMock.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it('backs off on ThrottlingException and still starts; other errors are reported per device', async () => {
    failedOnly([record('t1', 'FAILED'), record('t2', 'FAILED')]);
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    const sleeps: number[] = [];
    let t1Calls = 0;
    sfnMock.on(StartExecutionCommand).callsFake(async (input: { input: string }) => {
      if (input.input.includes('"t2"')) throw Object.assign(new Error('not allowed'), { name: 'AccessDeniedException' });
      t1Calls += 1;
      if (t1Calls <= 2) throw throttled;
      return { executionArn: 'arn:aws:states:eu-west-1:1:execution:m:t1' };
    });

    const plan = await planRetries(deps(), { allFailed: true });
    const results = await executeRetries(deps(), STATE_MACHINE_ARN, plan, {
      concurrency: 1,
      backoff: { sleep: async (ms) => void sleeps.push(ms), random: () => 1, baseMs: 100 },
    });

    expect(results[0]).toMatchObject({ thing: 't1', outcome: 'started' });
    expect(results[1]).toMatchObject({ thing: 't2', outcome: 'failed', error: 'access denied: not allowed' });
    expect(sleeps).toEqual([100, 200]);
    expect(t1Calls).toBe(3);
  });

  it('keeps at most --concurrency StartExecution calls in flight', async () => {
    failedOnly(Array.from({ length: 12 }, (_, i) => record(`c${i}`, 'FAILED')));
    let inFlight = 0;
    let peak = 0;
    sfnMock.on(StartExecutionCommand).callsFake(async () => {
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight -= 1;
      return { executionArn: 'arn' };
    });

    const results = await executeRetries(deps(), STATE_MACHINE_ARN, await planRetries(deps(), { allFailed: true }), { concurrency: 3 });

    expect(results.filter((r) => r.outcome === 'started')).toHaveLength(12);
    expect(peak).toBe(3);
  });
});

describe('rotor retry: the command', () => {
  const twoFailed = () => failedOnly([record('d1', 'FAILED'), record('d2', 'FAILED')]);

  it('--dry-run lists what would start and starts nothing', async () => {
    twoFailed();
    const io = capturedIo();

    const code = await runOperatorCli(['retry', '--all-failed', '--dry-run'], operatorDeps(fakeTarget(), io));

    expect(code).toBe(0);
    expect(sfnMock.commandCalls(StartExecutionCommand)).toHaveLength(0);
    expect(io.stdout[0]).toBe('would start 2 execution(s):');
    expect(io.stdout.at(-1)).toBe('dry run: 2 would start, 0 skipped; nothing was started');
  });

  it('without --yes and without a terminal it refuses (exit 2) and starts nothing', async () => {
    twoFailed();
    const io = capturedIo({ interactive: false });

    const code = await runOperatorCli(['retry', '--all-failed'], operatorDeps(fakeTarget(), io));

    expect(code).toBe(2);
    expect(io.stderr).toEqual(['rotor: this would start 2 executions: re-run with --yes to confirm (or --dry-run to see the list)']);
    expect(sfnMock.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it('on a terminal it asks, and a "no" starts nothing', async () => {
    twoFailed();
    const io = capturedIo({ interactive: true, answer: false });

    const code = await runOperatorCli(['retry', '--all-failed'], operatorDeps(fakeTarget(), io));

    expect(code).toBe(0);
    expect(io.questions).toEqual(['Start 2 rotate-device executions?']);
    expect(sfnMock.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it('--yes starts them and prints a summary; a failed start makes the exit code 1', async () => {
    twoFailed();
    sfnMock.on(StartExecutionCommand).callsFake(async (input: { input: string }) => {
      if (input.input.includes('"d2"')) throw alreadyExists();
      return { executionArn: 'arn:aws:states:eu-west-1:1:execution:m:d1' };
    });
    const io = capturedIo();

    const code = await runOperatorCli(['retry', '--all-failed', '--yes'], operatorDeps(fakeTarget(), io));

    expect(code).toBe(0);
    expect(io.stdout.at(-1)).toBe('1 started, 1 skipped (ALREADY_RETRIED 1), 0 failed');

    sfnMock.reset();
    sfnMock.on(StartExecutionCommand).rejects(Object.assign(new Error('boom'), { name: 'InternalServerException' }));
    const io2 = capturedIo();
    expect(await runOperatorCli(['retry', '--all-failed', '--yes', '--json'], operatorDeps(fakeTarget(), io2))).toBe(1);
    expect(JSON.parse(io2.stdout.join('\n'))).toMatchObject({ started: 0, failed: 2, skipped: 0 });
  });

  it('one device needs no confirmation; an unknown thing exits 3', async () => {
    ddbMock.on(GetCommand, { Key: { pk: 'thing#solo', sk: 'current' } }).resolves({ Item: record('solo', 'FAILED') });
    ddbMock.on(GetCommand, { Key: { pk: 'thing#ghost', sk: 'current' } }).resolves({});
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:aws:states:eu-west-1:1:execution:m:solo' });
    const io = capturedIo();

    expect(await runOperatorCli(['retry', '--thing', 'solo'], operatorDeps(fakeTarget(), io))).toBe(0);
    expect(io.stdout[0]).toBe('started  solo: arn:aws:states:eu-west-1:1:execution:m:solo');

    const io2 = capturedIo();
    expect(await runOperatorCli(['retry', '--thing', 'ghost'], operatorDeps(fakeTarget(), io2))).toBe(3);
    expect(io2.stderr).toEqual(['rotor: no rotation recorded for thing ghost in table rotor-rotations']);
  });

  it('shows progress for many devices', async () => {
    failedOnly(Array.from({ length: 10 }, (_, i) => record(`p${i}`, 'FAILED')));
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn' });
    const io = capturedIo();
    expect(await runOperatorCli(['retry', '--all-failed', '--yes'], operatorDeps(fakeTarget(), io))).toBe(0);
    expect(io.ticks).toBe(10);
  });
});
