import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetFunctionEventInvokeConfigCommand, InvokeCommand, LambdaClient, PutFunctionEventInvokeConfigCommand } from '@aws-sdk/client-lambda';
import { EdgeServer } from '../../local/edge/edge-server';
import { LambdaService } from '../../local/lambda/lambda-service';
import { SqsService } from '../../local/sqs/sqs-service';
import { scaledClock } from '../../local/types';

/**
 * Asynchronous invocations on the local Lambda behave like AWS's (issue 9, scenario 8): the
 * caller gets 202 at once; a function error is retried twice, one then two minutes of workflow
 * time apart; then the event goes to the on-failure destination as Lambda's invocation record;
 * without a destination it is dropped. Bundles count their attempts in a file.
 */
const TIME_SCALE = 0.001;
const BUNDLES: Record<string, string> = {
  // Fails its first FAIL_TIMES attempts of each event, then succeeds.
  'flaky.mjs': `
    import { appendFileSync, readFileSync } from 'node:fs';
    export const handler = async (event) => {
      appendFileSync(process.env.LOG, JSON.stringify({ id: event.id, at: Date.now() }) + '\\n');
      const seen = readFileSync(process.env.LOG, 'utf8').split('\\n').filter((l) => l && JSON.parse(l).id === event.id).length;
      if (seen <= event.failTimes) { const e = new Error('attempt ' + seen + ' failed'); e.name = 'SendTaskThrottled'; throw e; }
      return { ok: event.id };
    };`,
};

describe('local Lambda asynchronous invocations', () => {
  let dir: string;
  let edge: EdgeServer;
  let lambda: LambdaService;
  let sqs: SqsService;
  let client: LambdaClient;
  let log: string;
  const dlqArn = 'arn:aws:sqs:us-east-1:000000000000:flaky-dlq';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-lambda-async-'));
    log = join(dir, 'attempts.jsonl');
    writeFileSync(log, '');
    for (const [name, source] of Object.entries(BUNDLES)) writeFileSync(join(dir, name), source);
    edge = new EdgeServer({ port: 0 });
    const url = await edge.start();
    sqs = new SqsService({ endpointUrl: url });
    lambda = new LambdaService({ endpointUrl: url, output: () => undefined, clock: scaledClock(TIME_SCALE), destinations: sqs });
    edge.register(lambda).register(sqs);
    lambda.deploy({ name: 'flaky', bundlePath: join(dir, 'flaky.mjs'), timeoutSeconds: 5, environment: { LOG: log } });
    lambda.deploy({ name: 'undestined', bundlePath: join(dir, 'flaky.mjs'), timeoutSeconds: 5, environment: { LOG: log } });
    sqs.createQueue('flaky-dlq');
    client = new LambdaClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: 'any' }, maxAttempts: 1 });
    await client.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'flaky', MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 3600, DestinationConfig: { OnFailure: { Destination: dlqArn } } }));
  });

  afterAll(async () => {
    client.destroy();
    await lambda.stop();
    await edge.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const attempts = (id: string): number[] =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { id: string; at: number })
      .filter((entry) => entry.id === id)
      .map((entry) => entry.at);

  const invokeEvent = (functionName: string, payload: object) =>
    client.send(new InvokeCommand({ FunctionName: functionName, InvocationType: 'Event', Payload: Buffer.from(JSON.stringify(payload)) }));

  it('stores the event invoke config and answers it back', async () => {
    const config = await client.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: 'flaky' }));
    expect(config).toMatchObject({ MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 3600, DestinationConfig: { OnFailure: { Destination: dlqArn } } });
    await expect(client.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: 'undestined' }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });

  it('refuses a destination that does not exist, or retries outside 0-2', async () => {
    await expect(
      client.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'undestined', DestinationConfig: { OnFailure: { Destination: 'arn:aws:sqs:us-east-1:000000000000:missing' } } })),
    ).rejects.toMatchObject({ name: 'InvalidParameterValueException' });
    await expect(client.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'undestined', MaximumRetryAttempts: 3 }))).rejects.toMatchObject({ name: 'InvalidParameterValueException' });
  });

  it('retries a failed event twice, a minute then two minutes of workflow time apart, and succeeds on the third attempt', async () => {
    // Act
    const answer = await invokeEvent('flaky', { id: 'third-time', failTimes: 2 });
    await lambda.settled();
    // Assess: accepted at once; three attempts; the gaps are at least 60 s and 120 s scaled.
    expect(answer.StatusCode).toBe(202);
    const times = attempts('third-time');
    expect(times).toHaveLength(3);
    expect(times[1] - times[0]).toBeGreaterThanOrEqual(60 * 1000 * TIME_SCALE);
    expect(times[2] - times[1]).toBeGreaterThanOrEqual(120 * 1000 * TIME_SCALE);
    expect(lambda.asyncOutcomes('flaky').at(-1)).toMatchObject({ outcome: 'succeeded', attempts: 3 });
    expect(sqs.peek('flaky-dlq')).toEqual([]);
  });

  it('sends an event that fails every attempt to the on-failure destination as Lambda\'s invocation record', async () => {
    // Act
    await invokeEvent('flaky', { id: 'never', failTimes: 99 });
    await lambda.settled();
    // Assess
    expect(attempts('never')).toHaveLength(3);
    const [message] = sqs.peek('flaky-dlq');
    expect(JSON.parse(message.body)).toEqual({
      version: '1.0',
      timestamp: expect.any(String),
      requestContext: { requestId: expect.any(String), functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:flaky:$LATEST', condition: 'RetriesExhausted', approximateInvokeCount: 3 },
      requestPayload: { id: 'never', failTimes: 99 },
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      responsePayload: expect.objectContaining({ errorType: 'SendTaskThrottled', errorMessage: 'attempt 3 failed' }),
    });
    expect(lambda.asyncOutcomes('flaky').at(-1)).toMatchObject({ outcome: 'RetriesExhausted', attempts: 3, destination: dlqArn });
  });

  it('drops the event of a function without a destination after the retries, as AWS does, and says so', async () => {
    await invokeEvent('undestined', { id: 'dropped', failTimes: 99 });
    await lambda.settled();
    expect(attempts('dropped')).toHaveLength(3);
    expect(lambda.asyncOutcomes('undestined').at(-1)).toMatchObject({ outcome: 'RetriesExhausted', attempts: 3 });
    expect(lambda.asyncOutcomes('undestined').at(-1)?.destination).toBeUndefined();
  });

  it('honours MaximumRetryAttempts 0 and an event age too short for the next retry', async () => {
    // Prepare
    await client.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'flaky', MaximumRetryAttempts: 0, DestinationConfig: { OnFailure: { Destination: dlqArn } } }));
    await invokeEvent('flaky', { id: 'no-retry', failTimes: 99 });
    await lambda.settled();
    await client.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'flaky', MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 90, DestinationConfig: { OnFailure: { Destination: dlqArn } } }));
    await invokeEvent('flaky', { id: 'too-old', failTimes: 99 });
    await lambda.settled();
    // Assess: one attempt; two attempts (the third would start past 90 s).
    expect(attempts('no-retry')).toHaveLength(1);
    expect(attempts('too-old')).toHaveLength(2);
    const conditions = sqs.peek('flaky-dlq').map((m) => JSON.parse(m.body) as { requestPayload: { id: string }; requestContext: { condition: string } });
    expect(conditions.filter((c) => c.requestPayload.id !== 'never').map((c) => [c.requestPayload.id, c.requestContext.condition])).toEqual([
      ['no-retry', 'RetriesExhausted'],
      ['too-old', 'EventAgeExceeded'],
    ]);
  });
});

describe('stopping the local Lambda', () => {
  it('ends the retry wait of an asynchronous invocation instead of keeping the process alive', async () => {
    // Prepare: real time, so the first retry would wait a whole minute.
    const dir = mkdtempSync(join(tmpdir(), 'rotor-lambda-stop-'));
    const log = join(dir, 'attempts.jsonl');
    writeFileSync(log, '');
    writeFileSync(join(dir, 'flaky.mjs'), BUNDLES['flaky.mjs']);
    const lambda = new LambdaService({ endpointUrl: 'http://127.0.0.1:1', output: () => undefined });
    lambda.deploy({ name: 'flaky', bundlePath: join(dir, 'flaky.mjs'), timeoutSeconds: 5, environment: { LOG: log } });
    try {
      await lambda.invoke('flaky', { id: 'stopped', failTimes: 99 }, 'Event');
      for (let i = 0; i < 100 && readFileSync(log, 'utf8') === ''; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      // Act
      const started = Date.now();
      await lambda.stop();
      await lambda.settled();
      // Assess: settled at once, after one attempt.
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
