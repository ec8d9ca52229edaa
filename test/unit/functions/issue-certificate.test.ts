import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateCertificateFromCsrCommand,
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListCertificatesCommand,
  UpdateCertificateCommand,
  DetachThingPrincipalCommand,
} from '@aws-sdk/client-iot';
import { X509Certificate } from 'node:crypto';
import { certificateKeyFingerprint } from '../../../functions/core/certificates.js';
import { markCreatedNothing, type SignRequest, type Signer } from '../../../functions/core/signer.js';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { issueCertificate, type IssueCertificateDeps } from '../../../functions/issue-certificate.js';
import { awsErrors, clients } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { generateKeys, makeCertificate, makeCsr, type Certificate, type KeyPair } from '../../fixtures/pki.js';
import { recordingTelemetry, type RecordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const iot = mockClient(IoTClient);

const THING = 'sensor-1';
const ROTATION = 'sensor-1-a0123456789abcdef0123';
const arn = (id: string): string => `arn:aws:iot:us-east-1:123456789012:cert/${id}`;

let oldKey: KeyPair;
let old: Certificate;
let csr: string;
let issuedPem: Certificate;

beforeAll(async () => {
  oldKey = await generateKeys('ec-p256');
  old = await makeCertificate(THING, oldKey);
  const newKey = await generateKeys('ec-p256');
  csr = await makeCsr({ commonName: THING, key: newKey });
  issuedPem = await makeCertificate(THING, newKey);
});

/** The thing's current record, as a tiny stateful table the mocks read and write. */
let record: Record<string, unknown> | undefined;
let created: number;

function deps(): IssueCertificateDeps & { telemetry: RecordingTelemetry } {
  return { db: clients.db(), tableName: 'rotations', iot: clients.iot(), iotCreate: clients.iot(), clock: fakeClock(), telemetry: recordingTelemetry() };
}

function input(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { thingName: THING, rotationId: ROTATION, oldCertificateId: old.id, csrPem: csr, ...overrides };
}

beforeEach(() => {
  db.reset();
  iot.reset();
  created = 0;
  record = { pk: `thing#${THING}`, sk: 'current', thingName: THING, rotationId: ROTATION, status: 'IN_PROGRESS', oldCertificateId: old.id };
  db.on(GetCommand).callsFake(() => ({ Item: record ? { ...record } : undefined }));
  db.on(UpdateCommand).callsFake((command: { UpdateExpression: string; ExpressionAttributeValues: Record<string, unknown> }) => {
    if (!record) return {};
    if (command.UpdateExpression.startsWith('SET issueIntent')) record.issueIntent = command.ExpressionAttributeValues[':intent'];
    else if (command.UpdateExpression === 'REMOVE issueIntent') delete record.issueIntent;
    else {
      record.newCertificateId = command.ExpressionAttributeValues[':id'];
      delete record.issueIntent;
    }
    return {};
  });
  iot.on(DescribeCertificateCommand, { certificateId: old.id }).resolves({
    certificateDescription: { certificateId: old.id, certificateArn: arn(old.id), status: 'ACTIVE', certificatePem: old.pem },
  });
  iot.on(DescribeCertificateCommand, { certificateId: issuedPem.id }).resolves({
    certificateDescription: { certificateId: issuedPem.id, certificateArn: arn(issuedPem.id), status: 'ACTIVE', certificatePem: issuedPem.pem },
  });
  iot.on(CreateCertificateFromCsrCommand).callsFake(() => {
    created++;
    return { certificateId: issuedPem.id, certificateArn: arn(issuedPem.id), certificatePem: issuedPem.pem };
  });
  iot.on(ListAttachedPoliciesCommand, { target: arn(old.id) }).resolves({ policies: [{ policyName: 'device-policy' }], nextMarker: 'page-2' });
  iot.on(ListAttachedPoliciesCommand, { target: arn(old.id), marker: 'page-2' }).resolves({ policies: [{ policyName: 'telemetry-policy' }] });
  iot.on(AttachPolicyCommand).resolves({});
  iot.on(AttachThingPrincipalCommand).resolves({});
  iot.on(UpdateCertificateCommand).resolves({});
  iot.on(DeleteCertificateCommand).resolves({});
});

/** The writes that record the new certificate's id (the intent is written before them). */
function newCertificateUpdates(): Record<string, unknown>[] {
  return db
    .commandCalls(UpdateCommand)
    .map((c) => c.args[0].input as Record<string, unknown>)
    .filter((i) => String(i.UpdateExpression).startsWith('SET newCertificateId'));
}

function intentUpdates(): Record<string, unknown>[] {
  return db
    .commandCalls(UpdateCommand)
    .map((c) => c.args[0].input as Record<string, unknown>)
    .filter((i) => String(i.UpdateExpression).startsWith('SET issueIntent'));
}

describe('issue-certificate', () => {
  it('creates the certificate from the CSR, records it at once, and gives it every policy and the thing', async () => {
    // Prepare
    const d = deps();

    // Act
    const result = await issueCertificate(input(), d);

    // Assess
    const notAfter = new Date(new X509Certificate(issuedPem.pem).validTo).toISOString();
    expect(result).toEqual({ certificateId: issuedPem.id, certificateArn: arn(issuedPem.id), certificatePem: issuedPem.pem, notAfter });
    expect(iot.commandCalls(CreateCertificateFromCsrCommand)[0].args[0].input).toEqual({ certificateSigningRequest: csr, setAsActive: true });
    const update = newCertificateUpdates()[0];
    expect(update.ConditionExpression).toBe('rotationId = :rid AND #status = :inProgress AND attribute_not_exists(newCertificateId)');
    expect(update.ExpressionAttributeValues).toMatchObject({ ':id': issuedPem.id, ':rid': ROTATION, ':notAfter': notAfter });
    expect(update.UpdateExpression).toContain('newCertificateNotAfter = :notAfter');
    expect(iot.commandCalls(AttachPolicyCommand).map((c) => c.args[0].input)).toEqual([
      { policyName: 'device-policy', target: arn(issuedPem.id) },
      { policyName: 'telemetry-policy', target: arn(issuedPem.id) },
    ]);
    expect(iot.commandCalls(AttachThingPrincipalCommand)[0].args[0].input).toEqual({ thingName: THING, principal: arn(issuedPem.id) });
    expect(d.telemetry.text()).not.toContain(csr.split('\n')[1]);
    // API thrift: the old certificate is described once and its policies listed once, and what
    // Retire needs of it is recorded with the new certificate's id, in the same write.
    expect(iot.commandCalls(DescribeCertificateCommand)).toHaveLength(1);
    expect(iot.commandCalls(ListAttachedPoliciesCommand)).toHaveLength(2); // two pages, read once
    expect(update.UpdateExpression).toContain('issuedFrom = :from');
    expect((update.ExpressionAttributeValues as Record<string, unknown>)[':from']).toEqual({
      newCertificateId: issuedPem.id,
      oldCertificateId: old.id,
      oldCertificateArn: arn(old.id),
      oldPolicies: ['device-policy', 'telemetry-policy'],
    });
  });

  it('signs with the configured signer (private-ca), records its notAfter, and gives the certificate the same attachments', async () => {
    // Prepare
    const signed: SignRequest[] = [];
    const signer: Signer = {
      kind: 'private-ca',
      sign: async (request) => {
        signed.push(request);
        return { certificateId: issuedPem.id, certificateArn: arn(issuedPem.id), certificatePem: issuedPem.pem, notAfter: '2027-03-01T12:00:00.000Z' };
      },
    };
    // Act
    const result = await issueCertificate(input(), { ...deps(), signer });
    // Assess
    expect(result.notAfter).toBe('2027-03-01T12:00:00.000Z');
    expect(signed).toEqual([{ csrPem: csr, rotationId: ROTATION, keyFingerprint: certificateKeyFingerprint(issuedPem.pem) }]);
    expect(iot.commandCalls(CreateCertificateFromCsrCommand)).toHaveLength(0);
    expect(newCertificateUpdates()[0].ExpressionAttributeValues).toMatchObject({ ':id': issuedPem.id, ':notAfter': '2027-03-01T12:00:00.000Z' });
    expect(iot.commandCalls(AttachThingPrincipalCommand)[0].args[0].input).toEqual({ thingName: THING, principal: arn(issuedPem.id) });
  });

  it('forgets its intent when the signer failed before anything reached IoT, and keeps it when something may have', async () => {
    // Prepare
    const failing = (error: Error): Signer => ({ kind: 'private-ca', sign: async () => Promise.reject(error) });
    // Act
    const before = await issueCertificate(input(), { ...deps(), signer: failing(markCreatedNothing(new Error('Private CA is DISABLED'))) }).catch((e: unknown) => e);
    const intentAfterRefusal = record?.issueIntent;
    const unknown = await issueCertificate(input(), { ...deps(), signer: failing(Object.assign(new Error('socket hang up'), { name: 'InternalFailureException' })) }).catch((e: unknown) => e);
    // Assess
    expect(before).toMatchObject({ message: 'Private CA is DISABLED' });
    expect(intentAfterRefusal).toBeUndefined();
    expect(unknown).toMatchObject({ name: 'InternalFailureException' });
    expect(record?.issueIntent).toMatchObject({ keyFingerprint: certificateKeyFingerprint(issuedPem.pem) });
  });

  it('makes no second certificate when retried after a partial success', async () => {
    // Prepare: the first attempt dies after recording the certificate, before the thing is attached.
    iot.on(AttachThingPrincipalCommand).rejectsOnce(awsErrors.throttled()).resolves({});
    await expect(issueCertificate(input(), deps())).rejects.toMatchObject({ name: 'ThrottlingException' });

    // Act
    const result = await issueCertificate(input(), deps());

    // Assess
    expect(created).toBe(1);
    expect(result.certificateId).toBe(issuedPem.id);
    expect(iot.commandCalls(AttachThingPrincipalCommand)).toHaveLength(2);
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
  });

  it('rejects a CSR that re-uses the old certificate key with CsrRejected and its rule', async () => {
    const reused = await makeCsr({ commonName: THING, key: oldKey });

    const error = await issueCertificate(input({ csrPem: reused }), deps()).catch((e: unknown) => e);

    expect(error).toMatchObject({ name: 'CsrRejected', reason: 'KEY_REUSED' });
    expect((error as Error).message).toMatch(/^KEY_REUSED: /);
    expect(created).toBe(0);
  });

  it('rejects a CSR for another thing with CsrRejected WRONG_COMMON_NAME', async () => {
    const other = await makeCsr({ commonName: 'sensor-2', key: await generateKeys('ec-p384') });

    await expect(issueCertificate(input({ csrPem: other }), deps())).rejects.toMatchObject({ name: 'CsrRejected', reason: 'WRONG_COMMON_NAME' });
    expect(created).toBe(0);
  });

  it('rejects a CSR that is not PEM with CsrRejected INVALID_PEM', async () => {
    await expect(issueCertificate(input({ csrPem: 'hello' }), deps())).rejects.toMatchObject({ name: 'CsrRejected', reason: 'INVALID_PEM' });
  });

  it('throws CertificateNotFound when the old certificate is gone', async () => {
    iot.on(DescribeCertificateCommand, { certificateId: old.id }).rejects(awsErrors.notFound());

    await expect(issueCertificate(input(), deps())).rejects.toMatchObject({ name: 'CertificateNotFound', certificateId: old.id });
    expect(created).toBe(0);
  });

  it('throws ClaimLost without creating anything when another rotation holds the record', async () => {
    record = { ...record, rotationId: 'someone-else' };

    await expect(issueCertificate(input(), deps())).rejects.toMatchObject({ name: 'ClaimLost' });
    expect(created).toBe(0);
  });

  it('deactivates and deletes the new certificate when it cannot be recorded, then rethrows', async () => {
    // Prepare: the intent is written, the certificate's id is not.
    db.on(UpdateCommand).callsFake((command: { UpdateExpression: string }) => {
      if (command.UpdateExpression.startsWith('SET newCertificateId')) throw awsErrors.throttled();
      return {};
    });

    // Act
    const error = await issueCertificate(input(), deps()).catch((e: unknown) => e);

    // Assess
    expect(error).toMatchObject({ name: 'ThrottlingException' });
    expect(iot.commandCalls(UpdateCertificateCommand)[0].args[0].input).toEqual({ certificateId: issuedPem.id, newStatus: 'INACTIVE' });
    expect(iot.commandCalls(DeleteCertificateCommand)[0].args[0].input).toEqual({ certificateId: issuedPem.id });
    expect(iot.commandCalls(AttachPolicyCommand)).toHaveLength(0);
  });

  it('keeps the certificate a concurrent attempt recorded first and deletes its own', async () => {
    // Prepare: a racing attempt recorded the winner between our read and our write.
    const winnerKey = await generateKeys('ec-p256');
    const winner = await makeCertificate(THING, winnerKey);
    iot.on(DescribeCertificateCommand, { certificateId: winner.id }).resolves({
      certificateDescription: { certificateId: winner.id, certificateArn: arn(winner.id), status: 'ACTIVE', certificatePem: winner.pem },
    });
    db.on(UpdateCommand).callsFake((command: { UpdateExpression: string }) => {
      if (!command.UpdateExpression.startsWith('SET newCertificateId')) return {};
      if (record) record.newCertificateId = winner.id;
      throw awsErrors.conditionFailed();
    });

    // Act
    const result = await issueCertificate(input(), deps());

    // Assess
    expect(result.certificateId).toBe(winner.id);
    expect(iot.commandCalls(DeleteCertificateCommand)[0].args[0].input).toEqual({ certificateId: issuedPem.id });
    expect(iot.commandCalls(AttachThingPrincipalCommand)[0].args[0].input.principal).toBe(arn(winner.id));
  });

  it('issues again when the recorded certificate no longer exists, replacing the recorded id', async () => {
    const gone = 'd'.repeat(64);
    record = { ...record, newCertificateId: gone };
    iot.on(DescribeCertificateCommand, { certificateId: gone }).rejects(awsErrors.notFound());

    const result = await issueCertificate(input(), deps());

    expect(result.certificateId).toBe(issuedPem.id);
    const update = newCertificateUpdates()[0];
    expect(update.ConditionExpression).toContain('newCertificateId = :replaced');
    expect(update.ExpressionAttributeValues).toMatchObject({ ':replaced': gone });
  });

  it('records the key it is about to certify before the create, and clears it with the certificate id', async () => {
    const calls: string[] = [];
    db.on(UpdateCommand).callsFake((command: { UpdateExpression: string }) => {
      calls.push(command.UpdateExpression.split(' ')[0] + ' ' + command.UpdateExpression.split(' ')[1]);
      return {};
    });
    iot.on(CreateCertificateFromCsrCommand).callsFake(() => {
      calls.push('create');
      return { certificateId: issuedPem.id, certificateArn: arn(issuedPem.id), certificatePem: issuedPem.pem };
    });

    await issueCertificate(input(), deps());

    expect(calls).toEqual(['SET issueIntent', 'create', 'SET newCertificateId']);
    const intent = intentUpdates()[0].ExpressionAttributeValues as Record<string, { keyFingerprint: string; at: string }>;
    expect(intent[':intent'].keyFingerprint).toBe(certificateKeyFingerprint(issuedPem.pem));
    expect(intent[':intent'].at).toBe('2026-03-01T12:00:00.000Z');
    // The same write clears the csr_res's token, which device-message answered and left behind.
    expect(intentUpdates()[0].UpdateExpression).toBe('SET issueIntent = :intent REMOVE waitFor, taskToken');
    expect(intentUpdates()[0].ConditionExpression).toBe('rotationId = :rid AND #status = :inProgress AND (attribute_not_exists(waitFor) OR waitFor = :csrRes)');
    expect(intentUpdates()[0].ExpressionAttributeValues).toMatchObject({ ':csrRes': 'csr_res' });
    expect(newCertificateUpdates()[0].UpdateExpression).toContain('REMOVE issueIntent');
  });

  it('after a crash between create and record, adopts the certificate the crashed attempt made: no second one', async () => {
    // Prepare: the intent is on the record, no id; IoT lists the crashed attempt's certificate newest first.
    record = { ...record, issueIntent: { keyFingerprint: certificateKeyFingerprint(issuedPem.pem), at: '2026-03-01T11:59:59.000Z' } };
    const unrelated = await makeCertificate('sensor-9', await generateKeys('ec-p256'));
    iot.on(DescribeCertificateCommand, { certificateId: unrelated.id }).resolves({
      certificateDescription: { certificateId: unrelated.id, certificateArn: arn(unrelated.id), status: 'ACTIVE', certificatePem: unrelated.pem },
    });
    iot.on(ListCertificatesCommand).resolves({
      certificates: [
        { certificateId: unrelated.id, creationDate: new Date('2026-03-01T12:00:01.000Z') },
        { certificateId: issuedPem.id, creationDate: new Date('2026-03-01T12:00:00.000Z') },
        { certificateId: 'e'.repeat(64), creationDate: new Date('2026-02-01T00:00:00.000Z') },
      ],
      nextMarker: 'older',
    });

    const result = await issueCertificate(input(), deps());

    expect(result.certificateId).toBe(issuedPem.id);
    expect(created).toBe(0);
    // Newest first, and it stopped at the first certificate older than the intent.
    expect(iot.commandCalls(ListCertificatesCommand)).toHaveLength(1);
    expect(iot.commandCalls(DescribeCertificateCommand).map((c) => c.args[0].input.certificateId)).not.toContain('e'.repeat(64));
    expect(newCertificateUpdates()[0].ExpressionAttributeValues).toMatchObject({ ':id': issuedPem.id });
    expect(iot.commandCalls(AttachThingPrincipalCommand)[0].args[0].input.principal).toBe(arn(issuedPem.id));
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
  });

  it('after a crash before the create went through, finds nothing and creates the certificate', async () => {
    record = { ...record, issueIntent: { keyFingerprint: certificateKeyFingerprint(issuedPem.pem), at: '2026-03-01T11:59:59.000Z' } };
    iot.on(ListCertificatesCommand).resolves({ certificates: [] });

    const result = await issueCertificate(input(), deps());

    expect(result.certificateId).toBe(issuedPem.id);
    expect(created).toBe(1);
  });

  it('tries a throttled create again itself (nothing was created), and never retries an ambiguous failure', async () => {
    iot.on(CreateCertificateFromCsrCommand)
      .rejectsOnce(awsErrors.throttled())
      .rejectsOnce(awsErrors.throttled())
      .callsFake(() => {
        created++;
        return { certificateId: issuedPem.id, certificateArn: arn(issuedPem.id), certificatePem: issuedPem.pem };
      });
    await issueCertificate(input(), deps());
    expect(iot.commandCalls(CreateCertificateFromCsrCommand)).toHaveLength(3);

    iot.on(CreateCertificateFromCsrCommand).rejects(awsErrors.named('InternalFailureException'));
    record = { ...record, newCertificateId: undefined };
    const before = iot.commandCalls(CreateCertificateFromCsrCommand).length;
    await expect(issueCertificate(input(), deps())).rejects.toMatchObject({ name: 'InternalFailureException' });
    expect(iot.commandCalls(CreateCertificateFromCsrCommand).length - before).toBe(1);
    // The intent stays: the create may have happened, and the retry must look for it.
    expect(record?.issueIntent).toBeDefined();
  });

  it('takes down a certificate a failed rotation left that the device never acked over, then issues', async () => {
    const leftover = 'c'.repeat(64);
    record = { ...record, leftoverCertificateId: leftover, ackedCertificateId: 'd'.repeat(64) };
    iot.on(DescribeCertificateCommand, { certificateId: leftover }).resolves({
      certificateDescription: { certificateId: leftover, certificateArn: arn(leftover), status: 'ACTIVE', certificatePem: old.pem },
    });
    iot.on(ListAttachedPoliciesCommand, { target: arn(leftover) }).resolves({ policies: [] });
    iot.on(DetachThingPrincipalCommand).resolves({});

    await issueCertificate(input(), deps());

    expect(iot.commandCalls(UpdateCertificateCommand)[0].args[0].input).toEqual({ certificateId: leftover, newStatus: 'INACTIVE' });
    expect(iot.commandCalls(DeleteCertificateCommand)[0].args[0].input).toEqual({ certificateId: leftover });
    expect(db.commandCalls(UpdateCommand).some((c) => c.args[0].input.UpdateExpression === 'REMOVE leftoverCertificateId')).toBe(true);
    expect(created).toBe(1);
  });

  it('leaves a leftover certificate the device acked over to Retire', async () => {
    const leftover = 'c'.repeat(64);
    record = { ...record, leftoverCertificateId: leftover, ackedCertificateId: leftover };

    await issueCertificate(input(), deps());

    expect(iot.commandCalls(UpdateCertificateCommand)).toEqual([]);
    expect(iot.commandCalls(DeleteCertificateCommand)).toEqual([]);
  });

  it.each([
    ['REVOKED', 'OldCertificateRevoked'],
    ['PENDING_TRANSFER', 'OldCertificateRevoked'],
    ['INACTIVE', 'OldCertificateInactive'],
  ] as const)('issues nothing when the old certificate is %s (%s)', async (status, name) => {
    iot.on(DescribeCertificateCommand, { certificateId: old.id }).resolves({
      certificateDescription: { certificateId: old.id, certificateArn: arn(old.id), status, certificatePem: old.pem },
    });

    await expect(issueCertificate(input(), deps())).rejects.toMatchObject({ name });
    expect(created).toBe(0);
    expect(intentUpdates()).toEqual([]);
  });

  it.each([
    ['an old certificate id that is not an id', { oldCertificateId: 'abc' }],
    ['no CSR', { csrPem: undefined }],
  ])('rejects %s with InvalidInput', async (_name, overrides) => {
    await expect(issueCertificate(input(overrides), deps())).rejects.toMatchObject({ name: 'InvalidInput' });
    expect(db.calls()).toHaveLength(0);
  });
});
