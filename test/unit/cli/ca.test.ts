import { DescribeCACertificateCommand, IoTClient, ListCertificatesByCACommand } from '@aws-sdk/client-iot';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { rolloverInput } from '../../../cli/ca/index.js';
import { caStatus, formatCaStatus } from '../../../cli/ca/status.js';
import { awsErrors, clients } from '../../fixtures/aws.js';

const iot = mockClient(IoTClient);
const sfn = mockClient(SFNClient);
const db = mockClient(DynamoDBDocumentClient);
const OLD = 'a'.repeat(64);
const NEW_ARN = 'arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555';
const status = () => caStatus({ ddb: clients.db(), sfn: clients.sfn(), iot: clients.iot(), tableName: 'rotations' }, OLD);

beforeEach(() => {
  iot.reset();
  sfn.reset();
  db.reset();
  iot.on(DescribeCACertificateCommand).resolves({ certificateDescription: { status: 'ACTIVE' } });
  iot.on(ListCertificatesByCACommand, { marker: undefined }).resolves({ certificates: [{ status: 'ACTIVE' }, { status: 'INACTIVE' }], nextMarker: 'p2' });
  iot.on(ListCertificatesByCACommand, { marker: 'p2' }).resolves({ certificates: [{ status: 'ACTIVE' }] });
});

describe('rotor ca rollover', () => {
  it('takes OLD as an IoT CA certificate id or a Private CA ARN, and NEW only as a Private CA ARN', () => {
    expect(rolloverInput(OLD, NEW_ARN)).toEqual({ oldCa: OLD, newCa: NEW_ARN, trigger: 'cli' });
    expect(() => rolloverInput('CA-1', NEW_ARN)).toThrow(/--from: OLD must be/);
    expect(() => rolloverInput(NEW_ARN, OLD)).toThrow(/--to must be the ARN of the Private CA/);
  });
});

describe('rotor ca status', () => {
  it('counts the ACTIVE certificates under the old CA live, and devices moved from the first pass', async () => {
    db.on(GetCommand).resolves({
      Item: { rolloverId: 'ca-rollover-1', executionArn: 'arn:x', status: 'MOVING', newPrivateCaArn: NEW_ARN, devicesAtStart: 10, devicesLeft: 4, startedAt: 't0', updatedAt: 't1', stuckDevices: [] },
    });
    sfn.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' });
    const report = await status();
    expect(report).toMatchObject({ oldCaStatus: 'ACTIVE', devicesLeft: 2, devicesMoved: 8, rollover: { executionStatus: 'RUNNING', status: 'MOVING' } });
    expect(formatCaStatus(report).join('\n')).toContain('devices left    2');
  });

  it('says so when no rollover of the CA has started, and names a CA IoT does not know', async () => {
    db.on(GetCommand).resolves({});
    expect(formatCaStatus(await status())).toContain('no rollover of this CA has started');
    iot.on(DescribeCACertificateCommand).rejects(awsErrors.notFound());
    await expect(status()).rejects.toThrow(/no CA certificate a{64} is registered/);
  });
});
