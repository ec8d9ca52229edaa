import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { ChangeMessageVisibilityCommand, DeleteMessageCommand, GetQueueAttributesCommand, GetQueueUrlCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import { deadLetterFunctions, deadLetterQueueName, loadWiring } from '../../wiring/index.js';
import { NotFoundError, UsageError } from './exit-codes.js';
import type { Target } from './target.js';

/**
 * `rotor dlq list|replay`: the events Lambda gave up on. Each asynchronously invoked function
 * (wiring asyncInvocations: the audit's start-rotations) has a dead-letter queue, its on-failure
 * destination, holding Lambda's invocation record: the original event, the error, how many
 * attempts. The function fed by the rule queue (device-message) has one too, the queue's redrive
 * target, holding the device message the queue gave up on as it was (the rule's event). `replay`
 * invokes the function again with the original event (for a redriven message: as a one-record
 * queue batch), synchronously, and deletes the message only when the function succeeded; a
 * message it cannot read or replay stays in the queue.
 */
export interface DlqClients {
  sqs: SQSClient;
  lambda: LambdaClient;
}

export interface DlqDeps extends DlqClients {
  namePrefix: string;
}

export interface DlqOptions {
  /** One function's queue (a wiring name such as device-message); all of them by default. */
  function?: string;
  /** Only this message. */
  messageId?: string;
  limit: number;
}

/** One message of a dead-letter queue, as the operator sees it. */
export interface DeadLetter {
  function: string;
  messageId: string;
  /** When Lambda gave up (the record's timestamp). */
  failedAt?: string;
  /** A redriven device message: when the IoT rule sent it to the rule queue. */
  sentAt?: string;
  /** RetriesExhausted or EventAgeExceeded. */
  condition?: string;
  attempts?: number;
  errorType?: string;
  errorMessage?: string;
  /** What the event was about, for the listing: the device message's topic and client, or the SNS message. */
  about: string;
  /** Why it cannot be replayed, when it cannot. */
  unreadable?: string;
}

export interface QueueSummary {
  function: string;
  queueUrl: string;
  visible: number;
  inFlight: number;
}

export interface DlqListing {
  queues: QueueSummary[];
  letters: DeadLetter[];
}

export type ReplayOutcome =
  | { function: string; messageId: string; outcome: 'replayed'; result: unknown }
  | { function: string; messageId: string; outcome: 'failed'; error: string }
  | { function: string; messageId: string; outcome: 'skipped'; reason: string };

export interface ReplaySummary {
  dryRun: boolean;
  planned: DeadLetter[];
  results: ReplayOutcome[];
  replayed: number;
  failed: number;
  skipped: number;
}

/** The parts of Lambda's invocation record (destination payload, version 1.0) that replay reads. */
interface InvocationRecord {
  timestamp?: string;
  requestContext: { functionArn?: string; condition?: string; approximateInvokeCount?: number };
  requestPayload: unknown;
  responsePayload?: { errorType?: string; errorMessage?: string } | null;
}

/** How long a message being replayed stays hidden from another replay: longer than any function's timeout. */
export const REPLAY_VISIBILITY_SECONDS = 900;
/**
 * A listing hides what it has read for this long, so that each receive brings new messages,
 * and makes them visible again as soon as it is done.
 */
const LIST_VISIBILITY_SECONDS = 30;
const PAGE = 10;

/** The functions with a dead-letter queue (wiring/index.ts deadLetterFunctions). */
export function asyncFunctions(): string[] {
  return deadLetterFunctions();
}

/** A device message the rule queue moved to its dead-letter queue after maxReceiveCount receives. */
interface RedrivenMessage {
  messageId: string;
  body: string;
}

function isRuleQueueFunction(fn: string): boolean {
  return loadWiring().ruleQueue.function === fn;
}

export function validateDlqOptions(options: { function?: string; messageId?: string; limit: number }): DlqOptions {
  const known = asyncFunctions();
  if (options.function !== undefined && !known.includes(options.function)) {
    throw new UsageError(`--function must be one of the functions with a dead-letter queue (${known.join(', ')}), got ${JSON.stringify(options.function)}`);
  }
  if (options.messageId !== undefined && !/^[A-Za-z0-9-]{1,100}$/.test(options.messageId)) throw new UsageError(`--message-id ${JSON.stringify(options.messageId)} is not an SQS message id`);
  return options;
}

function parseRecord(body: string | undefined): InvocationRecord | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body ?? '');
  } catch {
    return 'the message body is not JSON';
  }
  const record = parsed as Partial<InvocationRecord> | null;
  if (typeof record !== 'object' || record === null || typeof record.requestContext !== 'object' || record.requestContext === null || !('requestPayload' in record)) {
    return 'the message is not a Lambda invocation record (no requestContext/requestPayload)';
  }
  return record as InvocationRecord;
}

/** A one-line description of the failed event, without its payload (a CSR, a token: never printed). */
function describeEvent(payload: unknown): string {
  if (typeof payload !== 'object' || payload === null) return 'an event that is not an object';
  const event = payload as Record<string, unknown>;
  if (typeof event.topic === 'string') return `${event.topic} from ${typeof event.clientId === 'string' ? event.clientId : '?'}`;
  const records = event.Records as { Sns?: { TopicArn?: string; MessageId?: string } }[] | undefined;
  if (Array.isArray(records) && records[0]?.Sns) return `SNS message ${records[0].Sns.MessageId ?? '?'} of ${records[0].Sns.TopicArn ?? '?'}`;
  return `an event with ${Object.keys(event).sort().join(', ') || 'no fields'}`;
}

type TakenLetter = DeadLetter & { record?: InvocationRecord; redriven?: RedrivenMessage; receiptHandle?: string };

/** The rule queue's dead letters are the rule's events themselves; an invocation record is still read as one (an older deployment's). */
function toRedriven(fn: string, message: Message): TakenLetter | undefined {
  if (!isRuleQueueFunction(fn) || message.Body === undefined || message.MessageId === undefined) return undefined;
  let event: unknown;
  try {
    event = JSON.parse(message.Body);
  } catch {
    return undefined;
  }
  if (typeof event !== 'object' || event === null || 'requestContext' in event) return undefined;
  const sent = Number(message.Attributes?.SentTimestamp);
  const { name, maxReceiveCount } = loadWiring().ruleQueue;
  return {
    function: fn,
    messageId: message.MessageId,
    // The receive count SQS keeps also counts every listing: the queue's limit says more.
    sentAt: Number.isFinite(sent) && sent > 0 ? new Date(sent).toISOString() : undefined,
    condition: 'MaxReceiveCountExceeded',
    attempts: maxReceiveCount,
    errorType: 'ReceivedTooOften',
    errorMessage: `the ${name} queue handed it to ${fn} ${maxReceiveCount} times without success; the function's log says why`,
    about: describeEvent(event),
    redriven: { messageId: message.MessageId, body: message.Body },
    receiptHandle: message.ReceiptHandle,
  };
}

function toDeadLetter(fn: string, message: Message): TakenLetter {
  const messageId = message.MessageId ?? '?';
  const redriven = toRedriven(fn, message);
  if (redriven) return redriven;
  const record = parseRecord(message.Body);
  if (typeof record === 'string') return { function: fn, messageId, about: 'an unreadable message', unreadable: record, receiptHandle: message.ReceiptHandle };
  return {
    function: fn,
    messageId,
    failedAt: record.timestamp,
    condition: record.requestContext.condition,
    attempts: record.requestContext.approximateInvokeCount,
    errorType: record.responsePayload?.errorType,
    errorMessage: record.responsePayload?.errorMessage,
    about: describeEvent(record.requestPayload),
    record,
    receiptHandle: message.ReceiptHandle,
  };
}

async function queueUrl(deps: DlqDeps, fn: string): Promise<string> {
  const name = deadLetterQueueName(fn, deps.namePrefix);
  try {
    const { QueueUrl } = await deps.sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    if (!QueueUrl) throw new NotFoundError(`the dead-letter queue ${name} has no URL`);
    return QueueUrl;
  } catch (error) {
    if (error instanceof Error && (error.name === 'QueueDoesNotExist' || error.name === 'AWS.SimpleQueueService.NonExistentQueue')) {
      throw new NotFoundError(`no dead-letter queue ${name}: is Rotor deployed with --name-prefix ${deps.namePrefix}?`);
    }
    throw error;
  }
}

/**
 * Receives up to `limit` distinct messages. SQS hands out a sample per call, so the loop stops
 * when a call brings nothing new.
 */
async function receive(deps: DlqDeps, url: string, limit: number, visibility: number): Promise<Message[]> {
  const seen = new Map<string, Message>();
  while (seen.size < limit) {
    const { Messages } = await deps.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: Math.min(PAGE, limit - seen.size), VisibilityTimeout: visibility, WaitTimeSeconds: 0, MessageSystemAttributeNames: ['All'] }),
    );
    const fresh = (Messages ?? []).filter((m) => m.MessageId && !seen.has(m.MessageId));
    if (fresh.length === 0) break;
    for (const message of fresh) seen.set(message.MessageId as string, message);
  }
  return [...seen.values()];
}

function functionsOf(options: DlqOptions): string[] {
  return options.function ? [options.function] : asyncFunctions();
}

export async function listDeadLetters(deps: DlqDeps, options: DlqOptions): Promise<DlqListing> {
  const queues: QueueSummary[] = [];
  const letters: DeadLetter[] = [];
  for (const fn of functionsOf(options)) {
    const url = await queueUrl(deps, fn);
    const { Attributes } = await deps.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }));
    queues.push({ function: fn, queueUrl: url, visible: Number(Attributes?.ApproximateNumberOfMessages ?? 0), inFlight: Number(Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0) });
    for (const message of await receive(deps, url, options.limit - letters.length, LIST_VISIBILITY_SECONDS)) {
      const { record: _record, redriven: _redriven, receiptHandle, ...letter } = toDeadLetter(fn, message);
      if (options.messageId === undefined || letter.messageId === options.messageId) letters.push(letter);
      await release(deps, url, receiptHandle);
    }
  }
  return { queues, letters };
}

/**
 * Replays dead letters: each message is received (hidden from other readers meanwhile), its
 * original event is given to the function again with a synchronous Invoke, and the message is
 * deleted only when the function returned without error. Otherwise it is made visible again.
 * `confirm` sees the plan first and may stop everything.
 */
export async function replayDeadLetters(deps: DlqDeps, options: DlqOptions & { dryRun: boolean; confirm?: (planned: DeadLetter[]) => Promise<boolean> }): Promise<ReplaySummary> {
  const taken: { url: string; letter: TakenLetter }[] = [];
  for (const fn of functionsOf(options)) {
    const url = await queueUrl(deps, fn);
    const visibility = options.dryRun ? LIST_VISIBILITY_SECONDS : REPLAY_VISIBILITY_SECONDS;
    for (const message of await receive(deps, url, options.limit - taken.length, visibility)) {
      const letter = toDeadLetter(fn, message);
      if (options.messageId !== undefined && letter.messageId !== options.messageId) {
        await release(deps, url, letter.receiptHandle);
        continue;
      }
      taken.push({ url, letter });
    }
  }
  const planned = taken.map(({ letter: { record: _record, redriven: _redriven, receiptHandle: _handle, ...letter } }) => letter);
  const results: ReplayOutcome[] = [];
  let proceed = !options.dryRun;
  try {
    if (proceed && options.confirm) proceed = await options.confirm(planned);
  } catch (error) {
    // Refused (no --yes without a terminal): nothing may stay hidden for the replay's 15 minutes.
    for (const { url, letter } of taken) await release(deps, url, letter.receiptHandle);
    throw error;
  }
  for (const { url, letter } of taken) {
    if (!proceed) {
      await release(deps, url, letter.receiptHandle);
      continue;
    }
    results.push(await replayOne(deps, url, letter));
  }
  return {
    dryRun: options.dryRun,
    planned,
    results,
    replayed: results.filter((r) => r.outcome === 'replayed').length,
    failed: results.filter((r) => r.outcome === 'failed').length,
    skipped: results.filter((r) => r.outcome === 'skipped').length,
  };
}

/** Makes a received message visible again at once: it stays in the queue for the next reader. */
async function release(deps: DlqDeps, url: string, receiptHandle: string | undefined): Promise<void> {
  if (!receiptHandle) return;
  await deps.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: receiptHandle, VisibilityTimeout: 0 }));
}

/** The event the function is invoked with again: the original one, or a redriven message as a one-record queue batch. */
function replayPayload(letter: TakenLetter): unknown {
  if (letter.redriven) return { Records: [{ messageId: letter.redriven.messageId, body: letter.redriven.body, eventSource: 'aws:sqs', attributes: {}, messageAttributes: {} }] };
  return letter.record?.requestPayload;
}

/** A queue batch's answer names the records that failed: a replay of one record failed if it is named. */
function batchFailure(result: unknown): string | undefined {
  const failures = typeof result === 'object' && result !== null ? (result as { batchItemFailures?: unknown }).batchItemFailures : undefined;
  return Array.isArray(failures) && failures.length > 0 ? 'the function reported the record in batchItemFailures (an AWS error; its log says which)' : undefined;
}

async function replayOne(deps: DlqDeps, url: string, letter: TakenLetter): Promise<ReplayOutcome> {
  const base = { function: letter.function, messageId: letter.messageId };
  if (!letter.record && !letter.redriven) {
    await release(deps, url, letter.receiptHandle);
    return { ...base, outcome: 'skipped', reason: letter.unreadable ?? 'unreadable' };
  }
  const functionName = `${deps.namePrefix}-${letter.function}`;
  const recorded = letter.record?.requestContext.functionArn;
  // The queue is the function's own; a record of another function is not replayed into this one.
  if (recorded && !new RegExp(`:function:${functionName}(:|$)`).test(recorded)) {
    await release(deps, url, letter.receiptHandle);
    return { ...base, outcome: 'skipped', reason: `the record is of ${recorded}, not of ${functionName}` };
  }
  try {
    const answer = await deps.lambda.send(new InvokeCommand({ FunctionName: functionName, InvocationType: 'RequestResponse', Payload: Buffer.from(JSON.stringify(replayPayload(letter))) }));
    const text = Buffer.from(answer.Payload ?? new Uint8Array()).toString('utf8');
    const result: unknown = text ? JSON.parse(text) : null;
    if (answer.FunctionError) {
      await release(deps, url, letter.receiptHandle);
      const error = result as { errorType?: string; errorMessage?: string } | null;
      return { ...base, outcome: 'failed', error: `${error?.errorType ?? answer.FunctionError}: ${error?.errorMessage ?? 'the function failed'}` };
    }
    const failedRecord = letter.redriven ? batchFailure(result) : undefined;
    if (failedRecord) {
      await release(deps, url, letter.receiptHandle);
      return { ...base, outcome: 'failed', error: failedRecord };
    }
    await deps.sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: letter.receiptHandle }));
    return { ...base, outcome: 'replayed', result };
  } catch (error) {
    await release(deps, url, letter.receiptHandle).catch(() => undefined);
    return { ...base, outcome: 'failed', error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
}

// ---- printing ----

export function formatListing(listing: DlqListing): string[] {
  const lines = listing.queues.map((q) => `${q.function}: ${q.visible} waiting, ${q.inFlight} in flight (${q.queueUrl})`);
  if (listing.letters.length === 0) return [...lines, 'no dead letters'];
  lines.push('');
  for (const letter of listing.letters) lines.push(...formatLetter(letter));
  return lines;
}

function formatLetter(letter: DeadLetter): string[] {
  if (letter.unreadable) return [`${letter.function} ${letter.messageId}  unreadable: ${letter.unreadable}`];
  const when = letter.sentAt !== undefined ? `sent ${letter.sentAt}` : (letter.failedAt ?? '?');
  return [
    `${letter.function} ${letter.messageId}  ${when}  ${letter.condition ?? '?'} after ${letter.attempts ?? '?'} attempts`,
    `  ${letter.about}`,
    `  ${letter.errorType ?? 'error'}: ${letter.errorMessage ?? '?'}`,
  ];
}

export function formatPlanned(planned: DeadLetter[]): string[] {
  return planned.flatMap(formatLetter);
}

function describeResult(result: unknown): string {
  if (typeof result === 'object' && result !== null && 'batchItemFailures' in result) return 'handled';
  if (typeof result === 'object' && result !== null && 'action' in result) return String((result as { action: unknown }).action);
  return 'ok';
}

export function formatReplay(summary: ReplaySummary): string[] {
  if (summary.dryRun) {
    return [...formatPlanned(summary.planned), `dry run: ${summary.planned.length} dead letter(s) would be replayed; nothing was invoked or deleted`];
  }
  const lines = summary.results.map((r) =>
    r.outcome === 'replayed' ? `replayed ${r.function} ${r.messageId}: ${describeResult(r.result)} (deleted from the queue)` : r.outcome === 'failed' ? `failed   ${r.function} ${r.messageId}: ${r.error} (kept in the queue)` : `skipped  ${r.function} ${r.messageId}: ${r.reason} (kept in the queue)`,
  );
  lines.push(`${summary.replayed} replayed, ${summary.failed} failed, ${summary.skipped} skipped`);
  return lines;
}
