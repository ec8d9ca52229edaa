import { FailureReason } from '../../domain/rotation.js';
import {
  AdmissionController,
  BUCKETS,
  Bucket,
  CALL_PROFILE,
  CallSite,
  DEFAULT_CALENDAR,
  DEFAULT_PACING,
  bucketOf,
  planCohort,
  quotaFloorSeconds,
  renewalOffsetS,
  type Admission,
  type CalendarSettings,
  type PacingSettings,
  type QuotaTable,
} from '../../domain/pacing/index.js';
import { FaultKind, parseFaultSpec, seededRandom, FaultSpecError } from '../../device-sim/faults.js';
import { EventQueue } from './event-queue.js';

/**
 * `rotor simulate`: a discrete-event simulation of one audit's rotations on a virtual clock.
 * Rotor's side is the product's own code — AdmissionController (pacing, AIMD), the renewal
 * calendar, the call profile — driven the way the live workflow drives it; AWS is a token
 * bucket per quota (`accountQuotas`) that throttles like AWS, with the SDK's and the state
 * machine's retries; devices answer after a latency drawn per message and misbehave as the
 * demo's faults do (device-sim/faults.ts). Everything is in typed arrays indexed by device.
 */

/** The workflow's timing settings (wiring.json defaults) that decide how a silent device fails. */
export interface WorkflowTimings {
  csrTimeoutS: number;
  csrRequestRetries: number;
  csrRetryIntervalS: number;
  ackTimeoutS: number;
}

export const DEFAULT_TIMINGS: WorkflowTimings = { csrTimeoutS: 1_800, csrRequestRetries: 3, csrRetryIntervalS: 300, ackTimeoutS: 900 };

/** How devices answer: log-normal latencies (median, and σ of the log), and an offline share. */
export interface DeviceModel {
  csrMedianS: number;
  csrSigma: number;
  ackMedianS: number;
  ackSigma: number;
  /** Share of devices that are offline when their csr_req arrives, back after an exponential time. */
  offlineShare: number;
  offlineMeanS: number;
}

export const DEFAULT_DEVICE_MODEL: DeviceModel = { csrMedianS: 2, csrSigma: 0.8, ackMedianS: 3, ackSigma: 0.6, offlineShare: 0, offlineMeanS: 3_600 };

export interface SimulationOptions {
  devices: number;
  /**
   * 'rotor' (default): the product's admission, calendar and AIMD. 'none': today's behaviour
   * for comparison — every finding due at once, started as fast as start-rotations fans out,
   * every step calling when it runs.
   */
  pacing?: 'rotor' | 'none';
  faults?: string;
  seed?: number;
  pacingSettings?: PacingSettings;
  /** The account's real quotas; by default the ones Rotor is configured with. */
  accountQuotas?: QuotaTable;
  calendar?: CalendarSettings;
  device?: DeviceModel;
  timings?: WorkflowTimings;
}

/** The report, field for field as issue 10 asks. Rates per second of virtual time. */
export interface SimulationReport {
  devices: number;
  rotated: number;
  failed: Record<string, number>;
  escalations: number;
  throttledCalls: number;
  throttlingFailures: number;
  quotaFloorS: number;
  completionS: number;
  completionOverFloor: number;
  peakOpenExecutions: number;
  peakLambdaConcurrency: number;
  peakRatePerApi: Record<string, number>;
  apiCallsByOperation: Record<string, number>;
}

export class SimulationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimulationError';
  }
}

/** A rotation that failed because its start never went through (start-rotations gave up on the finding). */
export const NOT_STARTED = 'NOT_STARTED';

// Event kinds.
const E = {
  Admit: 0,
  Start: 1,
  Request: 2,
  CsrTimeout: 3,
  CsrReply: 4,
  Issue: 5,
  Deliver: 6,
  AckReply: 7,
  AckTimeout: 8,
  Retire: 9,
  RollBack: 10,
  RecordFailure: 11,
  DeviceError: 12,
  IgnoredAck: 13,
} as const;

// Fault codes (0: none), in FaultKind order.
const FAULT_KINDS = Object.values(FaultKind);
const code = (kind: FaultKind): number => FAULT_KINDS.indexOf(kind) + 1;
const F = {
  Offline: code(FaultKind.Offline),
  OfflineForGood: code(FaultKind.OfflineForGood),
  Slow: code(FaultKind.Slow),
  GarbageCsr: code(FaultKind.GarbageCsr),
  WrongCn: code(FaultKind.WrongCn),
  WeakKey: code(FaultKind.WeakKey),
  ReusedKey: code(FaultKind.ReusedKey),
  CrashAfterCert: code(FaultKind.CrashAfterCert),
  RefuseCert: code(FaultKind.RefuseCert),
  AckOverOld: code(FaultKind.AckOverOld),
  Duplicate: code(FaultKind.Duplicate),
  RestartMidRotation: code(FaultKind.RestartMidRotation),
};
const CSR_FAULTS = new Set([F.GarbageCsr, F.WrongCn, F.WeakKey, F.ReusedKey]);

/** Failure reasons, indexed for a typed array. */
const REASONS = [NOT_STARTED, ...Object.values(FailureReason)];
const reasonCode = (reason: string): number => REASONS.indexOf(reason);

/** What a throttled site becomes when its retries run out. */
const THROTTLE_FAILURE: Partial<Record<CallSite, string>> = {
  [CallSite.StartRotation]: NOT_STARTED,
  [CallSite.IssueCertificate]: FailureReason.IssueFailed,
  [CallSite.IssueRejected]: FailureReason.IssueFailed,
  [CallSite.RetireOldCertificate]: FailureReason.RetireFailed,
  [CallSite.RollBackIssued]: FailureReason.RollbackFailed,
};

/** The SDK's standard retry mode: 3 attempts, full jitter on 100 ms × 2^n, at most 20 s. */
const SDK_ATTEMPTS = 3;
/** The ASL's Retry on throttling: 6 more attempts, 2 s × 2^n, at most 60 s, full jitter. */
const SFN_RETRIES = 6;

const SITES = Object.values(CallSite);
const RATE_BUCKETS: readonly Bucket[] = BUCKETS.filter((bucket) => bucket !== Bucket.LambdaConcurrency);

interface CompiledSite {
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

/** What the simulator asks of Rotor's pacing: AdmissionController's interface. */
type Pacer = Pick<AdmissionController, 'admitStart' | 'reserve' | 'observeThrottle' | 'sustainableRate'>;

/**
 * Today, for comparison: start-rotations starts every finding of a page with 8 calls in flight
 * (about 100 ms each: 80 starts/s) and every step calls AWS the moment it runs.
 */
class TodaysFanOut implements Pacer {
  private nextStartMs = 0;
  admitStart(nowMs: number): Admission {
    if (this.nextStartMs > nowMs) return { admitted: false, retryAtMs: this.nextStartMs };
    this.nextStartMs = Math.max(this.nextStartMs, nowMs) + 1000 / TODAYS_START_RATE;
    return { admitted: true, atMs: nowMs };
  }
  reserve(_site: CallSite, nowMs: number): number {
    return nowMs;
  }
  observeThrottle(): void {}
  sustainableRate(): number {
    return TODAYS_START_RATE;
  }
}
const TODAYS_START_RATE = 80;

function lognormal(random: () => number, median: number, sigma: number): number {
  // Box–Muller; 1 - random() keeps log() finite.
  const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return median * Math.exp(sigma * z);
}

function certificateIdOf(random: () => number): string {
  let id = '';
  for (let i = 0; i < 8; i++) id += Math.floor(random() * 4_294_967_296).toString(16).padStart(8, '0');
  return id;
}

export function simulate(options: SimulationOptions): SimulationReport {
  const n = options.devices;
  if (!Number.isInteger(n) || n < 1) throw new SimulationError(`--devices must be a whole number of at least 1; got ${n}`);
  const seed = options.seed ?? 1;
  const pacing = options.pacingSettings ?? DEFAULT_PACING;
  const account = options.accountQuotas ?? pacing.quotas.quotas;
  const calendar = options.calendar ?? DEFAULT_CALENDAR;
  const model = options.device ?? DEFAULT_DEVICE_MODEL;
  const timings = options.timings ?? DEFAULT_TIMINGS;
  const random = seededRandom(seed);

  // --- the fleet: faults (as the demo assigns them, by index) and calendar offsets ---
  const fault = new Uint8Array(n);
  const faultMs = new Float64Array(n);
  let entries;
  try {
    entries = parseFaultSpec(options.faults ?? '');
  } catch (error) {
    if (error instanceof FaultSpecError) throw new SimulationError(error.message);
    throw error;
  }
  const counts = entries.map((entry) => ('count' in entry.amount ? entry.amount.count : Math.round((entry.amount.percent / 100) * n)));
  const faulty = counts.reduce((a, b) => a + b, 0);
  if (faulty > n) throw new SimulationError(`the fault spec asks for ${faulty} faulty devices but the fleet has ${n}`);
  {
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const shuffle = seededRandom(seed);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(shuffle() * (i + 1));
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    let next = 0;
    entries.forEach((entry, index) => {
      for (let k = 0; k < counts[index]; k++) {
        const d = order[next++];
        fault[d] = code(entry.kind);
        faultMs[d] = entry.durationMs;
      }
    });
  }
  // How long a device stays away once it drops off at its first csr_req (that request is lost):
  // the offline fault's duration, or for the model's offline share an exponential draw.
  const offlineForS = new Float64Array(n);
  const offlineUntilS = new Float64Array(n);
  for (let d = 0; d < n; d++) {
    if (fault[d] === F.Offline) offlineForS[d] = faultMs[d] / 1000;
    else if (fault[d] === 0 && random() < model.offlineShare) offlineForS[d] = -model.offlineMeanS * Math.log(1 - random());
  }

  const admission: Pacer = options.pacing === 'none' ? new TodaysFanOut() : new AdmissionController(pacing, 0);
  const eligibleS = new Float64Array(n);
  if (options.pacing !== 'none') {
    const cohort = planCohort(n, admission.sustainableRate(), calendar);
    for (let d = 0; d < n; d++) eligibleS[d] = renewalOffsetS(certificateIdOf(random), cohort);
  }
  const byEligibility = new Int32Array(n);
  for (let i = 0; i < n; i++) byEligibility[i] = i;
  byEligibility.sort((a, b) => eligibleS[a] - eligibleS[b]);

  // --- AWS: one token bucket per rate quota, Lambda concurrency as a count ---
  const rateOf = new Float64Array(RATE_BUCKETS.length);
  const burstOf = new Float64Array(RATE_BUCKETS.length);
  RATE_BUCKETS.forEach((bucket, i) => {
    const quota = account[bucket];
    if (quota.kind !== 'rate') throw new SimulationError(`${bucket} must be a rate quota`);
    rateOf[i] = quota.rate;
    burstOf[i] = quota.burst;
  });
  const tokens = Float64Array.from(burstOf);
  const tokensAt = new Float64Array(RATE_BUCKETS.length);
  const binSecond = new Float64Array(RATE_BUCKETS.length).fill(-1);
  const binCount = new Float64Array(RATE_BUCKETS.length);
  const peakRate = new Float64Array(RATE_BUCKETS.length);
  const lambdaQuota = account[Bucket.LambdaConcurrency];
  const lambdaLimit = lambdaQuota.kind === 'concurrency' ? lambdaQuota.concurrency : Infinity;
  const lambdaEnds = new EventQueue(4096);
  let peakLambda = 0;

  const operations: string[] = [];
  const opIndex = (operation: string): number => {
    let i = operations.indexOf(operation);
    if (i < 0) i = operations.push(operation) - 1;
    return i;
  };
  const compiled = new Map<CallSite, CompiledSite>();
  for (const site of SITES) {
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
    compiled.set(site, {
      site,
      ops: Int32Array.from(ops.map(([operation]) => opIndex(operation))),
      opCounts: Float64Array.from(ops.map(([, count]) => count)),
      buckets: Int32Array.from(perBucket.keys()),
      bucketCounts: Float64Array.from(perBucket.values()),
      lambdaMs: profile.lambda?.durationMs ?? 0,
      paced: profile.paced,
    });
  }
  const opTotals = new Float64Array(64);

  let throttledCalls = 0;
  let throttlingFailures = 0;

  /**
   * Makes a site's calls at `nowMs` (never earlier than an event already handled: the buckets
   * and the per-second bins run forward only). Returns -1 when they all went through, or the
   * index of the bucket that throttled; apiCallsByOperation counts the sites that went through.
   */
  const call = (c: CompiledSite, nowMs: number): number => {
    if (c.lambdaMs > 0) {
      while (lambdaEnds.peekTime() <= nowMs) lambdaEnds.pop(scratch);
      if (lambdaEnds.size >= lambdaLimit) return RATE_BUCKETS.length;
      lambdaEnds.push(nowMs + c.lambdaMs, 0, 0);
      if (lambdaEnds.size > peakLambda) peakLambda = lambdaEnds.size;
    }
    const second = Math.floor(nowMs / 1000);
    for (let k = 0; k < c.buckets.length; k++) {
      const b = c.buckets[k];
      const want = c.bucketCounts[k];
      const have = Math.min(burstOf[b], tokens[b] + ((nowMs - tokensAt[b]) * rateOf[b]) / 1000);
      tokensAt[b] = nowMs;
      if (have < want) {
        tokens[b] = have;
        return b;
      }
      tokens[b] = have - want;
      if (binSecond[b] !== second) {
        binSecond[b] = second;
        binCount[b] = 0;
      }
      binCount[b] += want;
      if (binCount[b] > peakRate[b]) peakRate[b] = binCount[b];
    }
    for (let k = 0; k < c.ops.length; k++) opTotals[c.ops[k]] += c.opCounts[k];
    return -1;
  };

  // --- per-device rotation state ---
  const csrAttempt = new Uint8Array(n);
  const retries = new Uint8Array(n);
  const issued = new Uint8Array(n);
  let rotated = 0;
  let escalations = 0;
  let open = 0;
  let peakOpen = 0;
  let lastEndMs = 0;
  const failedBy = new Float64Array(REASONS.length);

  const queue = new EventQueue(1 << 16);
  const scratch = { time: 0, device: 0, kind: 0 };
  let nextToAdmit = 0;

  const at = (seconds: number): number => seconds * 1000;
  const finish = (nowMs: number): void => {
    if (nowMs > lastEndMs) lastEndMs = nowMs;
  };


  /**
   * Runs a site's calls; on a throttle, schedules the retry the SDK and then the state machine
   * would make, and after the last one fails the rotation. Returns true when the calls went through.
   */
  const attempt = (d: number, site: CallSite, kind: number, nowMs: number): boolean => {
    const c = compiled.get(site) as CompiledSite;
    const throttled = call(c, nowMs);
    if (throttled < 0) {
      retries[d] = 0;
      return true;
    }
    throttledCalls++;
    admission.observeThrottle(throttled === RATE_BUCKETS.length ? Bucket.LambdaConcurrency : RATE_BUCKETS[throttled], nowMs);
    const r = ++retries[d];
    const giveUp = THROTTLE_FAILURE[site];
    if (giveUp !== undefined && r >= SDK_ATTEMPTS * (SFN_RETRIES + 1)) {
      throttlingFailures++;
      retries[d] = 0;
      failRotation(d, giveUp, nowMs, site === CallSite.StartRotation ? 'none' : site === CallSite.RetireOldCertificate ? 'record' : 'rollback');
      return false;
    }
    let delayMs: number;
    if (giveUp === undefined) delayMs = 1000 + random() * 1000; // async invocations retry, messages wait
    else if (r % SDK_ATTEMPTS !== 0) delayMs = random() * Math.min(20_000, 100 * 2 ** (r % SDK_ATTEMPTS));
    else delayMs = random() * Math.min(60_000, 2_000 * 2 ** (r / SDK_ATTEMPTS - 1));
    const retryAt = c.paced ? admission.reserve(site, nowMs + delayMs) : nowMs + delayMs;
    queue.push(retryAt, d, kind);
    return false;
  };

  /** A failure: roll back (if anything may need it), record, escalate — or, for a start that never happened, nothing. */
  const failRotation = (d: number, why: string, nowMs: number, path: 'none' | 'rollback' | 'record'): void => {
    failedBy[reasonCode(why)]++;
    if (path === 'none') {
      finish(nowMs);
      return;
    }
    if (path === 'record') queue.push(nowMs + 100, d, E.RecordFailure);
    else if (issued[d]) queue.push(admission.reserve(CallSite.RollBackIssued, nowMs + 100), d, E.RollBack);
    else queue.push(nowMs + 100, d, E.RollBack);
  };

  const sendCsrRequest = (d: number, nowMs: number): void => {
    if (!attempt(d, CallSite.RequestCsr, E.Request, nowMs)) return;
    const k = csrAttempt[d];
    const nowS = nowMs / 1000;
    const f = fault[d];
    // The device answers when it has the request: at once, or when it is back if it dropped off.
    let replyS = Infinity;
    if (f === F.OfflineForGood) replyS = Infinity;
    else if (k === 0 && offlineForS[d] > 0) offlineUntilS[d] = nowS + offlineForS[d];
    else {
      replyS = Math.max(nowS, offlineUntilS[d]) + lognormal(random, model.csrMedianS, model.csrSigma);
      if (f === F.Slow) replyS += faultMs[d] / 1000;
    }
    if (replyS < nowS + timings.csrTimeoutS) queue.push(at(replyS), d, E.CsrReply);
    else queue.push(at(nowS + timings.csrTimeoutS), d, E.CsrTimeout);
  };

  const deliver = (d: number, nowMs: number): void => {
    if (!attempt(d, CallSite.DeliverCertificate, E.Deliver, nowMs)) return;
    const nowS = nowMs / 1000;
    const f = fault[d];
    const ack = lognormal(random, model.ackMedianS, model.ackSigma);
    let replyS = nowS + ack;
    let kind: number = E.AckReply;
    if (f === F.Slow) replyS += faultMs[d] / 1000;
    else if (f === F.CrashAfterCert || f === F.RestartMidRotation) replyS += faultMs[d] / 1000;
    else if (f === F.RefuseCert) {
      replyS = nowS + lognormal(random, model.csrMedianS, model.csrSigma);
      kind = E.DeviceError;
    } else if (f === F.AckOverOld) {
      // The ack arrives over the old certificate: recorded and ignored; the wait runs out.
      queue.push(at(nowS + ack), d, E.IgnoredAck);
      queue.push(at(nowS + timings.ackTimeoutS), d, E.AckTimeout);
      return;
    }
    if (replyS < nowS + timings.ackTimeoutS) queue.push(at(replyS), d, kind);
    else queue.push(at(nowS + timings.ackTimeoutS), d, E.AckTimeout);
  };

  const startOpen = (): void => {
    open++;
    if (open > peakOpen) peakOpen = open;
  };

  const admit = (nowMs: number): void => {
    while (nextToAdmit < n) {
      const d = byEligibility[nextToAdmit];
      const dueMs = at(eligibleS[d]);
      if (dueMs > nowMs) {
        queue.push(dueMs, -1, E.Admit);
        return;
      }
      const decision = admission.admitStart(nowMs);
      if (!decision.admitted) {
        queue.push(decision.retryAtMs, -1, E.Admit);
        return;
      }
      queue.push(decision.atMs, d, E.Start);
      nextToAdmit++;
    }
  };

  admit(0);
  const ignored = compiled.get(CallSite.IgnoredMessage) as CompiledSite;
  while (queue.pop(scratch)) {
    const nowMs = scratch.time;
    const d = scratch.device;
    switch (scratch.kind) {
      case E.Admit:
        admit(nowMs);
        break;
      case E.Start:
        if (!attempt(d, CallSite.StartRotation, E.Start, nowMs)) break;
        startOpen();
        call(compiled.get(CallSite.ClaimDevice) as CompiledSite, nowMs);
        queue.push(nowMs + 100, d, E.Request);
        break;
      case E.Request:
        sendCsrRequest(d, nowMs);
        break;
      case E.CsrTimeout: {
        const k = csrAttempt[d];
        if (k >= timings.csrRequestRetries) {
          failRotation(d, FailureReason.NoCsrResponse, nowMs, 'rollback');
          break;
        }
        csrAttempt[d] = k + 1;
        // Full jitter on the doubling interval, as the ASL's Retry on States.Timeout.
        queue.push(nowMs + random() * at(timings.csrRetryIntervalS * 2 ** k), d, E.Request);
        break;
      }
      case E.CsrReply:
        if (!attempt(d, CallSite.CsrResponse, E.CsrReply, nowMs)) break;
        if (fault[d] === F.Duplicate) call(ignored, nowMs);
        queue.push(admission.reserve(CSR_FAULTS.has(fault[d]) ? CallSite.IssueRejected : CallSite.IssueCertificate, nowMs + 100), d, E.Issue);
        break;
      case E.Issue:
        if (CSR_FAULTS.has(fault[d])) {
          if (!attempt(d, CallSite.IssueRejected, E.Issue, nowMs)) break;
          failRotation(d, FailureReason.CsrRejected, nowMs, 'rollback');
          break;
        }
        if (!attempt(d, CallSite.IssueCertificate, E.Issue, nowMs)) break;
        issued[d] = 1;
        queue.push(nowMs + (compiled.get(CallSite.IssueCertificate) as CompiledSite).lambdaMs + 100, d, E.Deliver);
        break;
      case E.Deliver:
        deliver(d, nowMs);
        break;
      case E.AckReply:
        if (!attempt(d, CallSite.CertificateAck, E.AckReply, nowMs)) break;
        if (fault[d] === F.Duplicate) call(ignored, nowMs);
        queue.push(admission.reserve(CallSite.RetireOldCertificate, nowMs + 100), d, E.Retire);
        break;
      case E.DeviceError:
        if (!attempt(d, CallSite.CertificateError, E.DeviceError, nowMs)) break;
        failRotation(d, FailureReason.DeviceError, nowMs, 'rollback');
        break;
      case E.IgnoredAck:
        call(ignored, nowMs);
        break;
      case E.AckTimeout:
        failRotation(d, FailureReason.NoAck, nowMs, 'rollback');
        break;
      case E.Retire:
        if (!attempt(d, CallSite.RetireOldCertificate, E.Retire, nowMs)) break;
        // The Rotated state follows Retire old certificate's Lambda; counted now, ended then.
        call(compiled.get(CallSite.Rotated) as CompiledSite, nowMs);
        rotated++;
        open--;
        finish(nowMs + (compiled.get(CallSite.RetireOldCertificate) as CompiledSite).lambdaMs);
        break;
      case E.RollBack:
        if (!attempt(d, issued[d] ? CallSite.RollBackIssued : CallSite.RollBackNothingIssued, E.RollBack, nowMs)) break;
        queue.push(nowMs + 500, d, E.RecordFailure);
        break;
      case E.RecordFailure:
        // Record failure → Escalate → Rotation failed: counted now, ended a moment later.
        call(compiled.get(CallSite.RecordFailure) as CompiledSite, nowMs);
        call(compiled.get(CallSite.Escalate) as CompiledSite, nowMs);
        call(compiled.get(CallSite.RotationFailed) as CompiledSite, nowMs);
        escalations++;
        open--;
        finish(nowMs + 150);
        break;
    }
  }

  const failed: Record<string, number> = {};
  REASONS.forEach((name, i) => {
    if (failedBy[i] > 0) failed[name] = failedBy[i];
  });
  const peakRatePerApi: Record<string, number> = {};
  RATE_BUCKETS.forEach((bucket, i) => {
    if (peakRate[i] > 0) peakRatePerApi[bucket] = peakRate[i];
  });
  const apiCallsByOperation: Record<string, number> = {};
  operations.forEach((operation, i) => {
    if (opTotals[i] > 0) apiCallsByOperation[operation] = round(opTotals[i] / n, 4);
  });
  const quotaFloorS = quotaFloorSeconds(n, pacing.quotas);
  const completionS = lastEndMs / 1000;
  return {
    devices: n,
    rotated,
    failed,
    escalations,
    throttledCalls,
    throttlingFailures,
    quotaFloorS: round(quotaFloorS, 1),
    completionS: round(completionS, 1),
    completionOverFloor: round(completionS / quotaFloorS, 3),
    peakOpenExecutions: peakOpen,
    peakLambdaConcurrency: peakLambda,
    peakRatePerApi,
    apiCallsByOperation,
  };
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
