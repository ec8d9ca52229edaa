import 'reflect-metadata';
import { randomUUID, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { DeleteCertificateCommand, DescribeCACertificateCommand, IoTClient, RegisterCertificateCommand, RegisterCertificateWithoutCACommand, UpdateCertificateCommand } from '@aws-sdk/client-iot';
import { mockClient } from 'aws-sdk-client-mock';
import type { PrivateCaClient, PrivateCaCommand } from '../../../functions/aws/acm-pca.js';
import { verifyNewCa, type VerifyNewCaDeps } from '../../../functions/ca-verify-new.js';
import { awsErrors, clients } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { certificateIdOf, generateKeys, makeCertificate, type Certificate, type KeyPair } from '../../fixtures/pki.js';
import { recordingTelemetry } from '../../fixtures/telemetry.js';

/**
 * Verify new CA against a Private CA that really signs (an in-process stand-in for the three
 * operations, with a real CA key) and a mocked IoT. What it proves: OLD and NEW are matched to
 * their IoT CA certificates by the certificates themselves, the test certificate is signed by
 * NEW and registered with NEW's certificate, then deactivated and deleted; anything NEW cannot
 * do stops the rollover with NewCaNotReady before the fleet is touched.
 */
const iot = mockClient(IoTClient);
const OLD_ARN = 'arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/00000000-1111-2222-3333-444444444444';
const NEW_ARN = 'arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555';

let oldCa: Certificate;
let newCa: Certificate;
let newKey: KeyPair;
let pcaCalls: string[];

/** The new CA signs for real; the old one only has its certificate. */
function fakePca(options: { refuseIssue?: boolean } = {}): PrivateCaClient {
  const issued = new Map<string, string>();
  return {
    send: async (command: PrivateCaCommand<object, unknown>) => {
      pcaCalls.push(command.operation);
      const input = command.input as Record<string, unknown>;
      switch (command.operation) {
        case 'GetCertificateAuthorityCertificate':
          if (input.CertificateAuthorityArn === OLD_ARN) return { Certificate: oldCa.pem };
          if (input.CertificateAuthorityArn === NEW_ARN) return { Certificate: newCa.pem };
          throw awsErrors.named('ResourceNotFoundException');
        case 'DescribeCertificateAuthority':
          return { CertificateAuthority: { Status: 'ACTIVE', CertificateAuthorityConfiguration: { KeyAlgorithm: 'EC_prime256v1' } } };
        case 'IssueCertificate': {
          if (options.refuseIssue) throw Object.assign(awsErrors.named('InvalidStateException', 'the CA is DISABLED'), { $metadata: { httpStatusCode: 400 } });
          const request = new x509.Pkcs10CertificateRequest(Buffer.from(input.Csr as Uint8Array).toString('utf8'));
          const certificate = await x509.X509CertificateGenerator.create({
            serialNumber: randomUUID().replace(/-/g, '').slice(0, 16),
            subject: request.subject,
            issuer: new x509.X509Certificate(newCa.pem).subject,
            notBefore: new Date(),
            notAfter: new Date(Date.now() + 86_400_000),
            publicKey: request.publicKey,
            signingKey: newKey.keys.privateKey,
            signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
          });
          const arn = `${NEW_ARN}/certificate/${randomUUID().replace(/-/g, '')}`;
          issued.set(arn, certificate.toString('pem'));
          return { CertificateArn: arn };
        }
        case 'GetCertificate':
          return { Certificate: issued.get(input.CertificateArn as string), CertificateChain: newCa.pem };
        default:
          throw new Error(`unexpected ${command.operation}`);
      }
    },
  } as unknown as PrivateCaClient;
}

const deps = (pca = fakePca()): VerifyNewCaDeps => ({ iot: clients.iot(), pca, clock: fakeClock(), telemetry: recordingTelemetry() });
const event = (oldCa: string, newCa = NEW_ARN) => ({ rollover: { oldCa, newCa, trigger: 'cli' }, rolloverId: 'ca-rollover-0123' });

beforeAll(async () => {
  oldCa = await makeCertificate('old CA', await generateKeys());
  newKey = await generateKeys();
  newCa = await makeCertificate('new CA', newKey);
});

beforeEach(() => {
  pcaCalls = [];
  iot.reset();
  iot.on(DescribeCACertificateCommand, { certificateId: oldCa.id }).resolves({ certificateDescription: { certificateId: oldCa.id, status: 'ACTIVE', certificateMode: 'DEFAULT' } });
  iot.on(DescribeCACertificateCommand, { certificateId: newCa.id }).resolves({ certificateDescription: { certificateId: newCa.id, status: 'ACTIVE', certificateMode: 'DEFAULT' } });
  iot.on(RegisterCertificateCommand).callsFake((input: { certificatePem: string }) => {
    const certificateId = certificateIdOf(input.certificatePem);
    return { certificateId, certificateArn: `arn:aws:iot:us-east-1:123456789012:cert/${certificateId}` };
  });
  iot.on(UpdateCertificateCommand).resolves({});
  iot.on(DeleteCertificateCommand).resolves({});
});

describe('Verify new CA', () => {
  it('maps both CAs to their IoT CA certificates, registers a test certificate NEW signed, and deletes it', async () => {
    const cas = await verifyNewCa(event(OLD_ARN), deps());

    expect(cas).toEqual({ oldCaCertificateId: oldCa.id, oldPrivateCaArn: OLD_ARN, newCaCertificateId: newCa.id, newPrivateCaArn: NEW_ARN });
    const registered = iot.commandCalls(RegisterCertificateCommand)[0].args[0].input;
    expect(registered.status).toBe('ACTIVE');
    expect(registered.caCertificatePem?.trim()).toBe(newCa.pem.trim());
    expect(await new x509.X509Certificate(registered.certificatePem ?? '').verify({ publicKey: newKey.keys.publicKey, signatureOnly: true })).toBe(true);
    const testId = certificateIdOf(registered.certificatePem ?? '');
    expect(iot.commandCalls(UpdateCertificateCommand)[0].args[0].input).toEqual({ certificateId: testId, newStatus: 'INACTIVE' });
    expect(iot.commandCalls(DeleteCertificateCommand)[0].args[0].input).toEqual({ certificateId: testId });
  });

  it('stops with NoSuccessor, naming the CA and the audit, when an audit started it with no successor configured, before any call', async () => {
    // Prepare
    const noNew = { rollover: { oldCa: oldCa.id, trigger: 'audit', auditTaskId: 'task-1' }, rolloverId: 'ca-rollover-0123' };
    // Act
    const stopped = verifyNewCa(noNew, deps());
    // Assess
    await expect(stopped).rejects.toMatchObject({ name: 'NoSuccessor', reason: 'CA_NO_SUCCESSOR', message: expect.stringContaining(`The CA ${oldCa.id} is expiring or has expired (Device Defender audit task-1`) });
    await expect(verifyNewCa(noNew, deps())).rejects.toThrow(/next_private_ca_arn/);
    expect(iot.calls()).toHaveLength(0);
    expect(pcaCalls).toEqual([]);
  });

  it('still requires NEW from the CLI', async () => {
    await expect(verifyNewCa({ rollover: { oldCa: oldCa.id, trigger: 'cli' }, rolloverId: 'ca-rollover-0123' }, deps())).rejects.toMatchObject({ name: 'InvalidInput' });
  });

  it('takes OLD as an IoT CA certificate id too', async () => {
    await expect(verifyNewCa(event(oldCa.id), deps())).resolves.toMatchObject({ oldCaCertificateId: oldCa.id, newCaCertificateId: newCa.id });
    expect(await verifyNewCa(event(oldCa.id), deps())).not.toHaveProperty('oldPrivateCaArn');
  });

  it('registers without CA when NEW is registered SNI_ONLY', async () => {
    iot.on(DescribeCACertificateCommand, { certificateId: newCa.id }).resolves({ certificateDescription: { certificateId: newCa.id, status: 'ACTIVE', certificateMode: 'SNI_ONLY' } });
    iot.on(RegisterCertificateWithoutCACommand).callsFake((input: { certificatePem: string }) => {
      const certificateId = certificateIdOf(input.certificatePem);
      return { certificateId, certificateArn: `arn:aws:iot:us-east-1:123456789012:cert/${certificateId}` };
    });
    await verifyNewCa(event(OLD_ARN), deps());
    expect(iot.commandCalls(RegisterCertificateWithoutCACommand)).toHaveLength(1);
    expect(iot.commandCalls(RegisterCertificateCommand)).toHaveLength(0);
  });

  it.each([
    ['NEW is not registered with IoT', () => iot.on(DescribeCACertificateCommand, { certificateId: newCa.id }).rejects(awsErrors.notFound())],
    ['NEW is registered INACTIVE', () => iot.on(DescribeCACertificateCommand, { certificateId: newCa.id }).resolves({ certificateDescription: { status: 'INACTIVE' } })],
  ])('stops with NewCaNotReady when %s, before issuing anything', async (_case, arrange) => {
    arrange();
    await expect(verifyNewCa(event(OLD_ARN), deps())).rejects.toMatchObject({ name: 'NewCaNotReady' });
    expect(pcaCalls).not.toContain('IssueCertificate');
  });

  it('stops with NewCaNotReady when NEW cannot issue, and nothing is left in IoT', async () => {
    await expect(verifyNewCa(event(OLD_ARN), deps(fakePca({ refuseIssue: true })))).rejects.toMatchObject({ name: 'NewCaNotReady', message: expect.stringContaining('DISABLED') });
    expect(iot.commandCalls(RegisterCertificateCommand)).toHaveLength(0);
  });

  it('refuses NEW given as an IoT CA certificate id (it must be the Private CA that signs), and OLD equal to NEW', async () => {
    await expect(verifyNewCa(event(OLD_ARN, newCa.id), deps())).rejects.toMatchObject({ name: 'NewCaNotReady' });
    await expect(verifyNewCa(event(newCa.id), deps())).rejects.toMatchObject({ name: 'OldCaNotFound', message: expect.stringContaining('same CA') });
  });

  it('stops with OldCaNotFound when OLD is not registered with IoT', async () => {
    iot.on(DescribeCACertificateCommand, { certificateId: oldCa.id }).rejects(awsErrors.notFound());
    await expect(verifyNewCa(event(oldCa.id), deps())).rejects.toMatchObject({ name: 'OldCaNotFound' });
  });
});
