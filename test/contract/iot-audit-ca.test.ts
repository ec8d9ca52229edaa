import 'reflect-metadata';
import {
  IoTClient,
  ListAuditFindingsCommand,
  StartOnDemandAuditTaskCommand,
  UpdateAccountAuditConfigurationCommand,
  UpdateCACertificateCommand,
} from '@aws-sdk/client-iot';
import { CaAuditCheck, CaExpiryReason } from '../../domain/rotation.js';
import { startLocalIot, type AuditNotification, type LocalIot } from '../../local/iot/index.js';
import { createActiveRootCa, PrivateCa } from '../../local/pca/index.js';
import { clientConfig, RecordingInvoker, RecordingSns, serve, type Harness } from './iot-harness.js';

/**
 * The local audit's CA_CERTIFICATE_EXPIRING_CHECK through @aws-sdk/client-iot: registered ACTIVE
 * CA certificates expiring within 30 days (CERTIFICATE_APPROACHING_EXPIRATION) or expired
 * (CERTIFICATE_PAST_EXPIRATION), as CA_CERTIFICATE resources named by caCertificateId. The
 * clock is moved forward to let a registered CA expire (AWS refuses to register an expired one).
 */
const AUDIT_TOPIC = 'arn:aws:sns:us-east-1:000000000000:rotor-audit';
const DAY = 86_400_000;

describe('local audit: CA_CERTIFICATE_EXPIRING_CHECK', () => {
  let iot: LocalIot;
  let sns: RecordingSns;
  let harness: Harness;
  let client: IoTClient;
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    sns = new RecordingSns();
    iot = await startLocalIot({ invoker: new RecordingInvoker(), sns, now });
    harness = await serve(iot.controlPlane);
    client = new IoTClient(clientConfig(harness.endpoint));
    const pca = new PrivateCa({ issueLatencyMs: 0 });
    // SNI_ONLY registration needs no verification certificate; the check does not care about the mode.
    for (const [name, days] of [['soon', 20], ['short', 2], ['far', 400], ['inactive', 10]] as const) {
      const arn = await createActiveRootCa(pca, { commonName: `CA ${name}`, validityDays: days });
      ids[name] = iot.registry.registerCaCertificate({ caCertificatePem: pca.caCertificate(arn).certificatePem, certificateMode: 'SNI_ONLY', setAsActive: true }).certificateId;
    }
    iot.registry.updateCaCertificate(ids.inactive, { newStatus: 'INACTIVE' });
    await client.send(new UpdateAccountAuditConfigurationCommand({
      roleArn: 'arn:aws:iam::000000000000:role/rotor-audit',
      auditNotificationTargetConfigurations: { SNS: { targetArn: AUDIT_TOPIC, roleArn: 'arn:aws:iam::000000000000:role/rotor-audit', enabled: true } },
      auditCheckConfigurations: { [CaAuditCheck.Expiring]: { enabled: true } },
    }));
  });

  afterAll(async () => {
    client.destroy();
    await harness.close();
    await iot.stop();
  });

  async function audit(): Promise<{ taskId: string; notification: AuditNotification }> {
    const { taskId } = await client.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: [CaAuditCheck.Expiring] }));
    await iot.audit.completion(taskId as string);
    return { taskId: taskId as string, notification: JSON.parse(sns.messages.at(-1)?.message as string) as AuditNotification };
  }

  it('reports ACTIVE CAs expiring within 30 days as CERTIFICATE_APPROACHING_EXPIRATION, in the shape of AWS\'s findings', async () => {
    // Act
    const { taskId, notification } = await audit();
    const { findings } = await client.send(new ListAuditFindingsCommand({ taskId }));
    // Assess
    expect(notification.auditDetails).toEqual([
      { checkName: CaAuditCheck.Expiring, checkRunStatus: 'COMPLETED_NON_COMPLIANT', nonCompliantResourcesCount: 2, totalResourcesCount: 3, suppressedNonCompliantResourceCount: 0 },
    ]);
    const byCa = Object.fromEntries((findings ?? []).map((f) => [f.nonCompliantResource?.resourceIdentifier?.caCertificateId, f]));
    expect(Object.keys(byCa).sort()).toEqual([ids.short, ids.soon].sort());
    expect(byCa[ids.soon]).toMatchObject({
      taskId,
      checkName: 'CA_CERTIFICATE_EXPIRING_CHECK',
      severity: 'MEDIUM',
      isSuppressed: false,
      reasonForNonComplianceCode: 'CERTIFICATE_APPROACHING_EXPIRATION',
      nonCompliantResource: { resourceType: 'CA_CERTIFICATE', resourceIdentifier: { caCertificateId: ids.soon } },
    });
    const expires = new Date(byCa[ids.soon].nonCompliantResource?.additionalInfo?.EXPIRATION_TIME as string).getTime();
    expect(Math.abs(expires - (Date.now() + 20 * DAY))).toBeLessThan(60_000);
  });

  it('reports an expired CA as CERTIFICATE_PAST_EXPIRATION, filters by caCertificateId, and stops once the CA is INACTIVE', async () => {
    // Prepare: three days on, the two-day CA has expired.
    offsetMs = 3 * DAY;
    // Act
    const { taskId } = await audit();
    const { findings } = await client.send(new ListAuditFindingsCommand({ taskId, resourceIdentifier: { caCertificateId: ids.short } }));
    await client.send(new UpdateCACertificateCommand({ certificateId: ids.short, newStatus: 'INACTIVE' }));
    await client.send(new UpdateCACertificateCommand({ certificateId: ids.soon, newStatus: 'INACTIVE' }));
    const after = await audit();
    // Assess
    expect(findings?.map((f) => [f.nonCompliantResource?.resourceIdentifier?.caCertificateId, f.reasonForNonComplianceCode, f.reasonForNonCompliance])).toEqual([
      [ids.short, CaExpiryReason.Past, 'CA certificate is expired'],
    ]);
    expect(after.notification).toMatchObject({ compliantChecksCount: 1, nonCompliantChecksCount: 0 });
    expect((await client.send(new ListAuditFindingsCommand({ taskId: after.taskId }))).findings).toEqual([]);
  });
});
