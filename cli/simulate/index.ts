import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_PACING, QuotasFileError } from '../../domain/pacing/index.js';
import { readQuotasFile } from '../quotas-file.js';
import { DEFAULT_DEVICE_MODEL, simulate, SimulationError, type SimulationReport } from './simulate.js';

export { simulate, SimulationError, NOT_STARTED, DEFAULT_DEVICE_MODEL, DEFAULT_TIMINGS, type SimulationOptions, type SimulationReport } from './simulate.js';

export const MAX_SIMULATED_DEVICES = 10_000_000;

function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`a whole number from ${min} to ${max} is expected`);
    return n;
  };
}

function share(value: string): number {
  const match = /^(\d+(?:\.\d+)?)%$/.exec(value);
  const n = match ? Number(match[1]) / 100 : Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('a share is expected: 0..1 or a percentage such as 2%');
  return n;
}

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7_200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3_600).toFixed(1)} h`;
}

export function formatSimulation(report: SimulationReport, context: { faults: string; seed: number; quotas?: string; pacing?: 'rotor' | 'none' }): string[] {
  const failedTotal = Object.values(report.failed).reduce((a, b) => a + b, 0);
  const byReason = Object.entries(report.failed).sort(([a], [b]) => a.localeCompare(b)).map(([reason, n]) => `${reason} ${n}`).join(', ');
  const apis = Object.entries(report.peakRatePerApi).map(([api, rate]) => `${api} ${rate}`).join(', ');
  const calls = Object.entries(report.apiCallsByOperation).sort(([, a], [, b]) => b - a).slice(0, 8).map(([op, n]) => `${op} ${n}`).join(', ');
  return [
    `Rotor simulation: ${report.devices} devices${context.pacing === 'none' ? ' WITHOUT pacing (today\'s fan-out)' : ''}, ${context.faults ? `faults ${context.faults}` : 'no faults'} (seed ${context.seed}), quotas ${context.quotas ?? 'AWS defaults'}`,
    `  rotated                ${report.rotated}`,
    `  failed                 ${failedTotal}${failedTotal ? `  (${byReason})` : ''}`,
    `  escalations            ${report.escalations}`,
    `  throttled calls        ${report.throttledCalls} (rotations failed by throttling: ${report.throttlingFailures})`,
    `  quota floor            ${duration(report.quotaFloorS)} (${report.quotaFloorS} s)`,
    `  completion             ${duration(report.completionS)} (${report.completionS} s) = ${report.completionOverFloor} × the floor`,
    `  peak open executions   ${report.peakOpenExecutions}`,
    `  peak Lambda concurrency ${report.peakLambdaConcurrency}`,
    `  peak calls per second  ${apis}`,
    `  calls per rotation     ${calls}`,
  ];
}

export interface SimulateIo {
  out: (line: string) => void;
}

/** `rotor simulate …`; cli/main.ts wires it in. */
export function registerSimulateCommand(program: Command, io: SimulateIo = { out: (line) => process.stdout.write(`${line}\n`) }): Command {
  program
    .command('simulate')
    .description('simulate one audit of a large fleet on a virtual clock: pacing, quotas, throttling, faults, completion against the quota floor')
    .requiredOption('--devices <n>', 'devices the audit flags', wholeNumber(1, MAX_SIMULATED_DEVICES))
    .option('--faults <spec>', 'fault spec, as rotor demo takes it (e.g. "offline-for-good=1%,garbage-csr=0.1%,slow=10%:5s")', '')
    .option('--quotas <file>', 'quotas file (JSON) overriding AWS defaults and the safety fraction; see docs/fleet-scale.md')
    .option('--account-quotas <file>', 'the account\'s real quotas when they differ from what Rotor is configured with (default: --quotas)')
    .option('--offline-share <share>', 'share of devices offline when asked, back after an exponential time (mean 1 h)', share, DEFAULT_DEVICE_MODEL.offlineShare)
    .addOption(new Option('--pacing <mode>', 'rotor: the product\'s pacing; none: today\'s fan-out, for comparison').choices(['rotor', 'none']).default('rotor'))
    .option('--seed <n>', 'which devices get which fault, and every random draw', wholeNumber(0, 2 ** 31), 1)
    .option('--report <file>', 'write the report as JSON')
    .action((opts: { devices: number; pacing: 'rotor' | 'none'; faults: string; quotas?: string; accountQuotas?: string; offlineShare: number; seed: number; report?: string }) => {
      let quotas = DEFAULT_PACING.quotas;
      let account;
      try {
        if (opts.quotas) quotas = readQuotasFile(opts.quotas);
        if (opts.accountQuotas) account = readQuotasFile(opts.accountQuotas).quotas;
      } catch (error) {
        if (error instanceof QuotasFileError) throw new SimulationError(error.message);
        throw error;
      }
      const report = simulate({
        devices: opts.devices,
        faults: opts.faults,
        seed: opts.seed,
        pacing: opts.pacing,
        pacingSettings: { ...DEFAULT_PACING, quotas },
        accountQuotas: account,
        device: { ...DEFAULT_DEVICE_MODEL, offlineShare: opts.offlineShare },
      });
      for (const line of formatSimulation(report, { faults: opts.faults, seed: opts.seed, quotas: opts.quotas, pacing: opts.pacing })) io.out(line);
      if (opts.report) {
        mkdirSync(dirname(resolve(opts.report)), { recursive: true });
        writeFileSync(opts.report, `${JSON.stringify(report, null, 2)}\n`);
        io.out(`  report                 ${opts.report}`);
      }
    });
  return program;
}
