import { formatTrustStoreSummary, validateTrustStoreOptions, type TrustStoreDemoReport } from '../../../cli/demo/trust-store';

/**
 * The trust-store scenario's summary and input checks (the run itself: test/e2e/trust-store-demo.test.ts):
 * refusals and silences are told apart, a failed check is printed, and bad input is refused before anything starts.
 */
function report(over: Partial<TrustStoreDemoReport> = {}): TrustStoreDemoReport {
  return {
    scenario: 'trust-store',
    devices: 10,
    seed: 1,
    faults: 'refuse-bundle=2',
    timeScale: 0.1,
    bundleId: 'a'.repeat(64),
    trustStore: { updated: 7, refused: 2, notUpdated: 1, escalations: 3, reasons: { TRUST_STORAGE_FAILED: 2, NO_ACK: 1 }, serverCa: { old: 'CN=Old', new: 'CN=New', crossSigned: true } },
    reconnected: 10,
    pushPacedMs: 1200,
    wallMs: 20_000,
    setupMs: 5000,
    checkFailures: [],
    ...over,
  };
}

describe('formatTrustStoreSummary', () => {
  it('puts refusal reasons on the refused line and NO_ACK on the not-updated line', () => {
    // Act
    const text = formatTrustStoreSummary(report()).join('\n');
    // Assess
    expect(text).toContain('refused                2  (TRUST_STORAGE_FAILED 2)');
    expect(text).toContain('not updated            1  (NO_ACK 1)');
    expect(text).toContain('CN=Old → CN=New (served cross-signed by the old one)');
    expect(text).toContain('still needed by 3 device(s)');
    expect(text).toContain('checks                 all passed');
  });

  it('says the old CA can go when every device updated, and lists failed checks', () => {
    // Prepare
    const allUpdated = report({ trustStore: { ...report().trustStore, updated: 10, refused: 0, notUpdated: 0, reasons: {} }, checkFailures: [{ thingName: 'demo-0003', detail: 'recorded updated, but its trust store holds no bundle' }] });
    // Act
    const text = formatTrustStoreSummary(allUpdated).join('\n');
    // Assess
    expect(text).toContain('no device needs it: rotor local server-ca retire-old');
    expect(text).toContain('checks                 1 FAILED');
    expect(text).toContain('demo-0003: recorded updated, but its trust store holds no bundle');
  });
});

describe('validateTrustStoreOptions', () => {
  it('assigns refuse-bundle to the number of devices asked, reproducibly', () => {
    // Act
    const first = validateTrustStoreOptions({ devices: 20, faults: 'refuse-bundle=3', seed: 7, timeScale: 0.1 });
    const again = validateTrustStoreOptions({ devices: 20, faults: 'refuse-bundle=3', seed: 7, timeScale: 0.1 });
    // Assess
    expect([...first.faults.values()].map((f) => f.kind)).toEqual(['refuse-bundle', 'refuse-bundle', 'refuse-bundle']);
    expect([...first.faults.keys()]).toEqual([...again.faults.keys()]);
  });

  it.each([
    [{ devices: 0 }, /--devices must be a whole number/],
    [{ devices: 2, faults: 'refuse-bundle' }, /--faults: /],
  ])('refuses %j', (over, message) => {
    // Act / Assess
    expect(() => validateTrustStoreOptions({ timeScale: 0.1, ...over })).toThrow(message);
  });
});
