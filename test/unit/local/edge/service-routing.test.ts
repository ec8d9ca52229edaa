import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EdgeServer } from '../../../../local/edge/edge-server';
import { serviceOfQuery, serviceOfTarget, servicesSignedAs, signingNamesOf } from '../../../../local/edge/service-identity';
import { DeviceDefenderAudit } from '../../../../local/iot/audit';
import { LocalCa } from '../../../../local/iot/ca';
import { IotControlPlane } from '../../../../local/iot/control-plane';
import { IotRegistry } from '../../../../local/iot/registry';
import { RulesEngine } from '../../../../local/iot/rules';
import { SnsService } from '../../../../local/sns/sns-service';
import type { LambdaInvoker, SnsPublisher } from '../../../../local/types';

/**
 * The edge routes a request by what it is (X-Amz-Target, Query version, REST path) and accepts
 * every signing name a released client uses for that service: Debian's awscli 2.9 and boto3
 * 1.26 sign IoT as `execute-api`. Real IoT control plane and SNS behind a real edge; a plain
 * HTTP server stands in for DynamoDB Local as the proxied upstream.
 */
const noLambda: LambdaInvoker = {
  invoke: async () => ({ ok: false, error: { errorType: 'ResourceNotFoundException', errorMessage: 'no functions in this test' } }),
};
const noSns: SnsPublisher = { publish: async () => ({ messageId: 'unused' }) };
const SCOPE = (service: string): string =>
  `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/${service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`;

describe('service identity', () => {
  it('names the service of a JSON-protocol target and of a Query version', () => {
    expect(serviceOfTarget('DynamoDB_20120810.GetItem')).toBe('dynamodb');
    expect(serviceOfTarget('AWSStepFunctions.ListExecutions')).toBe('states');
    expect(serviceOfTarget('AmazonSQS.CreateQueue')).toBe('sqs');
    expect(serviceOfTarget('AWSCognitoIdentityProviderService.ListUsers')).toBeUndefined();
    expect(serviceOfTarget(undefined)).toBeUndefined();
    expect(serviceOfQuery(new URLSearchParams('Action=Publish&Version=2010-03-31'))).toBe('sns');
    expect(serviceOfQuery(new URLSearchParams('Action=GetCallerIdentity&Version=2011-06-15'))).toBeUndefined();
    expect(serviceOfQuery(new URLSearchParams('Version=2010-03-31'))).toBeUndefined();
  });

  it('knows the signing names released clients use, and what a shared one may mean', () => {
    expect(signingNamesOf('iot')).toEqual(['iot', 'execute-api']);
    expect(servicesSignedAs('execute-api')).toEqual(['iot']);
    expect(servicesSignedAs('iot')).toEqual(['iot']);
    expect(signingNamesOf('something-else')).toEqual(['something-else']);
  });
});

describe('edge routing by service', () => {
  let edge: EdgeServer;
  let url: string;
  let upstream: Server;
  const proxied: string[] = [];

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      proxied.push(String(req.headers['x-amz-target']));
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      res.end('{"TableNames":[]}');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const ca = await LocalCa.create();
    const registry = new IotRegistry({ ca });
    const rules = new RulesEngine({ invoker: noLambda, region: 'us-east-1', account: '000000000000' });
    const audit = new DeviceDefenderAudit({ registry, sns: noSns });
    edge = new EdgeServer({ port: 0 });
    edge.register(new IotControlPlane({ registry, audit, rules, dataEndpoint: () => '127.0.0.1:0' }));
    edge.register(new SnsService({ invoker: noLambda }));
    edge.register({ signingNames: ['dynamodb'], upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` });
    url = await edge.start();
  });

  afterAll(async () => {
    await edge.stop();
    await new Promise((resolve) => upstream.close(resolve));
  });

  beforeEach(() => edge.resetCalls());

  it('serves an IoT request signed execute-api (botocore before May 2023) and counts it as iot', async () => {
    const answer = await fetch(`${url}/certificates`, { headers: { authorization: SCOPE('execute-api') } });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ certificates: [] });
    expect(edge.calls()).toEqual({ 'iot:ListCertificates': 1 });
  });

  it('refuses an execute-api request that no emulated service knows (API Gateway management), naming it', async () => {
    const answer = await fetch(`${url}/@connections/abc`, { method: 'POST', headers: { authorization: SCOPE('execute-api') }, body: 'hi' });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('x-amzn-errortype')).toBe('UnknownServiceException');
    expect(((await answer.json()) as { message: string }).message).toContain("'execute-api'");
  });

  it('proxies a DynamoDB request by its X-Amz-Target', async () => {
    const answer = await fetch(url, {
      method: 'POST',
      headers: { authorization: SCOPE('dynamodb'), 'x-amz-target': 'DynamoDB_20120810.ListTables', 'content-type': 'application/x-amz-json-1.0' },
      body: '{}',
    });
    expect(answer.status).toBe(200);
    expect(proxied.at(-1)).toBe('DynamoDB_20120810.ListTables');
    expect(edge.calls()).toEqual({ 'dynamodb:ListTables': 1 });
  });

  it('answers a request signed for another service as AWS does: the scope must name the right service', async () => {
    const proxiedBefore = proxied.length;
    const query = await fetch(url, {
      method: 'POST',
      headers: { authorization: SCOPE('dynamodb'), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=ListTopics&Version=2010-03-31',
    });
    expect(query.status).toBe(403);
    const xml = await query.text();
    expect(xml).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect(xml).toContain("Credential should be scoped to correct service: 'sns'");

    const json = await fetch(url, {
      method: 'POST',
      headers: { authorization: SCOPE('sns'), 'x-amz-target': 'DynamoDB_20120810.ListTables', 'content-type': 'application/x-amz-json-1.0' },
      body: '{}',
    });
    expect(json.status).toBe(403);
    expect(await json.json()).toEqual({ __type: 'InvalidSignatureException', message: expect.stringContaining("scoped to correct service: 'dynamodb'") });
    expect(proxied).toHaveLength(proxiedBefore);
  });
});
