import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { assignFaults, parseFaultSpec, type Fault } from '../../device-sim/faults.js';
import { QuotasFileError } from '../../domain/pacing/index.js';
import { loadLocalQuotas, type LocalQuotas } from '../../local/edge/quotas.js';
import { startLocalAws, type LocalAws } from '../../local/runtime.js';
import type { Settings } from '../../wiring/index.js';
import { armCloudFaults, planCloudFaults, Revoker, splitFaultSpec, type CloudFaultPlan } from './cloud-faults.js';
import { CheckName, type CheckFailure } from './fleet-checks.js';
import type { DemoReport } from './figures.js';
import { mountConsole, type LocalConsole } from '../console/index.js';
import { InvariantWatcher } from './invariant-watch.js';
import { awaitExecutions } from './phases/await-executions.js';
import { startAudit } from './phases/audit.js';
import { checkOutcome, escalationsByThing } from './phases/check-outcome.js';
import { readCounters, readTraces, rotationFigures, takeBaseline, throttlingFigures } from './phases/collect-figures.js';
import { connectFleet, provisionDevices, type DemoFleet } from './phases/provision.js';
import { DemoError, until } from './phases/waiting.js';
import { ensureOpenFiles } from './open-files.js';
import { FleetIsolation } from '../../device-sim/fleet-thread.js';
import { signerFigures } from './signer.js';
import { caRolloverScenario, caRolloverSigner } from './ca-rollover.js';
import { DEFAULT_TIME_SCALE, DemoScenario } from './scenario.js';
import type { LocalSignerOptions } from '../../local/pca/index.js';

/**
 * `rotor demo`: the whole system on one machine. Starts the local AWS with Rotor deployed,
 * provisions a fleet whose certificates expire soon, connects the simulated devices (with
 * faults), runs the Device Defender audit and lets Rotor rotate, watching PROTOCOL.md cloud
 * rule 7 all along; then checks the outcome against the registry and the devices' key stores.
 */
export interface DemoOptions {
  devices: number;
  /** Fault spec (device-sim/faults.ts grammar); empty for a well-behaved fleet. */
  faults?: string;
  seed?: number;
  reportFile?: string;
  /** Workflow time scale: 0.01 makes the 900 s ack timeout last 9 s. */
  timeScale?: number;
  /** Keep everything here (runtime state under aws/, key stores under devices/); must be new or empty. */
  dataDir?: string;
  /** Give up waiting for the rotations after this long; derived from the settings when absent. */
  timeoutSeconds?: number;
  /** The provisioned certificates expire this many days from now (the audit's expiring check flags them). */
  expiresInDays?: number;
  /** Overrides of the wiring's settings (tests shorten the workflow's timeouts with them). */
  settings?: Partial<Settings>;
  /**
   * `aws-default` or a quotas file: the local runtime enforces them as the account's quotas
   * (local/edge/quotas.ts), scaled by the time scale. Absent: nothing is throttled.
   */
  quotas?: string;
  /** false: Rotor's functions are not told the quotas file (they pace to AWS's defaults); see LocalAwsOptions. */
  pacingFromQuotas?: boolean;
  /** Who signs the new certificates (`--signer`, `--pca-validity-days`); aws-iot when absent. */
  signer?: LocalSignerOptions;
  /** Worker threads per Lambda function in the local runtime. */
  functionConcurrency?: number;
  /** Pause between two slices of the invariant watcher's background sweep. */
  watchIntervalMs?: number;
  /**
   * Run the simulated devices on this many worker threads instead of the main thread (0, the
   * default: in-process). The bench uses it so the main thread runs only the local AWS.
   */
  fleetThreads?: number;
  /**
   * With fleetThreads > 0: run the devices' shares in forked child processes instead of worker
   * threads. Each holds its devices' sockets under its own open-file limit and its heap outside
   * this process's RSS (the bench reports it separately).
   */
  fleetProcess?: boolean;
  /** Stops the run early (Ctrl-C); everything started is still stopped. */
  signal?: AbortSignal;
  /** `rotation` (default): the audit starts the rotations; `ca-rollover`: a CA rollover moves the fleet from CA-1 to CA-2 (cli/demo/ca-rollover.ts). */
  scenario?: DemoScenario;
  /** Called with the report while the runtime, the console and the fleet are still up (`--keep` waits here). */
  beforeStop?: (report: DemoReport, consoleUrl: string) => Promise<void>;
}

export interface DemoIo {
  out(line: string): void;
  /** Where the live progress bar goes when `tty`. */
  progressStream: NodeJS.WritableStream;
  tty: boolean;
}

export { DemoError } from './phases/waiting.js';

export const DEFAULT_EXPIRES_IN_DAYS = 10;
export const MAX_DEVICES = 10_000;
const THING_PREFIX = 'demo-';

export function thingNames(count: number): string[] {
  const width = Math.max(4, String(count).length);
  return Array.from({ length: count }, (_, i) => `${THING_PREFIX}${String(i + 1).padStart(width, '0')}`);
}


/** Checks everything the user typed before anything starts, so bad input costs nothing. */
export function validateDemoOptions(options: DemoOptions): { faults: Map<string, Fault>; names: string[]; cloud: CloudFaultPlan; quotas?: LocalQuotas } {
  if (!Number.isInteger(options.devices) || options.devices < 1 || options.devices > MAX_DEVICES) {
    throw new DemoError(`--devices must be a whole number from 1 to ${MAX_DEVICES}, got ${options.devices}`);
  }
  const scale = options.timeScale ?? DEFAULT_TIME_SCALE;
  if (!Number.isFinite(scale) || scale <= 0 || scale > 1) throw new DemoError(`--time-scale must be above 0 and at most 1, got ${scale}`);
  if (options.fleetThreads !== undefined && (!Number.isInteger(options.fleetThreads) || options.fleetThreads < 0 || options.fleetThreads > 16)) {
    throw new DemoError(`fleet threads must be a whole number from 0 to 16, got ${options.fleetThreads}`);
  }
  if (options.seed !== undefined && (!Number.isInteger(options.seed) || options.seed < 0)) throw new DemoError(`--seed must be a whole number ≥ 0, got ${options.seed}`);
  if (options.dataDir && existsSync(options.dataDir) && readdirSync(options.dataDir).length > 0) {
    throw new DemoError(`--data-dir ${options.dataDir} is not empty: the demo provisions a new fleet, give it a new or empty directory`);
  }
  if (options.reportFile && existsSync(options.reportFile) && !existsSync(dirname(resolve(options.reportFile)))) {
    throw new DemoError(`--report ${options.reportFile}: its directory does not exist`);
  }
  if (options.scenario === DemoScenario.CaRollover) caRolloverSigner(options.signer);
  const names = thingNames(options.devices);
  // Cloud-side kinds (revoke-old, shared-cert, lambda-crash) are split off; the devices' own go to the simulator.
  const split = splitFaultSpec(options.faults ?? '');
  const faults = assignFaults(parseFaultSpec(split.deviceSpec), names, options.seed ?? 1);
  const cloud = planCloudFaults(split, names, faults, options.seed ?? 1);
  let quotas: LocalQuotas | undefined;
  try {
    quotas = options.quotas === undefined ? undefined : loadLocalQuotas(options.quotas);
  } catch (error) {
    if (error instanceof QuotasFileError) throw new DemoError(error.message);
    throw error;
  }
  return { faults, names, cloud, ...(quotas ? { quotas } : {}) };
}

/** The longest a rotation can take in workflow seconds: every csr_req retry, then the ack wait. */
export function worstCaseWorkflowSeconds(settings: Settings): number {
  const csrTimeout = Number(settings.csrTimeoutSeconds);
  const retries = Number(settings.csrRequestRetries);
  const interval = Number(settings.csrRetryIntervalSeconds);
  let total = csrTimeout * (retries + 1) + Number(settings.ackTimeoutSeconds);
  for (let i = 0; i < retries; i++) total += interval * 2 ** i;
  return total;
}




/**
 * The demo as a sequence of named phases (cli/demo/phases/): start the local AWS, provision and
 * connect the fleet, start the audit, await the executions, collect the figures, check the fleet.
 */
export async function runDemo(options: DemoOptions, io: DemoIo): Promise<DemoReport> {
  const { faults, names, cloud, quotas } = validateDemoOptions(options);
  const openFiles = ensureOpenFiles(names.length, Boolean(options.fleetProcess && (options.fleetThreads ?? 0) > 0));
  if (openFiles) throw new DemoError(openFiles);
  const timeScale = options.timeScale ?? DEFAULT_TIME_SCALE;
  const setupStarted = Date.now();
  const ownDir = !options.dataDir;
  const workDir = options.dataDir ? resolve(options.dataDir) : mkdtempSync(join(tmpdir(), 'rotor-demo-'));
  mkdirSync(workDir, { recursive: true });
  let aws: LocalAws | undefined;
  let web: LocalConsole | undefined;
  let fleet: DemoFleet | undefined;
  let watcher: InvariantWatcher | undefined;
  let revoker: Revoker | undefined;
  try {
    const signerOptions = options.scenario === DemoScenario.CaRollover ? caRolloverSigner(options.signer) : options.signer;
    // The runtime keeps its state in memory unless asked to persist it: the registry rewrites
    // its whole JSON file on every change, which dominates a large run (see docs/demo.md).
    aws = await startLocalAws({
      port: 0,
      mqttPort: 0,
      ...(options.dataDir ? { dataDir: join(workDir, 'aws') } : {}),
      timeScale,
      settings: options.settings,
      functionConcurrency: options.functionConcurrency,
      console: true,
      ...(quotas ? { quotas, pacingFromQuotas: options.pacingFromQuotas } : {}),
      ...(signerOptions ? { signer: signerOptions } : {}),
    });
    const runtime = aws;
    web = mountConsole(runtime);
    io.out(`local AWS up at ${runtime.endpoints.awsEndpoint}, MQTT ${runtime.endpoints.mqtt.host}:${runtime.endpoints.mqtt.port}; provisioning ${names.length} devices`);
    io.out(`console: ${web.url}`);
    if (quotas) io.out(`quotas: ${quotas.source}, enforced as the account's (rates ÷ time scale ${timeScale})`);

    const rollover = options.scenario === DemoScenario.CaRollover ? await caRolloverScenario(runtime) : undefined;
    const provisionInput = { names, faults, cloud, workDir, expiresInDays: options.expiresInDays ?? DEFAULT_EXPIRES_IN_DAYS };
    const devices = rollover ? await rollover.provision(provisionInput) : await provisionDevices(runtime, provisionInput);
    const certificateOf = (thingName: string): string => devices.find((d) => d.thingName === thingName)?.certificateId ?? '';
    armCloudFaults(cloud, runtime.iot.registry, runtime.edge.faults, certificateOf);
    // Made before the fleet boots, so it hears what every key store holds from its first load on.
    const watching = new InvariantWatcher({ registry: runtime.iot.registry, devices, intervalMs: options.watchIntervalMs });
    const connected = await connectFleet(runtime, devices, {
      threads: options.fleetThreads ?? 0,
      ...(options.fleetProcess ? { isolation: FleetIsolation.Process } : {}),
      signal: options.signal,
      // The watcher learns each device's keys from its key store's own reports, not by reading the stores.
      onHeldKeys: (thingName, spkis) => watching.heldKeys(thingName, spkis),
    });
    fleet = connected;
    io.out(`${names.length} devices connected over mutual TLS${faults.size ? `, ${faults.size} with faults` : ''}; ${rollover ? `rolling the fleet over from CA-1 ${rollover.ca1.caCertificateId} to CA-2 ${rollover.ca2.caCertificateId}` : 'running the Device Defender audit'}`);

    watcher = watching;
    watching.start();
    // A device dropping a key is the other half of what can break the invariant.
    connected.on('keysRemoved', (thingName: string) => watching.keysRemoved(thingName));
    const setupMs = Date.now() - setupStarted;

    revoker = new Revoker(cloud, runtime.iot.registry, certificateOf, (thingName) => watching.cutOff(thingName));
    revoker.start();
    const baseline = takeBaseline(runtime);
    const started = rollover ? await rollover.start(devices) : undefined;
    const audit = started ?? (await startAudit(runtime, devices));
    // Bounded: the slowest legal rotation, scaled, plus room for the fleet's size.
    const settings = runtime.deployment.settings;
    const timeoutMs = (options.timeoutSeconds ?? 60 + worstCaseWorkflowSeconds(settings) * timeScale * 1.5 + names.length * 0.2) * 1000;
    const awaited = await awaitExecutions(runtime, { executionArns: audit.executionArns, auditStartedAt: audit.startedAt, deadline: audit.startedAt + timeoutMs, signal: options.signal }, io);
    const rolledOver = rollover && started ? await rollover.finish(started, audit.startedAt + timeoutMs + 60_000, options.signal) : {};

    revoker.stop();
    // The last devices delete their old keys after crt_done, as their executions end: let those
    // removals reach the watcher (bounded: a device a fault left holding two keys must not hang the demo).
    await until(() => watching.settled(), Date.now() + 5_000, 'the devices to finish their key store writes', options.signal).catch((error: unknown) => {
      if (options.signal?.aborted) throw error;
    });
    await watching.stop();
    await watching.sample('final');
    const counters = readCounters(runtime, baseline);
    const escalations = escalationsByThing(runtime);
    const traces = await readTraces(runtime, [...awaited.executions.keys()].map((thing) => audit.executionArns.get(thing) as string));
    const figures = rotationFigures({ devices, executionArns: audit.executionArns, executions: awaited.executions, traces, counters, auditStartedAt: audit.startedAt });
    const throttling = throttlingFigures(runtime, baseline, awaited.executions);
    const signer = await signerFigures(runtime, Object.entries(figures.outcomes).flatMap(([thing, o]) => (o.outcome === 'rotated' ? [thing] : [])));

    // The end checks probe with the devices' client ids: the devices must be gone first.
    await connected.stop();
    fleet = undefined;
    const failures = await checkOutcome(runtime, { devices, outcomes: figures.outcomes, escalations: escalations.byThing, cutOff: new Set(revoker.revoked) });
    const violations: CheckFailure[] = [
      ...watching.violations.map((v) => ({ check: CheckName.Invariant, thingName: v.thingName, at: v.at, detail: v.detail, trigger: v.trigger })),
      ...failures,
    ];

    const report: DemoReport = {
      devices: devices.length,
      seed: options.seed ?? 1,
      faults: options.faults ?? '',
      timeScale,
      ...figures,
      escalations: escalations.total,
      ...throttling,
      ...signer,
      ...rolledOver,
      invariantViolations: violations,
      cloudFaults: {
        revokeOld: cloud.revokeOld.size,
        cutOffOnPurpose: revoker.revoked.length,
        sharedCert: cloud.sharedCert.size,
        lambdaCrashes: cloud.crashes.reduce((n, c) => n + c.times, 0),
        lambdaCrashesFired: Object.values(runtime.edge.faults.crashed()).reduce((a, b) => a + b, 0),
      },
      wallMs: awaited.wallMs,
      setupMs,
      invariantSamples: watching.stats.samples,
      invariantChecks: {
        deviceChecks: watching.stats.deviceChecks,
        retirementChecks: watching.stats.retirementChecks,
        keyRemovalChecks: watching.stats.keyRemovalChecks,
        diskChecks: watching.stats.diskChecks,
      },
    };
    if (options.reportFile) {
      mkdirSync(dirname(resolve(options.reportFile)), { recursive: true });
      writeFileSync(options.reportFile, `${JSON.stringify(report, null, 2)}\n`);
    }
    await options.beforeStop?.(report, web.url);
    return report;
  } finally {
    revoker?.stop();
    await watcher?.stop();
    await fleet?.stop();
    web?.stop();
    await aws?.stop();
    if (ownDir) rmSync(workDir, { recursive: true, force: true });
  }
}
