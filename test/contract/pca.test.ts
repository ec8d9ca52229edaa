import 'reflect-metadata';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import {
  ACMPCAClient,
  CreateCertificateAuthorityCommand,
  DescribeCertificateAuthorityCommand,
  GetCertificateAuthorityCertificateCommand,
  GetCertificateAuthorityCsrCommand,
  GetCertificateCommand,
  ImportCertificateAuthorityCertificateCommand,
  IssueCertificateCommand,
  ListCertificateAuthoritiesCommand,
  UpdateCertificateAuthorityCommand,
  waitUntilCertificateIssued,
} from '@aws-sdk/client-acm-pca';
import { ExtendedKeyUsageExtension, X509Certificate as PeculiarCertificate } from '@peculiar/x509';
import { EdgeServer } from '../../local/edge/edge-server';
import { createActiveRootCa, PcaService, PrivateCa } from '../../local/pca';
import { makeCsr } from './iot-harness';

/**
 * The local AWS Private CA driven by @aws-sdk/client-acm-pca through the edge (JSON 1.1,
 * X-Amz-Target ACMPrivateCA.*): a root CA made the Terraform way, IssueCertificate with each
 * Validity type and template, the asynchronous GetCertificate and the SDK's waiter, and the
 * errors AWS answers.
 */
const DAY = 86_400_000;
const text = (pem: string) => new TextEncoder().encode(pem);

describe('local AWS Private CA through the edge', () => {
  let dir: string;
  let edge: EdgeServer;
  let pca: PrivateCa;
  let client: ACMPCAClient;
  let rootArn: string;
  let rootPem: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-pca-'));
    edge = new EdgeServer({ port: 0 });
    const url = await edge.start();
    pca = new PrivateCa({ dataDir: dir, issueLatencyMs: 400 });
    edge.register(new PcaService(pca));
    client = new ACMPCAClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: 'any' }, maxAttempts: 1 });
  });

  afterAll(async () => {
    client.destroy();
    await edge.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes a root CA as Terraform does: create, sign its own CSR as a root, wait, import; then it is ACTIVE', async () => {
    // Act
    const { CertificateAuthorityArn } = await client.send(new CreateCertificateAuthorityCommand({
      CertificateAuthorityType: 'ROOT',
      CertificateAuthorityConfiguration: { KeyAlgorithm: 'EC_prime256v1', SigningAlgorithm: 'SHA256WITHECDSA', Subject: { CommonName: 'Rotor Device CA 1', Organization: 'Example, Inc.' } },
      IdempotencyToken: 'root-1',
    }));
    rootArn = CertificateAuthorityArn as string;
    const pending = await client.send(new DescribeCertificateAuthorityCommand({ CertificateAuthorityArn: rootArn }));
    await expect(client.send(new GetCertificateAuthorityCertificateCommand({ CertificateAuthorityArn: rootArn }))).rejects.toMatchObject({ name: 'InvalidStateException' });
    const { Csr } = await client.send(new GetCertificateAuthorityCsrCommand({ CertificateAuthorityArn: rootArn }));
    const { CertificateArn } = await client.send(new IssueCertificateCommand({
      CertificateAuthorityArn: rootArn,
      Csr: text(Csr as string),
      SigningAlgorithm: 'SHA256WITHECDSA',
      TemplateArn: 'arn:aws:acm-pca:::template/RootCACertificate/V1',
      Validity: { Type: 'YEARS', Value: 10 },
    }));
    await waitUntilCertificateIssued({ client, maxWaitTime: 30 }, { CertificateAuthorityArn: rootArn, CertificateArn });
    const issued = await client.send(new GetCertificateCommand({ CertificateAuthorityArn: rootArn, CertificateArn }));
    await client.send(new ImportCertificateAuthorityCertificateCommand({ CertificateAuthorityArn: rootArn, Certificate: text(issued.Certificate as string) }));
    const active = await client.send(new DescribeCertificateAuthorityCommand({ CertificateAuthorityArn: rootArn }));
    const installed = await client.send(new GetCertificateAuthorityCertificateCommand({ CertificateAuthorityArn: rootArn }));
    const again = await client.send(new CreateCertificateAuthorityCommand({
      CertificateAuthorityType: 'ROOT',
      CertificateAuthorityConfiguration: { KeyAlgorithm: 'EC_prime256v1', SigningAlgorithm: 'SHA256WITHECDSA', Subject: { CommonName: 'Rotor Device CA 1' } },
      IdempotencyToken: 'root-1',
    }));
    // Assess
    expect(rootArn).toMatch(/^arn:aws:acm-pca:us-east-1:000000000000:certificate-authority\/[0-9a-f-]{36}$/);
    expect(pending.CertificateAuthority?.Status).toBe('PENDING_CERTIFICATE');
    expect(Csr).toContain('-----BEGIN CERTIFICATE REQUEST-----');
    expect(CertificateArn).toMatch(new RegExp(`^${rootArn}/certificate/[0-9a-f]{32}$`));
    expect(issued.CertificateChain).toBeUndefined();
    rootPem = installed.Certificate as string;
    const root = new X509Certificate(rootPem);
    expect(root.ca).toBe(true);
    expect(root.verify(root.publicKey)).toBe(true);
    expect(root.subject).toBe('CN=Rotor Device CA 1\nO=Example\\, Inc.');
    expect(active.CertificateAuthority).toMatchObject({ Status: 'ACTIVE', Type: 'ROOT', Serial: root.serialNumber.toLowerCase(), OwnerAccount: '000000000000' });
    expect(active.CertificateAuthority?.NotAfter?.getTime()).toBe(new Date(root.validTo).getTime());
    expect(again.CertificateAuthorityArn).toBe(rootArn);
  });

  it('issues a device certificate from a CSR: in progress at first, then signed by the CA with the asked validity and template', async () => {
    // Prepare
    const { csrPem } = await makeCsr('sensor-1');
    // Act
    const before = Date.now();
    const { CertificateArn } = await client.send(new IssueCertificateCommand({
      CertificateAuthorityArn: rootArn,
      Csr: text(csrPem),
      SigningAlgorithm: 'SHA256WITHECDSA',
      TemplateArn: 'arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1',
      Validity: { Type: 'DAYS', Value: 30 },
    }));
    const early = client.send(new GetCertificateCommand({ CertificateAuthorityArn: rootArn, CertificateArn }));
    await expect(early).rejects.toMatchObject({ name: 'RequestInProgressException' });
    await waitUntilCertificateIssued({ client, maxWaitTime: 30 }, { CertificateAuthorityArn: rootArn, CertificateArn });
    const { Certificate, CertificateChain } = await client.send(new GetCertificateCommand({ CertificateAuthorityArn: rootArn, CertificateArn }));
    // Assess
    const certificate = new X509Certificate(Certificate as string);
    expect(certificate.verify(new X509Certificate(rootPem).publicKey)).toBe(true);
    expect(certificate.checkIssued(new X509Certificate(rootPem))).toBe(true);
    expect(certificate.subject).toBe('CN=sensor-1');
    expect(certificate.ca).toBe(false);
    expect(Math.abs(new Date(certificate.validTo).getTime() - (before + 30 * DAY))).toBeLessThan(5_000);
    expect(Math.abs(new Date(certificate.validFrom).getTime() - (before - 3_600_000))).toBeLessThan(5_000);
    const eku = new PeculiarCertificate(Certificate as string).getExtension(ExtendedKeyUsageExtension);
    expect(eku?.usages).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(CertificateChain?.trim()).toBe(rootPem.trim());
    expect(CertificateArn?.endsWith(`/certificate/${certificate.serialNumber.toLowerCase()}`)).toBe(true);
  });

  it.each([
    [{ Type: 'MONTHS' as const, Value: 2 }, () => { const d = new Date(); d.setUTCMonth(d.getUTCMonth() + 2); return d.getTime(); }],
    [{ Type: 'YEARS' as const, Value: 1 }, () => { const d = new Date(); d.setUTCMonth(d.getUTCMonth() + 12); return d.getTime(); }],
    [{ Type: 'END_DATE' as const, Value: 301231235959 }, () => Date.UTC(2030, 11, 31, 23, 59, 59)],
    [{ Type: 'END_DATE' as const, Value: 20310630120000 }, () => Date.UTC(2031, 5, 30, 12, 0, 0)],
    [{ Type: 'ABSOLUTE' as const, Value: 1924992000 }, () => 1924992000 * 1000],
  ])('honours Validity %j', async (validity, expected) => {
    // Prepare
    const { csrPem } = await makeCsr('validity');
    // Act
    const { CertificateArn } = await client.send(new IssueCertificateCommand({ CertificateAuthorityArn: rootArn, Csr: text(csrPem), SigningAlgorithm: 'SHA256WITHECDSA', Validity: validity }));
    await waitUntilCertificateIssued({ client, maxWaitTime: 30 }, { CertificateAuthorityArn: rootArn, CertificateArn });
    const { Certificate } = await client.send(new GetCertificateCommand({ CertificateAuthorityArn: rootArn, CertificateArn }));
    // Assess
    expect(Math.abs(new Date(new X509Certificate(Certificate as string).validTo).getTime() - expected())).toBeLessThan(5_000);
  });

  it('sets notBefore from ValidityNotBefore, and the default template is EndEntityCertificate/V1 (server and client auth)', async () => {
    const { csrPem } = await makeCsr('not-before');
    const { CertificateArn } = await client.send(new IssueCertificateCommand({
      CertificateAuthorityArn: rootArn, Csr: text(csrPem), SigningAlgorithm: 'SHA384WITHECDSA',
      Validity: { Type: 'DAYS', Value: 10 }, ValidityNotBefore: { Type: 'ABSOLUTE', Value: Math.floor(Date.now() / 1000) - 86_400 },
    }));
    await waitUntilCertificateIssued({ client, maxWaitTime: 30 }, { CertificateAuthorityArn: rootArn, CertificateArn });
    const { Certificate } = await client.send(new GetCertificateCommand({ CertificateAuthorityArn: rootArn, CertificateArn }));
    const certificate = new PeculiarCertificate(Certificate as string);
    expect(Math.abs(certificate.notBefore.getTime() - (Date.now() - DAY))).toBeLessThan(10_000);
    expect(certificate.getExtension(ExtendedKeyUsageExtension)?.usages).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(certificate.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-384' } });
  });

  it('answers a repeated idempotency token with the same certificate, and a new token with a new one', async () => {
    const { csrPem } = await makeCsr('idempotent');
    const issue = (token: string) => client.send(new IssueCertificateCommand({ CertificateAuthorityArn: rootArn, Csr: text(csrPem), SigningAlgorithm: 'SHA256WITHECDSA', Validity: { Type: 'DAYS', Value: 5 }, IdempotencyToken: token }));
    const first = await issue('rotation-1');
    const second = await issue('rotation-1');
    const third = await issue('rotation-2');
    expect(second.CertificateArn).toBe(first.CertificateArn);
    expect(third.CertificateArn).not.toBe(first.CertificateArn);
  });

  it('refuses what AWS refuses, with its error names', async () => {
    // Prepare
    const { csrPem } = await makeCsr('refused');
    const issue = (input: Partial<ConstructorParameters<typeof IssueCertificateCommand>[0]>) =>
      client.send(new IssueCertificateCommand({ CertificateAuthorityArn: rootArn, Csr: text(csrPem), SigningAlgorithm: 'SHA256WITHECDSA', Validity: { Type: 'DAYS', Value: 5 }, ...input }));
    const missing = rootArn.replace(/[0-9a-f]{12}$/, '000000000000');
    const { CertificateAuthorityArn: pendingArn } = await client.send(new CreateCertificateAuthorityCommand({
      CertificateAuthorityType: 'ROOT',
      CertificateAuthorityConfiguration: { KeyAlgorithm: 'EC_prime256v1', SigningAlgorithm: 'SHA256WITHECDSA', Subject: { CommonName: 'pending' } },
    }));
    // Act + Assess
    await expect(issue({ Csr: text('not a csr') })).rejects.toMatchObject({ name: 'MalformedCSRException' });
    await expect(issue({ SigningAlgorithm: 'SHA256WITHRSA' })).rejects.toMatchObject({ name: 'InvalidArgsException' });
    // AWS's SM2 algorithm (domain/signer.ts accepts it for a real CA): the local CA names what it can sign with instead.
    // The SDK version this test drives predates SM2 in its types, hence the cast.
    await expect(issue({ SigningAlgorithm: 'SM3WITHSM2' as never })).rejects.toMatchObject({ name: 'InvalidArgsException', message: expect.stringContaining('SHA256WITHECDSA') });
    await expect(issue({ TemplateArn: 'arn:aws:acm-pca:::template/CodeSigningCertificate/V1' })).rejects.toMatchObject({ name: 'InvalidArgsException', message: expect.stringContaining('not emulated') });
    await expect(issue({ Validity: { Type: 'YEARS', Value: 50 } })).rejects.toMatchObject({ name: 'InvalidArgsException', message: expect.stringContaining('after the CA certificate') });
    await expect(issue({ Validity: { Type: 'END_DATE', Value: 2512 } })).rejects.toMatchObject({ name: 'InvalidArgsException' });
    await expect(issue({ TemplateArn: 'arn:aws:acm-pca:::template/RootCACertificate/V1' })).rejects.toMatchObject({ name: 'InvalidArgsException' });
    await expect(issue({ CertificateAuthorityArn: missing })).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await expect(issue({ CertificateAuthorityArn: 'arn:aws:acm-pca:us-east-1:000000000000:nope' })).rejects.toMatchObject({ name: 'InvalidArnException' });
    await expect(issue({ CertificateAuthorityArn: pendingArn })).rejects.toMatchObject({ name: 'InvalidStateException' });
    await expect(client.send(new ImportCertificateAuthorityCertificateCommand({ CertificateAuthorityArn: pendingArn, Certificate: text(rootPem) }))).rejects.toMatchObject({ name: 'CertificateMismatchException' });
    await expect(client.send(new GetCertificateCommand({ CertificateAuthorityArn: rootArn, CertificateArn: `${rootArn}/certificate/0123` }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await expect(client.send(new CreateCertificateAuthorityCommand({
      CertificateAuthorityType: 'ROOT',
      CertificateAuthorityConfiguration: { KeyAlgorithm: 'RSA_2048', SigningAlgorithm: 'SHA256WITHECDSA', Subject: { CommonName: 'mismatch' } },
    }))).rejects.toMatchObject({ name: 'InvalidArgsException' });
  });

  it('disables and re-enables a CA; a DISABLED CA issues nothing', async () => {
    const { csrPem } = await makeCsr('disabled');
    await client.send(new UpdateCertificateAuthorityCommand({ CertificateAuthorityArn: rootArn, Status: 'DISABLED' }));
    const refused = client.send(new IssueCertificateCommand({ CertificateAuthorityArn: rootArn, Csr: text(csrPem), SigningAlgorithm: 'SHA256WITHECDSA', Validity: { Type: 'DAYS', Value: 5 } }));
    await expect(refused).rejects.toMatchObject({ name: 'InvalidStateException' });
    await client.send(new UpdateCertificateAuthorityCommand({ CertificateAuthorityArn: rootArn, Status: 'ACTIVE' }));
    const listed = await client.send(new ListCertificateAuthoritiesCommand({}));
    expect(listed.CertificateAuthorities?.find((ca) => ca.Arn === rootArn)?.Status).toBe('ACTIVE');
  });

  it('keeps its CAs (keys included, 0600) in the data dir: a restarted Private CA issues from the same root', async () => {
    // Prepare
    const { csrPem } = await makeCsr('after-restart');
    const restarted = new PrivateCa({ dataDir: dir, issueLatencyMs: 0 });
    // Act
    const arn = await restarted.issueCertificate({ caArn: rootArn, csrPem, signingAlgorithm: 'SHA256WITHECDSA', validity: { Type: 'DAYS', Value: 3 } });
    const { certificatePem } = restarted.getCertificate(rootArn, arn);
    // Assess
    expect(new X509Certificate(certificatePem).verify(new X509Certificate(rootPem).publicKey)).toBe(true);
    expect(statSync(join(dir, 'private-ca.json')).mode & 0o777).toBe(0o600);
  });

  it('is counted per operation by the edge, and a throttling fault answers as AWS throttles (ThrottlingException, which the SDK retries as throttling)', async () => {
    // Prepare
    const { csrPem } = await makeCsr('throttled');
    const before = edge.calls()['acm-pca:IssueCertificate'] ?? 0;
    edge.faults.throttle('acm-pca', 'IssueCertificate', 1);
    const issue = () => client.send(new IssueCertificateCommand({ CertificateAuthorityArn: rootArn, Csr: text(csrPem), SigningAlgorithm: 'SHA256WITHECDSA', Validity: { Type: 'DAYS', Value: 5 } }));
    // Act + Assess
    const throttled = await issue().then(() => undefined, (error: unknown) => error as Error & { $metadata?: { httpStatusCode?: number } });
    expect(throttled).toMatchObject({ name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
    await expect(issue()).resolves.toMatchObject({ CertificateArn: expect.stringContaining(`${rootArn}/certificate/`) });
    expect(edge.calls()['acm-pca:IssueCertificate']).toBe(before + 2);
  });

  it('createActiveRootCa makes an ACTIVE RSA root in one call, and is idempotent by token', async () => {
    const arn = await createActiveRootCa(pca, { commonName: 'Rotor RSA CA', keyAlgorithm: 'RSA_2048', idempotencyToken: 'rsa-root' });
    const again = await createActiveRootCa(pca, { commonName: 'Rotor RSA CA', keyAlgorithm: 'RSA_2048', idempotencyToken: 'rsa-root' });
    const { CertificateAuthority } = await client.send(new DescribeCertificateAuthorityCommand({ CertificateAuthorityArn: arn }));
    expect(again).toBe(arn);
    expect(CertificateAuthority).toMatchObject({ Status: 'ACTIVE', CertificateAuthorityConfiguration: { KeyAlgorithm: 'RSA_2048', SigningAlgorithm: 'SHA256WITHRSA' } });
    const { csrPem } = await makeCsr('rsa-signed');
    const { CertificateArn } = await client.send(new IssueCertificateCommand({ CertificateAuthorityArn: arn, Csr: text(csrPem), SigningAlgorithm: 'SHA512WITHRSA', Validity: { Type: 'DAYS', Value: 5 } }));
    await waitUntilCertificateIssued({ client, maxWaitTime: 30 }, { CertificateAuthorityArn: arn, CertificateArn });
    const { Certificate, CertificateChain } = await client.send(new GetCertificateCommand({ CertificateAuthorityArn: arn, CertificateArn }));
    expect(new X509Certificate(Certificate as string).verify(new X509Certificate(CertificateChain as string).publicKey)).toBe(true);
  });
});
