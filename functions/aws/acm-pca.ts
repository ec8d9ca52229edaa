import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, HttpRequest } from '@smithy/types';
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { DEFAULT_MAX_ATTEMPTS, type ClientOptions } from './retry.js';
import type { OnThrottle } from './throttling.js';

/**
 * AWS Private CA (service `acm-pca`, JSON 1.1 protocol, target prefix ACMPrivateCA): the three
 * operations the private-ca signer uses, and nothing else.
 *
 * Why not @aws-sdk/client-acm-pca: the npm registry this project builds from has it only at
 * 3.523.0, whose dependency tree (smithy v2, client-sts) is a second copy of the SDK; that
 * would push issue-certificate's zip past its 200 KB budget. This client signs with the SigV4
 * signer and the credential chain the other SDK clients already bundle, takes its endpoint as
 * they do (AWS_ENDPOINT_URL_ACM_PCA, then AWS_ENDPOINT_URL, then the regional endpoint), and
 * retries throttling and 5xx answers with exponential backoff and full jitter. Its commands
 * carry `input` like the SDK's, and its errors carry `name`, `$fault` and `$metadata`, so the
 * rest of Rotor (errors.ts, the retry classification) treats them as SDK errors. Swap it for
 * the SDK client once a matching version can be installed: the signer only uses `send`.
 */

export interface IssueCertificateInput {
  CertificateAuthorityArn: string;
  /** The CSR, PEM text as bytes (the JSON carries it base64, as a blob). */
  Csr: Uint8Array;
  SigningAlgorithm: string;
  Validity: { Value: number; Type: 'DAYS' | 'MONTHS' | 'YEARS' | 'END_DATE' | 'ABSOLUTE' };
  TemplateArn?: string;
  IdempotencyToken?: string;
}
export interface IssueCertificateOutput {
  CertificateArn?: string;
}

export interface GetCertificateInput {
  CertificateAuthorityArn: string;
  CertificateArn: string;
}
export interface GetCertificateOutput {
  Certificate?: string;
  /** The issuing CA's certificate first, then up to the root, PEM. */
  CertificateChain?: string;
}

export interface DescribeCertificateAuthorityInput {
  CertificateAuthorityArn: string;
}
export interface DescribeCertificateAuthorityOutput {
  CertificateAuthority?: {
    Arn?: string;
    Status?: string;
    Type?: string;
    CertificateAuthorityConfiguration?: { KeyAlgorithm?: string; SigningAlgorithm?: string };
  };
}

/** One operation: its name (the X-Amz-Target suffix), its input, and the output type it answers with. */
export abstract class PrivateCaCommand<Input extends object, Output> {
  abstract readonly operation: string;
  /** The output type, for `send`'s inference only. */
  declare readonly output: Output;
  constructor(readonly input: Input) {}
}

export class IssueCertificateCommand extends PrivateCaCommand<IssueCertificateInput, IssueCertificateOutput> {
  readonly operation = 'IssueCertificate';
}
export class GetCertificateCommand extends PrivateCaCommand<GetCertificateInput, GetCertificateOutput> {
  readonly operation = 'GetCertificate';
}
export class DescribeCertificateAuthorityCommand extends PrivateCaCommand<DescribeCertificateAuthorityInput, DescribeCertificateAuthorityOutput> {
  readonly operation = 'DescribeCertificateAuthority';
}

export interface GetCertificateAuthorityCertificateInput {
  CertificateAuthorityArn: string;
}
export interface GetCertificateAuthorityCertificateOutput {
  /** The CA's own certificate, PEM. */
  Certificate?: string;
  CertificateChain?: string;
}
/** The CA rollover maps a Private CA to its IoT CA certificate by this certificate (functions/ca-verify-new.ts). */
export class GetCertificateAuthorityCertificateCommand extends PrivateCaCommand<GetCertificateAuthorityCertificateInput, GetCertificateAuthorityCertificateOutput> {
  readonly operation = 'GetCertificateAuthorityCertificate';
}

/** An error answer from Private CA, shaped like the SDK's service exceptions. */
export class PrivateCaServiceError extends Error {
  readonly $fault: 'client' | 'server';
  readonly $metadata: { httpStatusCode: number; requestId?: string; attempts: number };
  constructor(name: string, message: string, status: number, requestId: string | undefined, attempts: number) {
    super(message);
    this.name = name;
    this.$fault = status >= 500 ? 'server' : 'client';
    this.$metadata = { httpStatusCode: status, requestId, attempts };
  }
}

const TARGET_PREFIX = 'ACMPrivateCA';
const THROTTLING = ['ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'Throttling'];

type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytes(data: SourceData): string | Uint8Array {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** SHA-256 as the SigV4 signer wants it (the SDK's hash-node, on node:crypto). */
export class NodeSha256 {
  private readonly hash: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

export interface PrivateCaClientOptions extends ClientOptions {
  endpoint?: string;
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Injected in tests; global fetch otherwise. */
  fetch?: typeof fetch;
  /** Pause between attempts; injected in tests. */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Told of every throttled attempt as `acm-pca:Operation`, as observeThrottles tells of the SDK
   * clients' (functions/core/pacing.ts PacedRuntime.onThrottle: the AIMD cut of that bucket).
   */
  onThrottle?: OnThrottle;
}

function regionalEndpoint(region: string): string {
  return `https://acm-pca.${region}.${region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com'}`;
}

/** The error name of a JSON 1.1 error answer: `__type` or x-amzn-ErrorType, namespace and suffix removed. */
function errorNameOf(body: Record<string, unknown>, header: string | null): string {
  const raw = (typeof body.__type === 'string' ? body.__type : header) ?? 'UnknownError';
  return raw.split(':')[0].split('#').pop() || 'UnknownError';
}

export class PrivateCaClient {
  readonly region: string;
  readonly endpoint: URL;
  readonly maxAttempts: number;
  private readonly signer: SignatureV4;
  private readonly fetch: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly onThrottle?: OnThrottle;

  constructor(options: PrivateCaClientOptions = {}) {
    this.region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
    this.endpoint = new URL(options.endpoint ?? process.env.AWS_ENDPOINT_URL_ACM_PCA ?? process.env.AWS_ENDPOINT_URL ?? regionalEndpoint(this.region));
    this.maxAttempts = options.maxAttempts ?? (Number(process.env.AWS_MAX_ATTEMPTS) || DEFAULT_MAX_ATTEMPTS);
    this.signer = new SignatureV4({ service: 'acm-pca', region: this.region, credentials: options.credentials ?? defaultProvider(), sha256: NodeSha256 });
    this.fetch = options.fetch ?? fetch;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.onThrottle = options.onThrottle;
  }

  async send<Input extends object, Output>(command: PrivateCaCommand<Input, Output>): Promise<Output> {
    const body = JSON.stringify(toWire(command.input));
    for (let attempt = 1; ; attempt++) {
      let error: PrivateCaServiceError | Error;
      try {
        return (await this.attempt(command.operation, body, attempt)) as Output;
      } catch (caught) {
        error = caught as Error;
      }
      if (throttled(error)) await this.observe(command.operation);
      if (attempt >= this.maxAttempts || !retryable(error)) throw error;
      // Full jitter over an exponential ceiling (100 ms × 2^n, at most 20 s), as the SDK's standard mode.
      await this.sleep(Math.random() * Math.min(20_000, 100 * 2 ** attempt));
    }
  }

  private async observe(operation: string): Promise<void> {
    try {
      await this.onThrottle?.(`acm-pca:${operation}`);
    } catch {
      // Observing must never replace the error the caller is owed.
    }
  }

  private async attempt(operation: string, body: string, attempt: number): Promise<unknown> {
    const path = this.endpoint.pathname || '/';
    const request: HttpRequest = {
      method: 'POST',
      protocol: this.endpoint.protocol,
      hostname: this.endpoint.hostname,
      ...(this.endpoint.port ? { port: Number(this.endpoint.port) } : {}),
      path,
      query: {},
      headers: {
        host: this.endpoint.host,
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': `${TARGET_PREFIX}.${operation}`,
      },
      body,
    };
    const signed = await this.signer.sign(request);
    const response = await this.fetch(new URL(path, this.endpoint), { method: 'POST', headers: signed.headers, body });
    const text = await response.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      if (response.ok) throw new Error(`${operation}: Private CA answered with a body that is not JSON`);
    }
    if (response.ok) return parsed;
    const message = typeof parsed.message === 'string' ? parsed.message : typeof parsed.Message === 'string' ? parsed.Message : `${operation} failed with HTTP ${response.status}`;
    throw new PrivateCaServiceError(errorNameOf(parsed, response.headers.get('x-amzn-errortype')), message, response.status, response.headers.get('x-amzn-requestid') ?? undefined, attempt);
  }
}

/** Blobs travel base64 in JSON 1.1 (done before stringify: a Buffer's toJSON would win over a replacer). */
function toWire(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(toWire);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, toWire(inner)]));
  return value;
}

/**
 * Over the rate quota. Not LimitExceededException, which Private CA answers for a count quota
 * (certificates per CA): no retry and no pacing cut would help that.
 */
function throttled(error: Error): boolean {
  return error instanceof PrivateCaServiceError && (error.$metadata.httpStatusCode === 429 || THROTTLING.includes(error.name));
}

/** Throttling, a 5xx answer, or no answer at all (network): worth another attempt. */
function retryable(error: Error): boolean {
  if (error instanceof PrivateCaServiceError) return error.$fault === 'server' || throttled(error);
  return error.name === 'TypeError' || /ECONNRESET|ECONNREFUSED|ETIMEDOUT|socket hang up|fetch failed/i.test(error.message);
}

/** The Private CA client the private-ca signer uses, with Rotor's shared retry settings. */
export function privateCaClient(options: PrivateCaClientOptions = {}): PrivateCaClient {
  return new PrivateCaClient(options);
}
