import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { handler, requestCsr, type RequestCsrDeps } from '../../../functions/request-csr.js';
import { awsErrors, clients, published } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { fakeContext } from '../../fixtures/lambda-context.js';
import { recordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const iotData = mockClient(IoTDataPlaneClient);
const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAAfake-task-token';
const input = { thingName: 'sensor-1', rotationId: 'sensor-1-a0123', taskToken: TOKEN, attempt: 0 };

function deps(): RequestCsrDeps & { telemetry: ReturnType<typeof recordingTelemetry> } {
  return { db: clients.db(), tableName: 'rotations', iotData: clients.iotData(), clock: fakeClock(), telemetry: recordingTelemetry() };
}

beforeEach(() => {
  db.reset();
  iotData.reset();
});

describe('request-csr', () => {
  it('parks the task token on the record, then publishes csr_req with the rotation id', async () => {
    // Prepare
    db.on(UpdateCommand).resolves({});
    iotData.on(PublishCommand).resolves({});
    const d = deps();

    // Act
    const result = await requestCsr(input, d);

    // Assess
    expect(result).toEqual({ published: true });
    const update = db.commandCalls(UpdateCommand)[0].args[0].input;
    expect(update.Key).toEqual({ pk: 'thing#sensor-1', sk: 'current' });
    expect(update.ConditionExpression).toBe('rotationId = :rid AND #status = :inProgress');
    expect(update.UpdateExpression).toMatch(/^SET waitFor = :waitFor, taskToken = :token, #step = :step, updatedAt = :now ADD #add0 :one$/);
    expect(update.ExpressionAttributeNames).toMatchObject({ '#add0': 'csrRequests' });
    expect(update.ExpressionAttributeValues).toMatchObject({
      ':rid': 'sensor-1-a0123',
      ':inProgress': 'IN_PROGRESS',
      ':waitFor': 'csr_res',
      ':token': TOKEN,
      ':step': 'Request CSR',
      ':now': '2026-03-01T12:00:00.000Z',
    });
    expect(published(iotData)).toEqual([{ topic: 'management/topic/sensor-1/csr_req', qos: 1, body: { rotationId: 'sensor-1-a0123' } }]);
    expect(d.telemetry.text()).not.toContain(TOKEN);
  });

  it('throws ClaimLost, and publishes nothing, when the record belongs to another rotation', async () => {
    db.on(UpdateCommand).rejects(awsErrors.conditionFailed());

    await expect(requestCsr(input, deps())).rejects.toMatchObject({ name: 'ClaimLost' });
    expect(iotData.commandCalls(PublishCommand)).toHaveLength(0);
  });

  it('lets a throttling error escape with its own name for the ASL Retry', async () => {
    db.on(UpdateCommand).resolves({});
    iotData.on(PublishCommand).rejects(awsErrors.throttled());

    await expect(requestCsr(input, deps())).rejects.toMatchObject({ name: 'ThrottlingException' });
  });

  it.each([
    ['no object', null],
    ['a missing task token', { ...input, taskToken: undefined }],
    ['an invalid thing name', { ...input, thingName: 'a/b' }],
    ['an empty rotation id', { ...input, rotationId: '' }],
  ])('rejects %s with InvalidInput before touching anything', async (_name, bad) => {
    await expect(requestCsr(bad, deps())).rejects.toMatchObject({ name: 'InvalidInput' });
    expect(db.calls()).toHaveLength(0);
    expect(iotData.calls()).toHaveLength(0);
  });

  it('runs through the middy handler with the Lambda context', async () => {
    // Prepare
    process.env.TABLE_NAME = 'rotations';
    process.env.AWS_REGION = 'us-east-1';
    db.on(UpdateCommand).resolves({});
    iotData.on(PublishCommand).resolves({});

    // Act
    const result = await handler(input, fakeContext());

    // Assess
    expect(result).toEqual({ published: true });
    expect(db.commandCalls(UpdateCommand)[0].args[0].input.TableName).toBe('rotations');
  });
});
