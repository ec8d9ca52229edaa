import { DescribeCertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { handleDeviceMessage, handleDeviceMessageBatch, handler, type DeviceMessageDeps } from '../../../functions/device-message.js';
import { awsErrors, clients, published } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { iotRuleEvent, sqsEvent } from '../../fixtures/events.js';
import { fakeContext } from '../../fixtures/lambda-context.js';
import { recordingTelemetry, type RecordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const sfn = mockClient(SFNClient);
const iotData = mockClient(IoTDataPlaneClient);
const iot = mockClient(IoTClient);
const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:rotor-rotate-device';

const THING = 'sensor-1';
const ROTATION = 'sensor-1-a01';
const OLD = 'a'.repeat(64);
const NEW = 'b'.repeat(64);
const TOKEN = 'AAAAKgAAAAIAAAAAAAAAAQ-secret-task-token';
const CSR = '-----BEGIN CERTIFICATE REQUEST-----\nMIIBsecretcsrbody\n-----END CERTIFICATE REQUEST-----\n';
const RECEIVED_AT = 1772366400000;

function record(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { pk: `thing#${THING}`, sk: 'current', thingName: THING, rotationId: ROTATION, status: 'IN_PROGRESS', oldCertificateId: OLD, ...fields };
}

const waitingForCsr = (): Record<string, unknown> => record({ waitFor: 'csr_res', taskToken: TOKEN });
const waitingForAck = (): Record<string, unknown> => record({ waitFor: 'crt_ack', taskToken: TOKEN, newCertificateId: NEW });

function deps(): DeviceMessageDeps & { telemetry: RecordingTelemetry } {
  return {
    db: clients.db(),
    tableName: 'rotations',
    sfn: clients.sfn(),
    iot: clients.iot(),
    iotData: clients.iotData(),
    stateMachineArn: STATE_MACHINE,
    clock: fakeClock(),
    telemetry: recordingTelemetry(),
  };
}

function given(item: Record<string, unknown> | undefined): void {
  db.on(GetCommand).resolves({ Item: item });
}

/** The registry's view of the rotation's certificates; absent ids are gone. */
function certificates(statuses: Record<string, string>): void {
  iot.on(DescribeCertificateCommand).callsFake((input: { certificateId: string }) => {
    const status = statuses[input.certificateId];
    if (!status) throw awsErrors.notFound();
    return { certificateDescription: { certificateId: input.certificateId, certificateArn: `arn:aws:iot:us-east-1:123456789012:cert/${input.certificateId}`, status, certificatePem: 'PEM' } };
  });
}

/** The lastIgnored writes made on the thing's record. */
function ignoredWrites(): Record<string, unknown>[] {
  return db
    .commandCalls(UpdateCommand)
    .map((call) => call.args[0].input)
    .filter((input) => input.UpdateExpression?.includes('lastIgnored'))
    .map((input) => (input.ExpressionAttributeValues ?? {})[':ignored'] as Record<string, unknown>);
}

beforeEach(() => {
  db.reset();
  sfn.reset();
  iotData.reset();
  iot.reset();
  db.on(UpdateCommand).resolves({});
  sfn.on(SendTaskSuccessCommand).resolves({});
  sfn.on(SendTaskFailureCommand).resolves({});
  sfn.on(StartExecutionCommand).resolves({});
  iotData.on(PublishCommand).resolves({});
});

describe('device-message: answering the rotation', () => {
  it('answers csr_res with the CSR and leaves the spent token for Issue certificate to clear', async () => {
    // Prepare
    given(waitingForCsr());
    const d = deps();

    // Act
    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'csr_res', body: { rotationId: ROTATION, CSR }, principal: OLD }), d);

    // Assess
    expect(result).toEqual({ action: 'answered' });
    const answer = sfn.commandCalls(SendTaskSuccessCommand)[0].args[0].input;
    expect(answer.taskToken).toBe(TOKEN);
    expect(JSON.parse(answer.output ?? '')).toEqual({ pem: CSR, receivedAt: new Date(RECEIVED_AT).toISOString() });
    // No write of its own: Issue's intent removes the token (rotation-table recordIssueIntent).
    expect(db.commandCalls(UpdateCommand)).toHaveLength(0);
    expect(d.telemetry.text()).not.toContain(TOKEN);
    expect(d.telemetry.text()).not.toContain('secretcsrbody');
  });

  it('answers a blog-era csr_res that carries no rotationId', async () => {
    given(waitingForCsr());

    await expect(handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'csr_res', body: { CSR }, principal: OLD }), deps())).resolves.toEqual({ action: 'answered' });
  });

  it('answers crt_ack made over the new certificate with the principal', async () => {
    given(waitingForAck());
    const order: string[] = [];
    db.on(UpdateCommand).callsFake((input: { UpdateExpression: string }) => order.push(input.UpdateExpression) && {});
    sfn.on(SendTaskSuccessCommand).callsFake(() => order.push('SendTaskSuccess') && {});

    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: ROTATION }, principal: NEW }), deps());

    expect(result).toEqual({ action: 'answered' });
    expect(JSON.parse(sfn.commandCalls(SendTaskSuccessCommand)[0].args[0].input.output ?? '')).toEqual({
      principal: NEW,
      ackedAt: new Date(RECEIVED_AT).toISOString(),
    });
    // The ack's certificate is on the record before the token is answered (Retire checks it).
    const [ack] = db.commandCalls(UpdateCommand).map((call) => call.args[0].input);
    expect(ack.UpdateExpression).toBe('SET ackedCertificateId = :cert');
    expect(ack.ExpressionAttributeValues).toEqual({ ':cert': NEW, ':rid': ROTATION, ':status': 'IN_PROGRESS' });
    // The spent token is left for Retire's finish (one transaction with the history item) to remove.
    expect(order).toEqual(['SET ackedCertificateId = :cert', 'SendTaskSuccess']);
  });

  it('does not answer an ack in time when the record changed before the ack was recorded', async () => {
    given(waitingForAck());
    db.on(UpdateCommand).rejectsOnce(awsErrors.conditionFailed()).resolves({});

    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: ROTATION }, principal: NEW }), deps());

    expect(result).toEqual({ action: 'ignored', reason: 'UNEXPECTED_MESSAGE' });
    expect(sfn.calls()).toHaveLength(0);
  });

  it('answers a v1.1 crt_err refusing csr_req (certificate not held) while waiting for the CSR', async () => {
    given(waitingForCsr());

    const result = await handleDeviceMessage(
      iotRuleEvent({ thingName: THING, type: 'crt_err', body: { rotationId: ROTATION, error: 'CERTIFICATE_NOT_HELD: aaaa' }, principal: OLD }),
      deps(),
    );

    expect(result).toEqual({ action: 'answered' });
    expect(sfn.commandCalls(SendTaskFailureCommand)[0].args[0].input).toEqual({ taskToken: TOKEN, error: 'DeviceReportedError', cause: 'CERTIFICATE_NOT_HELD: aaaa' });
  });

  it('fails the task with DeviceReportedError and the device text on crt_err', async () => {
    given(waitingForAck());

    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_err', body: { rotationId: ROTATION, error: 'TLS alert 42' }, principal: OLD }), deps());

    expect(result).toEqual({ action: 'answered' });
    expect(sfn.commandCalls(SendTaskFailureCommand)[0].args[0].input).toEqual({ taskToken: TOKEN, error: 'DeviceReportedError', cause: 'TLS alert 42' });
    // A failure answer clears the token it answered at once (Roll back runs next, not a state that writes it).
    const [release] = db.commandCalls(UpdateCommand).map((call) => call.args[0].input);
    expect(release.ConditionExpression).toBe('taskToken = :token');
    expect(release.UpdateExpression).toBe('SET updatedAt = :now REMOVE waitFor, taskToken');
  });

  it('still counts a crt_err as answered when the token was already replaced', async () => {
    given(waitingForAck());
    db.on(UpdateCommand).rejects(awsErrors.conditionFailed());

    await expect(
      handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_err', body: { rotationId: ROTATION, error: 'TLS alert 42' }, principal: OLD }), deps()),
    ).resolves.toEqual({ action: 'answered' });
  });

  it('lets a Step Functions throttling error escape so the invocation is retried', async () => {
    given(waitingForCsr());
    sfn.on(SendTaskSuccessCommand).rejects(awsErrors.named('ThrottlingException'));

    await expect(handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'csr_res', body: { CSR }, principal: OLD }), deps())).rejects.toMatchObject({
      name: 'ThrottlingException',
    });
  });
});

describe('device-message: what it ignores and records', () => {
  it('ignores an ack made over any other certificate, records it, and does not act on it', async () => {
    // Prepare
    given(waitingForAck());
    const d = deps();

    // Act
    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: ROTATION }, principal: OLD }), d);

    // Assess
    expect(result).toEqual({ action: 'ignored', reason: 'ACK_NOT_OVER_NEW_CERTIFICATE' });
    expect(sfn.calls()).toHaveLength(0);
    expect(ignoredWrites()).toEqual([{ type: 'crt_ack', reason: 'ACK_NOT_OVER_NEW_CERTIFICATE', rotationId: ROTATION, at: '2026-03-01T12:00:00.000Z' }]);
    const write = db.commandCalls(UpdateCommand)[0].args[0].input;
    expect(write.ConditionExpression).toBe('attribute_exists(pk)');
    expect(write.UpdateExpression).toContain('ADD ignoredCount :one');
    expect(d.telemetry.metrics).toContainEqual({ name: 'IgnoredMessages', value: 1, dimensions: { reason: 'ACK_NOT_OVER_NEW_CERTIFICATE' } });
  });

  const cases: [string, Record<string, unknown> | undefined, Parameters<typeof iotRuleEvent>[0], string, boolean][] = [
    ['a payload that is not JSON', waitingForCsr(), { thingName: THING, type: 'csr_res', body: 'CSR please', principal: OLD }, 'MALFORMED', true],
    ['a csr_res without CSR', waitingForCsr(), { thingName: THING, type: 'csr_res', body: { rotationId: ROTATION }, principal: OLD }, 'MALFORMED', true],
    ['a topic that is not a device → cloud topic', waitingForCsr(), { thingName: THING, type: 'csr_req', body: {}, principal: OLD }, 'MALFORMED', true],
    ['a client publishing on another thing’s topic', waitingForCsr(), { thingName: 'sensor-2', clientId: THING, type: 'csr_res', body: { CSR }, principal: OLD }, 'TOPIC_MISMATCH', true],
    ['a thing without a record', undefined, { thingName: THING, type: 'csr_res', body: { CSR }, principal: OLD }, 'UNKNOWN_THING', false],
    ['a message when no rotation is in flight', record({ status: 'SUCCEEDED' }), { thingName: THING, type: 'crt_ack', body: {}, principal: NEW }, 'NO_ROTATION_IN_FLIGHT', true],
    ['a stale rotation id', waitingForCsr(), { thingName: THING, type: 'csr_res', body: { rotationId: 'older', CSR }, principal: OLD }, 'STALE_ROTATION_ID', true],
    ['an ack while the rotation waits for a CSR', record({ waitFor: 'csr_res', taskToken: TOKEN, newCertificateId: NEW }), { thingName: THING, type: 'crt_ack', body: {}, principal: NEW }, 'UNEXPECTED_MESSAGE', true],
    ['an ack before any new certificate exists', waitingForCsr(), { thingName: THING, type: 'crt_ack', body: {}, principal: NEW }, 'ACK_NOT_OVER_NEW_CERTIFICATE', true],
    ['a csr_res over another certificate (client/* policy)', waitingForCsr(), { thingName: THING, type: 'csr_res', body: { CSR }, principal: 'c'.repeat(64) }, 'CSR_NOT_OVER_OLD_CERTIFICATE', true],
    ['a csr_res over the new certificate', waitingForAck(), { thingName: THING, type: 'csr_res', body: { CSR }, principal: NEW }, 'CSR_NOT_OVER_OLD_CERTIFICATE', true],
    ['a crt_err over a third certificate', waitingForAck(), { thingName: THING, type: 'crt_err', body: { error: 'x' }, principal: 'c'.repeat(64) }, 'ERROR_NOT_OVER_ROTATION_CERTIFICATE', true],
    ['a crt_err with no principal', waitingForAck(), { thingName: THING, type: 'crt_err', body: { error: 'x' }, principal: '' }, 'ERROR_NOT_OVER_ROTATION_CERTIFICATE', true],
    ['a csr_res while the rotation waits for an ack', waitingForAck(), { thingName: THING, type: 'csr_res', body: { CSR }, principal: OLD }, 'UNEXPECTED_MESSAGE', true],
    ['a message while no token is parked', record(), { thingName: THING, type: 'csr_res', body: { CSR }, principal: OLD }, 'UNEXPECTED_MESSAGE', true],
    ['a crt_err for a failed rotation', record({ status: 'FAILED' }), { thingName: THING, type: 'crt_err', body: { error: 'x' }, principal: OLD }, 'NO_ROTATION_IN_FLIGHT', true],
  ];

  it.each(cases)('ignores %s', async (_name, item, event, reason, recorded) => {
    // Prepare
    given(item);

    // Act
    const result = await handleDeviceMessage(iotRuleEvent(event), deps());

    // Assess
    expect(result).toEqual({ action: 'ignored', reason });
    expect(sfn.calls()).toHaveLength(0);
    expect(iotData.calls()).toHaveLength(0);
    expect(ignoredWrites()).toHaveLength(recorded ? 1 : 0);
    if (recorded) expect(ignoredWrites()[0]).toMatchObject({ reason });
  });

  it('records a duplicate when Step Functions says the token is spent', async () => {
    for (const name of ['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken']) {
      db.resetHistory();
      given(waitingForCsr());
      sfn.on(SendTaskSuccessCommand).rejects(awsErrors.named(name));

      const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'csr_res', body: { CSR }, principal: OLD }), deps());

      expect(result).toEqual({ action: 'ignored', reason: 'DUPLICATE' });
      expect(ignoredWrites()).toHaveLength(1);
    }
  });

  it.each([
    ['no event', undefined],
    ['an empty object', {}],
    ['a number', 7],
    ['a missing payload', { clientId: THING, topic: `management/topic/${THING}/csr_res`, principal: OLD }],
  ])('never throws for %s', async (_name, event) => {
    given(waitingForCsr());
    await expect(handleDeviceMessage(event, deps())).resolves.toMatchObject({ action: 'ignored', reason: 'MALFORMED' });
    expect(sfn.calls()).toHaveLength(0);
  });
});

describe('device-message: a rotation that already failed', () => {
  it('answers a late crt_ack with abort and the reason code while the old certificate is ACTIVE and the new one is gone', async () => {
    given(record({ status: 'FAILED', step: 'Deliver certificate', reason: 'NO_ACK', newCertificateId: NEW }));
    certificates({ [OLD]: 'ACTIVE' });

    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: ROTATION }, principal: NEW }), deps());

    expect(result).toEqual({ action: 'aborted', reason: 'NO_ACK' });
    expect(published(iotData)).toEqual([{ topic: `management/topic/${THING}/abort`, qos: 1, body: { rotationId: ROTATION, reason: 'NO_ACK' } }]);
    expect(ignoredWrites()).toHaveLength(1);
    expect(sfn.calls()).toHaveLength(0);
  });

  it('answers a late csr_res without rotationId with abort', async () => {
    given(record({ status: 'FAILED', step: 'Request CSR', reason: 'NO_CSR_RESPONSE' }));
    certificates({ [OLD]: 'ACTIVE' });

    await expect(handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'csr_res', body: { CSR }, principal: OLD }), deps())).resolves.toEqual({
      action: 'aborted',
      reason: 'NO_CSR_RESPONSE',
    });
  });

  it('never aborts when the old certificate is no longer ACTIVE (after ROLLBACK_FAILED)', async () => {
    given(record({ status: 'FAILED', step: 'Roll back', reason: 'ROLLBACK_FAILED', newCertificateId: NEW }));
    certificates({ [OLD]: 'INACTIVE', [NEW]: 'INACTIVE' });

    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: ROTATION }, principal: NEW }), deps());

    expect(result).toEqual({ action: 'ignored', reason: 'OLD_CERTIFICATE_NOT_ACTIVE' });
    expect(iotData.calls()).toHaveLength(0);
    expect(sfn.calls()).toHaveLength(0);
  });

  it('records a late crt_ack over the live new certificate, then starts the resume execution', async () => {
    given(record({ status: 'FAILED', step: 'Roll back', reason: 'ROLLBACK_FAILED', newCertificateId: NEW, auditTaskId: 'task-1' }));
    certificates({ [OLD]: 'INACTIVE', [NEW]: 'ACTIVE' });

    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: ROTATION }, principal: NEW }), deps());

    expect(result).toEqual({ action: 'resumed', executionName: expect.stringMatching(/^sensor-1-f[0-9a-f]{20}$/) });
    const write = db.commandCalls(UpdateCommand)[0].args[0].input;
    expect(write.UpdateExpression).toBe('SET ackedCertificateId = :cert');
    expect(write.ConditionExpression).toBe('rotationId = :rid AND #status = :status AND newCertificateId = :cert');
    expect(write.ExpressionAttributeValues).toEqual({ ':cert': NEW, ':rid': ROTATION, ':status': 'FAILED' });
    const start = sfn.commandCalls(StartExecutionCommand)[0].args[0].input;
    expect(start.stateMachineArn).toBe(STATE_MACHINE);
    expect(JSON.parse(start.input ?? '')).toEqual({ thingName: THING, certificateId: OLD, trigger: 'resume', resume: { newCertificateId: NEW }, auditTaskId: 'task-1' });
    expect(iotData.calls()).toHaveLength(0);
  });

  it('treats a second late ack as a duplicate when the resume execution already exists', async () => {
    given(record({ status: 'FAILED', step: 'Deliver certificate', reason: 'NO_ACK', newCertificateId: NEW }));
    certificates({ [OLD]: 'ACTIVE', [NEW]: 'ACTIVE' });
    sfn.on(StartExecutionCommand).rejects(awsErrors.named('ExecutionAlreadyExists'));

    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: ROTATION }, principal: NEW }), deps());

    expect(result).toEqual({ action: 'ignored', reason: 'DUPLICATE' });
    expect(iotData.calls()).toHaveLength(0);
  });

  it('does not resume when the record moved on before the ack was recorded', async () => {
    given(record({ status: 'FAILED', step: 'Deliver certificate', reason: 'NO_ACK', newCertificateId: NEW }));
    certificates({ [OLD]: 'ACTIVE', [NEW]: 'ACTIVE' });
    db.on(UpdateCommand).rejectsOnce(awsErrors.conditionFailed()).resolves({});

    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: ROTATION }, principal: NEW }), deps());

    expect(result).toEqual({ action: 'ignored', reason: 'DUPLICATE' });
    expect(sfn.calls()).toHaveLength(0);
  });

  it('does not abort when the rotation failed while retiring: the old certificate may be gone', async () => {
    given(record({ status: 'FAILED', step: 'Retire old certificate', reason: 'RETIRE_FAILED', newCertificateId: NEW }));
    certificates({ [OLD]: 'ACTIVE', [NEW]: 'INACTIVE' });

    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: ROTATION }, principal: NEW }), deps());

    expect(result).toEqual({ action: 'ignored', reason: 'NO_ROTATION_IN_FLIGHT' });
    expect(iotData.calls()).toHaveLength(0);
  });

  it('does not abort for an ack naming an older rotation', async () => {
    given(record({ status: 'FAILED', step: 'Deliver certificate' }));

    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: 'older' }, principal: NEW }), deps());

    expect(result).toEqual({ action: 'ignored', reason: 'NO_ROTATION_IN_FLIGHT' });
    expect(iotData.calls()).toHaveLength(0);
    expect(iot.calls()).toHaveLength(0);
  });
});

describe('device-message: batches from the device-message queue', () => {
  const OTHER = 'sensor-2';

  /** The record of each thing, and which thing's Step Functions answer is throttled. */
  function givenThings(records: Record<string, Record<string, unknown>>, throttled: string[] = []): void {
    db.on(GetCommand).callsFake((input: { Key: { pk: string } }) => ({ Item: records[input.Key.pk.replace('thing#', '')] }));
    sfn.on(SendTaskSuccessCommand).callsFake((input: { taskToken: string }) => {
      if (throttled.some((thing) => input.taskToken.endsWith(thing))) throw awsErrors.named('ThrottlingException');
      return {};
    });
  }

  it('answers every record and reports no failure', async () => {
    // Prepare
    givenThings({ [THING]: record({ waitFor: 'csr_res', taskToken: `${TOKEN}-${THING}` }), [OTHER]: record({ thingName: OTHER, waitFor: 'csr_res', taskToken: `${TOKEN}-${OTHER}` }) });
    const event = sqsEvent([
      { messageId: 'm-1', body: iotRuleEvent({ thingName: THING, type: 'csr_res', body: { CSR }, principal: OLD }) },
      { messageId: 'm-2', body: iotRuleEvent({ thingName: OTHER, type: 'csr_res', body: { CSR }, principal: OLD }) },
    ]);

    // Act
    const result = await handleDeviceMessageBatch(event, deps());

    // Assess
    expect(result).toEqual({ batchItemFailures: [] });
    expect(sfn.commandCalls(SendTaskSuccessCommand).map((call) => call.args[0].input.taskToken).sort()).toEqual([`${TOKEN}-${OTHER}`, `${TOKEN}-${THING}`].sort());
  });

  it('returns only the record whose handling failed transiently; the others succeed', async () => {
    // Prepare
    givenThings({ [THING]: record({ waitFor: 'csr_res', taskToken: `${TOKEN}-${THING}` }), [OTHER]: record({ thingName: OTHER, waitFor: 'csr_res', taskToken: `${TOKEN}-${OTHER}` }) }, [OTHER]);
    const d = deps();
    const event = sqsEvent([
      { messageId: 'm-1', body: iotRuleEvent({ thingName: THING, type: 'csr_res', body: { CSR }, principal: OLD }) },
      { messageId: 'm-2', body: iotRuleEvent({ thingName: OTHER, type: 'csr_res', body: { CSR }, principal: OLD }) },
    ]);

    // Act
    const result = await handleDeviceMessageBatch(event, d);

    // Assess
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'm-2' }] });
    expect(d.telemetry.text()).toContain('m-2');
    expect(d.telemetry.text()).not.toContain(TOKEN);
    // m-1 answered its rotation: it is deleted, never handled twice.
    expect(sfn.commandCalls(SendTaskSuccessCommand).map((call) => call.args[0].input.taskToken)).toContain(`${TOKEN}-${THING}`);
  });

  it('records and drops a body that is not JSON or not a rule event: it succeeds, so it is never received again', async () => {
    // Prepare
    given(waitingForCsr());
    const d = deps();
    const event = sqsEvent([
      { messageId: 'not-json', body: '{"payload": tru' },
      { messageId: 'not-a-rule-event', body: { clientId: THING, topic: 42 } },
    ]);

    // Act
    const result = await handleDeviceMessageBatch(event, d);

    // Assess
    expect(result).toEqual({ batchItemFailures: [] });
    expect(d.telemetry.metrics.filter((metric) => metric.name === 'IgnoredMessages')).toHaveLength(2);
    expect(ignoredWrites()).toEqual([expect.objectContaining({ reason: 'MALFORMED', type: 'unknown' })]);
    expect(sfn.calls()).toHaveLength(0);
  });

  it('handles one thing\'s records in the order they came, one at a time', async () => {
    // Prepare: the csr_res's answer is slow; the crt_err after it must not overtake it.
    given(waitingForCsr());
    const order: string[] = [];
    sfn.on(SendTaskSuccessCommand).callsFake(async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      order.push('csr_res');
      return {};
    });
    sfn.on(SendTaskFailureCommand).callsFake(() => {
      order.push('crt_err');
      return {};
    });
    const event = sqsEvent([
      { messageId: 'first', body: iotRuleEvent({ thingName: THING, type: 'csr_res', body: { CSR }, principal: OLD }) },
      { messageId: 'second', body: iotRuleEvent({ thingName: THING, type: 'crt_err', body: { error: 'disk full' }, principal: OLD }) },
    ]);

    // Act
    await handleDeviceMessageBatch(event, deps());

    // Assess
    expect(order[0]).toBe('csr_res');
  });
});

describe('device-message handler', () => {
  it('runs through middy and returns the action', async () => {
    process.env.TABLE_NAME = 'rotations';
    process.env.AWS_REGION = 'us-east-1';
    process.env.STATE_MACHINE_ARN = STATE_MACHINE;
    given(waitingForAck());

    const result = await handler(iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: ROTATION }, principal: NEW }), fakeContext());

    expect(result).toEqual({ action: 'answered' });
  });

  it('takes the queue\'s batch event and answers with batchItemFailures', async () => {
    process.env.TABLE_NAME = 'rotations';
    process.env.AWS_REGION = 'us-east-1';
    process.env.STATE_MACHINE_ARN = STATE_MACHINE;
    given(waitingForAck());

    const result = await handler(sqsEvent([{ messageId: 'm-1', body: iotRuleEvent({ thingName: THING, type: 'crt_ack', body: { rotationId: ROTATION }, principal: NEW }) }]), fakeContext());

    expect(result).toEqual({ batchItemFailures: [] });
    expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(1);
  });
});
