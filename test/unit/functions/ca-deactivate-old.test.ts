import { IoTClient, ListCertificatesByCACommand, UpdateCACertificateCommand, type CertificateStatus } from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { CaRolloverStatus, rolloverPk } from '../../../domain/ca-rollover.js';
import { deactivateOldCa, type DeactivateOldCaDeps } from '../../../functions/ca-deactivate-old.js';
import { clients } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { recordingTelemetry } from '../../fixtures/telemetry.js';

const iot = mockClient(IoTClient);
const db = mockClient(DynamoDBDocumentClient);
const OLD = 'a'.repeat(64);
const ROLLOVER = 'ca-rollover-0123456789abcdef01234567';
const event = { rolloverId: ROLLOVER, cas: { oldCaCertificateId: OLD, newCaCertificateId: 'b'.repeat(64), newPrivateCaArn: 'arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555' } };
const id = (n: number): string => n.toString(16).padStart(64, '0');

const deps = (): DeactivateOldCaDeps => ({ db: clients.db(), tableName: 'rotations', iot: clients.iot(), clock: fakeClock(), telemetry: recordingTelemetry() });

function pages(...statuses: string[][]): void {
  statuses.forEach((page, i) => {
    iot.on(ListCertificatesByCACommand, { caCertificateId: OLD, marker: i === 0 ? undefined : `m-${i}` }).resolves({
      certificates: page.map((status, j) => ({ certificateId: id(i * 100 + j), status: status as CertificateStatus })),
      nextMarker: i < statuses.length - 1 ? `m-${i + 1}` : undefined,
    });
  });
}

beforeEach(() => {
  iot.reset();
  db.reset();
  iot.on(UpdateCACertificateCommand).resolves({});
  db.on(UpdateCommand).resolves({});
});

describe('Deactivate old CA', () => {
  it('sets the old CA INACTIVE when every page holds only INACTIVE or REVOKED certificates, and records it done', async () => {
    pages(['INACTIVE', 'REVOKED'], ['INACTIVE']);
    await expect(deactivateOldCa(event, deps())).resolves.toEqual({ oldCaStatus: 'INACTIVE' });
    expect(iot.commandCalls(ListCertificatesByCACommand)).toHaveLength(2);
    expect(iot.commandCalls(UpdateCACertificateCommand)[0].args[0].input).toEqual({ certificateId: OLD, newStatus: 'INACTIVE' });
    const write = db.commandCalls(UpdateCommand)[0].args[0].input;
    expect(write.Key).toEqual({ pk: rolloverPk(OLD), sk: 'progress' });
    expect(write.ExpressionAttributeValues).toMatchObject({ ':done': CaRolloverStatus.Done, ':inactive': 'INACTIVE', ':zero': 0, ':rid': ROLLOVER });
  });

  it('leaves the old CA ACTIVE when an ACTIVE certificate appeared under it since the pass (on a later page)', async () => {
    pages(['INACTIVE'], ['INACTIVE', 'ACTIVE']);
    await expect(deactivateOldCa(event, deps())).rejects.toMatchObject({ name: 'OldCaStillInUse', message: expect.stringContaining(id(101)) });
    expect(iot.commandCalls(UpdateCACertificateCommand)).toHaveLength(0);
    expect(db.commandCalls(UpdateCommand)).toHaveLength(0);
  });
});
