import { runDemo, type DemoReport } from '../../cli/demo/index';
import { CloudFaultKind, splitFaultSpec, planCloudFaults } from '../../cli/demo/cloud-faults';
import { FailureReason } from '../../domain/rotation';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * `rotor demo` with the cloud-side faults of issue 9 on a small fleet: an operator revokes two
 * devices' old certificates mid-rotation, two devices' certificates are shared with a twin
 * thing, and four Lambda invocations are killed after one of their AWS calls. The demo's own
 * watch and end checks (cloud rule 7 throughout; cut-off devices checked for the security
 * outcome instead; no orphans; one escalation per failure) are what this asserts.
 */
const describeWithBundles = bundlesDescribe('test/e2e/cloud-faults.test.ts');

describe('cloud fault specs', () => {
  it('splits the cloud kinds off the device spec and assigns them to devices without another fault', () => {
    const split = splitFaultSpec('slow=1:1s, revoke-old=1,shared-cert=2,lambda-crash=3');
    expect(split.deviceSpec).toBe('slow=1:1s');
    const faults = new Map([['d1', { kind: 'slow' as const, durationMs: 1000 }]]);
    const plan = planCloudFaults(split, ['d1', 'd2', 'd3', 'd4', 'd5'], faults, 7);
    expect(plan.revokeOld.size).toBe(1);
    expect(plan.sharedCert.size).toBe(2);
    expect([...plan.revokeOld, ...plan.sharedCert]).not.toContain('d1');
    expect(plan.crashes.reduce((n, c) => n + c.times, 0)).toBe(3);
    // The revoked device is made slow so the revocation lands while Rotor waits for its ack.
    expect(faults.get([...plan.revokeOld][0])?.kind).toBe('slow');
  });

  it('refuses a cloud kind with a duration, listed twice, or more devices than are free', () => {
    expect(() => splitFaultSpec('revoke-old=1:2s')).toThrow(/no duration/);
    expect(() => splitFaultSpec('shared-cert=1,shared-cert=2')).toThrow(/listed twice/);
    expect(() => planCloudFaults(splitFaultSpec('revoke-old=3'), ['a', 'b'], new Map(), 1)).toThrow(/only 2 devices/);
  });
});

describeWithBundles('rotor demo with cloud-side faults', () => {
  let report: DemoReport;

  beforeAll(async () => {
    report = await runDemo(
      { devices: 8, faults: 'revoke-old=2,shared-cert=2,lambda-crash=4', seed: 3, timeoutSeconds: 240 },
      { out: () => undefined, progressStream: process.stdout, tty: false },
    );
  }, 300_000);

  it('keeps every invariant: nobody stranded, no orphan certificate, the cut-off devices cut off as the operator meant', () => {
    expect(report.invariantViolations).toEqual([]);
    expect(report.unfinished).toBe(0);
  });

  it('ends each cloud fault in its own reason and rotates every other device despite the crashes', () => {
    for (const outcome of Object.values(report.outcomes)) {
      if (outcome.fault === CloudFaultKind.RevokeOld) expect(outcome).toMatchObject({ outcome: 'failed', reason: FailureReason.OldCertificateRevoked });
      else if (outcome.fault === CloudFaultKind.SharedCert) expect(outcome).toMatchObject({ outcome: 'failed', reason: FailureReason.SharedCertificate });
      else expect(outcome.outcome).toBe('rotated');
    }
    expect(report.failed).toEqual({ [FailureReason.OldCertificateRevoked]: 2, [FailureReason.SharedCertificate]: 2 });
    expect(report.cloudFaults).toMatchObject({ revokeOld: 2, cutOffOnPurpose: 2, sharedCert: 2, lambdaCrashes: 4, lambdaCrashesFired: 4 });
    // One per failed device, and one per twin thing whose shared certificate was refused too.
    expect(report.escalations).toBe(6);
  });
});
