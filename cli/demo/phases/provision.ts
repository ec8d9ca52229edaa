import { join } from 'node:path';
import type { Fault } from '../../../device-sim/faults.js';
import { CloudFaultKind, type CloudFaultPlan } from '../cloud-faults.js';
import { Fleet } from '../../../device-sim/fleet.js';
import { ThreadedFleet, type FleetIsolation } from '../../../device-sim/fleet-thread.js';
import { createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem } from '../../../device-sim/keys.js';
import { DEVICE_POLICY_NAME, type LocalAws } from '../../../local/runtime.js';
import { mapLimited, until } from './waiting.js';

/** One device of the demo's fleet: what the factory line made, and the fault it was given. */
export interface DemoDevice {
  thingName: string;
  stateDir: string;
  keyPem: string;
  certPem: string;
  certificateId: string;
  fault?: Fault;
  /** A cloud-side fault this device suffers (cli/demo/cloud-faults.ts). */
  cloudFault?: CloudFaultKind;
}

export interface ProvisionInput {
  names: readonly string[];
  faults: ReadonlyMap<string, Fault>;
  cloud?: CloudFaultPlan;
  workDir: string;
  /** The provisioned certificates expire this many days from now (the audit's expiring check flags them). */
  expiresInDays: number;
}

/**
 * Phase 1a: the factory line. Each device's key is made here and the local CA signs its CSR,
 * so the fleet starts with certificates the audit will flag.
 */
export async function provisionDevices(runtime: LocalAws, input: ProvisionInput): Promise<DemoDevice[]> {
  const devices: DemoDevice[] = [];
  await mapLimited(input.names, 8, async (thingName) => {
    const keyPem = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
    const csrPem = await createCsrPem(keyPem, thingName);
    const provisioned = await runtime.iot.registry.provisionDevice({ thingName, policyName: DEVICE_POLICY_NAME, csrPem, expiresInDays: input.expiresInDays });
    const fault = input.faults.get(thingName);
    const cloudFault = input.cloud?.revokeOld.has(thingName) ? CloudFaultKind.RevokeOld : input.cloud?.sharedCert.has(thingName) ? CloudFaultKind.SharedCert : undefined;
    devices.push({
      thingName,
      stateDir: join(input.workDir, 'devices', thingName),
      keyPem,
      certPem: provisioned.certificatePem,
      certificateId: provisioned.certificateId,
      ...(fault ? { fault } : {}),
      ...(cloudFault ? { cloudFault } : {}),
    });
  });
  return devices.sort((a, b) => a.thingName.localeCompare(b.thingName));
}

export type DemoFleet = Fleet | ThreadedFleet;

/** Log entries each demo device keeps in memory. */
export const DEMO_DEVICE_LOG_CAPACITY = 20;

export interface MqttEndpoint {
  host: string;
  port: number;
  caPem: string;
}

export function mqttEndpoint(runtime: LocalAws): MqttEndpoint {
  return { host: runtime.endpoints.mqtt.host, port: runtime.endpoints.mqtt.port, caPem: runtime.caPem };
}

/**
 * Phase 1b: the simulated devices connect over mutual TLS and subscribe. The audit waits for
 * all of them: a csr_req published before a device's first subscription has no session to wait in.
 */
export async function connectFleet(
  runtime: LocalAws,
  devices: readonly DemoDevice[],
  options: {
    threads: number;
    /** With threads > 0: worker threads (default) or child processes (device-sim/fleet-thread.ts). */
    isolation?: FleetIsolation;
    signal?: AbortSignal;
    /** Told which keys a device's store holds, from its first boot on, after every change (Fleet's 'heldKeys'). */
    onHeldKeys?: (thingName: string, spkis: readonly string[]) => void;
  },
): Promise<DemoFleet> {
  const endpoint = mqttEndpoint(runtime);
  const fleetDevices = devices.map((d) => ({
    thingName: d.thingName,
    stateDir: d.stateDir,
    provisioned: { keyPem: d.keyPem, certPem: d.certPem },
    ...(d.fault ? { fault: d.fault } : {}),
  }));
  // Nothing in the demo reads a device's own log (the checks read key stores and the registry):
  // each keeps its last few entries, not the agent's default 500, which at 10,000 devices is ~50 MiB.
  const logCapacity = DEMO_DEVICE_LOG_CAPACITY;
  const reportHeldKeys = options.onHeldKeys !== undefined;
  const fleet: DemoFleet =
    options.threads > 0
      ? new ThreadedFleet({ endpoint, devices: fleetDevices, threads: options.threads, logCapacity, reportHeldKeys, ...(options.isolation ? { isolation: options.isolation } : {}) })
      : new Fleet({ endpoint, devices: fleetDevices, logCapacity, reportHeldKeys });
  const onHeldKeys = options.onHeldKeys;
  if (onHeldKeys) fleet.on('heldKeys', (thingName: string, spkis: string[]) => onHeldKeys(thingName, spkis));
  try {
    await fleet.start();
    const allConnected =
      fleet instanceof ThreadedFleet
        ? () => fleet.connected === devices.length
        : () => fleet.agents.every((a) => a.snapshot.connection.status === 'connected');
    await until(allConnected, Date.now() + 30_000 + devices.length * 50, 'the fleet to connect', options.signal);
    return fleet;
  } catch (error) {
    await fleet.stop();
    throw error;
  }
}
