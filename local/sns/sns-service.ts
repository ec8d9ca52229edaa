import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { xmlEscape } from '../edge/aws-error-response.js';
import { silentLogger, type LocalLogger } from '../edge/logger.js';
import type { EdgeRequest, EdgeResponse, LambdaInvoker, LocalService, SnsPublisher } from '../types.js';
import { AwsError, LOCAL_ACCOUNT, LOCAL_REGION } from '../types.js';

/**
 * Local SNS: topics, lambda and email subscriptions, Publish. Speaks the AWS Query protocol
 * (form-encoded Action=… requests, XML answers in the SNS namespace) through the edge, and
 * the SnsPublisher seam for in-process callers (Step Functions' sns:publish, the Device
 * Defender audit). Every published message is kept so that a person or a test can read the
 * escalations: in memory, and appended to DATA_DIR/sns-messages.jsonl when there is a data dir.
 */
const NAMESPACE = 'http://sns.amazonaws.com/doc/2010-03-31/';
const MAX_SUBJECT = 100;
const MAX_MESSAGE_BYTES = 256 * 1024;
const TOPIC_NAME = /^[A-Za-z0-9_-]{1,256}$/;

export interface SnsMessageAttribute {
  DataType: string;
  StringValue?: string;
  /** Base64. */
  BinaryValue?: string;
}

export interface PublishedMessage {
  messageId: string;
  topicArn: string;
  subject?: string;
  message: string;
  messageAttributes: Record<string, SnsMessageAttribute>;
  timestamp: string;
}

export interface Subscription {
  subscriptionArn: string;
  topicArn: string;
  protocol: 'lambda' | 'email';
  endpoint: string;
  attributes: Record<string, string>;
}

/** One delivery to a subscriber: lambda deliveries are invocations, email deliveries are only recorded. */
export interface Delivery {
  messageId: string;
  subscriptionArn: string;
  protocol: Subscription['protocol'];
  endpoint: string;
  outcome: 'invoked' | 'recorded' | 'failed';
  error?: string;
}

interface Topic {
  arn: string;
  name: string;
  attributes: Record<string, string>;
}

export interface SnsServiceOptions {
  invoker: LambdaInvoker;
  region?: string;
  accountId?: string;
  dataDir?: string;
  logger?: LocalLogger;
}

class InvalidParameter extends AwsError {
  constructor(message: string) {
    super('InvalidParameter', `Invalid parameter: ${message}`, 400);
  }
}

class NotFound extends AwsError {
  constructor(message: string) {
    super('NotFound', message, 404);
  }
}

/** Reads Query-protocol maps: `Prefix.entry.N.key` / `.value`, or `.Name` / `.Value.*` for message attributes. */
function entries(params: URLSearchParams, prefix: string): Map<string, Map<string, string>> {
  const byIndex = new Map<string, Map<string, string>>();
  const head = `${prefix}.entry.`;
  for (const [key, value] of params) {
    if (!key.startsWith(head)) continue;
    const rest = key.slice(head.length);
    const dot = rest.indexOf('.');
    if (dot < 0) continue;
    const index = rest.slice(0, dot);
    const fields = byIndex.get(index) ?? new Map<string, string>();
    fields.set(rest.slice(dot + 1), value);
    byIndex.set(index, fields);
  }
  return byIndex;
}

function stringMap(params: URLSearchParams, prefix: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const fields of entries(params, prefix).values()) {
    const key = fields.get('key');
    if (key !== undefined) result[key] = fields.get('value') ?? '';
  }
  return result;
}

function validateAttribute(name: string, attribute: SnsMessageAttribute): SnsMessageAttribute {
  if (!name || name.length > 256 || !/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.') || name.endsWith('.')) {
    throw new InvalidParameter(`MessageAttributes: invalid attribute name '${name}'`);
  }
  const type = attribute.DataType;
  if (!type) throw new InvalidParameter(`MessageAttributes: the message attribute '${name}' must contain non-empty message attribute type.`);
  const base = type.split('.')[0];
  if (!['String', 'Number', 'Binary'].includes(base)) {
    throw new InvalidParameter(`MessageAttributes: the message attribute '${name}' has an invalid message attribute type '${type}'`);
  }
  if (base === 'Binary' ? attribute.BinaryValue === undefined : attribute.StringValue === undefined) {
    throw new InvalidParameter(`MessageAttributes: the message attribute '${name}' must contain a non-empty value of message attribute type '${type}'.`);
  }
  if (base === 'Number' && !Number.isFinite(Number(attribute.StringValue))) {
    throw new InvalidParameter(`MessageAttributes: the message attribute '${name}' with type 'Number' must have a numeric value.`);
  }
  return base === 'Binary' ? { DataType: type, BinaryValue: attribute.BinaryValue } : { DataType: type, StringValue: attribute.StringValue };
}

/** In-process callers pass attributes in the API shape, or plain strings and numbers. */
function normaliseAttributes(attributes: Record<string, unknown> | undefined): Record<string, SnsMessageAttribute> {
  const result: Record<string, SnsMessageAttribute> = {};
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (typeof value === 'string') result[name] = validateAttribute(name, { DataType: 'String', StringValue: value });
    else if (typeof value === 'number') result[name] = validateAttribute(name, { DataType: 'Number', StringValue: String(value) });
    else if (value && typeof value === 'object') {
      const shape = value as Record<string, unknown>;
      const binary = shape.BinaryValue;
      result[name] = validateAttribute(name, {
        DataType: String(shape.DataType ?? ''),
        StringValue: shape.StringValue === undefined ? undefined : String(shape.StringValue),
        BinaryValue: binary instanceof Uint8Array ? Buffer.from(binary).toString('base64') : binary === undefined ? undefined : String(binary),
      });
    } else throw new InvalidParameter(`MessageAttributes: the message attribute '${name}' has no value`);
  }
  return result;
}

export class SnsService implements LocalService, SnsPublisher {
  readonly signingNames = ['sns'] as const;
  private readonly topics = new Map<string, Topic>();
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly published: PublishedMessage[] = [];
  private readonly deliveryLog: Delivery[] = [];
  private readonly pending = new Set<Promise<unknown>>();
  private readonly region: string;
  private readonly accountId: string;
  private readonly logger: LocalLogger;
  private readonly messagesFile: string | undefined;

  constructor(private readonly options: SnsServiceOptions) {
    this.region = options.region ?? LOCAL_REGION;
    this.accountId = options.accountId ?? LOCAL_ACCOUNT;
    this.logger = options.logger ?? silentLogger;
    if (options.dataDir) {
      mkdirSync(options.dataDir, { recursive: true });
      this.messagesFile = join(options.dataDir, 'sns-messages.jsonl');
    }
  }

  // ---- in-process API ----

  createTopic(name: string, attributes: Record<string, string> = {}): string {
    if (!TOPIC_NAME.test(name)) {
      throw new InvalidParameter('Topic Name: topic names must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long.');
    }
    const arn = `arn:aws:sns:${this.region}:${this.accountId}:${name}`;
    const existing = this.topics.get(arn);
    // CreateTopic is idempotent, as in AWS.
    if (existing) return existing.arn;
    this.topics.set(arn, { arn, name, attributes: { ...attributes } });
    return arn;
  }

  deleteTopic(arn: string): void {
    this.topics.delete(arn);
    for (const [subscriptionArn, subscription] of this.subscriptions) if (subscription.topicArn === arn) this.subscriptions.delete(subscriptionArn);
  }

  topicArns(): string[] {
    return [...this.topics.keys()];
  }

  subscribe(topicArn: string, protocol: string, endpoint: string, attributes: Record<string, string> = {}): Subscription {
    this.topic(topicArn);
    if (protocol !== 'lambda' && protocol !== 'email') {
      throw new InvalidParameter(`Invalid protocol type: ${protocol} (the local SNS delivers to lambda and records email)`);
    }
    if (!endpoint) throw new InvalidParameter('Endpoint: must not be empty');
    if (protocol === 'lambda' && !/^arn:aws:lambda:[^:]+:\d{12}:function:[A-Za-z0-9_-]+(:[^:]+)?$/.test(endpoint)) {
      throw new InvalidParameter(`Invalid parameter: Lambda endpoint ARN '${endpoint}'`);
    }
    for (const existing of this.subscriptions.values()) {
      if (existing.topicArn === topicArn && existing.protocol === protocol && existing.endpoint === endpoint) return existing;
    }
    const subscription: Subscription = { subscriptionArn: `${topicArn}:${randomUUID()}`, topicArn, protocol, endpoint, attributes: { ...attributes } };
    this.subscriptions.set(subscription.subscriptionArn, subscription);
    return subscription;
  }

  unsubscribe(subscriptionArn: string): void {
    if (!this.subscriptions.delete(subscriptionArn)) throw new NotFound('Subscription does not exist');
  }

  listSubscriptions(topicArn?: string): Subscription[] {
    if (topicArn !== undefined) this.topic(topicArn);
    return [...this.subscriptions.values()].filter((s) => topicArn === undefined || s.topicArn === topicArn);
  }

  /** Every message published so far, oldest first; only one topic's when given. */
  messages(topicArn?: string): PublishedMessage[] {
    return this.published.filter((m) => topicArn === undefined || m.topicArn === topicArn);
  }

  deliveries(): Delivery[] {
    return [...this.deliveryLog];
  }

  /** Resolves when every delivery started so far has been handed to its subscriber. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  async publish(input: { topicArn: string; message: string; subject?: string; messageAttributes?: Record<string, unknown> }): Promise<{ messageId: string }> {
    return this.publishValidated(input.topicArn, input.message, input.subject, normaliseAttributes(input.messageAttributes));
  }

  // ---- the Query protocol ----

  operationOf(request: EdgeRequest): string | undefined {
    return new URLSearchParams(request.body.toString('utf8')).get('Action') ?? undefined;
  }

  async handle(request: EdgeRequest): Promise<EdgeResponse> {
    const requestId = randomUUID();
    const params = new URLSearchParams(request.body.toString('utf8'));
    for (const [key, value] of request.query) if (!params.has(key)) params.set(key, value);
    const action = params.get('Action') ?? '';
    try {
      const result = await this.dispatch(action, params);
      return this.xml(200, `<${action}Response xmlns="${NAMESPACE}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`);
    } catch (error) {
      if (!(error instanceof AwsError)) throw error;
      return this.xml(
        error.status,
        `<ErrorResponse xmlns="${NAMESPACE}"><Error><Type>${error.status >= 500 ? 'Receiver' : 'Sender'}</Type><Code>${xmlEscape(error.code)}</Code>` +
          `<Message>${xmlEscape(error.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
        { 'x-amzn-requestid': requestId },
      );
    }
  }

  private xml(status: number, body: string, headers: Record<string, string> = {}): EdgeResponse {
    return { status, headers: { 'content-type': 'text/xml', ...headers }, body: `<?xml version="1.0"?>\n${body}` };
  }

  private required(params: URLSearchParams, name: string): string {
    const value = params.get(name);
    if (value === null || value === '') throw new InvalidParameter(`${name} is required`);
    return value;
  }

  private topic(arn: string): Topic {
    const topic = this.topics.get(arn);
    if (!topic) throw new NotFound('Topic does not exist');
    return topic;
  }

  private async dispatch(action: string, params: URLSearchParams): Promise<string> {
    switch (action) {
      case 'CreateTopic': {
        const arn = this.createTopic(this.required(params, 'Name'), stringMap(params, 'Attributes'));
        return `<TopicArn>${xmlEscape(arn)}</TopicArn>`;
      }
      case 'DeleteTopic':
        this.deleteTopic(this.required(params, 'TopicArn'));
        return '';
      case 'ListTopics':
        return `<Topics>${this.topicArns().map((arn) => `<member><TopicArn>${xmlEscape(arn)}</TopicArn></member>`).join('')}</Topics>`;
      case 'GetTopicAttributes': {
        const topic = this.topic(this.required(params, 'TopicArn'));
        const subscriptions = this.listSubscriptions(topic.arn);
        const attributes: Record<string, string> = {
          DisplayName: '',
          Policy: JSON.stringify({ Version: '2008-10-17', Statement: [] }),
          ...topic.attributes,
          TopicArn: topic.arn,
          Owner: this.accountId,
          SubscriptionsConfirmed: String(subscriptions.length),
          SubscriptionsPending: '0',
          SubscriptionsDeleted: '0',
        };
        return `<Attributes>${Object.entries(attributes).map(([k, v]) => `<entry><key>${xmlEscape(k)}</key><value>${xmlEscape(v)}</value></entry>`).join('')}</Attributes>`;
      }
      case 'SetTopicAttributes': {
        const topic = this.topic(this.required(params, 'TopicArn'));
        topic.attributes[this.required(params, 'AttributeName')] = params.get('AttributeValue') ?? '';
        return '';
      }
      case 'Subscribe': {
        const subscription = this.subscribe(this.required(params, 'TopicArn'), this.required(params, 'Protocol'), params.get('Endpoint') ?? '', stringMap(params, 'Attributes'));
        return `<SubscriptionArn>${xmlEscape(subscription.subscriptionArn)}</SubscriptionArn>`;
      }
      case 'Unsubscribe':
        this.unsubscribe(this.required(params, 'SubscriptionArn'));
        return '';
      case 'ListSubscriptions':
        return this.subscriptionsXml(this.listSubscriptions());
      case 'ListSubscriptionsByTopic':
        return this.subscriptionsXml(this.listSubscriptions(this.required(params, 'TopicArn')));
      case 'Publish': {
        const topicArn = params.get('TopicArn') ?? params.get('TargetArn');
        if (!topicArn) throw new InvalidParameter('TopicArn or TargetArn Reason: no value for required parameter');
        const attributes: Record<string, SnsMessageAttribute> = {};
        for (const fields of entries(params, 'MessageAttributes').values()) {
          const name = fields.get('Name') ?? '';
          attributes[name] = validateAttribute(name, {
            DataType: fields.get('Value.DataType') ?? '',
            StringValue: fields.get('Value.StringValue'),
            BinaryValue: fields.get('Value.BinaryValue'),
          });
        }
        const { messageId } = await this.publishValidated(topicArn, params.get('Message') ?? '', params.get('Subject') ?? undefined, attributes);
        return `<MessageId>${messageId}</MessageId>`;
      }
      default:
        throw new AwsError('InvalidAction', `The action ${action || '(none)'} is not valid for this endpoint (the local SNS serves CreateTopic, DeleteTopic, ListTopics, GetTopicAttributes, SetTopicAttributes, Subscribe, Unsubscribe, ListSubscriptions, ListSubscriptionsByTopic, Publish).`, 400);
    }
  }

  private subscriptionsXml(subscriptions: Subscription[]): string {
    const members = subscriptions
      .map(
        (s) =>
          `<member><SubscriptionArn>${xmlEscape(s.subscriptionArn)}</SubscriptionArn><Owner>${this.accountId}</Owner>` +
          `<Protocol>${s.protocol}</Protocol><Endpoint>${xmlEscape(s.endpoint)}</Endpoint><TopicArn>${xmlEscape(s.topicArn)}</TopicArn></member>`,
      )
      .join('');
    return `<Subscriptions>${members}</Subscriptions>`;
  }

  private async publishValidated(topicArn: string, message: string, subject: string | undefined, messageAttributes: Record<string, SnsMessageAttribute>): Promise<{ messageId: string }> {
    this.topic(topicArn);
    if (!message) throw new InvalidParameter('Empty message');
    if (Buffer.byteLength(message, 'utf8') > MAX_MESSAGE_BYTES) throw new InvalidParameter('Message too long');
    if (subject !== undefined) {
      if (subject.length === 0 || subject.length > MAX_SUBJECT) throw new InvalidParameter(`Subject must be 1 to ${MAX_SUBJECT} characters long`);
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u001f\u007f]/.test(subject)) throw new InvalidParameter('Subject must not include line breaks or control characters');
    }
    const record: PublishedMessage = {
      messageId: randomUUID(),
      topicArn,
      ...(subject !== undefined ? { subject } : {}),
      message,
      messageAttributes,
      timestamp: new Date().toISOString(),
    };
    this.published.push(record);
    if (this.messagesFile) appendFileSync(this.messagesFile, `${JSON.stringify(record)}\n`);
    this.logger.debug('sns publish', { topicArn, messageId: record.messageId, subject });
    for (const subscription of this.listSubscriptions(topicArn)) this.deliver(record, subscription);
    return { messageId: record.messageId };
  }

  private deliver(record: PublishedMessage, subscription: Subscription): void {
    const base = { messageId: record.messageId, subscriptionArn: subscription.subscriptionArn, protocol: subscription.protocol, endpoint: subscription.endpoint };
    if (subscription.protocol === 'email') {
      this.deliveryLog.push({ ...base, outcome: 'recorded' });
      return;
    }
    // SNS invokes Lambda subscribers asynchronously (invocation type Event), so Publish never waits on them.
    const delivery = this.options.invoker
      .invoke(subscription.endpoint, this.lambdaEvent(record, subscription), 'Event')
      .then((result) => {
        this.deliveryLog.push(result.ok ? { ...base, outcome: 'invoked' } : { ...base, outcome: 'failed', error: `${result.error.errorType}: ${result.error.errorMessage}` });
      })
      .catch((error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        this.deliveryLog.push({ ...base, outcome: 'failed', error: message });
        this.logger.warn('sns delivery to lambda failed', { subscriptionArn: subscription.subscriptionArn, error: message });
      })
      .finally(() => this.pending.delete(delivery));
    this.pending.add(delivery);
  }

  /** The event AWS gives a Lambda subscriber (the SNS event source). */
  lambdaEvent(record: PublishedMessage, subscription: Subscription): SnsLambdaEvent {
    const base = `https://sns.${this.region}.amazonaws.com`;
    return {
      Records: [
        {
          EventSource: 'aws:sns',
          EventVersion: '1.0',
          EventSubscriptionArn: subscription.subscriptionArn,
          Sns: {
            Type: 'Notification',
            MessageId: record.messageId,
            TopicArn: record.topicArn,
            Subject: record.subject ?? null,
            Message: record.message,
            Timestamp: record.timestamp,
            SignatureVersion: '1',
            // Nothing verifies it locally; the field is present because handlers may read it.
            Signature: Buffer.from(`local:${record.messageId}`).toString('base64'),
            SigningCertUrl: `${base}/SimpleNotificationService-local.pem`,
            UnsubscribeUrl: `${base}/?Action=Unsubscribe&SubscriptionArn=${encodeURIComponent(subscription.subscriptionArn)}`,
            MessageAttributes: Object.fromEntries(
              Object.entries(record.messageAttributes).map(([name, a]) => [name, { Type: a.DataType, Value: a.DataType.startsWith('Binary') ? (a.BinaryValue ?? '') : (a.StringValue ?? '') }]),
            ),
          },
        },
      ],
    };
  }
}

export interface SnsLambdaEvent {
  Records: {
    EventSource: 'aws:sns';
    EventVersion: string;
    EventSubscriptionArn: string;
    Sns: {
      Type: 'Notification';
      MessageId: string;
      TopicArn: string;
      Subject: string | null;
      Message: string;
      Timestamp: string;
      SignatureVersion: string;
      Signature: string;
      SigningCertUrl: string;
      UnsubscribeUrl: string;
      MessageAttributes: Record<string, { Type: string; Value: string }>;
    };
  }[];
}
