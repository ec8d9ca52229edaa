import { Command, InvalidArgumentError } from 'commander';
import { tuneHeapsForLocalRuntime } from '../../local/heap.js';
import { formatSummary, type DemoReport } from './figures.js';
import { DemoError, MAX_DEVICES, runDemo, type DemoIo } from './run-demo.js';
import { localSigner, signerOption, validityDaysOption } from '../signer-options.js';
import type { SignerKind } from '../../domain/signer.js';
import { DemoScenario, defaultTimeScale, timeScaleHelp } from './scenario.js';
import { formatTrustStoreSummary, runTrustStoreDemo } from './trust-store.js';

export { runDemo, validateDemoOptions, DemoError, type DemoOptions, type DemoIo } from './run-demo.js';
export { formatSummary, percentile, type DemoReport } from './figures.js';
export { checkFleet, CheckName, type CheckFailure } from './fleet-checks.js';
export { InvariantWatcher, checkDeviceInvariant } from './invariant-watch.js';
export { DemoScenario, defaultTimeScale } from './scenario.js';

function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`a whole number from ${min} to ${max} is expected`);
    return n;
  };
}

function scale(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 1) throw new InvalidArgumentError('a number above 0 and at most 1 is expected (0.01: a 900 s wait lasts 9 s)');
  return n;
}

const SCENARIOS: readonly string[] = Object.values(DemoScenario);

function scenarioOption(value: string): DemoScenario {
  if (!SCENARIOS.includes(value)) throw new InvalidArgumentError(`unknown scenario ${JSON.stringify(value)}: one of ${SCENARIOS.join(', ')} is expected`);
  return value as DemoScenario;
}

function defaultDemoIo(): DemoIo {
  return { out: (line) => process.stdout.write(`${line}\n`), progressStream: process.stdout, tty: process.stdout.isTTY === true };
}

/** `rotor demo …`; cli/main.ts wires it in. The exit code goes to process.exitCode, as with the other commands. */
export function registerDemoCommand(program: Command, io: DemoIo = defaultDemoIo()): Command {
  program
    .command('demo')
    .description('rotate a simulated fleet end to end on the local AWS, then check that no device was stranded')
    .option('--devices <n>', 'fleet size', wholeNumber(1, MAX_DEVICES), 100)
    .option('--faults <spec>', 'fault spec, e.g. "offline=2:20s,garbage-csr=1,slow=10%:3s,revoke-old=1,shared-cert=1,lambda-crash=3" (see docs/demo.md)', '')
    .option('--seed <n>', 'which devices get which fault', wholeNumber(0, 2 ** 31), 1)
    .option('--report <file>', 'write the figures and check results as JSON')
    .option('--time-scale <x>', timeScaleHelp(), scale)
    .option('--data-dir <dir>', 'keep the runtime state and key stores here (new or empty directory); a temporary one otherwise')
    .option('--timeout <seconds>', 'give up waiting for the rotations after this long', wholeNumber(1, 86_400))
    .option('--fleet-threads <n>', 'run the simulated devices on this many worker threads (0: on the main thread)', wholeNumber(0, 16), 0)
    .option('--quotas <aws-default|file>', "enforce AWS's default quotas or a quotas file's as the account's (scaled by the time scale; see docs/fleet-scale.md)")
    .option('--keep', 'at the end, leave the local AWS, the console and the fleet up until Ctrl-C')
    .option('--signer <aws-iot|private-ca>', "who signs the new certificates: IoT (they expire in 2049) or the local Private CA (with --pca-validity-days)", signerOption, 'aws-iot')
    .option('--scenario <name>', `${SCENARIOS.join(' | ')}: rotation (the audit rotates the fleet), ca-rollover (the fleet starts under CA-1 and a CA rollover moves it to CA-2; signs with the local Private CA), trust-store (switch the broker's server CA and push the new one to every device; faults: refuse-bundle=K)`, scenarioOption, DemoScenario.Rotation)
    .option('--pca-validity-days <n>', 'with --signer private-ca: how many days new certificates are valid (more than 30; 365 by default)', validityDaysOption)
    .action(async (opts: { scenario: DemoScenario; devices: number; faults: string; seed: number; report?: string; timeScale?: number; dataDir?: string; timeout?: number; fleetThreads: number; keep?: boolean; quotas?: string; signer: SignerKind; pcaValidityDays?: number }, command: Command) => {
      tuneHeapsForLocalRuntime();
      if (opts.scenario === DemoScenario.TrustStore && (opts.quotas || opts.signer !== 'aws-iot' || opts.keep || opts.fleetThreads > 0)) {
        throw new DemoError(`--scenario ${opts.scenario} takes --devices, --faults, --seed, --report, --time-scale, --data-dir and --timeout only`);
      }
      // ca-rollover signs with the local Private CA: the default aws-iot is not asked for, so it does not apply.
      const signerGiven = command.getOptionValueSource('signer') === 'cli';
      const timeScale = opts.timeScale ?? defaultTimeScale(opts.scenario, opts.quotas);
      const signer = localSigner(opts.scenario === DemoScenario.CaRollover && !signerGiven ? 'private-ca' : opts.signer, opts.pcaValidityDays);
      const abort = new AbortController();
      const onSignal = (): void => abort.abort();
      // `on`, not `once`: Ctrl-C reaches both tsx and this process, and tsx relays it again.
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const summarize = (report: DemoReport): void => {
        for (const line of formatSummary(report)) io.out(line);
        if (opts.report) io.out(`  report                 ${opts.report}`);
      };
      // --keep: the summary first, then wait for Ctrl-C with everything still up.
      const keep = async (report: DemoReport, consoleUrl: string): Promise<void> => {
        summarize(report);
        if (abort.signal.aborted) return;
        io.out('');
        io.out(`kept up until Ctrl-C: console ${consoleUrl}`);
        await new Promise<void>((resolveKeep) => abort.signal.addEventListener('abort', () => resolveKeep(), { once: true }));
        io.out('stopping');
      };
      try {
        if (opts.scenario === DemoScenario.TrustStore) {
          const report = await runTrustStoreDemo({ devices: opts.devices, faults: opts.faults, seed: opts.seed, reportFile: opts.report, timeScale, dataDir: opts.dataDir, timeoutSeconds: opts.timeout, signal: abort.signal }, io);
          for (const line of formatTrustStoreSummary(report)) io.out(line);
          if (opts.report) io.out(`  report                 ${opts.report}`);
          if (report.checkFailures.length > 0 || abort.signal.aborted) process.exitCode = 1;
          return;
        }
        const report = await runDemo(
          { scenario: opts.scenario, devices: opts.devices, faults: opts.faults, seed: opts.seed, reportFile: opts.report, timeScale, dataDir: opts.dataDir, timeoutSeconds: opts.timeout, fleetThreads: opts.fleetThreads, ...(opts.quotas ? { quotas: opts.quotas } : {}), signer, signal: abort.signal, ...(opts.keep ? { beforeStop: keep } : {}) },
          io,
        );
        if (!opts.keep) summarize(report);
        // A ca-rollover run without faults must end with CA-1 INACTIVE: anything else is a failed run.
        const rolloverFailed = report.caRollover !== undefined && !opts.faults && report.caRollover.oldCaStatus !== 'INACTIVE';
        if (report.invariantViolations.length > 0 || report.unfinished > 0 || rolloverFailed || (abort.signal.aborted && !opts.keep)) process.exitCode = 1;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
  return program;
}
