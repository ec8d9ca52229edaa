import { CreateCertificateFromCsrCommand, InternalFailureException, IoTClient, RegisterCertificateCommand, RegisterCertificateWithoutCACommand, ResourceAlreadyExistsException } from '@aws-sdk/client-iot';
import { mockClient } from 'aws-sdk-client-mock';
import { parseSignerSettings, type PrivateCaSettings } from '../../../../domain/signer.js';
import { PrivateCaServiceError, type PrivateCaClient, type PrivateCaCommand } from '../../../../functions/aws/acm-pca.js';
import { awsIotSigner, CREATE_ATTEMPTS } from '../../../../functions/core/signer-aws-iot.js';
import { CertificateNotIssued, PrivateCaNotActive, privateCaSigner } from '../../../../functions/core/signer-private-ca.js';
import { createSigner } from '../../../../functions/core/signer-from-settings.js';
import { createdNothing, notAfterOf } from '../../../../functions/core/signer.js';
import { awsErrors, clients } from '../../../fixtures/aws.js';
import { fakeClock } from '../../../fixtures/clock.js';
import { generateKeys, makeCertificate, makeCsr, type Certificate } from '../../../fixtures/pki.js';

const iot = mockClient(IoTClient);

const THING = 'sensor-1';
const CA = 'arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/0f3a8c1e-5b7d-4e2a-9c61-2d8f4b7a6e10';
const ISSUED_ARN = `${CA}/certificate/6e1c2b7f9a0d4e3f8b5a1c2d3e4f5a6b`;
const arn = (id: string): string => `arn:aws:iot:eu-west-1:123456789012:cert/${id}`;
const REQUEST = { rotationId: 'sensor-1-a0123456789abcdef0123', keyFingerprint: 'f'.repeat(64) };

let csr: string;
let device: Certificate;
let caCertificate: Certificate;
let rootCertificate: Certificate;

beforeAll(async () => {
  const key = await generateKeys('ec-p256');
  csr = await makeCsr({ commonName: THING, key });
  device = await makeCertificate(THING, key);
  caCertificate = await makeCertificate('Rotor Issuing CA', await generateKeys('ec-p256'));
  rootCertificate = await makeCertificate('Rotor Root CA', await generateKeys('ec-p256'));
});

beforeEach(() => iot.reset());

/** A scripted Private CA: each operation answers from its own queue (or one fixed answer), every call is kept. */
function fakePca(script: Record<string, (input: Record<string, unknown>) => unknown>): { client: PrivateCaClient; calls: { operation: string; input: Record<string, unknown> }[] } {
  const calls: { operation: string; input: Record<string, unknown> }[] = [];
  const client = {
    send: async (command: PrivateCaCommand<object, unknown>) => {
      const input = command.input as Record<string, unknown>;
      calls.push({ operation: command.operation, input });
      const answer = script[command.operation];
      if (!answer) throw new Error(`unexpected ${command.operation}`);
      return answer(input);
    },
  } as unknown as PrivateCaClient;
  return { client, calls };
}

const pcaError = (name: string, status = 400): PrivateCaServiceError => new PrivateCaServiceError(name, name, status, 'req', 1);

function settings(overrides: Record<string, string> = {}): PrivateCaSettings {
  return parseSignerSettings({ ROTOR_SIGNER: 'private-ca', ROTOR_PCA_ARN: CA, ROTOR_PCA_VALIDITY_DAYS: '90', ...overrides }) as PrivateCaSettings;
}

/** A Private CA that signs after `pending` GetCertificate calls answered RequestInProgressException. */
function signingCa(pending = 0, keyAlgorithm = 'EC_prime256v1', status = 'ACTIVE') {
  let left = pending;
  return fakePca({
    DescribeCertificateAuthority: () => ({ CertificateAuthority: { Arn: CA, Status: status, CertificateAuthorityConfiguration: { KeyAlgorithm: keyAlgorithm } } }),
    IssueCertificate: () => ({ CertificateArn: ISSUED_ARN }),
    GetCertificate: () => {
      if (left-- > 0) throw pcaError('RequestInProgressException');
      return { Certificate: device.pem, CertificateChain: `${caCertificate.pem}\n${rootCertificate.pem}` };
    },
  });
}

describe('the aws-iot signer', () => {
  it('creates the certificate from the CSR, ACTIVE, and reads its notAfter', async () => {
    // Prepare
    iot.on(CreateCertificateFromCsrCommand).resolves({ certificateId: device.id, certificateArn: arn(device.id), certificatePem: device.pem });
    const signer = createSigner({ kind: 'aws-iot' }, { iot: clients.iot(), iotCreate: clients.iot(), clock: fakeClock() });
    // Act
    const signed = await signer.sign({ csrPem: csr, ...REQUEST });
    // Assess
    expect(signed).toEqual({ certificateId: device.id, certificateArn: arn(device.id), certificatePem: device.pem, notAfter: notAfterOf(device.pem) });
    expect(iot.commandCalls(CreateCertificateFromCsrCommand).map((c) => c.args[0].input)).toEqual([{ certificateSigningRequest: csr, setAsActive: true }]);
  });

  it('tries a throttled create again, and marks the last refusal as having created nothing', async () => {
    // Prepare
    iot.on(CreateCertificateFromCsrCommand).rejects(awsErrors.throttled());
    const clock = fakeClock();
    // Act
    const error = await awsIotSigner({ iotCreate: clients.iot(), clock }).sign({ csrPem: csr, ...REQUEST }).catch((e: unknown) => e);
    // Assess
    expect(iot.commandCalls(CreateCertificateFromCsrCommand)).toHaveLength(CREATE_ATTEMPTS);
    expect(clock.sleeps).toHaveLength(CREATE_ATTEMPTS - 1);
    expect(createdNothing(error)).toBe(true);
  });

  it('never repeats a create that failed otherwise: it may have created one', async () => {
    // Prepare
    iot.on(CreateCertificateFromCsrCommand).rejects(new InternalFailureException({ message: 'boom', $metadata: {} }));
    // Act
    const error = await awsIotSigner({ iotCreate: clients.iot(), clock: fakeClock() }).sign({ csrPem: csr, ...REQUEST }).catch((e: unknown) => e);
    // Assess
    expect(iot.commandCalls(CreateCertificateFromCsrCommand)).toHaveLength(1);
    expect(createdNothing(error)).toBe(false);
  });
});

describe('the private-ca signer', () => {
  it('issues with the settings, waits while Private CA signs, registers with the issuing CA (DEFAULT), ACTIVE', async () => {
    // Prepare
    const pca = signingCa(2);
    iot.on(RegisterCertificateCommand).resolves({ certificateId: device.id, certificateArn: arn(device.id) });
    const clock = fakeClock();
    const signer = createSigner(settings(), { iot: clients.iot(), iotCreate: clients.iot(), pca: pca.client, clock });
    // Act
    const signed = await signer.sign({ csrPem: csr, ...REQUEST });
    // Assess
    expect(signed).toEqual({ certificateId: device.id, certificateArn: arn(device.id), certificatePem: device.pem, notAfter: notAfterOf(device.pem) });
    expect(pca.calls.map((c) => c.operation)).toEqual(['DescribeCertificateAuthority', 'IssueCertificate', 'GetCertificate', 'GetCertificate', 'GetCertificate']);
    const issue = pca.calls[1].input;
    expect(issue).toMatchObject({
      CertificateAuthorityArn: CA,
      SigningAlgorithm: 'SHA256WITHECDSA',
      Validity: { Value: 90, Type: 'DAYS' },
      TemplateArn: 'arn:aws:acm-pca:::template/EndEntityCertificate/V1',
    });
    expect(Buffer.from(issue.Csr as Uint8Array).toString('utf8')).toBe(csr);
    expect(issue.IdempotencyToken).toMatch(/^[0-9a-f]{36}$/);
    expect(clock.sleeps).toEqual([200, 400]);
    expect(iot.commandCalls(RegisterCertificateCommand).map((c) => c.args[0].input)).toEqual([
      { certificatePem: device.pem, caCertificatePem: `${caCertificate.pem.trim()}\n`, status: 'ACTIVE' },
    ]);
    expect(iot.commandCalls(CreateCertificateFromCsrCommand)).toHaveLength(0);
  });

  it('registers without the CA for a CA registered in SNI_ONLY mode', async () => {
    // Prepare
    const pca = signingCa();
    iot.on(RegisterCertificateWithoutCACommand).resolves({ certificateId: device.id, certificateArn: arn(device.id) });
    // Act
    const signed = await privateCaSigner(settings({ ROTOR_IOT_CA_REGISTRATION: 'SNI_ONLY' }), { iot: clients.iot(), pca: pca.client, clock: fakeClock() }).sign({ csrPem: csr, ...REQUEST });
    // Assess
    expect(signed.certificateId).toBe(device.id);
    expect(iot.commandCalls(RegisterCertificateWithoutCACommand).map((c) => c.args[0].input)).toEqual([{ certificatePem: device.pem, status: 'ACTIVE' }]);
    expect(iot.commandCalls(RegisterCertificateCommand)).toHaveLength(0);
  });

  it('asks the CA for its key algorithm once per execution environment, and not at all when the algorithm is set', async () => {
    // Prepare
    const derived = signingCa(0, 'RSA_2048');
    const set = signingCa();
    iot.on(RegisterCertificateCommand).resolves({ certificateId: device.id, certificateArn: arn(device.id) });
    const derivedSigner = privateCaSigner(settings(), { iot: clients.iot(), pca: derived.client, clock: fakeClock() });
    const setSigner = privateCaSigner(settings({ ROTOR_PCA_SIGNING_ALGORITHM: 'SHA384WITHECDSA' }), { iot: clients.iot(), pca: set.client, clock: fakeClock() });
    // Act
    await derivedSigner.sign({ csrPem: csr, ...REQUEST });
    await derivedSigner.sign({ csrPem: csr, ...REQUEST, rotationId: 'sensor-1-other' });
    await setSigner.sign({ csrPem: csr, ...REQUEST });
    // Assess
    expect(derived.calls.filter((c) => c.operation === 'DescribeCertificateAuthority')).toHaveLength(1);
    expect(derived.calls.filter((c) => c.operation === 'IssueCertificate').map((c) => c.input.SigningAlgorithm)).toEqual(['SHA256WITHRSA', 'SHA256WITHRSA']);
    expect(set.calls.map((c) => c.operation)).not.toContain('DescribeCertificateAuthority');
    expect(set.calls.find((c) => c.operation === 'IssueCertificate')?.input.SigningAlgorithm).toBe('SHA384WITHECDSA');
  });

  it('sends the same idempotency token when a rotation retries with the same key, so Private CA issues once', async () => {
    // Prepare
    const pca = signingCa();
    iot.on(RegisterCertificateCommand).resolvesOnce({ certificateId: device.id, certificateArn: arn(device.id) }).rejects(
      new ResourceAlreadyExistsException({ message: 'The certificate is already provisioned or registered', resourceId: device.id, resourceArn: arn(device.id), $metadata: { httpStatusCode: 409 } }),
    );
    const signer = privateCaSigner(settings(), { iot: clients.iot(), pca: pca.client, clock: fakeClock() });
    // Act
    const first = await signer.sign({ csrPem: csr, ...REQUEST });
    const retry = await signer.sign({ csrPem: csr, ...REQUEST });
    // Assess: the retry adopts the registration the first attempt made
    const tokens = pca.calls.filter((c) => c.operation === 'IssueCertificate').map((c) => c.input.IdempotencyToken);
    expect(tokens).toHaveLength(2);
    expect(tokens[0]).toBe(tokens[1]);
    expect(retry).toEqual(first);
  });

  it('gives up after a bounded wait for a certificate that is never signed; nothing is in IoT', async () => {
    // Prepare
    const pca = signingCa(Number.POSITIVE_INFINITY);
    const clock = fakeClock();
    // Act
    const error = await privateCaSigner(settings(), { iot: clients.iot(), pca: pca.client, clock }, { initialDelayMs: 100, maxDelayMs: 400, totalMs: 1_000 })
      .sign({ csrPem: csr, ...REQUEST })
      .catch((e: unknown) => e);
    // Assess
    expect(error).toBeInstanceOf(CertificateNotIssued);
    expect(createdNothing(error)).toBe(true);
    expect(clock.sleeps).toEqual([100, 200, 400, 400]);
    expect(iot.commandCalls(RegisterCertificateCommand)).toHaveLength(0);
  });

  it('stops with a clear error when the CA cannot sign (DISABLED)', async () => {
    // Prepare
    const pca = signingCa(0, 'EC_prime256v1', 'DISABLED');
    // Act
    const error = await privateCaSigner(settings(), { iot: clients.iot(), pca: pca.client, clock: fakeClock() }).sign({ csrPem: csr, ...REQUEST }).catch((e: unknown) => e);
    // Assess
    expect(error).toBeInstanceOf(PrivateCaNotActive);
    expect(String(error)).toMatch(/is DISABLED, not ACTIVE/);
    expect(pca.calls.map((c) => c.operation)).toEqual(['DescribeCertificateAuthority']);
  });

  it('marks a refused registration (CA not registered in IoT) as having created nothing; a 5xx may have registered it', async () => {
    // Prepare
    const refused = Object.assign(new Error('the CA certificate is not registered'), { name: 'CertificateValidationException', $metadata: { httpStatusCode: 400 } });
    iot.on(RegisterCertificateCommand).rejectsOnce(refused).rejects(new InternalFailureException({ message: 'boom', $metadata: { httpStatusCode: 500 } }));
    const signer = privateCaSigner(settings(), { iot: clients.iot(), pca: signingCa().client, clock: fakeClock() });
    // Act
    const first = await signer.sign({ csrPem: csr, ...REQUEST }).catch((e: unknown) => e);
    const second = await signer.sign({ csrPem: csr, ...REQUEST }).catch((e: unknown) => e);
    // Assess
    expect(first).toMatchObject({ name: 'CertificateValidationException' });
    expect(createdNothing(first)).toBe(true);
    expect(second).toMatchObject({ name: 'InternalFailureException' });
    expect(createdNothing(second)).toBe(false);
  });
});

describe('the private-ca signer after a CA rollover switched issuing', () => {
  const NEXT = 'arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/1a2b3c4d-5b7d-4e2a-9c61-2d8f4b7a6e10';

  it('signs with the issuing CA read at each signature, falling back to the settings, and asks each CA for its own key', async () => {
    // Prepare
    const pca = signingCa();
    iot.on(RegisterCertificateCommand).resolves({ certificateId: device.id, certificateArn: arn(device.id) });
    let issuing: string | undefined;
    const signer = createSigner(settings(), { iot: clients.iot(), iotCreate: clients.iot(), pca: pca.client, clock: fakeClock(), issuingCaArn: async () => issuing });
    // Act
    await signer.sign({ csrPem: csr, ...REQUEST });
    issuing = NEXT;
    await signer.sign({ csrPem: csr, ...REQUEST });
    // Assess
    const byOperation = (operation: string): unknown[] => pca.calls.filter((c) => c.operation === operation).map((c) => c.input.CertificateAuthorityArn);
    expect(byOperation('IssueCertificate')).toEqual([CA, NEXT]);
    expect(byOperation('GetCertificate')).toEqual([CA, NEXT]);
    expect(byOperation('DescribeCertificateAuthority')).toEqual([CA, NEXT]);
  });
});
