import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { caStatus } from '../../cli/ca/status';
import { caRolloverScenario, type CaRolloverScenario, type StartedRollover } from '../../cli/demo/ca-rollover';
import { InvariantWatcher } from '../../cli/demo/invariant-watch';
import { checkOutcome, escalationsByThing } from '../../cli/demo/phases/check-outcome';
import { connectFleet, type DemoDevice, type DemoFleet } from '../../cli/demo/phases/provision';
import { CURRENT_SK, thingPk, type RotationRecord } from '../../domain/index';
import { RotationStatus, Trigger } from '../../domain/rotation';
import { CertificateStatus } from '../../local/iot/index';
import { DEVICE_POLICY_NAME, startLocalAws, type LocalAws } from '../../local/runtime';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * Issue 11 part 2 with real devices: simulated devices connect over mutual TLS with their first
 * certificates, which CA-1 (the local Private CA, registered with IoT) signed. A CA rollover
 * from CA-1 to CA-2 (a second local Private CA, registered ACTIVE), started as `rotor ca
 * rollover` starts it, moves every device through the normal rotate-device workflow: each ends
 * on a certificate CA-2 signed, acks over it (the broker accepts it), and keeps no usable
 * certificate of CA-1; then CA-1 is set INACTIVE, with no escalation, and `rotor ca status`
 * counts every device moved and none left.
 */
const describeWithBundles = bundlesDescribe('test/e2e/ca-rollover-devices.test.ts');
const DEVICES = 4;

describeWithBundles('a CA rollover moving real devices from CA-1 to CA-2', () => {
  jest.setTimeout(240_000);
  let aws: LocalAws;
  let workDir: string;
  let fleet: DemoFleet | undefined;
  let watcher: InvariantWatcher | undefined;
  let scenario: CaRolloverScenario;
  let devices: DemoDevice[];
  let started: StartedRollover;
  let db: DynamoDBDocumentClient;
  const statuses = new Map<string, string>();
  let rolloverStatus: string;

  const record = async (thingName: string): Promise<RotationRecord> => {
    const { Item } = await db.send(new GetCommand({ TableName: aws.endpoints.tableName, Key: { pk: thingPk(thingName), sk: CURRENT_SK } }));
    return Item as RotationRecord;
  };

  beforeAll(async () => {
    // Prepare: the fleet under CA-1, connected.
    workDir = mkdtempSync(join(tmpdir(), 'rotor-ca-rollover-devices-'));
    aws = await startLocalAws({ port: 0, mqttPort: 0, timeScale: 0.01, signer: { kind: 'private-ca', validityDays: 60 } });
    db = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' } }));
    scenario = await caRolloverScenario(aws);
    devices = await scenario.provision({ names: Array.from({ length: DEVICES }, (_, i) => `roll-${i + 1}`), faults: new Map(), workDir, expiresInDays: 200 });
    fleet = await connectFleet(aws, devices, { threads: 0 });
    watcher = new InvariantWatcher({ registry: aws.iot.registry, devices });
    watcher.start();
    fleet.on('keysRemoved', (thingName: string) => watcher?.keysRemoved(thingName));

    // Act: the rollover, and every device rotation it starts, to their ends.
    started = await scenario.start(devices);
    for (const [thing, arn] of started.executionArns) {
      const deadline = Date.now() + 120_000;
      for (;;) {
        if (aws.stepFunctions.findExecution(arn)) break;
        if (Date.now() > deadline) throw new Error(`the rollover never started a rotation for ${thing}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      statuses.set(thing, (await aws.stepFunctions.waitForExecution(arn)).status);
    }
    rolloverStatus = (await aws.stepFunctions.waitForExecution(started.rolloverExecutionArn)).status;
    await watcher.sample('final');
  }, 200_000);

  afterAll(async () => {
    await watcher?.stop();
    await fleet?.stop();
    db?.destroy();
    await aws?.stop();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  }, 60_000);

  it('starts every device on an ACTIVE certificate CA-1 signed, registered under CA-1', () => {
    // Assess
    const ca1 = new X509Certificate(aws.pca.caCertificate(scenario.ca1.certificateAuthorityArn).certificatePem);
    for (const device of devices) {
      const x509 = new X509Certificate(device.certPem);
      expect(x509.issuer).toBe(ca1.subject);
      expect(x509.verify(ca1.publicKey)).toBe(true);
    }
    expect(scenario.ca1.certificateAuthorityArn).toBe(aws.endpoints.privateCaArn);
    expect(scenario.ca2.caCertificateId).not.toBe(scenario.ca1.caCertificateId);
  });

  it('rotates every device through rotate-device onto a certificate CA-2 signed, acked over it', async () => {
    // Act
    const ca2 = new X509Certificate(aws.pca.caCertificate(scenario.ca2.certificateAuthorityArn).certificatePem);
    const results = await Promise.all(devices.map(async (device) => ({ device, current: await record(device.thingName) })));
    // Assess
    // A failure's reason (the rotation record's) is in the message.
    expect(results.map(({ device, current }) => [statuses.get(device.thingName), current.status, current.reason])).toEqual(Array(DEVICES).fill(['SUCCEEDED', RotationStatus.Succeeded, undefined]));
    for (const { device, current } of results) {
      expect(current).toMatchObject({ status: RotationStatus.Succeeded, trigger: Trigger.CaRollover, oldCertificateId: device.certificateId });
      const issued = aws.iot.registry.describeCertificate(current.newCertificateId as string);
      const x509 = new X509Certificate(issued.certificatePem);
      expect(x509.issuer).toBe(ca2.subject);
      expect(x509.verify(ca2.publicKey)).toBe(true);
      expect(issued).toMatchObject({ status: CertificateStatus.Active, caCertificateId: scenario.ca2.caCertificateId });
      expect(aws.iot.registry.attachedPolicies(issued.certificateArn)).toEqual([DEVICE_POLICY_NAME]);
      // The thing holds the CA-2 certificate only; the ack came over it, so the broker accepted it.
      expect(aws.iot.registry.certificatesOf(device.thingName).map((c) => c.certificateId)).toEqual([issued.certificateId]);
      expect(current.ackedCertificateId).toBe(issued.certificateId);
      expect(aws.iot.registry.findCertificate(device.certificateId)?.status ?? 'gone').not.toBe(CertificateStatus.Active);
    }
  });

  it('sets CA-1 INACTIVE and leaves CA-2 ACTIVE, with no escalation and no invariant violation', async () => {
    // Act
    await fleet?.stop();
    fleet = undefined;
    const failures = await checkOutcome(aws, {
      devices,
      outcomes: Object.fromEntries(devices.map((d) => [d.thingName, { outcome: 'rotated' as const }])),
      escalations: escalationsByThing(aws).byThing,
    });
    // Assess
    expect(rolloverStatus).toBe('SUCCEEDED');
    expect(aws.iot.registry.describeCaCertificate(scenario.ca1.caCertificateId).status).toBe('INACTIVE');
    expect(aws.iot.registry.describeCaCertificate(scenario.ca2.caCertificateId).status).toBe('ACTIVE');
    expect(aws.iot.registry.certificatesByCa(scenario.ca1.caCertificateId).filter((c) => c.status === CertificateStatus.Active)).toEqual([]);
    expect(escalationsByThing(aws).total).toBe(0);
    expect(watcher?.violations).toEqual([]);
    // Every device connects with its CA-2 certificate; none is left on CA-1.
    expect(failures).toEqual([]);
  });

  it('shows every device moved and none left in rotor ca status', async () => {
    // Prepare
    const config = { endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' } };
    const sfn = new SFNClient(config);
    const iot = new IoTClient(config);
    try {
      // Act
      const report = await caStatus({ ddb: db, sfn, iot, tableName: aws.endpoints.tableName }, scenario.ca1.caCertificateId);
      // Assess
      expect(report).toMatchObject({
        oldCaStatus: 'INACTIVE',
        devicesMoved: DEVICES,
        devicesLeft: 0,
        rollover: { executionArn: started.rolloverExecutionArn, status: 'DONE', executionStatus: 'SUCCEEDED', newPrivateCaArn: scenario.ca2.certificateAuthorityArn, stuckDevices: [] },
      });
    } finally {
      sfn.destroy();
      iot.destroy();
    }
  });
});
