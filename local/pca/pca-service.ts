import { AwsError, type EdgeRequest, type EdgeResponse, type LocalService } from '../types.js';
import type { CaRecord, PrivateCa } from './private-ca.js';

/**
 * AWS Private CA's API (service `acm-pca`, AWS JSON 1.1, X-Amz-Target `ACMPrivateCA.Operation`)
 * over the local PrivateCa, so @aws-sdk/client-acm-pca and the AWS CLI talk to it unchanged.
 * Blobs (Csr, Certificate, CertificateChain) travel base64 in requests; timestamps are epoch
 * seconds; errors are `{"__type": code, "message"}`.
 */
export const PCA_TARGET_PREFIX = 'ACMPrivateCA';

type Json = Record<string, unknown>;
type Operation = (body: Json) => Promise<Json | void> | Json | void;

function epochSeconds(iso: string | undefined): number | undefined {
  return iso === undefined ? undefined : new Date(iso).getTime() / 1000;
}

function requiredArn(body: Json, name: string): string {
  const value = body[name];
  if (typeof value !== 'string' || value === '') throw new AwsError('InvalidArnException', `${name} is required`);
  return value;
}

/** A blob member: base64 in the JSON body, holding PEM text. */
function blobText(body: Json, name: string, required: true): string;
function blobText(body: Json, name: string, required: false): string | undefined;
function blobText(body: Json, name: string, required: boolean): string | undefined {
  const value = body[name];
  if (value === undefined || value === null) {
    if (required) throw new AwsError('InvalidArgsException', `${name} is required`);
    return undefined;
  }
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new AwsError('InvalidArgsException', `${name} must be a base64 blob`);
  return Buffer.from(value, 'base64').toString('utf8');
}

function describeJson(ca: CaRecord): Json {
  return {
    Arn: ca.arn,
    OwnerAccount: ca.arn.split(':')[4],
    CreatedAt: epochSeconds(ca.createdAt),
    LastStateChangeAt: epochSeconds(ca.lastStateChangeAt),
    Type: ca.type,
    Serial: ca.serial,
    Status: ca.status,
    NotBefore: epochSeconds(ca.notBefore),
    NotAfter: epochSeconds(ca.notAfter),
    CertificateAuthorityConfiguration: ca.configuration,
    RevocationConfiguration: { CrlConfiguration: { Enabled: false }, OcspConfiguration: { Enabled: false } },
    KeyStorageSecurityStandard: ca.keyStorageSecurityStandard,
    UsageMode: ca.usageMode,
  };
}

export class PcaService implements LocalService {
  readonly signingNames = ['acm-pca'] as const;
  private readonly operations: Record<string, Operation>;

  constructor(private readonly pca: PrivateCa) {
    this.operations = {
      CreateCertificateAuthority: async (body) => ({ CertificateAuthorityArn: await pca.createCertificateAuthority(body) }),
      DescribeCertificateAuthority: (body) => ({ CertificateAuthority: describeJson(pca.describe(requiredArn(body, 'CertificateAuthorityArn'))) }),
      ListCertificateAuthorities: (body) => {
        const max = body.MaxResults === undefined ? 1000 : body.MaxResults;
        if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > 1000) throw new AwsError('InvalidArgsException', 'MaxResults must be from 1 to 1000');
        const all = pca.list();
        const start = typeof body.NextToken === 'string' ? Number(Buffer.from(body.NextToken, 'base64').toString('utf8').replace(/^offset:/, '')) : 0;
        if (!Number.isInteger(start) || start < 0) throw new AwsError('InvalidNextTokenException', 'the NextToken is not valid');
        const items = all.slice(start, start + max);
        return {
          CertificateAuthorities: items.map(describeJson),
          NextToken: start + max < all.length ? Buffer.from(`offset:${start + max}`).toString('base64') : undefined,
        };
      },
      GetCertificateAuthorityCsr: (body) => ({ Csr: pca.csrOf(requiredArn(body, 'CertificateAuthorityArn')) }),
      ImportCertificateAuthorityCertificate: async (body) => {
        await pca.importCertificate(requiredArn(body, 'CertificateAuthorityArn'), blobText(body, 'Certificate', true), blobText(body, 'CertificateChain', false));
      },
      UpdateCertificateAuthority: (body) => {
        if (body.RevocationConfiguration !== undefined) throw new AwsError('InvalidArgsException', 'RevocationConfiguration is not emulated by the local Private CA (no CRL or OCSP)');
        if (body.Status !== undefined) pca.updateStatus(requiredArn(body, 'CertificateAuthorityArn'), body.Status);
      },
      GetCertificateAuthorityCertificate: (body) => {
        const { certificatePem, chainPem } = pca.caCertificate(requiredArn(body, 'CertificateAuthorityArn'));
        return { Certificate: certificatePem.trim(), CertificateChain: chainPem?.trim() };
      },
      IssueCertificate: async (body) => {
        if (body.ApiPassthrough !== undefined) throw new AwsError('InvalidArgsException', 'ApiPassthrough is not emulated by the local Private CA');
        const certificateArn = await pca.issueCertificate({
          caArn: requiredArn(body, 'CertificateAuthorityArn'),
          csrPem: blobText(body, 'Csr', true),
          signingAlgorithm: body.SigningAlgorithm,
          templateArn: body.TemplateArn,
          validity: body.Validity as never,
          validityNotBefore: body.ValidityNotBefore as never,
          idempotencyToken: body.IdempotencyToken,
        });
        return { CertificateArn: certificateArn };
      },
      GetCertificate: (body) => {
        const { certificatePem, chainPem } = pca.getCertificate(requiredArn(body, 'CertificateAuthorityArn'), requiredArn(body, 'CertificateArn'));
        return { Certificate: certificatePem.trim(), CertificateChain: chainPem?.trim() };
      },
    };
  }

  operationOf(request: EdgeRequest): string | undefined {
    const target = request.headers['x-amz-target'] ?? request.target;
    return target?.startsWith(`${PCA_TARGET_PREFIX}.`) ? target.slice(PCA_TARGET_PREFIX.length + 1) : undefined;
  }

  async handle(request: EdgeRequest): Promise<EdgeResponse> {
    try {
      if (request.method.toUpperCase() !== 'POST') throw new AwsError('UnknownOperationException', 'AWS Private CA takes POST requests');
      const name = this.operationOf(request);
      const operation = name ? this.operations[name] : undefined;
      if (!name || !operation) throw new AwsError('UnknownOperationException', `the local Private CA does not emulate ${name ?? 'this request'} (it serves ${Object.keys(this.operations).join(', ')})`);
      let body: Json = {};
      if (request.body.length > 0) {
        try {
          body = JSON.parse(request.body.toString('utf8')) as Json;
        } catch {
          throw new AwsError('SerializationException', 'the request body is not JSON');
        }
        if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AwsError('SerializationException', 'the request body must be a JSON object');
      }
      const result = (await operation(body)) ?? {};
      return { status: 200, headers: { 'content-type': 'application/x-amz-json-1.1' }, body: JSON.stringify(result) };
    } catch (error) {
      const aws = error instanceof AwsError ? error : new AwsError('InternalFailure', error instanceof Error ? error.message : String(error), 500);
      return {
        status: aws.status,
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': aws.code },
        body: JSON.stringify({ __type: aws.code, message: aws.message }),
      };
    }
  }
}
