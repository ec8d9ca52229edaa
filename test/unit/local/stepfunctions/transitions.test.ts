import { CreateStateMachineCommand, DescribeExecutionCommand, GetExecutionHistoryCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { parseQuotasFile } from '../../../../domain/pacing/index';
import { QuotaEnforcer } from '../../../../local/edge/quotas';
import { type Harness, ROLE, startHarness } from './sfn-harness.js';

/**
 * The state-transition quota in the local engine: every state entered and every retry is one
 * transition and waits for the quota (AWS slows transitions, it never fails them), and the
 * execution's outcome and history are those it would have without a quota.
 */
const DEFINITION = {
  StartAt: 'Prepare',
  States: {
    Prepare: { Type: 'Pass', Next: 'Work' },
    Work: { Type: 'Task', Resource: 'arn:aws:states:::lambda:invoke', Parameters: { FunctionName: 'flaky', 'Payload.$': '$' }, Retry: [{ ErrorEquals: ['Boom'], IntervalSeconds: 0, MaxAttempts: 2 }], Next: 'Done' },
    Done: { Type: 'Succeed' },
  },
};

async function runOnce(h: Harness): Promise<{ status?: string; entered: string[] }> {
  const { stateMachineArn } = await h.sfn.send(new CreateStateMachineCommand({ name: 'quota', roleArn: ROLE, definition: JSON.stringify(DEFINITION) }));
  const { executionArn } = await h.sfn.send(new StartExecutionCommand({ stateMachineArn, input: '{}' }));
  await h.service.waitForExecution(executionArn!);
  const { status } = await h.sfn.send(new DescribeExecutionCommand({ executionArn }));
  const { events } = await h.sfn.send(new GetExecutionHistoryCommand({ executionArn }));
  return { status, entered: (events ?? []).filter((e) => e.type?.endsWith('StateEntered')).map((e) => e.stateEnteredEventDetails?.name ?? '') };
}

function flaky(): () => unknown {
  let calls = 0;
  return () => {
    calls++;
    if (calls === 1) throw Object.assign(new Error('first call fails'), { name: 'Boom' });
    return { ok: true };
  };
}

describe('the state-transition quota in the local engine', () => {
  let h: Harness | undefined;
  afterEach(async () => h?.close());

  it('asks the quota once per state entered and once per retry', async () => {
    // Prepare
    const asked: number[] = [];
    h = await startHarness({ functions: { flaky: flaky() }, transition: async () => void asked.push(Date.now()) });
    // Act
    const run = await runOnce(h);
    // Assess: Prepare, Work, Work's retry, Done.
    expect(run).toEqual({ status: 'SUCCEEDED', entered: ['Prepare', 'Work', 'Done'] });
    expect(asked).toHaveLength(4);
  });

  it('slows an execution over the quota without failing it', async () => {
    // Prepare: 20 transitions a second, a burst of 2.
    const quotas = new QuotaEnforcer({ source: 'test', settings: parseQuotasFile(JSON.stringify({ quotas: { 'states:StateTransition': { rate: 20, burst: 2 } } })) }, { timeScale: 1 });
    h = await startHarness({ functions: { flaky: flaky() }, transition: (signal) => quotas.transition(signal) });
    const started = Date.now();
    // Act
    const run = await runOnce(h);
    // Assess: two transitions at once, then two more 50 ms apart.
    expect(run).toEqual({ status: 'SUCCEEDED', entered: ['Prepare', 'Work', 'Done'] });
    expect(quotas.figures().delayedTransitions).toBe(2);
    expect(quotas.figures().throttledCalls.total).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
  });
});
