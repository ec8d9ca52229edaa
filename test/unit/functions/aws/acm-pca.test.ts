import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { IoTClient } from '@aws-sdk/client-iot';
import { SignatureV4 } from '@smithy/signature-v4';
import { DescribeCertificateAuthorityCommand, IssueCertificateCommand, NodeSha256, PrivateCaClient, PrivateCaServiceError } from '../../../../functions/aws/acm-pca.js';

/** A real HTTP server standing in for Private CA: it records each request and answers from a script. */
interface Seen {
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

let server: Server;
let endpoint: string;
let seen: Seen[];
let answers: { status: number; body: unknown; headers?: Record<string, string> }[];

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      seen.push({ headers: req.headers, body: JSON.parse(text) as Record<string, unknown> });
      const answer = answers.shift() ?? { status: 500, body: { __type: 'InternalFailure', message: 'no scripted answer' } };
      res.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': 'req-1', ...answer.headers });
      res.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  seen = [];
  answers = [];
});

const CA = 'arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/0f3a8c1e-5b7d-4e2a-9c61-2d8f4b7a6e10';
const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' };

function client(maxAttempts = 3): PrivateCaClient {
  return new PrivateCaClient({ endpoint, region: 'eu-west-1', credentials, maxAttempts, sleep: async () => undefined });
}

describe('the Private CA client', () => {
  it('sends a SigV4-signed JSON 1.1 request with the operation as target and the CSR as base64', async () => {
    // Prepare
    answers.push({ status: 200, body: { CertificateArn: `${CA}/certificate/abc` } });
    // Act
    const out = await client().send(
      new IssueCertificateCommand({
        CertificateAuthorityArn: CA,
        Csr: Buffer.from('-----BEGIN CERTIFICATE REQUEST-----'),
        SigningAlgorithm: 'SHA256WITHECDSA',
        Validity: { Value: 90, Type: 'DAYS' },
        IdempotencyToken: 'token-1',
      }),
    );
    // Assess
    expect(out).toEqual({ CertificateArn: `${CA}/certificate/abc` });
    const [request] = seen;
    expect(request.headers['x-amz-target']).toBe('ACMPrivateCA.IssueCertificate');
    expect(request.headers['content-type']).toBe('application/x-amz-json-1.1');
    expect(request.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/acm-pca\/aws4_request, SignedHeaders=[a-z0-9;-]*x-amz-target[a-z0-9;-]*, Signature=[0-9a-f]{64}$/);
    expect(request.body).toEqual({
      CertificateAuthorityArn: CA,
      Csr: Buffer.from('-----BEGIN CERTIFICATE REQUEST-----').toString('base64'),
      SigningAlgorithm: 'SHA256WITHECDSA',
      Validity: { Value: 90, Type: 'DAYS' },
      IdempotencyToken: 'token-1',
    });
  });

  it('turns an error answer into an error named as the SDK names it, with its status', async () => {
    // Prepare
    answers.push({ status: 400, body: { __type: 'com.amazonaws.acmpca#RequestInProgressException', message: 'still signing' } });
    // Act
    const error = await client().send(new DescribeCertificateAuthorityCommand({ CertificateAuthorityArn: CA })).catch((e: unknown) => e);
    // Assess
    expect(error).toBeInstanceOf(PrivateCaServiceError);
    expect(error).toMatchObject({ name: 'RequestInProgressException', message: 'still signing', $fault: 'client', $metadata: { httpStatusCode: 400, requestId: 'req-1', attempts: 1 } });
    expect(seen).toHaveLength(1);
  });

  it('retries throttling and 5xx answers, then succeeds', async () => {
    // Prepare
    answers.push(
      { status: 400, body: { __type: 'ThrottlingException', message: 'slow down' } },
      { status: 503, body: { __type: 'ServiceUnavailable', message: 'busy' } },
      { status: 200, body: { CertificateAuthority: { Status: 'ACTIVE' } } },
    );
    // Act
    const out = await client(3).send(new DescribeCertificateAuthorityCommand({ CertificateAuthorityArn: CA }));
    // Assess
    expect(out.CertificateAuthority?.Status).toBe('ACTIVE');
    expect(seen).toHaveLength(3);
  });

  it('gives up after its attempts, with the last error', async () => {
    // Prepare
    answers.push(
      { status: 400, body: { __type: 'ThrottlingException', message: 'slow down' } },
      { status: 400, body: { __type: 'ThrottlingException', message: 'still too fast' } },
    );
    // Act
    const error = await client(2).send(new DescribeCertificateAuthorityCommand({ CertificateAuthorityArn: CA })).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: 'ThrottlingException', message: 'still too fast', $metadata: { attempts: 2 } });
  });

  it('reads the error name from x-amzn-ErrorType when the body has none', async () => {
    // Prepare
    answers.push({ status: 404, body: { message: 'no such CA' }, headers: { 'x-amzn-errortype': 'ResourceNotFoundException:http://internal' } });
    // Act
    const error = await client().send(new DescribeCertificateAuthorityCommand({ CertificateAuthorityArn: CA })).catch((e: unknown) => e);
    // Assess
    expect(error).toMatchObject({ name: 'ResourceNotFoundException', $fault: 'client' });
  });
});

describe('its SHA-256 for the SigV4 signer', () => {
  it('signs exactly as the SDK clients\' own hash does', async () => {
    // Prepare: the same request, date and credentials, signed with each hash
    const sdkSha256 = new IoTClient({ region: 'eu-west-1', credentials }).config.sha256;
    const request = {
      method: 'POST',
      protocol: 'https:',
      hostname: 'acm-pca.eu-west-1.amazonaws.com',
      path: '/',
      query: {},
      headers: { host: 'acm-pca.eu-west-1.amazonaws.com', 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'ACMPrivateCA.GetCertificate' },
      body: JSON.stringify({ CertificateAuthorityArn: CA, CertificateArn: `${CA}/certificate/abc` }),
    };
    const sign = (sha256: ConstructorParameters<typeof SignatureV4>[0]['sha256']) =>
      new SignatureV4({ service: 'acm-pca', region: 'eu-west-1', credentials, sha256 }).sign({ ...request, headers: { ...request.headers } }, { signingDate: new Date('2026-03-01T12:00:00Z') });
    // Act
    const [ours, sdk] = await Promise.all([sign(NodeSha256), sign(sdkSha256)]);
    // Assess
    expect(ours.headers.authorization).toMatch(/Signature=[0-9a-f]{64}$/);
    expect(ours.headers.authorization).toBe(sdk.headers.authorization);
    expect(ours.headers['x-amz-content-sha256'] ?? '').toBe(sdk.headers['x-amz-content-sha256'] ?? '');
  });
});
