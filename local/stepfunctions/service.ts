import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AwsError, type Clock, type EdgeRequest, type EdgeResponse, type LambdaInvoker, type LocalService, type SnsPublisher } from '../types.js';
import { parseDefinition } from './definition.js';
import { type ExecutionInfo, ExecutionRun, type ResumePoint, type StateMachineDefinition } from './engine.js';
import { ExecutionStopped, ExecutionTimedOut, StatesErrorName, StatesFailure } from './errors.js';
import { History, serializeEvent } from './history.js';
import type { IntegrationDeps } from './integrations.js';
import { TaskTokens } from './tokens.js';

/**
 * The local Step Functions API (AWS JSON 1.0, `X-Amz-Target: AWSStepFunctions.<Op>`), so the
 * unmodified @aws-sdk/client-sfn talks to it through the edge endpoint.
 */

export interface StepFunctionsOptions {
  invoker: LambdaInvoker;
  dynamodb: DynamoDBClient;
  sns: SnsPublisher;
  clock: Clock;
  region: string;
  accountId: string;
  /** [0, 1) for FULL jitter; Math.random unless a test pins it. */
  random?: () => number;
  /** The account's state-transition quota (local/edge/quotas.ts): each transition waits for it. */
  transition?: (signal: AbortSignal) => Promise<void>;
}

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

interface StateMachineRecord {
  arn: string;
  name: string;
  definitionText: string;
  definition: StateMachineDefinition;
  roleArn: string;
  type: 'STANDARD' | 'EXPRESS';
  creationDate: Date;
  updateDate?: Date;
}

interface ExecutionRecord {
  arn: string;
  name: string;
  stateMachine: StateMachineRecord;
  /** The definition the execution started with; updates to the state machine do not change it. */
  definition: StateMachineDefinition;
  input: string;
  status: ExecutionStatus;
  startDate: Date;
  stopDate?: Date;
  output?: string;
  error?: string;
  cause?: string;
  redriveCount: number;
  redriveDate?: Date;
  history: History;
  resumePoint?: ResumePoint;
  abort: AbortController;
  done: Promise<void>;
}

/** What DescribeExecution returns, with Date fields for in-process callers. */
export interface ExecutionDescription {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: ExecutionStatus;
  startDate: Date;
  stopDate?: Date;
  input: string;
  output?: string;
  error?: string;
  cause?: string;
  redriveCount: number;
  redriveDate?: Date;
  redriveStatus: 'REDRIVABLE' | 'NOT_REDRIVABLE';
  redriveStatusReason?: string;
}

const NAME = /^[^\s<>{}[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]{1,80}$/;
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;
const JSON_CONTENT_TYPE = 'application/x-amz-json-1.0';

type Body = Record<string, unknown>;
type Operation = (body: Body) => Promise<Body> | Body;

function str(body: Body, field: string, required: true): string;
function str(body: Body, field: string, required?: false): string | undefined;
function str(body: Body, field: string, required = false): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) {
    if (required) throw new AwsError('ValidationException', `1 validation error detected: Value null at '${field}' failed to satisfy constraint: Member must not be null`);
    return undefined;
  }
  if (typeof value !== 'string') throw new AwsError('ValidationException', `'${field}' must be a string`);
  return value;
}

function seconds(date: Date | undefined): number | undefined {
  return date === undefined ? undefined : date.getTime() / 1000;
}

function page<T>(items: readonly T[], body: Body): { items: T[]; nextToken?: string } {
  const max = body.maxResults === undefined || body.maxResults === 0 ? DEFAULT_PAGE : Number(body.maxResults);
  if (!Number.isInteger(max) || max < 0 || max > MAX_PAGE) throw new AwsError('ValidationException', `maxResults must be between 0 and ${MAX_PAGE}`);
  let start = 0;
  const token = str(body, 'nextToken');
  if (token !== undefined) {
    const decoded = Number(Buffer.from(token, 'base64url').toString('utf8').replace(/^offset:/, ''));
    if (!Number.isInteger(decoded) || decoded < 0 || decoded > items.length) throw new AwsError('InvalidToken', 'Invalid pagination token');
    start = decoded;
  }
  const slice = items.slice(start, start + max);
  const end = start + slice.length;
  return { items: slice, nextToken: end < items.length ? Buffer.from(`offset:${end}`).toString('base64url') : undefined };
}

function dropUndefined(body: Body): Body {
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
}

export class StepFunctionsService implements LocalService {
  readonly signingNames = ['states'] as const;
  private readonly stateMachines = new Map<string, StateMachineRecord>();
  private readonly executions = new Map<string, ExecutionRecord>();
  private readonly tokens = new TaskTokens();
  private readonly integrations: IntegrationDeps;
  private readonly random: () => number;
  private readonly operations: Record<string, Operation>;
  private stopped = false;

  constructor(private readonly options: StepFunctionsOptions) {
    this.integrations = { invoker: options.invoker, dynamodb: options.dynamodb, sns: options.sns };
    this.random = options.random ?? Math.random;
    this.operations = {
      CreateStateMachine: (b) => this.createStateMachine(b),
      DescribeStateMachine: (b) => this.describeStateMachine(b),
      UpdateStateMachine: (b) => this.updateStateMachine(b),
      ListStateMachines: (b) => this.listStateMachines(b),
      DeleteStateMachine: (b) => this.deleteStateMachine(b),
      StartExecution: (b) => this.startExecution(b),
      DescribeExecution: (b) => this.describeExecutionBody(b),
      ListExecutions: (b) => this.listExecutions(b),
      StopExecution: (b) => this.stopExecution(b),
      GetExecutionHistory: (b) => this.getExecutionHistory(b),
      SendTaskSuccess: (b) => this.sendTaskSuccess(b),
      SendTaskFailure: (b) => this.sendTaskFailure(b),
      SendTaskHeartbeat: (b) => this.sendTaskHeartbeat(b),
      RedriveExecution: (b) => this.redriveExecution(b),
    };
  }

  async handle(request: EdgeRequest): Promise<EdgeResponse> {
    try {
      const target = request.target ?? request.headers['x-amz-target'] ?? '';
      const operation = target.startsWith('AWSStepFunctions.') ? target.slice('AWSStepFunctions.'.length) : target;
      const handler = this.operations[operation];
      if (!handler) throw new AwsError('UnknownOperationException', `Operation '${operation || '(none)'}' is not supported by the local Step Functions`);
      let body: unknown;
      try {
        body = request.body.length ? JSON.parse(request.body.toString('utf8')) : {};
      } catch {
        throw new AwsError('SerializationException', 'The request body is not valid JSON');
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AwsError('SerializationException', 'The request body must be a JSON object');
      const result = await handler(body as Body);
      return { status: 200, headers: { 'content-type': JSON_CONTENT_TYPE }, body: JSON.stringify(dropUndefined(result)) };
    } catch (error) {
      const aws = error instanceof AwsError ? error : new AwsError('InternalFailure', error instanceof Error ? error.message : String(error), 500);
      return {
        status: aws.status,
        headers: { 'content-type': JSON_CONTENT_TYPE, 'x-amzn-errortype': aws.code },
        body: JSON.stringify({ __type: aws.code, message: aws.message }),
      };
    }
  }

  // ---- in-process API for the runtime and tests ----

  /** Resolves when the execution is no longer RUNNING. */
  async waitForExecution(executionArn: string): Promise<ExecutionDescription> {
    for (;;) {
      const execution = this.execution(executionArn);
      await execution.done;
      if (execution.status !== 'RUNNING') return this.describe(execution);
    }
  }

  describeExecution(executionArn: string): ExecutionDescription {
    return this.describe(this.execution(executionArn));
  }

  /** The execution, or undefined when none has that ARN yet: for pollers, without an error per miss. */
  findExecution(executionArn: string): ExecutionDescription | undefined {
    const record = this.executions.get(executionArn);
    return record ? this.describe(record) : undefined;
  }

  /** State transitions as AWS bills them: one per StateEntered event. */
  stateTransitions(executionArn: string): number {
    return this.execution(executionArn).history.stateTransitions;
  }

  /** The names of the states an execution entered, in order. */
  statesEntered(executionArn: string): string[] {
    return this.execution(executionArn)
      .history.events.filter((e) => e.type.endsWith('StateEntered'))
      .map((e) => String(Object.values(e.details)[0]?.name));
  }

  /** How long each state entered took (StateEntered → StateExited), in order; for timing figures. */
  stateTimings(executionArn: string): { name: string; ms: number }[] {
    const timings: { name: string; ms: number }[] = [];
    const entered = new Map<string, Date>();
    for (const event of this.execution(executionArn).history.events) {
      const name = String(Object.values(event.details)[0]?.name);
      if (event.type.endsWith('StateEntered')) entered.set(name, event.timestamp);
      else if (event.type.endsWith('StateExited')) {
        const start = entered.get(name);
        if (start) timings.push({ name, ms: event.timestamp.getTime() - start.getTime() });
      }
    }
    return timings;
  }

  /** Aborts every running execution (their timers with them) and waits for them to settle. */
  async stop(): Promise<void> {
    this.stopped = true;
    const running = [...this.executions.values()].filter((e) => e.status === 'RUNNING');
    for (const execution of running) execution.abort.abort(new ExecutionStopped('States.Stopped', 'the local Step Functions service stopped'));
    await Promise.all(running.map((e) => e.done));
  }

  // ---- state machines ----

  private stateMachineArn(name: string): string {
    return `arn:aws:states:${this.options.region}:${this.options.accountId}:stateMachine:${name}`;
  }

  private stateMachine(arn: string): StateMachineRecord {
    if (!/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[^:]+$/.test(arn)) throw new AwsError('InvalidArn', `Invalid Arn: '${arn}'`);
    const record = this.stateMachines.get(arn);
    if (!record) throw new AwsError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${arn}'`);
    return record;
  }

  private createStateMachine(body: Body): Body {
    const name = str(body, 'name', true);
    if (!NAME.test(name)) throw new AwsError('InvalidName', `Invalid Name: '${name}'`);
    const definitionText = str(body, 'definition', true);
    const roleArn = str(body, 'roleArn', true);
    const type = (str(body, 'type') ?? 'STANDARD') as StateMachineRecord['type'];
    if (type !== 'STANDARD' && type !== 'EXPRESS') throw new AwsError('ValidationException', `type must be STANDARD or EXPRESS`);
    const definition = parseDefinition(definitionText, this.integrations);
    const arn = this.stateMachineArn(name);
    const existing = this.stateMachines.get(arn);
    if (existing) {
      if (existing.definitionText === definitionText && existing.roleArn === roleArn && existing.type === type) {
        return { stateMachineArn: arn, creationDate: seconds(existing.creationDate) };
      }
      throw new AwsError('StateMachineAlreadyExists', `State Machine Already Exists: '${arn}'`);
    }
    const record: StateMachineRecord = { arn, name, definitionText, definition, roleArn, type, creationDate: this.options.clock.now() };
    this.stateMachines.set(arn, record);
    return { stateMachineArn: arn, creationDate: seconds(record.creationDate) };
  }

  private describeStateMachine(body: Body): Body {
    const record = this.stateMachine(str(body, 'stateMachineArn', true));
    return {
      stateMachineArn: record.arn,
      name: record.name,
      status: 'ACTIVE',
      definition: record.definitionText,
      roleArn: record.roleArn,
      type: record.type,
      creationDate: seconds(record.creationDate),
      loggingConfiguration: { level: 'OFF', includeExecutionData: false },
    };
  }

  private updateStateMachine(body: Body): Body {
    const record = this.stateMachine(str(body, 'stateMachineArn', true));
    const definitionText = str(body, 'definition');
    const roleArn = str(body, 'roleArn');
    if (definitionText === undefined && roleArn === undefined) throw new AwsError('MissingRequiredParameter', 'Either the definition or the roleArn must be given');
    if (definitionText !== undefined) {
      record.definition = parseDefinition(definitionText, this.integrations);
      record.definitionText = definitionText;
    }
    if (roleArn !== undefined) record.roleArn = roleArn;
    record.updateDate = this.options.clock.now();
    return { updateDate: seconds(record.updateDate) };
  }

  private listStateMachines(body: Body): Body {
    const all = [...this.stateMachines.values()].sort((a, b) => a.name.localeCompare(b.name));
    const { items, nextToken } = page(all, body);
    return {
      stateMachines: items.map((r) => ({ stateMachineArn: r.arn, name: r.name, type: r.type, creationDate: seconds(r.creationDate) })),
      nextToken,
    };
  }

  private deleteStateMachine(body: Body): Body {
    const arn = str(body, 'stateMachineArn', true);
    const record = this.stateMachine(arn);
    // AWS stops the running executions of a deleted state machine.
    for (const execution of this.executions.values()) {
      if (execution.stateMachine === record && execution.status === 'RUNNING') {
        execution.abort.abort(new ExecutionStopped('States.Stopped', 'the state machine was deleted'));
      }
    }
    this.stateMachines.delete(arn);
    return {};
  }

  // ---- executions ----

  private execution(arn: string): ExecutionRecord {
    if (!/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[^:]+:[^:]+$/.test(arn)) throw new AwsError('InvalidArn', `Invalid Arn: '${arn}'`);
    const record = this.executions.get(arn);
    if (!record) throw new AwsError('ExecutionDoesNotExist', `Execution Does Not Exist: '${arn}'`);
    return record;
  }

  private startExecution(body: Body): Body {
    if (this.stopped) throw new AwsError('ServiceUnavailable', 'The local Step Functions service has stopped', 503);
    const stateMachine = this.stateMachine(str(body, 'stateMachineArn', true));
    const name = str(body, 'name') ?? randomUUID();
    if (!NAME.test(name)) throw new AwsError('InvalidName', `Invalid Name: '${name}'`);
    const input = str(body, 'input') ?? '{}';
    let parsedInput: unknown;
    try {
      parsedInput = JSON.parse(input);
    } catch {
      throw new AwsError('InvalidExecutionInput', `Invalid Execution Input: the input is not JSON`);
    }
    const arn = `arn:aws:states:${this.options.region}:${this.options.accountId}:execution:${stateMachine.name}:${name}`;
    const existing = this.executions.get(arn);
    if (existing) {
      // Standard workflows: the same name and input while the first is still running is the same start.
      if (existing.status === 'RUNNING' && existing.input === input) return { executionArn: arn, startDate: seconds(existing.startDate) };
      throw new AwsError('ExecutionAlreadyExists', `Execution Already Exists: '${arn}'`);
    }
    const record: ExecutionRecord = {
      arn,
      name,
      stateMachine,
      definition: stateMachine.definition,
      input,
      status: 'RUNNING',
      startDate: this.options.clock.now(),
      redriveCount: 0,
      history: new History(() => this.options.clock.now()),
      abort: new AbortController(),
      done: Promise.resolve(),
    };
    this.executions.set(arn, record);
    record.history.add('ExecutionStarted', { input, inputDetails: { truncated: false }, roleArn: stateMachine.roleArn });
    this.launch(record, record.definition.StartAt, parsedInput, {});
    return { executionArn: arn, startDate: seconds(record.startDate) };
  }

  private launch(record: ExecutionRecord, startAt: string, input: unknown, variables: Record<string, unknown>): void {
    const info: ExecutionInfo = {
      executionArn: record.arn,
      name: record.name,
      startTime: record.startDate.toISOString(),
      input: JSON.parse(record.input) as unknown,
      roleArn: record.stateMachine.roleArn,
      stateMachineArn: record.stateMachine.arn,
      stateMachineName: record.stateMachine.name,
      redriveCount: record.redriveCount,
      redriveTime: record.redriveDate?.toISOString(),
    };
    const run = new ExecutionRun(
      { integrations: this.integrations, tokens: this.tokens, clock: this.options.clock, random: this.random, region: this.options.region, transition: this.options.transition },
      info,
      record.history,
    );
    const abort = new AbortController();
    record.abort = abort;
    record.status = 'RUNNING';
    const timeoutSeconds = record.definition.TimeoutSeconds;
    const timer = new AbortController();
    if (timeoutSeconds !== undefined) {
      this.options.clock.sleep(timeoutSeconds, timer.signal).then(
        () => abort.abort(new ExecutionTimedOut()),
        () => undefined,
      );
    }
    record.done = run
      .run(record.definition, startAt, input, variables, abort.signal)
      .then(
        (output) => {
          record.output = JSON.stringify(output) ?? 'null';
          this.close(record, 'SUCCEEDED');
          record.history.add('ExecutionSucceeded', { output: record.output, outputDetails: { truncated: false } });
        },
        (error: unknown) => {
          record.resumePoint = run.resumePoint;
          if (error instanceof ExecutionStopped) {
            this.close(record, 'ABORTED', error.error, error.causeText);
            record.history.add('ExecutionAborted', dropUndefined({ error: error.error, cause: error.causeText }));
          } else if (error instanceof ExecutionTimedOut) {
            this.close(record, 'TIMED_OUT', StatesErrorName.Timeout, `The execution did not finish within ${timeoutSeconds} seconds`);
            record.history.add('ExecutionTimedOut', { error: record.error, cause: record.cause });
          } else {
            const failure = error instanceof StatesFailure ? error : new StatesFailure(StatesErrorName.Runtime, error instanceof Error ? error.message : String(error));
            this.close(record, 'FAILED', failure.error, failure.causeText);
            record.history.add('ExecutionFailed', { error: failure.error, cause: failure.causeText });
          }
        },
      )
      .finally(() => {
        timer.abort();
        record.history.seal();
      });
  }

  private close(record: ExecutionRecord, status: ExecutionStatus, error?: string, cause?: string): void {
    record.status = status;
    record.stopDate = this.options.clock.now();
    record.error = error;
    record.cause = cause;
  }

  private describe(record: ExecutionRecord): ExecutionDescription {
    const redrivable = record.status !== 'RUNNING' && record.status !== 'SUCCEEDED' && record.resumePoint !== undefined;
    return {
      executionArn: record.arn,
      stateMachineArn: record.stateMachine.arn,
      name: record.name,
      status: record.status,
      startDate: record.startDate,
      stopDate: record.stopDate,
      input: record.input,
      output: record.output,
      error: record.error,
      cause: record.cause,
      redriveCount: record.redriveCount,
      redriveDate: record.redriveDate,
      redriveStatus: redrivable ? 'REDRIVABLE' : 'NOT_REDRIVABLE',
      redriveStatusReason: redrivable ? undefined : `Execution is ${record.status} and cannot be redriven`,
    };
  }

  private describeExecutionBody(body: Body): Body {
    const d = this.describe(this.execution(str(body, 'executionArn', true)));
    return {
      ...d,
      startDate: seconds(d.startDate),
      stopDate: seconds(d.stopDate),
      redriveDate: seconds(d.redriveDate),
      inputDetails: { included: true },
      outputDetails: d.output === undefined ? undefined : { included: true },
    };
  }

  private listExecutions(body: Body): Body {
    const stateMachine = this.stateMachine(str(body, 'stateMachineArn', true));
    const statusFilter = str(body, 'statusFilter');
    if (statusFilter !== undefined && !['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED', 'PENDING_REDRIVE'].includes(statusFilter)) {
      throw new AwsError('ValidationException', `Invalid statusFilter '${statusFilter}'`);
    }
    const matching = [...this.executions.values()]
      .filter((e) => e.stateMachine === stateMachine && (statusFilter === undefined || e.status === statusFilter))
      .sort((a, b) => b.startDate.getTime() - a.startDate.getTime());
    const { items, nextToken } = page(matching, body);
    return {
      executions: items.map((e) =>
        dropUndefined({
          executionArn: e.arn,
          stateMachineArn: stateMachine.arn,
          name: e.name,
          status: e.status,
          startDate: seconds(e.startDate),
          stopDate: seconds(e.stopDate),
          redriveCount: e.redriveCount,
          redriveDate: seconds(e.redriveDate),
        }),
      ),
      nextToken,
    };
  }

  private async stopExecution(body: Body): Promise<Body> {
    const record = this.execution(str(body, 'executionArn', true));
    if (record.status === 'RUNNING') {
      record.abort.abort(new ExecutionStopped(str(body, 'error'), str(body, 'cause')));
      await record.done;
    }
    return { stopDate: seconds(record.stopDate) };
  }

  private getExecutionHistory(body: Body): Body {
    const record = this.execution(str(body, 'executionArn', true));
    const events = body.reverseOrder === true ? [...record.history.events].reverse() : record.history.events;
    const { items, nextToken } = page(events, body);
    const includeData = body.includeExecutionData !== false;
    return { events: items.map((e) => serializeEvent(e, includeData)), nextToken };
  }

  private sendTaskSuccess(body: Body): Body {
    const output = str(body, 'output', true);
    let parsed: unknown;
    try {
      parsed = JSON.parse(output);
    } catch {
      throw new AwsError('InvalidOutput', 'Invalid Output: the output is not JSON');
    }
    this.tokens.answer(body.taskToken, { kind: 'success', output: parsed });
    return {};
  }

  private sendTaskFailure(body: Body): Body {
    this.tokens.answer(body.taskToken, { kind: 'failure', error: str(body, 'error') ?? '', cause: str(body, 'cause') ?? '' });
    return {};
  }

  private sendTaskHeartbeat(body: Body): Body {
    this.tokens.heartbeat(body.taskToken);
    return {};
  }

  private redriveExecution(body: Body): Body {
    const record = this.execution(str(body, 'executionArn', true));
    const resume = record.resumePoint;
    if (record.stateMachine.type === 'EXPRESS') throw new AwsError('ExecutionNotRedrivable', `Express executions cannot be redriven: '${record.arn}'`);
    if (record.status === 'RUNNING' || record.status === 'SUCCEEDED' || !resume) {
      throw new AwsError('ExecutionNotRedrivable', `Execution is ${record.status} and cannot be redriven: '${record.arn}'`);
    }
    record.redriveCount += 1;
    record.redriveDate = this.options.clock.now();
    record.output = undefined;
    record.error = undefined;
    record.cause = undefined;
    record.stopDate = undefined;
    record.history.add('ExecutionRedriven', { redriveCount: record.redriveCount });
    this.launch(record, resume.stateName, resume.input, structuredClone(resume.variables));
    return { redriveDate: seconds(record.redriveDate) };
  }
}
