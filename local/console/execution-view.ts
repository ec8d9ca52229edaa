/**
 * What the console draws for one execution, derived from the state machine's definition and
 * the execution's history alone — nothing about Rotor's own states is written here, so a state
 * another change adds to the ASL shows up in the graph and gets its colour like the others.
 * Pure: the server computes it from API answers, the unit tests from fixtures.
 */

/** What happened to a state in this execution, as the Step Functions console colours it. */
export const StateOutcome = {
  Succeeded: 'succeeded',
  /** Its error ended the execution, or it is a Fail state that was entered. */
  Failed: 'failed',
  /** Its error was taken by a Catch: the execution went on along the catch's Next. */
  Caught: 'caught',
  /** It failed at least once and a Retry made it succeed. */
  Retried: 'retried',
  InProgress: 'in-progress',
  NotReached: 'not-reached',
} as const;
export type StateOutcome = (typeof StateOutcome)[keyof typeof StateOutcome];

export type EdgeKind = 'next' | 'choice' | 'default' | 'catch';

export interface GraphNode {
  name: string;
  /** Task, Choice, Succeed, Fail, … as the definition says. */
  type: string;
  start: boolean;
}

export interface GraphEdge {
  from: string;
  to: string;
  kind: EdgeKind;
  /** The errors a catch takes, or the rule of a choice. */
  label?: string;
}

export interface StateGraph {
  startAt: string;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

/** A minimal history event: the fields of the SDK's HistoryEvent the view reads (dates as ISO strings). */
export interface ViewEvent {
  id: number;
  type: string;
  timestamp?: string;
  stateEnteredEventDetails?: { name?: string; input?: string };
  stateExitedEventDetails?: { name?: string; output?: string };
  [details: string]: unknown;
}

export interface StateRun {
  name: string;
  outcome: StateOutcome;
  /** How often it was entered. */
  visits: number;
  /** Task schedules beyond the first, over every visit. */
  retries: number;
  enteredAt?: string;
  exitedAt?: string;
  /** Of the last visit. */
  input?: string;
  output?: string;
  errors: { error: string; cause?: string; eventId: number }[];
}

export interface ExecutionPath {
  states: Record<string, StateRun>;
  /** Transitions taken, `from → to`, in order. */
  transitions: { from: string; to: string }[];
}

interface AslState {
  Type?: string;
  Next?: string;
  End?: boolean;
  Default?: string;
  Choices?: { Next?: string; Variable?: string; Condition?: string }[];
  Catch?: { ErrorEquals?: string[]; Next?: string }[];
}

export class DefinitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DefinitionError';
  }
}

/** The graph of a definition's top-level states: every Next, Choice, Default and Catch is an edge. */
export function stateGraph(definition: string | object): StateGraph {
  let parsed: { StartAt?: unknown; States?: Record<string, AslState> };
  try {
    parsed = (typeof definition === 'string' ? JSON.parse(definition) : definition) as typeof parsed;
  } catch (error) {
    throw new DefinitionError(`the state machine definition is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed?.StartAt !== 'string' || !parsed.States || typeof parsed.States !== 'object') {
    throw new DefinitionError('the state machine definition has no StartAt or States');
  }
  const startAt = parsed.StartAt;
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  for (const [name, state] of Object.entries(parsed.States)) {
    nodes.push({ name, type: state.Type ?? '?', start: name === startAt });
    if (state.Next) edges.push({ from: name, to: state.Next, kind: 'next' });
    for (const choice of state.Choices ?? []) {
      if (choice.Next) edges.push({ from: name, to: choice.Next, kind: 'choice', label: choice.Variable ?? choice.Condition });
    }
    if (state.Default) edges.push({ from: name, to: state.Default, kind: 'default', label: 'default' });
    for (const c of state.Catch ?? []) {
      if (c.Next) edges.push({ from: name, to: c.Next, kind: 'catch', label: (c.ErrorEquals ?? []).join(', ') });
    }
  }
  const known = new Set(nodes.map((n) => n.name));
  const dangling = edges.find((e) => !known.has(e.to));
  if (dangling) throw new DefinitionError(`state '${dangling.from}' goes to '${dangling.to}', which the definition does not have`);
  return { startAt, nodes, edges };
}

const SCHEDULED = /(Task|LambdaFunction|Activity)Scheduled$/;
const SUCCEEDED = /(Task|LambdaFunction|Activity)Succeeded$/;
const ENDED = new Set(['ExecutionSucceeded', 'ExecutionFailed', 'ExecutionTimedOut', 'ExecutionAborted']);

function failureOf(event: ViewEvent): { error: string; cause?: string } | undefined {
  if (!/(Failed|TimedOut)$/.test(event.type) || event.type.startsWith('Execution')) return undefined;
  const key = Object.keys(event).find((k) => k.endsWith('EventDetails') && k !== 'stateEnteredEventDetails' && k !== 'stateExitedEventDetails');
  const details = (key ? event[key] : undefined) as { error?: string; cause?: string } | undefined;
  return { error: details?.error ?? event.type, cause: details?.cause };
}

/**
 * Replays a history (in event-id order) over the graph: each state's outcome, its visits and
 * retries, its last input and output, and the transitions taken.
 */
export function executionPath(graph: StateGraph, events: readonly ViewEvent[], executionStatus: string): ExecutionPath {
  const states: Record<string, StateRun> = {};
  for (const node of graph.nodes) states[node.name] = { name: node.name, outcome: StateOutcome.NotReached, visits: 0, retries: 0, errors: [] };
  const transitions: { from: string; to: string }[] = [];
  const typeOf = new Map(graph.nodes.map((n) => [n.name, n.type]));

  let open: StateRun | undefined;
  let schedules = 0;
  let lastFailed = false;
  let failedOnce = false;

  /** The open state is left: `next` says whether the execution went on to another state. */
  const leave = (next: 'state' | 'end' | 'running'): void => {
    if (!open) return;
    if (typeOf.get(open.name) === 'Fail') open.outcome = StateOutcome.Failed;
    else if (next === 'running') open.outcome = StateOutcome.InProgress;
    else if (lastFailed) open.outcome = next === 'state' ? StateOutcome.Caught : StateOutcome.Failed;
    else open.outcome = failedOnce ? StateOutcome.Retried : StateOutcome.Succeeded;
    open = undefined;
  };

  for (const event of [...events].sort((a, b) => a.id - b.id)) {
    if (event.type.endsWith('StateEntered')) {
      const name = event.stateEnteredEventDetails?.name ?? '?';
      const run = (states[name] ??= { name, outcome: StateOutcome.NotReached, visits: 0, retries: 0, errors: [] });
      if (open) {
        transitions.push({ from: open.name, to: name });
        leave('state');
      }
      open = run;
      run.visits += 1;
      run.enteredAt = event.timestamp;
      run.exitedAt = undefined;
      run.input = event.stateEnteredEventDetails?.input;
      run.output = undefined;
      schedules = 0;
      lastFailed = false;
      failedOnce = false;
      continue;
    }
    if (event.type.endsWith('StateExited')) {
      if (open) {
        open.exitedAt = event.timestamp;
        open.output = event.stateExitedEventDetails?.output;
      }
      continue;
    }
    if (!open) continue;
    if (SCHEDULED.test(event.type)) {
      schedules += 1;
      if (schedules > 1) open.retries += 1;
    } else if (SUCCEEDED.test(event.type)) {
      lastFailed = false;
    } else if (ENDED.has(event.type)) {
      // An execution that failed, timed out or was aborted inside a state ends that state as failed.
      if (event.type !== 'ExecutionSucceeded') lastFailed = true;
      leave('end');
    } else {
      const failure = failureOf(event);
      if (failure) {
        open.errors.push({ ...failure, eventId: event.id });
        lastFailed = true;
        failedOnce = true;
      }
    }
  }
  leave(executionStatus === 'RUNNING' ? 'running' : 'end');
  return { states, transitions };
}
