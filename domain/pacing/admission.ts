import { CALL_PROFILE, CallSite, HAPPY_PATH, bucketDemand, pathDemand, type PathDemand, type SiteProfile } from './call-profile.js';
import { Bucket, BUCKETS, DEFAULT_QUOTA_SETTINGS, type QuotaSettings } from './quotas.js';
import { RateBudget, compileDemand, type Demand } from './rate-budget.js';

/**
 * Admission: how fast rotations start, and when each API-bound step may make its calls.
 *
 * - A rotation's steps reserve their calls on the shared RateBudget (one GCRA per bucket) and
 *   run when told: never refused, never failed for want of budget.
 * - A new rotation starts only when (a) the start pace allows it — the sustainable rotation
 *   rate (the scarcest budget ÷ its calls per rotation) times a headroom, because failing
 *   rotations spend less than the happy path — and (b) no bucket it will spend is queued more
 *   than `maxQueueMs` ahead. (b) is the backpressure that lets rotations already in flight go
 *   first, and it counts reservations of API-bound steps only: a device that is slow to
 *   answer holds no budget, only an open execution.
 * - AIMD: a ThrottlingException on a bucket means the account has less than the budget assumed
 *   (another workload, a lower quota): that bucket's rate is cut multiplicatively, at most once
 *   per cooldown, then grows back additively while nothing throttles.
 */
export interface AimdSettings {
  /** Multiplier applied on a throttle. */
  decrease: number;
  /** Share of the configured budget added back per quiet interval. */
  increase: number;
  intervalMs: number;
  /** Throttles within this long of a cut are the same event. */
  cooldownMs: number;
  /** Never below this share of the configured budget. */
  floor: number;
}

export interface PacingSettings {
  quotas: QuotaSettings;
  /** Start admission holds while any bucket is queued further ahead than this. */
  maxQueueMs: number;
  /** Start pace ÷ the sustainable rotation rate. */
  startHeadroom: number;
  aimd: AimdSettings;
  /**
   * Sites whose calls differ from CALL_PROFILE in this deployment: with the private-ca signer,
   * Issue certificate reserves Private CA's IssueCertificate and GetCertificate and IoT's
   * RegisterCertificate instead of CreateCertificateFromCsr (privateCaIssueProfile).
   */
  siteProfiles?: Partial<Record<CallSite, SiteProfile>>;
}

export const DEFAULT_AIMD: AimdSettings = { decrease: 0.7, increase: 0.05, intervalMs: 10_000, cooldownMs: 5_000, floor: 0.05 };

export const DEFAULT_PACING: PacingSettings = {
  quotas: DEFAULT_QUOTA_SETTINGS,
  maxQueueMs: 2_000,
  startHeadroom: 1.25,
  aimd: DEFAULT_AIMD,
};

/**
 * What must be shared between the Lambdas and executions that pace against one budget (the
 * live slice keeps it in one DynamoDB item): per bucket the TAT, the AIMD share and the times of
 * its last cut and growth, plus the start pace's TAT. Rates are not in it: they follow from the
 * settings (which every function reads from its environment) and the shares.
 */
export interface AdmissionState {
  tatMs: Partial<Record<Bucket, number>>;
  share: Partial<Record<Bucket, number>>;
  lastCutMs: Partial<Record<Bucket, number>>;
  lastGrowMs: Partial<Record<Bucket, number>>;
  startTatMs: number;
}

export type Admission = { admitted: true; atMs: number } | { admitted: false; retryAtMs: number };

/** The bucket that limits the rotation rate, and that rate. */
export interface Bottleneck {
  bucket: Bucket;
  /** Rotations per second. */
  rate: number;
}

const RATE_BUCKETS = BUCKETS.filter((bucket) => DEFAULT_QUOTA_SETTINGS.quotas[bucket].kind === 'rate');

/** Budgeted rate of each bucket (calls/s, or concurrency) at a share of the configured budget. */
function budgetOf(settings: QuotaSettings, bucket: Bucket, share = 1): number {
  const quota = settings.quotas[bucket];
  return (quota.kind === 'rate' ? quota.rate : quota.concurrency) * settings.safetyFraction * share;
}

/**
 * The scarcest budget for a rotation along `path`: rotations per second each bucket allows,
 * the lowest wins. Lambda concurrency counts by Little's law (concurrency ÷ Lambda-seconds).
 */
export function bottleneck(settings: QuotaSettings, demand: PathDemand = pathDemand(HAPPY_PATH), share: (bucket: Bucket) => number = () => 1): Bottleneck {
  let best: Bottleneck = { bucket: Bucket.LambdaConcurrency, rate: Infinity };
  for (const bucket of BUCKETS) {
    const perRotation = bucket === Bucket.LambdaConcurrency ? demand.lambdaSeconds : (demand.perBucket[bucket] ?? 0);
    if (perRotation <= 0) continue;
    const rate = budgetOf(settings, bucket, share(bucket)) / perRotation;
    if (rate < best.rate) best = { bucket, rate };
  }
  return best;
}

/**
 * The quota floor: the least time in which `devices` rotations can be made within the budget,
 * the largest over the buckets of calls per rotation × devices ÷ budgeted rate. With
 * safetyFraction 1 it is issue 10's floor at the raw quotas.
 */
export function quotaFloorSeconds(devices: number, settings: QuotaSettings = DEFAULT_QUOTA_SETTINGS, demand: PathDemand = pathDemand(HAPPY_PATH)): number {
  return devices / bottleneck(settings, demand).rate;
}

/** Calls in any whole second stay within the quota: the budget's burst is the gap it leaves. */
function toleranceCalls(quotaRate: number, budgetRate: number): number {
  return Math.max(0, Math.floor(quotaRate - budgetRate) - 1);
}

export class AdmissionController {
  readonly budget = new RateBudget();
  private readonly share = new Float64Array(BUCKETS.length).fill(1);
  private readonly lastCutMs = new Float64Array(BUCKETS.length).fill(-Infinity);
  private readonly lastGrowMs = new Float64Array(BUCKETS.length);
  private readonly demands = new Map<CallSite, Demand>();
  private readonly happy = pathDemand(HAPPY_PATH);
  private readonly happyDemand: Demand;
  private startTatMs = 0;
  private startIntervalMs = 0;
  /** Counters for reports and metrics. */
  readonly stats = { cuts: 0, minShare: 1 };

  constructor(
    readonly settings: PacingSettings = DEFAULT_PACING,
    nowMs = 0,
  ) {
    this.lastGrowMs.fill(nowMs);
    this.happyDemand = compileDemand(this.happy.perBucket);
    for (const bucket of RATE_BUCKETS) this.applyRate(bucket);
    this.updateStartPace();
  }

  private applyRate(bucket: Bucket): void {
    const quota = this.settings.quotas.quotas[bucket];
    if (quota.kind !== 'rate') return;
    const rate = budgetOf(this.settings.quotas, bucket, this.share[BUCKETS.indexOf(bucket)]);
    this.budget.setRate(bucket, rate, toleranceCalls(quota.rate * this.share[BUCKETS.indexOf(bucket)], rate));
  }

  private updateStartPace(): void {
    const rate = this.sustainableRate() * this.settings.startHeadroom;
    this.startIntervalMs = rate > 0 && Number.isFinite(rate) ? 1000 / rate : 0;
  }

  /** Rotations per second the current budgets sustain on the happy path. */
  sustainableRate(): number {
    return bottleneck(this.settings.quotas, this.happy, (bucket) => this.share[BUCKETS.indexOf(bucket)]).rate;
  }

  /** The share of its configured budget a bucket is at (AIMD). */
  shareOf(bucket: Bucket): number {
    return this.share[BUCKETS.indexOf(bucket)];
  }

  private demandOf(site: CallSite): Demand {
    let demand = this.demands.get(site);
    if (!demand) {
      demand = compileDemand(bucketDemand(this.settings.siteProfiles?.[site] ?? CALL_PROFILE[site]));
      this.demands.set(site, demand);
    }
    return demand;
  }

  /** Additive increase, applied lazily: one step per quiet interval since the last change. */
  private grow(nowMs: number): void {
    const { increase, intervalMs } = this.settings.aimd;
    let changed = false;
    for (let i = 0; i < BUCKETS.length; i++) {
      if (this.share[i] >= 1) continue;
      const steps = Math.floor((nowMs - this.lastGrowMs[i]) / intervalMs);
      if (steps <= 0) continue;
      this.share[i] = Math.min(1, this.share[i] + steps * increase);
      this.lastGrowMs[i] += steps * intervalMs;
      this.applyRate(BUCKETS[i]);
      changed = true;
    }
    if (changed) this.updateStartPace();
  }

  /** A call on this bucket was throttled by AWS. */
  observeThrottle(bucket: Bucket, nowMs: number): void {
    const i = BUCKETS.indexOf(bucket);
    const { decrease, cooldownMs, floor } = this.settings.aimd;
    this.lastGrowMs[i] = nowMs;
    if (nowMs - this.lastCutMs[i] < cooldownMs) return;
    this.lastCutMs[i] = nowMs;
    this.share[i] = Math.max(floor, this.share[i] * decrease);
    this.stats.cuts++;
    this.stats.minShare = Math.min(this.stats.minShare, this.share[i]);
    this.applyRate(bucket);
    this.updateStartPace();
  }

  /**
   * May a new rotation start now? When admitted, its start calls are reserved and `atMs` says
   * when to make them; otherwise `retryAtMs` says when asking again can succeed.
   */
  admitStart(nowMs: number): Admission {
    this.grow(nowMs);
    const paceAt = Math.max(nowMs, this.startTatMs);
    const over = this.budget.longestQueueMs(this.happyDemand, nowMs) - this.settings.maxQueueMs;
    if (paceAt > nowMs || over > 0) return { admitted: false, retryAtMs: Math.max(paceAt, nowMs + Math.max(0, over)) };
    this.startTatMs = paceAt + this.startIntervalMs;
    return { admitted: true, atMs: this.budget.reserve(this.demandOf(CallSite.StartRotation), nowMs) };
  }

  /**
   * Admits up to `max` starts at once, each at its place in the start pace, as long as that place
   * is within `horizonMs` of now: one decision (one write of the shared item) for several starts.
   * Each admitted start's calls are reserved; the caller waits until each `atMs`. When none can
   * be admitted within the horizon, `retryAtMs` says when asking again can succeed.
   */
  admitStarts(nowMs: number, max: number, horizonMs: number): { atMs: number[]; retryAtMs?: number } {
    const atMs: number[] = [];
    while (atMs.length < max) {
      const t = Math.max(nowMs, this.startTatMs);
      if (t > nowMs + horizonMs) return atMs.length ? { atMs } : { atMs, retryAtMs: t - horizonMs };
      const admission = this.admitStart(t);
      if (!admission.admitted) return atMs.length ? { atMs } : { atMs, retryAtMs: admission.retryAtMs };
      atMs.push(admission.atMs);
    }
    return { atMs };
  }

  /** The state to share (see AdmissionState); only what differs from a fresh controller's. */
  toState(): AdmissionState {
    const state: AdmissionState = { tatMs: {}, share: {}, lastCutMs: {}, lastGrowMs: {}, startTatMs: this.startTatMs };
    BUCKETS.forEach((bucket, i) => {
      const tat = this.budget.tatOf(bucket);
      if (tat > 0) state.tatMs[bucket] = tat;
      if (this.share[i] < 1) {
        state.share[bucket] = this.share[i];
        state.lastGrowMs[bucket] = this.lastGrowMs[i];
      }
      if (Number.isFinite(this.lastCutMs[i])) state.lastCutMs[bucket] = this.lastCutMs[i];
    });
    return state;
  }

  /**
   * A controller with the shared state and these settings. A bucket whose share is 1 starts its
   * quiet interval at `nowMs`: growth only matters after a cut, and a cut records the time.
   */
  static fromState(settings: PacingSettings, state: AdmissionState, nowMs: number): AdmissionController {
    const controller = new AdmissionController(settings, nowMs);
    BUCKETS.forEach((bucket, i) => {
      const share = state.share[bucket];
      if (share !== undefined && share > 0 && share < 1) {
        controller.share[i] = share;
        controller.lastGrowMs[i] = state.lastGrowMs[bucket] ?? nowMs;
        controller.applyRate(bucket);
      }
      const cut = state.lastCutMs[bucket];
      if (cut !== undefined) controller.lastCutMs[i] = cut;
      const tat = state.tatMs[bucket];
      if (tat !== undefined) controller.budget.restoreTat(bucket, tat);
    });
    controller.startTatMs = state.startTatMs;
    controller.updateStartPace();
    return controller;
  }

  /** Reserves a paced step's calls; returns when to make them (now or later, never refused). */
  reserve(site: CallSite, nowMs: number): number {
    this.grow(nowMs);
    return this.budget.reserve(this.demandOf(site), nowMs);
  }
}
