import { FailureReason } from '../../domain/rotation.js';
import {
  AdmissionController,
  CallSite,
  DEFAULT_CALENDAR,
  DEFAULT_PACING,
  planCohort,
  quotaFloorSeconds,
  renewalOffsetS,
  type Admission,
  type CalendarSettings,
  type PacingSettings,
  type QuotaTable,
} from '../../domain/pacing/index.js';
import { seededRandom } from '../../device-sim/faults.js';
import { AwsModel, SimulationQuotaError, type CompiledSite } from './aws-model.js';
import { EventQueue } from './event-queue.js';
import { buildFleet, F, FleetSpecError, type FleetModel } from './fleet-model.js';

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

const CSR_FAULTS = new Set([F.GarbageCsr, F.WrongCn, F.WeakKey, F.ReusedKey]);

/** Failure reasons, indexed for a typed array. */
const REASONS = [NOT_STARTED, ...Object.values(FailureReason)];
const reasonCode = (reason: string): number => REASONS.indexOf(reason);

/** What a throttled site becomes when its retries run out. */
const THROTTLE_FAILURE: Partial<Record<CallSite, string>> = {
  [CallSite.StartRotation]: NOT_STARTED,
  // A throttled Request CSR is caught after its retries and classified as Record failure does (functions/core/failure.ts).
  [CallSite.RequestCsr]: FailureReason.Internal,
  [CallSite.IssueCertificate]: FailureReason.IssueFailed,
  [CallSite.IssueRejected]: FailureReason.IssueFailed,
  [CallSite.RetireOldCertificate]: FailureReason.RetireFailed,
  [CallSite.RollBackIssued]: FailureReason.RollbackFailed,
};

/** The SDK's standard retry mode: 3 attempts, full jitter on 100 ms × 2^n, at most 20 s. */
const SDK_ATTEMPTS = 3;
/** The ASL's Retry on throttling: 6 more attempts, 2 s × 2^n, at most 60 s, full jitter. */
const SFN_RETRIES = 6;

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

  let fleet: FleetModel;
  let aws: AwsModel;
  try {
    fleet = buildFleet(n, options.faults ?? '', seed, { share: model.offlineShare, meanS: model.offlineMeanS }, random);
    aws = new AwsModel(account);
  } catch (error) {
    if (error instanceof FleetSpecError || error instanceof SimulationQuotaError) throw new SimulationError(error.message);
    throw error;
  }
  const { fault, faultMs, offlineForS } = fleet;
  const offlineUntilS = new Float64Array(n);

  const admission: Pacer = options.pacing === 'none' ? new TodaysFanOut() : new AdmissionController(pacing, 0);
  const eligibleS = new Float64Array(n);
  if (options.pacing !== 'none') {
    const cohort = planCohort(n, admission.sustainableRate(), calendar);
    for (let d = 0; d < n; d++) eligibleS[d] = renewalOffsetS(certificateIdOf(random), cohort);
  }
  const byEligibility = new Int32Array(n);
  for (let i = 0; i < n; i++) byEligibility[i] = i;
  byEligibility.sort((a, b) => eligibleS[a] - eligibleS[b]);

  let throttledCalls = 0;
  let throttlingFailures = 0;
  const call = (c: CompiledSite, nowMs: number): number => aws.call(c, nowMs);

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
    const c = aws.site(site);
    const throttled = call(c, nowMs);
    if (throttled < 0) {
      retries[d] = 0;
      return true;
    }
    throttledCalls++;
    admission.observeThrottle(AwsModel.bucketOfThrottle(throttled), nowMs);
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
    const k = csrAttempt[d];
    // Only the first csr_req checks the certificates (ListThingPrincipals); re-sent ones do not.
    if (!attempt(d, k === 0 ? CallSite.RequestCsr : CallSite.RequestCsrResent, E.Request, nowMs)) return;
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
  const ignored = aws.site(CallSite.IgnoredMessage);
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
        call(aws.site(CallSite.ClaimDevice), nowMs);
        queue.push(admission.reserve(CallSite.RequestCsr, nowMs + 100), d, E.Request);
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
        queue.push(nowMs + aws.site(CallSite.IssueCertificate).lambdaMs + 100, d, E.Deliver);
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
        call(aws.site(CallSite.Rotated), nowMs);
        rotated++;
        open--;
        finish(nowMs + aws.site(CallSite.RetireOldCertificate).lambdaMs);
        break;
      case E.RollBack:
        if (!attempt(d, issued[d] ? CallSite.RollBackIssued : CallSite.RollBackNothingIssued, E.RollBack, nowMs)) break;
        queue.push(nowMs + 500, d, E.RecordFailure);
        break;
      case E.RecordFailure:
        // Record failure → Escalate → Rotation failed: counted now, ended a moment later.
        call(aws.site(CallSite.RecordFailure), nowMs);
        call(aws.site(CallSite.Escalate), nowMs);
        call(aws.site(CallSite.RotationFailed), nowMs);
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
    peakLambdaConcurrency: aws.peakLambda,
    peakRatePerApi: aws.peakRatePerApi(),
    apiCallsByOperation: aws.callsPerDevice(n),
  };
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
