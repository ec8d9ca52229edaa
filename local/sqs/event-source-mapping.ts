import { silentLogger, type LocalLogger } from '../edge/logger.js';
import type { Clock, LambdaInvoker } from '../types.js';
import type { ReceivedMessage, SqsService } from './sqs-service.js';

/**
 * Lambda's event source mapping for an SQS queue, in-process (terraform/lambda.tf
 * aws_lambda_event_source_mapping): it receives batches from the queue, invokes the function
 * synchronously with SQS's event, deletes what the function handled and leaves the rest in the
 * queue. With ReportBatchItemFailures, only the records the function names in
 * `batchItemFailures` stay; a function error, a timeout or a refused Invoke (throttled, over
 * concurrency) leaves the whole batch. What stays comes back after the visibility timeout (scaled
 * like the workflows), and the queue's redrive policy moves it to the dead-letter queue after
 * maxReceiveCount receives. At most `maximumConcurrency` batches are in flight, as the mapping's
 * ScalingConfig caps them.
 */
export interface EventSourceMappingOptions {
  sqs: SqsService;
  queueName: string;
  invoker: LambdaInvoker;
  functionName: string;
  batchSize: number;
  maximumConcurrency: number;
  /** The queue's visibility timeout: how long a record the function failed on stays hidden (workflow time). */
  visibilityTimeoutSeconds: number;
  /**
   * How long a batch stays hidden while the function works on it (real seconds): the
   * function's timeout. AWS requires the visibility timeout to be at least that; here the
   * workflow-scaled one can be shorter than a real invocation, which must not hand the
   * records to a second invocation meanwhile.
   */
  functionTimeoutSeconds: number;
  clock: Clock;
  region: string;
  logger?: LocalLogger;
}

/** What happened to one batch (tests read them). */
export interface BatchOutcome {
  messageIds: string[];
  /** Deleted from the queue. */
  handled: string[];
  /** Left in the queue, to be received again. */
  returned: string[];
  error?: string;
}

/** The record of SQS's Lambda event. */
function sqsRecord(message: ReceivedMessage, queueArn: string, region: string): Record<string, unknown> {
  return {
    messageId: message.messageId,
    receiptHandle: message.receiptHandle,
    body: message.body,
    attributes: {
      ApproximateReceiveCount: String(message.receiveCount),
      SentTimestamp: String(message.sentAt),
      SenderId: 'AROALOCALIOTRULE:iot',
      ApproximateFirstReceiveTimestamp: String(message.firstReceivedAt),
    },
    messageAttributes: {},
    md5OfBody: message.md5,
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

/** The message ids a ReportBatchItemFailures answer names; undefined when the answer is not one. */
function reportedFailures(payload: unknown): string[] | undefined {
  if (payload === null || payload === undefined) return [];
  if (typeof payload !== 'object') return undefined;
  const failures = (payload as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return [];
  if (!Array.isArray(failures)) return undefined;
  const ids: string[] = [];
  for (const failure of failures) {
    const id = typeof failure === 'object' && failure !== null ? (failure as { itemIdentifier?: unknown }).itemIdentifier : undefined;
    // As in AWS: an empty or missing itemIdentifier fails the whole batch.
    if (typeof id !== 'string' || id === '') return undefined;
    ids.push(id);
  }
  return ids;
}

export class EventSourceMapping {
  private readonly logger: LocalLogger;
  private readonly queueArn: string;
  private readonly batches = new Set<Promise<void>>();
  private readonly outcomes: BatchOutcome[] = [];
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly options: EventSourceMappingOptions) {
    this.logger = options.logger ?? silentLogger;
    this.queueArn = options.sqs.queueArn(options.queueName);
    if (options.maximumConcurrency < 2 || options.maximumConcurrency > 1000) throw new Error(`maximumConcurrency must be 2-1000 (as in AWS), got ${options.maximumConcurrency}`);
    if (options.batchSize < 1 || options.batchSize > 10) throw new Error(`batchSize must be 1-10, got ${options.batchSize}`);
  }

  start(): this {
    if (this.running) return this;
    this.running = true;
    this.unsubscribe = this.options.sqs.onSend(this.options.queueName, () => this.pump());
    this.pump();
    return this;
  }

  /** Stops polling; batches in flight finish. */
  async stop(): Promise<void> {
    this.running = false;
    this.unsubscribe?.();
    if (this.timer) clearTimeout(this.timer);
    await this.idle();
  }

  /** Resolves when no batch is in flight. */
  async idle(): Promise<void> {
    while (this.batches.size > 0) await Promise.allSettled([...this.batches]);
  }

  batchOutcomes(): readonly BatchOutcome[] {
    return [...this.outcomes];
  }

  /** Starts batches while there are visible messages and room under maximumConcurrency; then waits for a send or a message to reappear. */
  private pump(): void {
    if (!this.running) return;
    const { sqs, queueName, batchSize, maximumConcurrency, functionTimeoutSeconds } = this.options;
    while (this.batches.size < maximumConcurrency) {
      const messages = sqs.receiveBatch(queueName, batchSize, functionTimeoutSeconds * 1000 + 1000);
      if (messages.length === 0) break;
      const batch = this.run(messages).finally(() => {
        this.batches.delete(batch);
        this.pump();
      });
      this.batches.add(batch);
    }
    this.wakeWhenVisible();
  }

  private wakeWhenVisible(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const next = this.options.sqs.nextVisibleAt(this.options.queueName);
    if (next === undefined || this.batches.size >= this.options.maximumConcurrency) return;
    this.timer = setTimeout(() => this.pump(), Math.max(1, next - Date.now()));
    this.timer.unref();
  }

  private async run(messages: ReceivedMessage[]): Promise<void> {
    const { sqs, queueName, invoker, functionName, clock, visibilityTimeoutSeconds } = this.options;
    const ids = messages.map((m) => m.messageId);
    let failed: string[] | undefined;
    let error: string | undefined;
    try {
      const result = await invoker.invoke(functionName, { Records: messages.map((m) => sqsRecord(m, this.queueArn, this.options.region)) }, 'RequestResponse');
      if (result.ok) {
        failed = reportedFailures(result.payload);
        if (failed?.some((id) => !ids.includes(id))) failed = undefined;
        if (failed === undefined) error = 'the function answered with an invalid batchItemFailures: the whole batch is returned';
      } else {
        error = `${result.error.errorType}: ${result.error.errorMessage}`;
      }
    } catch (invokeError) {
      error = invokeError instanceof Error ? `${invokeError.name}: ${invokeError.message}` : String(invokeError);
    }
    const returned = new Set(failed ?? ids);
    const handled: string[] = [];
    const retryMs = visibilityTimeoutSeconds * 1000 * clock.scale;
    for (const message of messages) {
      if (returned.has(message.messageId)) sqs.changeVisibility(queueName, message.receiptHandle, retryMs);
      else if (sqs.deleteReceived(queueName, message.receiptHandle)) handled.push(message.messageId);
    }
    if (returned.size > 0) this.logger.warn('event source mapping: records returned to the queue', { queue: queueName, function: functionName, returned: [...returned], error });
    this.outcomes.push({ messageIds: ids, handled, returned: ids.filter((id) => returned.has(id)), ...(error ? { error } : {}) });
    if (this.outcomes.length > 500) this.outcomes.shift();
  }
}
