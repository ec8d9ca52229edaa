import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { runOperatorCli } from '../../cli/operator/index';
import { auditExecutionName } from '../../domain/naming';
import { CURRENT_SK, thingPk, type RotationRecord } from '../../domain/records';
import { RotationStatus, Step, type RotationInput } from '../../domain/rotation';
import { MessageType } from '../../domain/topics';
import { DEVICE_POLICY_NAME, startLocalAws, type LocalAws } from '../../local/runtime';
import { deadLetterQueueName } from '../../wiring/index';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';
import { identityOf, newPendingKey, ScriptedDevice, type BrokerAddress } from '../fixtures/scripted-device';
import { capturedIo } from '../unit/cli/fake-target';

/**
 * Issue 9, scenario 8 on the real bundles, through the rule queue of issue 10 part 4: a crt_ack
 * whose handling fails every time (Step Functions throttles SendTaskSuccess throughout) is not
 * lost. The IoT rule reports no error (it only sends to the queue), the event source mapping
 * hands the message to device-message maxReceiveCount times, the queue's redrive policy then
 * moves it, as the rule sent it, to device-message's dead-letter queue, and
 * `rotor dlq replay --local` answers the parked task token: the rotation completes as if the
 * ack had just arrived.
 *
 * Time: at scale 0.002 the queue's visibility timeout (180 s) lasts 0.36 s, but each attempt
 * runs in real time, and the function's SDK backs off through its throttled calls for about
 * 15 s: the queue gives up after 2 receives here (the wiring's 5 would take minutes on a loaded
 * machine), so the dead letter takes about half a minute. The ack timeout (200,000 s = 400 s
 * here) is never reached.
 */
const TIME_SCALE = 0.002;
const SETTINGS = { csrTimeoutSeconds: 200_000, ackTimeoutSeconds: 200_000 };
const WAIT_MS = 30_000;
const MAX_RECEIVE_COUNT = 2;
/** MAX_RECEIVE_COUNT attempts of ~15 s of SDK backoff each, on a loaded machine. */
const DEAD_LETTER_WAIT_MS = 180_000;
const describeWithBundles = bundlesDescribe('test/e2e/dead-letters.test.ts');

async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describeWithBundles('dead letters on the local runtime', () => {
  let dataDir: string;
  let aws: LocalAws;
  let sfn: SFNClient;
  let ddb: DynamoDBDocumentClient;
  let broker: BrokerAddress;
  let device: ScriptedDevice | undefined;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'rotor-dlq-e2e-'));
    aws = await startLocalAws({ port: 0, mqttPort: 0, dataDir, timeScale: TIME_SCALE, settings: SETTINGS, functionConcurrency: 2, ruleQueue: { maxReceiveCount: MAX_RECEIVE_COUNT } });
    const config = { endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'dlq', secretAccessKey: 'dlq' } };
    sfn = new SFNClient(config);
    ddb = DynamoDBDocumentClient.from(new DynamoDBClient(config));
    broker = { host: aws.endpoints.mqtt.host, port: aws.endpoints.mqtt.port, caPem: aws.caPem };
  }, 60_000);

  afterAll(async () => {
    await device?.close();
    sfn?.destroy();
    ddb?.destroy();
    await aws?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  async function record(thing: string): Promise<RotationRecord> {
    const { Item } = await ddb.send(new GetCommand({ TableName: aws.endpoints.tableName, Key: { pk: thingPk(thing), sk: CURRENT_SK }, ConsistentRead: true }));
    return Item as RotationRecord;
  }

  it('a crt_ack whose invocation fails every attempt lands in the dead-letter queue, and a replay completes the rotation', async () => {
    // Prepare: a device, its rotation, up to the moment it acks over the new certificate.
    const thing = 'dlq-ack';
    const first = await newPendingKey(thing);
    const provisioned = await aws.iot.registry.provisionDevice({ thingName: thing, policyName: DEVICE_POLICY_NAME, csrPem: first.csrPem, expiresInDays: 5 });
    const old = identityOf(first, provisioned.certificatePem);
    device = await ScriptedDevice.connect(thing, broker, old);
    const input: RotationInput = { thingName: thing, certificateId: old.certificateId, trigger: 'audit', auditTaskId: 'dlq-task' };
    const rotationId = auditExecutionName(thing, old.certificateId, 'dlq-task');
    const started = await sfn.send(new StartExecutionCommand({ stateMachineArn: aws.endpoints.stateMachineArn, name: rotationId, input: JSON.stringify(input) }));
    await device.next(MessageType.CsrRequest, WAIT_MS);
    const pending = await newPendingKey(thing);
    await device.publish(MessageType.CsrResponse, { rotationId, CSR: pending.csrPem });
    const crt = await device.next(MessageType.CertificateResponse, WAIT_MS);
    const fresh = identityOf(pending, crt.certificatePem);
    const executionArn = started.executionArn as string;
    await eventually('the ack wait', async () => ((await record(thing)).step === Step.DeliverCertificate && (await record(thing)).taskToken ? true : undefined));

    // Act 1: Step Functions throttles every SendTaskSuccess while the ack is handled.
    const dlq = deadLetterQueueName('device-message');
    const batchesBefore = aws.ruleQueueMapping.batchOutcomes().length;
    aws.edge.faults.throttle('states', 'SendTaskSuccess', 1_000);
    await device.reconnect(fresh);
    await device.publish(MessageType.CertificateAck, { rotationId });
    const [letter] = await eventually('the dead letter', () => (aws.sqs.peek(dlq).length > 0 ? aws.sqs.peek(dlq) : undefined), DEAD_LETTER_WAIT_MS);
    aws.edge.faults.throttle('states', 'SendTaskSuccess', 0);

    // Assess 1: maxReceiveCount attempts, each returned by the function alone; the rule's event kept as sent; no rule error; the rotation still waiting.
    const maxReceiveCount = MAX_RECEIVE_COUNT;
    const returned = aws.ruleQueueMapping.batchOutcomes().slice(batchesBefore).filter((batch) => batch.returned.includes(letter.messageId));
    expect(returned).toHaveLength(maxReceiveCount);
    // ReportBatchItemFailures: the function answered (no function error) and named the record.
    for (const batch of returned) expect(batch.error).toBeUndefined();
    expect(letter.receiveCount).toBe(maxReceiveCount);
    const deadEvent = JSON.parse(letter.body) as { topic: string; principal: string };
    expect(deadEvent).toMatchObject({ topic: `management/topic/${thing}/crt_ack`, principal: fresh.certificateId });
    expect(aws.iot.rules.ruleErrors()).toEqual([]);
    expect((await sfn.send(new DescribeExecutionCommand({ executionArn }))).status).toBe('RUNNING');
    expect(device.received(MessageType.RotationDone)).toEqual([]);

    // Act 2: the operator lists and replays the dead letters, as docs/operations.md says.
    const listIo = capturedIo();
    expect(await runOperatorCli(['dlq', 'list', '--local', '--data-dir', dataDir], { io: listIo })).toBe(0);
    const replayIo = capturedIo();
    const code = await runOperatorCli(['dlq', 'replay', '--local', '--data-dir', dataDir, '--yes'], { io: replayIo });

    // Assess 2: replayed and deleted; the rotation finishes as a success.
    expect(listIo.stdout.join('\n')).toContain(`management/topic/${thing}/crt_ack from ${thing}`);
    expect(replayIo.stderr).toEqual([]);
    expect(code).toBe(0);
    expect(replayIo.stdout.join('\n')).toContain('1 replayed, 0 failed, 0 skipped');
    expect(aws.sqs.peek(dlq)).toEqual([]);
    const done = await device.next(MessageType.RotationDone, WAIT_MS);
    expect(done.rotationId).toBe(rotationId);
    await aws.stepFunctions.waitForExecution(executionArn);
    expect((await sfn.send(new DescribeExecutionCommand({ executionArn }))).status).toBe('SUCCEEDED');
    expect(await record(thing)).toMatchObject({ status: RotationStatus.Succeeded, rotationId, newCertificateId: fresh.certificateId });
  }, 420_000);
});
