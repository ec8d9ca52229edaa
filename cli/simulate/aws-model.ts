import { BUCKETS, Bucket, CALL_PROFILE, CallSite, bucketOf, type QuotaTable } from '../../domain/pacing/index.js';
import { EventQueue } from './event-queue.js';

/**
 * AWS as the simulator sees it: a token bucket per rate quota (the account's real quotas, which
 * throttle like AWS), Lambda's concurrency as a count of invocations in flight, and the tallies
 * the report needs (calls per operation, the busiest second per bucket, peak concurrency).
 */

/** The rate buckets; index RATE_BUCKETS.length stands for Lambda concurrency. */
export const RATE_BUCKETS: readonly Bucket[] = BUCKETS.filter((bucket) => bucket !== Bucket.LambdaConcurrency);
export const LAMBDA_THROTTLE = RATE_BUCKETS.length;

/** A call site compiled once into typed arrays, so a call allocates nothing. */
export interface CompiledSite {
  site: CallSite;
  /** Operation index → calls, for apiCallsByOperation. */
  ops: Int32Array;
  opCounts: Float64Array;
  /** Rate bucket index (in RATE_BUCKETS) → calls, for AWS's buckets. */
  buckets: Int32Array;
  bucketCounts: Float64Array;
  lambdaMs: number;
  paced: boolean;
}

export class SimulationQuotaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimulationQuotaError';
  }
}

export class AwsModel {
  readonly sites = new Map<CallSite, CompiledSite>();
  private readonly rateOf = new Float64Array(RATE_BUCKETS.length);
  private readonly burstOf = new Float64Array(RATE_BUCKETS.length);
  private readonly tokens: Float64Array;
  private readonly tokensAt = new Float64Array(RATE_BUCKETS.length);
  private readonly binSecond = new Float64Array(RATE_BUCKETS.length).fill(-1);
  private readonly binCount = new Float64Array(RATE_BUCKETS.length);
  private readonly peakRate = new Float64Array(RATE_BUCKETS.length);
  private readonly lambdaLimit: number;
  private readonly lambdaEnds = new EventQueue(4096);
  private readonly scratch = { time: 0, device: 0, kind: 0 };
  private readonly operations: string[] = [];
  private readonly opTotals: Float64Array;
  peakLambda = 0;

  constructor(account: QuotaTable) {
    RATE_BUCKETS.forEach((bucket, i) => {
      const quota = account[bucket];
      if (quota.kind !== 'rate') throw new SimulationQuotaError(`${bucket} must be a rate quota`);
      this.rateOf[i] = quota.rate;
      this.burstOf[i] = quota.burst;
    });
    this.tokens = Float64Array.from(this.burstOf);
    const lambda = account[Bucket.LambdaConcurrency];
    this.lambdaLimit = lambda.kind === 'concurrency' ? lambda.concurrency : Infinity;
    for (const site of Object.values(CallSite)) this.sites.set(site, this.compile(site));
    this.opTotals = new Float64Array(this.operations.length);
  }

  private opIndex(operation: string): number {
    let i = this.operations.indexOf(operation);
    if (i < 0) i = this.operations.push(operation) - 1;
    return i;
  }

  private compile(site: CallSite): CompiledSite {
    const profile = CALL_PROFILE[site];
    const ops = Object.entries(profile.calls);
    const perBucket = new Map<number, number>();
    const addBucket = (bucket: Bucket | undefined, count: number): void => {
      if (!bucket || count <= 0) return;
      const i = RATE_BUCKETS.indexOf(bucket);
      if (i >= 0) perBucket.set(i, (perBucket.get(i) ?? 0) + count);
    };
    for (const [operation, count] of ops) addBucket(bucketOf(operation), count);
    addBucket(Bucket.StateTransition, profile.transitions);
    addBucket(Bucket.MqttConnect, profile.connects);
    return {
      site,
      ops: Int32Array.from(ops.map(([operation]) => this.opIndex(operation))),
      opCounts: Float64Array.from(ops.map(([, count]) => count)),
      buckets: Int32Array.from(perBucket.keys()),
      bucketCounts: Float64Array.from(perBucket.values()),
      lambdaMs: profile.lambda?.durationMs ?? 0,
      paced: profile.paced,
    };
  }

  site(site: CallSite): CompiledSite {
    return this.sites.get(site) as CompiledSite;
  }

  /** The bucket a throttle index names. */
  static bucketOfThrottle(index: number): Bucket {
    return index === LAMBDA_THROTTLE ? Bucket.LambdaConcurrency : RATE_BUCKETS[index];
  }

  /**
   * Makes a site's calls at `nowMs` (never earlier than an event already handled: the buckets
   * and the per-second bins run forward only). Returns -1 when they all went through, or the
   * index of what throttled (LAMBDA_THROTTLE for concurrency); apiCallsByOperation counts the
   * sites that went through.
   */
  call(c: CompiledSite, nowMs: number): number {
    if (c.lambdaMs > 0) {
      while (this.lambdaEnds.peekTime() <= nowMs) this.lambdaEnds.pop(this.scratch);
      if (this.lambdaEnds.size >= this.lambdaLimit) return LAMBDA_THROTTLE;
      this.lambdaEnds.push(nowMs + c.lambdaMs, 0, 0);
      if (this.lambdaEnds.size > this.peakLambda) this.peakLambda = this.lambdaEnds.size;
    }
    const second = Math.floor(nowMs / 1000);
    for (let k = 0; k < c.buckets.length; k++) {
      const b = c.buckets[k];
      const want = c.bucketCounts[k];
      const have = Math.min(this.burstOf[b], this.tokens[b] + ((nowMs - this.tokensAt[b]) * this.rateOf[b]) / 1000);
      this.tokensAt[b] = nowMs;
      if (have < want) {
        this.tokens[b] = have;
        return b;
      }
      this.tokens[b] = have - want;
      if (this.binSecond[b] !== second) {
        this.binSecond[b] = second;
        this.binCount[b] = 0;
      }
      this.binCount[b] += want;
      if (this.binCount[b] > this.peakRate[b]) this.peakRate[b] = this.binCount[b];
    }
    for (let k = 0; k < c.ops.length; k++) this.opTotals[c.ops[k]] += c.opCounts[k];
    return -1;
  }

  /** The busiest whole second of each bucket that saw calls. */
  peakRatePerApi(): Record<string, number> {
    const peaks: Record<string, number> = {};
    RATE_BUCKETS.forEach((bucket, i) => {
      if (this.peakRate[i] > 0) peaks[bucket] = this.peakRate[i];
    });
    return peaks;
  }

  /** Calls per operation, per device. */
  callsPerDevice(devices: number, digits = 4): Record<string, number> {
    const f = 10 ** digits;
    const calls: Record<string, number> = {};
    this.operations.forEach((operation, i) => {
      if (this.opTotals[i] > 0) calls[operation] = Math.round((this.opTotals[i] / devices) * f) / f;
    });
    return calls;
  }
}
