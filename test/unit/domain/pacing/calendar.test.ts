import { DAY_S, dailyLoad, deferredDay, deferredPk, deferredSk, deferredSkUntil, hash32, parseDeferredSk, jitterOf, planCohort, renewalDecision, renewalOffsetS } from '../../../../domain/pacing/calendar.js';

/** Certificate ids as AWS makes them: 64 hex characters. */
function certificateIds(count: number, salt = ''): string[] {
  return Array.from({ length: count }, (_, i) => `${salt}${i.toString(16)}`.padStart(64, '0'));
}

describe('the renewal calendar', () => {
  it('gives a certificate the same place every time (deterministic, no state)', () => {
    const id = 'f'.repeat(64);
    expect(jitterOf(id)).toBe(jitterOf(id));
    expect(hash32('sensor-1')).toBe(hash32('sensor-1'));
    expect(renewalOffsetS(id, { spreadS: 86_400 })).toBe(renewalOffsetS(id, { spreadS: 86_400 }));
    expect(jitterOf(id)).toBeGreaterThanOrEqual(0);
    expect(jitterOf(id)).toBeLessThan(1);
  });

  it('spreads a fleet flagged all at once over days, each day under the budget', () => {
    // Prepare: 60,000 certificates flagged by the age check, 0.2 rotations/s sustainable.
    const ids = certificateIds(60_000);
    // Act
    const plan = planCohort(ids.length, 0.2);
    const load = dailyLoad(ids, plan);
    // Assess
    expect(plan.dailyBudget).toBe(17_280);
    expect(load.length).toBe(4);
    expect(Math.max(...load)).toBeLessThanOrEqual(plan.dailyBudget);
    expect(load.reduce((a, b) => a + b, 0)).toBe(60_000);
    // Spread, not piled up: every full day carries about the same share.
    for (const day of load.slice(0, 3)) expect(day).toBeGreaterThan(0.9 * 0.96 * plan.dailyBudget);
  });

  it('spreads evenly within a day too (no burst at midnight)', () => {
    const ids = certificateIds(10_000, 'b');
    const plan = planCohort(ids.length, 0.2);
    const hours = new Array<number>(Math.ceil(plan.spreadS / 3_600)).fill(0);
    for (const id of ids) hours[Math.floor(renewalOffsetS(id, plan) / 3_600)]++;
    const full = hours.slice(0, -1);
    expect(Math.max(...full) / Math.min(...full)).toBeLessThan(1.2);
  });

  it('spreads over the requested window when the budget would allow faster', () => {
    const plan = planCohort(1_000, 3, { fill: 0.96, minWindowS: 7 * DAY_S });
    expect(plan.spreadS).toBe(7 * DAY_S);
    expect(dailyLoad(certificateIds(1_000), plan).length).toBe(7);
  });

  it('says how many certificates cannot be renewed before a deadline the budget cannot meet', () => {
    const plan = planCohort(1_000_000, 3, undefined, 2 * DAY_S);
    expect(plan.spreadS).toBe(2 * DAY_S);
    expect(plan.lateForDeadline).toBe(1_000_000 - 3 * 2 * DAY_S);
    expect(planCohort(1_000, 3, undefined, 2 * DAY_S).lateForDeadline).toBe(0);
  });

  it('rejects a rate or fill that cannot make a plan', () => {
    expect(() => planCohort(10, 0)).toThrow(/rate must be above 0/);
    expect(() => planCohort(10, 1, { fill: 0, minWindowS: 0 })).toThrow(/fill/);
  });
});

describe('the live calendar: when a flagged certificate starts', () => {
  const SETTINGS = { windowS: 10 * DAY_S, marginS: 7 * DAY_S, sweepS: 900 };
  const cohort = { startMs: Date.parse('2026-03-01T00:00:00Z'), spreadS: 10 * DAY_S };
  const id = 'c'.repeat(64);
  const place = cohort.startMs + renewalOffsetS(id, cohort) * 1000;

  it('defers a certificate to its place in the spread, and starts it once its place is before the next sweep', () => {
    expect(renewalDecision(id, cohort, cohort.startMs, SETTINGS)).toEqual({ kind: 'defer', atMs: Math.round(place) });
    expect(renewalDecision(id, cohort, place - 899_000, SETTINGS)).toEqual({ kind: 'now' });
  });

  it('never defers one that expires within the margin, nor past its expiry minus the margin', () => {
    expect(renewalDecision(id, cohort, cohort.startMs, SETTINGS, cohort.startMs + 7 * DAY_S * 1000)).toEqual({ kind: 'now' });
    expect(renewalDecision(id, cohort, cohort.startMs, SETTINGS, cohort.startMs - 1)).toEqual({ kind: 'now' });
    const expiry = cohort.startMs + 8 * DAY_S * 1000;
    expect(renewalDecision(id, cohort, cohort.startMs, SETTINGS, expiry)).toEqual({ kind: 'defer', atMs: Math.min(Math.round(place), expiry - 7 * DAY_S * 1000) });
  });

  it('keys a deferred start by its day and time, so the sweep Queries what is due', () => {
    const at = Date.parse('2026-03-04T05:06:07.000Z');
    expect(deferredPk(deferredDay(at))).toBe('deferred#2026-03-04');
    expect(deferredSk(at, id, 'task-1')).toBe(`2026-03-04T05:06:07.000Z#${id}#task-1`);
    expect(deferredSk(at, id, 'task-1') <= deferredSkUntil(at)).toBe(true);
    expect(deferredSk(at + 1, id, 'task-1') <= deferredSkUntil(at)).toBe(false);
  });

  it('reads a deferred start back from its sort key alone (rotor plan), and refuses keys it did not write', () => {
    const at = Date.parse('2026-03-04T05:06:07.000Z');
    expect(parseDeferredSk(deferredSk(at, id, 'task-1'))).toEqual({ atMs: at, certificateId: id, auditTaskId: 'task-1' });
    expect(parseDeferredSk('days')).toBeUndefined();
    expect(parseDeferredSk(`not-a-time#${id}#task-1`)).toBeUndefined();
    expect(parseDeferredSk(`${deferredSk(at, id, 'task-1')}#extra`)).toBeUndefined();
  });
});
