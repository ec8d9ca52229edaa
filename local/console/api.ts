import type { ExecutionPath, StateGraph, ViewEvent } from './execution-view.js';

/**
 * The console's read-only JSON API (GET /console/api/…), shared by the server and the pages.
 * The server gets its answers from a ConsoleSource, which the CLI builds on the runtime's
 * public APIs (cli/console/console-source.ts): this folder knows nothing about the engine.
 */

export type RotationStatusName = string;

export interface FleetBucket {
  /** Start of the bucket (ISO). */
  at: string;
  started: number;
  succeeded: number;
  failed: number;
}

export interface FleetView {
  generatedAt: string;
  /** The rotation table's current records per status, as `rotor status` counts them. */
  counts: Record<RotationStatusName, number>;
  total: number;
  /** Executions started / succeeded / failed per time bucket (ListExecutions). */
  series: { bucketMs: number; buckets: FleetBucket[] };
  executions: { total: number; byStatus: Record<string, number> };
  /** IN_PROGRESS records per step. */
  inFlightByStep: Record<string, number>;
  /** FAILED records per reason. */
  failuresByReason: Record<string, number>;
  /** Calls the local edge answered with a throttling error, per `service:Operation`, when there were any. */
  throttledByOperation?: Record<string, number>;
  /** Pacing rate per API (calls/s), when the runtime paces its calls. */
  pacingRatePerApi?: Record<string, number>;
}

export interface ExecutionSummary {
  executionArn: string;
  name: string;
  status: string;
  startDate?: string;
  stopDate?: string;
}

export interface ExecutionFilter {
  status?: string;
  /** Part of the execution name (which starts with the thing name). */
  thing?: string;
  /** ISO times bounding the start date. */
  since?: string;
  until?: string;
  limit: number;
}

export interface ExecutionList {
  executions: ExecutionSummary[];
  /** More matched than `limit`. */
  truncated: boolean;
}

export interface ExecutionView {
  execution: ExecutionSummary & { stateMachineArn?: string; input?: string; output?: string; error?: string; cause?: string };
  stateMachine: { name?: string; stateMachineArn: string };
  graph: StateGraph;
  path: ExecutionPath;
  events: ViewEvent[];
  /** The first state whose error was not retried away, with its error. */
  failure?: { state?: string; error?: string; cause?: string };
}

export interface ThingRotation {
  rotationId: string;
  status: string;
  step: string;
  reason?: string;
  cause?: string;
  trigger?: string;
  startedAt: string;
  finishedAt?: string;
  executionArn: string;
}

export interface ThingView {
  thing: string;
  current?: ThingRotation & { attempts: number; updatedAt: string };
  history: ThingRotation[];
}

/** Where the console's answers come from. Each method answers with plain JSON-able data. */
export interface ConsoleSource {
  fleet(): Promise<FleetView>;
  executions(filter: ExecutionFilter): Promise<ExecutionList>;
  /** undefined: no such execution. */
  execution(executionArn: string): Promise<ExecutionView | undefined>;
  /** undefined: nothing recorded for the thing. */
  thing(thingName: string): Promise<ThingView | undefined>;
}

/** Console paths, one definition for the server, the pages and the CLI's links. */
export const CONSOLE_PREFIX = '/console/';

export function consoleExecutionPath(executionArn: string): string {
  // The ARN as it is (its characters are safe in a path), as the URLs show it.
  return `${CONSOLE_PREFIX}executions/${executionArn.replace(/[^A-Za-z0-9:_.-]/g, (c) => encodeURIComponent(c))}`;
}

export function consoleThingPath(thingName: string): string {
  return `${CONSOLE_PREFIX}things/${encodeURIComponent(thingName)}`;
}
