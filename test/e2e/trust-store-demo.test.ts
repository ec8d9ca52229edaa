import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demo } from '../fixtures/demo-command';
import type { TrustStoreDemoReport } from '../../cli/demo/trust-store';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * `rotor demo --scenario trust-store --faults refuse-bundle=2`, through the command, on the local
 * runtime with real devices over mutual TLS: the broker's server CA changes (served cross-signed by
 * the old one), the new CA is pushed to every device, the well-behaved devices end up trusting it,
 * the refusing ones stay on the old bundle with one escalation each, and the whole fleet, restarted
 * from its stores, verifies the broker and connects.
 */
const describeWithBundles = bundlesDescribe('test/e2e/trust-store-demo.test.ts');
const DEVICES = 6;
const REFUSING = 2;

describe('rotor demo --scenario input', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-trust-demo-input-'));
    mkdirSync(join(dir, 'full'));
    writeFileSync(join(dir, 'full', 'x'), '');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    [['--scenario', 'ca-roll'], /unknown scenario "ca-roll"/],
    [['--scenario', 'trust-store', '--signer', 'private-ca'], /takes --devices, --faults/],
    [['--scenario', 'trust-store', '--faults', 'refuse-bundle=x'], /--faults: .*neither a count nor a percentage/],
    [['--scenario', 'trust-store', '--faults', 'revoke-old=1'], /--faults: /],
  ])('refuses %j before starting anything', async (args, message) => {
    // Act / Assess
    await expect(demo(['--devices', '2', ...args], [])).rejects.toThrow(message);
  });

  it('refuses a data dir that is not empty', async () => {
    // Act / Assess
    await expect(demo(['--devices', '2', '--scenario', 'trust-store', '--data-dir', join(dir, 'full')], [])).rejects.toThrow(/is not empty/);
  });
});

describeWithBundles('rotor demo --scenario trust-store', () => {
  jest.setTimeout(300_000);
  let dir: string;
  let report: TrustStoreDemoReport;
  const lines: string[] = [];
  let exitCode: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-trust-demo-'));
    const reportFile = join(dir, 'report.json');
    exitCode = await demo(['--scenario', 'trust-store', '--devices', String(DEVICES), '--faults', `refuse-bundle=${REFUSING}`, '--report', reportFile, '--data-dir', join(dir, 'run')], lines);
    report = JSON.parse(readFileSync(reportFile, 'utf8')) as TrustStoreDemoReport;
  }, 300_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('updates every well-behaved device, keeps the refusing ones on the old bundle with one escalation each', () => {
    // Assess
    expect(exitCode).toBe(0);
    expect(report.trustStore).toEqual({
      updated: DEVICES - REFUSING,
      refused: REFUSING,
      notUpdated: 0,
      escalations: REFUSING,
      reasons: { TRUST_STORAGE_FAILED: REFUSING },
      serverCa: { old: 'CN=Rotor Local IoT CA, O=Rotor local', new: 'CN=Rotor Local Server CA 2, O=Rotor local', crossSigned: true },
    });
    expect(report.checkFailures).toEqual([]);
  });

  it('reconnects the whole fleet from its stores: the new CA, or the old one through the cross-signed chain', () => {
    // Assess
    expect(report.reconnected).toBe(DEVICES);
  });

  it('prints the summary with the counts and the old CA still needed', () => {
    // Assess
    const summary = lines.join('\n');
    expect(summary).toContain(`Rotor demo, scenario trust-store: ${DEVICES} devices, faults refuse-bundle=${REFUSING} (seed 1)`);
    expect(summary).toMatch(/updated +4\n/);
    expect(summary).toMatch(/refused +2 +\(TRUST_STORAGE_FAILED 2\)/);
    expect(summary).toContain(`reconnected            ${DEVICES} of ${DEVICES}`);
    expect(summary).toContain(`still needed by ${REFUSING} device(s)`);
    expect(summary).toContain('checks                 all passed');
  });
});
