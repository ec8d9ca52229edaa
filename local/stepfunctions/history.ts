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

export class History {
  readonly events: HistoryEvent[] = [];

  constructor(private readonly now: () => Date) {}

  add(type: HistoryEventType, details?: Record<string, unknown>): HistoryEvent {
    const event: HistoryEvent = {
      id: this.events.length + 1,
      previousEventId: this.events.length,
      timestamp: this.now(),
      type,
      details: details ? { [detailsField(type)]: details } : {},
    };
    this.events.push(event);
    return event;
  }

  /** State transitions as the console and the bill count them: one per StateEntered. */
  get stateTransitions(): number {
    return this.events.filter((e) => e.type.endsWith('StateEntered')).length;
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
