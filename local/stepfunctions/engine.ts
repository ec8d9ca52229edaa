import type { Clock } from '../types.js';
import { type ChoiceRule, evaluateRule } from './choice.js';
import { StatesErrorName, StatesFailure, errorMatches, runtimeError } from './errors.js';
import type { History, StateType } from './history.js';
import { type Integration, type IntegrationDeps, resolveIntegration } from './integrations.js';
import { type PathScope, applyResultPath, filterPath } from './paths.js';
import { evaluateExpression, evaluateTemplate } from './templates.js';
import type { TaskTokens, WaitingTask } from './tokens.js';

/**
 * The interpreter: runs the states of one execution (and of Parallel branches and Map
 * iterations) against an injected clock, so every wait, retry interval and timeout is scaled.
 */

export interface Retrier {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  MaxAttempts?: number;
  BackoffRate?: number;
  MaxDelaySeconds?: number;
  JitterStrategy?: 'FULL' | 'NONE';
}

export interface Catcher {
  ErrorEquals: string[];
  Next: string;
  ResultPath?: string | null;
  Assign?: Record<string, unknown>;
}

export interface StateDefinition {
  Type: StateType;
  Comment?: string;
  Next?: string;
  End?: boolean;
  QueryLanguage?: string;
  InputPath?: string | null;
  OutputPath?: string | null;
  Parameters?: unknown;
  ResultSelector?: unknown;
  ResultPath?: string | null;
  Result?: unknown;
  Assign?: Record<string, unknown>;
  // Task
  Resource?: string;
  TimeoutSeconds?: number;
  TimeoutSecondsPath?: string;
  HeartbeatSeconds?: number;
  HeartbeatSecondsPath?: string;
  Retry?: Retrier[];
  Catch?: Catcher[];
  // Choice
  Choices?: ChoiceRule[];
  Default?: string;
  // Wait
  Seconds?: number;
  SecondsPath?: string;
  Timestamp?: string;
  TimestampPath?: string;
  // Fail
  Error?: string;
  ErrorPath?: string;
  Cause?: string;
  CausePath?: string;
  // Parallel / Map
  Branches?: StateMachineDefinition[];
  ItemsPath?: string;
  ItemSelector?: unknown;
  ItemProcessor?: StateMachineDefinition;
  Iterator?: StateMachineDefinition;
  MaxConcurrency?: number;
}

export interface StateMachineDefinition {
  Comment?: string;
  StartAt: string;
  States: Record<string, StateDefinition>;
  TimeoutSeconds?: number;
  QueryLanguage?: string;
  Version?: string;
}

/** What `$$.Execution` and `$$.StateMachine` say for one execution. */
export interface ExecutionInfo {
  executionArn: string;
  name: string;
  startTime: string;
  input: unknown;
  roleArn: string;
  stateMachineArn: string;
  stateMachineName: string;
  redriveCount: number;
  redriveTime?: string;
}

export interface EngineDeps {
  integrations: IntegrationDeps;
  tokens: TaskTokens;
  clock: Clock;
  /** [0, 1); injected so that FULL jitter can be pinned in tests. */
  random: () => number;
  region: string;
  /** Resolves when the account's state-transition quota allows one more (local/edge/quotas.ts); absent: no quota. */
  transition?: (signal: AbortSignal) => Promise<void>;
}

/** Where a redrive starts again: the top-level state that failed, with what it was given. */
export interface ResumePoint {
  stateName: string;
  input: unknown;
  variables: Record<string, unknown>;
}

type Variables = Record<string, unknown>;

interface MapItem {
  Index: number;
  Value: unknown;
}

interface Frame {
  stateName: string;
  enteredTime: string;
  retryCount: number;
  token?: string;
  mapItem?: MapItem;
}

/** The default TimeoutSeconds of a Standard workflow's task: effectively none. */
const NO_TIMEOUT_SECONDS = 99_999_999;

/** The retry delay before attempt `count + 1` of a retrier, in workflow seconds. */
export function retryDelaySeconds(retrier: Retrier, count: number, random: () => number): number {
  const interval = retrier.IntervalSeconds ?? 1;
  const backoff = retrier.BackoffRate ?? 2;
  let delay = interval * Math.pow(backoff, count);
  if (retrier.MaxDelaySeconds !== undefined) delay = Math.min(delay, retrier.MaxDelaySeconds);
  return retrier.JitterStrategy === 'FULL' ? random() * delay : delay;
}

function rejectOnAbort(signal: AbortSignal): { promise: Promise<never>; dispose: () => void } {
  let onAbort = (): void => undefined;
  const promise = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  // The race that uses it may settle first; a later rejection must not go unhandled.
  promise.catch(() => undefined);
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}

/** A child signal that follows its parent and can also be aborted on its own. */
function childController(parent: AbortSignal): { controller: AbortController; dispose: () => void } {
  const controller = new AbortController();
  const follow = (): void => controller.abort(parent.reason);
  if (parent.aborted) follow();
  else parent.addEventListener('abort', follow, { once: true });
  return { controller, dispose: () => parent.removeEventListener('abort', follow) };
}

function json(value: unknown): string {
  return JSON.stringify(value) ?? 'null';
}

export class ExecutionRun {
  /** The top-level state in progress, kept for RedriveExecution. */
  resumePoint?: ResumePoint;

  constructor(
    private readonly deps: EngineDeps,
    private readonly info: ExecutionInfo,
    private readonly history: History,
  ) {}

  /** Runs the top-level states from `startAt`; throws a StatesFailure or the abort reason. */
  run(definition: StateMachineDefinition, startAt: string, input: unknown, variables: Variables, signal: AbortSignal): Promise<unknown> {
    return this.runStates(definition, startAt, input, variables, signal, true);
  }

  private context(frame: Frame): Record<string, unknown> {
    const execution: Record<string, unknown> = {
      Id: this.info.executionArn,
      Name: this.info.name,
      StartTime: this.info.startTime,
      Input: this.info.input,
      RoleArn: this.info.roleArn,
      RedriveCount: this.info.redriveCount,
    };
    if (this.info.redriveTime) execution.RedriveTime = this.info.redriveTime;
    const context: Record<string, unknown> = {
      Execution: execution,
      State: { Name: frame.stateName, EnteredTime: frame.enteredTime, RetryCount: frame.retryCount },
      StateMachine: { Id: this.info.stateMachineArn, Name: this.info.stateMachineName },
    };
    if (frame.token !== undefined) context.Task = { Token: frame.token };
    if (frame.mapItem) context.Map = { Item: frame.mapItem };
    return context;
  }

  private scope(input: unknown, frame: Frame, variables: Variables): PathScope {
    return { input, context: this.context(frame), variables };
  }

  private async runStates(
    machine: StateMachineDefinition,
    startAt: string,
    input: unknown,
    variables: Variables,
    signal: AbortSignal,
    topLevel: boolean,
    mapItem?: MapItem,
  ): Promise<unknown> {
    let name: string | undefined = startAt;
    let current = input;
    while (name !== undefined) {
      const state: StateDefinition | undefined = machine.States[name];
      if (!state) throw runtimeError(`The state '${name}' does not exist`);
      if (topLevel) this.resumePoint = { stateName: name, input: current, variables: structuredClone(variables) };
      const outcome = await this.runState(name, state, current, variables, signal, mapItem);
      current = outcome.output;
      name = outcome.next;
    }
    return current;
  }

  private async runState(
    name: string,
    state: StateDefinition,
    input: unknown,
    variables: Variables,
    signal: AbortSignal,
    mapItem?: MapItem,
  ): Promise<{ output: unknown; next?: string }> {
    if (signal.aborted) throw signal.reason;
    // AWS throttles state transitions by slowing the execution, never by failing it.
    if (this.deps.transition) await this.deps.transition(signal);
    const frame: Frame = { stateName: name, enteredTime: this.deps.clock.now().toISOString(), retryCount: 0, mapItem };
    this.history.add(`${state.Type}StateEntered`, { name, input: json(input), inputDetails: { truncated: false } });
    const outcome = await this.execute(state, frame, input, variables, signal);
    if (state.Type !== 'Fail') {
      const details: Record<string, unknown> = { name, output: json(outcome.output), outputDetails: { truncated: false } };
      if (outcome.assigned) details.assignedVariables = Object.fromEntries(Object.entries(outcome.assigned).map(([k, v]) => [k, json(v)]));
      this.history.add(`${state.Type}StateExited`, details);
    }
    return { output: outcome.output, next: outcome.next };
  }

  private assign(template: Record<string, unknown> | undefined, scope: PathScope, variables: Variables): Variables | undefined {
    if (!template) return undefined;
    // Every value is computed from the variables as they were before this Assign.
    const values = evaluateTemplate(template, scope, 'Assign') as Variables;
    Object.assign(variables, values);
    return values;
  }

  private async execute(
    state: StateDefinition,
    frame: Frame,
    rawInput: unknown,
    variables: Variables,
    signal: AbortSignal,
  ): Promise<{ output: unknown; next?: string; assigned?: Variables }> {
    const effective = filterPath(state.InputPath, this.scope(rawInput, frame, variables), 'InputPath');
    const next = state.End ? undefined : state.Next;
    const finish = (result: unknown, assignInput: unknown, nextState: string | undefined, extraAssign?: Record<string, unknown>) => {
      const assigned = this.assign({ ...(extraAssign ?? {}), ...(state.Assign ?? {}) }, this.scope(assignInput, frame, variables), variables);
      const combined = applyResultPath(rawInput, state.ResultPath, result);
      const output = filterPath(state.OutputPath, this.scope(combined, frame, variables), 'OutputPath');
      return { output, next: nextState, assigned: Object.keys(assigned ?? {}).length ? assigned : undefined };
    };
    switch (state.Type) {
      case 'Pass': {
        const result =
          state.Parameters !== undefined
            ? evaluateTemplate(state.Parameters, this.scope(effective, frame, variables))
            : state.Result !== undefined
              ? state.Result
              : effective;
        return finish(result, result, next);
      }
      case 'Choice': {
        const scope = this.scope(effective, frame, variables);
        const matched = (state.Choices ?? []).find((rule) => evaluateRule(rule, scope));
        const target = matched?.Next ?? state.Default;
        if (target === undefined) {
          throw new StatesFailure(StatesErrorName.NoChoiceMatched, `No Choice rule matched and there is no Default in state '${frame.stateName}'`);
        }
        const ruleAssign = matched?.Assign as Record<string, unknown> | undefined;
        const assigned = this.assign({ ...(state.Assign ?? {}), ...(ruleAssign ?? {}) }, scope, variables);
        const output = filterPath(state.OutputPath, this.scope(effective, frame, variables), 'OutputPath');
        return { output, next: target, assigned: Object.keys(assigned ?? {}).length ? assigned : undefined };
      }
      case 'Wait': {
        await this.deps.clock.sleep(this.waitSeconds(state, this.scope(effective, frame, variables)), signal);
        const assigned = this.assign(state.Assign, this.scope(effective, frame, variables), variables);
        const output = filterPath(state.OutputPath, this.scope(effective, frame, variables), 'OutputPath');
        return { output, next, assigned };
      }
      case 'Succeed': {
        const output = filterPath(state.OutputPath, this.scope(effective, frame, variables), 'OutputPath');
        return { output };
      }
      case 'Fail': {
        const scope = this.scope(effective, frame, variables);
        const error = state.ErrorPath !== undefined ? evaluateExpression(state.ErrorPath, scope, 'ErrorPath') : state.Error;
        const cause = state.CausePath !== undefined ? evaluateExpression(state.CausePath, scope, 'CausePath') : state.Cause;
        if ((error !== undefined && typeof error !== 'string') || (cause !== undefined && typeof cause !== 'string')) {
          throw runtimeError(`The Error and Cause of Fail state '${frame.stateName}' must be strings`);
        }
        throw new StatesFailure(error ?? '', cause ?? '');
      }
      case 'Task':
      case 'Parallel':
      case 'Map':
        return this.withRetryAndCatch(state, frame, rawInput, effective, variables, signal, finish, next);
    }
  }

  private waitSeconds(state: StateDefinition, scope: PathScope): number {
    const now = this.deps.clock.now().getTime();
    const until = (timestamp: unknown, field: string): number => {
      const at = typeof timestamp === 'string' ? Date.parse(timestamp) : NaN;
      if (Number.isNaN(at)) throw runtimeError(`${field} must be an ISO 8601 timestamp, got ${json(timestamp)}`);
      return Math.max(0, (at - now) / 1000);
    };
    if (state.Seconds !== undefined) return state.Seconds;
    if (state.Timestamp !== undefined) return until(state.Timestamp, 'Timestamp');
    if (state.TimestampPath !== undefined) return until(evaluateExpression(state.TimestampPath, scope, 'TimestampPath'), 'TimestampPath');
    if (state.SecondsPath !== undefined) {
      const seconds = evaluateExpression(state.SecondsPath, scope, 'SecondsPath');
      if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 0) {
        throw runtimeError(`SecondsPath must resolve to a non-negative integer, got ${json(seconds)}`);
      }
      return seconds;
    }
    throw runtimeError('A Wait state needs Seconds, SecondsPath, Timestamp or TimestampPath');
  }

  private async withRetryAndCatch(
    state: StateDefinition,
    frame: Frame,
    rawInput: unknown,
    effective: unknown,
    variables: Variables,
    signal: AbortSignal,
    finish: (result: unknown, assignInput: unknown, next: string | undefined, extraAssign?: Record<string, unknown>) => { output: unknown; next?: string; assigned?: Variables },
    next: string | undefined,
  ) {
    const retriers = state.Retry ?? [];
    const counts = retriers.map(() => 0);
    for (;;) {
      try {
        let result = await this.attempt(state, frame, effective, variables, signal);
        if (state.ResultSelector !== undefined) result = evaluateTemplate(state.ResultSelector, this.scope(result, frame, variables), 'ResultSelector');
        return finish(result, result, next);
      } catch (error) {
        if (!(error instanceof StatesFailure) || error.terminal) throw error;
        const index = retriers.findIndex((r) => errorMatches(r.ErrorEquals, error.error));
        if (index >= 0 && counts[index] < (retriers[index].MaxAttempts ?? 3)) {
          const delay = retryDelaySeconds(retriers[index], counts[index], this.deps.random);
          counts[index]++;
          frame.retryCount++;
          await this.deps.clock.sleep(delay, signal);
          // A retry is a state transition too.
          if (this.deps.transition) await this.deps.transition(signal);
          continue;
        }
        const catcher = (state.Catch ?? []).find((c) => errorMatches(c.ErrorEquals, error.error));
        if (!catcher) throw error;
        const errorOutput = { Error: error.error, Cause: error.causeText };
        const assigned = this.assign(catcher.Assign, this.scope(errorOutput, frame, variables), variables);
        const output = applyResultPath(rawInput, catcher.ResultPath, errorOutput);
        return { output, next: catcher.Next, assigned };
      }
    }
  }

  private attempt(state: StateDefinition, frame: Frame, effective: unknown, variables: Variables, signal: AbortSignal): Promise<unknown> {
    switch (state.Type) {
      case 'Task':
        return this.runTask(state, frame, effective, variables, signal);
      case 'Parallel':
        return this.runParallel(state, frame, effective, variables, signal);
      case 'Map':
        return this.runMap(state, frame, effective, variables, signal);
      default:
        throw runtimeError(`State type ${state.Type} has no attempts`);
    }
  }

  private secondsSetting(state: StateDefinition, field: 'Timeout' | 'Heartbeat', scope: PathScope): number | undefined {
    const value = state[`${field}Seconds`];
    if (value !== undefined) return value;
    const path = state[`${field}SecondsPath`];
    if (path === undefined) return undefined;
    const resolved = evaluateExpression(path, scope, `${field}SecondsPath`);
    if (typeof resolved !== 'number' || !Number.isInteger(resolved) || resolved <= 0) {
      throw runtimeError(`${field}SecondsPath must resolve to a positive integer, got ${json(resolved)}`);
    }
    return resolved;
  }

  private async runTask(state: StateDefinition, frame: Frame, effective: unknown, variables: Variables, signal: AbortSignal): Promise<unknown> {
    const resource = state.Resource ?? '';
    const integration = resolveIntegration(resource, this.deps.integrations);
    if (!integration) throw runtimeError(`The resource '${resource}' is not supported by the local Step Functions`);
    const waiting: WaitingTask | undefined =
      integration.pattern === 'wait-for-task-token' ? this.deps.tokens.open(() => heartbeat.restart()) : undefined;
    frame.token = waiting?.token;
    const scope = this.scope(effective, frame, variables);
    const timeoutSeconds = this.secondsSetting(state, 'Timeout', scope) ?? NO_TIMEOUT_SECONDS;
    const heartbeatSeconds = this.secondsSetting(state, 'Heartbeat', scope);
    let parameters: unknown;
    try {
      parameters = state.Parameters !== undefined ? evaluateTemplate(state.Parameters, scope) : effective;
    } catch (error) {
      waiting?.close();
      throw error;
    }

    const { controller, dispose } = childController(signal);
    const heartbeat = this.heartbeatTimer(heartbeatSeconds, controller.signal);
    this.recordScheduled(integration, parameters, timeoutSeconds, heartbeatSeconds);
    const stopped = rejectOnAbort(signal);
    const timeout = this.deps.clock.sleep(timeoutSeconds, controller.signal).then(() => {
      throw new StatesFailure(StatesErrorName.Timeout, `The task '${frame.stateName}' did not finish within ${timeoutSeconds} seconds`);
    });
    timeout.catch(() => undefined);
    try {
      const result = await Promise.race([this.callIntegration(integration, parameters, waiting), timeout, heartbeat.expired, stopped.promise]);
      this.recordOutcome(integration, { result });
      return result;
    } catch (error) {
      if (error instanceof StatesFailure) this.recordOutcome(integration, { failure: error });
      throw error;
    } finally {
      waiting?.close();
      controller.abort(new Error('task closed'));
      stopped.dispose();
      dispose();
    }
  }

  private async callIntegration(integration: Integration, parameters: unknown, waiting: WaitingTask | undefined): Promise<unknown> {
    if (!waiting) return integration.call(parameters);
    let answered = false;
    const submitted = integration.call(parameters).then((output) => {
      if (!answered) this.history.add('TaskSubmitted', { resourceType: integration.resourceType, resource: integration.resource, output: json(output) });
    });
    submitted.catch(() => undefined);
    // A token may be answered before the invoke returns; a failed invoke fails the task.
    const answer = await Promise.race([waiting.answer, submitted.then(() => waiting.answer)]);
    answered = true;
    if (answer.kind === 'failure') throw new StatesFailure(answer.error, answer.cause);
    return answer.output;
  }

  private heartbeatTimer(seconds: number | undefined, signal: AbortSignal): { expired: Promise<never>; restart: () => void } {
    if (seconds === undefined) return { expired: new Promise<never>(() => undefined), restart: () => undefined };
    let reject!: (error: unknown) => void;
    const expired = new Promise<never>((_resolve, r) => {
      reject = r;
    });
    expired.catch(() => undefined);
    let current: AbortController | undefined;
    const restart = (): void => {
      current?.abort();
      if (signal.aborted) return;
      const beat = new AbortController();
      current = beat;
      const follow = (): void => beat.abort();
      signal.addEventListener('abort', follow, { once: true });
      this.deps.clock.sleep(seconds, beat.signal).then(
        () => reject(new StatesFailure(StatesErrorName.HeartbeatTimeout, `No heartbeat within ${seconds} seconds`)),
        () => signal.removeEventListener('abort', follow),
      );
    };
    restart();
    return { expired, restart };
  }

  private recordScheduled(integration: Integration, parameters: unknown, timeoutSeconds: number, heartbeatSeconds: number | undefined): void {
    if (integration.pattern === 'legacy-lambda') {
      this.history.add('LambdaFunctionScheduled', { resource: integration.resource, input: json(parameters), timeoutInSeconds: timeoutSeconds });
      this.history.add('LambdaFunctionStarted');
      return;
    }
    const details: Record<string, unknown> = {
      resourceType: integration.resourceType,
      resource: integration.resource,
      region: this.deps.region,
      parameters: json(parameters),
    };
    if (timeoutSeconds !== NO_TIMEOUT_SECONDS) details.timeoutInSeconds = timeoutSeconds;
    if (heartbeatSeconds !== undefined) details.heartbeatInSeconds = heartbeatSeconds;
    this.history.add('TaskScheduled', details);
    this.history.add('TaskStarted', { resourceType: integration.resourceType, resource: integration.resource });
  }

  private recordOutcome(integration: Integration, outcome: { result: unknown } | { failure: StatesFailure }): void {
    const legacy = integration.pattern === 'legacy-lambda';
    const ids = legacy ? {} : { resourceType: integration.resourceType, resource: integration.resource };
    if ('result' in outcome) {
      this.history.add(legacy ? 'LambdaFunctionSucceeded' : 'TaskSucceeded', { ...ids, output: json(outcome.result), outputDetails: { truncated: false } });
      return;
    }
    const { error, causeText } = outcome.failure;
    const timedOut = error === StatesErrorName.Timeout || error === StatesErrorName.HeartbeatTimeout;
    const type = legacy ? (timedOut ? 'LambdaFunctionTimedOut' : 'LambdaFunctionFailed') : timedOut ? 'TaskTimedOut' : 'TaskFailed';
    this.history.add(type, { ...ids, error, cause: causeText });
  }

  private async runParallel(state: StateDefinition, frame: Frame, effective: unknown, variables: Variables, signal: AbortSignal): Promise<unknown> {
    const input = state.Parameters !== undefined ? evaluateTemplate(state.Parameters, this.scope(effective, frame, variables)) : effective;
    this.history.add('ParallelStateStarted');
    const branches = state.Branches ?? [];
    const { controller, dispose } = childController(signal);
    try {
      const results = await Promise.all(
        branches.map((branch) =>
          this.runStates(branch, branch.StartAt, input, structuredClone(variables), controller.signal, false).catch((error: unknown) => {
            controller.abort(error);
            throw error;
          }),
        ),
      );
      this.history.add('ParallelStateSucceeded');
      return results;
    } catch (error) {
      this.history.add('ParallelStateFailed', error instanceof StatesFailure ? { error: error.error, cause: error.causeText } : {});
      throw error;
    } finally {
      dispose();
    }
  }

  private async runMap(state: StateDefinition, frame: Frame, effective: unknown, variables: Variables, signal: AbortSignal): Promise<unknown> {
    const items = filterPath(state.ItemsPath, this.scope(effective, frame, variables), 'ItemsPath');
    if (!Array.isArray(items)) throw runtimeError(`ItemsPath of Map state '${frame.stateName}' must select an array, got ${json(items)}`);
    const processor = state.ItemProcessor ?? state.Iterator;
    if (!processor) throw runtimeError(`Map state '${frame.stateName}' has no ItemProcessor`);
    const selector = state.ItemSelector ?? state.Parameters;
    this.history.add('MapStateStarted', { length: items.length });
    const limit = state.MaxConcurrency && state.MaxConcurrency > 0 ? state.MaxConcurrency : items.length;
    const results: unknown[] = new Array(items.length);
    const { controller, dispose } = childController(signal);
    let nextIndex = 0;
    const worker = async (): Promise<void> => {
      while (nextIndex < items.length) {
        const index = nextIndex++;
        const mapItem = { Index: index, Value: items[index] };
        const itemFrame: Frame = { ...frame, mapItem };
        const itemInput = selector !== undefined ? evaluateTemplate(selector, this.scope(effective, itemFrame, variables), 'ItemSelector') : items[index];
        this.history.add('MapIterationStarted', { name: frame.stateName, index });
        results[index] = await this.runStates(processor, processor.StartAt, itemInput, structuredClone(variables), controller.signal, false, mapItem);
        this.history.add('MapIterationSucceeded', { name: frame.stateName, index });
      }
    };
    try {
      await Promise.all(
        Array.from({ length: Math.max(1, limit) }, () =>
          worker().catch((error: unknown) => {
            controller.abort(error);
            throw error;
          }),
        ),
      );
      this.history.add('MapStateSucceeded');
      return results;
    } catch (error) {
      this.history.add('MapStateFailed', error instanceof StatesFailure ? { error: error.error, cause: error.causeText } : {});
      throw error;
    } finally {
      dispose();
    }
  }
}
