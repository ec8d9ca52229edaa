import 'reflect-metadata';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import {
  ACMPCAClient,
  DescribeCertificateAuthorityCommand,
  GetCertificateAuthorityCertificateCommand,
  GetCertificateCommand,
  IssueCertificateCommand,
  waitUntilCertificateIssued,
} from '@aws-sdk/client-acm-pca';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateThingCommand,
  DescribeCACertificateCommand,
  IoTClient,
  ListCACertificatesCommand,
  ListCertificatesByCACommand,
  RegisterCertificateCommand,
  UpdateCACertificateCommand,
} from '@aws-sdk/client-iot';
import { connectAsync } from 'mqtt';
import { localProvision, localServerCaRetireOld, localServerCaRotate, SERVER_CA_BUNDLE_FILE, SERVER_CA_FILE, type LocalCommandIo } from '../../cli/local';
import { certificateIdOf } from '../../local/iot/index';
import { CA_FILE, DEVICE_POLICY_NAME, startLocalAws, type LocalAws } from '../../local/runtime';
import { REPO_ROOT } from '../../wiring/index';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';
import { findAwsCli, runWithCli, type Transcript } from '../fixtures/official-clients/clients.js';
import { makeCsr } from '../contract/iot-harness.js';

/**
 * The local runtime's certificate authorities, as `rotor local up` starts them: its private CA
 * (AWS Private CA, registered with IoT in DEFAULT mode), the private-ca signing path a Rotor
 * signer takes through the SDK (IssueCertificate, the waiter, GetCertificate, RegisterCertificate)
 * and the broker accepting the result, the CA set INACTIVE, `rotor local server-ca rotate`, and
 * the same APIs answering Debian's AWS CLI (transcript in .rotor/transcripts/local-ca.txt).
 */
const describeWithBundles = bundlesDescribe('test/e2e/local-ca.test.ts');
const TRANSCRIPT = join(REPO_ROOT, '.rotor', 'transcripts', 'local-ca.txt');

describeWithBundles('the local runtime\'s certificate authorities', () => {
  jest.setTimeout(120_000);
  let dir: string;
  let aws: LocalAws;
  let pca: ACMPCAClient;
  let iot: IoTClient;
  let caArn: string;
  const lines: string[] = [];
  const io: LocalCommandIo = { out: (line) => lines.push(line), untilInterrupted: () => new Promise(() => undefined) };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-local-ca-'));
    aws = await startLocalAws({ port: 0, mqttPort: 0, dataDir: dir, timeScale: 0.01 });
    const config = { endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' } };
    pca = new ACMPCAClient(config);
    iot = new IoTClient(config);
    caArn = aws.endpoints.privateCaArn as string;
  }, 90_000);

  afterAll(async () => {
    pca?.destroy();
    iot?.destroy();
    await aws?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('starts with an ACTIVE private CA, registered and ACTIVE in IoT, named in endpoints.json', async () => {
    // Act
    const { CertificateAuthority } = await pca.send(new DescribeCertificateAuthorityCommand({ CertificateAuthorityArn: caArn }));
    const { Certificate } = await pca.send(new GetCertificateAuthorityCertificateCommand({ CertificateAuthorityArn: caArn }));
    const caId = certificateIdOf(Certificate as string);
    const listed = await iot.send(new ListCACertificatesCommand({}));
    const { certificateDescription } = await iot.send(new DescribeCACertificateCommand({ certificateId: caId }));
    const endpoints = JSON.parse(readFileSync(join(dir, 'endpoints.json'), 'utf8')) as { privateCaArn?: string };
    // Assess
    expect(CertificateAuthority).toMatchObject({ Status: 'ACTIVE', Type: 'ROOT' });
    expect(listed.certificates?.map((c) => c.certificateId)).toEqual([caId]);
    expect(certificateDescription).toMatchObject({ status: 'ACTIVE', certificateMode: 'DEFAULT' });
    expect(endpoints.privateCaArn).toBe(caArn);
  });

  it('signs the private-ca way through the SDK: the registered certificate connects, and not while its CA is INACTIVE', async () => {
    // Prepare
    const { csrPem, privateKeyPem } = await makeCsr('pca-device');
    const caId = certificateIdOf((await pca.send(new GetCertificateAuthorityCertificateCommand({ CertificateAuthorityArn: caArn }))).Certificate as string);
    // Act
    const { CertificateArn } = await pca.send(new IssueCertificateCommand({
      CertificateAuthorityArn: caArn, Csr: new TextEncoder().encode(csrPem), SigningAlgorithm: 'SHA256WITHECDSA',
      TemplateArn: 'arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1', Validity: { Type: 'DAYS', Value: 90 }, IdempotencyToken: 'pca-device-1',
    }));
    await waitUntilCertificateIssued({ client: pca, maxWaitTime: 30 }, { CertificateAuthorityArn: caArn, CertificateArn });
    const { Certificate } = await pca.send(new GetCertificateCommand({ CertificateAuthorityArn: caArn, CertificateArn }));
    const { certificateArn, certificateId } = await iot.send(new RegisterCertificateCommand({ certificatePem: Certificate, status: 'ACTIVE' }));
    await iot.send(new CreateThingCommand({ thingName: 'pca-device' }));
    await iot.send(new AttachPolicyCommand({ policyName: DEVICE_POLICY_NAME, target: certificateArn }));
    await iot.send(new AttachThingPrincipalCommand({ thingName: 'pca-device', principal: certificateArn }));
    const options = { clientId: 'pca-device', protocolVersion: 4 as const, reconnectPeriod: 0, connectTimeout: 5000, ca: aws.caPem, key: privateKeyPem, cert: Certificate, rejectUnauthorized: true };
    const client = await connectAsync(`mqtts://${aws.endpoints.mqtt.host}:${aws.endpoints.mqtt.port}`, options);
    await client.endAsync();
    await iot.send(new UpdateCACertificateCommand({ certificateId: caId, newStatus: 'INACTIVE' }));
    const refused = connectAsync(`mqtts://${aws.endpoints.mqtt.host}:${aws.endpoints.mqtt.port}`, options);
    await expect(refused).rejects.toThrow(/Not authorized/i);
    await iot.send(new UpdateCACertificateCommand({ certificateId: caId, newStatus: 'ACTIVE' }));
    const byCa = await iot.send(new ListCertificatesByCACommand({ caCertificateId: caId }));
    // Assess
    const notAfter = new Date(new X509Certificate(Certificate as string).validTo).getTime();
    expect(Math.abs(notAfter - (Date.now() + 90 * 86_400_000))).toBeLessThan(60_000);
    expect(byCa.certificates?.map((c) => c.certificateId)).toEqual([certificateId]);
  });

  it('`rotor local server-ca rotate` switches the broker cross-signed: ca.pem and a new device follow, the old CA alone verifies it until `retire-old`', async () => {
    // Prepare
    const oldCa = readFileSync(join(dir, CA_FILE), 'utf8');
    // Act
    const code = await localServerCaRotate({ dataDir: dir }, io);
    await localProvision({ thing: 'after-switch', out: join(dir, 'after-switch'), dataDir: dir }, io);
    const newCa = readFileSync(join(dir, SERVER_CA_FILE), 'utf8');
    const url = `mqtts://${aws.endpoints.mqtt.host}:${aws.endpoints.mqtt.port}`;
    const credentials = { clientId: 'after-switch', protocolVersion: 4 as const, reconnectPeriod: 0, connectTimeout: 5000, key: readFileSync(join(dir, 'after-switch', 'key.pem')), cert: readFileSync(join(dir, 'after-switch', 'cert.pem')), rejectUnauthorized: true };
    const withNew = await connectAsync(url, { ...credentials, ca: readFileSync(join(dir, 'after-switch', 'ca.pem')) });
    await withNew.endAsync();
    const withBundle = await connectAsync(url, { ...credentials, ca: readFileSync(join(dir, SERVER_CA_BUNDLE_FILE)) });
    await withBundle.endAsync();
    const withOld = await connectAsync(url, { ...credentials, ca: oldCa });
    await withOld.endAsync();
    const retired = await localServerCaRetireOld({ dataDir: dir }, io);
    const withOldAfterRetire = connectAsync(url, { ...credentials, ca: oldCa });
    // Assess
    await expect(withOldAfterRetire).rejects.toThrow(/self.signed|unable to (get|verify)/i);
    expect(code).toBe(0);
    expect(retired).toBe(0);
    expect(newCa).not.toBe(oldCa);
    expect(readFileSync(join(dir, CA_FILE), 'utf8')).toBe(newCa);
    expect(readFileSync(join(dir, 'after-switch', 'ca.pem'), 'utf8')).toBe(newCa);
    expect(lines.join('\n')).toContain('the broker now serves a certificate from a new server CA (CN=Rotor Local Server CA 2, O=Rotor local)');
    expect(lines.join('\n')).toContain('cross-signed      the broker serves the new CA cross-signed by CN=Rotor Local IoT CA, O=Rotor local');
    expect(lines.join('\n')).toContain('the broker no longer serves CN=Rotor Local Server CA 2, O=Rotor local cross-signed by CN=Rotor Local IoT CA, O=Rotor local');
  });

  const cli = findAwsCli();
  (cli ? it : it.skip)('answers Debian\'s AWS CLI v2: acm-pca and the IoT CA APIs', async () => {
    // Prepare
    const transcript: Transcript = { client: `${cli?.version}`, entries: [] };
    const caPem = (await pca.send(new GetCertificateAuthorityCertificateCommand({ CertificateAuthorityArn: caArn }))).Certificate as string;
    const caId = certificateIdOf(caPem);
    // Act
    const results = await runWithCli(cli!, aws.endpoints.awsEndpoint, aws.endpoints.region, [
      { service: 'acm-pca', operation: 'DescribeCertificateAuthority', params: { CertificateAuthorityArn: caArn } },
      { service: 'acm-pca', operation: 'GetCertificateAuthorityCertificate', params: { CertificateAuthorityArn: caArn } },
      { service: 'iot', operation: 'ListCACertificates', params: {}, cliCommand: 'list-ca-certificates' },
      { service: 'iot', operation: 'DescribeCACertificate', params: { CertificateId: caId }, cliCommand: 'describe-ca-certificate' },
      { service: 'iot', operation: 'ListCertificatesByCA', params: { CaCertificateId: caId } },
      { service: 'iot', operation: 'GetRegistrationCode', params: {} },
    ], transcript);
    mkdirSync(join(REPO_ROOT, '.rotor', 'transcripts'), { recursive: true });
    writeFileSync(TRANSCRIPT, `# ${transcript.client}\n\n${transcript.entries.map((e) => `${e.command}\n${e.output}`).join('\n\n')}\n`);
    // Assess
    const [described, caCertificate, listed, describedCa, byCa, code] = results.map((r) => (r.ok ? r.response : { error: r.error })) as Record<string, any>[];
    expect(described.CertificateAuthority).toMatchObject({ Arn: caArn, Status: 'ACTIVE', Type: 'ROOT' });
    expect(caCertificate.Certificate.trim()).toBe(caPem.trim());
    expect(listed.certificates.map((c: { certificateId: string }) => c.certificateId)).toEqual([caId]);
    expect(describedCa.certificateDescription).toMatchObject({ certificateId: caId, status: 'ACTIVE', certificateMode: 'DEFAULT' });
    expect(byCa.certificates.length).toBe(aws.iot.registry.certificatesByCa(caId).length);
    expect(code.registrationCode).toBe(aws.iot.registry.registrationCode());
  });
});
