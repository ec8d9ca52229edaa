import {
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListCertificatesCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { rollBack, type RollBackDeps } from '../../../functions/roll-back.js';
import { awsErrors, clients, published } from '../../fixtures/aws.js';
import type { CertificateStatus } from '@aws-sdk/client-iot';
import { fakeClock } from '../../fixtures/clock.js';
import { recordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const iot = mockClient(IoTClient);
const iotData = mockClient(IoTDataPlaneClient);

const OLD = 'a'.repeat(64);
const NEW = 'b'.repeat(64);
const arn = (id: string): string => `arn:aws:iot:us-east-1:123456789012:cert/${id}`;
const ROTATION = 'sensor-1-a01';

function state(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { thingName: 'sensor-1', certificateId: OLD, trigger: 'audit', auditTaskId: 't1', ...extra };
}

const deliverTimeout = { error: { Error: 'States.Timeout', Cause: '' } };

function deps(): RollBackDeps {
  return { db: clients.db(), tableName: 'rotations', iot: clients.iot(), iotData: clients.iotData(), clock: fakeClock(), telemetry: recordingTelemetry() };
}

function describes(statuses: Record<string, CertificateStatus | undefined>): void {
  for (const [id, status] of Object.entries(statuses)) {
    if (status === undefined) iot.on(DescribeCertificateCommand, { certificateId: id }).rejects(awsErrors.notFound());
    else iot.on(DescribeCertificateCommand, { certificateId: id }).resolves({ certificateDescription: { certificateId: id, certificateArn: arn(id), status } });
  }
}

beforeEach(() => {
  db.reset();
  iot.reset();
  iotData.reset();
  db.on(GetCommand).resolves({ Item: { rotationId: ROTATION, status: 'IN_PROGRESS', newCertificateId: NEW } });
  iot.on(ListAttachedPoliciesCommand).resolves({ policies: [{ policyName: 'device-policy' }] });
  iot.on(UpdateCertificateCommand).resolves({});
  iot.on(DetachPolicyCommand).resolves({});
  iot.on(DetachThingPrincipalCommand).resolves({});
  iot.on(DeleteCertificateCommand).resolves({});
  iotData.on(PublishCommand).resolves({});
});

describe('roll-back', () => {
  it('deletes the new certificate, never touches the old one, and tells the device to abort', async () => {
    // Prepare
    describes({ [OLD]: 'ACTIVE', [NEW]: 'ACTIVE' });

    // Act
    const result = await rollBack({ rotation: state({ issued: { certificateId: NEW }, ...deliverTimeout }), rotationId: ROTATION, failedStep: 'Deliver certificate' }, deps());

    // Assess
    expect(result).toEqual({ newCertificateId: NEW, deleted: true, aborted: true, oldCertificateStatus: 'ACTIVE' });
    expect(iot.commandCalls(UpdateCertificateCommand).map((c) => c.args[0].input)).toEqual([{ certificateId: NEW, newStatus: 'INACTIVE' }]);
    expect(iot.commandCalls(DetachThingPrincipalCommand)[0].args[0].input).toEqual({ thingName: 'sensor-1', principal: arn(NEW) });
    expect(iot.commandCalls(DeleteCertificateCommand).map((c) => c.args[0].input)).toEqual([{ certificateId: NEW }]);
    const writes = [UpdateCertificateCommand, DetachPolicyCommand, DetachThingPrincipalCommand, DeleteCertificateCommand].flatMap((command) =>
      iot.commandCalls(command as typeof UpdateCertificateCommand),
    );
    for (const call of writes) expect(JSON.stringify(call.args[0].input)).not.toContain(OLD);
    expect(published(iotData)).toEqual([
      { topic: 'management/topic/sensor-1/abort', qos: 1, body: { rotationId: ROTATION, reason: 'NO_ACK' } },
    ]);
  });

  it('finds a new certificate that only the record knows (Issue failed after creating it)', async () => {
    describes({ [OLD]: 'ACTIVE', [NEW]: 'ACTIVE' });
    const cause = JSON.stringify({ errorType: 'ThrottlingException', errorMessage: 'Rate exceeded' });

    const result = await rollBack({ rotation: state({ error: { Error: 'ThrottlingException', Cause: cause } }), rotationId: ROTATION, failedStep: 'Issue certificate' }, deps());

    expect(result).toEqual({ newCertificateId: NEW, deleted: true, aborted: true, oldCertificateStatus: 'ACTIVE' });
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(1);
  });

  it('throws RollbackUnsafe, deleting nothing, when the old certificate is no longer ACTIVE', async () => {
    // Prepare
    describes({ [OLD]: 'INACTIVE', [NEW]: 'ACTIVE' });

    // Act
    const error = await rollBack({ rotation: state({ issued: { certificateId: NEW } }), rotationId: ROTATION, failedStep: 'Deliver certificate' }, deps()).catch((e: unknown) => e);

    // Assess
    expect(error).toMatchObject({ name: 'RollbackUnsafe' });
    expect(iot.commandCalls(UpdateCertificateCommand)).toHaveLength(0);
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
    expect(iotData.calls()).toHaveLength(0);
  });

  it('throws RollbackUnsafe when the old certificate is gone', async () => {
    describes({ [OLD]: undefined, [NEW]: 'ACTIVE' });

    await expect(rollBack({ rotation: state({ issued: { certificateId: NEW } }), rotationId: ROTATION }, deps())).rejects.toMatchObject({ name: 'RollbackUnsafe' });
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
  });

  it('only aborts when no certificate was issued and the old one is ACTIVE', async () => {
    db.on(GetCommand).resolves({ Item: { rotationId: ROTATION, status: 'IN_PROGRESS' } });
    describes({ [OLD]: 'ACTIVE' });

    const result = await rollBack(
      { rotation: state({ error: { Error: 'States.Timeout' } }), rotationId: ROTATION, failedStep: 'Request CSR' },
      deps(),
    );

    expect(result).toEqual({ newCertificateId: null, deleted: false, aborted: true, oldCertificateStatus: 'ACTIVE' });
    expect(iot.commandCalls(DescribeCertificateCommand)).toHaveLength(1);
    expect(published(iotData)[0].body).toEqual({ rotationId: ROTATION, reason: 'NO_CSR_RESPONSE' });
  });

  it.each(['INACTIVE', 'REVOKED', undefined] as const)('never sends abort when the old certificate is %s: the pending key may be all the device has', async (status) => {
    db.on(GetCommand).resolves({ Item: { rotationId: ROTATION, status: 'IN_PROGRESS' } });
    describes({ [OLD]: status });

    const result = await rollBack({ rotation: state({ error: { Error: 'States.Timeout' } }), rotationId: ROTATION, failedStep: 'Request CSR' }, deps());

    expect(result).toEqual({ newCertificateId: null, deleted: false, aborted: false, oldCertificateStatus: status ?? 'GONE' });
    expect(iotData.calls()).toHaveLength(0);
  });

  it.each(['REVOKED', 'PENDING_TRANSFER'] as const)('takes the new certificate down when the old one is %s (cut off on purpose), without abort', async (status) => {
    describes({ [OLD]: status, [NEW]: 'ACTIVE' });
    const cause = JSON.stringify({ errorType: 'OldCertificateRevoked', errorMessage: `the old certificate is ${status}` });

    const result = await rollBack(
      { rotation: state({ issued: { certificateId: NEW }, error: { Error: 'OldCertificateRevoked', Cause: cause } }), rotationId: ROTATION, failedStep: 'Retire old certificate' },
      deps(),
    );

    expect(result).toEqual({ newCertificateId: NEW, deleted: true, aborted: false, oldCertificateStatus: status });
    expect(iot.commandCalls(UpdateCertificateCommand).map((c) => c.args[0].input)).toEqual([{ certificateId: NEW, newStatus: 'INACTIVE' }]);
    expect(iot.commandCalls(DeleteCertificateCommand).map((c) => c.args[0].input)).toEqual([{ certificateId: NEW }]);
    expect(iotData.calls()).toHaveLength(0);
  });

  it('finds and deletes what a crashed Issue created but never recorded (the intent on the record)', async () => {
    const { certificateKeyFingerprint } = await import('../../../functions/core/certificates.js');
    const { generateKeys, makeCertificate } = await import('../../fixtures/pki.js');
    const made = await makeCertificate('sensor-1', await generateKeys('ec-p256'));
    db.on(GetCommand).resolves({ Item: { rotationId: ROTATION, status: 'IN_PROGRESS', issueIntent: { keyFingerprint: certificateKeyFingerprint(made.pem), at: '2026-03-01T12:00:00.000Z' } } });
    describes({ [OLD]: 'ACTIVE' });
    iot.on(DescribeCertificateCommand, { certificateId: made.id }).resolves({ certificateDescription: { certificateId: made.id, certificateArn: arn(made.id), status: 'ACTIVE', certificatePem: made.pem } });
    iot.on(ListCertificatesCommand).resolves({ certificates: [{ certificateId: made.id, creationDate: new Date('2026-03-01T12:00:01.000Z') }] });

    const result = await rollBack({ rotation: state({ error: { Error: 'Sandbox.Timedout' } }), rotationId: ROTATION, failedStep: 'Issue certificate' }, deps());

    expect(result).toEqual({ newCertificateId: made.id, deleted: true, aborted: true, oldCertificateStatus: 'ACTIVE' });
    expect(iot.commandCalls(DeleteCertificateCommand).map((c) => c.args[0].input)).toEqual([{ certificateId: made.id }]);
  });

  it('ignores a new certificate id on a record that belongs to another rotation', async () => {
    db.on(GetCommand).resolves({ Item: { rotationId: 'another', status: 'IN_PROGRESS', newCertificateId: NEW } });

    describes({ [OLD]: 'ACTIVE' });
    const result = await rollBack({ rotation: state(), rotationId: ROTATION, failedStep: 'Request CSR' }, deps());

    expect(result.newCertificateId).toBeNull();
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
  });

  it('never treats the old certificate as the new one', async () => {
    db.on(GetCommand).resolves({ Item: { rotationId: ROTATION, newCertificateId: OLD } });

    describes({ [OLD]: 'ACTIVE' });
    const result = await rollBack({ rotation: state({ issued: { certificateId: OLD } }), rotationId: ROTATION, failedStep: 'Deliver certificate' }, deps());

    expect(result).toEqual({ newCertificateId: null, deleted: false, aborted: true, oldCertificateStatus: 'ACTIVE' });
    expect(iot.commandCalls(UpdateCertificateCommand)).toHaveLength(0);
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
  });

  it('completes when the new certificate is already gone (a retried roll-back)', async () => {
    describes({ [OLD]: 'ACTIVE', [NEW]: undefined });

    const result = await rollBack({ rotation: state({ issued: { certificateId: NEW } }), rotationId: ROTATION, failedStep: 'Deliver certificate' }, deps());

    expect(result).toEqual({ newCertificateId: NEW, deleted: true, aborted: true, oldCertificateStatus: 'ACTIVE' });
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
  });

  it('sends reason codes only: the CSR rule, never AWS error text', async () => {
    db.on(GetCommand).resolves({ Item: { rotationId: ROTATION } });
    describes({ [OLD]: 'ACTIVE' });
    const cause = JSON.stringify({ errorType: 'CsrRejected', errorMessage: 'KEY_REUSED: the CSR re-uses the key of the certificate being replaced' });

    await rollBack({ rotation: state({ error: { Error: 'CsrRejected', Cause: cause } }), rotationId: ROTATION, failedStep: 'Issue certificate' }, deps());

    expect(published(iotData)[0].body).toEqual({ rotationId: ROTATION, reason: 'CSR_REJECTED: KEY_REUSED' });

    const leaky = JSON.stringify({
      errorType: 'AccessDeniedException',
      errorMessage: 'User: arn:aws:sts::123456789012:assumed-role/rotor-issue/x is not authorized to perform: iot:CreateCertificateFromCsr',
    });
    await rollBack({ rotation: state({ error: { Error: 'AccessDeniedException', Cause: leaky } }), rotationId: ROTATION, failedStep: 'Issue certificate' }, deps());
    expect(published(iotData)[1].body).toEqual({ rotationId: ROTATION, reason: 'ISSUE_FAILED' });
  });

  it.each([
    ['no rotation state', { rotationId: ROTATION }],
    ['a state without the old certificate', { rotation: { thingName: 'sensor-1' }, rotationId: ROTATION }],
    ['no rotation id', { rotation: state() }],
  ])('rejects %s with InvalidInput', async (_name, bad) => {
    await expect(rollBack(bad, deps())).rejects.toMatchObject({ name: 'InvalidInput' });
    expect(iotData.calls()).toHaveLength(0);
  });
});
