import {
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListPrincipalThingsCommand,
  UpdateCertificateCommand,
  type CertificateStatus,
} from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { DynamoDBDocumentClient, GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { parseRetireMode, retireCertificate, type RetireCertificateDeps } from '../../../functions/retire-certificate.js';
import { awsErrors, clients, published } from '../../fixtures/aws.js';
import { fakeClock, type FakeClock } from '../../fixtures/clock.js';
import { recordingTelemetry, type RecordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const iot = mockClient(IoTClient);
const iotData = mockClient(IoTDataPlaneClient);

const OLD = 'a'.repeat(64);
const NEW = 'b'.repeat(64);
const OLD_ARN = `arn:aws:iot:us-east-1:123456789012:cert/${OLD}`;
const NEW_ARN = `arn:aws:iot:us-east-1:123456789012:cert/${NEW}`;

/** The thing's current record as device-message leaves it: this rotation, the ack over the new certificate. */
let record: Record<string, unknown> | undefined;

function certificate(id: string, arn: string, status: CertificateStatus): void {
  iot.on(DescribeCertificateCommand, { certificateId: id }).resolves({ certificateDescription: { certificateId: id, certificateArn: arn, status, certificatePem: 'PEM' } });
}

/** No certificate changed, nothing sent to the device, nothing recorded. */
function expectNothingTouched(): void {
  expect(iot.commandCalls(UpdateCertificateCommand)).toEqual([]);
  expect(iot.commandCalls(DetachPolicyCommand)).toEqual([]);
  expect(iot.commandCalls(DetachThingPrincipalCommand)).toEqual([]);
  expect(iot.commandCalls(DeleteCertificateCommand)).toEqual([]);
  expect(published(iotData)).toEqual([]);
  expect(db.commandCalls(TransactWriteCommand)).toEqual([]);
}
const input = {
  thingName: 'sensor-1',
  rotationId: 'sensor-1-a01',
  executionArn: 'arn:aws:states:us-east-1:123456789012:execution:rotor-rotate-device:sensor-1-a01',
  oldCertificateId: OLD,
  newCertificateId: NEW,
  trigger: 'audit',
  startedAt: '2026-03-01T11:00:00.000Z',
};

type Deps = RetireCertificateDeps & { clock: FakeClock; telemetry: RecordingTelemetry };
function deps(overrides: Partial<RetireCertificateDeps> = {}): Deps {
  return {
    db: clients.db(),
    tableName: 'rotations',
    iot: clients.iot(),
    iotData: clients.iotData(),
    clock: fakeClock(),
    telemetry: recordingTelemetry(),
    retireMode: 'delete',
    historyRetentionDays: 400,
    ...overrides,
  } as Deps;
}

beforeEach(() => {
  db.reset();
  iot.reset();
  iotData.reset();
  record = { pk: 'thing#sensor-1', sk: 'current', thingName: 'sensor-1', rotationId: 'sensor-1-a01', status: 'IN_PROGRESS', ackedCertificateId: NEW };
  db.on(GetCommand).callsFake(() => ({ Item: record ? { ...record } : undefined }));
  certificate(OLD, OLD_ARN, 'ACTIVE');
  certificate(NEW, NEW_ARN, 'ACTIVE');
  iot.on(ListPrincipalThingsCommand).resolves({ things: ['sensor-1'] });
  iot.on(ListAttachedPoliciesCommand).resolves({ policies: [{ policyName: 'device-policy' }, { policyName: 'telemetry-policy' }] });
  iot.on(UpdateCertificateCommand).resolves({});
  iot.on(DetachPolicyCommand).resolves({});
  iot.on(DetachThingPrincipalCommand).resolves({});
  iot.on(DeleteCertificateCommand).resolves({});
  iotData.on(PublishCommand).resolves({});
  db.on(TransactWriteCommand).resolves({});
});

describe('retire-certificate', () => {
  it('deactivates, detaches and deletes the old certificate, sends crt_done, then records the success', async () => {
    // Prepare
    const d = deps();

    // Act
    const result = await retireCertificate(input, d);

    // Assess
    expect(result).toEqual({ retiredAt: '2026-03-01T12:00:00.000Z', oldCertificate: 'deleted' });
    expect(iot.commandCalls(UpdateCertificateCommand)[0].args[0].input).toEqual({ certificateId: OLD, newStatus: 'INACTIVE' });
    expect(iot.commandCalls(DetachPolicyCommand).map((c) => c.args[0].input.policyName)).toEqual(['device-policy', 'telemetry-policy']);
    expect(iot.commandCalls(DetachThingPrincipalCommand)[0].args[0].input).toEqual({ thingName: 'sensor-1', principal: OLD_ARN });
    expect(iot.commandCalls(DeleteCertificateCommand)[0].args[0].input).toEqual({ certificateId: OLD });
    // The new certificate is only looked at (ACTIVE?), never changed.
    for (const call of iot.calls()) if (!(call.args[0] instanceof DescribeCertificateCommand)) expect(JSON.stringify(call.args[0].input)).not.toContain(NEW);
    expect(iot.commandCalls(ListPrincipalThingsCommand)[0].args[0].input).toMatchObject({ principal: OLD_ARN });
    expect(published(iotData)).toEqual([{ topic: 'management/topic/sensor-1/crt_done', qos: 1, body: { rotationId: 'sensor-1-a01' } }]);

    const [update, put] = db.commandCalls(TransactWriteCommand)[0].args[0].input.TransactItems ?? [];
    expect(update.Update?.ConditionExpression).toBe('rotationId = :rid AND #status = :inProgress');
    expect(update.Update?.UpdateExpression).toContain('REMOVE waitFor, taskToken');
    expect(update.Update?.ExpressionAttributeValues).toMatchObject({ ':succeeded': 'SUCCEEDED', ':rotated': 'Rotated', ':rid': 'sensor-1-a01' });
    expect(put.Put?.Item).toMatchObject({
      pk: 'thing#sensor-1',
      sk: 'rotation#2026-03-01T11:00:00.000Z#sensor-1-a01',
      outcome: 'SUCCEEDED',
      oldCertificateId: OLD,
      newCertificateId: NEW,
      expiresAt: Date.parse('2026-03-01T12:00:00.000Z') / 1000 + 400 * 86_400,
    });
    expect(put.Put?.Item).not.toHaveProperty('status');
    expect(d.telemetry.metrics).toContainEqual({ name: 'RotationsSucceeded', value: 1 });
  });

  it('keeps the old certificate INACTIVE and detached in keep-inactive mode', async () => {
    const result = await retireCertificate(input, deps({ retireMode: 'keep-inactive' }));

    expect(result.oldCertificate).toBe('inactive');
    expect(iot.commandCalls(DetachThingPrincipalCommand)).toHaveLength(1);
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
  });

  it('retries DeleteCertificate with a growing backoff while detaching settles', async () => {
    // Prepare
    iot.on(DeleteCertificateCommand).rejectsOnce(awsErrors.deleteConflict()).rejectsOnce(awsErrors.deleteConflict()).resolves({});
    const d = deps();

    // Act
    await retireCertificate(input, d);

    // Assess
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(3);
    expect(d.clock.sleeps).toEqual([500, 1000]);
  });

  it('gives up after a bounded number of DeleteConflict answers and records nothing', async () => {
    iot.on(DeleteCertificateCommand).rejects(awsErrors.deleteConflict());

    await expect(retireCertificate(input, deps({ deleteRetry: { attempts: 3, initialDelayMs: 10 } }))).rejects.toMatchObject({ name: 'DeleteConflictException' });
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(3);
    expect(db.commandCalls(TransactWriteCommand)).toHaveLength(0);
  });

  it('finishes a retry after the old certificate was already deleted', async () => {
    iot.on(DescribeCertificateCommand, { certificateId: OLD }).rejects(awsErrors.notFound());

    const result = await retireCertificate(input, deps());

    expect(result.oldCertificate).toBe('deleted');
    expect(iot.commandCalls(UpdateCertificateCommand)).toHaveLength(0);
    expect(published(iotData)).toHaveLength(1);
    expect(db.commandCalls(TransactWriteCommand)).toHaveLength(1);
  });

  it('treats attachments that are already gone as detached', async () => {
    iot.on(DetachPolicyCommand).rejects(awsErrors.notFound());
    iot.on(DetachThingPrincipalCommand).rejects(awsErrors.notFound());

    await expect(retireCertificate(input, deps())).resolves.toMatchObject({ oldCertificate: 'deleted' });
  });

  it('throws ClaimLost, touching nothing, when the record belongs to another rotation', async () => {
    record = { ...record, rotationId: 'someone-else' };

    await expect(retireCertificate(input, deps())).rejects.toMatchObject({ name: 'ClaimLost' });
    expectNothingTouched();
  });

  it('throws ClaimLost when another rotation takes the record before the success is written', async () => {
    db.on(TransactWriteCommand).callsFake(() => {
      record = { ...record, rotationId: 'someone-else' };
      throw awsErrors.transactionConditionFailed();
    });

    await expect(retireCertificate(input, deps())).rejects.toMatchObject({ name: 'ClaimLost' });
  });

  it.each([
    ['no ack recorded', undefined],
    ['an ack over the old certificate', OLD],
  ])('refuses with AckNotVerified, touching nothing, when the record shows %s', async (_name, acked) => {
    record = { ...record, ackedCertificateId: acked };

    await expect(retireCertificate(input, deps())).rejects.toMatchObject({ name: 'AckNotVerified' });
    expectNothingTouched();
  });

  it.each(['INACTIVE', 'REVOKED'] as const)('refuses with AckNotVerified when the new certificate is %s', async (status) => {
    certificate(NEW, NEW_ARN, status);

    await expect(retireCertificate(input, deps())).rejects.toMatchObject({ name: 'AckNotVerified', message: expect.stringContaining(status) });
    expectNothingTouched();
  });

  it.each(['REVOKED', 'PENDING_TRANSFER'] as const)('refuses with OldCertificateRevoked when the old certificate is %s: a security decision', async (status) => {
    certificate(OLD, OLD_ARN, status);

    await expect(retireCertificate(input, deps())).rejects.toMatchObject({ name: 'OldCertificateRevoked', status });
    expectNothingTouched();
  });

  it('retires an old certificate somebody else set INACTIVE: the device is on the new one', async () => {
    certificate(OLD, OLD_ARN, 'INACTIVE');

    await expect(retireCertificate(input, deps())).resolves.toMatchObject({ oldCertificate: 'deleted' });
    expect(iot.commandCalls(UpdateCertificateCommand)).toEqual([]);
    expect(iot.commandCalls(DeleteCertificateCommand)[0].args[0].input).toEqual({ certificateId: OLD });
    expect(published(iotData)).toHaveLength(1);
  });

  it('refuses with SharedCertificate, leaving the old certificate ACTIVE, when another thing uses it', async () => {
    iot.on(ListPrincipalThingsCommand).resolves({ things: ['sensor-1', 'gateway-7'] });

    await expect(retireCertificate(input, deps())).rejects.toMatchObject({ name: 'SharedCertificate', things: ['sensor-1', 'gateway-7'], message: expect.stringContaining('left ACTIVE') });
    expectNothingTouched();
  });

  it('also retires the certificate an earlier failed rotation left in service: the device is on the new one', async () => {
    const LEFTOVER = 'c'.repeat(64);
    record = { ...record, leftoverCertificateId: LEFTOVER };
    certificate(LEFTOVER, `arn:aws:iot:us-east-1:123456789012:cert/${LEFTOVER}`, 'ACTIVE');

    await retireCertificate(input, deps());

    expect(iot.commandCalls(DeleteCertificateCommand).map((c) => c.args[0].input.certificateId)).toEqual([LEFTOVER, OLD]);
    const [update] = db.commandCalls(TransactWriteCommand)[0].args[0].input.TransactItems ?? [];
    expect(update.Update?.UpdateExpression).toContain('leftoverCertificateId');
  });

  it('does nothing again when the rotation is already recorded SUCCEEDED (a retry after the commit)', async () => {
    record = { ...record, status: 'SUCCEEDED', finishedAt: '2026-03-01T11:30:00.000Z' };

    await expect(retireCertificate(input, deps())).resolves.toEqual({ retiredAt: '2026-03-01T11:30:00.000Z', oldCertificate: 'deleted' });
    expectNothingTouched();
    expect(iot.calls()).toEqual([]);
  });

  it('refuses to retire the certificate the device now uses', async () => {
    await expect(retireCertificate({ ...input, newCertificateId: OLD }, deps())).rejects.toMatchObject({ name: 'InvalidInput' });
    expect(iot.calls()).toHaveLength(0);
  });

  it('rejects an unknown trigger and an unknown RETIRE_MODE', async () => {
    await expect(retireCertificate({ ...input, trigger: 'manual' }, deps())).rejects.toMatchObject({ name: 'InvalidInput' });
    expect(() => parseRetireMode('shred')).toThrow(/RETIRE_MODE/);
    expect(parseRetireMode(undefined)).toBe('delete');
  });

  describe('when this rotation issued the new certificate (API thrift: Issue recorded the old one)', () => {
    const issuedFrom = { newCertificateId: NEW, oldCertificateId: OLD, oldCertificateArn: OLD_ARN, oldPolicies: ['device-policy', 'telemetry-policy'] };
    beforeEach(() => {
      record = { ...record, newCertificateId: NEW, issuedFrom };
    });

    it('spends one 10-TPS call of each kind: ListPrincipalThings, UpdateCertificate, DeleteCertificate; no DescribeCertificate, no ListAttachedPolicies', async () => {
      const result = await retireCertificate(input, deps());

      expect(result.oldCertificate).toBe('deleted');
      expect(iot.commandCalls(DescribeCertificateCommand)).toEqual([]);
      expect(iot.commandCalls(ListAttachedPoliciesCommand)).toEqual([]);
      expect(iot.commandCalls(ListPrincipalThingsCommand).map((c) => c.args[0].input.principal)).toEqual([OLD_ARN]);
      expect(iot.commandCalls(UpdateCertificateCommand).map((c) => c.args[0].input)).toEqual([{ certificateId: OLD, newStatus: 'INACTIVE' }]);
      expect(iot.commandCalls(DetachPolicyCommand).map((c) => c.args[0].input)).toEqual([
        { policyName: 'device-policy', target: OLD_ARN },
        { policyName: 'telemetry-policy', target: OLD_ARN },
      ]);
      expect(iot.commandCalls(DeleteCertificateCommand).map((c) => c.args[0].input)).toEqual([{ certificateId: OLD }]);
      expect(db.commandCalls(TransactWriteCommand)).toHaveLength(1);
    });

    it('takes a REVOKED old certificate from UpdateCertificate\'s refusal: OldCertificateRevoked, nothing else touched', async () => {
      certificate(OLD, OLD_ARN, 'REVOKED');
      iot.on(UpdateCertificateCommand, { certificateId: OLD }).rejects(awsErrors.named('CertificateStateException', 'The certificate operation is not allowed.'));

      await expect(retireCertificate(input, deps())).rejects.toMatchObject({ name: 'OldCertificateRevoked', message: expect.stringContaining('REVOKED') });
      expect(iot.commandCalls(DetachPolicyCommand)).toEqual([]);
      expect(iot.commandCalls(DetachThingPrincipalCommand)).toEqual([]);
      expect(iot.commandCalls(DeleteCertificateCommand)).toEqual([]);
      expect(published(iotData)).toEqual([]);
      expect(db.commandCalls(TransactWriteCommand)).toEqual([]);
    });

    it('still refuses a shared old certificate, checked fresh, leaving it ACTIVE', async () => {
      iot.on(ListPrincipalThingsCommand).resolves({ things: ['sensor-1', 'gateway-7'] });

      await expect(retireCertificate(input, deps())).rejects.toMatchObject({ name: 'SharedCertificate', message: expect.stringContaining('left ACTIVE') });
      expectNothingTouched();
    });

    it('names a revocation before a sharing: a revoked old certificate means Roll back', async () => {
      iot.on(ListPrincipalThingsCommand).resolves({ things: ['sensor-1', 'gateway-7'] });
      certificate(OLD, OLD_ARN, 'REVOKED');

      await expect(retireCertificate(input, deps())).rejects.toMatchObject({ name: 'OldCertificateRevoked' });
      expectNothingTouched();
    });

    it('lists and detaches what is attached now when the recorded policies were stale (DeleteConflict)', async () => {
      iot.on(ListAttachedPoliciesCommand).resolves({ policies: [{ policyName: 'device-policy' }, { policyName: 'added-since' }] });
      iot.on(DeleteCertificateCommand).rejectsOnce(awsErrors.deleteConflict()).resolves({});

      await retireCertificate(input, deps());

      expect(iot.commandCalls(ListAttachedPoliciesCommand)).toHaveLength(1);
      expect(iot.commandCalls(DetachPolicyCommand).map((c) => c.args[0].input.policyName)).toEqual(['device-policy', 'telemetry-policy', 'device-policy', 'added-since']);
      expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(2);
    });

    it('finishes when the old certificate is already gone (UpdateCertificate: not found)', async () => {
      iot.on(UpdateCertificateCommand, { certificateId: OLD }).rejects(awsErrors.notFound());

      await expect(retireCertificate(input, deps())).resolves.toMatchObject({ oldCertificate: 'deleted' });
      expect(iot.commandCalls(DeleteCertificateCommand)).toEqual([]);
      expect(db.commandCalls(TransactWriteCommand)).toHaveLength(1);
    });

    it('describes both certificates as before when the recorded facts belong to another certificate (e.g. a resume)', async () => {
      record = { ...record, issuedFrom: { ...issuedFrom, newCertificateId: 'c'.repeat(64) } };
      certificate(NEW, NEW_ARN, 'INACTIVE');

      await expect(retireCertificate(input, deps())).rejects.toMatchObject({ name: 'AckNotVerified' });
      expectNothingTouched();
    });
  });
});
