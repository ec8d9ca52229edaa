import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoTClient, StartOnDemandAuditTaskCommand, UpdateAccountAuditConfigurationCommand } from '@aws-sdk/client-iot';
import { ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { auditRollover, noSuccessorMessage } from '../../domain/ca-rollover';
import { CaAuditCheck } from '../../domain/rotation';
import { ensureRegisteredPrivateCa } from '../../local/pca/index';
import { startLocalAws, type LocalAws } from '../../local/runtime';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * The rollover started from the audit, on the local runtime: a Private CA registered with IoT
 * whose certificate expires in 10 days is flagged by the local audit's
 * CA_CERTIFICATE_EXPIRING_CHECK; the notification reaches start-rotations, which starts the
 * ca-rollover execution for that CA. No successor is configured here (nextPrivateCaArn empty,
 * the default), so that execution sends exactly one escalation "no successor configured" and
 * touches nothing: the CA stays ACTIVE. The same audit's notification delivered again starts
 * nothing twice. (The successor case is start-rotations' unit test: its ARN is a deploy-time setting.)
 */
const describeWithBundles = bundlesDescribe('test/e2e/ca-rollover-audit.test.ts');

describeWithBundles('a CA_CERTIFICATE_EXPIRING_CHECK finding starts the CA rollover', () => {
  jest.setTimeout(180_000);
  let dir: string;
  let aws: LocalAws;
  let iot: IoTClient;
  let sfn: SFNClient;
  let sns: SNSClient;
  const executions = async (stateMachineArn: string): Promise<string[]> =>
    ((await sfn.send(new ListExecutionsCommand({ stateMachineArn }))).executions ?? []).map((e) => e.name as string);
  const startRotationsRuns = (): number => aws.lambda.invocations().filter((i) => i.functionName.endsWith('start-rotations') && i.outcome === 'success').length;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-ca-rollover-audit-'));
    aws = await startLocalAws({ port: 0, mqttPort: 0, dataDir: dir, timeScale: 0.01, signer: { kind: 'private-ca' } });
    const config = { endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' } };
    iot = new IoTClient(config);
    sfn = new SFNClient(config);
    sns = new SNSClient(config);
    // The CA check is on in the scheduled audit Terraform makes; here the operator turns it on.
    await iot.send(new UpdateAccountAuditConfigurationCommand({ auditCheckConfigurations: { [CaAuditCheck.Expiring]: { enabled: true } } }));
  }, 120_000);

  afterAll(async () => {
    for (const client of [iot, sfn, sns]) client?.destroy();
    await aws?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('starts the rollover of the expiring CA, which escalates once that no successor is configured and leaves the CA ACTIVE', async () => {
    // Prepare: a registered CA that expires in 10 days (the check flags 30).
    const expiring = await ensureRegisteredPrivateCa(aws.pca, aws.iot.registry, { commonName: 'Rotor e2e expiring CA', idempotencyToken: 'e2e-expiring-ca', validityDays: 10 });
    expect(aws.deployment.settings.nextPrivateCaArn).toBe('');

    // Act
    const { taskId } = await iot.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: [CaAuditCheck.Expiring] }));
    const { name } = auditRollover(expiring.caCertificateId, taskId as string, undefined);
    const executionArn = `${(aws.endpoints.caRolloverStateMachineArn as string).replace(':stateMachine:', ':execution:')}:${name}`;
    const deadline = Date.now() + 120_000;
    while (!aws.stepFunctions.findExecution(executionArn)) {
      if (Date.now() > deadline) throw new Error(`the audit ${taskId} never started ${executionArn}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const ended = await aws.stepFunctions.waitForExecution(executionArn);

    // Assess
    expect(ended.status).toBe('FAILED');
    const escalations = aws.sns.messages(aws.endpoints.topics.escalation);
    expect(escalations).toHaveLength(1);
    expect(escalations[0].subject).toContain('NoSuccessor');
    expect(escalations[0].message).toContain(`The CA ${expiring.caCertificateId} is expiring or has expired (Device Defender audit ${taskId}`);
    expect(escalations[0].message).toContain('next_private_ca_arn');
    // The error's type and message, without the function's stack trace (it stays in the function's log).
    expect(escalations[0].message).toBe(`NoSuccessor: ${noSuccessorMessage(expiring.caCertificateId, taskId)}`);
    expect(aws.iot.registry.describeCaCertificate(expiring.caCertificateId).status).toBe('ACTIVE');
    // The CA finding started no device rotation.
    expect(await executions(aws.endpoints.stateMachineArn)).toEqual([]);

    // Act: SNS delivers the same notification again.
    const notification = aws.sns.messages(aws.endpoints.topics.audit).at(-1)?.message as string;
    const runs = startRotationsRuns();
    await sns.send(new PublishCommand({ TopicArn: aws.endpoints.topics.audit, Message: notification }));
    while (startRotationsRuns() === runs) {
      if (Date.now() > deadline) throw new Error('start-rotations never ran the redelivered notification');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    // Assess: nothing started twice, nothing escalated twice.
    expect(await executions(aws.endpoints.caRolloverStateMachineArn as string)).toEqual([name]);
    expect(aws.sns.messages(aws.endpoints.topics.escalation)).toHaveLength(1);
  });
});
