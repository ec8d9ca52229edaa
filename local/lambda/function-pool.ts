import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { DirectPathWorkerData } from '../dynamodb/direct-path.js';
import type { CrashPlan } from '../edge/faults.js';
import type { FunctionErrorPayload, InvokeResult } from '../types.js';
import { WORKER_SOURCE } from './worker-source.js';

/**
 * The execution environments of one function: up to `maxConcurrency` worker threads, each
 * with the function's own environment (never the parent's process.env), each running one
 * invocation at a time. Excess invocations queue, as Lambda's reserved concurrency would
 * throttle them; a worker that overruns the timeout is terminated, like a sandbox that timed out.
 */
export interface FunctionConfig {
  name: string;
  arn: string;
  bundlePath: string;
  /** Exported name of the handler in the bundle. */
  handlerName: string;
  environment: Record<string, string>;
  timeoutSeconds: number;
  memoryMb: number;
  maxConcurrency: number;
  description?: string;
  /** The workers send DynamoDB calls straight to DynamoDB Local (local/dynamodb/direct-path.ts). */
  dynamodbDirect?: DirectPathWorkerData;
  /**
   * A sandbox idle this long is ended, as Lambda reclaims idle execution environments; the next
   * invocation starts a new one (a cold start). Absent or 0: sandboxes are kept until stop().
   */
  idleMs?: number;
}

export interface InvocationLog {
  requestId: string;
  functionName: string;
  durationMs: number;
  /** Time spent waiting for a free sandbox before the invocation ran. */
  queuedMs: number;
  outcome: 'success' | 'error' | 'timeout';
}

interface Job {
  requestId: string;
  event: string;
  enqueuedAt: number;
  resolve: (result: InvokeResult) => void;
}

interface Sandbox {
  worker: Worker;
  busy: boolean;
  /** Ends the sandbox once it has been idle for config.idleMs. */
  idleTimer?: NodeJS.Timeout;
  /** The invocation in flight, settled by the worker's 'done' message, a timeout or a crash. */
  current?: { id: string; settle: (result: InvokeResult, outcome?: InvocationLog['outcome']) => void; crash?: CrashPlan };
}

type WorkerMessage = { type: 'done'; id: string } & ({ ok: true; payload: string } | { ok: false; error: FunctionErrorPayload });

export type OutputSink = (functionName: string, stream: 'stdout' | 'stderr', chunk: Buffer) => void;

/** Asked once per invocation: should this one die mid-way (local/edge/faults.ts)? */
export type CrashSource = (functionName: string) => CrashPlan | undefined;

/** What a caller sees of an invocation killed by a crash fault, as Lambda reports each kind. */
function crashError(plan: CrashPlan, requestId: string, timeoutSeconds: number): FunctionErrorPayload {
  switch (plan.surface) {
    case 'Sandbox.Timedout':
      return { errorType: 'Sandbox.Timedout', errorMessage: `RequestId: ${requestId} Error: Task timed out after ${timeoutSeconds.toFixed(2)} seconds` };
    case 'Runtime.ExitError':
      return { errorType: 'Runtime.ExitError', errorMessage: `RequestId: ${requestId} Error: Runtime exited with error: exit status 1` };
    case 'Lambda.Unknown':
      // No errorType: Step Functions names it Lambda.Unknown.
      return { errorType: '', errorMessage: `RequestId: ${requestId} The function returned no error type` };
  }
}

/**
 * Each sandbox's young generation (V8's new space), in MiB. Left to V8, a busy worker's new space
 * grows to 48 MiB although a function's live objects fit in a few: at 1,000 devices the six
 * workers held ~50 MiB of heap each, ~300 MiB of the bench's peak RSS. Capped at 6 MiB they held
 * ~24 MiB each (144 MiB in all) with no change in wall time beyond the run-to-run spread
 * (docs/demo.md, "session 13").
 */
export const YOUNG_GENERATION_MB = 6;

export class FunctionPool {
  private readonly sandboxes = new Set<Sandbox>();
  private readonly queue: Job[] = [];
  private stopped = false;
  private inFlight = 0;
  private peak = 0;
  private started = 0;
  private reclaimed = 0;

  constructor(
    readonly config: FunctionConfig,
    /** undefined: the worker drops its stdout/stderr itself. */
    private readonly sink: OutputSink | undefined,
    private readonly onInvocation: (log: InvocationLog) => void,
    private readonly crashes: CrashSource = () => undefined,
  ) {}

  /** The most invocations that ran at the same time. */
  get peakConcurrency(): number {
    return this.peak;
  }

  /** Invocations running now (each in its own sandbox). */
  get running(): number {
    return this.inFlight;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Sandboxes alive now (busy or idle). */
  get sandboxCount(): number {
    return this.sandboxes.size;
  }

  /** Sandboxes started so far (each a cold start), and those ended for being idle. */
  get lifecycle(): { started: number; reclaimed: number } {
    return { started: this.started, reclaimed: this.reclaimed };
  }

  invoke(payload: unknown): Promise<InvokeResult> {
    if (this.stopped) return Promise.resolve({ ok: false, error: { errorType: 'ServiceException', errorMessage: `function ${this.config.name} is shut down` } });
    let event: string;
    try {
      event = JSON.stringify(payload === undefined ? null : payload);
    } catch (error) {
      return Promise.resolve({ ok: false, error: { errorType: 'InvalidRequestContentException', errorMessage: `the payload is not JSON: ${(error as Error).message}` } });
    }
    return new Promise((resolve) => {
      this.queue.push({ requestId: randomUUID(), event, enqueuedAt: Date.now(), resolve });
      this.pump();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const job of this.queue.splice(0)) job.resolve({ ok: false, error: { errorType: 'ServiceException', errorMessage: `function ${this.config.name} is shut down` } });
    await Promise.all([...this.sandboxes].map((sandbox) => this.discard(sandbox)));
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let sandbox = [...this.sandboxes].find((s) => !s.busy);
      if (!sandbox) {
        if (this.sandboxes.size >= this.config.maxConcurrency) return;
        sandbox = this.spawn();
      }
      const job = this.queue.shift() as Job;
      this.run(sandbox, job);
    }
    for (const sandbox of this.sandboxes) if (!sandbox.busy) this.idle(sandbox);
  }

  /** Arms the idle timer of a sandbox that has nothing to run (once: the first idle moment counts). */
  private idle(sandbox: Sandbox): void {
    const idleMs = this.config.idleMs ?? 0;
    if (idleMs <= 0 || sandbox.idleTimer || this.stopped) return;
    sandbox.idleTimer = setTimeout(() => {
      sandbox.idleTimer = undefined;
      if (sandbox.busy || !this.sandboxes.has(sandbox)) return;
      this.sandboxes.delete(sandbox);
      this.reclaimed += 1;
      void sandbox.worker.terminate();
    }, idleMs);
    // An idle sandbox never keeps the process alive.
    sandbox.idleTimer.unref();
  }

  private spawn(): Sandbox {
    this.started += 1;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // Its own copy: what the function sets in process.env stays in its sandbox.
      env: { ...this.config.environment },
      workerData: {
        bundlePath: this.config.bundlePath,
        handlerName: this.config.handlerName,
        discardOutput: this.sink === undefined,
        ...(this.config.dynamodbDirect ? { dynamodbDirect: this.config.dynamodbDirect } : {}),
      },
      stdout: true,
      stderr: true,
      resourceLimits: { maxOldGenerationSizeMb: Math.max(64, this.config.memoryMb), maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    const sink = this.sink;
    if (sink) {
      worker.stdout.on('data', (chunk: Buffer) => sink(this.config.name, 'stdout', chunk));
      worker.stderr.on('data', (chunk: Buffer) => sink(this.config.name, 'stderr', chunk));
    }
    const sandbox: Sandbox = { worker, busy: false };
    worker.on('message', (message: WorkerMessage) => {
      if (message.type !== 'done' || sandbox.current?.id !== message.id) return;
      sandbox.current.settle(message.ok ? { ok: true, payload: JSON.parse(message.payload) as unknown } : { ok: false, error: message.error });
    });
    // A crash outside an invocation (an unhandled rejection after it answered) ends the sandbox, as in Lambda.
    const crashed = (errorType: string, errorMessage: string): void => {
      clearTimeout(sandbox.idleTimer);
      this.sandboxes.delete(sandbox);
      const current = sandbox.current;
      if (current?.crash) {
        // A crash fault: the invocation fails the way the fault said (a timeout, by default).
        current.settle({ ok: false, error: crashError(current.crash, current.id, this.config.timeoutSeconds) }, current.crash.surface === 'Sandbox.Timedout' ? 'timeout' : 'error');
      } else {
        current?.settle({ ok: false, error: { errorType, errorMessage } });
      }
      if (!this.stopped) this.pump();
    };
    worker.on('error', (error) => crashed('Runtime.ExitError', `the function's runtime failed: ${error.message}`));
    worker.on('exit', (code) => crashed('Runtime.ExitError', `RequestId: the runtime exited with code ${code}`));
    this.sandboxes.add(sandbox);
    return sandbox;
  }

  private run(sandbox: Sandbox, job: Job): void {
    clearTimeout(sandbox.idleTimer);
    sandbox.idleTimer = undefined;
    sandbox.busy = true;
    this.inFlight += 1;
    this.peak = Math.max(this.peak, this.inFlight);
    const started = Date.now();
    const timeoutMs = this.config.timeoutSeconds * 1000;
    let timer: NodeJS.Timeout | undefined;
    const settle = (result: InvokeResult, outcome?: InvocationLog['outcome']): void => {
      if (sandbox.current?.id !== job.requestId) return;
      sandbox.current = undefined;
      clearTimeout(timer);
      this.inFlight -= 1;
      sandbox.busy = false;
      this.onInvocation({ requestId: job.requestId, functionName: this.config.name, durationMs: Date.now() - started, queuedMs: started - job.enqueuedAt, outcome: outcome ?? (result.ok ? 'success' : 'error') });
      job.resolve(result);
      if (!this.stopped) this.pump();
    };
    const crash = this.crashes(this.config.name);
    sandbox.current = { id: job.requestId, settle, ...(crash ? { crash } : {}) };
    timer = setTimeout(() => {
      this.sandboxes.delete(sandbox);
      settle(
        {
          ok: false,
          error: { errorType: 'Sandbox.Timedout', errorMessage: `RequestId: ${job.requestId} Error: Task timed out after ${this.config.timeoutSeconds.toFixed(2)} seconds` },
        },
        'timeout',
      );
      void sandbox.worker.terminate();
    }, timeoutMs);
    sandbox.worker.postMessage({
      type: 'invoke',
      id: job.requestId,
      event: job.event,
      context: {
        functionName: this.config.name,
        functionVersion: '$LATEST',
        invokedFunctionArn: this.config.arn,
        memoryLimitInMB: String(this.config.memoryMb),
        awsRequestId: job.requestId,
        logGroupName: `/aws/lambda/${this.config.name}`,
        logStreamName: `local/[$LATEST]${sandbox.worker.threadId}`,
        deadlineMs: started + timeoutMs,
      },
      ...(crash ? { crashAfterAwsCalls: crash.afterAwsCalls } : {}),
    });
  }

  private async discard(sandbox: Sandbox): Promise<void> {
    clearTimeout(sandbox.idleTimer);
    this.sandboxes.delete(sandbox);
    sandbox.current?.settle({ ok: false, error: { errorType: 'ServiceException', errorMessage: `function ${this.config.name} is shut down` } });
    await sandbox.worker.terminate();
  }
}
