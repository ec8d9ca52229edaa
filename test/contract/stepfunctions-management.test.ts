import {
  CreateStateMachineCommand,
  DeleteStateMachineCommand,
  DescribeExecutionCommand,
  DescribeStateMachineCommand,
  ListExecutionsCommand,
  ListStateMachinesCommand,
  StartExecutionCommand,
  UpdateStateMachineCommand,
} from '@aws-sdk/client-sfn';
import { type Harness, ROLE, fnArn, startHarness } from '../unit/local/stepfunctions/sfn-harness.js';

async function errorOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as Error).name;
  }
  throw new Error('expected the call to fail');
}

const pass = (result: unknown) => JSON.stringify({ StartAt: 'P', States: { P: { Type: 'Pass', Result: result, End: true } } });

describe('local Step Functions: state machines, listings, timeouts and service errors', () => {
  let h: Harness;
  // Each test starts its own harness (a worker-thread Lambda pool and the engine): seconds on a
  // loaded 2-core machine, past jest's default 5 s. Nothing here asserts on time.
  jest.setTimeout(30_000);
  afterEach(async () => h.close());

  it('creates, describes, updates, lists and deletes state machines', async () => {
    // Prepare
    h = await startHarness({ scale: 0.001 });
    const { stateMachineArn } = await h.sfn.send(new CreateStateMachineCommand({ name: 'm1', roleArn: ROLE, definition: pass('v1') }));
    await h.sfn.send(new CreateStateMachineCommand({ name: 'm0', roleArn: ROLE, definition: pass('x') }));

    // Act
    await h.sfn.send(new UpdateStateMachineCommand({ stateMachineArn, definition: pass('v2') }));
    const described = await h.sfn.send(new DescribeStateMachineCommand({ stateMachineArn }));
    const { executionArn } = await h.sfn.send(new StartExecutionCommand({ stateMachineArn }));
    await h.service.waitForExecution(executionArn!);
    const output = (await h.sfn.send(new DescribeExecutionCommand({ executionArn }))).output;
    const firstPage = await h.sfn.send(new ListStateMachinesCommand({ maxResults: 1 }));
    const secondPage = await h.sfn.send(new ListStateMachinesCommand({ maxResults: 1, nextToken: firstPage.nextToken }));
    const badUpdate = await errorOf(h.sfn.send(new UpdateStateMachineCommand({ stateMachineArn, definition: '{"StartAt":"nope","States":{}}' })));
    await h.sfn.send(new DeleteStateMachineCommand({ stateMachineArn }));
    const gone = await errorOf(h.sfn.send(new DescribeStateMachineCommand({ stateMachineArn })));
    const badArn = await errorOf(h.sfn.send(new DescribeStateMachineCommand({ stateMachineArn: 'not-an-arn' })));

    // Assess
    expect(stateMachineArn).toBe('arn:aws:states:us-east-1:123456789012:stateMachine:m1');
    expect(described).toMatchObject({ name: 'm1', status: 'ACTIVE', type: 'STANDARD', roleArn: ROLE, definition: pass('v2') });
    expect(described.creationDate).toBeInstanceOf(Date);
    expect(output).toBe('"v2"');
    expect(firstPage.stateMachines!.map((m) => m.name)).toEqual(['m0']);
    expect(secondPage.stateMachines!.map((m) => m.name)).toEqual(['m1']);
    expect(secondPage.nextToken).toBeUndefined();
    expect(badUpdate).toBe('InvalidDefinition');
    expect(gone).toBe('StateMachineDoesNotExist');
    expect(badArn).toBe('InvalidArn');
  });

  it('lists executions newest first, filtered by status, a page at a time', async () => {
    // Prepare
    h = await startHarness({ scale: 0.001 });
    const { stateMachineArn } = await h.sfn.send(
      new CreateStateMachineCommand({
        name: 'lister',
        roleArn: ROLE,
        definition: JSON.stringify({ StartAt: 'C', States: { C: { Type: 'Choice', Choices: [{ Variable: '$.ok', BooleanEquals: true, Next: 'Y' }], Default: 'N' }, Y: { Type: 'Succeed' }, N: { Type: 'Fail', Error: 'No' } } }),
      }),
    );
    for (const [i, ok] of [true, false, true, true].entries()) {
      const { executionArn } = await h.sfn.send(new StartExecutionCommand({ stateMachineArn, name: `e${i}`, input: JSON.stringify({ ok }) }));
      await h.service.waitForExecution(executionArn!);
      await new Promise((r) => setTimeout(r, 2)); // distinct start times
    }

    // Act
    const page1 = await h.sfn.send(new ListExecutionsCommand({ stateMachineArn, statusFilter: 'SUCCEEDED', maxResults: 2 }));
    const page2 = await h.sfn.send(new ListExecutionsCommand({ stateMachineArn, statusFilter: 'SUCCEEDED', maxResults: 2, nextToken: page1.nextToken }));
    const failed = await h.sfn.send(new ListExecutionsCommand({ stateMachineArn, statusFilter: 'FAILED' }));
    const badToken = await errorOf(h.sfn.send(new ListExecutionsCommand({ stateMachineArn, nextToken: 'garbage' })));

    // Assess
    expect(page1.executions!.map((e) => e.name)).toEqual(['e3', 'e2']);
    expect(page2.executions!.map((e) => e.name)).toEqual(['e0']);
    expect(page2.nextToken).toBeUndefined();
    expect(failed.executions!.map((e) => [e.name, e.status])).toEqual([['e1', 'FAILED']]);
    expect(badToken).toBe('InvalidToken');
  });

  it("times out an execution past its TimeoutSeconds and names Lambda and SNS service errors as AWS does", async () => {
    // Prepare
    h = await startHarness({ scale: 0.001 });
    const slow = await h.sfn.send(
      new CreateStateMachineCommand({ name: 'slow', roleArn: ROLE, definition: JSON.stringify({ TimeoutSeconds: 10, StartAt: 'W', States: { W: { Type: 'Wait', Seconds: 100000, End: true } } }) }),
    );
    const missing = await h.sfn.send(
      new CreateStateMachineCommand({
        name: 'missing',
        roleArn: ROLE,
        definition: JSON.stringify({
          StartAt: 'Call',
          States: {
            Call: { Type: 'Task', Resource: 'arn:aws:states:::lambda:invoke', Parameters: { FunctionName: fnArn('absent') }, Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.err', Next: 'Tell' }], End: true },
            Tell: { Type: 'Task', Resource: 'arn:aws:states:::sns:publish', Parameters: { TopicArn: 'arn:aws:sns:us-east-1:123456789012:t', 'Message.$': '$.err' }, End: true },
          },
        }),
      }),
    );
    const attempted: string[] = [];
    h.sns.publish = async ({ message }) => {
      attempted.push(message);
      throw Object.assign(new Error('slow down'), { name: 'ThrottledException' });
    };

    // Act
    const timedOut = await h.sfn.send(new StartExecutionCommand({ stateMachineArn: slow.stateMachineArn }));
    const missingRun = await h.sfn.send(new StartExecutionCommand({ stateMachineArn: missing.stateMachineArn }));
    const timedOutResult = await h.service.waitForExecution(timedOut.executionArn!);
    const missingResult = await h.service.waitForExecution(missingRun.executionArn!);

    // Assess
    expect(timedOutResult).toMatchObject({ status: 'TIMED_OUT', error: 'States.Timeout', redriveStatus: 'REDRIVABLE' });
    expect(missingResult).toMatchObject({ status: 'FAILED', error: 'SNS.ThrottledException', cause: 'slow down' });
    expect(attempted).toHaveLength(1);
    expect(JSON.parse(attempted[0])).toEqual({ Error: 'Lambda.ResourceNotFoundException', Cause: 'Function not found: ' + fnArn('absent') });
    expect(h.invoker.calls.map((c) => c.functionName)).toEqual(['absent']);
  });
});
