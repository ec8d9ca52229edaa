import { DescribeCertificateCommand, IoTClient, ListThingPrincipalsCommand } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { handleDeviceMessage, type DeviceMessageDeps } from '../../../functions/device-message.js';
import { recordTrust } from '../../../functions/trust-record.js';
import { requestTrust } from '../../../functions/trust-request.js';
import { awsErrors, clients, published } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { iotRuleEvent } from '../../fixtures/events.js';
import { recordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const iotData = mockClient(IoTDataPlaneClient);
const sfn = mockClient(SFNClient);
const iot = mockClient(IoTClient);

const THING = 'sensor-1';
const UPDATE = 'sensor-1-t01';
const BUNDLE_ID = 'c'.repeat(64);
const CERT = 'a'.repeat(64);
const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAAfake-task-token';
const BUNDLE = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const table = () => ({ db: clients.db(), tableName: 'rotations', clock: fakeClock(), telemetry: recordingTelemetry() });

beforeEach(() => {
  db.reset();
  iotData.reset();
  sfn.reset();
  iot.reset();
});

describe('trust-request', () => {
  const input = { thingName: THING, updateId: UPDATE, bundleId: BUNDLE_ID, bundle: BUNDLE, taskToken: TOKEN, attempt: 0 };

  it('parks the token on the trust record, then publishes trust_req with the bundle', async () => {
    // Prepare
    db.on(UpdateCommand).resolves({});
    // Act
    await requestTrust(input, { ...table(), iotData: clients.iotData() });
    // Assess
    const update = db.commandCalls(UpdateCommand)[0].args[0].input;
    expect(update.Key).toEqual({ pk: 'thing#sensor-1', sk: 'trust' });
    expect(update.ConditionExpression).toContain('updateId = :uid');
    expect(published(iotData)).toEqual([{ topic: 'management/topic/sensor-1/trust_req', qos: 1, body: { rotationId: UPDATE, bundle: BUNDLE, bundleId: BUNDLE_ID } }]);
  });

  it('sends nothing when the update lost the record (ClaimLost)', async () => {
    db.on(UpdateCommand).rejects(awsErrors.conditionFailed());
    await expect(requestTrust(input, { ...table(), iotData: clients.iotData() })).rejects.toMatchObject({ name: 'ClaimLost' });
    expect(published(iotData)).toEqual([]);
  });

  it('refuses a bundle id that is not 64 hex characters', async () => {
    await expect(requestTrust({ ...input, bundleId: 'nope' }, { ...table(), iotData: clients.iotData() })).rejects.toMatchObject({ name: 'InvalidInput' });
  });
});

describe('trust-record', () => {
  const base = { thingName: THING, updateId: UPDATE, executionArn: 'arn:aws:states:us-east-1:123456789012:execution:rotor-trust-update:sensor-1-t01', bundleId: BUNDLE_ID };

  it('records UPDATED with the acked bundle as the device current one', async () => {
    db.on(UpdateCommand).resolves({});
    const deps = table();
    await expect(recordTrust({ ...base, answer: { bundleId: BUNDLE_ID, certificateId: CERT } }, deps)).resolves.toEqual({ outcome: 'UPDATED' });
    const values = db.commandCalls(UpdateCommand)[0].args[0].input.ExpressionAttributeValues;
    expect(values).toEqual(expect.objectContaining({ ':status': 'UPDATED', ':bundle': BUNDLE_ID, ':cert': CERT }));
    expect(deps.telemetry.metrics).toEqual([{ name: 'TrustUpdatesUpdated', value: 1 }]);
  });

  it.each([
    ['a trust_err', { Error: 'TrustRefused', Cause: JSON.stringify({ reason: 'TRUST_CONNECT_FAILED', error: 'verify failed' }) }, 'REFUSED', 'TRUST_CONNECT_FAILED', 'TrustUpdatesRefused'],
    ['no answer', { Error: 'States.Timeout', Cause: '' }, 'NOT_UPDATED', 'NO_ACK', 'TrustUpdatesNotUpdated'],
    ['a failed function', { Error: 'ClaimLost', Cause: 'lost' }, 'NOT_UPDATED', 'INTERNAL_ERROR', 'TrustUpdatesNotUpdated'],
  ])('records %s with its reason, counts it and composes one escalation', async (_what, error, outcome, reason, metric) => {
    db.on(UpdateCommand).resolves({});
    const deps = table();
    const result = await recordTrust({ ...base, error }, deps);
    expect(deps.telemetry.metrics).toEqual([{ name: metric, value: 1, dimensions: { reason } }]);
    expect(result).toEqual(expect.objectContaining({ outcome }));
    expect(db.commandCalls(UpdateCommand)[0].args[0].input.ExpressionAttributeValues).toEqual(expect.objectContaining({ ':status': outcome, ':reason': reason }));
    expect((result as { escalation: { subject: string } }).escalation.subject).toContain(reason);
  });
});

describe('device-message with trust_ack / trust_err (C4, C5)', () => {
  function deps(): DeviceMessageDeps {
    return { ...table(), sfn: clients.sfn(), iot: clients.iot(), iotData: clients.iotData(), stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:rotor-rotate-device' };
  }
  function waiting(): void {
    db.on(GetCommand).resolves({ Item: { pk: 'thing#sensor-1', sk: 'trust', thingName: THING, trustStatus: 'IN_PROGRESS', updateId: UPDATE, bundleId: BUNDLE_ID, taskToken: TOKEN } });
    db.on(UpdateCommand).resolves({});
  }
  function principal(status: 'ACTIVE' | 'INACTIVE', attached: boolean): void {
    iot.on(DescribeCertificateCommand).resolves({ certificateDescription: { certificateId: CERT, certificateArn: `arn:aws:iot:us-east-1:123456789012:cert/${CERT}`, status, certificatePem: 'PEM' } });
    iot.on(ListThingPrincipalsCommand).resolves({ principals: attached ? [`arn:aws:iot:us-east-1:123456789012:cert/${CERT}`] : [] });
  }

  it('answers the trust update on a trust_ack over the thing own ACTIVE certificate', async () => {
    waiting();
    principal('ACTIVE', true);
    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'trust_ack', body: { rotationId: UPDATE, bundleId: BUNDLE_ID }, principal: CERT }), deps());
    expect(result).toEqual({ action: 'trust-answered', outcome: 'acked' });
    expect(sfn.commandCalls(SendTaskSuccessCommand)[0].args[0].input).toEqual({ taskToken: TOKEN, output: JSON.stringify({ bundleId: BUNDLE_ID, certificateId: CERT }) });
    // The rotation record is never read for a trust message.
    expect(db.commandCalls(GetCommand).map((call) => call.args[0].input.Key)).toEqual([{ pk: 'thing#sensor-1', sk: 'trust' }]);
  });

  it('fails the trust update with TrustRefused on a trust_err', async () => {
    waiting();
    principal('ACTIVE', true);
    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'trust_err', body: { rotationId: UPDATE, bundleId: BUNDLE_ID, code: 'CONNECT_FAILED', error: 'verify failed' }, principal: CERT }), deps());
    expect(result).toEqual({ action: 'trust-answered', outcome: 'refused' });
    expect(sfn.commandCalls(SendTaskFailureCommand)[0].args[0].input).toEqual(expect.objectContaining({ error: 'TrustRefused' }));
  });

  it('ignores and records an ack over a certificate that is not the thing own ACTIVE one', async () => {
    waiting();
    principal('ACTIVE', false);
    const d = deps();
    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'trust_ack', body: { rotationId: UPDATE, bundleId: BUNDLE_ID }, principal: CERT }), d);
    expect(result).toEqual({ action: 'trust-ignored', reason: 'NOT_OVER_ACTIVE_CERTIFICATE' });
    expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(0);
    // Counted as a trust message, not among the rotation's IgnoredMessages.
    expect((d.telemetry as ReturnType<typeof recordingTelemetry>).metrics).toEqual([{ name: 'TrustMessagesIgnored', value: 1, dimensions: { reason: 'NOT_OVER_ACTIVE_CERTIFICATE' } }]);
    expect(db.commandCalls(UpdateCommand)[0].args[0].input.UpdateExpression).toContain('ignoredCount');
  });

  it('records a trust_ack whose task already timed out: the device switched, so its bundle is on the record, not a DUPLICATE', async () => {
    // Prepare: the ack reaches Step Functions after the trust_req's wait ran out.
    waiting();
    principal('ACTIVE', true);
    sfn.on(SendTaskSuccessCommand).rejects(awsErrors.named('TaskTimedOut'));
    const d = deps();
    // Act
    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'trust_ack', body: { rotationId: UPDATE, bundleId: BUNDLE_ID }, principal: CERT }), d);
    // Assess
    expect(result).toEqual({ action: 'trust-acked-late' });
    const write = db.commandCalls(UpdateCommand)[0].args[0].input;
    expect(write.UpdateExpression).toBe('SET currentBundleId = :bundle, ackedCertificateId = :cert, ackedLateAt = :now, updatedAt = :now');
    expect(write.ConditionExpression).toBe('updateId = :uid AND bundleId = :bundle AND trustStatus <> :updated');
    expect(write.ExpressionAttributeValues).toMatchObject({ ':bundle': BUNDLE_ID, ':cert': CERT, ':uid': UPDATE });
    expect((d.telemetry as ReturnType<typeof recordingTelemetry>).metrics).toEqual([{ name: 'TrustAcksLate', value: 1 }]);
  });

  it('records a trust_ack that arrives after its update ended NOT_UPDATED (NO_ACK)', async () => {
    // Prepare: Record trust failure already ran; the token is gone.
    db.on(GetCommand).resolves({ Item: { pk: 'thing#sensor-1', sk: 'trust', thingName: THING, trustStatus: 'NOT_UPDATED', reason: 'NO_ACK', updateId: UPDATE, bundleId: BUNDLE_ID } });
    db.on(UpdateCommand).resolves({});
    principal('ACTIVE', true);
    // Act
    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'trust_ack', body: { rotationId: UPDATE, bundleId: BUNDLE_ID }, principal: CERT }), deps());
    // Assess
    expect(result).toEqual({ action: 'trust-acked-late' });
    expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(0);
    expect(db.commandCalls(UpdateCommand)[0].args[0].input.ExpressionAttributeValues).toMatchObject({ ':bundle': BUNDLE_ID, ':cert': CERT, ':uid': UPDATE });
  });

  it('still ignores a late trust_err as DUPLICATE, and a late ack once the record is no longer that update', async () => {
    // Prepare
    waiting();
    principal('ACTIVE', true);
    sfn.on(SendTaskFailureCommand).rejects(awsErrors.named('TaskTimedOut'));
    sfn.on(SendTaskSuccessCommand).rejects(awsErrors.named('TaskTimedOut'));
    // Act
    const refused = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'trust_err', body: { rotationId: UPDATE, bundleId: BUNDLE_ID, code: 'CONNECT_FAILED', error: 'verify failed' }, principal: CERT }), deps());
    db.on(UpdateCommand, { UpdateExpression: 'SET currentBundleId = :bundle, ackedCertificateId = :cert, ackedLateAt = :now, updatedAt = :now' }).rejects(awsErrors.named('ConditionalCheckFailedException'));
    const acked = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'trust_ack', body: { rotationId: UPDATE, bundleId: BUNDLE_ID }, principal: CERT }), deps());
    // Assess
    expect(refused).toEqual({ action: 'trust-ignored', reason: 'DUPLICATE' });
    expect(acked).toEqual({ action: 'trust-ignored', reason: 'DUPLICATE' });
  });

  it('ignores a malformed trust_err without throwing', async () => {
    waiting();
    const result = await handleDeviceMessage(iotRuleEvent({ thingName: THING, type: 'trust_err', body: { rotationId: UPDATE, code: 'NOPE', error: 'x' }, principal: CERT }), deps());
    expect(result).toEqual({ action: 'trust-ignored', reason: 'MALFORMED' });
  });
});
