import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { webcrypto } from 'node:crypto';
import { Pkcs10CertificateRequestGenerator } from '@peculiar/x509';
import { ACMPCAClient, GetCertificateAuthorityCertificateCommand, GetCertificateCommand, IssueCertificateCommand, waitUntilCertificateIssued } from '@aws-sdk/client-acm-pca';
import { DescribeCACertificateCommand, GetRegistrationCodeCommand, IoTClient, RegisterCACertificateCommand, RegisterCertificateCommand, UpdateCertificateCommand } from '@aws-sdk/client-iot';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { caStatus } from '../../cli/ca/status';
import { rolloverInput } from '../../cli/ca/index';
import { caRolloverName, ISSUING_CA_PK, ISSUING_CA_SK } from '../../domain/ca-rollover';
import { certificateIdOf } from '../../local/iot/index';
import { createActiveRootCa } from '../../local/pca/root-ca';
import { startLocalAws, type LocalAws } from '../../local/runtime';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * The CA rollover on the local runtime, through its own state machine and the real function
 * bundles: CA-1 is the local Private CA `rotor local up` makes, CA-2 a second one registered
 * with IoT as an operator registers it (verification certificate with the registration code).
 * What it proves: Verify new CA issues and deletes a test certificate under CA-2, issuing
 * switches to CA-2, a certificate under CA-1 that no device rotation can move keeps CA-1 ACTIVE
 * and gets the one escalation, and once none is left CA-1 becomes INACTIVE. Devices moved by
 * their rotations are the demo's part (`rotor demo --scenario ca-rollover`).
 */
const describeWithBundles = bundlesDescribe('test/e2e/ca-rollover.test.ts');

async function keyCsr(commonName: string): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  return (await Pkcs10CertificateRequestGenerator.create({ name: [{ CN: [commonName] }], keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } })).toString('pem');
}

describeWithBundles('the CA rollover on the local runtime', () => {
  jest.setTimeout(180_000);
  let dir: string;
  let aws: LocalAws;
  let pca: ACMPCAClient;
  let iot: IoTClient;
  let sfn: SFNClient;
  let ddb: DynamoDBDocumentClient;
  let ca1Arn: string;
  let ca1Id: string;
  let ca2Arn: string;
  let ca2Id: string;

  async function issue(caArn: string, commonName: string, template?: string): Promise<string> {
    const { CertificateArn } = await pca.send(
      new IssueCertificateCommand({ CertificateAuthorityArn: caArn, Csr: Buffer.from(await keyCsr(commonName)), SigningAlgorithm: 'SHA256WITHECDSA', Validity: { Type: 'DAYS', Value: 30 }, ...(template ? { TemplateArn: template } : {}) }),
    );
    await waitUntilCertificateIssued({ client: pca, maxWaitTime: 30 }, { CertificateAuthorityArn: caArn, CertificateArn });
    return (await pca.send(new GetCertificateCommand({ CertificateAuthorityArn: caArn, CertificateArn }))).Certificate as string;
  }

  async function rollover(): Promise<{ status?: string; error?: string }> {
    const input = rolloverInput(ca1Arn, ca2Arn);
    const { executionArn } = await sfn.send(new StartExecutionCommand({ stateMachineArn: aws.endpoints.caRolloverStateMachineArn, name: caRolloverName(input.oldCa, input.newCa, new Date().toISOString()), input: JSON.stringify(input) }));
    await aws.stepFunctions.waitForExecution(executionArn as string);
    return sfn.send(new DescribeExecutionCommand({ executionArn }));
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-ca-rollover-'));
    aws = await startLocalAws({ port: 0, mqttPort: 0, dataDir: dir, timeScale: 0.01, settings: { signer: 'private-ca' } });
    const config = { endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' } };
    pca = new ACMPCAClient(config);
    iot = new IoTClient(config);
    sfn = new SFNClient(config);
    ddb = DynamoDBDocumentClient.from(new DynamoDBClient(config));
    ca1Arn = aws.endpoints.privateCaArn as string;
    ca1Id = certificateIdOf((await pca.send(new GetCertificateAuthorityCertificateCommand({ CertificateAuthorityArn: ca1Arn }))).Certificate as string);

    // CA-2, registered with IoT in DEFAULT mode the way an operator does it.
    ca2Arn = await createActiveRootCa(aws.pca, { commonName: 'Rotor e2e CA 2', idempotencyToken: 'e2e-ca-2' });
    const ca2Pem = (await pca.send(new GetCertificateAuthorityCertificateCommand({ CertificateAuthorityArn: ca2Arn }))).Certificate as string;
    const { registrationCode } = await iot.send(new GetRegistrationCodeCommand({}));
    const verification = await issue(ca2Arn, registrationCode as string);
    ca2Id = (await iot.send(new RegisterCACertificateCommand({ caCertificate: ca2Pem, verificationCertificate: verification, setAsActive: true }))).certificateId as string;
  }, 120_000);

  afterAll(async () => {
    for (const client of [pca, iot, sfn, ddb]) client?.destroy();
    await aws?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('keeps CA-1 ACTIVE and escalates once while a certificate under it cannot be moved, then sets it INACTIVE when none is left', async () => {
    // Prepare: an ACTIVE certificate under CA-1 that belongs to no thing, so no rotation can move it.
    const orphanPem = await issue(ca1Arn, 'orphan');
    const caPem = (await pca.send(new GetCertificateAuthorityCertificateCommand({ CertificateAuthorityArn: ca1Arn }))).Certificate as string;
    const { certificateId: orphanId } = await iot.send(new RegisterCertificateCommand({ certificatePem: orphanPem, caCertificatePem: caPem, status: 'ACTIVE' }));

    // Act
    const blocked = await rollover();

    // Assess: issuing switched, CA-1 untouched, one escalation naming the certificate.
    expect(blocked).toMatchObject({ status: 'FAILED', error: 'CA_DEVICES_LEFT' });
    const issuing = (await ddb.send(new GetCommand({ TableName: aws.endpoints.tableName, Key: { pk: ISSUING_CA_PK, sk: ISSUING_CA_SK } }))).Item;
    expect(issuing).toMatchObject({ caArn: ca2Arn, caCertificateId: ca2Id, previousCaCertificateId: ca1Id });
    expect((await iot.send(new DescribeCACertificateCommand({ certificateId: ca1Id }))).certificateDescription?.status).toBe('ACTIVE');
    const escalations = aws.sns.messages(aws.endpoints.topics.escalation);
    expect(escalations).toHaveLength(1);
    expect(escalations[0].subject).toContain('CA_DEVICES_LEFT');
    expect(escalations[0].message).toContain(`(no thing) ${orphanId}`);
    await expect(caStatus({ ddb, sfn, iot, tableName: aws.endpoints.tableName }, ca1Id)).resolves.toMatchObject({
      oldCaStatus: 'ACTIVE',
      devicesLeft: 1,
      rollover: { status: 'DEVICES_LEFT', executionStatus: 'FAILED', stuckDevices: [{ thingName: '(no thing)', certificateId: orphanId }] },
    });

    // Act: the operator retires it, and runs the rollover again.
    await iot.send(new UpdateCertificateCommand({ certificateId: orphanId, newStatus: 'INACTIVE' }));
    const done = await rollover();

    // Assess
    expect(done.status).toBe('SUCCEEDED');
    expect((await iot.send(new DescribeCACertificateCommand({ certificateId: ca1Id }))).certificateDescription?.status).toBe('INACTIVE');
    expect((await iot.send(new DescribeCACertificateCommand({ certificateId: ca2Id }))).certificateDescription?.status).toBe('ACTIVE');
    expect(aws.sns.messages(aws.endpoints.topics.escalation)).toHaveLength(1);
    await expect(caStatus({ ddb, sfn, iot, tableName: aws.endpoints.tableName }, ca1Id)).resolves.toMatchObject({
      oldCaStatus: 'INACTIVE',
      devicesLeft: 0,
      rollover: { status: 'DONE', executionStatus: 'SUCCEEDED' },
    });
  });

  it('stops before touching anything when NEW is not registered with IoT', async () => {
    const unregistered = await createActiveRootCa(aws.pca, { commonName: 'Rotor e2e CA 3', idempotencyToken: 'e2e-ca-3' });
    const input = { oldCa: ca2Arn, newCa: unregistered, trigger: 'cli' };
    const { executionArn } = await sfn.send(new StartExecutionCommand({ stateMachineArn: aws.endpoints.caRolloverStateMachineArn, name: caRolloverName(input.oldCa, input.newCa, 'e2e'), input: JSON.stringify(input) }));
    await aws.stepFunctions.waitForExecution(executionArn as string);
    expect(await sfn.send(new DescribeExecutionCommand({ executionArn }))).toMatchObject({ status: 'FAILED', error: 'CA_ROLLOVER_FAILED' });
    const escalation = aws.sns.messages(aws.endpoints.topics.escalation).at(-1);
    expect(escalation?.subject).toContain('NewCaNotReady');
    // The error's type and message only: the function's stack trace stays in its log.
    expect(escalation?.message).toMatch(/^NewCaNotReady: \S/);
    expect(escalation?.message).not.toMatch(/errorType|trace|\n\s+at /);
    const issuing = (await ddb.send(new GetCommand({ TableName: aws.endpoints.tableName, Key: { pk: ISSUING_CA_PK, sk: ISSUING_CA_SK } }))).Item;
    expect(issuing?.caArn).toBe(ca2Arn);
  });
});
