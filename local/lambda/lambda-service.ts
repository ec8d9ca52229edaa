import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { silentLogger, type LocalLogger } from '../edge/logger.js';
import type { EdgeRequest, EdgeResponse, InvokeResult, LambdaInvoker, LocalService } from '../types.js';
import { AwsError, LOCAL_ACCOUNT, LOCAL_REGION } from '../types.js';
import { FunctionPool, type CrashSource, type FunctionConfig, type InvocationLog, type OutputSink } from './function-pool.js';

/**
 * Local Lambda: runs each deployed function's esbuild bundle in worker threads (see
 * FunctionPool) and answers the Lambda REST API through the edge (Invoke, GetFunction,
 * ListFunctions). Functions are deployed from the wiring by the runtime, not by CreateFunction.
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
  /** Crash faults (local/edge/faults.ts): asked once per invocation of each function. */
  crashes?: CrashSource;
}

const API = '/2015-03-31/functions';
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * Workers per function. The local runtime's limit is its one main thread (edge, broker, engine,
 * devices), not the workers: measured on a 200-device demo, 1 and 4 workers gave the same wall
 * time and 4 doubled peak memory. Two keep real concurrency (a device message handled while a
 * step's function runs) at little cost.
 */
const DEFAULT_CONCURRENCY = 2;

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
  private readonly region: string;
  private readonly accountId: string;
  private readonly logger: LocalLogger;

  constructor(private readonly options: LambdaServiceOptions) {
    this.region = options.region ?? LOCAL_REGION;
    this.accountId = options.accountId ?? LOCAL_ACCOUNT;
    this.logger = options.logger ?? silentLogger;
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
    if (invocationType === 'RequestResponse') return pool.invoke(payload);
    // Event: queued and run later; the caller only learns that it was accepted.
    const run = pool
      .invoke(payload)
      .then((result) => {
        if (!result.ok) this.logger.warn('asynchronous invocation failed', { function: pool.config.name, errorType: result.error.errorType, errorMessage: result.error.errorMessage });
      })
      .finally(() => this.asyncInvocations.delete(run));
    this.asyncInvocations.add(run);
    return { ok: true, payload: undefined };
  }

  /** Resolves when every asynchronous invocation accepted so far has finished. */
  async settled(): Promise<void> {
    while (this.asyncInvocations.size > 0) await Promise.allSettled([...this.asyncInvocations]);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.stop()));
  }

  // ---- the REST API through the edge ----

  operationOf(request: EdgeRequest): string | undefined {
    if (request.method === 'POST' && request.path.endsWith('/invocations')) return 'Invoke';
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
      return {
        status: error.status,
        headers: { 'content-type': 'application/json', 'x-amzn-errortype': error.code, 'x-amzn-requestid': requestId },
        body: JSON.stringify({ Type: error.status >= 500 ? 'Service' : 'User', message: error.message }),
      };
    }
  }

  private json(status: number, value: unknown, requestId: string, headers: Record<string, string> = {}): EdgeResponse {
    return { status, headers: { 'content-type': 'application/json', 'x-amzn-requestid': requestId, ...headers }, body: JSON.stringify(value) };
  }

  private async route(request: EdgeRequest, requestId: string): Promise<EdgeResponse> {
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
    const result = await pool.invoke(payload);
    if (result.ok) return this.json(200, result.payload ?? null, requestId, version);
    // A function error is still HTTP 200; the header tells the caller it is an error payload.
    return this.json(200, result.error, requestId, { ...version, 'x-amz-function-error': 'Unhandled' });
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
