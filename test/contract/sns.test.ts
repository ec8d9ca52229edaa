import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateTopicCommand,
  GetTopicAttributesCommand,
  InvalidParameterException,
  ListSubscriptionsByTopicCommand,
  ListTopicsCommand,
  NotFoundException,
  PublishCommand,
  SNSClient,
  SetTopicAttributesCommand,
  SubscribeCommand,
  UnsubscribeCommand,
} from '@aws-sdk/client-sns';
import { EdgeServer } from '../../local/edge/edge-server';
import { LambdaService } from '../../local/lambda/lambda-service';
import { SnsService } from '../../local/sns/sns-service';

/**
 * Local SNS driven by the real SDK v3 client (AWS Query protocol) through the edge: topics,
 * subscriptions, Publish validation, and delivery to a real local Lambda that records the
 * event it was given.
 */
const RECORDER = `
  import { appendFileSync } from 'node:fs';
  export const handler = async (event) => { appendFileSync(process.env.EVENTS_FILE, JSON.stringify(event) + '\\n'); return null; };`;

describe('local SNS through the edge', () => {
  let dir: string;
  let edge: EdgeServer;
  let lambda: LambdaService;
  let sns: SnsService;
  let client: SNSClient;
  let eventsFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-sns-'));
    eventsFile = join(dir, 'events.jsonl');
    writeFileSync(join(dir, 'recorder.mjs'), RECORDER);
    edge = new EdgeServer({ port: 0 });
    const url = await edge.start();
    lambda = new LambdaService({ endpointUrl: url, output: () => undefined });
    lambda.deploy({ name: 'recorder', bundlePath: join(dir, 'recorder.mjs'), timeoutSeconds: 5, environment: { EVENTS_FILE: eventsFile } });
    sns = new SnsService({ invoker: lambda, dataDir: join(dir, 'data') });
    edge.register(lambda).register(sns);
    client = new SNSClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: 'any' } });
  });

  afterAll(async () => {
    client.destroy();
    await lambda.stop();
    await edge.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates, lists and describes topics; CreateTopic is idempotent', async () => {
    const { TopicArn } = await client.send(new CreateTopicCommand({ Name: 'rotor-audit' }));
    expect(TopicArn).toBe('arn:aws:sns:us-east-1:000000000000:rotor-audit');
    expect((await client.send(new CreateTopicCommand({ Name: 'rotor-audit' }))).TopicArn).toBe(TopicArn);
    await client.send(new SetTopicAttributesCommand({ TopicArn, AttributeName: 'DisplayName', AttributeValue: 'Rotor audit' }));
    const { Attributes } = await client.send(new GetTopicAttributesCommand({ TopicArn }));
    expect(Attributes).toMatchObject({ TopicArn, DisplayName: 'Rotor audit', Owner: '000000000000' });
    const { Topics } = await client.send(new ListTopicsCommand({}));
    expect(Topics?.map((t) => t.TopicArn)).toContain(TopicArn);
  });

  it('delivers a published message to a lambda subscriber with the AWS SNS event shape', async () => {
    // Prepare
    const { TopicArn } = await client.send(new CreateTopicCommand({ Name: 'rotor-escalations' }));
    const { SubscriptionArn } = await client.send(new SubscribeCommand({ TopicArn, Protocol: 'lambda', Endpoint: lambda.functionArn('recorder'), ReturnSubscriptionArn: true }));
    await client.send(new SubscribeCommand({ TopicArn, Protocol: 'email', Endpoint: 'ops@example.com' }));
    const listed = await client.send(new ListSubscriptionsByTopicCommand({ TopicArn }));
    expect(listed.Subscriptions?.map((s) => s.Protocol).sort()).toEqual(['email', 'lambda']);

    // Act
    const { MessageId } = await client.send(
      new PublishCommand({
        TopicArn,
        Subject: 'Rotation failed: dev-7',
        Message: JSON.stringify({ thingName: 'dev-7', reason: 'CSR_TIMEOUT' }),
        MessageAttributes: { thingName: { DataType: 'String', StringValue: 'dev-7' }, attempts: { DataType: 'Number', StringValue: '3' } },
      }),
    );
    await sns.settled();
    await lambda.settled();

    // Assess
    const events = readFileSync(eventsFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { Records: Record<string, unknown>[] });
    expect(events).toHaveLength(1);
    expect(events[0].Records).toHaveLength(1);
    expect(events[0].Records[0]).toEqual({
      EventSource: 'aws:sns',
      EventVersion: '1.0',
      EventSubscriptionArn: SubscriptionArn,
      Sns: {
        Type: 'Notification',
        MessageId,
        TopicArn,
        Subject: 'Rotation failed: dev-7',
        Message: '{"thingName":"dev-7","reason":"CSR_TIMEOUT"}',
        Timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        SignatureVersion: '1',
        Signature: expect.any(String),
        SigningCertUrl: expect.stringContaining('https://sns.us-east-1.amazonaws.com/'),
        UnsubscribeUrl: expect.stringContaining('Action=Unsubscribe'),
        MessageAttributes: { thingName: { Type: 'String', Value: 'dev-7' }, attempts: { Type: 'Number', Value: '3' } },
      },
    });
    expect(sns.deliveries().map((d) => [d.protocol, d.outcome]).sort()).toEqual([['email', 'recorded'], ['lambda', 'invoked']]);
    // Kept for people and tests: in memory and in DATA_DIR/sns-messages.jsonl.
    expect(sns.messages(TopicArn).map((m) => m.messageId)).toEqual([MessageId]);
    const file = join(dir, 'data', 'sns-messages.jsonl');
    expect(existsSync(file)).toBe(true);
    expect(readFileSync(file, 'utf8')).toContain(MessageId as string);

    await client.send(new UnsubscribeCommand({ SubscriptionArn }));
    expect((await client.send(new ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions?.map((s) => s.Protocol)).toEqual(['email']);
  });

  it('publishes for in-process callers (SnsPublisher) with plain attributes', async () => {
    const topicArn = sns.createTopic('in-process');
    const { messageId } = await sns.publish({ topicArn, message: 'hello', messageAttributes: { step: 'Request CSR', attempts: 2 } });
    expect(sns.messages(topicArn)).toEqual([
      expect.objectContaining({ messageId, message: 'hello', messageAttributes: { step: { DataType: 'String', StringValue: 'Request CSR' }, attempts: { DataType: 'Number', StringValue: '2' } } }),
    ]);
  });

  it('refuses bad input with the Query error shape and loses nothing', async () => {
    const { TopicArn } = await client.send(new CreateTopicCommand({ Name: 'strict' }));
    const before = sns.messages().length;
    await expect(client.send(new PublishCommand({ TopicArn, Message: 'x', Subject: 's'.repeat(101) }))).rejects.toBeInstanceOf(InvalidParameterException);
    await expect(client.send(new PublishCommand({ TopicArn, Message: '' }))).rejects.toThrow(/Empty message/);
    await expect(client.send(new PublishCommand({ TopicArn, Message: 'x', MessageAttributes: { n: { DataType: 'Number', StringValue: 'abc' } } }))).rejects.toBeInstanceOf(InvalidParameterException);
    await expect(client.send(new PublishCommand({ TopicArn: 'arn:aws:sns:us-east-1:000000000000:missing', Message: 'x' }))).rejects.toBeInstanceOf(NotFoundException);
    await expect(client.send(new SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: 'arn:aws:sqs:us-east-1:000000000000:q' }))).rejects.toBeInstanceOf(InvalidParameterException);
    expect(sns.messages().length).toBe(before);
    expect(edge.calls()['sns:Publish']).toBeGreaterThanOrEqual(5);
  });
});
