import 'reflect-metadata';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { checkCsr } from '../domain/csr-rules.js';
import { quotaFloorSeconds } from '../domain/pacing/index.js';
import { AWS_DEFAULT_QUOTAS_NAME } from '../local/edge/quotas.js';
import { pacingConfig } from '../functions/core/pacing-settings.js';
import { createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem } from '../device-sim/keys.js';
import { LocalCa } from '../local/iot/ca.js';
import { DynamoDbLocal } from '../local/dynamodb/dynamodb-local.js';
import { formatSummary, type DemoReport } from '../cli/demo/figures.js';
import { runDemo, thingNames } from '../cli/demo/run-demo.js';
import { MemoryWatch, type MemoryBreakdown } from './bench-memory.js';
import { fleetProcessFigures } from '../device-sim/fleet-thread.js';
import { tuneHeapsForLocalRuntime } from '../local/heap.js';

/**
 * `npm run bench [-- --devices N --time-scale X --quotas aws-default|FILE --report FILE]`: rotates 1,000 devices with
 * `rotor demo`'s machinery and sets the wall time against the crypto floor — the same
 * cryptography for the same fleet with no I/O at all, measured in this process after the
 * run: each rotation's key, CSR, CSR check and certificate. wall / floor says how much the
 * system adds around the work it cannot avoid. Peak RSS is the kernel's high-water mark (ru_maxrss).
 */
export interface BenchReport {
  devices: number;
  rotated: number;
  failed: number;
  checkFailures: number;
  timeScale: number;
  fleetThreads: number;
  /** Where the simulated devices ran: 'process' (child processes, the default), 'thread' (worker threads of this process) or 'main' (--fleet-threads 0). */
  fleet: 'process' | 'thread' | 'main';
  wallMs: number;
  devicesPerSecond: number;
  cryptoFloorMs: number;
  wallOverFloor: number;
  /**
   * The least wall time Rotor's own pacing allows (domain/pacing quotaFloorSeconds, at this time
   * scale): the functions pace to AWS's quotas (or --quotas FILE's) unless ROTOR_PACING_ENABLED=false.
   * At time scale 1 it is far above the crypto floor: 222 s for 1,000 devices at AWS's defaults.
   */
  quotaFloorMs: number | null;
  peakRssMiB: number;
  /** Where the memory went, thread by thread (scripts/bench-memory.ts); DynamoDB Local's JVM is a child, in neither figure. */
  memory: MemoryBreakdown & {
    /** DynamoDB Local's JVM, a child process: its own peak RSS (VmHWM), read before the runtime stops; null where unknown. */
    dynamodbLocalPeakRssMiB: number | null;
    /** The JVM's CPU seconds (start, set-up and rotations), read before the runtime stops; null where unknown. */
    dynamodbLocalCpuSeconds: number | null;
    /**
     * With --fleet-process, the simulated devices' child processes: their peak RSS (VmHWM) summed and
     * their CPU seconds (set-up and rotations), read before the runtime stops; null without them. Neither
     * is in peakRssMiB nor in the process's CPU figures.
     */
    fleetProcessPeakRssMiB: number | null;
    fleetProcessCpuSeconds: number | null;
  };
  /** CPU time of this process (main thread, Lambda workers, device I/O callbacks) over the whole run. */
  cpuUserMs: number;
  cpuSystemMs: number;
  stateTransitionsPerRotation: number;
  apiCallsPerRotation: number;
  /** The quotas the runtime enforced ('none' without --quotas), what they throttled, and the rotations throttling failed. */
  quotas: string;
  throttledCalls: number;
  throttlingFailures: number;
  cores: number;
  demo: DemoReport;
}

function numberOption(value: string | undefined, fallback: number, name: string, valid: (n: number) => boolean): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!valid(n)) throw new Error(`${name} ${JSON.stringify(value)} is not valid`);
  return n;
}

function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      devices: { type: 'string' },
      'time-scale': { type: 'string' },
      report: { type: 'string' },
      'function-concurrency': { type: 'string' },
      'watch-ms': { type: 'string' },
      'fleet-threads': { type: 'string' },
      fleet: { type: 'string' },
      'fleet-process': { type: 'boolean' },
      quotas: { type: 'string' },
    },
    strict: true,
  });
  const env = process.env;
  const whole = (n: number): boolean => Number.isInteger(n) && n >= 1;
  const fleetThreads = numberOption(values['fleet-threads'] ?? env.BENCH_FLEET_THREADS, 1, '--fleet-threads (BENCH_FLEET_THREADS)', (n) => Number.isInteger(n) && n >= 0 && n <= 16);
  const fleetProcess = fleetIsolation(values.fleet ?? env.BENCH_FLEET, values['fleet-process'] ?? (env.BENCH_FLEET_PROCESS === undefined ? undefined : env.BENCH_FLEET_PROCESS === '1'));
  return {
    devices: numberOption(values.devices ?? env.BENCH_DEVICES, 1_000, '--devices (BENCH_DEVICES)', (n) => whole(n) && n <= 10_000),
    // The real timeouts by default: a clean run never waits for one, and a shortened CSR or ack
    // timeout fails rotations that are merely queued behind a thousand others (docs/demo.md).
    timeScale: numberOption(values['time-scale'] ?? env.BENCH_TIME_SCALE, 1, '--time-scale (BENCH_TIME_SCALE)', (n) => n > 0 && n <= 1),
    report: values.report ?? env.BENCH_REPORT,
    // The devices' shares, off the main thread: it then runs only the local AWS (docs/demo.md).
    fleetThreads,
    /**
     * The fleet's shares in child processes (the default) or worker threads of this process. The
     * devices stand for machines of their own, so their sockets, TLS state and heaps stay out of
     * the local AWS's RSS, and 10,000 of them fit this process's open-file limit (docs/demo.md).
     * --fleet-threads 0 puts the devices on the main thread, in this process whatever --fleet says.
     */
    fleetProcess: fleetThreads > 0 && fleetProcess,
    /** Knobs for finding where the time goes (docs/demo.md has the measurements). */
    functionConcurrency: values['function-concurrency'] ?? env.BENCH_FUNCTION_CONCURRENCY,
    watchMs: values['watch-ms'] ?? env.BENCH_WATCH_MS,
    /** aws-default or a quotas file: the local runtime enforces them (docs/fleet-scale.md). */
    quotas: values.quotas ?? env.BENCH_QUOTAS,
  };
}

/** --fleet process|thread (BENCH_FLEET); the older --fleet-process (BENCH_FLEET_PROCESS=1) means process. */
function fleetIsolation(value: string | undefined, legacyProcess: boolean | undefined): boolean {
  if (value === undefined || value === '') return legacyProcess ?? true;
  if (value !== 'process' && value !== 'thread') throw new Error(`--fleet (BENCH_FLEET) ${JSON.stringify(value)} is not valid: process or thread`);
  if (legacyProcess !== undefined && legacyProcess !== (value === 'process')) throw new Error(`--fleet ${value} contradicts --fleet-process (BENCH_FLEET_PROCESS)`);
  return value === 'process';
}

/** The cryptography of `count` rotations, one after another, with no I/O: the floor no system can go under on one core. */
async function cryptoFloorMs(count: number): Promise<number> {
  const ca = await LocalCa.create('Rotor bench CA');
  const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 365 * 86_400_000) };
  const names = thingNames(count);
  const started = performance.now();
  for (const thingName of names) {
    // One rotation's cryptography: the device's new key and CSR, the cloud's check and certificate.
    const keyPem = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
    const csrPem = await createCsrPem(keyPem, thingName);
    const check = checkCsr(csrPem, { thingName });
    if (!check.ok) throw new Error(`the floor's own CSR was rejected: ${check.detail}`);
    await ca.signCsr(csrPem, validity);
  }
  return performance.now() - started;
}

/** The least time the functions' pacing allows the fleet, as they read their settings (null: pacing off). */
function pacingQuotaFloorMs(devices: number, timeScale: number, quotas: string | undefined): number | null {
  const file = quotas && quotas !== AWS_DEFAULT_QUOTAS_NAME ? { ROTOR_PACING_QUOTAS: readFileSync(quotas, 'utf8') } : {};
  const pacing = pacingConfig({ ...process.env, ROTOR_TIME_SCALE: String(timeScale), ...file });
  return pacing.enabled ? quotaFloorSeconds(devices, pacing.settings.quotas) * 1000 : null;
}

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  tuneHeapsForLocalRuntime();
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const out = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  // Without --quotas the local runtime enforces no quota, so there is nothing to pace against: the
  // bench measures the runtime against the crypto floor (issue 12). Pacing at AWS's real rates would
  // make ListPrincipalThings' floor (222 s for 1,000 devices at time scale 1) the figure instead.
  // With --quotas, or ROTOR_PACING_ENABLED set by the caller, the functions pace as deployed.
  if (!opts.quotas && process.env.ROTOR_PACING_ENABLED === undefined) process.env.ROTOR_PACING_ENABLED = 'false';
  try {
    const cpuBefore = process.cpuUsage();
    let jvmPeakRss: number | undefined;
    let jvmCpuMs: number | undefined;
    let fleetRss: number | undefined;
    let fleetCpuMs: number | undefined;
    const memoryWatch = new MemoryWatch();
    memoryWatch.start();
    const demo = await runDemo(
      {
        devices: opts.devices,
        timeScale: opts.timeScale,
        fleetThreads: opts.fleetThreads,
        ...(opts.fleetProcess ? { fleetProcess: true } : {}),
        ...(opts.functionConcurrency ? { functionConcurrency: Number(opts.functionConcurrency) } : {}),
        ...(opts.watchMs ? { watchIntervalMs: Number(opts.watchMs) } : {}),
        ...(opts.quotas ? { quotas: opts.quotas } : {}),
        signal: abort.signal,
        beforeStop: async () => {
          await memoryWatch.sample();
          const peaks = DynamoDbLocal.runningNow().map((db) => db.peakRssBytes());
          jvmPeakRss = peaks.every((peak) => peak !== undefined) && peaks.length > 0 ? peaks.reduce((a, b) => (a as number) + (b as number), 0) as number : undefined;
          const cpus = DynamoDbLocal.runningNow().map((db) => db.cpuMs());
          jvmCpuMs = cpus.every((cpu) => cpu !== undefined) && cpus.length > 0 ? cpus.reduce((a, b) => (a as number) + (b as number), 0) as number : undefined;
          const fleet = fleetProcessFigures();
          if (fleet.length > 0 && fleet.every((f) => f.peakRssBytes !== undefined && f.cpuMs !== undefined)) {
            fleetRss = fleet.reduce((sum, f) => sum + (f.peakRssBytes as number), 0);
            fleetCpuMs = fleet.reduce((sum, f) => sum + (f.cpuMs as number), 0);
          }
        },
      },
      { out, progressStream: process.stdout, tty: false },
    );
    const cpu = process.cpuUsage(cpuBefore);
    const memory = { ...(await memoryWatch.stop()), dynamodbLocalPeakRssMiB: jvmPeakRss === undefined ? null : Math.round(jvmPeakRss / 2 ** 20),
      dynamodbLocalCpuSeconds: jvmCpuMs === undefined ? null : Math.round(jvmCpuMs / 100) / 10,
      fleetProcessPeakRssMiB: fleetRss === undefined ? null : Math.round(fleetRss / 2 ** 20),
      fleetProcessCpuSeconds: fleetCpuMs === undefined ? null : Math.round(fleetCpuMs / 100) / 10,
    };
    const floorMs = await cryptoFloorMs(opts.devices);
    const quotaFloor = pacingQuotaFloorMs(opts.devices, opts.timeScale, opts.quotas);
    // The kernel's high-water mark (KiB): exact, where sampling every 50 ms cost the main thread ~1 %.
    const peakRss = process.resourceUsage().maxRSS * 1024;
    const failed = Object.values(demo.failed).reduce((a, b) => a + b, 0);
    const report: BenchReport = {
      devices: opts.devices,
      rotated: demo.rotated,
      failed,
      checkFailures: demo.invariantViolations.length,
      timeScale: opts.timeScale,
      fleetThreads: opts.fleetThreads,
      fleet: opts.fleetThreads === 0 ? 'main' : opts.fleetProcess ? 'process' : 'thread',
      wallMs: Math.round(demo.wallMs),
      devicesPerSecond: demo.rotated / (demo.wallMs / 1000),
      cryptoFloorMs: Math.round(floorMs),
      wallOverFloor: demo.wallMs / floorMs,
      quotaFloorMs: quotaFloor === null ? null : Math.round(quotaFloor),
      peakRssMiB: Math.round(peakRss / 2 ** 20),
      memory,
      cpuUserMs: Math.round(cpu.user / 1000),
      cpuSystemMs: Math.round(cpu.system / 1000),
      stateTransitionsPerRotation: demo.stateTransitionsPerRotation,
      apiCallsPerRotation: demo.apiCallsPerRotation,
      quotas: demo.quotas ?? 'none',
      throttledCalls: demo.throttledCalls?.total ?? 0,
      throttlingFailures: demo.throttlingFailures ?? 0,
      cores: availableParallelism(),
      demo,
    };
    for (const line of formatSummary(demo)) out(line);
    out('');
    const fleetWhere = report.fleetThreads ? `${report.fleetThreads} ${opts.fleetProcess ? 'child process(es)' : 'thread(s)'}` : 'the main thread';
    out(`bench: ${report.devices} devices, ${report.rotated} rotated, ${report.failed} failed, ${report.checkFailures} check failures (${report.cores} cores, devices on ${fleetWhere})`);
    out(`  wall time              ${(report.wallMs / 1000).toFixed(2)} s (audit start → last execution ended)`);
    out(`  throughput             ${report.devicesPerSecond.toFixed(1)} devices/s`);
    out(`  crypto floor           ${(floorMs / 1000).toFixed(2)} s (key + CSR + CSR check + certificate, ${report.devices}×, no I/O, same process)`);
    out(`  wall / floor           ${report.wallOverFloor.toFixed(1)}×`);
    out(
      quotaFloor === null
        ? `  quota floor            none (the functions do not pace: ${opts.quotas ? 'ROTOR_PACING_ENABLED=false' : 'no --quotas, so the local runtime enforces none'})`
        : `  quota floor            ${(quotaFloor / 1000).toFixed(2)} s (the functions pace to ${opts.quotas ?? "AWS's default"} quotas at time scale ${opts.timeScale}; ROTOR_PACING_ENABLED=false turns it off)`,
    );
    out(`  peak RSS               ${report.peakRssMiB} MiB (this process; Lambda workers are threads in it${opts.fleetProcess ? ', the devices are not' : ''})`);
    if (opts.fleetProcess) {
      out(`  fleet processes        peak RSS ${memory.fleetProcessPeakRssMiB ?? '?'} MiB, CPU ${memory.fleetProcessCpuSeconds ?? '?'} s (children, in neither figure of this process)`);
    }
    out(
      `  peak heaps             main ${memory.mainHeapMiB} MiB, Lambda workers ${memory.workersHeapMiB} MiB (${memory.threads.filter((t) => t.kind.startsWith('lambda:')).length} threads), fleet ${opts.fleetProcess ? 'in its processes (above)' : `${memory.fleetHeapMiB} MiB`}; off-heap (external) ${memory.externalMiB} MiB; DynamoDB Local's JVM (a child, not in the RSS) ${memory.dynamodbLocalPeakRssMiB ?? '?'} MiB`,
    );
    out(`  CPU                    ${(report.cpuUserMs / 1000).toFixed(1)} s user + ${(report.cpuSystemMs / 1000).toFixed(1)} s system (setup, rotations and end checks)`);
    const threadCpu = memory.cpuSeconds;
    const fmt = (value: number | null): string => (value === null ? '?' : `${value.toFixed(1)} s`);
    const byFunction = Object.entries(memory.functions)
      .sort(([, a], [, b]) => (b.cpuSeconds ?? 0) - (a.cpuSeconds ?? 0))
      .map(([name, f]) => `${name} ${fmt(f.cpuSeconds)}`)
      .join(', ');
    out(`  CPU by thread          main ${fmt(threadCpu.main)}, Lambda workers ${fmt(threadCpu.workers)}, fleet ${opts.fleetProcess ? `${fmt(memory.fleetProcessCpuSeconds)} (child processes)` : fmt(threadCpu.fleet)}, DynamoDB Local's JVM ${fmt(memory.dynamodbLocalCpuSeconds)} (set-up and rotations, not the end checks)`);
    if (byFunction) out(`  CPU by function        ${byFunction}`);
    out(`  per rotation           ${report.stateTransitionsPerRotation.toFixed(1)} state transitions, ${report.apiCallsPerRotation.toFixed(1)} AWS API calls`);
    if (opts.report) {
      mkdirSync(dirname(resolve(opts.report)), { recursive: true });
      writeFileSync(opts.report, `${JSON.stringify(report, null, 2)}\n`);
      out(`  report                 ${opts.report}`);
    }
    if (report.checkFailures > 0 || report.rotated !== report.devices) process.exitCode = 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exitCode = 1;
});
