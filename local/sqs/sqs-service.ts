import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger, type LocalLogger } from '../edge/logger.js';
import type { EdgeRequest, EdgeResponse, LocalService } from '../types.js';
import { AwsError, LOCAL_ACCOUNT, LOCAL_REGION } from '../types.js';

/**
 * Local SQS: the subset Rotor's queues need — the dead-letter queues and the device-message
 * queue with its redrive policy (CreateQueue, GetQueueUrl, ListQueues,
 * GetQueueAttributes, SendMessage, ReceiveMessage, DeleteMessage, ChangeMessageVisibility,
 * PurgeQueue, DeleteQueue), in the AWS JSON protocol that SDK v3 and the AWS CLI v2 speak
 * (X-Amz-Target: AmazonSQS.Operation). Lambda's on-failure destinations and the IoT rules' SQS
 * action reach it in-process (SqsSender, SqsUrlSender), and so does the event source mapping
 * (receiveBatch, deleteReceived: local/sqs/event-source-mapping.ts). With a data dir, the queues are written to DATA_DIR/sqs-queues.json after every
 * change, so a dead letter outlives a restart of the runtime as it outlives one of AWS.
 */
export interface SqsSender {
  /** Sends to a queue named by ARN (Lambda destinations name queues by ARN). */
  sendToArn(queueArn: string, body: string): { messageId: string };
  hasQueue(queueArn: string): boolean;
}

/** Sends to a queue named by URL, as an IoT rule's SQS action does. */
export interface SqsUrlSender {
  sendToUrl(queueUrl: string, body: string): { messageId: string };
}

/** One message handed to an in-process consumer (the event source mapping). */
export interface ReceivedMessage {
  messageId: string;
  receiptHandle: string;
  body: string;
  md5: string;
  sentAt: number;
  receiveCount: number;
  firstReceivedAt: number;
}

export interface SqsServiceOptions {
  /** The edge URL: queue URLs are https-less local URLs below it, as the SDK uses them as endpoints. */
  endpointUrl: string;
  region?: string;
  accountId?: string;
  dataDir?: string;
  logger?: LocalLogger;
  now?: () => number;
}

interface StoredMessage {
  messageId: string;
  body: string;
  md5: string;
  sentAt: number;
  receiveCount: number;
  firstReceivedAt?: number;
  /** Hidden from receivers until then (epoch ms). */
  visibleAt: number;
  receiptHandle?: string;
}

interface Queue {
  name: string;
  arn: string;
  createdAt: number;
  attributes: Record<string, string>;
  messages: StoredMessage[];
}

const TARGET_PREFIX = 'AmazonSQS.';
const QUEUE_NAME = /^[A-Za-z0-9_-]{1,80}$/;
const MAX_BODY_BYTES = 256 * 1024;
const DEFAULT_VISIBILITY_TIMEOUT = 30;
const MAX_VISIBILITY_TIMEOUT = 12 * 60 * 60;
/** Attributes CreateQueue accepts and keeps (the others AWS knows are refused, not ignored). */
const SETTABLE = new Set(['VisibilityTimeout', 'MessageRetentionPeriod', 'SqsManagedSseEnabled', 'KmsMasterKeyId', 'DelaySeconds', 'ReceiveMessageWaitTimeSeconds', 'MaximumMessageSize', 'Policy', 'RedrivePolicy']);
const STATE_FILE = 'sqs-queues.json';

/** The JSON protocol's error codes, with the legacy Query code the CLI and older SDKs read from x-amzn-query-error. */
const QUERY_CODES: Record<string, string> = {
  QueueDoesNotExist: 'AWS.SimpleQueueService.NonExistentQueue',
  ReceiptHandleIsInvalid: 'ReceiptHandleIsInvalid',
  InvalidParameterValue: 'InvalidParameterValue',
  InvalidAttributeName: 'InvalidAttributeName',
  MissingParameter: 'MissingParameter',
  InvalidAction: 'InvalidAction',
};

class SqsError extends AwsError {}

function md5(text: string): string {
  return createHash('md5').update(text, 'utf8').digest('hex');
}

function str(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (typeof value !== 'string' || value === '') throw new SqsError('MissingParameter', `The request must contain the parameter ${name}.`);
  return value;
}

function integer(body: Record<string, unknown>, name: string, min: number, max: number, fallback: number): number {
  const value = body[name];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new SqsError('InvalidParameterValue', `Value ${JSON.stringify(value)} for parameter ${name} is invalid. Reason: must be an integer from ${min} to ${max}.`);
  }
  return value;
}

/** RedrivePolicy, as CreateQueue takes it (a JSON string attribute). */
interface RedrivePolicy {
  deadLetterTargetArn: string;
  maxReceiveCount: number;
}

function redrivePolicyOf(queue: Queue): RedrivePolicy | undefined {
  const text = queue.attributes.RedrivePolicy;
  if (!text) return undefined;
  const policy = JSON.parse(text) as { deadLetterTargetArn?: unknown; maxReceiveCount?: unknown };
  return { deadLetterTargetArn: String(policy.deadLetterTargetArn), maxReceiveCount: Number(policy.maxReceiveCount) };
}

/** CreateQueue's check of a RedrivePolicy: AWS refuses one it cannot act on. */
function checkRedrivePolicy(text: string): void {
  let policy: { deadLetterTargetArn?: unknown; maxReceiveCount?: unknown };
  try {
    policy = JSON.parse(text) as typeof policy;
  } catch {
    throw new SqsError('InvalidParameterValue', 'Value for parameter RedrivePolicy is invalid. Reason: Redrive policy is not a valid JSON map.');
  }
  const count = Number(policy.maxReceiveCount);
  if (typeof policy.deadLetterTargetArn !== 'string' || !/^arn:aws:sqs:[^:]+:\d{12}:[A-Za-z0-9_-]{1,80}$/.test(policy.deadLetterTargetArn)) {
    throw new SqsError('InvalidParameterValue', 'Value for parameter RedrivePolicy is invalid. Reason: Invalid value for deadLetterTargetArn.');
  }
  if (!Number.isInteger(count) || count < 1 || count > 1000) {
    throw new SqsError('InvalidParameterValue', 'Value for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: must be an integer from 1 to 1000.');
  }
}

export class SqsService implements LocalService, SqsSender, SqsUrlSender {
  readonly signingNames = ['sqs'] as const;
  private readonly queues = new Map<string, Queue>();
  private readonly region: string;
  private readonly accountId: string;
  private readonly logger: LocalLogger;
  private readonly now: () => number;
  private readonly stateFile: string | undefined;
  private readonly sendListeners = new Map<string, Set<() => void>>();

  constructor(private readonly options: SqsServiceOptions) {
    this.region = options.region ?? LOCAL_REGION;
    this.accountId = options.accountId ?? LOCAL_ACCOUNT;
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
    if (options.dataDir) {
      mkdirSync(options.dataDir, { recursive: true });
      this.stateFile = join(options.dataDir, STATE_FILE);
      if (existsSync(this.stateFile)) for (const queue of JSON.parse(readFileSync(this.stateFile, 'utf8')) as Queue[]) this.queues.set(queue.name, queue);
    }
  }

  // ---- in-process API ----

  queueArn(name: string): string {
    return `arn:aws:sqs:${this.region}:${this.accountId}:${name}`;
  }

  queueUrl(name: string): string {
    return `${this.options.endpointUrl}/${this.accountId}/${name}`;
  }

  createQueue(name: string, attributes: Record<string, string> = {}): string {
    if (!QUEUE_NAME.test(name)) throw new SqsError('InvalidParameterValue', `Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length (got ${JSON.stringify(name)}).`);
    for (const key of Object.keys(attributes)) if (!SETTABLE.has(key)) throw new SqsError('InvalidAttributeName', `Unknown Attribute ${key}.`);
    if (attributes.RedrivePolicy !== undefined) checkRedrivePolicy(attributes.RedrivePolicy);
    const existing = this.queues.get(name);
    if (existing) {
      // As in AWS: idempotent with the same attributes, refused with different ones.
      const differs = Object.entries(attributes).some(([key, value]) => existing.attributes[key] !== undefined && existing.attributes[key] !== value);
      if (differs) throw new SqsError('QueueNameExists', `A queue already exists with the same name and a different value for an attribute: ${name}`);
      return this.queueUrl(name);
    }
    this.queues.set(name, { name, arn: this.queueArn(name), createdAt: this.now(), attributes: { ...attributes }, messages: [] });
    this.save();
    return this.queueUrl(name);
  }

  /** Messages in a queue, visible or not (tests and the runtime's own checks). */
  peek(queueName: string): readonly { messageId: string; body: string; receiveCount: number }[] {
    return this.byName(queueName).messages.map(({ messageId, body, receiveCount }) => ({ messageId, body, receiveCount }));
  }

  hasQueue(queueArn: string): boolean {
    return [...this.queues.values()].some((q) => q.arn === queueArn);
  }

  sendToArn(queueArn: string, body: string): { messageId: string } {
    const queue = [...this.queues.values()].find((q) => q.arn === queueArn);
    if (!queue) throw new SqsError('QueueDoesNotExist', `The specified queue does not exist: ${queueArn}`);
    return this.send(queue, body);
  }

  sendToUrl(queueUrl: string, body: string): { messageId: string } {
    return this.send(this.byUrl(queueUrl), body);
  }

  /** Calls `listener` after every message sent to the queue (the event source mapping wakes on it). Returns the unsubscribe. */
  onSend(queueName: string, listener: () => void): () => void {
    const listeners = this.sendListeners.get(queueName) ?? new Set<() => void>();
    listeners.add(listener);
    this.sendListeners.set(queueName, listeners);
    return () => listeners.delete(listener);
  }

  /**
   * Receives up to `max` visible messages for an in-process consumer, hidden for `visibilityMs`,
   * with the queue's redrive policy applied as ReceiveMessage applies it.
   */
  receiveBatch(queueName: string, max: number, visibilityMs: number): ReceivedMessage[] {
    return this.take(this.byName(queueName), max, visibilityMs).map((m) => ({
      messageId: m.messageId,
      receiptHandle: m.receiptHandle as string,
      body: m.body,
      md5: m.md5,
      sentAt: m.sentAt,
      receiveCount: m.receiveCount,
      firstReceivedAt: m.firstReceivedAt as number,
    }));
  }

  /** DeleteMessage for an in-process consumer; false when the handle is stale (the message was received again). */
  deleteReceived(queueName: string, receiptHandle: string): boolean {
    const queue = this.byName(queueName);
    const index = this.byReceipt(queue, receiptHandle);
    if (index < 0) return false;
    queue.messages.splice(index, 1);
    this.save();
    return true;
  }

  /** ChangeMessageVisibility for an in-process consumer, in milliseconds from now. */
  changeVisibility(queueName: string, receiptHandle: string, visibilityMs: number): void {
    const queue = this.byName(queueName);
    const index = this.byReceipt(queue, receiptHandle);
    if (index >= 0) queue.messages[index].visibleAt = this.now() + visibilityMs;
  }

  /** When the next hidden message of the queue becomes visible (epoch ms), if one is hidden. */
  nextVisibleAt(queueName: string): number | undefined {
    const now = this.now();
    let next: number | undefined;
    for (const m of this.byName(queueName).messages) if (m.visibleAt > now && (next === undefined || m.visibleAt < next)) next = m.visibleAt;
    return next;
  }

  // ---- the JSON protocol ----

  operationOf(request: EdgeRequest): string | undefined {
    return request.target?.startsWith(TARGET_PREFIX) ? request.target.slice(TARGET_PREFIX.length) : undefined;
  }

  async handle(request: EdgeRequest): Promise<EdgeResponse> {
    const requestId = randomUUID();
    try {
      const operation = this.operationOf(request);
      if (!operation) {
        throw new SqsError('InvalidAction', 'the local SQS speaks the AWS JSON protocol (X-Amz-Target: AmazonSQS.Operation), as SDK v3 and AWS CLI v2 do; not the Query protocol');
      }
      let body: Record<string, unknown> = {};
      if (request.body.length > 0) {
        try {
          body = JSON.parse(request.body.toString('utf8')) as Record<string, unknown>;
        } catch {
          throw new SqsError('InvalidParameterValue', 'the request body is not JSON');
        }
      }
      const result = this.dispatch(operation, body);
      return { status: 200, headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': requestId }, body: JSON.stringify(result) };
    } catch (error) {
      if (!(error instanceof AwsError)) throw error;
      const queryCode = QUERY_CODES[error.code] ?? error.code;
      return {
        status: error.status,
        headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': requestId, 'x-amzn-query-error': `${queryCode};Sender` },
        body: JSON.stringify({ __type: `com.amazonaws.sqs#${error.code}`, message: error.message }),
      };
    }
  }

  private dispatch(operation: string, body: Record<string, unknown>): Record<string, unknown> {
    switch (operation) {
      case 'CreateQueue':
        return { QueueUrl: this.createQueue(str(body, 'QueueName'), (body.Attributes as Record<string, string> | undefined) ?? {}) };
      case 'GetQueueUrl':
        return { QueueUrl: this.queueUrl(this.byName(str(body, 'QueueName')).name) };
      case 'ListQueues': {
        const prefix = typeof body.QueueNamePrefix === 'string' ? body.QueueNamePrefix : '';
        return { QueueUrls: [...this.queues.values()].filter((q) => q.name.startsWith(prefix)).map((q) => this.queueUrl(q.name)) };
      }
      case 'DeleteQueue':
        this.queues.delete(this.byUrl(str(body, 'QueueUrl')).name);
        this.save();
        return {};
      case 'PurgeQueue':
        this.byUrl(str(body, 'QueueUrl')).messages = [];
        this.save();
        return {};
      case 'GetQueueAttributes':
        return { Attributes: this.attributes(this.byUrl(str(body, 'QueueUrl')), (body.AttributeNames as string[] | undefined) ?? []) };
      case 'SendMessage': {
        const queue = this.byUrl(str(body, 'QueueUrl'));
        const message = this.send(queue, str(body, 'MessageBody'));
        return { MessageId: message.messageId, MD5OfMessageBody: md5(str(body, 'MessageBody')) };
      }
      case 'ReceiveMessage':
        return { Messages: this.receive(this.byUrl(str(body, 'QueueUrl')), body) };
      case 'DeleteMessage': {
        const queue = this.byUrl(str(body, 'QueueUrl'));
        const index = this.byReceipt(queue, str(body, 'ReceiptHandle'));
        if (index >= 0) queue.messages.splice(index, 1);
        this.save();
        return {};
      }
      case 'ChangeMessageVisibility': {
        const queue = this.byUrl(str(body, 'QueueUrl'));
        const index = this.byReceipt(queue, str(body, 'ReceiptHandle'));
        if (index < 0) throw new SqsError('MessageNotInflight', 'Message is not in flight.');
        queue.messages[index].visibleAt = this.now() + integer(body, 'VisibilityTimeout', 0, MAX_VISIBILITY_TIMEOUT, 0) * 1000;
        return {};
      }
      default:
        throw new SqsError(
          'InvalidAction',
          `The action ${operation} is not valid for this endpoint (the local SQS serves CreateQueue, GetQueueUrl, ListQueues, DeleteQueue, PurgeQueue, GetQueueAttributes, SendMessage, ReceiveMessage, DeleteMessage, ChangeMessageVisibility).`,
        );
    }
  }

  private byName(name: string): Queue {
    const queue = this.queues.get(name);
    if (!queue) throw new SqsError('QueueDoesNotExist', 'The specified queue does not exist.');
    return queue;
  }

  private byUrl(url: string): Queue {
    const name = url.slice(url.lastIndexOf('/') + 1);
    const queue = this.queues.get(name);
    if (!queue || !url.endsWith(`/${this.accountId}/${name}`)) throw new SqsError('QueueDoesNotExist', 'The specified queue does not exist.');
    return queue;
  }

  /** Index of the message a receipt handle names; -1 for a handle of a message already deleted. */
  private byReceipt(queue: Queue, receiptHandle: string): number {
    const [queueName] = receiptHandle.split('/');
    if (queueName !== queue.name) throw new SqsError('ReceiptHandleIsInvalid', `The input receipt handle "${receiptHandle}" is not a valid receipt handle.`);
    return queue.messages.findIndex((m) => m.receiptHandle === receiptHandle);
  }

  private send(queue: Queue, body: string): { messageId: string } {
    if (Buffer.byteLength(body, 'utf8') > MAX_BODY_BYTES) throw new SqsError('InvalidParameterValue', `One or more parameters are invalid. Reason: Message must be shorter than ${MAX_BODY_BYTES} bytes.`);
    const message: StoredMessage = { messageId: randomUUID(), body, md5: md5(body), sentAt: this.now(), receiveCount: 0, visibleAt: this.now() };
    queue.messages.push(message);
    this.save();
    this.logger.debug('sqs send', { queue: queue.name, messageId: message.messageId });
    for (const listener of this.sendListeners.get(queue.name) ?? []) listener();
    return { messageId: message.messageId };
  }

  /**
   * Hands out up to `max` visible messages. As in SQS, a message already received
   * maxReceiveCount times is not handed out again: it moves to the redrive policy's
   * dead-letter queue, its body and sent time kept.
   */
  private take(queue: Queue, max: number, visibilityMs: number): StoredMessage[] {
    const now = this.now();
    const redrive = redrivePolicyOf(queue);
    const target = redrive ? [...this.queues.values()].find((q) => q.arn === redrive.deadLetterTargetArn) : undefined;
    const taken: StoredMessage[] = [];
    let changed = false;
    for (let index = 0; index < queue.messages.length && taken.length < max; ) {
      const message = queue.messages[index];
      if (message.visibleAt > now) {
        index++;
        continue;
      }
      if (redrive && target && message.receiveCount >= redrive.maxReceiveCount) {
        queue.messages.splice(index, 1);
        target.messages.push({ ...message, receiptHandle: undefined, visibleAt: now });
        this.logger.warn('sqs message moved to its dead-letter queue', { queue: queue.name, deadLetterQueue: target.name, messageId: message.messageId, receiveCount: message.receiveCount });
        changed = true;
        continue;
      }
      message.receiveCount++;
      message.firstReceivedAt ??= now;
      message.visibleAt = now + visibilityMs;
      message.receiptHandle = `${queue.name}/${message.messageId}/${randomUUID()}`;
      taken.push(message);
      index++;
    }
    if (taken.length > 0 || changed) this.save();
    return taken;
  }

  private receive(queue: Queue, body: Record<string, unknown>): Record<string, unknown>[] {
    const max = integer(body, 'MaxNumberOfMessages', 1, 10, 1);
    const visibility = integer(body, 'VisibilityTimeout', 0, MAX_VISIBILITY_TIMEOUT, Number(queue.attributes.VisibilityTimeout ?? DEFAULT_VISIBILITY_TIMEOUT));
    // WaitTimeSeconds is accepted and not waited: a local queue has nothing in flight to wait for.
    integer(body, 'WaitTimeSeconds', 0, 20, 0);
    const taken = this.take(queue, max, visibility * 1000);
    return taken.map((m) => ({
      MessageId: m.messageId,
      ReceiptHandle: m.receiptHandle,
      MD5OfBody: m.md5,
      Body: m.body,
      Attributes: {
        SentTimestamp: String(m.sentAt),
        ApproximateReceiveCount: String(m.receiveCount),
        ApproximateFirstReceiveTimestamp: String(m.firstReceivedAt),
      },
    }));
  }

  private attributes(queue: Queue, names: string[]): Record<string, string> {
    const now = this.now();
    const all: Record<string, string> = {
      VisibilityTimeout: String(DEFAULT_VISIBILITY_TIMEOUT),
      MessageRetentionPeriod: '345600',
      MaximumMessageSize: String(MAX_BODY_BYTES),
      DelaySeconds: '0',
      ReceiveMessageWaitTimeSeconds: '0',
      SqsManagedSseEnabled: 'true',
      ...queue.attributes,
      QueueArn: queue.arn,
      CreatedTimestamp: String(Math.floor(queue.createdAt / 1000)),
      ApproximateNumberOfMessages: String(queue.messages.filter((m) => m.visibleAt <= now).length),
      ApproximateNumberOfMessagesNotVisible: String(queue.messages.filter((m) => m.visibleAt > now).length),
      ApproximateNumberOfMessagesDelayed: '0',
    };
    if (names.length === 0) return {};
    if (names.includes('All')) return all;
    for (const name of names) if (!(name in all)) throw new SqsError('InvalidAttributeName', `Unknown Attribute ${name}.`);
    return Object.fromEntries(names.map((name) => [name, all[name]]));
  }

  private save(): void {
    if (!this.stateFile) return;
    const temporary = `${this.stateFile}.tmp`;
    writeFileSync(temporary, JSON.stringify([...this.queues.values()]));
    renameSync(temporary, this.stateFile);
  }
}
