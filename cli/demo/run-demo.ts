import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient, StartOnDemandAuditTaskCommand } from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { auditExecutionName, CURRENT_SK, Step, thingPk } from '../../domain/index.js';
import { assignFaults, parseFaultSpec, type Fault } from '../../device-sim/faults.js';
import { Fleet } from '../../device-sim/fleet.js';
import { ThreadedFleet } from '../../device-sim/fleet-thread.js';
import { createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem } from '../../device-sim/keys.js';
import { DEVICE_POLICY_NAME, startLocalAws, type LocalAws } from '../../local/runtime.js';
import type { ExecutionDescription } from '../../local/stepfunctions/service.js';
import type { Settings } from '../../wiring/index.js';
import { checkFleet, CheckName, type CheckFailure, type CheckedDevice } from './fleet-checks.js';
import { mountConsole, type LocalConsole } from '../console/index.js';
import { mean, percentile, type DemoReport } from './figures.js';
import { InvariantWatcher } from './invariant-watch.js';
import { progressDisplay, type ProgressCounts } from './progress.js';

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
  /** Worker threads per Lambda function in the local runtime. */
  functionConcurrency?: number;
  /** Pause between two slices of the invariant watcher's background sweep. */
  watchIntervalMs?: number;
  /**
   * Run the simulated devices on this many worker threads instead of the main thread (0, the
   * default: in-process). The bench uses it so the main thread runs only the local AWS.
   */
  fleetThreads?: number;
  /** Stops the run early (Ctrl-C); everything started is still stopped. */
  signal?: AbortSignal;
  /** Called with the report while the runtime, the console and the fleet are still up (`--keep` waits here). */
  beforeStop?: (report: DemoReport, consoleUrl: string) => Promise<void>;
}

export interface DemoIo {
  out(line: string): void;
  /** Where the live progress bar goes when `tty`. */
  progressStream: NodeJS.WritableStream;
  tty: boolean;
}

export class DemoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DemoError';
  }
}

export const DEFAULT_TIME_SCALE = 0.01;
export const DEFAULT_EXPIRES_IN_DAYS = 10;
export const MAX_DEVICES = 10_000;
const THING_PREFIX = 'demo-';
const POLL_MS = 100;

export function thingNames(count: number): string[] {
  const width = Math.max(4, String(count).length);
  return Array.from({ length: count }, (_, i) => `${THING_PREFIX}${String(i + 1).padStart(width, '0')}`);
}

interface DemoDevice {
  thingName: string;
  stateDir: string;
  keyPem: string;
  certPem: string;
  certificateId: string;
  fault?: Fault;
  executionArn?: string;
  execution?: ExecutionDescription;
}

/** Checks everything the user typed before anything starts, so bad input costs nothing. */
export function validateDemoOptions(options: DemoOptions): { faults: Map<string, Fault>; names: string[] } {
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
  const names = thingNames(options.devices);
  const faults = assignFaults(parseFaultSpec(options.faults ?? ''), names, options.seed ?? 1);
  return { faults, names };
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

async function mapLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(limit, queue.length) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
    }),
  );
}

async function until(condition: () => boolean, deadline: number, what: string, signal?: AbortSignal): Promise<void> {
  while (!condition()) {
    if (signal?.aborted) throw new DemoError('stopped');
    if (Date.now() > deadline) throw new DemoError(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function callDelta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const d = value - (before[key] ?? 0);
    if (d > 0) delta[key] = d;
  }
  return delta;
}

export async function runDemo(options: DemoOptions, io: DemoIo): Promise<DemoReport> {
  const { faults, names } = validateDemoOptions(options);
  const timeScale = options.timeScale ?? DEFAULT_TIME_SCALE;
  const setupStarted = Date.now();
  const ownDir = !options.dataDir;
  const workDir = options.dataDir ? resolve(options.dataDir) : mkdtempSync(join(tmpdir(), 'rotor-demo-'));
  mkdirSync(workDir, { recursive: true });
  let aws: LocalAws | undefined;
  let web: LocalConsole | undefined;
  let fleet: Fleet | ThreadedFleet | undefined;
  let watcher: InvariantWatcher | undefined;
  let progress: ReturnType<typeof progressDisplay> | undefined;
  try {
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
    });
    const runtime = aws;
    web = mountConsole(runtime);
    io.out(`local AWS up at ${runtime.endpoints.awsEndpoint}, MQTT ${runtime.endpoints.mqtt.host}:${runtime.endpoints.mqtt.port}; provisioning ${names.length} devices`);
    io.out(`console: ${web.url}`);

    // Provisioning: the device's key is made here (as on a factory line); the local CA signs its CSR.
    const devices: DemoDevice[] = [];
    const expiresInDays = options.expiresInDays ?? DEFAULT_EXPIRES_IN_DAYS;
    await mapLimited(names, 8, async (thingName) => {
      const keyPem = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
      const csrPem = await createCsrPem(keyPem, thingName);
      const provisioned = await runtime.iot.registry.provisionDevice({ thingName, policyName: DEVICE_POLICY_NAME, csrPem, expiresInDays });
      devices.push({ thingName, stateDir: join(workDir, 'devices', thingName), keyPem, certPem: provisioned.certificatePem, certificateId: provisioned.certificateId, fault: faults.get(thingName) });
    });
    devices.sort((a, b) => a.thingName.localeCompare(b.thingName));

    const caPem = runtime.caPem;
    const mqtt = { host: runtime.endpoints.mqtt.host, port: runtime.endpoints.mqtt.port, caPem };
    const fleetDevices = devices.map((d) => ({ thingName: d.thingName, stateDir: d.stateDir, provisioned: { keyPem: d.keyPem, certPem: d.certPem }, ...(d.fault ? { fault: d.fault } : {}) }));
    const threads = options.fleetThreads ?? 0;
    const started = threads > 0 ? new ThreadedFleet({ endpoint: mqtt, devices: fleetDevices, threads }) : new Fleet({ endpoint: mqtt, devices: fleetDevices });
    fleet = started;
    await started.start();
    const allConnected =
      started instanceof ThreadedFleet ? () => started.connected === names.length : () => started.agents.every((a) => a.snapshot.connection.status === 'connected');
    // A csr_req published before a device's first subscription has no session to wait in.
    await until(allConnected, Date.now() + 30_000 + names.length * 50, 'the fleet to connect', options.signal);
    io.out(`${names.length} devices connected over mutual TLS${faults.size ? `, ${faults.size} with faults` : ''}; running the Device Defender audit`);

    watcher = new InvariantWatcher({ registry: runtime.iot.registry, devices, intervalMs: options.watchIntervalMs });
    watcher.start();
    const watching = watcher;
    // A device dropping a key is the other half of what can break the invariant.
    started.on('keysRemoved', (thingName: string) => watching.keysRemoved(thingName));
    const setupMs = Date.now() - setupStarted;

    const callsBefore = runtime.edge.calls();
    const invocationsBefore = runtime.lambda.invocations().length;
    const auditStarted = Date.now();
    const eluBefore = performance.eventLoopUtilization();
    const checks = String(runtime.deployment.settings.auditChecks).split(',').map((c) => c.trim()).filter(Boolean);
    const iot = new IoTClient({ endpoint: runtime.endpoints.awsEndpoint, region: runtime.endpoints.region, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } });
    let taskId: string;
    try {
      const started = await iot.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: checks }));
      if (!started.taskId) throw new DemoError('StartOnDemandAuditTask returned no task id');
      taskId = started.taskId;
    } finally {
      iot.destroy();
    }
    const executionPrefix = `${runtime.endpoints.stateMachineArn.replace(':stateMachine:', ':execution:')}:`;
    for (const device of devices) device.executionArn = executionPrefix + auditExecutionName(device.thingName, device.certificateId, taskId);

    // Wait for every execution to end, bounded: the slowest legal rotation, scaled, plus room for the fleet's size.
    const settings = runtime.deployment.settings;
    const timeoutMs = (options.timeoutSeconds ?? 60 + worstCaseWorkflowSeconds(settings) * timeScale * 1.5 + names.length * 0.2) * 1000;
    const deadline = auditStarted + timeoutMs;
    progress = progressDisplay({ tty: io.tty, stream: io.progressStream, out: io.out });
    const counts = (): ProgressCounts => {
      const c: ProgressCounts = { total: devices.length, notStarted: 0, inFlight: 0, rotated: 0, failed: 0 };
      for (const d of devices) {
        if (!d.execution) c.notStarted++;
        else if (d.execution.status === 'RUNNING') c.inFlight++;
        else if (d.execution.status === 'SUCCEEDED') c.rotated++;
        else c.failed++;
      }
      return c;
    };
    for (;;) {
      for (const device of devices) {
        // Not started yet (the audit notification is still being worked through), or started and awaited below.
        if (device.execution) continue;
        const arn = device.executionArn as string;
        const found = runtime.stepFunctions.findExecution(arn);
        if (!found) continue;
        device.execution = found;
        // Told when it ends, rather than asking a thousand executions ten times a second.
        if (found.status === 'RUNNING') {
          void runtime.stepFunctions.waitForExecution(arn).then(
            (ended) => {
              device.execution = ended;
            },
            () => undefined,
          );
        }
      }
      const c = counts();
      progress.update(c);
      if (c.notStarted === 0 && c.inFlight === 0) break;
      if (Date.now() > deadline || options.signal?.aborted) break;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    progress.stop();
    const ended = devices.filter((d) => d.execution && d.execution.status !== 'RUNNING');
    const lastStop = Math.max(auditStarted, ...ended.map((d) => d.execution?.stopDate?.getTime() ?? 0));
    const wallMs = (ended.length === devices.length ? lastStop : Date.now()) - auditStarted;

    const mainThreadBusy = performance.eventLoopUtilization(eluBefore).utilization;
    await watcher.stop();
    await watcher.sample('final');

    // Figures, before the checks make calls of their own.
    const calls = callDelta(runtime.edge.calls(), callsBefore);
    // The audit was started by the demo, not by a rotation.
    if (calls['iot:StartOnDemandAuditTask']) calls['iot:StartOnDemandAuditTask']--;
    const executions = devices.flatMap((d) => (d.execution ? [d] : []));
    const rotationCount = Math.max(1, executions.length);
    const totalCalls = Object.values(calls).reduce((a, b) => a + b, 0);
    const transitions = executions.map((d) => runtime.stepFunctions.stateTransitions(d.executionArn as string));
    const durations = ended.map((d) => (d.execution?.stopDate?.getTime() ?? 0) - (d.execution?.startDate.getTime() ?? 0));
    const startDelays = executions.map((d) => (d.execution?.startDate.getTime() ?? auditStarted) - auditStarted);
    const perState = new Map<string, number[]>();
    for (const d of executions) {
      for (const { name, ms } of runtime.stepFunctions.stateTimings(d.executionArn as string)) {
        const list = perState.get(name) ?? [];
        list.push(ms);
        perState.set(name, list);
      }
    }
    const stepMs = Object.fromEntries([...perState].map(([name, list]) => [name, { p50: percentile(list, 50), p95: percentile(list, 95), count: list.length }]));
    const byFunction = new Map<string, { run: number[]; queued: number[] }>();
    for (const log of runtime.lambda.invocations().slice(invocationsBefore)) {
      const entry = byFunction.get(log.functionName) ?? { run: [], queued: [] };
      entry.run.push(log.durationMs);
      entry.queued.push(log.queuedMs);
      byFunction.set(log.functionName, entry);
    }
    const lambda = Object.fromEntries(
      [...byFunction].map(([name, l]) => [
        name,
        { invocations: l.run.length, p50Ms: percentile(l.run, 50), p95Ms: percentile(l.run, 95), queuedP50Ms: percentile(l.queued, 50), queuedP95Ms: percentile(l.queued, 95) },
      ]),
    );
    const outcomeOf = (d: DemoDevice): CheckedDevice['outcome'] => {
      const status = d.execution?.status;
      if (!status || status === 'RUNNING') return 'unfinished';
      if (status !== 'SUCCEEDED') return 'failed';
      return runtime.stepFunctions.statesEntered(d.executionArn as string).includes(Step.Rotated) ? 'rotated' : 'unfinished';
    };
    const outcomes: DemoReport['outcomes'] = {};
    const failed: Record<string, number> = {};
    let rotated = 0;
    let unfinished = 0;
    const successTransitions: number[] = [];
    for (const d of devices) {
      const outcome = outcomeOf(d);
      const reason = outcome === 'failed' ? (d.execution?.error ?? 'UNKNOWN') : undefined;
      outcomes[d.thingName] = { outcome, ...(reason ? { reason } : {}), ...(d.fault ? { fault: d.fault.kind } : {}) };
      if (outcome === 'rotated') {
        rotated++;
        successTransitions.push(runtime.stepFunctions.stateTransitions(d.executionArn as string));
      } else if (outcome === 'failed') failed[reason as string] = (failed[reason as string] ?? 0) + 1;
      else unfinished++;
    }
    const escalationMessages = runtime.sns.messages(runtime.endpoints.topics.escalation);
    const escalations = new Map<string, number>();
    for (const message of escalationMessages) {
      let thing = '(unreadable message)';
      try {
        thing = String((JSON.parse(message.message) as { thingName?: unknown }).thingName);
      } catch {
        // Counted under a name no device has, so the per-device check still sees it missing.
      }
      escalations.set(thing, (escalations.get(thing) ?? 0) + 1);
    }

    // The end checks probe with the devices' client ids: the devices must be gone first.
    await fleet.stop();
    fleet = undefined;
    const db = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: runtime.endpoints.awsEndpoint, region: runtime.endpoints.region, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } }));
    let failures: CheckFailure[];
    try {
      failures = await checkFleet({
        registry: runtime.iot.registry,
        devices: devices.map((d) => ({ thingName: d.thingName, stateDir: d.stateDir, provisioned: { keyPem: d.keyPem, certPem: d.certPem, certificateId: d.certificateId }, outcome: outcomes[d.thingName].outcome })),
        mqtt,
        currentRecord: async (thingName) => {
          const { Item } = await db.send(new GetCommand({ TableName: runtime.endpoints.tableName, Key: { pk: thingPk(thingName), sk: CURRENT_SK } }));
          return Item as { status?: string; reason?: string } | undefined;
        },
        escalations,
        retireMode: String(settings.retireMode),
      });
    } finally {
      db.destroy();
    }
    const violations: CheckFailure[] = [...watcher.violations.map((v) => ({ check: CheckName.Invariant, thingName: v.thingName, at: v.at, detail: v.detail, trigger: v.trigger })), ...failures];

    const report: DemoReport = {
      devices: devices.length,
      seed: options.seed ?? 1,
      faults: options.faults ?? '',
      timeScale,
      rotated,
      failed,
      unfinished,
      escalations: escalationMessages.length,
      invariantViolations: violations,
      wallMs,
      setupMs,
      startDelayP50Ms: percentile(startDelays, 50),
      startDelayP95Ms: percentile(startDelays, 95),
      stepMs,
      p50Ms: percentile(durations, 50),
      p95Ms: percentile(durations, 95),
      maxMs: durations.length ? Math.max(...durations) : 0,
      stateTransitionsPerRotation: mean(transitions),
      stateTransitionsPerSuccessfulRotation: mean(successTransitions),
      apiCallsPerRotation: totalCalls / rotationCount,
      apiCallsByOperation: Object.fromEntries(Object.entries(calls).map(([op, n]) => [op, n / rotationCount])),
      lambda,
      mainThreadBusy,
      lambdaInvocationsPerRotation: (runtime.lambda.invocations().length - invocationsBefore) / rotationCount,
      invariantSamples: watcher.stats.samples,
      invariantChecks: { deviceChecks: watcher.stats.deviceChecks, retirementChecks: watcher.stats.retirementChecks, keyRemovalChecks: watcher.stats.keyRemovalChecks },
      executions: executions.map((d) => ({
        startMs: (d.execution?.startDate.getTime() ?? auditStarted) - auditStarted,
        ...(d.execution?.stopDate ? { stopMs: d.execution.stopDate.getTime() - auditStarted } : {}),
        status: d.execution?.status ?? 'UNKNOWN',
      })),
      outcomes,
    };
    if (options.reportFile) {
      mkdirSync(dirname(resolve(options.reportFile)), { recursive: true });
      writeFileSync(options.reportFile, `${JSON.stringify(report, null, 2)}\n`);
    }
    await options.beforeStop?.(report, web.url);
    return report;
  } finally {
    progress?.stop();
    await watcher?.stop();
    await fleet?.stop();
    web?.stop();
    await aws?.stop();
    if (ownDir) rmSync(workDir, { recursive: true, force: true });
  }
}
