/**
 * Errors inside an execution. A state that fails raises a StatesFailure carrying the
 * `error`/`cause` pair that Retry and Catch match and that DescribeExecution reports.
 */

/** Step Functions' own error names, as the ASL spec spells them. */
export const StatesErrorName = {
  All: 'States.ALL',
  Timeout: 'States.Timeout',
  HeartbeatTimeout: 'States.HeartbeatTimeout',
  TaskFailed: 'States.TaskFailed',
  Runtime: 'States.Runtime',
  DataLimitExceeded: 'States.DataLimitExceeded',
  ResultPathMatchFailure: 'States.ResultPathMatchFailure',
  ParameterPathFailure: 'States.ParameterPathFailure',
  IntrinsicFailure: 'States.IntrinsicFailure',
  NoChoiceMatched: 'States.NoChoiceMatched',
  BranchFailed: 'States.BranchFailed',
} as const;

/**
 * Errors no Retry or Catch can handle, not even States.ALL: AWS ends the execution on
 * them because the definition, not the world, is wrong.
 */
const TERMINAL_ERRORS: ReadonlySet<string> = new Set([StatesErrorName.Runtime, StatesErrorName.DataLimitExceeded]);

export class StatesFailure extends Error {
  constructor(
    readonly error: string,
    readonly causeText: string,
  ) {
    super(`${error}: ${causeText}`);
    this.name = 'StatesFailure';
  }

  get terminal(): boolean {
    return TERMINAL_ERRORS.has(this.error);
  }
}

/** A definition problem found while running (a path that is not there, a bad type). */
export function runtimeError(message: string): StatesFailure {
  return new StatesFailure(StatesErrorName.Runtime, message);
}

/** Raised into a running execution when StopExecution aborts it. */
export class ExecutionStopped extends Error {
  constructor(
    readonly error: string | undefined,
    readonly causeText: string | undefined,
  ) {
    super('execution stopped');
    this.name = 'ExecutionStopped';
  }
}

/** Raised when the execution's own TimeoutSeconds elapses. */
export class ExecutionTimedOut extends Error {
  constructor() {
    super('execution timed out');
    this.name = 'ExecutionTimedOut';
  }
}

/**
 * AWS's matching rules for one ErrorEquals list: States.ALL matches every non-terminal
 * error, States.TaskFailed every one except the timeouts, States.Timeout also matches a
 * heartbeat timeout (the spec counts a missed heartbeat as a timeout).
 */
export function errorMatches(errorEquals: readonly string[], error: string): boolean {
  if (TERMINAL_ERRORS.has(error)) return false;
  const isTimeout = error === StatesErrorName.Timeout || error === StatesErrorName.HeartbeatTimeout;
  return errorEquals.some((name) => {
    if (name === error) return true;
    if (name === StatesErrorName.All) return true;
    if (name === StatesErrorName.TaskFailed) return !isTimeout;
    if (name === StatesErrorName.Timeout) return error === StatesErrorName.HeartbeatTimeout;
    return false;
  });
}
