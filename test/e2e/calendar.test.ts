import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { startAudit } from '../../cli/demo/phases/audit';
import { connectFleet, provisionDevices, type DemoFleet } from '../../cli/demo/phases/provision';
import { CALENDAR_KEY, DEFAULT_RENEWAL, deferredPk, type DeferredStart } from '../../domain/pacing/calendar';
import { startLocalAws, type LocalAws } from '../../local/runtime';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * Issue 10 part 3 live, on the real bundles, ASL, DynamoDB Local and the local schedule: a fleet
 * flagged at once is spread over its renewal window. At time scale 0.01 a window of 0.05 days
 * is 43 s and the sweep runs every 9 s; the devices whose place is beyond the first sweep are
 * deferred as items in the table (no execution yet), the scheduled sweeps start each one no
 * earlier than its place less one sweep, and every device rotates.
 */
const TIME_SCALE = 0.01;
const WINDOW_DAYS = 0.05;
const DEVICES = 8;
const SWEEP_MS = DEFAULT_RENEWAL.sweepS * 1000 * TIME_SCALE;

const describeWithBundles = bundlesDescribe('test/e2e/calendar.test.ts');

describeWithBundles('the renewal calendar in the live workflow (local runtime, real bundles)', () => {
  let aws: LocalAws;
  let fleet: DemoFleet | undefined;
  let workDir: string;

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'rotor-calendar-'));
    aws = await startLocalAws({ port: 0, mqttPort: 0, timeScale: TIME_SCALE, environment: { ROTOR_RENEWAL_WINDOW_DAYS: String(WINDOW_DAYS) } });
  }, 120_000);

  afterAll(async () => {
    await fleet?.stop();
    await aws?.stop();
    rmSync(workDir, { recursive: true, force: true });
  }, 60_000);

  it(`defers most of ${DEVICES} devices flagged at once, starts each on its place, and rotates all`, async () => {
    // Prepare
    const names = Array.from({ length: DEVICES }, (_, i) => `cal-${i + 1}`);
    const devices = await provisionDevices(aws, { names, faults: new Map(), workDir, expiresInDays: 20 });
    fleet = await connectFleet(aws, devices, { threads: 0 });
    const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'c', secretAccessKey: 'c' } }));
    const sfn = new SFNClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'c', secretAccessKey: 'c' } });
    const table = aws.endpoints.tableName;
    const deferredNow = async (): Promise<DeferredStart[]> => {
      const days = [...(((await ddb.send(new GetCommand({ TableName: table, Key: CALENDAR_KEY }))).Item?.days as Set<string> | undefined) ?? [])];
      const items: DeferredStart[] = [];
      for (const day of days) items.push(...(((await ddb.send(new QueryCommand({ TableName: table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': deferredPk(day) } }))).Items ?? []) as DeferredStart[]));
      return items;
    };

    try {
      // Act: the audit flags every device at once.
      const audit = await startAudit(aws, devices);
      let deferred: DeferredStart[] = [];
      const reportDeadline = Date.now() + 60_000;
      for (;;) {
        const report = (await ddb.send(new GetCommand({ TableName: table, Key: { pk: `audit#${audit.taskId}`, sk: 'report' } }))).Item;
        if (report && (report.started ?? 0) + (report.skipped_DEFERRED ?? 0) >= DEVICES) break;
        if (Date.now() > reportDeadline) throw new Error(`start-rotations did not place the audit's devices: ${JSON.stringify(report)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      deferred = await deferredNow();

      // Assess: most were deferred, each to a place in the window, and has no execution yet.
      expect(deferred.length).toBeGreaterThanOrEqual(DEVICES / 2);
      const cohort = (await ddb.send(new GetCommand({ TableName: table, Key: { pk: `audit#${audit.taskId}`, sk: 'report' } }))).Item as { cohortStartMs: number; cohortSpreadS: number };
      expect(cohort.cohortSpreadS).toBeCloseTo(WINDOW_DAYS * 86_400 * TIME_SCALE, 3);
      const placeOf = new Map(deferred.map((d) => [d.certificateId, Date.parse(d.startAt)]));
      for (const at of placeOf.values()) expect(at).toBeLessThanOrEqual(cohort.cohortStartMs + cohort.cohortSpreadS * 1000 + 1);

      // Every device rotates: the deferred ones once the sweeps reach them.
      const started = new Map<string, number>();
      const deadline = Date.now() + 240_000;
      for (const device of devices) {
        const executionArn = audit.executionArns.get(device.thingName) as string;
        for (;;) {
          try {
            await aws.stepFunctions.waitForExecution(executionArn);
            const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
            expect({ thing: device.thingName, status: execution.status }).toEqual({ thing: device.thingName, status: 'SUCCEEDED' });
            started.set(device.certificateId, execution.startDate?.getTime() ?? 0);
            break;
          } catch (error) {
            if (Date.now() > deadline) throw error;
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
        }
      }
      // A deferred device started no earlier than its place less one sweep's horizon.
      for (const [certificateId, at] of placeOf) expect(started.get(certificateId)).toBeGreaterThanOrEqual(at - SWEEP_MS - 1_000);
      // Nothing is left deferred.
      expect(await deferredNow()).toEqual([]);
    } finally {
      ddb.destroy();
      sfn.destroy();
    }
  }, 360_000);
});
