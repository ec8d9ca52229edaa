import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DemoReport } from '../../cli/demo/index';
import { demo } from '../fixtures/demo-command';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * `rotor demo --signer private-ca --pca-validity-days 90`, through the command: the fleet
 * rotates onto certificates the local Private CA signs, and the report and the summary give
 * the signer and the new certificates' notAfter range, which sits at the run's time plus the
 * validity (not IoT's 2049).
 */
const describeWithBundles = bundlesDescribe('test/e2e/private-ca-demo.test.ts');
const DEVICES = 6;
const VALIDITY_DAYS = 90;
const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

describe('rotor demo --signer input', () => {
  it.each([
    [['--signer', 'acm'], /one of aws-iot, private-ca is expected/],
    [['--signer', 'private-ca', '--pca-validity-days', '30'], /whole number of days over 30/],
  ])('refuses %j before starting anything', async (args, message) => {
    // Prepare
    const lines: string[] = [];
    // Act / Assess
    await expect(demo(['--devices', '1', ...args], lines)).rejects.toThrow(message);
  });

  it('refuses a validity without the private-ca signer', async () => {
    // Act / Assess
    await expect(demo(['--devices', '1', '--pca-validity-days', '90'], [])).rejects.toThrow(/--pca-validity-days needs --signer private-ca/);
  });
});

describeWithBundles(`rotor demo --signer private-ca --pca-validity-days ${VALIDITY_DAYS}`, () => {
  let dir: string;
  let report: DemoReport;
  const lines: string[] = [];
  let exitCode: number;
  let startedAt: number;
  let endedAt: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-pca-demo-'));
    startedAt = Date.now();
    exitCode = await demo(['--devices', String(DEVICES), '--signer', 'private-ca', '--pca-validity-days', String(VALIDITY_DAYS), '--report', join(dir, 'report.json'), '--time-scale', '0.01'], lines);
    endedAt = Date.now();
    report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as DemoReport;
  }, 180_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('rotates every device with every check passing', () => {
    // Assess
    expect(exitCode).toBe(0);
    // The failure reasons, if any, are in the message.
    expect({ rotated: report.rotated, failed: report.failed }).toEqual({ rotated: DEVICES, failed: {} });
    expect(report.invariantViolations).toEqual([]);
  });

  it(`reports the signer and a notAfter range at the run's time + ${VALIDITY_DAYS} days`, () => {
    // Act
    const range = report.newCertificateNotAfter;
    const min = Date.parse(range?.min ?? '');
    const max = Date.parse(range?.max ?? '');
    // Assess
    expect(report.signer).toBe('private-ca');
    expect(report.validityDays).toBe(VALIDITY_DAYS);
    expect(range?.devices).toBe(report.rotated);
    expect(min).toBeGreaterThanOrEqual(startedAt + VALIDITY_DAYS * DAY_MS - MINUTE_MS);
    expect(max).toBeLessThanOrEqual(endedAt + VALIDITY_DAYS * DAY_MS + MINUTE_MS);
    expect(min).toBeLessThanOrEqual(max);
  });

  it('prints the signer and the range in the summary', () => {
    // Assess
    expect(lines).toContain(`  signer                 private-ca (the local Private CA, validity ${VALIDITY_DAYS} days)`);
    const expiry = lines.find((line) => line.startsWith('  new certs expire'));
    expect(expiry).toContain(report.newCertificateNotAfter?.min);
    expect(expiry).toContain(`(${report.rotated} devices)`);
  });
});
