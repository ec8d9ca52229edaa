import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Bucket, bucketOf, compileDemand, DEFAULT_QUOTA_SETTINGS, parseQuotasFile, QuotasFileError, RateBudget, type Demand, type Quota, type QuotaSettings } from '../../domain/pacing/index.js';

/**
 * Local-only: the runtime enforces an AWS account's quotas (`--quotas aws-default|FILE`), so
 * that a demo or a bench meets throttling where AWS would throttle, in AWS's own shapes. The
 * quota table and the quotas-file format are domain/pacing's (the same ones Rotor paces with);
 * here they are the account's limits, enforced at 1× — Rotor's safety fraction is Rotor's
 * business, not the account's.
 *
 * - API rates (IoT control plane, iot-data Publish, StartExecution, SendTask*): one token bucket
 *   per domain `Bucket` (a GCRA, domain/pacing's RateBudget, as deep as the quota's burst). A
 *   call over it is refused before it reaches the service, as AWS throttles it (`throttle`).
 * - State transitions: AWS throttles them by slowing the execution, never by failing it, so
 *   the local Step Functions engine waits for its turn (`transition`).
 * - Lambda concurrency: invocations running at once across every function (the local Lambda's
 *   busy sandboxes); a synchronous invocation over it gets TooManyRequestsException (Reason
 *   ConcurrentInvocationLimitExceeded), an asynchronous one waits and is retried, as Lambda
 *   does with its event queue (`lambdaThrottled`, `waitForLambda`).
 *
 * Rates are scaled by the runtime's time scale: at scale s, a second of AWS time passes in s
 * seconds, so a 10 TPS quota allows 10 / s calls per real second. Bursts and concurrency are
 * counts and are not scaled.
 */

/** What `--quotas` names: AWS's defaults, or a quotas file. */
export const AWS_DEFAULT_QUOTAS_NAME = 'aws-default';

export interface LocalQuotas {
  /** 'aws-default' or the quotas file's absolute path: what the reports say was used. */
  source: string;
  settings: QuotaSettings;
}

/** Reads `--quotas aws-default|FILE`; a bad file is a QuotasFileError naming the file and the field. */
export function loadLocalQuotas(choice: string): LocalQuotas {
  if (choice === AWS_DEFAULT_QUOTAS_NAME) return { source: AWS_DEFAULT_QUOTAS_NAME, settings: DEFAULT_QUOTA_SETTINGS };
  const path = resolve(choice);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new QuotasFileError(`--quotas ${choice}: expected "${AWS_DEFAULT_QUOTAS_NAME}" or a readable quotas file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    return { source: path, settings: parseQuotasFile(text) };
  } catch (error) {
    if (error instanceof QuotasFileError) throw new QuotasFileError(`--quotas ${choice}: ${error.message}`);
    throw error;
  }
}

/** A throttled call's answer, in the wire shape of the service's API. */
export interface ThrottleAnswer {
  bucket: Bucket;
  code: string;
  message: string;
  status: number;
}

/**
 * How each service throttles, from its API model (botocore's service-2.json): IoT's control
 * plane declares ThrottlingException with HTTP 400, iot-data with 429; Step Functions' JSON 1.0
 * protocol answers the common ThrottlingException with 400. The AWS SDKs classify every one as
 * throttling by its name (and a 429 by its status).
 */
const THROTTLE_SHAPES: Record<string, { code: string; message: string; status: number }> = {
  iot: { code: 'ThrottlingException', message: 'Rate exceeded', status: 400 },
  iotdata: { code: 'ThrottlingException', message: 'Rate exceeded', status: 429 },
  states: { code: 'ThrottlingException', message: 'Rate exceeded', status: 400 },
};

/** Lambda's answer to a synchronous invocation over the account's concurrency (Lambda's API model: 429). */
export const LAMBDA_THROTTLE = {
  code: 'TooManyRequestsException',
  message: 'Rate Exceeded.',
  status: 429,
  reason: 'ConcurrentInvocationLimitExceeded',
  type: 'User',
  retryAfterSeconds: 1,
} as const;

/** The concurrency of an account whose Lambda is not limited. */
const UNLIMITED = Number.POSITIVE_INFINITY;

export interface QuotaEnforcerOptions {
  /** The runtime's workflow time scale (0.01: a second of AWS time lasts 10 ms). */
  timeScale: number;
  /** Real time in ms; injected by tests. */
  now?: () => number;
  /** Waits real ms; injected by tests. */
  sleepMs?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface QuotaFigures {
  quotas: string;
  /** Calls refused with a throttling error, per bucket (domain/pacing's names), and their total. */
  throttledCalls: { total: number; byApi: Record<string, number> };
  /** State transitions the engine held back because the transition quota was spent. */
  delayedTransitions: number;
  /** Asynchronous Lambda invocations that waited for the account's concurrency. */
  delayedAsyncInvocations: number;
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveSleep, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolveSleep();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class QuotaEnforcer {
  private readonly budget = new RateBudget();
  private readonly demands = new Map<Bucket, Demand>();
  private readonly throttledByBucket = new Map<Bucket, number>();
  private readonly now: () => number;
  private readonly sleepMs: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly concurrencyLimit: number;
  private delayedTransitionCount = 0;
  private delayedAsyncCount = 0;

  constructor(
    readonly quotas: LocalQuotas,
    private readonly options: QuotaEnforcerOptions,
  ) {
    if (!(options.timeScale > 0)) throw new Error(`the time scale must be above 0, got ${options.timeScale}`);
    this.now = options.now ?? Date.now;
    this.sleepMs = options.sleepMs ?? defaultSleep;
    for (const [bucket, quota] of Object.entries(quotas.settings.quotas) as [Bucket, Quota][]) {
      if (quota.kind !== 'rate') continue;
      // A GCRA with a tolerance of burst − 1 calls lets exactly `burst` calls through at once.
      this.budget.setRate(bucket, quota.rate / options.timeScale, Math.max(0, quota.burst - 1));
      this.demands.set(bucket, compileDemand({ [bucket]: 1 }));
    }
    const lambda = quotas.settings.quotas[Bucket.LambdaConcurrency];
    this.concurrencyLimit = lambda.kind === 'concurrency' ? lambda.concurrency : UNLIMITED;
  }

  /**
   * The edge's hook, for a call `service:operation` as the edge counts it: undefined lets it
   * through (and spends a token), an answer throttles it. Calls of no quota bucket pass.
   */
  throttle(service: string, operation: string | undefined): ThrottleAnswer | undefined {
    if (operation === undefined) return undefined;
    const shape = THROTTLE_SHAPES[service];
    const bucket = bucketOf(`${service}:${operation}`);
    if (!shape || !bucket) return undefined;
    const demand = this.demands.get(bucket);
    if (!demand) return undefined;
    const now = this.now();
    if (this.budget.earliest(demand, now) > now) {
      this.countThrottle(bucket);
      return { bucket, ...shape };
    }
    this.budget.reserve(demand, now);
    return undefined;
  }

  /** Waits (real time) until the state-transition quota allows the next transition. */
  async transition(signal?: AbortSignal): Promise<void> {
    const demand = this.demands.get(Bucket.StateTransition);
    if (!demand) return;
    const now = this.now();
    const at = this.budget.reserve(demand, now);
    if (at <= now) return;
    this.delayedTransitionCount++;
    await this.sleepMs(at - now, signal);
  }

  /**
   * A synchronous invocation, with `running` invocations running across the account's
   * functions: true throttles it (TooManyRequestsException).
   */
  lambdaThrottled(running: number): boolean {
    if (running < this.concurrencyLimit) return false;
    this.countThrottle(Bucket.LambdaConcurrency);
    return true;
  }

  /**
   * An asynchronous invocation waits until the account runs fewer than its concurrency, as
   * Lambda keeps a throttled event in its queue and retries it with a backoff from 1 s up to
   * 5 min of workflow time (scaled). Each event that had to wait counts once as throttled.
   */
  async waitForLambda(running: () => number, signal?: AbortSignal): Promise<void> {
    let delaySeconds = 1;
    let counted = false;
    while (running() >= this.concurrencyLimit) {
      if (!counted) {
        this.countThrottle(Bucket.LambdaConcurrency);
        this.delayedAsyncCount++;
        counted = true;
      }
      await this.sleepMs(delaySeconds * 1000 * this.options.timeScale, signal);
      delaySeconds = Math.min(300, delaySeconds * 2);
    }
  }

  /** The account's concurrency; Infinity when the table has none. */
  get lambdaConcurrency(): number {
    return this.concurrencyLimit;
  }

  private countThrottle(bucket: Bucket): void {
    this.throttledByBucket.set(bucket, (this.throttledByBucket.get(bucket) ?? 0) + 1);
  }

  figures(): QuotaFigures {
    const byApi = Object.fromEntries([...this.throttledByBucket].sort(([a], [b]) => a.localeCompare(b)));
    return {
      quotas: this.quotas.source,
      throttledCalls: { total: Object.values(byApi).reduce((a, b) => a + b, 0), byApi },
      delayedTransitions: this.delayedTransitionCount,
      delayedAsyncInvocations: this.delayedAsyncCount,
    };
  }
}
