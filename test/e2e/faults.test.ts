import { FailureReason } from '../../domain/rotation';
import { FaultKind } from '../../device-sim/faults';
import { runDemo, type DemoReport } from '../../cli/demo/index';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * `rotor demo` with every fault the simulator knows, one device each, plus two devices that
 * behave. The workflow's timeouts are shortened (settings and time scale) so the whole run
 * takes seconds; fault durations are chosen well inside them so each outcome is determined:
 * a device that comes back before the next csr_req, or restarts before the ack timeout,
 * rotates. Needs the function bundles (`make build`).
 */
const describeWithBundles = bundlesDescribe('test/e2e/faults.test.ts');

/** What each fault must end in: a failure reason, or 'rotated'. */
const EXPECTED: Record<FaultKind, FailureReason | 'rotated'> = {
  [FaultKind.GarbageCsr]: FailureReason.CsrRejected,
  [FaultKind.WrongCn]: FailureReason.CsrRejected,
  [FaultKind.WeakKey]: FailureReason.CsrRejected,
  [FaultKind.ReusedKey]: FailureReason.CsrRejected,
  [FaultKind.OfflineForGood]: FailureReason.NoCsrResponse,
  [FaultKind.RefuseCert]: FailureReason.DeviceError,
  [FaultKind.AckOverOld]: FailureReason.NoAck,
  // Restarts after 200 ms, long before the 15 s ack timeout: reboot recovery acks over the new pair.
  [FaultKind.CrashAfterCert]: 'rotated',
  [FaultKind.Duplicate]: 'rotated',
  [FaultKind.Slow]: 'rotated',
  // Back after 1 s: the csr_req re-sent after the 5 s CSR timeout waits in its persistent session.
  [FaultKind.Offline]: 'rotated',
  [FaultKind.RestartMidRotation]: 'rotated',
  // Protocol v1.2: refuses trust bundles only; a certificate rotation is untouched.
  [FaultKind.RefuseBundle]: 'rotated',
};

const SPEC = [
  'garbage-csr=1', 'wrong-cn=1', 'weak-key=1', 'reused-key=1', 'offline-for-good=1', 'refuse-cert=1', 'ack-over-old=1',
  'crash-after-cert=1:200ms', 'duplicate=1', 'slow=1:300ms', 'offline=1:1s', 'restart-mid-rotation=1:300ms', 'refuse-bundle=1',
].join(',');

describeWithBundles('rotor demo with every fault kind', () => {
  let report: DemoReport;
  const lines: string[] = [];

  beforeAll(async () => {
    report = await runDemo(
      {
        devices: 14,
        faults: SPEC,
        seed: 7,
        timeScale: 0.002,
        // At scale 0.002: CSR timeout 5 s, re-sent twice after ≤0.2 s and ≤0.4 s; ack timeout 15 s. The CSR
        // wait covers request-csr's first attempt (the shared-certificate check) queued behind 13 others.
        // The ack timeout was 5 s: on a loaded machine (load ~10) devices that behave ran out of it
        // between Deliver and their ack (NO_ACK 4 instead of 1); only ack-over-old waits it out.
        settings: { csrTimeoutSeconds: 2500, csrRetryIntervalSeconds: 100, csrRequestRetries: 2, ackTimeoutSeconds: 7500 },
        timeoutSeconds: 90,
      },
      { out: (line) => lines.push(line), progressStream: process.stdout, tty: false },
    );
  }, 150_000);

  it('strands no device: the invariant held throughout and every end check passed', () => {
    expect(report.invariantViolations).toEqual([]);
    expect(report.unfinished).toBe(0);
    expect(report.invariantSamples).toBeGreaterThan(2);
  });

  it('ends each faulty device the way its fault dictates, and rotates the devices that behave', () => {
    const seen = new Set<string>();
    for (const [thingName, outcome] of Object.entries(report.outcomes)) {
      const expected = outcome.fault ? EXPECTED[outcome.fault as FaultKind] : 'rotated';
      const actual = outcome.outcome === 'rotated' ? 'rotated' : outcome.reason;
      expect({ thingName, fault: outcome.fault, actual }).toEqual({ thingName, fault: outcome.fault, actual: expected });
      if (outcome.fault) seen.add(outcome.fault);
    }
    expect([...seen].sort()).toEqual(Object.values(FaultKind).sort());
  });

  it('counts failures by reason and sends exactly one escalation per failure', () => {
    const failures = Object.values(EXPECTED).filter((e) => e !== 'rotated');
    const byReason: Record<string, number> = {};
    for (const reason of failures) byReason[reason] = (byReason[reason] ?? 0) + 1;
    expect(report.failed).toEqual(byReason);
    expect(report.rotated).toBe(14 - failures.length);
    expect(report.escalations).toBe(failures.length);
  });

  it('reports the figures of the run', () => {
    expect(report.stateTransitionsPerSuccessfulRotation).toBe(11);
    expect(report.p95Ms).toBeGreaterThanOrEqual(report.p50Ms);
    expect(report.apiCallsPerRotation).toBeGreaterThan(5);
    expect(lines.some((line) => /14\/14 done/.test(line))).toBe(true);
  });
});
