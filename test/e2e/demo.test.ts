import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { DemoError, registerDemoCommand, runDemo, type DemoReport } from '../../cli/demo/index';
import type { DemoIo } from '../../cli/demo/run-demo';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * A clean `rotor demo` run of 20 devices through the command itself: every device rotates,
 * the checks pass, the report file carries the figures. Needs the function bundles (`make build`).
 */
const describeWithBundles = bundlesDescribe('test/e2e/demo.test.ts');

function captureIo(lines: string[]): DemoIo {
  return { out: (line) => lines.push(line), progressStream: process.stdout, tty: false };
}

describe('rotor demo input', () => {
  it('refuses bad input before starting anything', async () => {
    const io = captureIo([]);
    await expect(runDemo({ devices: 0 }, io)).rejects.toThrow(DemoError);
    await expect(runDemo({ devices: 5, timeScale: 0 }, io)).rejects.toThrow(/time-scale/);
    await expect(runDemo({ devices: 5, faults: 'melt=1' }, io)).rejects.toThrow(/unknown fault "melt"/);
    await expect(runDemo({ devices: 2, faults: 'slow=3' }, io)).rejects.toThrow(/asks for 3 faulty devices but the fleet has 2/);
  });

  it('refuses a data dir that already holds something, and leaves it as it was', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-demo-busy-'));
    try {
      const marker = join(dir, 'keep.txt');
      writeFileSync(marker, 'mine');
      await expect(runDemo({ devices: 1, dataDir: dir }, captureIo([]))).rejects.toThrow(/not empty/);
      expect(readFileSync(marker, 'utf8')).toBe('mine');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeWithBundles('rotor demo --devices 20', () => {
  let dir: string;
  let report: DemoReport;
  const lines: string[] = [];
  let exitCode: number | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-demo-e2e-'));
    const program = new Command('rotor').exitOverride();
    registerDemoCommand(program, captureIo(lines));
    process.exitCode = undefined;
    await program.parseAsync(['demo', '--devices', '20', '--report', join(dir, 'report.json'), '--time-scale', '0.01', '--data-dir', join(dir, 'state')], { from: 'user' });
    exitCode = typeof process.exitCode === 'number' ? process.exitCode : 0;
    process.exitCode = undefined;
    report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as DemoReport;
  }, 150_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('rotates every device with no invariant violation and exits 0', () => {
    expect(report.invariantViolations).toEqual([]);
    expect(exitCode).toBe(0);
    expect(report).toMatchObject({ devices: 20, rotated: 20, failed: {}, escalations: 0, unfinished: 0 });
    expect(Object.values(report.outcomes).every((o) => o.outcome === 'rotated')).toBe(true);
  });

  it('writes the figures a person and a script read', () => {
    expect(report.stateTransitionsPerRotation).toBe(11);
    expect(report.wallMs).toBeGreaterThan(0);
    expect(report.p50Ms).toBeGreaterThan(0);
    expect(report.p95Ms).toBeGreaterThanOrEqual(report.p50Ms);
    expect(report.wallMs).toBeGreaterThanOrEqual(report.p95Ms);
    // Each rotation needs at least: the claim, two publishes, two task answers, the certificate calls.
    expect(report.apiCallsPerRotation).toBeGreaterThan(10);
    expect(report.apiCallsByOperation['iot:CreateCertificateFromCsr']).toBe(1);
    expect(lines.some((line) => /rotated\s+20/.test(line))).toBe(true);
    expect(lines.some((line) => /checks\s+all passed/.test(line))).toBe(true);
  });

  it('kept the runtime state and key stores in the data dir it was given', () => {
    expect(existsSync(join(dir, 'state', 'devices', 'demo-0001', 'current', 'cert.pem'))).toBe(true);
  });
});
