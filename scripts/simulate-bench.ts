import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatSimulation, simulate, type SimulationReport } from '../cli/simulate/index.js';

/**
 * `npm run bench:simulate [-- --devices N --faults SPEC --seed S --report FILE]`: runs `rotor
 * simulate` in this process and prints its wall time and peak RSS (the process's maxRSS, as
 * /usr/bin/time -v reports it). Issue 10's bar: 1,000,000 devices in ≤ 5 minutes and ≤ 4 GiB
 * on a 2-core machine. The default fault mix is the one docs/fleet-scale.md reports.
 */
export const DEMO_FAULT_MIX =
  'offline=2%:20m,offline-for-good=1%,slow=10%:5s,garbage-csr=0.1%,wrong-cn=0.1%,weak-key=0.1%,reused-key=0.1%,crash-after-cert=0.5%:30s,refuse-cert=0.2%,ack-over-old=0.2%,duplicate=5%,restart-mid-rotation=0.5%:10s';

export interface SimulateBenchReport {
  devices: number;
  faults: string;
  seed: number;
  wallMs: number;
  peakRssMiB: number;
  cpuUserMs: number;
  simulation: SimulationReport;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '1000000' },
      faults: { type: 'string', default: '' },
      'demo-faults': { type: 'boolean', default: false },
      seed: { type: 'string', default: '1' },
      report: { type: 'string' },
    },
  });
  const devices = Number(values.devices);
  const seed = Number(values.seed);
  if (!Number.isInteger(devices) || devices < 1) throw new Error(`--devices must be a whole number of at least 1; got ${values.devices}`);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a whole number; got ${values.seed}`);
  const faults = values['demo-faults'] ? DEMO_FAULT_MIX : (values.faults ?? '');

  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const simulation = simulate({ devices, faults, seed });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  const usage = process.resourceUsage();
  const report: SimulateBenchReport = {
    devices,
    faults,
    seed,
    wallMs: Math.round(wallMs),
    peakRssMiB: Math.round(usage.maxRSS / 1024),
    cpuUserMs: Math.round(process.cpuUsage(cpu).user / 1000),
    simulation,
  };
  for (const line of formatSimulation(simulation, { faults, seed })) process.stdout.write(`${line}\n`);
  process.stdout.write(`  wall time              ${(report.wallMs / 1000).toFixed(1)} s\n  peak RSS               ${report.peakRssMiB} MiB\n`);
  if (values.report) {
    mkdirSync(dirname(resolve(values.report)), { recursive: true });
    writeFileSync(values.report, `${JSON.stringify(report, null, 2)}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`simulate-bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
