import { GetExecutionHistoryCommand, type HistoryEvent, type SFNClient } from '@aws-sdk/client-sfn';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NotFoundError, UsageError } from './exit-codes.js';
import { executionLink, getCurrentRecord, requireThingName } from './status.js';
import { renderTable, shortDuration, shortTime, type Column } from './text-table.js';

/**
 * `rotor trace`: the path one execution took, built from GetExecutionHistory — each state
 * entered, how long it took, how often its task was scheduled (the Retry on States.Timeout of
 * 'Request CSR' shows up as repeated schedules), and the error and cause where it failed.
 */
export interface TraceOptions {
  thing?: string;
  execution?: string;
}

export interface TraceDeps {
  ddb: DynamoDBDocumentClient;
  sfn: SFNClient;
  tableName: string;
  local: boolean;
  /** The local runtime's edge URL when it serves the console (/console/). */
  consoleBase?: string;
}

export interface StateError {
  error: string;
  cause?: string;
  at: string;
}

export interface TimelineEntry {
  state: string;
  /** Task, Succeed, Fail, … from the event type. */
  type: string;
  enteredAt: string;
  exitedAt?: string;
  durationMs?: number;
  /** Task (or Lambda) schedules in this state: 1 + retries. */
  attempts: number;
  retries: number;
  errors: StateError[];
  outcome: 'succeeded' | 'failed' | 'running';
}

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

export interface Trace {
  executionArn: string;
  status: ExecutionStatus;
  startedAt?: string;
  stoppedAt?: string;
  durationMs?: number;
  entries: TimelineEntry[];
  /** The first state whose error was not retried away, and the execution's own error at the end. */
  failure?: { state?: string; error?: string; cause?: string; executionError?: string; executionCause?: string };
  link: string;
  local: boolean;
}

export function validateTraceOptions(options: TraceOptions): TraceOptions {
  if (options.thing !== undefined && options.execution !== undefined) throw new UsageError('use either --thing NAME or --execution ARN, not both');
  if (options.thing === undefined && options.execution === undefined) throw new UsageError('say what to trace: --thing NAME or --execution ARN');
  if (options.execution !== undefined && !/^arn:aws[a-z-]*:states:[^:]*:\d*:execution:[^:]+:[^:]+$/.test(options.execution)) {
    throw new UsageError(`--execution ${JSON.stringify(options.execution)} is not a Step Functions execution ARN`);
  }
  return options.thing !== undefined ? { thing: requireThingName(options.thing) } : options;
}

export async function fetchHistory(sfn: SFNClient, executionArn: string): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn, nextToken, maxResults: 1000, includeExecutionData: false }));
    events.push(...(page.events ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  return events.sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
}

const iso = (date: Date | undefined): string => (date ? date.toISOString() : '');

function errorOf(event: HistoryEvent): { error: string; cause?: string } | undefined {
  const details =
    event.taskFailedEventDetails ??
    event.taskTimedOutEventDetails ??
    event.taskStartFailedEventDetails ??
    event.taskSubmitFailedEventDetails ??
    event.lambdaFunctionFailedEventDetails ??
    event.lambdaFunctionTimedOutEventDetails ??
    event.lambdaFunctionScheduleFailedEventDetails ??
    event.lambdaFunctionStartFailedEventDetails ??
    event.activityFailedEventDetails ??
    event.activityTimedOutEventDetails;
  if (!details) return undefined;
  return { error: details.error ?? event.type ?? 'error', cause: readableCause(details.cause) };
}

/**
 * A Lambda function error's cause is the JSON {errorMessage, errorType, trace}; an operator
 * wants the message, not the minified bundle's stack.
 */
export function readableCause(cause: string | undefined): string | undefined {
  if (!cause) return cause;
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (parsed && typeof parsed === 'object' && typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // Not JSON: a cause Rotor or Step Functions wrote as plain text.
  }
  return cause;
}

const SCHEDULED = new Set(['TaskScheduled', 'LambdaFunctionScheduled', 'ActivityScheduled']);
const SUCCEEDED = new Set(['TaskSucceeded', 'LambdaFunctionSucceeded', 'ActivitySucceeded']);

/** Builds the timeline from a history in event-id order. Pure: the unit tests feed it fixtures. */
export function buildTrace(executionArn: string, events: readonly HistoryEvent[], local: boolean, consoleBase?: string): Trace {
  const entries: TimelineEntry[] = [];
  let open: TimelineEntry | undefined;
  let lastResultFailed = false;
  const trace: Trace = { executionArn, status: 'RUNNING', entries, link: executionLink(executionArn, local, consoleBase), local };

  const close = (at: Date | undefined): void => {
    if (!open) return;
    open.exitedAt = iso(at) || undefined;
    if (at) open.durationMs = at.getTime() - new Date(open.enteredAt).getTime();
    if (open.type !== 'Fail') open.outcome = lastResultFailed ? 'failed' : 'succeeded';
    open = undefined;
  };

  for (const event of events) {
    const type = event.type ?? '';
    if (type === 'ExecutionStarted') trace.startedAt = iso(event.timestamp);
    if (type.endsWith('StateEntered') && event.stateEnteredEventDetails) {
      close(event.timestamp);
      lastResultFailed = false;
      const stateType = type.slice(0, -'StateEntered'.length);
      open = {
        state: event.stateEnteredEventDetails.name ?? '?',
        type: stateType,
        enteredAt: iso(event.timestamp),
        attempts: 0,
        retries: 0,
        errors: [],
        outcome: stateType === 'Fail' ? 'failed' : 'running',
      };
      entries.push(open);
      continue;
    }
    if (type.endsWith('StateExited')) {
      close(event.timestamp);
      continue;
    }
    if (open && SCHEDULED.has(type)) {
      open.attempts += 1;
      open.retries = Math.max(0, open.attempts - 1);
    }
    if (open && SUCCEEDED.has(type)) lastResultFailed = false;
    const failure = errorOf(event);
    if (open && failure) {
      open.errors.push({ ...failure, at: iso(event.timestamp) });
      lastResultFailed = true;
    }
    switch (type) {
      case 'ExecutionSucceeded':
        trace.status = 'SUCCEEDED';
        break;
      case 'ExecutionFailed':
        trace.status = 'FAILED';
        trace.failure = {
          ...trace.failure,
          executionError: event.executionFailedEventDetails?.error,
          executionCause: event.executionFailedEventDetails?.cause,
        };
        break;
      case 'ExecutionTimedOut':
        trace.status = 'TIMED_OUT';
        trace.failure = { ...trace.failure, executionError: 'States.Timeout', executionCause: event.executionTimedOutEventDetails?.cause };
        break;
      case 'ExecutionAborted':
        trace.status = 'ABORTED';
        trace.failure = { ...trace.failure, executionError: event.executionAbortedEventDetails?.error ?? 'Aborted', executionCause: event.executionAbortedEventDetails?.cause };
        break;
    }
    if (type === 'ExecutionSucceeded' || type === 'ExecutionFailed' || type === 'ExecutionTimedOut' || type === 'ExecutionAborted') {
      close(event.timestamp);
      trace.stoppedAt = iso(event.timestamp);
    }
  }
  if (trace.startedAt && trace.stoppedAt) trace.durationMs = new Date(trace.stoppedAt).getTime() - new Date(trace.startedAt).getTime();

  const failedState = entries.find((entry) => entry.outcome === 'failed' && entry.type !== 'Fail');
  if (failedState) {
    const last = failedState.errors[failedState.errors.length - 1];
    trace.failure = { ...trace.failure, state: failedState.state, error: last?.error, cause: last?.cause };
  }
  return trace;
}

export async function trace(deps: TraceDeps, options: TraceOptions): Promise<Trace> {
  const valid = validateTraceOptions(options);
  let executionArn = valid.execution;
  if (valid.thing !== undefined) {
    const record = await getCurrentRecord(deps, valid.thing);
    if (!record?.executionArn) throw new NotFoundError(`no rotation recorded for thing ${valid.thing} in table ${deps.tableName}`);
    executionArn = record.executionArn;
  }
  const events = await fetchHistory(deps.sfn, executionArn as string);
  return buildTrace(executionArn as string, events, deps.local, deps.consoleBase);
}

const TIMELINE_COLUMNS: readonly Column<TimelineEntry>[] = [
  { header: 'ENTERED', value: (e) => shortTime(e.enteredAt) },
  { header: 'STATE', value: (e) => e.state },
  { header: 'TOOK', value: (e) => shortDuration(e.durationMs) },
  { header: 'RETRIES', value: (e) => (e.retries ? String(e.retries) : '-') },
  { header: 'RESULT', value: (e) => (e.outcome === 'failed' && e.errors.length ? `failed: ${e.errors[e.errors.length - 1].error}` : e.outcome), maxWidth: 50 },
];

export function formatTrace(t: Trace): string[] {
  const lines = [
    `execution ${t.executionArn}`,
    `status    ${t.status}${t.durationMs !== undefined ? ` after ${shortDuration(t.durationMs)}` : ''}`,
    '',
    ...renderTable(TIMELINE_COLUMNS, t.entries),
  ];
  const retried = t.entries.filter((e) => e.errors.length > 0);
  for (const entry of retried) {
    lines.push('', `${entry.state}: ${entry.errors.length} error(s)`);
    for (const e of entry.errors) lines.push(`  ${shortTime(e.at)}  ${e.error}${e.cause ? `: ${e.cause.replace(/\s+/g, ' ').slice(0, 200)}` : ''}`);
  }
  if (t.failure) {
    lines.push('');
    if (t.failure.state) lines.push(`failed in ${t.failure.state}: ${t.failure.error ?? '?'}${t.failure.cause ? ` — ${t.failure.cause}` : ''}`);
    if (t.failure.executionError) lines.push(`execution error: ${t.failure.executionError}${t.failure.executionCause ? ` — ${t.failure.executionCause}` : ''}`);
  }
  lines.push('', t.local && !/^https?:/.test(t.link) ? 'local runtime: this history is the whole trace (its console is served by `rotor local up`)' : `console: ${t.link}`);
  return lines;
}
