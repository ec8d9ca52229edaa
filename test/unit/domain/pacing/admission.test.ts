import { AdmissionController, DEFAULT_PACING, bottleneck, quotaFloorSeconds } from '../../../../domain/pacing/admission.js';
import { CallSite } from '../../../../domain/pacing/call-profile.js';
import { AWS_DEFAULT_QUOTAS, Bucket, parseQuotasFile } from '../../../../domain/pacing/quotas.js';
import { RateBudget, compileDemand } from '../../../../domain/pacing/rate-budget.js';

describe('the rate budget (one GCRA per bucket)', () => {
  it('spaces reservations by the rate and never refuses one', () => {
    // Prepare
    const budget = new RateBudget();
    budget.setRate(Bucket.DescribeCertificate, 10, 0);
    const one = compileDemand({ [Bucket.DescribeCertificate]: 1 });
    // Act
    const times = Array.from({ length: 5 }, () => budget.reserve(one, 1_000));
    // Assess
    expect(times).toEqual([1_000, 1_100, 1_200, 1_300, 1_400]);
    expect(budget.queueMs(Bucket.DescribeCertificate, 1_000)).toBe(500);
  });

  it('reserves every bucket of a step at the latest time any of them allows', () => {
    const budget = new RateBudget();
    budget.setRate(Bucket.DescribeCertificate, 10, 0);
    budget.setRate(Bucket.CreateCertificateFromCsr, 1, 0);
    const both = compileDemand({ [Bucket.DescribeCertificate]: 1, [Bucket.CreateCertificateFromCsr]: 1 });
    expect(budget.reserve(both, 0)).toBe(0);
    expect(budget.reserve(both, 0)).toBe(1_000);
    // Describe was reserved at 1,000, not at 100: its calls stay spaced although Create made the step wait.
    expect(budget.queueMs(Bucket.DescribeCertificate, 0)).toBe(1_100);
  });

  it('lets a burst of `tolerance` calls through at once, then paces', () => {
    const budget = new RateBudget();
    budget.setRate(Bucket.StartExecution, 10, 2);
    const one = compileDemand({ [Bucket.StartExecution]: 1 });
    expect([0, 0, 0, 0].map(() => budget.reserve(one, 0))).toEqual([0, 0, 0, 100]);
  });

  it('round-trips through the item the live slice will store', () => {
    const budget = new RateBudget();
    budget.setRate(Bucket.DescribeCertificate, 9, 0);
    const one = compileDemand({ [Bucket.DescribeCertificate]: 1 });
    budget.reserve(one, 5_000);
    const copy = RateBudget.fromItem(JSON.parse(JSON.stringify(budget.toItem())));
    expect(copy.reserve(one, 5_000)).toBe(budget.reserve(one, 5_000));
  });
});

describe('the quota floor', () => {
  it('is set by ListPrincipalThings after the API thrift: 2 calls per rotation (start-rotations, Retire) at 9 TPS (10 × 0.9)', () => {
    expect(bottleneck(DEFAULT_PACING.quotas)).toEqual({ bucket: Bucket.ListPrincipalThings, rate: 4.5 });
    expect(quotaFloorSeconds(1_000_000)).toBeCloseTo(222_222.2, 1);
  });

  it('at safety fraction 1 is 55.6 hours for 1,000,000 devices (83.3 before the thrift)', () => {
    const raw = { quotas: AWS_DEFAULT_QUOTAS, safetyFraction: 1 };
    expect(quotaFloorSeconds(1_000_000, raw) / 3_600).toBeCloseTo(55.6, 1);
  });

  it('moves to the next scarcest bucket when one is raised, Lambda concurrency included', () => {
    const raised = parseQuotasFile(JSON.stringify({ quotas: { 'iot:ListPrincipalThings': { rate: 1000 } } }));
    expect(bottleneck(raised)).toMatchObject({ rate: 9 });
    expect(bottleneck(raised).bucket).not.toBe(Bucket.ListPrincipalThings);
    const tiny = parseQuotasFile(JSON.stringify({ quotas: { 'lambda:ConcurrentExecutions': { concurrency: 1 } } }));
    expect(bottleneck(tiny).bucket).toBe(Bucket.LambdaConcurrency);
  });
});

describe('admission', () => {
  it('starts rotations at the sustainable pace times the headroom, never faster', () => {
    // Prepare
    const admission = new AdmissionController(DEFAULT_PACING, 0);
    let admitted = 0;
    let now = 0;
    // Act: ask as often as told, for 100 s of virtual time.
    while (now < 100_000) {
      const decision = admission.admitStart(now);
      if (decision.admitted) admitted++;
      else now = decision.retryAtMs;
    }
    // Assess: 3 rotations/s × 1.25; backpressure may hold it lower, never higher.
    expect(admitted).toBeGreaterThan(0);
    expect(admitted).toBeLessThanOrEqual(Math.ceil(100 * admission.sustainableRate() * DEFAULT_PACING.startHeadroom) + 1);
  });

  it('holds new starts while the steps of rotations in flight are queued, and lets those steps through', () => {
    const admission = new AdmissionController(DEFAULT_PACING, 0);
    // Rotations in flight reserve their Issue step: 60 of them queue DescribeCertificate ~6.7 s ahead.
    let last = 0;
    for (let i = 0; i < 60; i++) last = admission.reserve(CallSite.IssueCertificate, 0);
    expect(last).toBeGreaterThan(DEFAULT_PACING.maxQueueMs);
    const decision = admission.admitStart(0);
    expect(decision.admitted).toBe(false);
    if (!decision.admitted) expect(decision.retryAtMs).toBeGreaterThan(0);
  });

  it('cuts a throttled bucket multiplicatively once per cooldown, then grows it back additively', () => {
    const admission = new AdmissionController(DEFAULT_PACING, 0);
    const before = admission.sustainableRate();
    admission.observeThrottle(Bucket.ListPrincipalThings, 1_000);
    admission.observeThrottle(Bucket.ListPrincipalThings, 1_500); // the same burst of throttles
    expect(admission.shareOf(Bucket.ListPrincipalThings)).toBeCloseTo(0.7, 10);
    expect(admission.sustainableRate()).toBeCloseTo(before * 0.7, 10);
    admission.observeThrottle(Bucket.ListPrincipalThings, 7_000);
    expect(admission.shareOf(Bucket.ListPrincipalThings)).toBeCloseTo(0.49, 10);
    // Quiet for 50 s: five additive steps of 0.05.
    admission.admitStart(57_000);
    expect(admission.shareOf(Bucket.ListPrincipalThings)).toBeCloseTo(0.74, 10);
    admission.admitStart(1_000_000);
    expect(admission.shareOf(Bucket.ListPrincipalThings)).toBe(1);
    expect(admission.sustainableRate()).toBeCloseTo(before, 10);
  });

  it('never cuts below the floor share', () => {
    const admission = new AdmissionController(DEFAULT_PACING, 0);
    for (let t = 0; t < 1_000_000; t += 10_000) admission.observeThrottle(Bucket.ListPrincipalThings, t);
    expect(admission.shareOf(Bucket.ListPrincipalThings)).toBe(DEFAULT_PACING.aimd.floor);
  });
});
