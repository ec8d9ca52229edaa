import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { releaseClaim, type ReleaseClaimDeps } from '../../../functions/release-claim.js';
import { awsErrors, clients } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { recordingTelemetry, type RecordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const sfn = mockClient(SFNClient);

const HOLDER_ARN = 'arn:aws:states:us-east-1:123456789012:execution:rotor-rotate-device:sensor-1-a01';
const holder = {
  pk: 'thing#sensor-1',
  sk: 'current',
  thingName: 'sensor-1',
  status: 'IN_PROGRESS',
  step: 'Issue certificate',
  rotationId: 'sensor-1-a01',
  executionArn: HOLDER_ARN,
  oldCertificateId: 'a'.repeat(64),
  newCertificateId: 'b'.repeat(64),
  trigger: 'audit',
  startedAt: '2026-03-01T11:00:00.000Z',
};
const input = { thingName: 'sensor-1', rotationId: 'sensor-1-a02' };

function deps(): ReleaseClaimDeps & { telemetry: RecordingTelemetry } {
  return { db: clients.db(), tableName: 'rotations', sfn: clients.sfn(), clock: fakeClock(), telemetry: recordingTelemetry(), historyRetentionDays: 30 };
}

beforeEach(() => {
  db.reset();
  sfn.reset();
  db.on(GetCommand).resolves({ Item: holder });
  db.on(TransactWriteCommand).resolves({});
});

describe('release-claim', () => {
  it('leaves a claim whose execution is still RUNNING alone: ClaimHeld', async () => {
    sfn.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' });

    await expect(releaseClaim(input, deps())).rejects.toMatchObject({ name: 'ClaimHeld' });
    expect(sfn.commandCalls(DescribeExecutionCommand)[0].args[0].input).toEqual({ executionArn: HOLDER_ARN });
    expect(db.commandCalls(TransactWriteCommand)).toHaveLength(0);
  });

  it.each(['FAILED', 'ABORTED', 'TIMED_OUT'] as const)('releases the claim of an execution that ended %s, recorded as EXECUTION_ABANDONED', async (status) => {
    sfn.on(DescribeExecutionCommand).resolves({ status });
    const d = deps();

    const result = await releaseClaim(input, d);
    expect(result).toEqual({ released: true, holder: 'sensor-1-a01', holderStatus: status, subject: expect.any(String), message: expect.any(String) });
    // The abandoned rotation never escalated: this is its one escalation, naming it and why.
    if (!result.released) throw new Error('not released');
    expect(result.subject).toContain('EXECUTION_ABANDONED');
    expect(JSON.parse(result.message)).toMatchObject({ reason: 'EXECUTION_ABANDONED', rotationId: 'sensor-1-a01', executionArn: HOLDER_ARN, newCertificateId: 'b'.repeat(64) });
    expect(JSON.parse(result.message).cause).toContain(`ended ${status}`);

    const [current, history] = db.commandCalls(TransactWriteCommand)[0].args[0].input.TransactItems ?? [];
    // Only that execution's IN_PROGRESS claim is released; the new certificate id is kept for the follow-up.
    expect(current.Update?.ConditionExpression).toBe('rotationId = :rid AND executionArn = :exec AND #status = :inProgress');
    expect(current.Update?.UpdateExpression).not.toContain('newCertificateId');
    expect(current.Update?.ExpressionAttributeValues).toMatchObject({ ':rid': 'sensor-1-a01', ':reason': 'EXECUTION_ABANDONED', ':step': 'Issue certificate' });
    expect(history.Put?.Item).toMatchObject({ outcome: 'FAILED', reason: 'EXECUTION_ABANDONED', rotationId: 'sensor-1-a01', newCertificateId: 'b'.repeat(64) });
    expect(d.telemetry.metrics).toContainEqual(expect.objectContaining({ name: 'RotationsFailed' }));
  });

  it('treats an execution Step Functions no longer knows as ended', async () => {
    sfn.on(DescribeExecutionCommand).rejects(awsErrors.named('ExecutionDoesNotExist'));

    await expect(releaseClaim(input, deps())).resolves.toMatchObject({ released: true, holderStatus: 'GONE' });
  });

  it.each([
    ['no record', undefined],
    ['a finished record', { ...holder, status: 'FAILED' }],
    ['its own claim', { ...holder, rotationId: 'sensor-1-a02' }],
  ])('answers NOT_HELD for %s, touching nothing', async (_name, item) => {
    db.on(GetCommand).resolves({ Item: item });

    await expect(releaseClaim(input, deps())).resolves.toEqual({ released: false, reason: 'NOT_HELD' });
    expect(sfn.calls()).toHaveLength(0);
    expect(db.commandCalls(TransactWriteCommand)).toHaveLength(0);
  });

  it('lets a failed DescribeExecution escape: the claim stays (Already rotating), nothing recorded', async () => {
    sfn.on(DescribeExecutionCommand).rejects(awsErrors.throttled());

    await expect(releaseClaim(input, deps())).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(db.commandCalls(TransactWriteCommand)).toHaveLength(0);
  });
});
