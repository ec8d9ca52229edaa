import { GetExecutionHistoryCommand, SFNClient, type HistoryEvent } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { runOperatorCli } from '../../../cli/operator/index.js';
import { buildTrace, formatTrace, readableCause, trace, validateTraceOptions } from '../../../cli/operator/trace.js';
import { UsageError } from '../../../cli/operator/exit-codes.js';
import { executionConsoleUrl } from '../../../domain/naming.js';
import fixture from './fixtures/failed-execution-history.json';
import { capturedIo, fakeClients, fakeTarget, operatorDeps, record } from './fake-target.js';

const ddbMock = mockClient(DynamoDBDocumentClient);
const sfnMock = mockClient(SFNClient);
beforeEach(() => {
  ddbMock.reset();
  sfnMock.reset();
});

/** The SDK hands timestamps over as Dates. */
const events: HistoryEvent[] = fixture.events.map((e) => ({ ...e, timestamp: new Date(e.timestamp) }) as HistoryEvent);

describe('rotor trace: the timeline', () => {
  it('shows each state once, its duration, its retries and where the rotation failed', () => {
    // Act
    const result = buildTrace(fixture.executionArn, events, false);

    // Assess
    expect(result.status).toBe('FAILED');
    expect(result.entries.map((e) => [e.state, e.attempts, e.retries, e.outcome])).toEqual([
      ['Claim device', 1, 0, 'succeeded'],
      ['Request CSR', 4, 3, 'failed'],
      ['Roll back', 2, 1, 'succeeded'],
      ['Record failure', 1, 0, 'succeeded'],
      ['Escalate', 1, 0, 'succeeded'],
      ['Rotation failed', 0, 0, 'failed'],
    ]);
    const requestCsr = result.entries[1];
    expect(requestCsr.errors.map((e) => e.error)).toEqual(['States.Timeout', 'States.Timeout', 'States.Timeout', 'States.Timeout']);
    // 4 waits of 1800.32 s, back-offs of 300 + 600 + 1200 s, and the 10 ms either side.
    expect(requestCsr.durationMs).toBe(9301300);
    expect(result.entries[0].durationMs).toBe(70);
    expect(result.entries[2].errors).toEqual([
      { error: 'ThrottlingException', cause: 'Rate exceeded', at: '2025-05-01T12:35:01.840Z' },
    ]);
    expect(result.failure).toEqual({
      state: 'Request CSR',
      error: 'States.Timeout',
      cause: 'The device sent no csr_res within 1800 seconds',
      executionError: 'NO_CSR_RESPONSE',
      executionCause: 'pump-7 sent no CSR after 4 requests (Request CSR)',
    });
    expect(result.link).toBe(executionConsoleUrl(fixture.executionArn));
  });

  it('prints a table an operator can read, with the console link', () => {
    const lines = formatTrace(buildTrace(fixture.executionArn, events, false));
    expect(lines[1]).toBe('status    FAILED after 2h35m');
    expect(lines[3]).toMatch(/^ENTERED\s+STATE\s+TOOK\s+RETRIES\s+RESULT$/);
    expect(lines[5]).toMatch(/^2025-05-01 10:00:00Z\s+Request CSR\s+2h35m\s+3\s+failed: States\.Timeout$/);
    expect(lines).toContain('failed in Request CSR: States.Timeout — The device sent no csr_res within 1800 seconds');
    expect(lines.at(-1)).toBe(`console: ${executionConsoleUrl(fixture.executionArn)}`);
  });

  it('on the local runtime links to the local console when it serves one, and says how to see it when not', () => {
    const served = formatTrace(buildTrace(fixture.executionArn, events, true, 'http://127.0.0.1:4566'));
    expect(served[served.length - 1]).toBe(`console: http://127.0.0.1:4566/console/executions/${fixture.executionArn}`);
    const notServed = formatTrace(buildTrace(fixture.executionArn, events, true));
    expect(notServed[notServed.length - 1]).toContain('its console is served by `rotor local up`');
  });

  it('a running execution has its open state running', () => {
    const result = buildTrace(fixture.executionArn, events.slice(0, 9), false);
    expect(result.status).toBe('RUNNING');
    expect(result.entries.at(-1)).toMatchObject({ state: 'Request CSR', outcome: 'running', attempts: 1 });
    expect(result.failure).toBeUndefined();
  });
});

describe('rotor trace: fetching', () => {
  it('--thing follows the record to its execution and reads every history page in order', async () => {
    const current = record('pump-7', 'FAILED', { executionArn: fixture.executionArn });
    ddbMock.on(GetCommand, { Key: { pk: 'thing#pump-7', sk: 'current' } }).resolves({ Item: current });
    sfnMock
      .on(GetExecutionHistoryCommand, { executionArn: fixture.executionArn })
      .resolvesOnce({ events: events.slice(0, 20), nextToken: 'page-2' })
      .resolvesOnce({ events: events.slice(20) });
    const clients = fakeClients();

    const result = await trace({ ddb: clients.ddb, sfn: clients.sfn, tableName: 'rotor-rotations', local: false }, { thing: 'pump-7' });

    expect(result.entries).toHaveLength(6);
    expect(sfnMock.commandCalls(GetExecutionHistoryCommand)[1].args[0].input.nextToken).toBe('page-2');
  });

  it('bad arguments are usage errors (exit 2); an unknown execution is not found (exit 3)', async () => {
    expect(() => validateTraceOptions({})).toThrow(UsageError);
    expect(() => validateTraceOptions({ thing: 'a', execution: fixture.executionArn })).toThrow(/not both/);
    const io = capturedIo();
    expect(await runOperatorCli(['trace', '--execution', 'not-an-arn'], operatorDeps(fakeTarget(), io))).toBe(2);
    expect(io.stderr).toEqual(['rotor: --execution "not-an-arn" is not a Step Functions execution ARN']);

    sfnMock.on(GetExecutionHistoryCommand).rejects(Object.assign(new Error('Execution Does Not Exist'), { name: 'ExecutionDoesNotExist' }));
    const io2 = capturedIo();
    expect(await runOperatorCli(['trace', '--execution', fixture.executionArn], operatorDeps(fakeTarget(), io2))).toBe(3);
    expect(io2.stderr).toEqual(["rotor: ExecutionDoesNotExist: Execution Does Not Exist"]);
  });
});

describe('readableCause', () => {
  it('shows the message of a Lambda function error, not its stack', () => {
    // Prepare
    const cause = JSON.stringify({ errorMessage: 'WRONG_COMMON_NAME: subject CN is "x"', errorType: 'CsrRejected', trace: ['at f (index.mjs:1:2)'] });
    // Act / Assess
    expect(readableCause(cause)).toBe('WRONG_COMMON_NAME: subject CN is "x"');
  });

  it('keeps a plain-text cause as it is', () => {
    expect(readableCause('no csr_res in time')).toBe('no csr_res in time');
    expect(readableCause('{"other":1}')).toBe('{"other":1}');
  });
});
