/**
 * The renewal calendar: when, within a cohort's renewal window, each certificate is renewed.
 *
 * A cohort is the set of certificates one audit flags together (a whole fleet at once when the
 * age check fires, or every certificate that expires in 2049). Its spread is the longer of the
 * renewal window an operator asks for and the time the budget needs for the cohort at
 * `fill` × the sustainable rotation rate, so the load of every day stays under what the quotas
 * allow. Each certificate's place in the spread is a deterministic jitter: a hash of its
 * certificate id, the one identifier an audit finding carries (the thing name would cost a
 * 10-TPS ListPrincipalThings per certificate just to decide whether today is its day). The
 * same certificate gets the same place every time the calendar is asked, on any machine.
 */

export const DAY_S = 86_400;

export interface CalendarSettings {
  /** Share of the sustainable rate the calendar plans to use: the rest absorbs jitter and retries. */
  fill: number;
  /** Spread a cohort over at least this long (0: as fast as the budget allows). */
  minWindowS: number;
}

export const DEFAULT_CALENDAR: CalendarSettings = { fill: 0.96, minWindowS: 0 };

/** FNV-1a over UTF-16 code units, then murmur3's finalizer: fast, stable, well spread. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A certificate's place in any spread, in [0, 1). */
export function jitterOf(certificateId: string): number {
  return hash32(certificateId) / 4_294_967_296;
}

export interface CohortPlan {
  devices: number;
  /** Rotations per second the budget sustains (AdmissionController.sustainableRate()). */
  ratePerS: number;
  /** How long the cohort is spread over. */
  spreadS: number;
  /** What the quotas allow in one day: ratePerS × 86,400. */
  dailyBudget: number;
  /** Certificates whose renewal would fall after their deadline at this budget (0 without one). */
  lateForDeadline: number;
}

/**
 * How long a cohort of `devices` takes to spread so that each day stays under budget.
 * `deadlineS` (e.g. the earliest notAfter minus a margin, from the cohort's start) caps the
 * spread; when the budget cannot fit the cohort before it, the plan says how many are late.
 */
export function planCohort(devices: number, ratePerS: number, settings: CalendarSettings = DEFAULT_CALENDAR, deadlineS?: number): CohortPlan {
  if (!(ratePerS > 0)) throw new RangeError(`the sustainable rate must be above 0; got ${ratePerS}`);
  if (!(settings.fill > 0 && settings.fill <= 1)) throw new RangeError(`fill must be in (0, 1]; got ${settings.fill}`);
  const needed = devices / (ratePerS * settings.fill);
  let spreadS = Math.max(needed, settings.minWindowS);
  let lateForDeadline = 0;
  if (deadlineS !== undefined && spreadS > deadlineS) {
    spreadS = Math.max(0, deadlineS);
    // What does not fit before the deadline at the full sustainable rate is late.
    lateForDeadline = Math.max(0, Math.ceil(devices - ratePerS * spreadS));
  }
  return { devices, ratePerS, spreadS, dailyBudget: Math.floor(ratePerS * DAY_S), lateForDeadline };
}

/** When, from the cohort's start, this certificate's rotation is due. */
export function renewalOffsetS(certificateId: string, plan: Pick<CohortPlan, 'spreadS'>): number {
  return jitterOf(certificateId) * plan.spreadS;
}

/** Day-by-day load of a cohort: how many certificates are due on day 0, 1, … of the spread. */
export function dailyLoad(certificateIds: Iterable<string>, plan: Pick<CohortPlan, 'spreadS'>): number[] {
  const days = Math.max(1, Math.ceil(plan.spreadS / DAY_S));
  const load = new Array<number>(days).fill(0);
  for (const id of certificateIds) load[Math.min(days - 1, Math.floor(renewalOffsetS(id, plan) / DAY_S))]++;
  return load;
}

/**
 * The live calendar (docs/fleet-scale.md, "The renewal calendar, live"): start-rotations places
 * each flagged certificate of an audit's cohort at its renewal offset. A certificate whose place
 * is beyond the next sweep is deferred — written to the rotation table — and a scheduled sweep of
 * start-rotations starts it when its time comes. A certificate that expires within the safety
 * margin is never deferred, and none is deferred past its expiry minus the margin.
 */
export interface RenewalSettings {
  /** Spread a cohort over at least this long (0: as fast as the budget allows). */
  windowS: number;
  /** A certificate that expires sooner than this is started now, and none is deferred closer to its expiry. */
  marginS: number;
  /** How often the sweep runs: what is due before the next sweep is started now. */
  sweepS: number;
}

export const DEFAULT_RENEWAL: RenewalSettings = { windowS: 0, marginS: 7 * DAY_S, sweepS: 900 };

/** A cohort as start-rotations fixed it when the audit's notification first arrived. */
export interface Cohort {
  startMs: number;
  spreadS: number;
}

export type RenewalDecision = { kind: 'now' } | { kind: 'defer'; atMs: number };

/** When this certificate's rotation starts: now, or deferred to its place in the cohort's spread. */
export function renewalDecision(certificateId: string, cohort: Cohort, nowMs: number, settings: RenewalSettings, notAfterMs?: number): RenewalDecision {
  const horizonMs = nowMs + settings.sweepS * 1000;
  let atMs = cohort.startMs + renewalOffsetS(certificateId, cohort) * 1000;
  if (notAfterMs !== undefined) {
    const latestMs = notAfterMs - settings.marginS * 1000;
    // Expired, or inside the margin: never deferred.
    if (latestMs <= horizonMs) return { kind: 'now' };
    atMs = Math.min(atMs, latestMs);
  }
  return atMs <= horizonMs ? { kind: 'now' } : { kind: 'defer', atMs: Math.round(atMs) };
}

/**
 * A deferred start in the rotation table: one item per certificate and audit, in the partition of
 * its day (UTC), sorted by its time, so the sweep Queries what is due and no Scan is needed. The
 * item has no `status`: the by-status index never sees it. The calendar item lists the days that
 * may hold deferred starts.
 */
export const CALENDAR_KEY = { pk: 'calendar', sk: 'days' } as const;

export function deferredDay(atMs: number): string {
  return new Date(atMs).toISOString().slice(0, 10);
}

export function deferredPk(day: string): string {
  return `deferred#${day}`;
}

/** The sort key: the start time, then the certificate and audit (the same deferral writes the same key). */
export function deferredSk(atMs: number, certificateId: string, auditTaskId: string): string {
  return `${new Date(atMs).toISOString()}#${certificateId}#${auditTaskId}`;
}

/** A deferred start's sort key read back: when it is due, the certificate and the audit; undefined for a key not written by deferredSk. */
export function parseDeferredSk(sk: string): { atMs: number; certificateId: string; auditTaskId: string } | undefined {
  const [at, certificateId, auditTaskId, ...rest] = sk.split('#');
  const atMs = Date.parse(at);
  if (rest.length || !certificateId || !auditTaskId || Number.isNaN(atMs)) return undefined;
  return { atMs, certificateId, auditTaskId };
}

/** The greatest sort key of a start due by `atMs`. */
export function deferredSkUntil(atMs: number): string {
  return `${new Date(atMs).toISOString()}#~`;
}

export interface DeferredStart {
  pk: string;
  sk: string;
  certificateId: string;
  certificateArn?: string;
  auditTaskId: string;
  checkName: string;
  /** When it is due (ISO). */
  startAt: string;
  /** The certificate's expiry, when the finding gave it (ISO). */
  notAfter?: string;
}
