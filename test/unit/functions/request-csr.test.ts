import { DescribeCertificateCommand, IoTClient, ListPrincipalThingsCommand, ListThingPrincipalsCommand } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { handler, requestCsr, type RequestCsrDeps } from '../../../functions/request-csr.js';
import { awsErrors, clients, published } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { fakeContext } from '../../fixtures/lambda-context.js';
import { recordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const iotData = mockClient(IoTDataPlaneClient);
const iot = mockClient(IoTClient);
const OLD = 'a'.repeat(64);
const OTHER = 'c'.repeat(64);
const arn = (id: string): string => `arn:aws:iot:us-east-1:123456789012:cert/${id}`;
const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAAfake-task-token';
const input = { thingName: 'sensor-1', rotationId: 'sensor-1-a0123', taskToken: TOKEN, attempt: 0 };

function deps(): RequestCsrDeps & { telemetry: ReturnType<typeof recordingTelemetry> } {
  return { db: clients.db(), tableName: 'rotations', iot: clients.iot(), iotData: clients.iotData(), clock: fakeClock(), telemetry: recordingTelemetry() };
}

/** The thing's current record as Claim device left it; `csrRequests` once a csr_req went out. */
function claimed(fields: Record<string, unknown> = {}): void {
  db.on(GetCommand).resolves({
    Item: { pk: 'thing#sensor-1', sk: 'current', thingName: 'sensor-1', rotationId: 'sensor-1-a0123', status: 'IN_PROGRESS', oldCertificateId: OLD, ...fields },
  });
}

/** The registry: which things the old certificate is attached to, which certificates the thing has. */
function registry(things: string[], principals: string[]): void {
  iot.on(DescribeCertificateCommand).resolves({ certificateDescription: { certificateId: OLD, certificateArn: arn(OLD), status: 'ACTIVE', certificatePem: 'PEM' } });
  iot.on(ListPrincipalThingsCommand).resolves({ things });
  iot.on(ListThingPrincipalsCommand).resolves({ principals: principals.map(arn) });
}

beforeEach(() => {
  db.reset();
  iotData.reset();
  iot.reset();
  claimed();
  registry(['sensor-1'], [OLD]);
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
    expect(published(iotData)).toEqual([{ topic: 'management/topic/sensor-1/csr_req', qos: 1, body: { rotationId: 'sensor-1-a0123', certificateId: OLD } }]);
    expect(d.telemetry.text()).not.toContain(TOKEN);
    expect(iot.commandCalls(ListPrincipalThingsCommand)[0].args[0].input.principal).toBe(arn(OLD));
    expect(iot.commandCalls(ListThingPrincipalsCommand)[0].args[0].input.thingName).toBe('sensor-1');
  });

  it.each([
    ['attached to two things', ['sensor-1', 'sensor-2'], [OLD], /is attached to 2 things \(sensor-1, sensor-2\)/],
    ['on a thing that has another certificate', ['sensor-1'], [OLD, OTHER], new RegExp(`shares its thing with 1 other certificate\\(s\\) \\(${OTHER}\\)`)],
  ])('refuses a certificate %s with SharedCertificate, before parking or publishing anything', async (_name, things, principals, message) => {
    registry(things, principals);

    await expect(requestCsr(input, deps())).rejects.toMatchObject({ name: 'SharedCertificate', message: expect.stringMatching(message) });
    expect(db.commandCalls(UpdateCommand)).toHaveLength(0);
    expect(iotData.calls()).toHaveLength(0);
  });

  it('does not count principals that are not certificates, nor this rotation\'s own new certificate', async () => {
    claimed({ newCertificateId: OTHER });
    iot.on(ListThingPrincipalsCommand).resolves({ principals: [arn(OLD), arn(OTHER), 'arn:aws:cognito-identity:us-east-1:123456789012:identitypool/x'] });

    await expect(requestCsr(input, deps())).resolves.toEqual({ published: true });
  });

  it('pages through every thing the certificate is attached to', async () => {
    iot.on(ListPrincipalThingsCommand).resolvesOnce({ things: ['sensor-1'], nextToken: 'p2' }).resolves({ things: ['sensor-9'] });

    await expect(requestCsr(input, deps())).rejects.toMatchObject({ name: 'SharedCertificate' });
    expect(iot.commandCalls(ListPrincipalThingsCommand)[1].args[0].input.nextToken).toBe('p2');
  });

  it('does not check again when csr_req is re-sent', async () => {
    claimed({ csrRequests: 1 });
    registry(['sensor-1', 'sensor-2'], [OLD]);
    db.on(UpdateCommand).resolves({});
    iotData.on(PublishCommand).resolves({});

    await expect(requestCsr({ ...input, attempt: 1 }, deps())).resolves.toEqual({ published: true });
    expect(iot.calls()).toHaveLength(0);
  });

  it('fails with CertificateNotFound when the old certificate is gone', async () => {
    iot.on(DescribeCertificateCommand).rejects(awsErrors.notFound());

    await expect(requestCsr(input, deps())).rejects.toMatchObject({ name: 'CertificateNotFound' });
    expect(iotData.calls()).toHaveLength(0);
  });

  it('throws ClaimLost, and publishes nothing, when the record belongs to another rotation', async () => {
    claimed({ rotationId: 'sensor-1-other' });

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
    expect(db.commandCalls(GetCommand)[0].args[0].input).toMatchObject({ TableName: 'rotations', ConsistentRead: true });
  });

  describe('with the things start-rotations listed (API thrift)', () => {
    const listed = (certificateThings: unknown): typeof input & { execution: unknown } => ({
      ...input,
      execution: { thingName: 'sensor-1', certificateId: OLD, trigger: 'audit', certificateThings },
    });

    it('spends one 10-TPS call, ListThingPrincipals: no DescribeCertificate, no ListPrincipalThings', async () => {
      db.on(UpdateCommand).resolves({});
      iotData.on(PublishCommand).resolves({});

      await requestCsr(listed(['sensor-1']), deps());

      expect(iot.commandCalls(DescribeCertificateCommand)).toEqual([]);
      expect(iot.commandCalls(ListPrincipalThingsCommand)).toEqual([]);
      expect(iot.commandCalls(ListThingPrincipalsCommand)).toHaveLength(1);
      expect(published(iotData)).toHaveLength(1);
    });

    it('refuses a certificate the start found on two things, before parking or publishing anything', async () => {
      await expect(requestCsr(listed(['sensor-1', 'gateway-7']), deps())).rejects.toMatchObject({
        name: 'SharedCertificate',
        message: expect.stringContaining('is attached to 2 things (sensor-1, gateway-7)'),
      });
      expect(iot.commandCalls(ListPrincipalThingsCommand)).toEqual([]);
      expect(db.commandCalls(UpdateCommand)).toEqual([]);
      expect(published(iotData)).toEqual([]);
    });

    it.each([
      ['not a list', 'sensor-1'],
      ['an empty list', []],
      ['a list with a non-string', ['sensor-1', 7]],
    ])('lists the things itself when certificateThings is %s', async (_name, certificateThings) => {
      db.on(UpdateCommand).resolves({});
      iotData.on(PublishCommand).resolves({});

      await requestCsr(listed(certificateThings), deps());

      expect(iot.commandCalls(ListPrincipalThingsCommand)[0].args[0].input.principal).toBe(arn(OLD));
    });
  });
});
