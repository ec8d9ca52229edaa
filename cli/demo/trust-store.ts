import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { assignFaults, FaultKind, parseFaultSpec, FaultSpecError, type Fault } from '../../device-sim/faults.js';
import { FileTrustStore } from '../../device-sim/trust-store.js';
import { startLocalAws, type LocalAws } from '../../local/runtime.js';
import type { Settings } from '../../wiring/index.js';
import { trustPush } from '../trust/push.js';
import { trustStatus, type TrustStatusReport } from '../trust/status.js';
import { Fleet } from '../../device-sim/fleet.js';
import { connectFleet, mqttEndpoint, provisionDevices, type DemoDevice, type DemoFleet } from './phases/provision.js';
import { DemoError, until } from './phases/waiting.js';
import { MAX_DEVICES, thingNames, type DemoIo } from './run-demo.js';
import { DemoScenario } from './scenario.js';

/**
 * `rotor demo --scenario trust-store` (issue 11 part 3, docs/protocol.md v1.2): the broker's
 * server CA changes, served cross-signed by the old one (C5); the new CA is pushed to every
 * device through `rotor trust push`'s paced path; devices that take it verify the broker with it
 * and ack, devices with the `refuse-bundle` fault stay on the old bundle and are escalated once
 * each. Then the whole fleet reconnects from its stores: every device must verify the broker,
 * the updated ones with the new CA alone, the others through the cross-signed chain.
 */

export interface TrustStoreDemoOptions {
  devices: number;
  /** Device fault spec (device-sim/faults.ts grammar), e.g. `refuse-bundle=2`. */
  faults?: string;
  seed?: number;
  reportFile?: string;
  timeScale: number;
  /** Keep the runtime state and the devices' stores here (new or empty directory). */
  dataDir?: string;
  /** Give up waiting for the trust updates after this long. */
  timeoutSeconds?: number;
  /** Overrides of the wiring's settings (tests shorten the trust update's waits with them). */
  settings?: Partial<Settings>;
  signal?: AbortSignal;
}

export interface TrustStoreFigures {
  /** Devices whose trust record holds the pushed bundle as current (they acked over a connection it verified). */
  updated: number;
  /** Devices that answered trust_err (TRUST_<code>): still on the old bundle. */
  refused: number;
  /** Devices that did not answer (NO_ACK), or whose update had not ended by the deadline. */
  notUpdated: number;
  /** trust-update-failed messages on the escalation topic. */
  escalations: number;
  /** Refusal and no-answer reasons → devices. */
  reasons: Record<string, number>;
  serverCa: { old: string; new: string; crossSigned: boolean };
}

export interface TrustStoreDemoReport {
  scenario: typeof DemoScenario.TrustStore;
  devices: number;
  seed: number;
  faults: string;
  timeScale: number;
  bundleId: string;
  trustStore: TrustStoreFigures;
  /** After the updates, the fleet restarted from its stores: devices that verified the broker and connected. */
  reconnected: number;
  /** How long the push waited for the account's budgets. */
  pushPacedMs: number;
  /** Server CA switch → the last update settled. */
  wallMs: number;
  setupMs: number;
  /** Failed end checks (thing → what is wrong); empty on success. */
  checkFailures: { thingName: string; detail: string }[];
}

const ESCALATION_KIND = 'trust-update-failed';

function subjectOf(pem: string): string {
  return new X509Certificate(pem).subject.replace(/\n/g, ', ');
}

/** Bad input costs nothing: checked before anything starts. Cloud-side fault kinds are rotation faults. */
export function validateTrustStoreOptions(options: TrustStoreDemoOptions): { names: string[]; faults: Map<string, Fault> } {
  if (!Number.isInteger(options.devices) || options.devices < 1 || options.devices > MAX_DEVICES) {
    throw new DemoError(`--devices must be a whole number from 1 to ${MAX_DEVICES}, got ${options.devices}`);
  }
  if (options.dataDir && existsSync(options.dataDir) && readdirSync(options.dataDir).length > 0) {
    throw new DemoError(`--data-dir ${options.dataDir} is not empty: the demo provisions a new fleet, give it a new or empty directory`);
  }
  const names = thingNames(options.devices);
  let entries;
  try {
    entries = parseFaultSpec(options.faults ?? '');
  } catch (error) {
    if (error instanceof FaultSpecError) throw new DemoError(`--faults: ${error.message}`);
    throw error;
  }
  return { names, faults: assignFaults(entries, names, options.seed ?? 1) };
}

async function settle(read: () => Promise<TrustStatusReport>, deadline: number, signal?: AbortSignal): Promise<TrustStatusReport> {
  for (;;) {
    const report = await read();
    if ((report.counts.pending === 0 && report.counts.neverAsked === 0) || Date.now() > deadline || signal?.aborted) return report;
    await new Promise((resolveWait) => setTimeout(resolveWait, 250));
  }
}

export async function runTrustStoreDemo(options: TrustStoreDemoOptions, io: DemoIo): Promise<TrustStoreDemoReport> {
  const { names, faults } = validateTrustStoreOptions(options);
  const setupStarted = Date.now();
  const ownDir = !options.dataDir;
  const workDir = options.dataDir ? resolve(options.dataDir) : mkdtempSync(join(tmpdir(), 'rotor-demo-trust-'));
  mkdirSync(workDir, { recursive: true });
  let aws: LocalAws | undefined;
  let fleet: DemoFleet | undefined;
  let clients: { ddb: DynamoDBDocumentClient; sfn: SFNClient; iot: IoTClient } | undefined;
  try {
    aws = await startLocalAws({ port: 0, mqttPort: 0, ...(options.dataDir ? { dataDir: join(workDir, 'aws') } : {}), timeScale: options.timeScale, settings: options.settings });
    const runtime = aws;
    const config = { endpoint: runtime.endpoints.awsEndpoint, region: runtime.endpoints.region, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } };
    clients = { ddb: DynamoDBDocumentClient.from(new DynamoDBClient(config)), sfn: new SFNClient(config), iot: new IoTClient(config) };
    io.out(`local AWS up at ${runtime.endpoints.awsEndpoint}, MQTT ${runtime.endpoints.mqtt.host}:${runtime.endpoints.mqtt.port}; provisioning ${names.length} devices`);
    // Far from expiry: this scenario changes the server side only, no certificate rotates.
    const devices = await provisionDevices(runtime, { names, faults, workDir, expiresInDays: 365 });
    fleet = await connectFleet(runtime, devices, { threads: 0, signal: options.signal });
    const oldCaPem = runtime.iot.broker.caPem;
    io.out(`${names.length} devices connected, verifying the broker with ${subjectOf(oldCaPem)}${faults.size ? `; ${faults.size} with faults` : ''}`);
    const setupMs = Date.now() - setupStarted;

    const started = Date.now();
    const rotation = await runtime.iot.rotateServerCa();
    io.out(`server CA switched to ${subjectOf(rotation.caPem)}${rotation.crossCertificatePem ? ', served cross-signed by the old one' : ` (not cross-signed: ${rotation.notCrossSigned})`}`);
    const bundleFile = join(workDir, 'server-ca.pem');
    writeFileSync(bundleFile, rotation.caPem);
    const push = await trustPush(
      { bundleFile, all: true, pushId: 'demo-trust-store' },
      { sfn: clients.sfn, iot: clients.iot, trustStateMachineArn: runtime.endpoints.trustStateMachineArn as string, now: () => new Date(), sleep: (ms) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms)) },
    );
    io.out(`pushed the new CA to ${push.started.length} devices (paced ${(push.pacedMs / 1000).toFixed(1)} s); waiting for their answers`);
    const timeoutMs = (options.timeoutSeconds ?? 60 + names.length * 0.5) * 1000;
    const { ddb, iot } = clients;
    const status = await settle(() => trustStatus({ ddb, iot, tableName: runtime.endpoints.tableName }, { all: true, bundleId: push.bundleId }), Date.now() + timeoutMs, options.signal);
    const wallMs = Date.now() - started;

    // The whole fleet reconnects from its own stores, trusting what each store says (the factory CA when none).
    await fleet.stop();
    fleet = undefined;
    const reconnected = await reconnect(runtime, devices, (started) => (fleet = started), options.signal);

    const report = await collect({ runtime, devices, status, push, rotation: { oldCaPem, newCaPem: rotation.caPem, crossSigned: rotation.crossCertificatePem !== undefined }, reconnected });
    const full: TrustStoreDemoReport = { scenario: DemoScenario.TrustStore, devices: devices.length, seed: options.seed ?? 1, faults: options.faults ?? '', timeScale: options.timeScale, bundleId: push.bundleId, ...report, pushPacedMs: push.pacedMs, wallMs, setupMs };
    if (options.reportFile) {
      mkdirSync(dirname(resolve(options.reportFile)), { recursive: true });
      writeFileSync(options.reportFile, `${JSON.stringify(full, null, 2)}\n`);
    }
    return full;
  } finally {
    await fleet?.stop();
    clients?.sfn.destroy();
    clients?.iot.destroy();
    clients?.ddb.destroy();
    await aws?.stop();
    if (ownDir) rmSync(workDir, { recursive: true, force: true });
  }
}

/** Restarts the fleet from its stores and counts the devices that verify the broker and connect (bounded wait). */
async function reconnect(runtime: LocalAws, devices: readonly DemoDevice[], keep: (fleet: Fleet) => void, signal?: AbortSignal): Promise<number> {
  const fleet = new Fleet({
    endpoint: mqttEndpoint(runtime),
    devices: devices.map((d) => ({ thingName: d.thingName, stateDir: d.stateDir, ...(d.fault ? { fault: d.fault } : {}) })),
  });
  keep(fleet);
  await fleet.start();
  const connected = (): number => fleet.agents.filter((a) => a.snapshot.connection.status === 'connected').length;
  await until(() => connected() === devices.length, Date.now() + 30_000 + devices.length * 50, 'the fleet to reconnect', signal).catch(() => undefined);
  return connected();
}

/** The figures and the end checks: each device's trust record, its own trust store, its escalations, its reconnection. */
async function collect(input: {
  runtime: LocalAws;
  devices: readonly DemoDevice[];
  status: TrustStatusReport;
  push: { bundleId: string };
  rotation: { oldCaPem: string; newCaPem: string; crossSigned: boolean };
  reconnected: number;
}): Promise<Pick<TrustStoreDemoReport, 'trustStore' | 'reconnected' | 'checkFailures'>> {
  const { runtime, devices, status, push } = input;
  const escalated = new Map<string, number>();
  for (const message of runtime.sns.messages(runtime.endpoints.topics.escalation)) {
    const body = JSON.parse(message.message) as { kind?: string; thingName?: string };
    if (body.kind === ESCALATION_KIND && body.thingName) escalated.set(body.thingName, (escalated.get(body.thingName) ?? 0) + 1);
  }
  const reasons: Record<string, number> = {};
  const checkFailures: { thingName: string; detail: string }[] = [];
  const rows = new Map(status.devices.map((row) => [row.thingName, row]));
  for (const device of devices) {
    const row = rows.get(device.thingName);
    if (row?.reason) reasons[row.reason] = (reasons[row.reason] ?? 0) + 1;
    const refuses = device.fault?.kind === FaultKind.RefuseBundle;
    const stored = (await new FileTrustStore(device.stateDir).load()).current?.bundleId;
    const escalations = escalated.get(device.thingName) ?? 0;
    if (refuses) {
      if (row?.state !== 'refused') checkFailures.push({ thingName: device.thingName, detail: `refuse-bundle device is ${row?.state ?? 'unknown'}, expected refused` });
      if (stored !== undefined) checkFailures.push({ thingName: device.thingName, detail: 'refuse-bundle device stored a bundle' });
      if (escalations !== 1) checkFailures.push({ thingName: device.thingName, detail: `${escalations} escalations, expected 1` });
    } else if (row?.state === 'updated') {
      if (stored !== push.bundleId) checkFailures.push({ thingName: device.thingName, detail: `recorded updated, but its trust store holds ${stored ?? 'no bundle'}` });
      if (escalations !== 0) checkFailures.push({ thingName: device.thingName, detail: `updated, yet ${escalations} escalations` });
    } else if (!device.fault) {
      checkFailures.push({ thingName: device.thingName, detail: `a device without faults is ${row?.state ?? 'unknown'}${row?.reason ? ` (${row.reason})` : ''}` });
    }
  }
  if (input.reconnected !== devices.length) checkFailures.push({ thingName: '(fleet)', detail: `${input.reconnected} of ${devices.length} devices verified the broker and reconnected` });
  const c = status.counts;
  return {
    trustStore: {
      updated: c.updated,
      refused: c.refused,
      notUpdated: c.notUpdated + c.pending + c.neverAsked + c.onOtherBundle,
      escalations: [...escalated.values()].reduce((a, b) => a + b, 0),
      reasons,
      serverCa: { old: subjectOf(input.rotation.oldCaPem), new: subjectOf(input.rotation.newCaPem), crossSigned: input.rotation.crossSigned },
    },
    reconnected: input.reconnected,
    checkFailures,
  };
}

export function formatTrustStoreSummary(report: TrustStoreDemoReport): string[] {
  const t = report.trustStore;
  // A refusal's reason is TRUST_<code>; the others (NO_ACK, INTERNAL_ERROR) are devices not updated.
  const reasonsWhere = (refusal: boolean): string =>
    Object.entries(t.reasons).filter(([reason]) => reason.startsWith('TRUST_') === refusal).sort(([a], [b]) => a.localeCompare(b)).map(([reason, n]) => `${reason} ${n}`).join(', ');
  const refusals = reasonsWhere(true);
  const silences = reasonsWhere(false);
  const lines = [
    '',
    `Rotor demo, scenario trust-store: ${report.devices} devices${report.faults ? `, faults ${report.faults} (seed ${report.seed})` : ', no faults'}, time scale ${report.timeScale}`,
    `  server CA              ${t.serverCa.old} → ${t.serverCa.new}${t.serverCa.crossSigned ? ' (served cross-signed by the old one)' : ' (not cross-signed)'}`,
    `  bundle                 ${report.bundleId}`,
    `  updated                ${t.updated}`,
    `  refused                ${t.refused}${refusals ? `  (${refusals})` : ''}`,
    `  not updated            ${t.notUpdated}${silences ? `  (${silences})` : ''}`,
    `  escalations sent       ${t.escalations}`,
    `  reconnected            ${report.reconnected} of ${report.devices} (fleet restarted from its stores: new CA, or the old one through the cross-signed chain)`,
    `  wall time              ${(report.wallMs / 1000).toFixed(1)} s switch → settled (push paced ${(report.pushPacedMs / 1000).toFixed(1)} s; + ${(report.setupMs / 1000).toFixed(1)} s setup)`,
  ];
  if (t.refused + t.notUpdated > 0) lines.push(`  old server CA          still needed by ${t.refused + t.notUpdated} device(s): keep the cross-signed chain (rotor local server-ca retire-old only once all updated)`);
  else lines.push('  old server CA          no device needs it: rotor local server-ca retire-old');
  lines.push(report.checkFailures.length === 0 ? '  checks                 all passed' : `  checks                 ${report.checkFailures.length} FAILED`);
  for (const failure of report.checkFailures.slice(0, 20)) lines.push(`    ${failure.thingName}: ${failure.detail}`);
  return lines;
}
