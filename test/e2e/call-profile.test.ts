import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo, type DemoReport } from '../../cli/demo/index';
import type { DemoIo } from '../../cli/demo/run-demo';
import { CALL_PROFILE, CallSite, FINDINGS_PER_PAGE, HAPPY_PATH, pathDemand } from '../../domain/pacing/call-profile';
import { AWS_DEFAULT_QUOTAS, Bucket } from '../../domain/pacing/quotas';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * The call profile against a measurement: a clean local demo (the real functions, ASL and
 * local AWS) counts every AWS call through the edge, and its apiCallsByOperation per rotation
 * must be the profile's happy path, call for call. The simulator, `rotor plan` and the pacing
 * read the profile, so a function that starts making another call fails here until the
 * profile says so. Needs the function bundles (`make build`).
 */
const describeWithBundles = bundlesDescribe('test/e2e/call-profile.test.ts');
const DEVICES = 10;

/** IoT's 10-TPS control-plane APIs (issue 10; every IoT list/describe API counts as one). */
const TEN_TPS = Object.entries(AWS_DEFAULT_QUOTAS)
  .filter(([bucket, quota]) => bucket.startsWith('iot:') && quota.kind === 'rate' && quota.rate === 10)
  .map(([bucket]) => bucket);

/**
 * The one 10-TPS API a rotation calls twice on its happy path, and why (docs/design.md, "API
 * thrift"): start-rotations finds the certificate's thing with it, and Retire asks it again,
 * fresh, right before deactivating the old certificate, so that a thing attached since is
 * never cut off (issue 9, scenario 2). No earlier answer can stand in for the second call.
 */
const TWICE = { [Bucket.ListPrincipalThings]: 2 } as Readonly<Record<string, number>>;

describeWithBundles('the call profile, measured', () => {
  let dir: string;
  let report: DemoReport;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-call-profile-'));
    const io: DemoIo = { out: () => undefined, progressStream: process.stdout, tty: false };
    // The pacing item's reads and writes vary with contention (test/e2e/pacing.test.ts measures
    // pacing); this measures the workflow's own calls, so the functions run with pacing off.
    // The renewal calendar's sweep (every 9 s at this scale) reads its item on a schedule, whatever the fleet: off too.
    const saved = { ROTOR_PACING_ENABLED: process.env.ROTOR_PACING_ENABLED, ROTOR_CALENDAR_ENABLED: process.env.ROTOR_CALENDAR_ENABLED };
    process.env.ROTOR_PACING_ENABLED = 'false';
    process.env.ROTOR_CALENDAR_ENABLED = 'false';
    try {
      report = await runDemo({ devices: DEVICES, timeScale: 0.01, seed: 1, dataDir: join(dir, 'state') }, io);
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  }, 240_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('rotates every device (the measurement is of happy paths only)', () => {
    expect(report.rotated).toBe(DEVICES);
    expect(report.failed).toEqual({});
    expect(report.invariantViolations).toEqual([]);
  });

  it('calls per rotation exactly what the profile\'s happy path says', () => {
    // The audit fan-out spends its per-page calls once per page of findings: one page here.
    const pages = Math.ceil(DEVICES / FINDINGS_PER_PAGE);
    const perPage = CALL_PROFILE[CallSite.StartRotation].calls;
    const expected: Record<string, number> = { ...pathDemand(HAPPY_PATH).calls };
    for (const [operation, n] of Object.entries(perPage)) if (n < 1) expected[operation] += pages / DEVICES - n;

    const measured = Object.fromEntries(Object.entries(report.apiCallsByOperation).filter(([, n]) => n > 0));
    expect(Object.keys(measured).sort()).toEqual(Object.keys(expected).sort());
    for (const [operation, n] of Object.entries(expected)) expect([operation, measured[operation]]).toEqual([operation, expect.closeTo(n, 6)]);
  });

  it('makes 12 DynamoDB calls per rotation, the engine\'s claim included (14 before issue 12)', () => {
    // device-message no longer clears a token it answered with success (one UpdateItem after each
    // csr_res and crt_ack): Issue's intent write and Retire's finish remove it. The audit report's
    // UpdateItem is once per page of findings, not per rotation.
    const pages = Math.ceil(DEVICES / FINDINGS_PER_PAGE);
    const dynamodb = Object.entries(report.apiCallsByOperation)
      .filter(([operation]) => operation.startsWith('dynamodb:'))
      .reduce((sum, [, n]) => sum + n, 0);
    expect(dynamodb).toBeCloseTo(12 + pages / DEVICES, 6);
    expect(report.apiCallsByOperation['dynamodb:UpdateItem']).toBeCloseTo(6 + pages / DEVICES, 6);
  });

  it('enters the profile\'s eleven states per rotation (a paced step is its Task, Choice and Pass)', () => {
    expect(report.stateTransitionsPerSuccessfulRotation).toBe(pathDemand(HAPPY_PATH).perBucket[Bucket.StateTransition]);
    expect(report.stateTransitionsPerSuccessfulRotation).toBe(11);
  });

  it('calls each 10-TPS IoT API at most once per rotation, but the one named above', () => {
    expect(TEN_TPS).toEqual(expect.arrayContaining([Bucket.DescribeCertificate, Bucket.UpdateCertificate, Bucket.DeleteCertificate, Bucket.ListPrincipalThings, Bucket.ListThingPrincipals, Bucket.ListAttachedPolicies]));
    const over = TEN_TPS.map((api) => ({ api, calls: report.apiCallsByOperation[api] ?? 0 })).filter(({ api, calls }) => calls > (TWICE[api] ?? 1));
    expect(over).toEqual([]);
    expect(report.apiCallsByOperation[Bucket.DescribeCertificate]).toBe(1);
    expect(report.apiCallsByOperation[Bucket.ListAttachedPolicies]).toBe(1);
    expect(report.apiCallsByOperation[Bucket.ListPrincipalThings]).toBe(2);
  });
});
