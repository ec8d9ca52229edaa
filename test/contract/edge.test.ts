import { ListThingsCommand, IoTClient } from '@aws-sdk/client-iot';
import { ListTopicsCommand, SNSClient } from '@aws-sdk/client-sns';
import { EdgeServer } from '../../local/edge/edge-server';
import { SnsService } from '../../local/sns/sns-service';
import type { LambdaInvoker } from '../../local/types';

/**
 * The edge endpoint: routing by the SigV4 signing name with any credentials, AWS-shaped
 * refusals for services and operations nobody serves (in the caller's protocol), the unsigned
 * local admin routes and the per-operation call counts.
 */
const noLambda: LambdaInvoker = {
  invoke: async () => ({ ok: false, error: { errorType: 'ResourceNotFoundException', errorMessage: 'no functions in this test' } }),
};

const SCOPE = (service: string): string =>
  `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/eu-west-1/${service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`;

describe('edge endpoint', () => {
  let edge: EdgeServer;
  let url: string;

  beforeAll(async () => {
    edge = new EdgeServer({ port: 0 });
    edge.register(new SnsService({ invoker: noLambda }));
    url = await edge.start();
  });

  afterAll(async () => {
    await edge.stop();
  });

  it('routes by signing name, accepting any credentials, and counts calls per operation', async () => {
    const client = new SNSClient({ endpoint: url, region: 'eu-west-1', credentials: { accessKeyId: 'whatever', secretAccessKey: 'really-anything' } });
    try {
      await client.send(new ListTopicsCommand({}));
      await client.send(new ListTopicsCommand({}));
    } finally {
      client.destroy();
    }
    expect(edge.calls()['sns:ListTopics']).toBe(2);
    expect(edge.totalCalls('sns')).toBe(2);
  });

  it('refuses a service nobody serves with an AWS-shaped error naming it (REST-JSON, through the SDK)', async () => {
    const iot = new IoTClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 1 });
    try {
      await expect(iot.send(new ListThingsCommand({}))).rejects.toMatchObject({
        name: 'UnknownServiceException',
        message: expect.stringContaining("does not emulate the service 'iot'"),
      });
    } finally {
      iot.destroy();
    }
  });

  it('answers in the JSON protocol for X-Amz-Target requests and in Query XML for Action= requests', async () => {
    const json = await fetch(url, {
      method: 'POST',
      headers: { authorization: SCOPE('sqs'), 'x-amz-target': 'AmazonSQS.CreateQueue', 'content-type': 'application/x-amz-json-1.0' },
      body: '{"QueueName":"q"}',
    });
    expect(json.status).toBe(400);
    expect(json.headers.get('x-amzn-errortype')).toBe('UnknownServiceException');
    expect(await json.json()).toEqual({ __type: 'UnknownServiceException', message: expect.stringContaining("'sqs'") });

    const query = await fetch(url, {
      method: 'POST',
      headers: { authorization: SCOPE('sts'), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=GetCallerIdentity&Version=2011-06-15',
    });
    const xml = await query.text();
    expect(query.status).toBe(400);
    expect(xml).toContain('<Code>UnknownServiceException</Code>');
    expect(xml).toContain("'sts'");
  });

  it('refuses an operation a service does not implement with its own error shape', async () => {
    const answer = await fetch(url, {
      method: 'POST',
      headers: { authorization: SCOPE('sns'), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=CreatePlatformApplication&Version=2010-03-31&Name=x',
    });
    expect(answer.status).toBe(400);
    const xml = await answer.text();
    expect(xml).toContain('<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">');
    expect(xml).toContain('<Code>InvalidAction</Code>');
  });

  it('finds the signing name of a presigned URL in X-Amz-Credential', async () => {
    const answer = await fetch(`${url}/?Action=ListTopics&X-Amz-Credential=${encodeURIComponent('AKID/20250101/us-east-1/sns/aws4_request')}`, { method: 'GET' });
    expect(answer.status).toBe(200);
    expect(await answer.text()).toContain('<ListTopicsResponse');
  });

  it('refuses an unsigned request, and serves its health unsigned', async () => {
    const unsigned = await fetch(url, { method: 'POST', body: 'Action=ListTopics', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(unsigned.status).toBe(403);
    expect(await unsigned.text()).toContain('<Code>MissingAuthenticationToken</Code>');
    const health = await fetch(`${url}/_rotor/health`);
    expect(await health.json()).toEqual({ status: 'running', services: ['sns'] });
  });

  it('reports a port in use as one clear error', async () => {
    const second = new EdgeServer({ port: edge.port });
    await expect(second.start()).rejects.toThrow(`port ${edge.port} on 127.0.0.1 is in use`);
  });
});
