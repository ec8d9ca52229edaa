import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { runOperatorCli } from '../../cli/operator/index';
import type { Target } from '../../cli/operator/target';
import { EdgeServer } from '../../local/edge/edge-server';
import { LambdaService } from '../../local/lambda/lambda-service';
import { SqsService } from '../../local/sqs/sqs-service';
import { scaledClock } from '../../local/types';
import { deadLetterQueueName } from '../../wiring/index';
import { capturedIo } from '../unit/cli/fake-target';

/**
 * `rotor dlq list|replay` against the local SQS and Lambda through the edge: events that
 * failed every asynchronous attempt are listed from the dead-letter queue, replayed with their
 * original payload, and deleted only when the function then succeeds. The function fails while
 * a marker file exists, so a test decides when the replay can succeed.
 */
const FUNCTION = `
  import { existsSync } from 'node:fs';
  export const handler = async (event) => {
    if (existsSync(process.env.FAIL_MARKER)) { const e = new Error('Rate exceeded'); e.name = 'ThrottlingException'; throw e; }
    if (event.Records) return { batchItemFailures: event.Records.filter((r) => r.body.includes('poison')).map((r) => ({ itemIdentifier: r.messageId })) };
    return { action: 'answered', topic: event.topic };
  };`;

describe('rotor dlq on the local runtime', () => {
  let dir: string;
  let marker: string;
  let edge: EdgeServer;
  let lambda: LambdaService;
  let sqs: SqsService;
  let url: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-cli-dlq-'));
    marker = join(dir, 'fail');
    writeFileSync(join(dir, 'fn.mjs'), FUNCTION);
    edge = new EdgeServer({ port: 0 });
    url = await edge.start();
    sqs = new SqsService({ endpointUrl: url });
    lambda = new LambdaService({ endpointUrl: url, output: () => undefined, clock: scaledClock(0.0001), destinations: sqs });
    edge.register(lambda).register(sqs);
    for (const fn of ['device-message', 'start-rotations']) {
      lambda.deploy({ name: `rotor-${fn}`, bundlePath: join(dir, 'fn.mjs'), timeoutSeconds: 5, environment: { FAIL_MARKER: marker } });
      sqs.createQueue(deadLetterQueueName(fn));
      lambda.putEventInvokeConfig(`rotor-${fn}`, { onFailure: sqs.queueArn(deadLetterQueueName(fn)) });
    }
  });

  afterAll(async () => {
    await lambda.stop();
    await edge.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function localTarget(): Target {
    const config = { region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };
    return {
      kind: 'local',
      region: 'us-east-1',
      tableName: 'rotor-rotations',
      endpoint: url,
      clients: { ddb: DynamoDBDocumentClient.from(new DynamoDBClient(config)), sfn: new SFNClient(config), iot: new IoTClient(config) },
      stateMachineArn: async () => 'unused',
      destroy: () => undefined,
    };
  }

  async function cli(argv: string[], interactive = false, answer = false) {
    const io = capturedIo({ interactive, answer });
    const code = await runOperatorCli(argv, { io, connect: async () => localTarget() });
    return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n'), questions: io.questions };
  }

  const waiting = (fn: string) => sqs.peek(deadLetterQueueName(fn));

  it('lists, refuses to replay several without --yes, dry-runs, then replays and deletes only what succeeded', async () => {
    // Prepare: two device messages that fail every attempt, and one message that is not an invocation record.
    writeFileSync(marker, '');
    for (const thing of ['dev-1', 'dev-2']) {
      await lambda.invoke('rotor-device-message', { topic: `management/topic/${thing}/crt_ack`, clientId: thing, payload: 'e30=', principal: 'p', receivedAt: 1 }, 'Event');
    }
    await lambda.settled();
    sqs.sendToArn(sqs.queueArn(deadLetterQueueName('device-message')), 'not a record');
    expect(waiting('device-message')).toHaveLength(3);

    // Act / Assess: list.
    const listed = await cli(['dlq', 'list', '--local']);
    expect(listed.code).toBe(0);
    expect(listed.out).toContain('device-message: 3 waiting, 0 in flight');
    expect(listed.out).toContain('start-rotations: 0 waiting');
    expect(listed.out).toContain('RetriesExhausted after 3 attempts');
    expect(listed.out).toContain('management/topic/dev-1/crt_ack from dev-1');
    expect(listed.out).toContain('ThrottlingException: Rate exceeded');
    expect(listed.out).toContain('unreadable: the message body is not JSON');
    const json = JSON.parse((await cli(['dlq', 'list', '--local', '--function', 'device-message', '--json'])).out) as { letters: unknown[] };
    expect(json.letters).toHaveLength(3);

    // Several messages, no terminal, no --yes: refused, and nothing stays hidden.
    const refused = await cli(['dlq', 'replay', '--local']);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('re-run with --yes');
    expect((await cli(['dlq', 'list', '--local', '--json'])).out).toContain('"visible": 3');

    // A person who answers no.
    const declined = await cli(['dlq', 'replay', '--local'], true, false);
    expect(declined.questions).toEqual(['Replay 3 dead letters?']);
    expect(waiting('device-message')).toHaveLength(3);

    // Dry run: listed, nothing invoked or deleted.
    const invocationsBefore = lambda.invocations('rotor-device-message').length;
    const dry = await cli(['dlq', 'replay', '--local', '--dry-run']);
    expect(dry.out).toContain('dry run: 3 dead letter(s) would be replayed');
    expect(lambda.invocations('rotor-device-message')).toHaveLength(invocationsBefore);

    // The function still fails: replay reports it, keeps the messages, exits 1.
    const stillFailing = await cli(['dlq', 'replay', '--local', '--yes']);
    expect(stillFailing.code).toBe(1);
    expect(stillFailing.out).toContain('0 replayed, 2 failed, 1 skipped');
    expect(stillFailing.out).toMatch(/failed +device-message .*ThrottlingException: Rate exceeded \(kept in the queue\)/);
    expect(waiting('device-message')).toHaveLength(3);

    // The cause is gone: both records are replayed with their original event and deleted; the unreadable one stays.
    unlinkSync(marker);
    const replayed = await cli(['dlq', 'replay', '--local', '--yes']);
    expect(replayed.code).toBe(0);
    expect(replayed.out).toContain('2 replayed, 0 failed, 1 skipped');
    expect(replayed.out).toContain(': answered (deleted from the queue)');
    expect(waiting('device-message').map((m) => m.body)).toEqual(['not a record']);
    expect(existsSync(marker)).toBe(false);
  }, 30_000);

  it('lists the rule queue\'s redriven device messages and replays each as a one-record batch, keeping one the function still reports failed', async () => {
    // Prepare: what the rule queue's redrive policy moves to device-message's dead-letter queue: the rule's event as it was sent.
    const dlq = sqs.queueArn(deadLetterQueueName('device-message'));
    for (const thing of ['dev-3', 'poison-4']) {
      sqs.sendToArn(dlq, JSON.stringify({ topic: `management/topic/${thing}/crt_ack`, clientId: thing, payload: 'e30=', principal: 'p', receivedAt: 1 }));
    }

    // Act
    const listed = await cli(['dlq', 'list', '--local', '--function', 'device-message']);
    const replayed = await cli(['dlq', 'replay', '--local', '--function', 'device-message', '--yes']);

    // Assess
    expect(listed.out).toMatch(/device-message: \d+ waiting/);
    expect(listed.out).toMatch(/device-message \S+ {2}sent \S+ {2}MaxReceiveCountExceeded after 5 attempts/);
    expect(listed.out).toContain('management/topic/dev-3/crt_ack from dev-3');
    expect(replayed.out).toMatch(/1 replayed, 1 failed, \d+ skipped/);
    expect(replayed.out).toMatch(/failed +device-message .*batchItemFailures/);
    expect(replayed.code).toBe(1);
    const left = waiting('device-message').map((m) => m.body).join('\n');
    expect(left).toContain('poison-4');
    expect(left).not.toContain('dev-3');
  }, 30_000);

  it('refuses an unknown --function before connecting', async () => {
    const result = await cli(['dlq', 'list', '--local', '--function', 'issue-certificate']);
    expect(result.code).toBe(2);
    expect(result.err).toContain('--function must be one of the functions with a dead-letter queue (device-message, start-rotations)');
  });
});
