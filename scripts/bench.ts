import 'reflect-metadata';
import { checkCsr } from '../domain/csr-rules.js';
import { createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem } from '../device-sim/keys.js';
import { LocalCa } from '../local/iot/ca.js';
import { formatSummary } from '../cli/demo/figures.js';
import { runDemo, thingNames } from '../cli/demo/run-demo.js';

/**
 * `npm run bench`: rotates 1,000 devices (`BENCH_DEVICES` to change it) with `rotor demo`'s
 * machinery and sets the wall time against the crypto floor — the same cryptography for the
 * same fleet with no I/O at all: each rotation's key, CSR, CSR check and certificate, and
 * the provisioning key and CSR. wall / floor says how much the system adds around the work
 * it cannot avoid. Peak RSS is sampled every 50 ms over the whole run.
 */
const DEVICES = Number(process.env.BENCH_DEVICES ?? 1_000);
// The real timeouts: a clean run never waits for one, and under a 1,000-device load a
// shortened CSR or ack timeout fails rotations that are merely queued (see docs/demo.md).
const TIME_SCALE = Number(process.env.BENCH_TIME_SCALE ?? 1);
/** Knobs for finding where the time goes (docs/demo.md has the measurements). */
const FUNCTION_CONCURRENCY = process.env.BENCH_FUNCTION_CONCURRENCY ? Number(process.env.BENCH_FUNCTION_CONCURRENCY) : undefined;
const WATCH_MS = process.env.BENCH_WATCH_MS ? Number(process.env.BENCH_WATCH_MS) : undefined;

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

async function main(): Promise<void> {
  if (!Number.isInteger(DEVICES) || DEVICES < 1) throw new Error(`BENCH_DEVICES must be a whole number ≥ 1, got ${process.env.BENCH_DEVICES}`);
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 50);
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const lines: string[] = [];
    const report = await runDemo(
      { devices: DEVICES, timeScale: TIME_SCALE, functionConcurrency: FUNCTION_CONCURRENCY, watchIntervalMs: WATCH_MS, reportFile: process.env.BENCH_REPORT, signal: abort.signal },
      { out: (line) => process.stdout.write(`${line}\n`), progressStream: process.stdout, tty: false },
    );
    for (const line of formatSummary(report)) lines.push(line);
    const floorMs = await cryptoFloorMs(DEVICES);
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    const out = (line: string): void => {
      process.stdout.write(`${line}\n`);
    };
    for (const line of lines) out(line);
    out('');
    out(`bench: ${DEVICES} devices, ${report.rotated} rotated, ${Object.values(report.failed).reduce((a, b) => a + b, 0)} failed, ${report.invariantViolations.length} check failures`);
    out(`  wall time              ${(report.wallMs / 1000).toFixed(2)} s (audit start → last execution ended)`);
    out(`  throughput             ${(report.rotated / (report.wallMs / 1000)).toFixed(1)} devices/s`);
    out(`  crypto floor           ${(floorMs / 1000).toFixed(2)} s (key + CSR + CSR check + certificate, ${DEVICES}×, no I/O)`);
    out(`  wall / floor           ${(report.wallMs / floorMs).toFixed(1)}×`);
    out(`  peak RSS               ${(peakRss / 2 ** 20).toFixed(0)} MiB (this process; Lambda workers are threads in it)`);
    out(`  per rotation           ${report.stateTransitionsPerRotation.toFixed(1)} state transitions, ${report.apiCallsPerRotation.toFixed(1)} AWS API calls`);
    if (report.invariantViolations.length > 0 || report.rotated !== DEVICES) process.exitCode = 1;
  } finally {
    clearInterval(sampler);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exitCode = 1;
});
