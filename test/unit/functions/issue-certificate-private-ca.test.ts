import 'reflect-metadata';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID, webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { AttachPolicyCommand, AttachThingPrincipalCommand, CreateCertificateFromCsrCommand, DescribeCertificateCommand, IoTClient, ListAttachedPoliciesCommand, RegisterCertificateCommand } from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { ISSUING_CA_PK } from '../../../domain/ca-rollover.js';
import { privateCaIssueProfile } from '../../../domain/pacing/call-profile.js';
import { parseSignerSettings } from '../../../domain/signer.js';
import { PrivateCaClient } from '../../../functions/aws/acm-pca.js';
import { readIssuingCa } from '../../../functions/core/issuing-ca.js';
import { createSigner } from '../../../functions/core/signer-from-settings.js';
import { issueCertificate } from '../../../functions/issue-certificate.js';
import { clients } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { certificateIdOf, generateKeys, makeCertificate, makeCsr, type Certificate, type KeyPair } from '../../fixtures/pki.js';
import { recordingTelemetry } from '../../fixtures/telemetry.js';

/**
 * Issue certificate with the private-ca signer, end to end inside one process: the real
 * Private CA client talks HTTP to a small CA that really signs the CSR with its own key, for
 * the validity asked, and answers GetCertificate "in progress" once first. IoT and the table
 * are mocked (aws-sdk-client-mock). What it proves: the certificate the device gets is signed
 * by the configured CA, expires when the settings say (not in 2049), is registered with the
 * issuing CA's certificate, gets the old certificate's attachments, and its notAfter is
 * recorded. The local runtime's Private CA emulation (issue 11 part 4) is where the e2e goes.
 */
const db = mockClient(DynamoDBDocumentClient);
const iot = mockClient(IoTClient);

const THING = 'sensor-7';
const ROTATION = 'sensor-7-a0123456789abcdef0123';
const CA_ARN = 'arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/0f3a8c1e-5b7d-4e2a-9c61-2d8f4b7a6e10';
const arn = (id: string): string => `arn:aws:iot:eu-west-1:123456789012:cert/${id}`;
const NOW = new Date('2026-03-01T12:00:00.000Z');

let caKey: KeyPair;
let caCertificate: x509.X509Certificate;
let old: Certificate;
let csr: string;
let server: Server;
let endpoint: string;
let pcaCalls: { target: string; body: Record<string, unknown> }[];

/** The CA's side: IssueCertificate signs at once; GetCertificate says "in progress" on the first ask of each certificate. */
function startCa(): Promise<void> {
  const issued = new Map<string, { pem: string; asked: number }>();
  const byToken = new Map<string, string>();
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      void (async () => {
        const target = String(req.headers['x-amz-target']);
        const body = JSON.parse(text) as Record<string, unknown>;
        pcaCalls.push({ target, body });
        const answer = (status: number, payload: unknown): void => {
          res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(JSON.stringify(payload));
        };
        if (target === 'ACMPrivateCA.DescribeCertificateAuthority') {
          return answer(200, { CertificateAuthority: { Arn: CA_ARN, Status: 'ACTIVE', CertificateAuthorityConfiguration: { KeyAlgorithm: 'EC_prime256v1', SigningAlgorithm: 'SHA256WITHECDSA' } } });
        }
        if (target === 'ACMPrivateCA.IssueCertificate') {
          const token = String(body.IdempotencyToken);
          const known = byToken.get(token);
          if (known) return answer(200, { CertificateArn: known });
          const request = new x509.Pkcs10CertificateRequest(Buffer.from(String(body.Csr), 'base64').toString('utf8'));
          const validity = body.Validity as { Value: number; Type: string };
          const certificate = await x509.X509CertificateGenerator.create({
            serialNumber: randomUUID().replace(/-/g, '').slice(0, 16),
            subject: request.subject,
            issuer: caCertificate.subject,
            notBefore: NOW,
            notAfter: new Date(NOW.getTime() + validity.Value * 86_400_000),
            publicKey: request.publicKey,
            signingKey: caKey.keys.privateKey,
            signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
          });
          const certificateArn = `${CA_ARN}/certificate/${randomUUID().replace(/-/g, '')}`;
          issued.set(certificateArn, { pem: certificate.toString('pem'), asked: 0 });
          byToken.set(token, certificateArn);
          return answer(200, { CertificateArn: certificateArn });
        }
        if (target === 'ACMPrivateCA.GetCertificate') {
          const entry = issued.get(String(body.CertificateArn));
          if (!entry) return answer(400, { __type: 'ResourceNotFoundException', message: 'no such certificate' });
          if (entry.asked++ === 0) return answer(400, { __type: 'RequestInProgressException', message: 'The request is still in progress.' });
          return answer(200, { Certificate: entry.pem, CertificateChain: caCertificate.toString('pem') });
        }
        return answer(400, { __type: 'InvalidRequestException', message: `unknown target ${target}` });
      })();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    resolve();
  }));
}

beforeAll(async () => {
  caKey = await generateKeys('ec-p256');
  caCertificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=Rotor Test Issuing CA',
    keys: caKey.keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
    notBefore: new Date(NOW.getTime() - 86_400_000),
    notAfter: new Date(NOW.getTime() + 3650 * 86_400_000),
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  old = await makeCertificate(THING, await generateKeys('ec-p256'));
  csr = await makeCsr({ commonName: THING, key: await generateKeys('ec-p256') });
  await startCa();
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

let record: Record<string, unknown>;

beforeEach(() => {
  db.reset();
  iot.reset();
  pcaCalls = [];
  record = { pk: `thing#${THING}`, sk: 'current', thingName: THING, rotationId: ROTATION, status: 'IN_PROGRESS', oldCertificateId: old.id };
  // No CA rollover has switched issuing: the issuing-CA item is absent.
  db.on(GetCommand).callsFake((input: { Key: { pk: string } }) => (input.Key.pk === ISSUING_CA_PK ? {} : { Item: { ...record } }));
  db.on(UpdateCommand).callsFake((command: { UpdateExpression: string; ExpressionAttributeValues: Record<string, unknown> }) => {
    if (command.UpdateExpression.startsWith('SET issueIntent')) record.issueIntent = command.ExpressionAttributeValues[':intent'];
    else if (command.UpdateExpression === 'REMOVE issueIntent') delete record.issueIntent;
    else {
      record.newCertificateId = command.ExpressionAttributeValues[':id'];
      record.newCertificateNotAfter = command.ExpressionAttributeValues[':notAfter'];
      delete record.issueIntent;
    }
    return {};
  });
  iot.on(DescribeCertificateCommand, { certificateId: old.id }).resolves({
    certificateDescription: { certificateId: old.id, certificateArn: arn(old.id), status: 'ACTIVE', certificatePem: old.pem },
  });
  // IoT's certificate id is the SHA-256 of the DER, as RegisterCertificate answers it.
  iot.on(RegisterCertificateCommand).callsFake((input: { certificatePem: string }) => {
    const id = certificateIdOf(input.certificatePem);
    return { certificateId: id, certificateArn: arn(id) };
  });
  iot.on(ListAttachedPoliciesCommand).resolves({ policies: [{ policyName: 'device-policy' }] });
  iot.on(AttachPolicyCommand).resolves({});
  iot.on(AttachThingPrincipalCommand).resolves({});
});

/** As the handler builds them: the signer reads the issuing-CA item at every signature. */
function deps() {
  const clock = fakeClock(NOW.toISOString());
  const settings = parseSignerSettings({ ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: CA_ARN, ROTOR_PCA_VALIDITY_DAYS: '90' });
  const pca = new PrivateCaClient({ endpoint, region: 'eu-west-1', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' }, sleep: async () => undefined });
  const iotClient = clients.iot();
  const iotCreate = clients.iot();
  const table = { db: clients.db(), tableName: 'rotations' };
  return {
    ...table,
    iot: iotClient,
    iotCreate,
    clock,
    telemetry: recordingTelemetry(),
    signer: createSigner(settings, { iot: iotClient, iotCreate, pca, clock, issuingCaArn: async () => (await readIssuingCa(table))?.caArn }),
  };
}

describe('Issue certificate with the private-ca signer', () => {
  it('gives the device a certificate the CA signed, valid for the configured 90 days, registered with the CA certificate and attached like the old one', async () => {
    // Act
    const issued = await issueCertificate({ thingName: THING, rotationId: ROTATION, oldCertificateId: old.id, csrPem: csr }, deps());

    // Assess: a real certificate, from this CA, with the validity asked for
    const certificate = new X509Certificate(issued.certificatePem);
    expect(certificate.verify(new X509Certificate(caCertificate.toString('pem')).publicKey)).toBe(true);
    expect(certificate.subject).toBe(`CN=${THING}`);
    expect(issued.notAfter).toBe('2026-05-30T12:00:00.000Z');
    expect(new Date(certificate.validTo).toISOString()).toBe(issued.notAfter);
    expect(record.newCertificateId).toBe(issued.certificateId);
    expect(record.newCertificateNotAfter).toBe('2026-05-30T12:00:00.000Z');
    expect(record.issueIntent).toBeUndefined();

    // Assess: the calls
    expect(pcaCalls.map((c) => c.target)).toEqual([
      'ACMPrivateCA.DescribeCertificateAuthority',
      'ACMPrivateCA.IssueCertificate',
      'ACMPrivateCA.GetCertificate',
      'ACMPrivateCA.GetCertificate',
    ]);
    expect(pcaCalls[1].body).toMatchObject({ SigningAlgorithm: 'SHA256WITHECDSA', Validity: { Value: 90, Type: 'DAYS' }, TemplateArn: 'arn:aws:acm-pca:::template/EndEntityCertificate/V1' });
    expect(iot.commandCalls(CreateCertificateFromCsrCommand)).toHaveLength(0);
    const registered = iot.commandCalls(RegisterCertificateCommand).map((c) => c.args[0].input);
    expect(registered).toHaveLength(1);
    expect(registered[0]).toMatchObject({ certificatePem: issued.certificatePem, status: 'ACTIVE' });
    expect(new X509Certificate(registered[0].caCertificatePem as string).fingerprint256).toBe(new X509Certificate(caCertificate.toString('pem')).fingerprint256);
    expect(iot.commandCalls(AttachPolicyCommand).map((c) => c.args[0].input)).toEqual([{ policyName: 'device-policy', target: arn(issued.certificateId) }]);
    expect(iot.commandCalls(AttachThingPrincipalCommand).map((c) => c.args[0].input)).toEqual([{ thingName: THING, principal: arn(issued.certificateId) }]);
  });

  it('makes the DynamoDB and IoT calls the call profile counts for it, the issuing-CA read included', async () => {
    // Act
    await issueCertificate({ thingName: THING, rotationId: ROTATION, oldCertificateId: old.id, csrPem: csr }, deps());

    // Assess: DescribeCertificateAuthority is once per execution environment, and the second
    // GetCertificate is this CA's scripted "in progress", so Private CA is checked by its IssueCertificate.
    const measured: Record<string, number> = {};
    const count = (operation: string): void => void (measured[operation] = (measured[operation] ?? 0) + 1);
    const names: Record<string, string> = { GetCommand: 'dynamodb:GetItem', UpdateCommand: 'dynamodb:UpdateItem' };
    for (const call of db.calls()) count(names[call.args[0].constructor.name] ?? call.args[0].constructor.name);
    for (const call of iot.calls()) count(`iot:${call.args[0].constructor.name.replace(/Command$/, '')}`);
    const profile = privateCaIssueProfile('DEFAULT').calls;
    expect(measured).toEqual(Object.fromEntries(Object.entries(profile).filter(([operation]) => !operation.startsWith('acm-pca:'))));
    expect(measured['dynamodb:GetItem']).toBe(2);
    expect(pcaCalls.filter((c) => c.target === 'ACMPrivateCA.IssueCertificate')).toHaveLength(profile['acm-pca:IssueCertificate']);
  });
});
