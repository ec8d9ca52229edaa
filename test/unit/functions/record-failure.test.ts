import { DynamoDBDocumentClient, GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { classifyFailure, readableCause } from '../../../functions/core/failure.js';
import { escalationSubject, recordFailure, type RecordFailureDeps } from '../../../functions/record-failure.js';
import { awsErrors, clients } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { recordingTelemetry, type RecordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const OLD = 'a'.repeat(64);
const NEW = 'b'.repeat(64);
const EXECUTION = 'arn:aws:states:eu-west-1:123456789012:execution:rotor-rotate-device:sensor-1-a01';
const lambdaCause = (errorType: string, errorMessage: string): string => JSON.stringify({ errorType, errorMessage, trace: ['at x (file.js:1:1)'] });

function input(rotation: Record<string, unknown>, failedStep: string): Record<string, unknown> {
  return {
    rotation: { thingName: 'sensor-1', certificateId: OLD, trigger: 'audit', ...rotation },
    rotationId: 'sensor-1-a01',
    executionArn: EXECUTION,
    startedAt: '2026-03-01T11:00:00.000Z',
    failedStep,
  };
}

function deps(): RecordFailureDeps & { telemetry: RecordingTelemetry } {
  return { db: clients.db(), tableName: 'rotations', clock: fakeClock(), telemetry: recordingTelemetry(), historyRetentionDays: 30 };
}

beforeEach(() => {
  db.reset();
  db.on(TransactWriteCommand).resolves({});
});

describe('classifyFailure', () => {
  it.each([
    ['a csr timeout', 'Request CSR', { Error: 'States.Timeout' }, 'NO_CSR_RESPONSE'],
    ['a rejected CSR', 'Issue certificate', { Error: 'CsrRejected', Cause: lambdaCause('CsrRejected', 'KEY_REUSED: same key') }, 'CSR_REJECTED'],
    ['an ack timeout', 'Deliver certificate', { Error: 'States.Timeout' }, 'NO_ACK'],
    ['a device error', 'Deliver certificate', { Error: 'DeviceReportedError', Cause: 'TLS handshake failed' }, 'DEVICE_ERROR'],
    ['a vanished certificate', 'Issue certificate', { Error: 'CertificateNotFound', Cause: lambdaCause('CertificateNotFound', 'gone') }, 'CERTIFICATE_NOT_FOUND'],
    ['an error while retiring', 'Retire old certificate', { Error: 'DeleteConflictException', Cause: lambdaCause('DeleteConflictException', 'attached') }, 'RETIRE_FAILED'],
    ['another error while issuing', 'Issue certificate', { Error: 'ThrottlingException', Cause: lambdaCause('ThrottlingException', 'Rate exceeded') }, 'ISSUE_FAILED'],
    ['a claim failure', 'Claim device', { Error: 'DynamoDB.AmazonDynamoDBException', Cause: 'boom' }, 'INTERNAL_ERROR'],
    ['a revoked old certificate', 'Retire old certificate', { Error: 'OldCertificateRevoked', Cause: lambdaCause('OldCertificateRevoked', 'REVOKED') }, 'OLD_CERTIFICATE_REVOKED'],
    ['an old certificate set INACTIVE', 'Issue certificate', { Error: 'OldCertificateInactive', Cause: lambdaCause('OldCertificateInactive', 'x') }, 'OLD_CERTIFICATE_INACTIVE'],
    ['a shared old certificate', 'Retire old certificate', { Error: 'SharedCertificate', Cause: lambdaCause('SharedCertificate', 'x') }, 'SHARED_CERTIFICATE'],
    ['an unverified ack', 'Retire old certificate', { Error: 'AckNotVerified', Cause: lambdaCause('AckNotVerified', 'x') }, 'ACK_NOT_VERIFIED'],
  ])('names %s', (_name, step, error, reason) => {
    expect(classifyFailure({ failedStep: step, error })).toMatchObject({ step, reason });
  });

  it('keeps a revocation first even when the roll back failed too: the device was cut off on purpose', () => {
    const failure = classifyFailure({
      failedStep: 'Retire old certificate',
      error: { Error: 'OldCertificateRevoked', Cause: lambdaCause('OldCertificateRevoked', 'REVOKED') },
      rollbackError: { Error: 'ThrottlingException', Cause: 'x' },
    });
    expect(failure).toMatchObject({ step: 'Retire old certificate', reason: 'OLD_CERTIFICATE_REVOKED' });
  });

  it.each(['REVOKED', 'PENDING_TRANSFER'])('names a revocation Roll back found (%s) although the step failed for another reason: the device was cut off on purpose', (status) => {
    const failure = classifyFailure({ failedStep: 'Deliver certificate', error: { Error: 'States.Timeout' }, oldCertificateStatus: status });
    expect(failure).toMatchObject({ step: 'Deliver certificate', reason: 'OLD_CERTIFICATE_REVOKED' });
    expect(failure.cause).toContain('cut off on purpose');
    expect(failure.cause).toContain("'Deliver certificate' failed: NO_ACK");
  });

  it.each(['ACTIVE', 'INACTIVE', 'GONE'])('keeps the step\'s own reason when Roll back found the old certificate %s', (status) => {
    expect(classifyFailure({ failedStep: 'Deliver certificate', error: { Error: 'States.Timeout' }, oldCertificateStatus: status })).toMatchObject({ reason: 'NO_ACK' });
  });

  it('puts a failed roll-back first and keeps the original failure in the cause', () => {
    const failure = classifyFailure({
      failedStep: 'Deliver certificate',
      error: { Error: 'States.Timeout' },
      rollbackError: { Error: 'RollbackUnsafe', Cause: lambdaCause('RollbackUnsafe', 'old certificate is INACTIVE') },
    });
    expect(failure).toEqual({ step: 'Roll back', reason: 'ROLLBACK_FAILED', cause: expect.stringContaining('old certificate is INACTIVE') });
    expect(failure.cause).toContain("'Deliver certificate' failed: NO_ACK");
  });

  it('reads a Lambda error Cause, keeping foreign error types and dropping Rotor ones', () => {
    expect(readableCause({ Error: 'CsrRejected', Cause: lambdaCause('CsrRejected', 'KEY_REUSED: x') })).toBe('KEY_REUSED: x');
    expect(readableCause({ Error: 'ThrottlingException', Cause: lambdaCause('ThrottlingException', 'Rate exceeded') })).toBe('ThrottlingException: Rate exceeded');
    expect(readableCause({ Error: 'DeviceReportedError', Cause: 'no\nroute' })).toBe('no route');
    expect(readableCause({ Error: 'States.Timeout' })).toBe('States.Timeout');
    expect(readableCause({ Error: 'X', Cause: 'c'.repeat(5000) }).length).toBe(1000);
  });
});

describe('record-failure', () => {
  it('records FAILED with step, reason and cause, writes history, and composes the escalation', async () => {
    // Prepare
    const d = deps();
    const error = { Error: 'CsrRejected', Cause: lambdaCause('CsrRejected', 'KEY_REUSED: the CSR re-uses the key of the certificate being replaced') };

    // Act
    const result = await recordFailure(input({ error, rollback: { newCertificateId: null, deleted: false, aborted: true } }, 'Issue certificate'), d);

    // Assess
    expect(result.error).toBe('CSR_REJECTED');
    expect(result.cause).toBe('KEY_REUSED: the CSR re-uses the key of the certificate being replaced');
    expect(result.subject).toBe('Rotor: certificate rotation of sensor-1 failed (CSR_REJECTED)');
    expect(JSON.parse(result.message)).toEqual({
      thingName: 'sensor-1',
      oldCertificateId: OLD,
      newCertificateId: null,
      step: 'Issue certificate',
      reason: 'CSR_REJECTED',
      cause: result.cause,
      rotationId: 'sensor-1-a01',
      executionArn: EXECUTION,
      consoleUrl: `https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/${EXECUTION}`,
    });
    const [current, history] = db.commandCalls(TransactWriteCommand)[0].args[0].input.TransactItems ?? [];
    expect(current.Update?.ConditionExpression).toBe('rotationId = :rid AND #status <> :succeeded');
    expect(history.Put?.ConditionExpression).toBe('attribute_not_exists(sk) OR outcome <> :succeeded');
    expect(current.Update?.UpdateExpression).toContain('REMOVE waitFor, taskToken');
    expect(current.Update?.ExpressionAttributeValues).toMatchObject({ ':failed': 'FAILED', ':step': 'Issue certificate', ':reason': 'CSR_REJECTED', ':exec': EXECUTION });
    expect(history.Put?.Item).toMatchObject({ outcome: 'FAILED', reason: 'CSR_REJECTED', sk: 'rotation#2026-03-01T11:00:00.000Z#sensor-1-a01' });
    expect(history.Put?.Item).not.toHaveProperty('status');
    expect(d.telemetry.metrics).toContainEqual({ name: 'RotationsFailed', value: 1, dimensions: { reason: 'CSR_REJECTED' } });
  });

  it.each([
    ['not rolled back (Retire failed)', { issued: { certificateId: NEW }, error: { Error: 'SharedCertificate' } }, 'Retire old certificate', NEW],
    ['rolled back', { issued: { certificateId: NEW }, rollback: { newCertificateId: NEW, deleted: true, aborted: true }, error: { Error: 'States.Timeout' } }, 'Deliver certificate', undefined],
  ])('keeps a new certificate %s as the leftover the next rotation finishes', async (_name, rotation, step, leftover) => {
    await recordFailure(input(rotation, step), deps());

    const [current] = db.commandCalls(TransactWriteCommand)[0].args[0].input.TransactItems ?? [];
    expect(current.Update?.ExpressionAttributeValues?.[':leftover']).toBe(leftover);
  });

  it('links the escalation to the local console when the local runtime gives one', async () => {
    const result = await recordFailure(input({ error: { Error: 'States.Timeout' } }, 'Request CSR'), { ...deps(), consoleUrl: 'http://127.0.0.1:4566/console/' });

    expect(JSON.parse(result.message)).toMatchObject({ consoleUrl: `http://127.0.0.1:4566/console/executions/${EXECUTION}` });
  });

  it('names the new certificate in the escalation when one was issued', async () => {
    const result = await recordFailure(input({ issued: { certificateId: NEW }, error: { Error: 'States.Timeout' } }, 'Deliver certificate'), deps());

    expect(JSON.parse(result.message)).toMatchObject({ newCertificateId: NEW, reason: 'NO_ACK' });
  });

  it('writes only the history when the record belongs to another rotation', async () => {
    // Prepare
    db.on(TransactWriteCommand).rejectsOnce(awsErrors.transactionConditionFailed()).resolves({});
    db.on(GetCommand).resolves({ Item: { rotationId: 'another', status: 'IN_PROGRESS' } });

    // Act
    const result = await recordFailure(input({ error: { Error: 'DynamoDB.AmazonDynamoDBException', Cause: 'x' } }, 'Claim device'), deps());

    // Assess
    expect(result.error).toBe('INTERNAL_ERROR');
    const second = db.commandCalls(TransactWriteCommand)[1].args[0].input.TransactItems ?? [];
    expect(second).toHaveLength(1);
    expect(second[0].Put?.Item).toMatchObject({ outcome: 'FAILED' });
  });

  it.each([
    ['the current record', { Item: { rotationId: 'sensor-1-a01', status: 'SUCCEEDED' } }],
    ['the history item (the record moved on since)', { Item: { rotationId: 'another', status: 'IN_PROGRESS' } }],
  ])('never overwrites a SUCCEEDED rotation (%s): RotationAlreadySucceeded, nothing escalated', async (_name, current) => {
    db.on(TransactWriteCommand).rejects(awsErrors.transactionConditionFailed());
    db.on(GetCommand).resolves(current);
    const d = deps();

    await expect(recordFailure(input({ error: { Error: 'Sandbox.Timedout' } }, 'Retire old certificate'), d)).rejects.toMatchObject({ name: 'RotationAlreadySucceeded' });
    const [first] = db.commandCalls(TransactWriteCommand)[0].args[0].input.TransactItems ?? [];
    expect(first.Update?.ConditionExpression).toBe('rotationId = :rid AND #status <> :succeeded');
    expect(d.telemetry.metrics).toEqual([]);
  });

  it('lets a transaction conflict (not a failed condition) escape for the ASL Retry', async () => {
    db.on(TransactWriteCommand).rejects(
      Object.assign(awsErrors.named('TransactionCanceledException'), { CancellationReasons: [{ Code: 'TransactionConflict' }, { Code: 'None' }] }),
    );

    await expect(recordFailure(input({ error: { Error: 'States.Timeout' } }, 'Request CSR'), deps())).rejects.toMatchObject({ name: 'TransactionCanceledException' });
    expect(db.commandCalls(GetCommand)).toHaveLength(0);
  });

  it('lets other DynamoDB errors escape for the ASL Retry', async () => {
    db.on(TransactWriteCommand).rejects(awsErrors.throttled());

    await expect(recordFailure(input({ error: { Error: 'States.Timeout' } }, 'Request CSR'), deps())).rejects.toMatchObject({ name: 'ThrottlingException' });
  });

  it('keeps the escalation subject within SNS limits', () => {
    const subject = escalationSubject('x'.repeat(128), 'ROLLBACK_FAILED');
    expect(subject.length).toBeLessThanOrEqual(100);
    expect(subject).toMatch(/^[\x20-\x7e]+$/);
  });

  it('rejects a state without a thing name with InvalidInput', async () => {
    await expect(recordFailure({ rotation: { certificateId: OLD }, rotationId: 'r', executionArn: EXECUTION, startedAt: 's' }, deps())).rejects.toMatchObject({
      name: 'InvalidInput',
    });
    expect(db.calls()).toHaveLength(0);
  });
});
