/**
 * The seams between the parts of the embedded local AWS. Each service is a plain object that
 * the edge server routes requests to and that the other services call in-process.
 */

/** One HTTP request as the edge server hands it to a service (already read and routed). */
export interface EdgeRequest {
  method: string;
  /** Path without the query string, percent-decoded per segment by the service if it needs to. */
  path: string;
  query: URLSearchParams;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  body: Buffer;
  /** The signing name from the SigV4 credential scope (e.g. 'iot', 'iotdata', 'states', 'sns', 'lambda', 'dynamodb'). */
  service: string;
  region: string;
  /** X-Amz-Target for JSON-protocol services (e.g. 'AWSStepFunctions.StartExecution'). */
  target?: string;
}

export interface EdgeResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** A local service reachable through the edge endpoint. */
export interface LocalService {
  /** SigV4 signing names this service answers to. */
  readonly signingNames: readonly string[];
  handle(request: EdgeRequest): Promise<EdgeResponse>;
}

/** A function error, as Lambda reports it (errorType is what Step Functions matches). */
export interface FunctionErrorPayload {
  errorType: string;
  errorMessage: string;
  trace?: string[];
}

export type InvokeResult =
  | { ok: true; payload: unknown }
  | { ok: false; error: FunctionErrorPayload };

/** Invokes a deployed local function by name or ARN. */
export interface LambdaInvoker {
  invoke(functionNameOrArn: string, payload: unknown, invocationType?: 'RequestResponse' | 'Event'): Promise<InvokeResult>;
}

/** Publishes to a local SNS topic (used by Step Functions' sns:publish and the Device Defender audit). */
export interface SnsPublisher {
  publish(input: { topicArn: string; message: string; subject?: string; messageAttributes?: Record<string, unknown> }): Promise<{ messageId: string }>;
}

/** An error in AWS's JSON error shape; services turn it into the wire format of their protocol. */
export class AwsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = code;
  }
}

/** Account and region every local ARN uses. */
export const LOCAL_ACCOUNT = '000000000000';
export const LOCAL_REGION = 'us-east-1';

/** Wall-clock time with a scale: a timeout of N seconds passes in N × scale seconds. */
export interface Clock {
  now(): Date;
  /** Resolves after `seconds` of *workflow* time (scaled). */
  sleep(seconds: number, signal?: AbortSignal): Promise<void>;
  readonly scale: number;
}

/** Node fires a timer longer than 2^31-1 ms after 1 ms; longer sleeps are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function sleepMs(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function scaledClock(scale: number): Clock {
  return {
    scale,
    now: () => new Date(),
    // ASL's default task timeout is 99,999,999 s: far past one timer's reach at scale 1.
    sleep: async (seconds, signal) => {
      let remainingMs = Math.max(0, seconds * 1000 * scale);
      do {
        const stepMs = Math.min(remainingMs, MAX_TIMER_MS);
        await sleepMs(stepMs, signal);
        remainingMs -= stepMs;
      } while (remainingMs > 0);
    },
  };
}
