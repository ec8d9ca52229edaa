import { BUCKETS, type Bucket } from './quotas.js';

/**
 * A budget of calls per bucket, shared by everything that spends it: one GCRA (the virtual
 * scheduling form of a token bucket) per bucket. Its whole state is one number per bucket, the
 * theoretical arrival time (TAT): the time at which the bucket's reservations so far are paid
 * for. A caller reserves a step's calls on every bucket at once and is told WHEN it may make
 * them; nothing is refused, so a step never fails for want of budget, it waits. How far a TAT
 * runs ahead of now is the bucket's queue, which is what start admission watches.
 *
 * Pure: time comes in as an argument. The state is `toItem()`-able so that the live slice can
 * keep it in one DynamoDB item and reserve with a conditional write (docs/fleet-scale.md).
 */

const INDEX: ReadonlyMap<Bucket, number> = new Map(BUCKETS.map((bucket, i) => [bucket, i]));

export function bucketIndex(bucket: Bucket): number {
  const i = INDEX.get(bucket);
  if (i === undefined) throw new Error(`unknown bucket ${bucket}`);
  return i;
}

/** A demand compiled once (per call site) so reserving allocates nothing. */
export interface Demand {
  readonly buckets: Int32Array;
  readonly counts: Float64Array;
}

export function compileDemand(demand: Partial<Record<Bucket, number>>): Demand {
  const entries = (Object.entries(demand) as [Bucket, number][]).filter(([, n]) => n > 0);
  return { buckets: Int32Array.from(entries.map(([bucket]) => bucketIndex(bucket))), counts: Float64Array.from(entries.map(([, n]) => n)) };
}

export interface RateBudgetItem {
  /** Per bucket: calls per second, burst tolerance in calls, TAT in ms since the epoch. */
  buckets: Partial<Record<Bucket, { rate: number; toleranceCalls: number; tatMs: number }>>;
}

export class RateBudget {
  /** ms per call; Infinity for a bucket without a budget (never waits). */
  private readonly intervalMs = new Float64Array(BUCKETS.length);
  private readonly toleranceMs = new Float64Array(BUCKETS.length);
  private readonly toleranceCalls = new Float64Array(BUCKETS.length);
  private readonly tatMs = new Float64Array(BUCKETS.length);
  private readonly rates = new Float64Array(BUCKETS.length);

  /** Buckets without a rate have no budget: reserving on them never waits. */
  setRate(bucket: Bucket, rate: number, toleranceCalls: number): void {
    const i = bucketIndex(bucket);
    this.rates[i] = rate;
    this.intervalMs[i] = rate > 0 ? 1000 / rate : 0;
    this.toleranceCalls[i] = toleranceCalls;
    this.toleranceMs[i] = rate > 0 ? (toleranceCalls * 1000) / rate : 0;
  }

  rate(bucket: Bucket): number {
    return this.rates[bucketIndex(bucket)];
  }

  /** The earliest time at or after `nowMs` at which these calls conform to every budget. */
  earliest(demand: Demand, nowMs: number): number {
    let at = nowMs;
    for (let k = 0; k < demand.buckets.length; k++) {
      const i = demand.buckets[k];
      if (this.intervalMs[i] === 0) continue;
      const t = this.tatMs[i] - this.toleranceMs[i];
      if (t > at) at = t;
    }
    return at;
  }

  /**
   * Reserves the calls and returns when they may be made. Reserving all buckets at the same
   * instant (the latest any of them allows) keeps every bucket's calls spaced by its rate even
   * when one bucket makes the step wait for another.
   */
  reserve(demand: Demand, nowMs: number): number {
    const at = this.earliest(demand, nowMs);
    for (let k = 0; k < demand.buckets.length; k++) {
      const i = demand.buckets[k];
      if (this.intervalMs[i] === 0) continue;
      this.tatMs[i] = Math.max(this.tatMs[i], at) + demand.counts[k] * this.intervalMs[i];
    }
    return at;
  }

  /** How long the reservations made so far keep this bucket busy, from now. */
  queueMs(bucket: Bucket, nowMs: number): number {
    return Math.max(0, this.tatMs[bucketIndex(bucket)] - nowMs);
  }

  /** The longest queue among the buckets of a demand. */
  longestQueueMs(demand: Demand, nowMs: number): number {
    let longest = 0;
    for (let k = 0; k < demand.buckets.length; k++) {
      const i = demand.buckets[k];
      if (this.intervalMs[i] === 0) continue;
      longest = Math.max(longest, this.tatMs[i] - nowMs);
    }
    return longest;
  }

  /** A bucket's theoretical arrival time (ms since the epoch); 0 before any reservation. */
  tatOf(bucket: Bucket): number {
    return this.tatMs[bucketIndex(bucket)];
  }

  /** Restores a bucket's TAT from a stored state (the rate stays what setRate made it). */
  restoreTat(bucket: Bucket, tatMs: number): void {
    this.tatMs[bucketIndex(bucket)] = tatMs;
  }

  toItem(): RateBudgetItem {
    const buckets: RateBudgetItem['buckets'] = {};
    BUCKETS.forEach((bucket, i) => {
      if (this.rates[i] > 0) buckets[bucket] = { rate: this.rates[i], toleranceCalls: this.toleranceCalls[i], tatMs: this.tatMs[i] };
    });
    return { buckets };
  }

  static fromItem(item: RateBudgetItem): RateBudget {
    const budget = new RateBudget();
    for (const [bucket, entry] of Object.entries(item.buckets) as [Bucket, { rate: number; toleranceCalls: number; tatMs: number }][]) {
      budget.setRate(bucket, entry.rate, entry.toleranceCalls);
      budget.tatMs[bucketIndex(bucket)] = entry.tatMs;
    }
    return budget;
  }
}
