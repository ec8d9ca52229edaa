import { deflateRawSync, inflateRawSync } from 'node:zlib';

/**
 * Execution history in GetExecutionHistory's shape: AWS event type names and the
 * `<camelType>EventDetails` field each carries.
 */

export type StateType = 'Task' | 'Pass' | 'Choice' | 'Wait' | 'Succeed' | 'Fail' | 'Parallel' | 'Map';

export type HistoryEventType =
  | 'ExecutionStarted'
  | 'ExecutionSucceeded'
  | 'ExecutionFailed'
  | 'ExecutionAborted'
  | 'ExecutionTimedOut'
  | 'ExecutionRedriven'
  | `${StateType}StateEntered`
  | `${StateType}StateExited`
  | 'TaskScheduled'
  | 'TaskStarted'
  | 'TaskSubmitted'
  | 'TaskSucceeded'
  | 'TaskFailed'
  | 'TaskTimedOut'
  | 'LambdaFunctionScheduled'
  | 'LambdaFunctionStarted'
  | 'LambdaFunctionSucceeded'
  | 'LambdaFunctionFailed'
  | 'LambdaFunctionTimedOut'
  | 'ParallelStateStarted'
  | 'ParallelStateSucceeded'
  | 'ParallelStateFailed'
  | 'MapStateStarted'
  | 'MapStateSucceeded'
  | 'MapStateFailed'
  | 'MapIterationStarted'
  | 'MapIterationSucceeded'
  | 'MapIterationFailed';

export interface HistoryEvent {
  id: number;
  previousEventId: number;
  timestamp: Date;
  type: HistoryEventType;
  /** Keyed by AWS's field name, e.g. `stateEnteredEventDetails`. */
  details: Record<string, Record<string, unknown>>;
}

/** `TaskStateEntered` → `stateEnteredEventDetails`, `TaskFailed` → `taskFailedEventDetails`. */
export function detailsField(type: HistoryEventType): string {
  const stateEvent = /^(?:Task|Pass|Choice|Wait|Succeed|Fail|Parallel|Map)State(Entered|Exited)$/.exec(type);
  if (stateEvent) return `state${stateEvent[1]}EventDetails`;
  return `${type[0].toLowerCase()}${type.slice(1)}EventDetails`;
}

/** Fields that hold execution data, dropped when includeExecutionData is false. */
const DATA_FIELDS = new Set(['input', 'output', 'parameters', 'inputDetails', 'outputDetails']);

/** A finished execution's events, as deflated JSON (timestamps as epoch milliseconds). */
type SealedEvents = Buffer;

/**
 * An execution's events. While it runs they are objects; when it ends they are sealed into one
 * deflated buffer and read back on demand (GetExecutionHistory, the console, the demo's
 * figures). A rotation's history carries its CSR and certificate in a dozen inputs and
 * outputs, tens of kilobytes of repeated JSON: kept as objects for every finished execution
 * it was the largest share of the main thread's heap per device, and AWS keeps histories
 * for 90 days, so they cannot just be dropped.
 */
export class History {
  private live: HistoryEvent[] | undefined = [];
  private sealed: SealedEvents | undefined;
  private count = 0;
  private transitions = 0;

  constructor(private readonly now: () => Date) {}

  add(type: HistoryEventType, details?: Record<string, unknown>): HistoryEvent {
    // A redriven execution runs again: its history takes events again.
    const events = (this.live ??= this.unseal());
    this.sealed = undefined;
    const event: HistoryEvent = {
      id: this.count + 1,
      previousEventId: this.count,
      timestamp: this.now(),
      type,
      details: details ? { [detailsField(type)]: details } : {},
    };
    events.push(event);
    this.count += 1;
    if (type.endsWith('StateEntered')) this.transitions += 1;
    return event;
  }

  /** The events in order. A sealed history is read back into new objects each time. */
  get events(): readonly HistoryEvent[] {
    return this.live ?? this.unseal();
  }

  get length(): number {
    return this.count;
  }

  /** State transitions as the console and the bill count them: one per StateEntered. */
  get stateTransitions(): number {
    return this.transitions;
  }

  /** The execution ended: its events are kept deflated until they are read or it is redriven. */
  seal(): void {
    if (!this.live) return;
    this.sealed = deflateRawSync(JSON.stringify(this.live.map((e) => ({ ...e, timestamp: e.timestamp.getTime() }))), { level: 1 });
    this.live = undefined;
  }

  private unseal(): HistoryEvent[] {
    if (!this.sealed) return [];
    const stored = JSON.parse(inflateRawSync(this.sealed).toString('utf8')) as (Omit<HistoryEvent, 'timestamp'> & { timestamp: number })[];
    return stored.map((e) => ({ ...e, timestamp: new Date(e.timestamp) }));
  }
}

/** One event on the wire (dates as epoch seconds, as AWS JSON 1.0 sends them). */
export function serializeEvent(event: HistoryEvent, includeExecutionData: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: event.id,
    previousEventId: event.previousEventId,
    timestamp: event.timestamp.getTime() / 1000,
    type: event.type,
  };
  for (const [field, details] of Object.entries(event.details)) {
    out[field] = includeExecutionData ? details : Object.fromEntries(Object.entries(details).filter(([k]) => !DATA_FIELDS.has(k)));
  }
  return out;
}
