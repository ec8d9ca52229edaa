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
