import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import type { DynamoDbDirectPath } from '../dynamodb/direct-path.js';
import { silentLogger, type LocalLogger } from '../edge/logger.js';
import { LAMBDA_THROTTLE, type QuotaEnforcer } from '../edge/quotas.js';
import type { SqsSender } from '../sqs/sqs-service.js';
import type { Clock, EdgeRequest, EdgeResponse, FunctionErrorPayload, InvokeResult, LambdaInvoker, LocalService } from '../types.js';
import { AwsError, LOCAL_ACCOUNT, LOCAL_REGION, scaledClock } from '../types.js';
import { FunctionPool, type CrashSource, type FunctionConfig, type InvocationLog, type OutputSink } from './function-pool.js';

/**
 * Local Lambda: runs each deployed function's esbuild bundle in worker threads (see
 * FunctionPool) and answers the Lambda REST API through the edge (Invoke, GetFunction,
 * ListFunctions, Put/GetFunctionEventInvokeConfig). Functions are deployed from the wiring by
 * the runtime, not by CreateFunction.
 *
 * Asynchronous invocations (IoT rules, SNS, InvocationType Event) behave as in AWS: the caller
 * only learns that the event was queued; a function error is retried twice (after one, then two
 * minutes of workflow time), and then the event goes to the function's on-failure destination
 * (a local SQS queue) as Lambda's invocation record, or is dropped with a warning when there is
 * none. A function error is never the caller's error: only a failed Invoke call is.
 */
export interface DeployFunctionInput {
  name: string;
  /** dist/functions/NAME/index.mjs */
  bundlePath: string;
  handlerName?: string;
  /** The function's own variables (the wiring's resolved environment). */
  environment?: Record<string, string>;
  timeoutSeconds: number;
  memoryMb?: number;
  /** Worker threads for this function; invocations beyond it queue. */
  maxConcurrency?: number;
  description?: string;
}

export interface LambdaServiceOptions {
  /** The edge URL: the functions' AWS SDK clients and IoT data endpoint point at it. */
  endpointUrl: string;
  region?: string;
  accountId?: string;
  defaultConcurrency?: number;
  logger?: LocalLogger;
  /**
   * Where the functions' stdout/stderr go; by default debug lines of the logger. 'discard'
   * drops them inside the worker: nobody reads them, and piping ~7 KB of logs per rotation to
   * the main thread only to drop them there cost it ~3 % of a 1,000-device run.
   */
  output?: OutputSink | 'discard';
  /** Times the retries of asynchronous invocations (scaled like the workflows); real time by default. */
  clock?: Clock;
  /** Where on-failure destinations (SQS queue ARNs) are sent to. */
  destinations?: SqsSender;
  /** Crash faults (local/edge/faults.ts): asked once per invocation of each function. */
  crashes?: CrashSource;
  /** The account's concurrency quota (local/edge/quotas.ts), when the runtime enforces quotas. */
  quotas?: QuotaEnforcer;
  /** The functions' DynamoDB calls skip the edge's hop (local/dynamodb/direct-path.ts); through the edge when absent. */
  dynamodbDirect?: DynamoDbDirectPath;
  /**
   * A function's sandbox (worker thread) idle this long is ended, as Lambda reclaims idle
   * execution environments; the next invocation is a cold start. 0 keeps them until stop().
   * Default DEFAULT_SANDBOX_IDLE_MS.
   */
  sandboxIdleMs?: number;
}

/** Lambda's throttle of an invocation over the account's concurrency (its API model's TooManyRequestsException). */
export class TooManyRequests extends AwsError {
  readonly reason = LAMBDA_THROTTLE.reason;
  constructor() {
    super(LAMBDA_THROTTLE.code, LAMBDA_THROTTLE.message, LAMBDA_THROTTLE.status);
  }
}

/** PutFunctionEventInvokeConfig's settings, as AWS keeps them per function. */
export interface EventInvokeConfig {
  maximumRetryAttempts: number;
  maximumEventAgeInSeconds: number;
  /** On-failure destination: an SQS queue ARN. */
  onFailure?: string;
  lastModified: Date;
}

/** What became of one asynchronous invocation (tests and the runtime's logs read it). */
export interface AsyncOutcome {
  requestId: string;
  functionName: string;
  attempts: number;
  outcome: 'succeeded' | 'RetriesExhausted' | 'EventAgeExceeded';
  error?: FunctionErrorPayload;
  /** The on-failure destination the invocation record was sent to. */
  destination?: string;
}

/** AWS's defaults for a function without an event invoke config. */
export const ASYNC_DEFAULTS = { maximumRetryAttempts: 2, maximumEventAgeInSeconds: 21_600 } as const;
/** Lambda waits about a minute before the second attempt and two before the third. */
const RETRY_DELAYS_SECONDS = [60, 120] as const;
const EVENT_INVOKE_CONFIG = /^\/2019-09-25\/functions\/([^/]+)\/event-invoke-config$/;

const API = '/2015-03-31/functions';
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * Workers per function. The local runtime's limit is the machine's cores, not the workers: on
 * two cores, the 1,000-device bench took 72-84 s with one worker per function and 79 s with two,
 * and two added five threads and ~200 MiB of peak RSS (docs/demo.md, "session 13"). A device's
 * message is still handled while a step's function runs: each function has its own worker.
 * A caller that needs more (a test holding one invocation open) passes functionConcurrency.
 */
const DEFAULT_CONCURRENCY = 1;

/**
 * How long an idle sandbox lives: 0, kept until stop(), unless a caller sets sandboxIdleMs.
 * Lambda reclaims idle sandboxes after minutes; tried here as a default: at 5 s a 200-device
 * bench ended and restarted deliver-certificate's second worker five times (each new worker
 * 0.2–0.6 CPU-s, its cold start included), and at 30 s e2e/faults (time scale 0.01, a 9 s ack
 * timeout) failed a well-behaved device on NO_ACK twice in two runs — a reclaimed worker's cold
 * start on the ack path — and passed with 0. Opt-in until the demo's timeouts allow for it.
 */
export const DEFAULT_SANDBOX_IDLE_MS = 0;

class ResourceNotFound extends AwsError {
  constructor(message: string) {
    super('ResourceNotFoundException', message, 404);
  }
}

export class LambdaService implements LocalService, LambdaInvoker {
  readonly signingNames = ['lambda'] as const;
  private readonly pools = new Map<string, FunctionPool>();
  private readonly asyncInvocations = new Set<Promise<unknown>>();
  private readonly invocationLog: InvocationLog[] = [];
  private readonly asyncLog: AsyncOutcome[] = [];
  private readonly eventInvokeConfigs = new Map<string, EventInvokeConfig>();
  private readonly clock: Clock;
  /** Aborts the retry waits of asynchronous invocations when the runtime stops. */
  private readonly stopping = new AbortController();
  private readonly region: string;
  private readonly accountId: string;
  private readonly logger: LocalLogger;

  constructor(private readonly options: LambdaServiceOptions) {
    this.region = options.region ?? LOCAL_REGION;
    this.accountId = options.accountId ?? LOCAL_ACCOUNT;
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? scaledClock(1);
  }

  functionArn(name: string): string {
    return `arn:aws:lambda:${this.region}:${this.accountId}:function:${name}`;
  }

  /** The variables a function sees: Lambda's own, then the function's. Nothing from the parent process but PATH. */
  runtimeEnvironment(config: Pick<FunctionConfig, 'name' | 'memoryMb' | 'environment'>): Record<string, string> {
    return {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      AWS_REGION: this.region,
      AWS_DEFAULT_REGION: this.region,
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL: this.options.endpointUrl,
      IOT_DATA_ENDPOINT: this.options.endpointUrl,
      AWS_LAMBDA_FUNCTION_NAME: config.name,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(config.memoryMb),
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${config.name}`,
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
      POWERTOOLS_SERVICE_NAME: config.name,
      POWERTOOLS_METRICS_NAMESPACE: 'Rotor',
      POWERTOOLS_TRACE_ENABLED: 'false',
      POWERTOOLS_DEV: 'false',
      // Lambda runs nodejs22.x; only the local runtime may be on Node 20, where the SDK warns.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ...config.environment,
      // The function's wiring may name the IoT data endpoint, but locally it is always the edge.
      ...(config.environment.IOT_DATA_ENDPOINT !== undefined ? { IOT_DATA_ENDPOINT: this.options.endpointUrl } : {}),
    };
  }

  deploy(input: DeployFunctionInput): FunctionConfig {
    if (!FUNCTION_NAME.test(input.name)) throw new Error(`invalid function name '${input.name}' (letters, digits, - and _, up to 64)`);
    if (!existsSync(input.bundlePath) || !statSync(input.bundlePath).isFile()) throw new Error(`the bundle of function ${input.name} is missing: ${input.bundlePath}`);
    if (!(input.timeoutSeconds > 0 && input.timeoutSeconds <= 900)) throw new Error(`function ${input.name}: timeout must be 1–900 seconds, got ${input.timeoutSeconds}`);
    if (this.pools.has(input.name)) throw new Error(`function ${input.name} is already deployed`);
    const memoryMb = input.memoryMb ?? 128;
    const config: FunctionConfig = {
      name: input.name,
      arn: this.functionArn(input.name),
      bundlePath: input.bundlePath,
      handlerName: input.handlerName ?? 'handler',
      environment: this.runtimeEnvironment({ name: input.name, memoryMb, environment: input.environment ?? {} }),
      timeoutSeconds: input.timeoutSeconds,
      memoryMb,
      maxConcurrency: Math.max(1, input.maxConcurrency ?? this.options.defaultConcurrency ?? DEFAULT_CONCURRENCY),
      description: input.description,
      idleMs: this.options.sandboxIdleMs ?? DEFAULT_SANDBOX_IDLE_MS,
      ...(this.options.dynamodbDirect ? { dynamodbDirect: this.options.dynamodbDirect.workerData(this.options.endpointUrl) } : {}),
    };
    const sink: OutputSink | undefined =
      this.options.output === 'discard'
        ? undefined
        : this.options.output ??
      ((name, stream, chunk) => {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.logger.debug('function output', { function: name, stream, line });
      });
    this.pools.set(input.name, new FunctionPool(config, sink, (log) => this.invocationLog.push(log), this.options.crashes));
    return config;
  }

  functions(): FunctionConfig[] {
    return [...this.pools.values()].map((pool) => pool.config);
  }

  /** Every finished invocation, oldest first. */
  invocations(functionName?: string): InvocationLog[] {
    return this.invocationLog.filter((log) => functionName === undefined || log.functionName === functionName);
  }

  peakConcurrency(functionName: string): number {
    return this.pool(functionName).peakConcurrency;
  }

  /** Invocations running now across every function: the account's concurrency in use. */
  runningInvocations(): number {
    let running = 0;
    for (const pool of this.pools.values()) running += pool.running;
    return running;
  }

  /** A synchronous invocation: throttled over the account's concurrency quota, as Lambda does. */
  private invokeNow(pool: FunctionPool, payload: unknown): Promise<InvokeResult> {
    if (this.options.quotas?.lambdaThrottled(this.runningInvocations())) throw new TooManyRequests();
    return pool.invoke(payload);
  }

  /** Accepts a name, a full or partial ARN, with an optional :$LATEST qualifier. */
  private pool(nameOrArn: string): FunctionPool {
    let name = nameOrArn;
    const arn = /^(?:arn:aws:lambda:[^:]+:)?(?:\d{12}:)?function:([^:]+)(?::([^:]+))?$/.exec(nameOrArn);
    if (arn) {
      name = arn[1];
      if (arn[2] !== undefined && arn[2] !== '$LATEST') throw new ResourceNotFound(`Function not found: ${nameOrArn} (the local Lambda has only $LATEST)`);
    }
    const pool = this.pools.get(name);
    if (!pool) throw new ResourceNotFound(`Function not found: ${this.functionArn(name)}`);
    return pool;
  }

  async invoke(functionNameOrArn: string, payload: unknown, invocationType: 'RequestResponse' | 'Event' = 'RequestResponse'): Promise<InvokeResult> {
    const pool = this.pool(functionNameOrArn);
    if (invocationType === 'RequestResponse') return this.invokeNow(pool, payload);
    // Event: queued and run later; the caller only learns that it was accepted.
    const run = this.runAsync(pool, payload).finally(() => this.asyncInvocations.delete(run));
    this.asyncInvocations.add(run);
    return { ok: true, payload: undefined };
  }

  /** Every asynchronous invocation that has finished, oldest first. */
  asyncOutcomes(functionName?: string): AsyncOutcome[] {
    return this.asyncLog.filter((log) => functionName === undefined || log.functionName === functionName);
  }

  putEventInvokeConfig(functionNameOrArn: string, input: { maximumRetryAttempts?: number; maximumEventAgeInSeconds?: number; onFailure?: string }): EventInvokeConfig {
    const pool = this.pool(functionNameOrArn);
    const retries = input.maximumRetryAttempts ?? ASYNC_DEFAULTS.maximumRetryAttempts;
    const age = input.maximumEventAgeInSeconds ?? ASYNC_DEFAULTS.maximumEventAgeInSeconds;
    if (!Number.isInteger(retries) || retries < 0 || retries > 2) throw new AwsError('InvalidParameterValueException', `MaximumRetryAttempts must be 0, 1 or 2, got ${retries}`, 400);
    if (!Number.isInteger(age) || age < 60 || age > 21_600) throw new AwsError('InvalidParameterValueException', `MaximumEventAgeInSeconds must be 60 to 21600, got ${age}`, 400);
    if (input.onFailure !== undefined) {
      if (!/^arn:aws:sqs:[^:]+:\d{12}:[A-Za-z0-9_-]{1,80}$/.test(input.onFailure)) {
        throw new AwsError('InvalidParameterValueException', `the local Lambda sends on-failure destinations to SQS queues only; got ${input.onFailure}`, 400);
      }
      // AWS checks the destination when the config is written, not when the first event fails.
      if (!this.options.destinations?.hasQueue(input.onFailure)) throw new AwsError('InvalidParameterValueException', `The destination ${input.onFailure} does not exist`, 400);
    }
    const config: EventInvokeConfig = { maximumRetryAttempts: retries, maximumEventAgeInSeconds: age, ...(input.onFailure ? { onFailure: input.onFailure } : {}), lastModified: this.clock.now() };
    this.eventInvokeConfigs.set(pool.config.name, config);
    return config;
  }

  eventInvokeConfig(functionNameOrArn: string): EventInvokeConfig | undefined {
    return this.eventInvokeConfigs.get(this.pool(functionNameOrArn).config.name);
  }

  /** Lambda's asynchronous invocation: attempts with retries, then the on-failure destination. */
  private async runAsync(pool: FunctionPool, payload: unknown): Promise<void> {
    const requestId = randomUUID();
    const config = this.eventInvokeConfigs.get(pool.config.name) ?? ASYNC_DEFAULTS;
    // The event's age: Lambda's own waits count in workflow time (scaled, like every wait of the
    // runtime), the function's running time in real time (it is not scaled), as a replay of
    // AWS's wall clock at this runtime's speed.
    const enqueued = Date.now();
    let waitedSeconds = 0;
    let sleptMs = 0;
    const ageSeconds = (): number => waitedSeconds + (Date.now() - enqueued - sleptMs) / 1000;
    let attempts = 0;
    let error: FunctionErrorPayload | undefined;
    let condition: 'RetriesExhausted' | 'EventAgeExceeded' = 'RetriesExhausted';
    for (;;) {
      attempts++;
      if (this.options.quotas) {
        // Over the account's concurrency, Lambda keeps the event queued and tries it again later.
        try {
          await this.options.quotas.waitForLambda(() => this.runningInvocations(), this.stopping.signal);
        } catch {
          this.logger.warn('the runtime stopped while an asynchronous invocation waited for concurrency: the event is dropped', { function: pool.config.name, requestId });
          return;
        }
      }
      const result = await pool.invoke(payload);
      if (result.ok) {
        this.asyncLog.push({ requestId, functionName: pool.config.name, attempts, outcome: 'succeeded' });
        return;
      }
      error = result.error;
      if (attempts > config.maximumRetryAttempts) break;
      const delay = RETRY_DELAYS_SECONDS[Math.min(attempts - 1, RETRY_DELAYS_SECONDS.length - 1)];
      if (ageSeconds() + delay > config.maximumEventAgeInSeconds) {
        condition = 'EventAgeExceeded';
        break;
      }
      this.logger.debug('asynchronous invocation failed; Lambda retries it', { function: pool.config.name, requestId, attempt: attempts, errorType: error.errorType });
      const sleepStarted = Date.now();
      try {
        await this.clock.sleep(delay, this.stopping.signal);
      } catch {
        this.logger.warn('the runtime stopped while an asynchronous invocation waited for its retry: the event is dropped', { function: pool.config.name, requestId, attempts });
        return;
      }
      sleptMs += Date.now() - sleepStarted;
      waitedSeconds += delay;
    }
    const outcome: AsyncOutcome = { requestId, functionName: pool.config.name, attempts, outcome: condition, error };
    const destination = 'onFailure' in config ? config.onFailure : undefined;
    if (destination && this.options.destinations) {
      try {
        this.options.destinations.sendToArn(destination, JSON.stringify(this.invocationRecord(pool, requestId, payload, attempts, condition, error)));
        outcome.destination = destination;
        this.logger.warn('asynchronous invocation failed; sent to its on-failure destination', { function: pool.config.name, requestId, attempts, destination, errorType: error.errorType });
      } catch (sendError) {
        this.logger.error('asynchronous invocation failed and its on-failure destination refused it: the event is lost', { function: pool.config.name, requestId, destination, error: String(sendError) });
      }
    } else {
      this.logger.warn('asynchronous invocation failed and the function has no on-failure destination: the event is dropped', { function: pool.config.name, requestId, attempts, errorType: error.errorType, errorMessage: error.errorMessage });
    }
    this.asyncLog.push(outcome);
  }

  /** The record Lambda sends to an on-failure destination (AWS's "invocation record", version 1.0). */
  private invocationRecord(pool: FunctionPool, requestId: string, payload: unknown, attempts: number, condition: string, error: FunctionErrorPayload): Record<string, unknown> {
    return {
      version: '1.0',
      timestamp: this.clock.now().toISOString(),
      requestContext: { requestId, functionArn: `${pool.config.arn}:$LATEST`, condition, approximateInvokeCount: attempts },
      requestPayload: payload ?? null,
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      responsePayload: { errorType: error.errorType, errorMessage: error.errorMessage, ...(error.trace ? { stackTrace: error.trace } : {}) },
    };
  }

  /** Resolves when every asynchronous invocation accepted so far has finished. */
  async settled(): Promise<void> {
    while (this.asyncInvocations.size > 0) await Promise.allSettled([...this.asyncInvocations]);
  }

  async stop(): Promise<void> {
    this.stopping.abort(new Error('the local Lambda is stopping'));
    await Promise.all([...this.pools.values()].map((pool) => pool.stop()));
  }

  // ---- the REST API through the edge ----

  operationOf(request: EdgeRequest): string | undefined {
    if (request.method === 'POST' && request.path.endsWith('/invocations')) return 'Invoke';
    if (EVENT_INVOKE_CONFIG.test(request.path)) return request.method === 'PUT' ? 'PutFunctionEventInvokeConfig' : 'GetFunctionEventInvokeConfig';
    if (request.method === 'GET' && /^\/2015-03-31\/functions\/?$/.test(request.path)) return 'ListFunctions';
    if (request.method === 'GET' && request.path.startsWith(`${API}/`)) return 'GetFunction';
    return undefined;
  }

  async handle(request: EdgeRequest): Promise<EdgeResponse> {
    const requestId = randomUUID();
    try {
      return await this.route(request, requestId);
    } catch (error) {
      if (!(error instanceof AwsError)) throw error;
      const throttled = error instanceof TooManyRequests;
      return {
        status: error.status,
        headers: {
          'content-type': 'application/json',
          'x-amzn-errortype': error.code,
          'x-amzn-requestid': requestId,
          ...(throttled ? { 'retry-after': String(LAMBDA_THROTTLE.retryAfterSeconds) } : {}),
        },
        body: JSON.stringify({ Type: error.status >= 500 ? 'Service' : 'User', message: error.message, ...(throttled ? { Reason: error.reason } : {}) }),
      };
    }
  }

  private json(status: number, value: unknown, requestId: string, headers: Record<string, string> = {}): EdgeResponse {
    return { status, headers: { 'content-type': 'application/json', 'x-amzn-requestid': requestId, ...headers }, body: JSON.stringify(value) };
  }

  private async route(request: EdgeRequest, requestId: string): Promise<EdgeResponse> {
    const eventInvoke = EVENT_INVOKE_CONFIG.exec(request.path);
    if (eventInvoke) return this.eventInvokeConfigOverHttp(decodeURIComponent(eventInvoke[1]), request, requestId);
    const segments = request.path.split('/').filter(Boolean).map(decodeURIComponent);
    if (segments[0] !== '2015-03-31' || segments[1] !== 'functions') {
      throw new AwsError('UnknownOperationException', `the local Lambda serves Invoke, GetFunction and ListFunctions; not ${request.method} ${request.path}`, 400);
    }
    if (request.method === 'GET' && segments.length === 2) {
      return this.json(200, { Functions: this.functions().map((c) => this.configuration(c)) }, requestId);
    }
    if (request.method === 'GET' && segments.length === 3) {
      const config = this.pool(segments[2]).config;
      return this.json(200, { Configuration: this.configuration(config), Code: { RepositoryType: 'Local', Location: `file://${config.bundlePath}` } }, requestId);
    }
    if (request.method === 'POST' && segments.length === 4 && segments[3] === 'invocations') {
      return this.invokeOverHttp(segments[2], request, requestId);
    }
    throw new AwsError('UnknownOperationException', `the local Lambda serves Invoke, GetFunction and ListFunctions; not ${request.method} ${request.path}`, 400);
  }

  private async invokeOverHttp(name: string, request: EdgeRequest, requestId: string): Promise<EdgeResponse> {
    const type = request.headers['x-amz-invocation-type'] ?? 'RequestResponse';
    if (type !== 'RequestResponse' && type !== 'Event' && type !== 'DryRun') {
      throw new AwsError('InvalidParameterValueException', `invalid X-Amz-Invocation-Type '${type}'`, 400);
    }
    const qualifier = request.query.get('Qualifier');
    const pool = this.pool(qualifier ? `${name}:${qualifier}` : name);
    const text = request.body.toString('utf8');
    let payload: unknown = {};
    if (text.length > 0) {
      try {
        payload = JSON.parse(text);
      } catch {
        throw new AwsError('InvalidRequestContentException', 'Could not parse request body into json: the payload is not valid JSON', 400);
      }
    }
    const version = { 'x-amz-executed-version': '$LATEST' };
    if (type === 'DryRun') return { status: 204, headers: { 'x-amzn-requestid': requestId } };
    if (type === 'Event') {
      await this.invoke(pool.config.name, payload, 'Event');
      return { status: 202, headers: { 'x-amzn-requestid': requestId } };
    }
    const result = await this.invokeNow(pool, payload);
    if (result.ok) return this.json(200, result.payload ?? null, requestId, version);
    // A function error is still HTTP 200; the header tells the caller it is an error payload.
    return this.json(200, result.error, requestId, { ...version, 'x-amz-function-error': 'Unhandled' });
  }

  private eventInvokeConfigOverHttp(name: string, request: EdgeRequest, requestId: string): EdgeResponse {
    const pool = this.pool(name);
    let config: EventInvokeConfig | undefined;
    if (request.method === 'PUT') {
      let body: { MaximumRetryAttempts?: number; MaximumEventAgeInSeconds?: number; DestinationConfig?: { OnFailure?: { Destination?: string }; OnSuccess?: { Destination?: string } } };
      try {
        body = JSON.parse(request.body.toString('utf8') || '{}') as typeof body;
      } catch {
        throw new AwsError('InvalidRequestContentException', 'Could not parse request body into json', 400);
      }
      if (body.DestinationConfig?.OnSuccess?.Destination) throw new AwsError('InvalidParameterValueException', 'the local Lambda has no on-success destinations (Rotor uses none)', 400);
      config = this.putEventInvokeConfig(pool.config.name, {
        maximumRetryAttempts: body.MaximumRetryAttempts,
        maximumEventAgeInSeconds: body.MaximumEventAgeInSeconds,
        onFailure: body.DestinationConfig?.OnFailure?.Destination,
      });
    } else if (request.method === 'GET') {
      config = this.eventInvokeConfigs.get(pool.config.name);
      if (!config) throw new ResourceNotFound(`The function ${pool.config.arn} doesn't have an EventInvokeConfig`);
    } else {
      throw new AwsError('UnknownOperationException', `the local Lambda serves PUT and GET on ${request.path}`, 400);
    }
    return this.json(
      200,
      {
        FunctionArn: `${pool.config.arn}:$LATEST`,
        LastModified: config.lastModified.getTime() / 1000,
        MaximumRetryAttempts: config.maximumRetryAttempts,
        MaximumEventAgeInSeconds: config.maximumEventAgeInSeconds,
        DestinationConfig: { OnSuccess: {}, OnFailure: config.onFailure ? { Destination: config.onFailure } : {} },
      },
      requestId,
    );
  }

  private configuration(config: FunctionConfig): Record<string, unknown> {
    // Only the function's own variables, as GetFunction shows in AWS (not the runtime's).
    const own = Object.fromEntries(Object.entries(config.environment).filter(([key]) => !key.startsWith('AWS_') && !['PATH', 'LANG', 'TZ', 'IOT_DATA_ENDPOINT'].includes(key) && !key.startsWith('POWERTOOLS_')));
    if (config.environment.IOT_DATA_ENDPOINT !== undefined) own.IOT_DATA_ENDPOINT = config.environment.IOT_DATA_ENDPOINT;
    return {
      FunctionName: config.name,
      FunctionArn: config.arn,
      Runtime: 'nodejs22.x',
      Handler: `index.${config.handlerName}`,
      Role: `arn:aws:iam::${this.accountId}:role/${config.name}`,
      Description: config.description ?? '',
      Timeout: config.timeoutSeconds,
      MemorySize: config.memoryMb,
      Version: '$LATEST',
      PackageType: 'Zip',
      State: 'Active',
      LastUpdateStatus: 'Successful',
      Architectures: ['x86_64'],
      Environment: { Variables: own },
      TracingConfig: { Mode: 'PassThrough' },
    };
  }
}
