import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerSimulateCommand, simulate, SimulationError, type SimulationReport } from '../../../../cli/simulate/index.js';
import { AWS_DEFAULT_QUOTAS, Bucket, HAPPY_PATH, pathDemand } from '../../../../domain/pacing/index.js';
import { FailureReason } from '../../../../domain/rotation.js';

const REPORT_FIELDS = [
  'devices', 'rotated', 'failed', 'escalations', 'throttledCalls', 'throttlingFailures', 'quotaFloorS', 'completionS',
  'completionOverFloor', 'peakOpenExecutions', 'peakLambdaConcurrency', 'peakRatePerApi', 'apiCallsByOperation',
];

function expectNoQuotaExceeded(report: SimulationReport): void {
  for (const [api, rate] of Object.entries(report.peakRatePerApi)) {
    const quota = AWS_DEFAULT_QUOTAS[api as Bucket];
    expect({ api, rate, within: quota.kind === 'rate' && rate <= quota.rate }).toEqual({ api, rate, within: true });
  }
  expect(report.peakLambdaConcurrency).toBeLessThanOrEqual(1000);
}

describe('rotor simulate', () => {
  let clean: SimulationReport;
  beforeAll(() => {
    clean = simulate({ devices: 20_000, seed: 7 });
  });

  it('reports exactly issue 10\'s fields', () => {
    expect(Object.keys(clean)).toEqual(REPORT_FIELDS);
  });

  it('rotates every device at the quota floor, with nothing throttled and no quota exceeded', () => {
    expect(clean.rotated).toBe(20_000);
    expect(clean.failed).toEqual({});
    expect(clean.throttledCalls).toBe(0);
    expect(clean.throttlingFailures).toBe(0);
    expect(clean.quotaFloorS).toBeCloseTo(20_000 / 4.5, 0);
    expect(clean.completionS).toBeGreaterThanOrEqual(clean.quotaFloorS);
    expect(clean.completionOverFloor).toBeLessThanOrEqual(1.1);
    expectNoQuotaExceeded(clean);
  });

  it('spends per rotation what the call profile says (today\'s measured happy path)', () => {
    const expected = pathDemand(HAPPY_PATH).calls;
    for (const [operation, n] of Object.entries(expected)) expect([operation, clean.apiCallsByOperation[operation]]).toEqual([operation, n]);
  });

  it('is deterministic for a seed', () => {
    expect(simulate({ devices: 2_000, seed: 7, faults: 'offline=5%:40m,garbage-csr=1%' })).toEqual(simulate({ devices: 2_000, seed: 7, faults: 'offline=5%:40m,garbage-csr=1%' }));
  });

  it('ends each fault kind the way the workflow does (as rotor demo\'s fault suite expects)', () => {
    // Prepare: 10 devices of each kind.
    const spec = 'garbage-csr=10,wrong-cn=10,weak-key=10,reused-key=10,offline-for-good=10,refuse-cert=10,ack-over-old=10,offline=10:20m,slow=10:5s,crash-after-cert=10:30s,duplicate=10,restart-mid-rotation=10:10s';
    // Act
    const report = simulate({ devices: 1_000, seed: 3, faults: spec });
    // Assess
    expect(report.failed).toEqual({
      [FailureReason.CsrRejected]: 40,
      [FailureReason.NoCsrResponse]: 10,
      [FailureReason.DeviceError]: 10,
      [FailureReason.NoAck]: 10,
    });
    expect(report.rotated).toBe(930);
    expect(report.escalations).toBe(70);
    expect(report.throttlingFailures).toBe(0);
    // A device that never answers keeps its execution open through every re-sent csr_req (≈ 2.6 h).
    expect(report.completionS).toBeGreaterThan(4 * 1_800);
  });

  it('adapts when the account has less than Rotor was told (AIMD): throttled calls, no throttling failures', () => {
    const account = { ...AWS_DEFAULT_QUOTAS, [Bucket.ListPrincipalThings]: { kind: 'rate' as const, rate: 5, burst: 5, source: 'quotas-file' as const } };
    const report = simulate({ devices: 5_000, seed: 2, accountQuotas: account });
    expect(report.throttledCalls).toBeGreaterThan(0);
    expect(report.throttlingFailures).toBe(0);
    expect(report.rotated).toBe(5_000);
  });

  it('fails throttled rotations the way today\'s retries would when the account has far less than configured', () => {
    // A DescribeCertificate quota of 0.05 TPS: retries run out, Issue fails as ISSUE_FAILED.
    const account = { ...AWS_DEFAULT_QUOTAS, [Bucket.DescribeCertificate]: { kind: 'rate' as const, rate: 0.05, burst: 1, source: 'quotas-file' as const } };
    const report = simulate({ devices: 200, seed: 2, accountQuotas: account });
    expect(report.throttlingFailures).toBeGreaterThan(0);
    const failed = Object.values(report.failed).reduce((a, b) => a + b, 0);
    expect(report.rotated + failed).toBe(200);
  });

  it('shows why pacing exists: the same fleet fanned out as today fails by throttling', () => {
    const unpaced = simulate({ devices: 3_000, seed: 4, pacing: 'none' });
    const paced = simulate({ devices: 3_000, seed: 4 });
    expect(unpaced.throttlingFailures).toBeGreaterThan(1_000);
    expect(paced.throttlingFailures).toBe(0);
    expect(paced.rotated).toBe(3_000);
  });

  it('rejects a bad fault spec or fleet size with a clear error', () => {
    expect(() => simulate({ devices: 10, faults: 'nonsense=1' })).toThrow(SimulationError);
    expect(() => simulate({ devices: 10, faults: 'garbage-csr=11' })).toThrow(/asks for 11 faulty devices but the fleet has 10/);
    expect(() => simulate({ devices: 0 })).toThrow(/at least 1/);
  });

  describe('the command', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'rotor-simulate-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('prints a summary and writes the report', async () => {
      const lines: string[] = [];
      const program = registerSimulateCommand(new Command('rotor').exitOverride(), { out: (line) => lines.push(line) });
      const quotas = join(dir, 'quotas.json');
      writeFileSync(quotas, JSON.stringify({ quotas: { 'iot:ListPrincipalThings': { rate: 20 } } }));
      await program.parseAsync(['simulate', '--devices', '500', '--quotas', quotas, '--report', join(dir, 'r.json')], { from: 'user' });
      const report = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')) as SimulationReport;
      expect(report.devices).toBe(500);
      expect(lines[0]).toMatch(/^Rotor simulation: 500 devices/);
      expect(lines.some((line) => /completion .* × the floor/.test(line))).toBe(true);
      // A faster ListPrincipalThings moves the floor: the 10-TPS APIs called once per rotation (at 9 TPS) now limit.
      expect(report.quotaFloorS).toBeCloseTo(500 / 9, 0);
    });

    it('refuses a quotas file it cannot read', async () => {
      const program = registerSimulateCommand(new Command('rotor').exitOverride(), { out: () => undefined });
      await expect(program.parseAsync(['simulate', '--devices', '5', '--quotas', join(dir, 'missing.json')], { from: 'user' })).rejects.toThrow(/cannot read the quotas file/);
    });
  });
});
