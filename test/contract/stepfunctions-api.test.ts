import { ConditionalCheckFailedException, DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  ListExecutionsCommand,
  RedriveExecutionCommand,
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { type Harness, ROLE, eventually, fnArn, startHarness } from '../unit/local/stepfunctions/sfn-harness.js';

async function create(h: Harness, name: string, definition: object): Promise<string> {
  const out = await h.sfn.send(new CreateStateMachineCommand({ name, roleArn: ROLE, definition: JSON.stringify(definition) }));
  return out.stateMachineArn!;
}

async function run(h: Harness, stateMachineArn: string, input: object, name?: string) {
  const { executionArn } = await h.sfn.send(new StartExecutionCommand({ stateMachineArn, input: JSON.stringify(input), name }));
  await h.service.waitForExecution(executionArn!);
  return h.sfn.send(new DescribeExecutionCommand({ executionArn }));
}

async function errorOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as Error).name;
  }
  throw new Error('expected the call to fail');
}

describe('local Step Functions through @aws-sdk/client-sfn', () => {
  let h: Harness;
  // Each test starts its own harness (a worker-thread Lambda pool and the engine): seconds on a
  // loaded 2-core machine, past jest's default 5 s. Nothing here asserts on time.
  jest.setTimeout(30_000);
  afterEach(async () => h.close());

  it('runs a Pass → Choice → Wait flow with intrinsics, and a one-hour wait takes milliseconds', async () => {
    // Prepare
    h = await startHarness({ scale: 0.00001 });
    const arn = await create(h, 'flow', {
      StartAt: 'Shape',
      States: {
        Shape: {
          Type: 'Pass',
          Parameters: {
            'greeting.$': "States.Format('hello {} #{}', $.who, $.n)",
            'parsed.$': 'States.StringToJson($.raw)',
            'list.$': 'States.Array($.n, 2)',
            'sum.$': 'States.MathAdd($.n, 5)',
            'id.$': 'States.UUID()',
            'exec.$': '$$.Execution.Name',
            wait: 3600,
          },
          ResultPath: '$.shaped',
          Next: 'Route',
        },
        Route: {
          Type: 'Choice',
          Choices: [
            { And: [{ Variable: '$.shaped.sum', NumericGreaterThan: 100 }], Next: 'Nope' },
            { Variable: '$.shaped.parsed.kind', StringMatches: 'lo*g', Next: 'Hold' },
          ],
          Default: 'Nope',
        },
        Hold: { Type: 'Wait', SecondsPath: '$.shaped.wait', OutputPath: '$.shaped', Next: 'Done' },
        Done: { Type: 'Succeed' },
        Nope: { Type: 'Fail', Error: 'WrongBranch' },
      },
    });

    // Act
    const started = Date.now();
    const result = await run(h, arn, { who: 'rotor', n: 3, raw: '{"kind":"long"}' }, 'flow-1');
    const elapsed = Date.now() - started;

    // Assess
    expect(result.status).toBe('SUCCEEDED');
    const output = JSON.parse(result.output!);
    expect(output).toMatchObject({ greeting: 'hello rotor #3', parsed: { kind: 'long' }, list: [3, 2], sum: 8, exec: 'flow-1', wait: 3600 });
    expect(output.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(elapsed).toBeGreaterThanOrEqual(30);
    expect(elapsed).toBeLessThan(2000);
    expect(h.service.statesEntered(result.executionArn!)).toEqual(['Shape', 'Route', 'Hold', 'Done']);
    expect(h.service.stateTransitions(result.executionArn!)).toBe(4);
  });

  it('retries with backoff, MaxDelaySeconds and FULL jitter on the scaled clock, then catches with Assign and $var', async () => {
    // Prepare: random pinned at 0.5 → delays 0.5×10 = 5 s and 0.5×min(30, 20) = 10 s (15 ms at scale 0.001)
    let calls = 0;
    h = await startHarness({
      scale: 0.001,
      random: () => 0.5,
      functions: {
        flaky: (p) => {
          calls++;
          if (calls < 3) throw Object.assign(new Error(`try ${String(p.attempt)}`), { name: 'Boom' });
          return { ok: true, attempt: p.attempt };
        },
        broken: () => {
          throw Object.assign(new Error('no way'), { name: 'Fatal' });
        },
      },
    });
    const arn = await create(h, 'retry', {
      StartAt: 'Flaky',
      States: {
        Flaky: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke',
          Parameters: { FunctionName: fnArn('flaky'), Payload: { 'attempt.$': '$$.State.RetryCount' } },
          ResultSelector: { 'attempt.$': '$.Payload.attempt', 'status.$': '$.StatusCode' },
          ResultPath: '$.flaky',
          Retry: [{ ErrorEquals: ['Boom'], IntervalSeconds: 10, BackoffRate: 3, MaxAttempts: 2, MaxDelaySeconds: 20, JitterStrategy: 'FULL' }],
          Next: 'Broken',
        },
        Broken: {
          Type: 'Task',
          Resource: fnArn('broken'),
          Retry: [{ ErrorEquals: ['Fatal'], MaxAttempts: 0 }],
          Catch: [{ ErrorEquals: ['States.TaskFailed'], ResultPath: '$.error', Assign: { 'failedStep.$': '$$.State.Name', 'why.$': '$.Error' }, Next: 'Report' }],
          End: true,
        },
        Report: { Type: 'Pass', Parameters: { 'step.$': '$failedStep', 'why.$': '$why', 'flaky.$': '$.flaky', 'cause.$': 'States.StringToJson($.error.Cause)' }, End: true },
      },
    });

    // Act
    const started = Date.now();
    const result = await run(h, arn, {});
    const elapsed = Date.now() - started;

    // Assess
    expect(result.status).toBe('SUCCEEDED');
    expect(JSON.parse(result.output!)).toEqual({
      step: 'Broken',
      why: 'Fatal',
      flaky: { attempt: 2, status: 200 },
      cause: { errorMessage: 'no way', errorType: 'Fatal', trace: [] },
    });
    expect(h.invoker.callsTo('flaky').map((p) => p.attempt)).toEqual([0, 1, 2]);
    expect(h.invoker.callsTo('broken')).toHaveLength(1);
    expect(elapsed).toBeGreaterThanOrEqual(14);
    const history = await h.sfn.send(new GetExecutionHistoryCommand({ executionArn: result.executionArn }));
    expect(history.events!.filter((e) => e.type === 'TaskFailed').map((e) => e.taskFailedEventDetails?.error)).toEqual(['Boom', 'Boom']);
    expect(history.events!.filter((e) => e.type === 'LambdaFunctionFailed')[0].lambdaFunctionFailedEventDetails?.error).toBe('Fatal');
  });

  it('waitForTaskToken: retry on States.Timeout gets a new token, the old one gets TaskTimedOut, the new one succeeds', async () => {
    // Prepare
    // 1000 s at scale 0.001: the first attempt times out after 1 s, which leaves the second
    // attempt's answers over HTTP a full second even on a loaded machine.
    h = await startHarness({ scale: 0.001, functions: { ask: () => ({ published: true }) } });
    const arn = await create(h, 'token', {
      StartAt: 'Ask',
      States: {
        Ask: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
          Parameters: { FunctionName: fnArn('ask'), Payload: { 'token.$': '$$.Task.Token', 'attempt.$': '$$.State.RetryCount' } },
          TimeoutSeconds: 1000,
          Retry: [{ ErrorEquals: ['States.Timeout'], IntervalSeconds: 1, MaxAttempts: 1 }],
          ResultPath: '$.answer',
          End: true,
        },
      },
    });

    // Act
    const { executionArn } = await h.sfn.send(new StartExecutionCommand({ stateMachineArn: arn, input: '{"thing":"t1"}' }));
    const second = await eventually(() => h.invoker.callsTo('ask')[1]);
    const first = h.invoker.callsTo('ask')[0];
    const lateAnswer = await errorOf(h.sfn.send(new SendTaskSuccessCommand({ taskToken: String(first.token), output: '{}' })));
    await h.sfn.send(new SendTaskHeartbeatCommand({ taskToken: String(second.token) }));
    await h.sfn.send(new SendTaskSuccessCommand({ taskToken: String(second.token), output: '{"pem":"CSR"}' }));
    const result = await h.service.waitForExecution(executionArn!);

    // Assess
    expect(first.token).not.toEqual(second.token);
    expect(String(second.token).length).toBeGreaterThan(200);
    expect([first.attempt, second.attempt]).toEqual([0, 1]);
    expect(lateAnswer).toBe('TaskTimedOut');
    expect(result.status).toBe('SUCCEEDED');
    expect(JSON.parse(result.output!)).toEqual({ thing: 't1', answer: { pem: 'CSR' } });
    const replay = await errorOf(h.sfn.send(new SendTaskSuccessCommand({ taskToken: String(second.token), output: '{}' })));
    expect(replay).toBe('TaskTimedOut');
    const history = await h.sfn.send(new GetExecutionHistoryCommand({ executionArn }));
    const types = history.events!.map((e) => e.type);
    expect(types.filter((t) => t === 'TaskTimedOut')).toHaveLength(1);
    expect(types.filter((t) => t === 'TaskSubmitted')).toHaveLength(2);
    expect(history.events!.find((e) => e.type === 'TaskScheduled')?.taskScheduledEventDetails).toMatchObject({
      resourceType: 'lambda',
      resource: 'invoke.waitForTaskToken',
      region: 'us-east-1',
      timeoutInSeconds: 1000,
    });
  });

  it('waitForTaskToken: SendTaskFailure fails the task; a timeout with no retry fails the execution; bad tokens get their codes', async () => {
    // Prepare
    h = await startHarness({ scale: 0.0001, functions: { ask: () => null } });
    const definition = (timeout: number) => ({
      StartAt: 'Ask',
      States: {
        Ask: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
          Parameters: { FunctionName: fnArn('ask'), Payload: { 'token.$': '$$.Task.Token' } },
          TimeoutSeconds: timeout,
          End: true,
        },
      },
    });
    const failing = await create(h, 'fails', definition(100000));
    const timing = await create(h, 'times-out', definition(300));

    // Act
    const failed = await h.sfn.send(new StartExecutionCommand({ stateMachineArn: failing }));
    const ask = await eventually(() => h.invoker.callsTo('ask')[0]);
    await h.sfn.send(new SendTaskFailureCommand({ taskToken: String(ask.token), error: 'DeviceReportedError', cause: 'disk full' }));
    const failedResult = await h.service.waitForExecution(failed.executionArn!);
    const timedOut = await run(h, timing, {});

    // Assess
    expect(failedResult).toMatchObject({ status: 'FAILED', error: 'DeviceReportedError', cause: 'disk full' });
    expect(timedOut.status).toBe('FAILED');
    expect(timedOut.error).toBe('States.Timeout');
    expect(await errorOf(h.sfn.send(new SendTaskSuccessCommand({ taskToken: 'not-a-token', output: '{}' })))).toBe('InvalidToken');
    expect(await errorOf(h.sfn.send(new SendTaskSuccessCommand({ taskToken: `AQ${'x'.repeat(256)}`, output: '{}' })))).toBe('TaskDoesNotExist');
    expect(await errorOf(h.sfn.send(new SendTaskHeartbeatCommand({ taskToken: String(ask.token) })))).toBe('TaskTimedOut');
  });

  it('answers a token sent before the invoke returns, and times out a missed heartbeat', async () => {
    // Prepare: the function answers its own token before it returns (a fast device)
    h = await startHarness({
      scale: 0.001,
      functions: {
        eager: async (p) => {
          await h.sfn.send(new SendTaskSuccessCommand({ taskToken: String(p.token), output: '{"early":true}' }));
          return 'sent';
        },
        silent: () => 'sent',
      },
    });
    const task = (fn: string, extra: object) => ({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
      Parameters: { FunctionName: fnArn(fn), Payload: { 'token.$': '$$.Task.Token' } },
      ...extra,
    });
    const arn = await create(h, 'eager', {
      StartAt: 'Eager',
      States: {
        Eager: task('eager', { ResultPath: '$.eager', Next: 'Silent' }),
        Silent: task('silent', {
          HeartbeatSeconds: 5,
          Catch: [{ ErrorEquals: ['States.Timeout'], ResultPath: '$.missed', Next: 'End' }],
          End: true,
        }),
        End: { Type: 'Succeed' },
      },
    });

    // Act
    const result = await run(h, arn, {});

    // Assess
    expect(result.status).toBe('SUCCEEDED');
    expect(JSON.parse(result.output!)).toMatchObject({ eager: { early: true }, missed: { Error: 'States.HeartbeatTimeout' } });
  });

  it('StartExecution is idempotent for a running execution with the same input only; names are checked', async () => {
    // Prepare
    h = await startHarness({ scale: 0.001 });
    const arn = await create(h, 'idem', { StartAt: 'W', States: { W: { Type: 'Wait', Seconds: 100000, End: true } } });

    // Act
    const a = await h.sfn.send(new StartExecutionCommand({ stateMachineArn: arn, name: 'rot-1', input: '{"a":1}' }));
    const b = await h.sfn.send(new StartExecutionCommand({ stateMachineArn: arn, name: 'rot-1', input: '{"a":1}' }));
    const different = await errorOf(h.sfn.send(new StartExecutionCommand({ stateMachineArn: arn, name: 'rot-1', input: '{"a":2}' })));
    const badName = await errorOf(h.sfn.send(new StartExecutionCommand({ stateMachineArn: arn, name: 'bad name' })));
    const badInput = await errorOf(h.sfn.send(new StartExecutionCommand({ stateMachineArn: arn, input: '{oops' })));
    await h.sfn.send(new StopExecutionCommand({ executionArn: a.executionArn, error: 'Operator', cause: 'test' }));
    const afterStop = await errorOf(h.sfn.send(new StartExecutionCommand({ stateMachineArn: arn, name: 'rot-1', input: '{"a":1}' })));
    const described = await h.sfn.send(new DescribeExecutionCommand({ executionArn: a.executionArn }));
    const aborted = await h.sfn.send(new ListExecutionsCommand({ stateMachineArn: arn, statusFilter: 'ABORTED' }));

    // Assess
    expect(a.executionArn).toBe('arn:aws:states:us-east-1:123456789012:execution:idem:rot-1');
    expect(b.executionArn).toBe(a.executionArn);
    expect(different).toBe('ExecutionAlreadyExists');
    expect(badName).toBe('InvalidName');
    expect(badInput).toBe('InvalidExecutionInput');
    expect(afterStop).toBe('ExecutionAlreadyExists');
    expect(described).toMatchObject({ status: 'ABORTED', error: 'Operator', cause: 'test', redriveStatus: 'REDRIVABLE' });
    expect(described.stopDate).toBeInstanceOf(Date);
    expect(aborted.executions!.map((e) => e.name)).toEqual(['rot-1']);
  });

  it('rejects bad definitions, JSONata, unsupported resources and unknown operations with AWS error codes', async () => {
    // Prepare
    h = await startHarness({});
    const attempt = (name: string, definition: unknown) =>
      errorOf(h.sfn.send(new CreateStateMachineCommand({ name, roleArn: ROLE, definition: typeof definition === 'string' ? definition : JSON.stringify(definition) })));
    const good = { StartAt: 'P', States: { P: { Type: 'Pass', End: true } } };

    // Act / Assess
    expect(await attempt('a', '{not json')).toBe('InvalidDefinition');
    expect(await attempt('b', { StartAt: 'Missing', States: { P: { Type: 'Pass', End: true } } })).toBe('InvalidDefinition');
    expect(await attempt('c', { QueryLanguage: 'JSONata', ...good })).toBe('InvalidDefinition');
    expect(await attempt('d', { StartAt: 'T', States: { T: { Type: 'Task', Resource: 'arn:aws:states:::s3:getObject', End: true } } })).toBe('InvalidDefinition');
    await create(h, 'same', good);
    await expect(create(h, 'same', good)).resolves.toContain(':stateMachine:same');
    expect(await attempt('same', { StartAt: 'Q', States: { Q: { Type: 'Pass', End: true } } })).toBe('StateMachineAlreadyExists');
    const unknown = await h.service.handle({
      method: 'POST', path: '/', query: new URLSearchParams(), headers: {}, body: Buffer.from('{}'), service: 'states', region: 'us-east-1',
      target: 'AWSStepFunctions.StartSyncExecution',
    });
    expect(unknown.status).toBe(400);
    expect(JSON.parse(String(unknown.body))).toEqual({ __type: 'UnknownOperationException', message: expect.stringContaining('StartSyncExecution') });
    const malformed = await h.service.handle({
      method: 'POST', path: '/', query: new URLSearchParams(), headers: {}, body: Buffer.from('{'), service: 'states', region: 'us-east-1',
      target: 'AWSStepFunctions.ListStateMachines',
    });
    expect(JSON.parse(String(malformed.body)).__type).toBe('SerializationException');
  });

  it('records history with AWS event types, ids and details, paged and reversed', async () => {
    // Prepare
    h = await startHarness({ functions: { echo: (p) => ({ echoed: p }) } });
    const arn = await create(h, 'hist', {
      StartAt: 'Call',
      States: {
        Call: { Type: 'Task', Resource: 'arn:aws:states:::lambda:invoke', Parameters: { FunctionName: fnArn('echo'), 'Payload.$': '$' }, OutputPath: '$.Payload', Next: 'Done' },
        Done: { Type: 'Succeed' },
      },
    });
    const result = await run(h, arn, { x: 1 });

    // Act
    const all = await h.sfn.send(new GetExecutionHistoryCommand({ executionArn: result.executionArn }));
    const firstPage = await h.sfn.send(new GetExecutionHistoryCommand({ executionArn: result.executionArn, maxResults: 3, reverseOrder: true, includeExecutionData: false }));
    const secondPage = await h.sfn.send(new GetExecutionHistoryCommand({ executionArn: result.executionArn, maxResults: 3, reverseOrder: true, nextToken: firstPage.nextToken }));

    // Assess
    expect(all.events!.map((e) => e.type)).toEqual([
      'ExecutionStarted', 'TaskStateEntered', 'TaskScheduled', 'TaskStarted', 'TaskSucceeded', 'TaskStateExited',
      'SucceedStateEntered', 'SucceedStateExited', 'ExecutionSucceeded',
    ]);
    all.events!.forEach((e, i) => {
      expect(e.id).toBe(i + 1);
      expect(e.previousEventId).toBe(i);
      expect(e.timestamp).toBeInstanceOf(Date);
    });
    expect(all.events![1].stateEnteredEventDetails).toEqual({ name: 'Call', input: '{"x":1}', inputDetails: { truncated: false } });
    const succeeded = JSON.parse(all.events![4].taskSucceededEventDetails!.output!);
    expect(succeeded).toMatchObject({ ExecutedVersion: '$LATEST', StatusCode: 200, Payload: { echoed: { x: 1 } }, SdkHttpMetadata: { HttpStatusCode: 200 } });
    expect(JSON.parse(result.output!)).toEqual({ echoed: { x: 1 } });
    expect(firstPage.events!.map((e) => e.id)).toEqual([9, 8, 7]);
    expect(firstPage.events![0].executionSucceededEventDetails?.output).toBeUndefined();
    expect(secondPage.events!.map((e) => e.id)).toEqual([6, 5, 4]);
  });

  it('redrives a failed execution from the failed state, keeping history and counting redrives', async () => {
    // Prepare
    let healthy = false;
    h = await startHarness({
      functions: {
        first: () => ({ one: 1 }),
        second: () => {
          if (!healthy) throw Object.assign(new Error('down'), { name: 'Outage' });
          return { two: 2 };
        },
      },
    });
    const arn = await create(h, 'redrive', {
      StartAt: 'First',
      States: {
        First: { Type: 'Task', Resource: fnArn('first'), ResultPath: '$.first', Assign: { 'seen.$': '$.one' }, Next: 'Second' },
        Second: { Type: 'Task', Resource: fnArn('second'), ResultPath: '$.second', Next: 'Out' },
        Out: { Type: 'Pass', Parameters: { 'seen.$': '$seen', 'all.$': '$' }, End: true },
      },
    });
    const failed = await run(h, arn, {});
    const notYet = await errorOf(h.sfn.send(new RedriveExecutionCommand({ executionArn: arn.replace(':stateMachine:', ':execution:') + ':nope' })));

    // Act
    healthy = true;
    await h.sfn.send(new RedriveExecutionCommand({ executionArn: failed.executionArn }));
    await h.service.waitForExecution(failed.executionArn!);
    const after = await h.sfn.send(new DescribeExecutionCommand({ executionArn: failed.executionArn }));
    const again = await errorOf(h.sfn.send(new RedriveExecutionCommand({ executionArn: failed.executionArn })));

    // Assess
    expect(failed).toMatchObject({ status: 'FAILED', error: 'Outage', redriveCount: 0, redriveStatus: 'REDRIVABLE' });
    expect(notYet).toBe('ExecutionDoesNotExist');
    expect(after).toMatchObject({ status: 'SUCCEEDED', redriveCount: 1, redriveStatus: 'NOT_REDRIVABLE' });
    expect(JSON.parse(after.output!)).toEqual({ seen: 1, all: { first: { one: 1 }, second: { two: 2 } } });
    expect(h.invoker.callsTo('first')).toHaveLength(1);
    expect(again).toBe('ExecutionNotRedrivable');
    const types = (await h.sfn.send(new GetExecutionHistoryCommand({ executionArn: failed.executionArn }))).events!.map((e) => e.type);
    expect(types).toContain('ExecutionFailed');
    expect(types).toContain('ExecutionRedriven');
    expect(types[types.length - 1]).toBe('ExecutionSucceeded');
  });

  it('calls DynamoDB with the low-level shapes and maps ConditionalCheckFailedException', async () => {
    // Prepare
    const dynamodb = new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    const ddb = mockClient(dynamodb);
    ddb
      .on(UpdateItemCommand)
      .resolvesOnce({ Attributes: { pk: { S: 'thing#t1' } }, $metadata: { requestId: 'req-1' } })
      .rejectsOnce(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }));
    h = await startHarness({ dynamodb });
    const arn = await create(h, 'ddb', {
      StartAt: 'Claim',
      States: {
        Claim: {
          Type: 'Task',
          Resource: 'arn:aws:states:::dynamodb:updateItem',
          Parameters: {
            TableName: 'rotor',
            Key: { pk: { 'S.$': "States.Format('thing#{}', $.thing)" }, sk: { S: 'current' } },
            UpdateExpression: 'SET #s = :s',
            ConditionExpression: 'attribute_not_exists(#s)',
            ExpressionAttributeNames: { '#s': 'status' },
            ExpressionAttributeValues: { ':s': { S: 'IN_PROGRESS' } },
            ReturnValues: 'ALL_NEW',
          },
          ResultSelector: { 'pk.$': '$.Attributes.pk.S', 'requestId.$': '$.SdkResponseMetadata.RequestId' },
          Catch: [{ ErrorEquals: ['DynamoDB.ConditionalCheckFailedException'], ResultPath: '$.skipped', Next: 'Busy' }],
          End: true,
        },
        Busy: { Type: 'Succeed' },
      },
    });

    // Act
    const first = await run(h, arn, { thing: 't1' });
    const second = await run(h, arn, { thing: 't1' });

    // Assess
    expect(JSON.parse(first.output!)).toEqual({ pk: 'thing#t1', requestId: 'req-1' });
    expect(ddb.commandCalls(UpdateItemCommand)[0].args[0].input).toEqual({
      TableName: 'rotor',
      Key: { pk: { S: 'thing#t1' }, sk: { S: 'current' } },
      UpdateExpression: 'SET #s = :s',
      ConditionExpression: 'attribute_not_exists(#s)',
      ExpressionAttributeNames: { '#s': 'status' },
      ExpressionAttributeValues: { ':s': { S: 'IN_PROGRESS' } },
      ReturnValues: 'ALL_NEW',
    });
    expect(JSON.parse(second.output!).skipped).toEqual({ Error: 'DynamoDB.ConditionalCheckFailedException', Cause: 'The conditional request failed' });
    ddb.restore();
    dynamodb.destroy();
  });

  it('fails the execution with States.Runtime on a missing path, which no Catch can take', async () => {
    // Prepare
    h = await startHarness({});
    const arn = await create(h, 'runtime', {
      StartAt: 'P',
      States: {
        P: { Type: 'Parallel', Branches: [{ StartAt: 'X', States: { X: { Type: 'Pass', Parameters: { 'v.$': '$.missing' }, End: true } } }], Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }], End: true },
        Caught: { Type: 'Succeed' },
      },
    });

    // Act
    const result = await run(h, arn, { present: 1 });

    // Assess
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('States.Runtime');
    expect(result.cause).toContain("'$.missing'");
  });

  it('runs Map with MaxConcurrency and ItemSelector', async () => {
    // Prepare
    h = await startHarness({ functions: { double: (p) => (p.value as number) * 2 } });
    const arn = await create(h, 'map', {
      StartAt: 'Each',
      States: {
        Each: {
          Type: 'Map',
          ItemsPath: '$.items',
          MaxConcurrency: 2,
          ItemSelector: { 'value.$': '$$.Map.Item.Value', 'index.$': '$$.Map.Item.Index' },
          ItemProcessor: { StartAt: 'Double', States: { Double: { Type: 'Task', Resource: fnArn('double'), End: true } } },
          ResultPath: '$.doubled',
          End: true,
        },
      },
    });

    // Act
    const result = await run(h, arn, { items: [1, 2, 3, 4, 5] });

    // Assess
    expect(JSON.parse(result.output!).doubled).toEqual([2, 4, 6, 8, 10]);
  });
});
