import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { startAudit } from '../../cli/demo/phases/audit';
import { connectFleet, provisionDevices, type DemoFleet } from '../../cli/demo/phases/provision';
import { PACING_KEY } from '../../domain/pacing/live';
import { RotationStatus } from '../../domain/rotation';
import { startLocalAws, type LocalAws } from '../../local/runtime';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * Issue 10 part 1 on the real bundles, ASL and DynamoDB Local: a small fleet rotated under a tiny
 * quota (2 TPS CreateCertificateFromCsr and DeleteCertificate, passed as Terraform would, in
 * ROTOR_PACING_QUOTAS) completes with no failure, and the calls the local runtime counted never
 * go faster than the quota's token bucket allows, nor on average faster than its budget. The edge's call counts are sampled while the fleet rotates.
 */
const QUOTA_TPS = 2;
/** How much the work before a paced call may move it from its reserved slot (see the average below). */
const WORK_JITTER_MS = 500;
const PACED = ['iot:CreateCertificateFromCsr', 'iot:DeleteCertificate'] as const;
const DEVICES = 10;
const SAMPLE_MS = 10;

const describeWithBundles = bundlesDescribe('test/e2e/pacing.test.ts');

describeWithBundles('pacing in the live workflow (local runtime, real bundles)', () => {
  let aws: LocalAws;
  let fleet: DemoFleet | undefined;
  let workDir: string;

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'rotor-pacing-'));
    aws = await startLocalAws({
      port: 0,
      mqttPort: 0,
      timeScale: 1,
      environment: { ROTOR_PACING_QUOTAS: JSON.stringify(Object.fromEntries(PACED.map((api) => [api, { rate: QUOTA_TPS }]))) },
    });
  }, 120_000);

  afterAll(async () => {
    await fleet?.stop();
    await aws?.stop();
    rmSync(workDir, { recursive: true, force: true });
  }, 60_000);

  it(`rotates ${DEVICES} devices with no failure, never calling a ${QUOTA_TPS} TPS API faster than its quota allows`, async () => {
    // Prepare
    const names = Array.from({ length: DEVICES }, (_, i) => `paced-${i + 1}`);
    const devices = await provisionDevices(aws, { names, faults: new Map(), workDir, expiresInDays: 5 });
    fleet = await connectFleet(aws, devices, { threads: 0 });
    const samples: { at: number; calls: Record<string, number> }[] = [];
    const sample = (): void => {
      samples.push({ at: Date.now(), calls: aws.edge.calls() });
    };
    sample();
    const sampler = setInterval(sample, SAMPLE_MS);

    // Act
    const audit = await startAudit(aws, devices);
    const sfn = new SFNClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'p', secretAccessKey: 'p' } });
    const statuses = new Map<string, string>();
    try {
      const deadline = Date.now() + 240_000;
      for (const [thing, executionArn] of audit.executionArns) {
        for (;;) {
          try {
            await aws.stepFunctions.waitForExecution(executionArn);
            statuses.set(thing, (await sfn.send(new DescribeExecutionCommand({ executionArn }))).status ?? '');
            break;
          } catch (error) {
            // Not started yet: admission spaces the starts.
            if (Date.now() > deadline) throw error;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
      }
    } finally {
      clearInterval(sampler);
      sample();
    }

    // Assess: every rotation succeeded.
    expect([...statuses.values()]).toEqual(names.map(() => 'SUCCEEDED'));
    const final = samples[samples.length - 1].calls;
    for (const api of PACED) expect(final[api]).toBe(DEVICES);

    // Each paced API, as AWS throttles it: a token bucket of the quota's rate and burst (IoT
    // publishes none for its control plane: one second's worth, domain/pacing/quotas.ts). No call
    // may find it empty. (Whole seconds are not the test: a step reserves its calls when it
    // starts, and the work before a call varies, so two calls a slot apart may land closer.)
    for (const api of PACED) {
      const times: number[] = [];
      for (let i = 1; i < samples.length; i++) for (let k = samples[i - 1].calls[api] ?? 0; k < (samples[i].calls[api] ?? 0); k++) times.push(samples[i].at);
      let tokens = QUOTA_TPS;
      let last = times[0];
      let fewest = tokens;
      for (const at of times) {
        tokens = Math.min(QUOTA_TPS, tokens + ((at - last) / 1000) * QUOTA_TPS) - 1;
        last = at;
        fewest = Math.min(fewest, tokens);
      }
      // Sampling every 10 ms can see a call up to 10 ms late: 0.02 tokens at 2 TPS.
      expect({ api, fewestTokens: fewest }).toEqual({ api, fewestTokens: expect.any(Number) });
      expect(fewest).toBeGreaterThanOrEqual(-0.05);
      // The average rate over the run is the budget's (quota × 0.9): the calls' reserved slots span
      // (n − 1) ÷ budget, less the variation of the work a step does before its call (the first
      // call may land late, the last early) — at most half a second here, which keeps the
      // average under the quota itself.
      const span = times[times.length - 1] - times[0];
      expect(span).toBeGreaterThanOrEqual(((times.length - 1) / (QUOTA_TPS * 0.9)) * 1000 - WORK_JITTER_MS);
      expect(((times.length - 1) / span) * 1000).toBeLessThanOrEqual(QUOTA_TPS);
    }
    // …and it took the time the quota needs: 10 creates at 1.8/s take 5 s, less the same work variation.
    const firstCreate = samples.find((s) => (s.calls['iot:CreateCertificateFromCsr'] ?? 0) > 0)?.at ?? 0;
    const lastCreate = samples.find((s) => (s.calls['iot:CreateCertificateFromCsr'] ?? 0) === DEVICES)?.at ?? 0;
    expect(lastCreate - firstCreate).toBeGreaterThanOrEqual(((DEVICES - 1) / (QUOTA_TPS * 0.9)) * 1000 - WORK_JITTER_MS - 2 * SAMPLE_MS);

    // The budget lives in one item that status queries never see.
    const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'p', secretAccessKey: 'p' } }));
    try {
      const item = (await ddb.send(new GetCommand({ TableName: aws.endpoints.tableName, Key: PACING_KEY }))).Item;
      expect(item?.version).toBeGreaterThan(DEVICES);
      expect(item).not.toHaveProperty('status');
      const succeeded = await ddb.send(
        new QueryCommand({ TableName: aws.endpoints.tableName, IndexName: 'by-status', KeyConditionExpression: '#s = :s', ExpressionAttributeNames: { '#s': 'status' }, ExpressionAttributeValues: { ':s': RotationStatus.Succeeded } }),
      );
      expect(succeeded.Items?.map((i) => i.pk).sort()).toEqual(names.map((n) => `thing#${n}`).sort());
    } finally {
      ddb.destroy();
      sfn.destroy();
    }
  }, 300_000);
});
