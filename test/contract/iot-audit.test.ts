import {
  DescribeAccountAuditConfigurationCommand,
  DescribeAuditTaskCommand,
  IoTClient,
  ListAuditFindingsCommand,
  ListAuditTasksCommand,
  StartOnDemandAuditTaskCommand,
  UpdateAccountAuditConfigurationCommand,
} from '@aws-sdk/client-iot';
import { startLocalIot, type AuditNotification, type LocalIot, type ProvisionedDevice } from '../../local/iot/index.js';
import { clientConfig, RecordingInvoker, RecordingSns, serve, type Harness } from './iot-harness.js';

const AUDIT_TOPIC = 'arn:aws:sns:us-east-1:000000000000:rotor-audit';
const EXPIRING = 'DEVICE_CERTIFICATE_EXPIRING_CHECK';
const AGE = 'DEVICE_CERTIFICATE_AGE_CHECK';

describe('local Device Defender audit through @aws-sdk/client-iot', () => {
  let iot: LocalIot;
  let sns: RecordingSns;
  let harness: Harness;
  let client: IoTClient;
  let expiring: ProvisionedDevice;
  let old: ProvisionedDevice;
  let fresh: ProvisionedDevice;

  beforeAll(async () => {
    sns = new RecordingSns();
    iot = await startLocalIot({ invoker: new RecordingInvoker(), sns });
    harness = await serve(iot.controlPlane);
    client = new IoTClient(clientConfig(harness.endpoint));
    expiring = await iot.registry.provisionDevice({ thingName: 'dev-expiring', policyName: 'rotor-device', expiresInDays: 10 });
    old = await iot.registry.provisionDevice({ thingName: 'dev-old', policyName: 'rotor-device', createdDaysAgo: 400 });
    fresh = await iot.registry.provisionDevice({ thingName: 'dev-fresh', policyName: 'rotor-device', expiresInDays: 300 });
    // An INACTIVE certificate that expires soon is not audited.
    const retired = await iot.registry.provisionDevice({ thingName: 'dev-retired', policyName: 'rotor-device', expiresInDays: 5 });
    iot.registry.updateCertificate(retired.certificateId, 'INACTIVE');
  });

  afterAll(async () => {
    client.destroy();
    await harness.close();
    await iot.stop();
  });

  it('refuses a check that is not enabled, and checks it does not know', async () => {
    await expect(client.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: [EXPIRING] }))).rejects.toMatchObject({ name: 'InvalidRequestException' });
    await expect(client.send(new UpdateAccountAuditConfigurationCommand({ auditCheckConfigurations: { NO_SUCH_CHECK: { enabled: true } } }))).rejects.toMatchObject({ name: 'InvalidRequestException' });
    await expect(client.send(new UpdateAccountAuditConfigurationCommand({
      auditCheckConfigurations: { [AGE]: { enabled: true, configuration: { CERT_AGE_THRESHOLD_IN_DAYS: '5' } } },
    }))).rejects.toMatchObject({ name: 'InvalidRequestException' });
  });

  it('finds the expiring and the old certificate, completes, and notifies SNS in the audit-notification shape', async () => {
    await client.send(new UpdateAccountAuditConfigurationCommand({
      roleArn: 'arn:aws:iam::000000000000:role/rotor-audit',
      auditNotificationTargetConfigurations: { SNS: { targetArn: AUDIT_TOPIC, roleArn: 'arn:aws:iam::000000000000:role/rotor-audit', enabled: true } },
      auditCheckConfigurations: {
        [EXPIRING]: { enabled: true },
        [AGE]: { enabled: true, configuration: { CERT_AGE_THRESHOLD_IN_DAYS: '365' } },
      },
    }));
    const config = await client.send(new DescribeAccountAuditConfigurationCommand({}));
    expect(config.auditCheckConfigurations?.[AGE]).toEqual({ enabled: true, configuration: { CERT_AGE_THRESHOLD_IN_DAYS: '365' } });
    expect(config.auditNotificationTargetConfigurations?.SNS?.targetArn).toBe(AUDIT_TOPIC);

    const started = Date.now();
    const { taskId } = await client.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: [EXPIRING, AGE] }));
    expect(taskId).toMatch(/^[0-9a-f]{32}$/);
    await iot.audit.completion(taskId!);

    const task = await client.send(new DescribeAuditTaskCommand({ taskId }));
    expect(task.taskStatus).toBe('COMPLETED');
    expect(task.taskType).toBe('ON_DEMAND_AUDIT_TASK');
    expect(task.taskStatistics).toMatchObject({ totalChecks: 2, nonCompliantChecks: 2, compliantChecks: 0, failedChecks: 0 });
    // Three ACTIVE certificates are audited; the INACTIVE one is not.
    expect(task.auditDetails?.[EXPIRING]).toMatchObject({ checkRunStatus: 'COMPLETED_NON_COMPLIANT', totalResourcesCount: 3, nonCompliantResourcesCount: 1 });
    expect(task.auditDetails?.[AGE]).toMatchObject({ checkRunStatus: 'COMPLETED_NON_COMPLIANT', totalResourcesCount: 3, nonCompliantResourcesCount: 1 });

    const expiringFindings = await client.send(new ListAuditFindingsCommand({ taskId, checkName: EXPIRING }));
    expect(expiringFindings.findings).toHaveLength(1);
    expect(expiringFindings.findings![0]).toMatchObject({
      taskId,
      checkName: EXPIRING,
      severity: 'MEDIUM',
      reasonForNonComplianceCode: 'CERTIFICATE_EXPIRING',
      nonCompliantResource: { resourceType: 'DEVICE_CERTIFICATE', resourceIdentifier: { deviceCertificateId: expiring.certificateId } },
    });
    const ageFindings = await client.send(new ListAuditFindingsCommand({ taskId, checkName: AGE }));
    expect(ageFindings.findings?.map((f) => [f.nonCompliantResource?.resourceIdentifier?.deviceCertificateId, f.reasonForNonComplianceCode, f.severity])).toEqual([
      [old.certificateId, 'CERTIFICATE_PAST_AGE_THRESHOLD', 'LOW'],
    ]);
    const all = await client.send(new ListAuditFindingsCommand({ taskId }));
    expect(all.findings?.map((f) => f.nonCompliantResource?.resourceIdentifier?.deviceCertificateId)).not.toContain(fresh.certificateId);

    expect(sns.messages).toHaveLength(1);
    expect(sns.messages[0].topicArn).toBe(AUDIT_TOPIC);
    const notification = JSON.parse(sns.messages[0].message) as AuditNotification;
    expect(notification).toEqual({
      accountId: '000000000000',
      taskId,
      taskStatus: 'COMPLETED',
      taskType: 'ON_DEMAND_AUDIT_TASK',
      failedChecksCount: 0,
      canceledChecksCount: 0,
      nonCompliantChecksCount: 2,
      compliantChecksCount: 0,
      totalChecksCount: 2,
      taskStartTime: expect.any(Number),
      auditDetails: [
        { checkName: EXPIRING, checkRunStatus: 'COMPLETED_NON_COMPLIANT', nonCompliantResourcesCount: 1, totalResourcesCount: 3, suppressedNonCompliantResourceCount: 0 },
        { checkName: AGE, checkRunStatus: 'COMPLETED_NON_COMPLIANT', nonCompliantResourcesCount: 1, totalResourcesCount: 3, suppressedNonCompliantResourceCount: 0 },
      ],
    });
    expect(notification.taskStartTime).toBeGreaterThanOrEqual(started - 1000);
    expect(notification.taskStartTime).toBeLessThanOrEqual(Date.now());

    const tasks = await client.send(new ListAuditTasksCommand({ startTime: new Date(started - 60_000), endTime: new Date(Date.now() + 60_000) }));
    expect(tasks.tasks).toEqual([{ taskId, taskStatus: 'COMPLETED', taskType: 'ON_DEMAND_AUDIT_TASK' }]);
  });

  it('reports an expired certificate as CERTIFICATE_EXPIRED and a compliant fleet as compliant', async () => {
    const expired = await iot.registry.provisionDevice({ thingName: 'dev-expired', policyName: 'rotor-device', expiresInDays: -1, createdDaysAgo: 30 });
    const { taskId } = await client.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: [EXPIRING] }));
    await iot.audit.completion(taskId!);
    const { findings } = await client.send(new ListAuditFindingsCommand({ taskId, resourceIdentifier: { deviceCertificateId: expired.certificateId } }));
    expect(findings?.map((f) => f.reasonForNonComplianceCode)).toEqual(['CERTIFICATE_EXPIRED']);

    for (const device of [expiring, expired, old]) iot.registry.updateCertificate(device.certificateId, 'INACTIVE');
    const second = await client.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: [EXPIRING, AGE] }));
    await iot.audit.completion(second.taskId!);
    const notification = JSON.parse(sns.messages.at(-1)!.message) as AuditNotification;
    expect(notification).toMatchObject({ taskId: second.taskId, compliantChecksCount: 2, nonCompliantChecksCount: 0 });
    expect((await client.send(new ListAuditFindingsCommand({ taskId: second.taskId }))).findings).toEqual([]);
  });

  it('refuses ListAuditFindings without a task or a time range, and for an unknown task', async () => {
    await expect(client.send(new ListAuditFindingsCommand({}))).rejects.toMatchObject({ name: 'InvalidRequestException' });
    await expect(client.send(new ListAuditFindingsCommand({ taskId: 'f'.repeat(32) }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await expect(client.send(new DescribeAuditTaskCommand({ taskId: 'f'.repeat(32) }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});
