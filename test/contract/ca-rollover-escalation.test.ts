import { CreateStateMachineCommand, DescribeExecutionCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { CaRolloverStep } from '../../domain/ca-rollover.js';
import type { InvokeResult } from '../../local/types.js';
import { exampleDeployment, loadWiring, renderStateMachine } from '../../wiring/index.js';
import { type FakeFunction, type Harness, ROLE, startHarness } from '../unit/local/stepfunctions/sfn-harness.js';

/**
 * The ca-rollover state machine on the local engine, with fake functions: when a step fails for
 * good, the one escalation (Escalate rollover failed) carries the error's type and message, never
 * the function's stack trace, which Lambda puts in the Cause beside them.
 */
describe('the ca-rollover escalation of a failed step', () => {
  // Under load one harness start and the SDK's first call take seconds.
  jest.setTimeout(30_000);
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const STACK = ['NewCaNotReady: CA-2 is not registered with AWS IoT', '    at verifyNewCa (/var/task/ca-verify-new.mjs:120:11)', '    at async Runtime.handler (/var/task/ca-verify-new.mjs:170:5)'];

  /** Runs a rollover whose Verify new CA does `verify`; `trace` is what Lambda reports as the failed function's stack. */
  async function rolloverWith(verify: FakeFunction | undefined, trace: string[]): Promise<{ status?: string; error?: string; subject?: string; message: string; published: number }> {
    const functions: Record<string, FakeFunction> = verify ? { 'rotor-ca-verify-new': verify } : {};
    h = await startHarness({ scale: 0.001, functions });
    // Lambda puts the function's stack in the error it reports (FakeInvoker reports none).
    const invoke = h.invoker.invoke.bind(h.invoker);
    h.invoker.invoke = async (name: string, payload: unknown): Promise<InvokeResult> => {
      const result = await invoke(name, payload);
      return result.ok ? result : { ok: false, error: { ...result.error, trace } };
    };
    const wiring = loadWiring();
    const definition = renderStateMachine(exampleDeployment('us-east-1', '123456789012'), wiring, wiring.caRollover);
    const { stateMachineArn } = await h.sfn.send(new CreateStateMachineCommand({ name: 'rotor-ca-rollover', roleArn: ROLE, definition }));
    const { executionArn } = await h.sfn.send(new StartExecutionCommand({ stateMachineArn, name: 'ca-rollover-e2e', input: JSON.stringify({ oldCa: 'a'.repeat(64), newCa: 'b'.repeat(64), trigger: 'cli' }) }));
    await h.service.waitForExecution(executionArn as string);
    const execution = await h.sfn.send(new DescribeExecutionCommand({ executionArn }));
    const [escalation] = h.sns.published;
    return { status: execution.status, error: execution.error, subject: escalation?.subject, message: escalation?.message ?? '', published: h.sns.published.length };
  }

  it("escalates a function error with its type and message, and without the stack Lambda reports", async () => {
    // Act
    const outcome = await rolloverWith(() => {
      throw Object.assign(new Error('CA-2 is not registered with AWS IoT'), { name: 'NewCaNotReady' });
    }, STACK);
    // Assess
    expect(outcome).toMatchObject({ status: 'FAILED', error: 'CA_ROLLOVER_FAILED', published: 1, subject: 'Rotor: CA rollover ca-rollover-e2e stopped (NewCaNotReady)' });
    expect(outcome.message).toBe('NewCaNotReady: CA-2 is not registered with AWS IoT');
    expect(outcome.message).not.toContain('verifyNewCa');
    expect(outcome.message).not.toContain('trace');
  });

  it('keeps a message over several lines as it is', async () => {
    // Act
    const outcome = await rolloverWith(() => {
      throw Object.assign(new Error('no successor is configured.\nSet next_private_ca_arn and apply'), { name: 'NoSuccessor' });
    }, STACK);
    // Assess
    expect(outcome.message).toBe('NoSuccessor: no successor is configured.\nSet next_private_ca_arn and apply');
  });

  it('escalates a plain-text cause (the Lambda service refused the call) as it is', async () => {
    // Act: no function answers Verify new CA: Lambda.ResourceNotFoundException, not retried.
    const outcome = await rolloverWith(undefined, STACK);
    // Assess
    expect(outcome).toMatchObject({ status: 'FAILED', error: 'CA_ROLLOVER_FAILED', published: 1, subject: 'Rotor: CA rollover ca-rollover-e2e stopped (Lambda.ResourceNotFoundException)' });
    expect(outcome.message).toBe('Function not found: arn:aws:lambda:us-east-1:123456789012:function:rotor-ca-verify-new');
  });

  it("escalates an error without a cause with the error's name: SNS refuses an empty message", async () => {
    // Prepare: the Lambda service refuses the call without a message, so the Cause is empty.
    h = await startHarness({ scale: 0.001 });
    h.invoker.invoke = async () => {
      throw Object.assign(new Error(''), { name: 'KMSAccessDeniedException' });
    };
    const wiring = loadWiring();
    const definition = renderStateMachine(exampleDeployment('us-east-1', '123456789012'), wiring, wiring.caRollover);
    const { stateMachineArn } = await h.sfn.send(new CreateStateMachineCommand({ name: 'rotor-ca-rollover', roleArn: ROLE, definition }));
    // Act
    const { executionArn } = await h.sfn.send(new StartExecutionCommand({ stateMachineArn, name: 'ca-rollover-e2e', input: JSON.stringify({ oldCa: 'a'.repeat(64), newCa: 'b'.repeat(64), trigger: 'cli' }) }));
    await h.service.waitForExecution(executionArn as string);
    // Assess
    expect(h.service.statesEntered(executionArn as string)).toContain(CaRolloverStep.ErrorWithoutCause);
    expect(h.sns.published.map((p) => p.message)).toEqual(['Lambda.KMSAccessDeniedException']);
  });
});
