import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DemoReport } from '../../cli/demo/index';
import { demo } from '../fixtures/demo-command';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * `rotor demo --scenario ca-rollover`, through the command: every device starts under CA-1 and
 * a CA rollover moves it to CA-2; CA-1 ends INACTIVE, every device connects (the demo's end
 * checks) and the report's caRollover says so. Bad input is refused before anything starts.
 */
const describeWithBundles = bundlesDescribe('test/e2e/ca-rollover-demo.test.ts');
const DEVICES = 4;

describe('rotor demo --scenario input', () => {
  it('refuses an unknown scenario, naming the known ones', async () => {
    // Act / Assess
    await expect(demo(['--devices', '1', '--scenario', 'ca-rolover'], [])).rejects.toThrow(/unknown scenario "ca-rolover": one of rotation, ca-rollover, trust-store is expected/);
  });

  it('refuses ca-rollover with the aws-iot signer, before starting anything', async () => {
    // Act / Assess
    await expect(demo(['--devices', '1', '--scenario', 'ca-rollover', '--signer', 'aws-iot'], [])).rejects.toThrow(/--scenario ca-rollover signs with the local Private CA/);
  });
});

describeWithBundles(`rotor demo --scenario ca-rollover --devices ${DEVICES}`, () => {
  let dir: string;
  let report: DemoReport;
  const lines: string[] = [];
  let exitCode: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-ca-rollover-demo-'));
    exitCode = await demo(['--scenario', 'ca-rollover', '--devices', String(DEVICES), '--report', join(dir, 'report.json'), '--time-scale', '0.01'], lines);
    report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as DemoReport;
  }, 240_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('moves every device to CA-2 and leaves CA-1 INACTIVE, with every check passing', () => {
    // Assess
    expect(exitCode).toBe(0);
    // The failure reasons, if any, are in the message.
    expect({ rotated: report.rotated, failed: report.failed, escalations: report.escalations }).toEqual({ rotated: DEVICES, failed: {}, escalations: 0 });
    expect(report.invariantViolations).toEqual([]);
    expect(report.signer).toBe('private-ca');
    expect(report.caRollover).toMatchObject({ devicesMoved: DEVICES, devicesLeft: 0, oldCaStatus: 'INACTIVE', executionStatus: 'SUCCEEDED' });
    expect(report.caRollover?.executionArn).toMatch(/^arn:aws:states:[^:]+:\d{12}:execution:rotor-ca-rollover:ca-rollover-[0-9a-f]{24}$/);
    expect(report.caRollover?.oldCaCertificateId).not.toBe(report.caRollover?.newCaCertificateId);
  });

  it('prints the rollover in the summary', () => {
    // Assess
    expect(lines).toContain(`  CA rollover            SUCCEEDED: ${DEVICES} devices moved, 0 left under the old CA, old CA INACTIVE`);
    expect(lines.some((line) => line.includes(report.caRollover?.executionArn as string))).toBe(true);
  });
});
