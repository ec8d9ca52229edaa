import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { deliverCertificate, type DeliverCertificateDeps } from '../../../functions/deliver-certificate.js';
import { awsErrors, clients, published } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { recordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const iotData = mockClient(IoTDataPlaneClient);
const NEW_ID = 'c'.repeat(64);
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const input = { thingName: 'sensor-1', rotationId: 'sensor-1-a0123', taskToken: 'token-deliver', certificateId: NEW_ID, certificatePem: PEM };

function deps(): DeliverCertificateDeps {
  return { db: clients.db(), tableName: 'rotations', iotData: clients.iotData(), clock: fakeClock(), telemetry: recordingTelemetry() };
}

beforeEach(() => {
  db.reset();
  iotData.reset();
});

describe('deliver-certificate', () => {
  it('parks the token with the certificate the ack must come over, then publishes crt_res', async () => {
    db.on(UpdateCommand).resolves({});
    iotData.on(PublishCommand).resolves({});

    await expect(deliverCertificate(input, deps())).resolves.toEqual({ published: true });

    const update = db.commandCalls(UpdateCommand)[0].args[0].input;
    expect(update.ConditionExpression).toBe('rotationId = :rid AND #status = :inProgress');
    expect(update.ExpressionAttributeValues).toMatchObject({ ':waitFor': 'crt_ack', ':token': 'token-deliver', ':step': 'Deliver certificate', ':set0': NEW_ID });
    expect(update.ExpressionAttributeNames).toMatchObject({ '#set0': 'newCertificateId' });
    expect(update.UpdateExpression).not.toContain('ADD');
    expect(published(iotData)).toEqual([
      { topic: 'management/topic/sensor-1/crt_res', qos: 1, body: { rotationId: 'sensor-1-a0123', certificateId: NEW_ID, certificatePem: PEM } },
    ]);
  });

  it('throws ClaimLost when the rotation lost its claim, and sends nothing', async () => {
    db.on(UpdateCommand).rejects(awsErrors.conditionFailed());

    await expect(deliverCertificate(input, deps())).rejects.toMatchObject({ name: 'ClaimLost' });
    expect(iotData.calls()).toHaveLength(0);
  });

  it.each([
    ['a certificate id that is not 64 hex', { ...input, certificateId: 'C'.repeat(64) }],
    ['a missing PEM', { ...input, certificatePem: undefined }],
    ['a PEM that is too long', { ...input, certificatePem: 'x'.repeat(20_000) }],
  ])('rejects %s with InvalidInput', async (_name, bad) => {
    await expect(deliverCertificate(bad, deps())).rejects.toMatchObject({ name: 'InvalidInput' });
    expect(db.calls()).toHaveLength(0);
  });
});
