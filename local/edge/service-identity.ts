/**
 * Which emulated service a request is for. A SigV4 credential scope names a signing name, but
 * released official clients do not all use the same one for a service: the IoT control plane
 * was signed `execute-api` by every SDK and CLI until its model changed to `iot` in May 2023,
 * so Debian 12's awscli 2.9 and python3-boto3 1.26 (botocore 1.29), the AWS SDK for
 * JavaScript v2 and early v3 releases still send `execute-api` — also the signing name of API
 * Gateway's management API and of Amazon Connect's participant service. So the edge reads what a
 * request really is from the request itself, where its protocol says it:
 *
 * - JSON protocol: the X-Amz-Target prefix (`DynamoDB_20120810.GetItem`);
 * - Query protocol: the API version of the form body (`Action=Publish&Version=2010-03-31`);
 * - REST protocols: the path, as the services that may answer to the signing name route it.
 *
 * and then accepts the request if its signing name is one that a released client uses for that
 * service, as AWS accepts both names for IoT.
 */

export interface ServiceIdentity {
  /** The name the edge routes and counts the service by: its signing name in current SDKs. */
  readonly service: string;
  /** Every signing name a released official SDK or CLI puts in the credential scope. */
  readonly signingNames: readonly string[];
  /** JSON protocol: the X-Amz-Target prefix, before the dot. */
  readonly targetPrefix?: string;
  /** Query protocol: the Version parameter. */
  readonly queryVersion?: string;
}

/** The services the local AWS emulates, and how their requests are told apart. */
export const SERVICE_IDENTITIES: readonly ServiceIdentity[] = [
  { service: 'dynamodb', signingNames: ['dynamodb'], targetPrefix: 'DynamoDB_20120810' },
  { service: 'states', signingNames: ['states'], targetPrefix: 'AWSStepFunctions' },
  { service: 'sns', signingNames: ['sns'], queryVersion: '2010-03-31' },
  // JSON protocol only (botocore 1.31+ and the JS SDK v3); the Query protocol of older clients is not emulated.
  { service: 'sqs', signingNames: ['sqs'], targetPrefix: 'AmazonSQS' },
  { service: 'lambda', signingNames: ['lambda'] },
  // `execute-api` before May 2023 (see above); AWS accepts both.
  { service: 'iot', signingNames: ['iot', 'execute-api'] },
  // `iotdevicegateway`: the AWS IoT Device SDKs sign the data endpoint with it.
  { service: 'iotdata', signingNames: ['iotdata', 'iotdevicegateway'] },
  // AWS Private CA (local/pca/): JSON 1.1.
  { service: 'acm-pca', signingNames: ['acm-pca'], targetPrefix: 'ACMPrivateCA' },
];

const BY_TARGET = new Map(SERVICE_IDENTITIES.filter((s) => s.targetPrefix).map((s) => [s.targetPrefix as string, s.service]));
const BY_QUERY_VERSION = new Map(SERVICE_IDENTITIES.filter((s) => s.queryVersion).map((s) => [s.queryVersion as string, s.service]));

/** The service an X-Amz-Target header names, if the edge knows its prefix. */
export function serviceOfTarget(target: string | undefined): string | undefined {
  if (!target) return undefined;
  const dot = target.lastIndexOf('.');
  return dot > 0 ? BY_TARGET.get(target.slice(0, dot)) : undefined;
}

/** The service a Query-protocol request (form body with Action and Version) is for. */
export function serviceOfQuery(params: URLSearchParams): string | undefined {
  const version = params.get('Version');
  return params.has('Action') && version ? BY_QUERY_VERSION.get(version) : undefined;
}

/** The signing names a released client uses for the service, its own name first. */
export function signingNamesOf(service: string): readonly string[] {
  return SERVICE_IDENTITIES.find((s) => s.service === service)?.signingNames ?? [service];
}

/** The emulated services a released client may mean by a signing name (its own service first). */
export function servicesSignedAs(signingName: string): string[] {
  const named = SERVICE_IDENTITIES.filter((s) => s.signingNames.includes(signingName)).map((s) => s.service);
  return named.includes(signingName) ? [signingName, ...named.filter((s) => s !== signingName)] : named;
}
