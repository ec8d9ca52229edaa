import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient, UpdateAccountAuditConfigurationCommand } from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { startAudit } from '../../cli/demo/phases/audit';
import { checkOutcome, escalationsByThing } from '../../cli/demo/phases/check-outcome';
import { connectFleet, provisionDevices, type DemoDevice, type DemoFleet } from '../../cli/demo/phases/provision';
import { InvariantWatcher } from '../../cli/demo/invariant-watch';
import { readHoldings } from '../../cli/demo/key-holdings';
import { CURRENT_SK, thingPk, type RotationRecord } from '../../domain/index';
import { RotationStatus } from '../../domain/rotation';
import { CertificateStatus } from '../../local/iot/index';
import { DEVICE_POLICY_NAME, startLocalAws, type LocalAws } from '../../local/runtime';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';
import { certificateIdOf } from '../fixtures/pki.js';

/**
 * Issue 11 part 1 end to end: the rotation workflow (real ASL, real bundles, DynamoDB Local)
 * signing with the local AWS Private CA through the private-ca signer, set as `rotor local up
 * --signer private-ca` sets it. The new certificates chain to the private CA, expire at the
 * configured validity, are ACTIVE with the old one's policy and thing, and the devices ack over
 * them (the broker accepts them); no device is ever left without a usable key. Then the renewal
 * loop: the audit's expiring window is widened past the validity (UpdateAccountAuditConfiguration
 * CERT_EXPIRATION_THRESHOLD_IN_DAYS, as an operator can), the next audit flags exactly the
 * certificates Rotor issued, and they are rotated again.
 */
const describeWithBundles = bundlesDescribe('test/e2e/private-ca.test.ts');
const DEVICES = 4;
const VALIDITY_DAYS = 45;
const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

/** The device's holdings once its current pair is the certificate `certificateId`; fails after 30 s. */
async function promoted(stateDir: string, certificateId: string): Promise<Awaited<ReturnType<typeof readHoldings>>> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const held = await readHoldings(stateDir);
    if (held.currentCertPem && certificateIdOf(held.currentCertPem) === certificateId) return held;
    if (Date.now() > deadline) throw new Error(`${stateDir}: the current pair is still ${held.currentCertPem ? certificateIdOf(held.currentCertPem) : 'absent'}, not ${certificateId}, 30 s after the rotation succeeded`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describeWithBundles('the workflow signing with the local Private CA (private-ca signer)', () => {
  jest.setTimeout(240_000);
  let aws: LocalAws;
  let fleet: DemoFleet | undefined;
  let watcher: InvariantWatcher | undefined;
  let workDir: string;
  let db: DynamoDBDocumentClient;
  let devices: DemoDevice[];
  let caPem: string;

  const record = async (thingName: string): Promise<RotationRecord> => {
    const { Item } = await db.send(new GetCommand({ TableName: aws.endpoints.tableName, Key: { pk: thingPk(thingName), sk: CURRENT_SK } }));
    return Item as RotationRecord;
  };

  /** One audit, every device's execution awaited: thing → status and the new certificate's notAfter, as recorded. */
  const rotate = async (of: readonly DemoDevice[]): Promise<{ startedAt: number; statuses: Map<string, string> }> => {
    const startedAt = Date.now();
    const audit = await startAudit(aws, of);
    const statuses = new Map<string, string>();
    const deadline = Date.now() + 180_000;
    for (const [thing, arn] of audit.executionArns) {
      for (;;) {
        try {
          statuses.set(thing, (await aws.stepFunctions.waitForExecution(arn)).status);
          break;
        } catch (error) {
          // Not started yet: the audit's notification is still being worked through.
          if (Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    }
    return { startedAt, statuses };
  };

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'rotor-private-ca-'));
    aws = await startLocalAws({ port: 0, mqttPort: 0, timeScale: 0.01, signer: { kind: 'private-ca', validityDays: VALIDITY_DAYS } });
    db = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' } }));
    caPem = aws.pca.caCertificate(aws.endpoints.privateCaArn as string).certificatePem;
    const names = Array.from({ length: DEVICES }, (_, i) => `pca-${i + 1}`);
    devices = await provisionDevices(aws, { names, faults: new Map(), workDir, expiresInDays: 5 });
    fleet = await connectFleet(aws, devices, { threads: 0 });
    watcher = new InvariantWatcher({ registry: aws.iot.registry, devices });
    watcher.start();
    fleet.on('keysRemoved', (thingName: string) => watcher?.keysRemoved(thingName));
  }, 120_000);

  afterAll(async () => {
    await watcher?.stop();
    await fleet?.stop();
    db?.destroy();
    await aws?.stop();
    rmSync(workDir, { recursive: true, force: true });
  }, 60_000);

  it('deploys issue-certificate with the signer settings Terraform would set', () => {
    // Act
    const settings = aws.deployment.settings;
    const environment = aws.lambda.functions().find((f) => f.name === 'rotor-issue-certificate')?.environment;
    // Assess
    expect(settings).toMatchObject({ signer: 'private-ca', privateCaArn: aws.endpoints.privateCaArn, privateCaValidityDays: VALIDITY_DAYS, iotCaRegistrationMode: 'DEFAULT' });
    expect(environment).toMatchObject({ ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: aws.endpoints.privateCaArn, ROTOR_PCA_VALIDITY_DAYS: String(VALIDITY_DAYS), ROTOR_IOT_CA_REGISTRATION: 'DEFAULT' });
  });

  it(`rotates ${DEVICES} devices onto certificates the private CA signed, valid ${VALIDITY_DAYS} days, with no invariant violation`, async () => {
    // Act
    const { startedAt, statuses } = await rotate(devices);
    const finishedAt = Date.now();
    await watcher?.sample('final');
    const ca = new X509Certificate(caPem);
    const results = await Promise.all(
      devices.map(async (device) => {
        const current = await record(device.thingName);
        const issued = aws.iot.registry.describeCertificate(current.newCertificateId as string);
        return { device, current, issued, x509: new X509Certificate(issued.certificatePem) };
      }),
    );
    // Assess
    expect([...statuses.values()]).toEqual(Array(DEVICES).fill('SUCCEEDED'));
    for (const { device, current, issued, x509 } of results) {
      expect(current.status).toBe(RotationStatus.Succeeded);
      expect(x509.issuer).toBe(ca.subject);
      expect(x509.verify(ca.publicKey)).toBe(true);
      const notAfter = new Date(x509.validTo).getTime();
      expect(notAfter).toBeGreaterThanOrEqual(startedAt + VALIDITY_DAYS * DAY_MS - MINUTE_MS);
      expect(notAfter).toBeLessThanOrEqual(finishedAt + VALIDITY_DAYS * DAY_MS + MINUTE_MS);
      expect(new Date(current.newCertificateNotAfter as string).getTime()).toBe(notAfter);
      expect(issued).toMatchObject({ status: CertificateStatus.Active, certificateMode: 'DEFAULT' });
      expect(aws.iot.registry.attachedPolicies(issued.certificateArn)).toEqual([DEVICE_POLICY_NAME]);
      expect(aws.iot.registry.certificatesOf(device.thingName).map((c) => c.certificateId)).toEqual([issued.certificateId]);
      // The ack that completed the rotation was made over the new certificate: the broker accepted it.
      expect(current.ackedCertificateId).toBe(issued.certificateId);
    }
    expect(watcher?.violations).toEqual([]);
    expect(escalationsByThing(aws).total).toBe(0);
  });

  it('renews: an audit whose expiring window covers the validity flags the certificates Rotor issued, and they rotate again under the private CA', async () => {
    // Prepare
    // What each device holds now, the pair the first rotation gave it, is the "old" one this time.
    const first = await Promise.all(
      devices.map(async (d) => {
        const certificateId = (await record(d.thingName)).newCertificateId as string;
        // The device promotes its pending pair after its ack, so the record can say SUCCEEDED a moment
        // before the store holds the new pair as current: wait for the promote (protocol: ack, then make current).
        const held = await promoted(d.stateDir, certificateId);
        return { ...d, keyPem: held.currentKeyPem as string, certPem: held.currentCertPem as string, certificateId };
      }),
    );
    const iot = new IoTClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' } });
    try {
      await iot.send(
        new UpdateAccountAuditConfigurationCommand({
          auditCheckConfigurations: { DEVICE_CERTIFICATE_EXPIRING_CHECK: { enabled: true, configuration: { CERT_EXPIRATION_THRESHOLD_IN_DAYS: String(VALIDITY_DAYS + 15) } } },
        }),
      );
    } finally {
      iot.destroy();
    }
    // Act
    const { startedAt, statuses } = await rotate(first);
    await watcher?.sample('final');
    const second = await Promise.all(first.map(async (d) => ({ device: d, current: await record(d.thingName) })));
    await fleet?.stop();
    fleet = undefined;
    const failures = await checkOutcome(aws, {
      devices: first,
      outcomes: Object.fromEntries(first.map((d) => [d.thingName, { outcome: 'rotated' as const }])),
      escalations: escalationsByThing(aws).byThing,
    });
    // Assess
    expect([...statuses.values()]).toEqual(Array(DEVICES).fill('SUCCEEDED'));
    for (const { device, current } of second) {
      expect(current.oldCertificateId).toBe(device.certificateId);
      expect(current.newCertificateId).not.toBe(device.certificateId);
      const x509 = new X509Certificate(aws.iot.registry.describeCertificate(current.newCertificateId as string).certificatePem);
      expect(x509.verify(new X509Certificate(caPem).publicKey)).toBe(true);
      expect(new Date(current.newCertificateNotAfter as string).getTime()).toBeGreaterThanOrEqual(startedAt + VALIDITY_DAYS * DAY_MS - MINUTE_MS);
    }
    expect(first.map((d) => new X509Certificate(d.certPem).issuer)).toEqual(Array(DEVICES).fill(new X509Certificate(caPem).subject));
    expect(watcher?.violations).toEqual([]);
    expect(failures).toEqual([]);
  });
});
