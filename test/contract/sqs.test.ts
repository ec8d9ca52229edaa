import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListQueuesCommand,
  PurgeQueueCommand,
  QueueDoesNotExist,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { EdgeServer } from '../../local/edge/edge-server';
import { SqsService } from '../../local/sqs/sqs-service';

/**
 * The local SQS driven by the real SDK v3 client (AWS JSON protocol, with its MD5 checks of
 * message bodies) through the edge: the subset the dead-letter queues and `rotor dlq` use.
 */
describe('local SQS through the edge', () => {
  let dir: string;
  let edge: EdgeServer;
  let sqs: SqsService;
  let client: SQSClient;
  let url: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-sqs-'));
    edge = new EdgeServer({ port: 0 });
    url = await edge.start();
    sqs = new SqsService({ endpointUrl: url, dataDir: dir });
    edge.register(sqs);
    client = new SQSClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: 'any' }, maxAttempts: 1 });
  });

  afterAll(async () => {
    client.destroy();
    await edge.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a queue idempotently, finds it by name and lists it; its ARN is in its attributes', async () => {
    // Act
    const created = await client.send(new CreateQueueCommand({ QueueName: 'rotor-device-message-dlq', Attributes: { SqsManagedSseEnabled: 'true' } }));
    const again = await client.send(new CreateQueueCommand({ QueueName: 'rotor-device-message-dlq', Attributes: { SqsManagedSseEnabled: 'true' } }));
    const found = await client.send(new GetQueueUrlCommand({ QueueName: 'rotor-device-message-dlq' }));
    const listed = await client.send(new ListQueuesCommand({ QueueNamePrefix: 'rotor-' }));
    const { Attributes } = await client.send(new GetQueueAttributesCommand({ QueueUrl: created.QueueUrl, AttributeNames: ['QueueArn', 'SqsManagedSseEnabled'] }));
    // Assess
    expect(created.QueueUrl).toBe(`${url}/000000000000/rotor-device-message-dlq`);
    expect(again.QueueUrl).toBe(created.QueueUrl);
    expect(found.QueueUrl).toBe(created.QueueUrl);
    expect(listed.QueueUrls).toEqual([created.QueueUrl]);
    expect(Attributes).toEqual({ QueueArn: 'arn:aws:sqs:us-east-1:000000000000:rotor-device-message-dlq', SqsManagedSseEnabled: 'true' });
    await expect(client.send(new CreateQueueCommand({ QueueName: 'rotor-device-message-dlq', Attributes: { SqsManagedSseEnabled: 'false' } }))).rejects.toMatchObject({ name: 'QueueNameExists' });
  });

  it('answers QueueDoesNotExist for an unknown queue, in the shape the SDK turns into its error class', async () => {
    await expect(client.send(new GetQueueUrlCommand({ QueueName: 'nope' }))).rejects.toBeInstanceOf(QueueDoesNotExist);
    await expect(client.send(new SendMessageCommand({ QueueUrl: `${url}/000000000000/nope`, MessageBody: 'x' }))).rejects.toBeInstanceOf(QueueDoesNotExist);
  });

  it('sends, receives with a visibility timeout, and deletes only by the current receipt handle', async () => {
    // Prepare
    const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: 'visibility' }));
    const sent = await client.send(new SendMessageCommand({ QueueUrl, MessageBody: '{"hello":"dlq"}' }));
    // Act: received once, hidden while in flight, visible again when released.
    const first = await client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 60 }));
    const hidden = await client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
    const counts = await client.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }));
    await client.send(new ChangeMessageVisibilityCommand({ QueueUrl, ReceiptHandle: first.Messages?.[0].ReceiptHandle, VisibilityTimeout: 0 }));
    const second = await client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 60 }));
    // Assess
    expect(first.Messages).toEqual([expect.objectContaining({ MessageId: sent.MessageId, Body: '{"hello":"dlq"}' })]);
    expect(first.Messages?.[0].Attributes?.ApproximateReceiveCount).toBe('1');
    expect(hidden.Messages ?? []).toEqual([]);
    expect(counts.Attributes).toEqual({ ApproximateNumberOfMessages: '0', ApproximateNumberOfMessagesNotVisible: '1' });
    expect(second.Messages?.[0].Attributes?.ApproximateReceiveCount).toBe('2');
    // A stale handle deletes nothing; the current one deletes the message.
    await client.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: first.Messages?.[0].ReceiptHandle }));
    expect(sqs.peek('visibility')).toHaveLength(1);
    await client.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: second.Messages?.[0].ReceiptHandle }));
    expect(sqs.peek('visibility')).toEqual([]);
    await expect(client.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: 'other-queue/x/y' }))).rejects.toMatchObject({ name: 'ReceiptHandleIsInvalid' });
  });

  it('moves a message received maxReceiveCount times to the RedrivePolicy\'s dead-letter queue, body and all', async () => {
    // Prepare
    const dlq = await client.send(new CreateQueueCommand({ QueueName: 'redrive-dlq' }));
    const target = sqs.queueArn('redrive-dlq');
    const source = await client.send(new CreateQueueCommand({ QueueName: 'redrive-source', Attributes: { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: target, maxReceiveCount: 2 }) } }));
    await client.send(new SendMessageCommand({ QueueUrl: source.QueueUrl, MessageBody: '{"clientId":"dev-1"}' }));

    // Act: two receives that never delete it, then a third.
    const receive = () => client.send(new ReceiveMessageCommand({ QueueUrl: source.QueueUrl, VisibilityTimeout: 0, MaxNumberOfMessages: 10 }));
    const first = await receive();
    const second = await receive();
    const third = await receive();

    // Assess
    expect(first.Messages).toHaveLength(1);
    expect(second.Messages).toHaveLength(1);
    expect(third.Messages ?? []).toEqual([]);
    const moved = await client.send(new ReceiveMessageCommand({ QueueUrl: dlq.QueueUrl, MaxNumberOfMessages: 10 }));
    expect(moved.Messages?.map((m) => [m.MessageId, m.Body])).toEqual([[first.Messages?.[0].MessageId, '{"clientId":"dev-1"}']]);
  });

  it('refuses a RedrivePolicy it could not act on', async () => {
    const create = (policy: string) => client.send(new CreateQueueCommand({ QueueName: 'bad-redrive', Attributes: { RedrivePolicy: policy } }));
    await expect(create('{')).rejects.toMatchObject({ name: 'InvalidParameterValue' });
    await expect(create(JSON.stringify({ deadLetterTargetArn: 'not-an-arn', maxReceiveCount: 3 }))).rejects.toMatchObject({ name: 'InvalidParameterValue' });
    await expect(create(JSON.stringify({ deadLetterTargetArn: sqs.queueArn('redrive-dlq'), maxReceiveCount: 0 }))).rejects.toMatchObject({ name: 'InvalidParameterValue' });
  });

  it('refuses an out-of-range parameter instead of guessing', async () => {
    const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: 'params' }));
    await expect(client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 11 }))).rejects.toMatchObject({ name: 'InvalidParameterValue' });
    await expect(client.send(new CreateQueueCommand({ QueueName: 'bad name!' }))).rejects.toMatchObject({ name: 'InvalidParameterValue' });
  });

  it('keeps its messages in the data dir across a restart, and purges on request', async () => {
    // Prepare
    const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: 'durable' }));
    await client.send(new SendMessageCommand({ QueueUrl, MessageBody: 'kept' }));
    // Act: a new service over the same data dir.
    const restarted = new SqsService({ endpointUrl: url, dataDir: dir });
    // Assess
    expect(restarted.peek('durable').map((m) => m.body)).toEqual(['kept']);
    await client.send(new PurgeQueueCommand({ QueueUrl }));
    expect(sqs.peek('durable')).toEqual([]);
  });
});
