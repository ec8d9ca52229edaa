import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { handler, measureFleet, type FleetGaugeDeps } from '../../../functions/fleet-gauge.js';
import { awsErrors, clients } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { fakeContext } from '../../fixtures/lambda-context.js';
import { recordingTelemetry, type RecordingTelemetry } from '../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);
const NOW = '2026-03-01T12:00:00.000Z';

function deps(maxPages = 100): FleetGaugeDeps & { telemetry: RecordingTelemetry } {
  return { db: clients.db(), tableName: 'rotations', statusIndexName: 'by-status', maxPages, clock: fakeClock(NOW), telemetry: recordingTelemetry() };
}

function startedSecondsAgo(seconds: number, rotationId: string): Record<string, unknown> {
  return { startedAt: new Date(Date.parse(NOW) - seconds * 1000).toISOString(), rotationId };
}

const metric = (d: { telemetry: RecordingTelemetry }, name: string) => d.telemetry.metrics.filter((m) => m.name === name).map((m) => m.value);

beforeEach(() => db.reset());

describe('fleet-gauge', () => {
  it('counts the IN_PROGRESS records of every page and finds the oldest by startedAt', async () => {
    // Prepare: two pages; the oldest is on the second (the index is ordered by updatedAt, not startedAt).
    db.on(QueryCommand)
      .resolvesOnce({ Items: [startedSecondsAgo(60, 'r-1'), startedSecondsAgo(600, 'r-2')], LastEvaluatedKey: { pk: 'thing#b' } })
      .resolvesOnce({ Items: [startedSecondsAgo(3_600, 'r-3'), { rotationId: 'r-4' }] });
    const d = deps();

    // Act
    const gauge = await measureFleet(d);

    // Assess
    expect(gauge).toEqual({ inFlight: 4, oldestInFlightAgeSeconds: 3_600, oldestRotationId: 'r-3', truncated: false });
    expect(metric(d, 'RotationsInFlight')).toEqual([4]);
    expect(metric(d, 'OldestInFlightAgeSeconds')).toEqual([3_600]);
    const queries = db.commandCalls(QueryCommand).map((call) => call.args[0].input);
    expect(queries[0]).toMatchObject({ TableName: 'rotations', IndexName: 'by-status', KeyConditionExpression: '#status = :status', ExpressionAttributeValues: { ':status': 'IN_PROGRESS' } });
    expect(queries[1].ExclusiveStartKey).toEqual({ pk: 'thing#b' });
  });

  it('emits zeros when nothing is in flight', async () => {
    db.on(QueryCommand).resolves({ Items: [] });
    const d = deps();

    await expect(measureFleet(d)).resolves.toEqual({ inFlight: 0, oldestInFlightAgeSeconds: 0, truncated: false });

    expect(metric(d, 'RotationsInFlight')).toEqual([0]);
    expect(metric(d, 'OldestInFlightAgeSeconds')).toEqual([0]);
  });

  it('stops at the page bound and says the figures are a lower bound', async () => {
    db.on(QueryCommand).resolves({ Items: [startedSecondsAgo(5, 'r')], LastEvaluatedKey: { pk: 'more' } });
    const d = deps(3);

    const gauge = await measureFleet(d);

    expect(db.commandCalls(QueryCommand)).toHaveLength(3);
    expect(gauge).toMatchObject({ inFlight: 3, truncated: true });
    expect(d.telemetry.lines.some((line) => line.level === 'warn' && line.message.includes('lower bound'))).toBe(true);
  });

  it('lets a DynamoDB error escape: the next scheduled run measures again', async () => {
    db.on(QueryCommand).rejects(awsErrors.named('ProvisionedThroughputExceededException'));

    await expect(measureFleet(deps())).rejects.toMatchObject({ name: 'ProvisionedThroughputExceededException' });
  });

  it('runs through middy from the schedule\'s event', async () => {
    process.env.TABLE_NAME = 'rotations';
    process.env.STATUS_INDEX_NAME = 'by-status';
    process.env.AWS_REGION = 'us-east-1';
    db.on(QueryCommand).resolves({ Items: [startedSecondsAgo(30, 'r-1')] });

    const result = await handler({ source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} }, fakeContext());

    expect(result).toMatchObject({ inFlight: 1, truncated: false });
  });
});
