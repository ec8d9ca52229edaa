import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeAuditTaskCommand, IoTClient, StartOnDemandAuditTaskCommand, UpdateAccountAuditConfigurationCommand } from '@aws-sdk/client-iot';
import { ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Command } from 'commander';
import { registerPlanCommand, type PlanReport } from '../../cli/plan/index.js';
import { createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem } from '../../device-sim/keys.js';
import { AuditCheck } from '../../domain/rotation.js';
import { deferredDay, deferredPk, deferredSk, type DeferredStart } from '../../domain/pacing/index.js';
import { deferStarts } from '../../functions/core/pacing-calendar.js';
import { DEVICE_POLICY_NAME, startLocalAws, type LocalAws } from '../../local/runtime.js';
import { capturedIo } from '../unit/cli/fake-target.js';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * `rotor plan --local` against the local runtime's real audit: devices provisioned with
 * certificates that expire in 10 days, a Device Defender audit run through the IoT API, then
 * the plan read through the runtime's endpoints file. Rotor is deployed to act on the age check
 * only, so the expiring findings start nothing and the plan has something to plan. The edge's
 * call counts prove the plan is cheap: findings pages and one Query, no DescribeCertificate.
 */
const describeWithBundles = bundlesDescribe('test/e2e/plan.test.ts');
const DEVICES = 12;
const CREDENTIALS = { accessKeyId: 'plan-e2e', secretAccessKey: 'plan-e2e' };

describeWithBundles('rotor plan against the local runtime', () => {
  jest.setTimeout(120_000);
  let workDir = '';
  let aws: LocalAws;
  let iot: IoTClient;
  const certificateIds: string[] = [];

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'rotor-plan-e2e-'));
    aws = await startLocalAws({ dataDir: join(workDir, 'aws'), port: 0, mqttPort: 0, timeScale: 1, settings: { auditChecks: AuditCheck.Age } });
    iot = new IoTClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: CREDENTIALS });
    for (let i = 0; i < DEVICES; i++) {
      const thingName = `plan-${i}`;
      const keyPem = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
      const provisioned = await aws.iot.registry.provisionDevice({ thingName, policyName: DEVICE_POLICY_NAME, csrPem: await createCsrPem(keyPem, thingName), expiresInDays: 10 });
      certificateIds.push(provisioned.certificateId);
    }
    // The account audits both checks; Rotor's deployment acts on the age check alone.
    await iot.send(new UpdateAccountAuditConfigurationCommand({ auditCheckConfigurations: { [AuditCheck.Expiring]: { enabled: true }, [AuditCheck.Age]: { enabled: true } } }));
    const { taskId } = await iot.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: [AuditCheck.Expiring, AuditCheck.Age] }));
    const deadline = Date.now() + 30_000;
    while ((await iot.send(new DescribeAuditTaskCommand({ taskId }))).taskStatus === 'IN_PROGRESS') {
      if (Date.now() > deadline) throw new Error(`audit ${taskId} did not complete`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  afterAll(async () => {
    iot?.destroy();
    await aws?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  /** `rotor plan --local` on the runtime, with the calls the edge counted while it ran. */
  async function planLocal(...flags: string[]): Promise<{ code?: number; stderr: string[]; stdout: string; delta: Record<string, number> }> {
    const io = capturedIo();
    let code: number | undefined;
    const before = aws.edge.calls();
    const program = registerPlanCommand(new Command('rotor').exitOverride(), { io, setExitCode: (c) => (code = c) });
    await program.parseAsync(['plan', '--local', '--data-dir', join(workDir, 'aws'), ...flags], { from: 'user' });
    const after = aws.edge.calls();
    const delta = Object.fromEntries(Object.entries(after).map(([op, n]) => [op, n - (before[op] ?? 0)]).filter(([, n]) => (n as number) > 0));
    return { code, stderr: io.stderr, stdout: io.stdout.join('\n'), delta };
  }

  it('plans the audit\'s expiring certificates from its findings, at the quota floor, without DescribeCertificate', async () => {
    // Act
    const { code, stderr, stdout, delta } = await planLocal('--json');
    // Assess
    expect({ code, stderr }).toEqual({ code: 0, stderr: [] });
    const report = JSON.parse(stdout) as PlanReport;
    expect(report.audit.findingsByCheck[AuditCheck.Expiring]).toBe(DEVICES);
    expect(report.flagged).toBe(DEVICES);
    expect(report.inFlight).toBe(0);
    expect(report.devices).toBe(DEVICES);
    expect(report.schedule.reduce((sum, day) => sum + day.rotations, 0)).toBe(DEVICES);
    const daysToExpiry = (Date.parse(report.earliestExpiry ?? '') - Date.parse(report.generatedAt)) / 86_400_000;
    expect(daysToExpiry).toBeGreaterThan(9);
    expect(daysToExpiry).toBeLessThanOrEqual(10);
    expect(delta['iot:DescribeCertificate']).toBeUndefined();
    expect(delta['iot:ListAuditFindings']).toBe(report.sources.calls['iot:ListAuditFindings']);
    expect(delta['dynamodb:Query']).toBe(report.sources.calls['dynamodb:Query']);
    // Rotor acts on the age check only here: nothing was started.
    const sfn = new SFNClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: CREDENTIALS });
    const listed = await sfn.send(new ListExecutionsCommand({ stateMachineArn: aws.endpoints.stateMachineArn }));
    sfn.destroy();
    expect(listed.executions ?? []).toEqual([]);
  });
  it('shows the starts the renewal calendar holds by day, from the calendar\'s own records, and does not plan them again', async () => {
    // Prepare: start-rotations' own writer defers 5 of the audit's certificates over two days
    // and 2 starts of another audit's certificates.
    // DynamoDB Local takes only letters and digits for an access key id.
    const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'plan', secretAccessKey: 'plan' } }));
    const day = 86_400_000;
    const base = Date.parse(new Date(Date.now() + 2 * day).toISOString().slice(0, 10));
    const start = (certificateId: string, atMs: number, auditTaskId: string): DeferredStart => ({
      pk: deferredPk(deferredDay(atMs)),
      sk: deferredSk(atMs, certificateId, auditTaskId),
      certificateId,
      auditTaskId,
      checkName: AuditCheck.Expiring,
      startAt: new Date(atMs).toISOString(),
    });
    const starts = [
      ...certificateIds.slice(0, 3).map((id, i) => start(id, base + (i + 1) * 3_600_000, 'earlier-audit')),
      ...certificateIds.slice(3, 5).map((id, i) => start(id, base + day + (i + 1) * 3_600_000, 'earlier-audit')),
      start('c'.repeat(64), base + day + 7_200_000, 'other-audit'),
      start('d'.repeat(64), base + day + 9_000_000, 'other-audit'),
    ];
    await deferStarts({ db: ddb, tableName: aws.endpoints.tableName }, starts);
    ddb.destroy();
    // Act
    const { code, stderr, stdout, delta } = await planLocal('--json');
    // Assess
    expect({ code, stderr }).toEqual({ code: 0, stderr: [] });
    const report = JSON.parse(stdout) as PlanReport;
    expect(report.flagged).toBe(DEVICES);
    expect(report.alreadyDeferred).toBe(5);
    expect(report.devices).toBe(DEVICES - 5);
    expect(report.schedule.reduce((sum, d) => sum + d.rotations, 0)).toBe(DEVICES - 5);
    expect(report.deferredStarts).toEqual({
      total: 7,
      nextAt: new Date(base + 3_600_000).toISOString(),
      byDay: [
        { date: deferredDay(base), starts: 3 },
        { date: deferredDay(base + day), starts: 4 },
      ],
    });
    // Cheap: the calendar item and one Query per listed day, no Scan, no DescribeCertificate.
    expect(delta['dynamodb:GetItem']).toBe(1);
    expect(delta['dynamodb:Query']).toBe(1 + 2);
    expect(delta['dynamodb:Scan']).toBeUndefined();
    expect(delta['iot:DescribeCertificate']).toBeUndefined();
    // The text says the same.
    const printed = (await planLocal()).stdout;
    expect(printed).toMatch(new RegExp(`already deferred +5 .*\\n  would rotate +${DEVICES - 5}\\n`));
    expect(printed).toContain(`Deferred starts (renewal calendar): 7, next due ${new Date(base + 3_600_000).toISOString()}\n  DATE        STARTS\n  ${deferredDay(base)}       3\n  ${deferredDay(base + day)}       4`);
  });
});
