import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RulesEngine } from '../../local/iot/rules';
import { LambdaService } from '../../local/lambda/lambda-service';
import { EventSourceMapping } from '../../local/sqs/event-source-mapping';
import { SqsService } from '../../local/sqs/sqs-service';
import { scaledClock } from '../../local/types';

/**
 * Issue 10 part 4 on the local runtime: device → cloud messages go IoT rule → SQS queue →
 * event source mapping → function. Nothing a device sent is lost while the function fails or
 * cannot keep up: the messages wait in the queue and are delivered once it can, each handled
 * once; a message the function keeps failing on moves to the dead-letter queue after
 * maxReceiveCount receives, and the others of its batch are not held back by it.
 *
 * The function is a real worker-thread function of the local Lambda: it appends each record's
 * body to a file (what was delivered), fails every batch while a marker file exists, and names
 * a record in batchItemFailures when its body says "poison".
 */
const FUNCTION = `
  import { appendFileSync, existsSync } from 'node:fs';
  export const handler = async (event) => {
    if (existsSync(process.env.FAIL_MARKER)) { const e = new Error('Rate exceeded'); e.name = 'ThrottlingException'; throw e; }
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.DELAY_MS)));
    const failures = [];
    for (const record of event.Records) {
      const { clientId } = JSON.parse(record.body);
      if (clientId.startsWith('poison')) failures.push({ itemIdentifier: record.messageId });
      else appendFileSync(process.env.DELIVERED, clientId + '\\n');
    }
    return { batchItemFailures: failures };
  };`;

const QUEUE = 'rotor-device-messages';
const DLQ = 'rotor-device-message-dlq';
const FUNCTION_NAME = 'rotor-device-message';
/** Workflow time runs 1,000 times faster: the 180 s visibility timeout lasts 0.18 s. */
const CLOCK = scaledClock(0.001);
const MAX_RECEIVE_COUNT = 3;
const WAIT_MS = 30_000;

async function eventually<T>(what: string, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('the rule queue on the local runtime', () => {
  // A test may wait WAIT_MS for what it polls (Lambda workers start per test); jest's default 5 s
  // cut the dead-letter test short on CI before its own wait ended.
  jest.setTimeout(WAIT_MS + 10_000);
  let dir: string;
  let marker: string;
  let delivered: string;
  let sqs: SqsService;
  let lambda: LambdaService;
  let rules: RulesEngine;
  let mapping: EventSourceMapping;

  function start(options: { workers: number; delayMs: number; maximumConcurrency: number; maxReceiveCount?: number }): void {
    dir = mkdtempSync(join(tmpdir(), 'rotor-rule-queue-'));
    marker = join(dir, 'fail');
    delivered = join(dir, 'delivered');
    writeFileSync(delivered, '');
    writeFileSync(join(dir, 'fn.mjs'), FUNCTION);
    sqs = new SqsService({ endpointUrl: 'http://127.0.0.1:1' });
    lambda = new LambdaService({ endpointUrl: 'http://127.0.0.1:1', output: 'discard', clock: CLOCK, destinations: sqs });
    lambda.deploy({
      name: FUNCTION_NAME,
      bundlePath: join(dir, 'fn.mjs'),
      timeoutSeconds: 5,
      maxConcurrency: options.workers,
      environment: { FAIL_MARKER: marker, DELIVERED: delivered, DELAY_MS: String(options.delayMs) },
    });
    sqs.createQueue(DLQ);
    const queueUrl = sqs.createQueue(QUEUE, { VisibilityTimeout: '180', RedrivePolicy: JSON.stringify({ deadLetterTargetArn: sqs.queueArn(DLQ), maxReceiveCount: options.maxReceiveCount ?? MAX_RECEIVE_COUNT }) });
    rules = new RulesEngine({ invoker: lambda, queues: sqs, region: 'us-east-1', account: '000000000000' });
    rules.createRule({ ruleName: 'rotor_crt_ack', sql: "SELECT encode(*, 'base64') AS payload, clientid() AS clientId, topic() AS topic FROM 'management/topic/+/crt_ack'", queueUrl });
    mapping = new EventSourceMapping({
      sqs,
      queueName: QUEUE,
      invoker: lambda,
      functionName: FUNCTION_NAME,
      batchSize: 10,
      maximumConcurrency: options.maximumConcurrency,
      visibilityTimeoutSeconds: 180,
      functionTimeoutSeconds: 5,
      clock: CLOCK,
      region: 'us-east-1',
    }).start();
  }

  afterEach(async () => {
    await mapping.stop();
    await lambda.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function publish(things: string[]): void {
    for (const thing of things) {
      rules.dispatch({ topic: `management/topic/${thing}/crt_ack`, payload: Buffer.from('{}'), clientId: thing, principal: 'p', receivedAt: Date.now() });
    }
  }

  const deliveredThings = (): string[] => readFileSync(delivered, 'utf8').split('\n').filter(Boolean);
  const things = (n: number, prefix = 'device'): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

  it('keeps every message while the function fails, and delivers each once when it recovers', async () => {
    // Prepare: a generous maxReceiveCount, so that however long the outage lasts here, nothing reaches the dead-letter queue.
    start({ workers: 2, delayMs: 0, maximumConcurrency: 2, maxReceiveCount: 1000 });
    writeFileSync(marker, '');

    // Act: 25 messages arrive while every invocation fails.
    publish(things(25));
    await rules.idle();
    await eventually('failed batches', () => (mapping.batchOutcomes().filter((b) => b.error?.includes('ThrottlingException')).length >= 3 ? true : undefined));

    // Assess: nothing delivered, nothing lost.
    expect(deliveredThings()).toEqual([]);
    expect(sqs.peek(QUEUE)).toHaveLength(25);
    expect(rules.ruleErrors()).toEqual([]);

    // Act: the function recovers.
    unlinkSync(marker);
    await eventually('every message delivered', () => (deliveredThings().length >= 25 && sqs.peek(QUEUE).length === 0 ? true : undefined));
    await mapping.idle();

    // Assess: each delivered exactly once; the queue and its dead-letter queue are empty.
    expect(deliveredThings().sort()).toEqual(things(25).sort());
    expect(sqs.peek(DLQ)).toEqual([]);
    expect(existsSync(marker)).toBe(false);
  });

  it('buffers a burst larger than the function can take at once, and delivers all of it within maximumConcurrency', async () => {
    // Prepare: one worker, each batch takes 100 ms; the mapping may run two batches, Lambda one.
    start({ workers: 1, delayMs: 100, maximumConcurrency: 2 });

    // Act
    publish(things(60));
    await rules.idle();

    // Assess: the messages wait in the queue rather than anywhere they could be dropped.
    expect(sqs.peek(QUEUE).length).toBeGreaterThan(0);
    await eventually('every message delivered', () => (deliveredThings().length >= 60 && sqs.peek(QUEUE).length === 0 ? true : undefined));
    await mapping.idle();
    expect(deliveredThings().sort()).toEqual(things(60).sort());
    expect(lambda.peakConcurrency(FUNCTION_NAME)).toBe(1);
    // Batches, not one invocation per message.
    expect(mapping.batchOutcomes().length).toBeLessThan(60);
    expect(sqs.peek(DLQ)).toEqual([]);
  });

  it('moves a message the function keeps failing on to the dead-letter queue after maxReceiveCount, without holding back its batch', async () => {
    // Prepare
    start({ workers: 2, delayMs: 0, maximumConcurrency: 2 });

    // Act
    publish([...things(5), 'poison-1']);
    await rules.idle();
    const [letter] = await eventually('the dead letter', () => (sqs.peek(DLQ).length > 0 ? sqs.peek(DLQ) : undefined));

    // Assess: the others were delivered once; the poison message was received maxReceiveCount times, then kept as the rule sent it.
    expect(deliveredThings().sort()).toEqual(things(5).sort());
    expect(letter.receiveCount).toBe(MAX_RECEIVE_COUNT);
    expect(JSON.parse(letter.body)).toMatchObject({ clientId: 'poison-1', topic: 'management/topic/poison-1/crt_ack', payload: Buffer.from('{}').toString('base64') });
    expect(sqs.peek(QUEUE)).toEqual([]);
    const returned = mapping.batchOutcomes().filter((b) => b.returned.length > 0);
    expect(returned).toHaveLength(MAX_RECEIVE_COUNT);
    for (const batch of returned) expect(batch.returned).toEqual([letter.messageId]);
  });

  it('records a rule error, and loses nothing silently, when the queue does not exist', async () => {
    // Prepare
    start({ workers: 1, delayMs: 0, maximumConcurrency: 2 });
    rules.createRule({ ruleName: 'rotor_crt_err', sql: "SELECT clientid() AS clientId FROM 'management/topic/+/crt_err'", queueUrl: 'http://127.0.0.1:1/000000000000/no-such-queue' });

    // Act
    rules.dispatch({ topic: 'management/topic/device-1/crt_err', payload: Buffer.from('{}'), clientId: 'device-1', principal: 'p', receivedAt: Date.now() });
    await rules.idle();

    // Assess
    expect(rules.ruleErrors()).toEqual([expect.objectContaining({ ruleName: 'rotor_crt_err', clientId: 'device-1', error: expect.stringContaining('QueueDoesNotExist') })]);
  });
});
