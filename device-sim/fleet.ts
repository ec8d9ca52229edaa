import { EventEmitter } from 'node:events';
import { deviceSubscriptionFilter } from '../domain/index.js';
import { DeviceAgent, type AgentClock, type LogEntry } from './agent.js';
import { faultHooks, type Fault } from './faults.js';
import { FileKeyStore, type StoredPair } from './key-store.js';
import { FileTrustStore } from './trust-store.js';
import type { KeyAlgorithm } from './keys.js';
import type { RotationReport } from './reducer.js';
import { MqttTransport, type Endpoint } from './transport.js';

export interface FleetDevice {
  thingName: string;
  stateDir: string;
  /** The provisioned pair; imported only when the state directory holds no current pair yet. */
  provisioned?: StoredPair;
  fault?: Fault;
}

export interface FleetOptions {
  endpoint: Endpoint;
  devices: readonly FleetDevice[];
  keyAlgorithm?: KeyAlgorithm;
  clock?: AgentClock;
  /** Devices booted at once; a thousand simultaneous TLS handshakes gain nothing. */
  startConcurrency?: number;
  /** Log entries each device keeps in its `eventLog` (the agent's default when absent); 'log' events still carry every one. */
  logCapacity?: number;
  /**
   * Emit 'heldKeys' (thingName, SPKIs) whenever the private keys in a device's key store change
   * (device-sim/key-store.ts HeldKeysObserver): an observer then knows what each device holds
   * without reading the stores. Off by default: it costs one SPKI derivation per key written.
   */
  reportHeldKeys?: boolean;
}

export type FleetReport = RotationReport & { thingName: string };

export interface FleetCounts {
  devices: number;
  started: number;
  rotated: number;
  failed: number;
  inProgress: number;
}

/**
 * N simulated devices in one process, each with its own state directory and MQTT connection.
 * Emits 'report' (every RotationReport, with thingName), 'log' (every LogEntry),
 * 'keysRemoved' (thingName, after a key store write that may have removed a private key) and,
 * with `reportHeldKeys`, 'heldKeys' (thingName, the SPKIs of the keys on disk, after each change).
 */
export class Fleet extends EventEmitter {
  readonly agents: DeviceAgent[];
  private readonly stores: FileKeyStore[];
  private readonly inFlight = new Set<string>();
  private readonly outcome = new Map<string, 'rotated' | 'failed'>();

  constructor(private readonly options: FleetOptions) {
    super();
    this.stores = options.devices.map(
      (device) =>
        new FileKeyStore(device.stateDir, {}, options.reportHeldKeys ? (spkis) => this.emit('heldKeys', device.thingName, spkis) : undefined),
    );
    this.agents = options.devices.map(
      (device, index) =>
        new DeviceAgent({
          thingName: device.thingName,
          ...(options.keyAlgorithm ? { keyAlgorithm: options.keyAlgorithm } : {}),
          ...(options.clock ? { clock: options.clock } : {}),
          ...(options.logCapacity !== undefined ? { logCapacity: options.logCapacity } : {}),
          keyStore: this.stores[index],
          // Protocol v1.2: simulated devices take server trust-store updates.
          trustStore: new FileTrustStore(device.stateDir),
          faults: faultHooks(device.fault),
          transport: (handlers) =>
            new MqttTransport({ ...options.endpoint, clientId: device.thingName, subscription: deviceSubscriptionFilter(device.thingName), handlers }),
          onLog: (entry: LogEntry) => this.emit('log', entry),
          onReport: (report) => this.onReport(report),
          onKeysRemoved: (thingName) => this.emit('keysRemoved', thingName),
        }),
    );
  }

  async start(): Promise<void> {
    const queue = [...this.options.devices.entries()];
    const workers = Array.from({ length: Math.min(this.options.startConcurrency ?? 20, queue.length) }, async () => {
      for (let item = queue.shift(); item; item = queue.shift()) {
        const [index, device] = item;
        const store = this.stores[index];
        const stored = await store.load();
        if (!stored.current && device.provisioned) await store.importCurrent(device.provisioned);
        await this.agents[index].start();
      }
    });
    await Promise.all(workers);
  }

  async stop(): Promise<void> {
    await Promise.all(this.agents.map((agent) => agent.stop()));
  }

  counts(): FleetCounts {
    let rotated = 0;
    let failed = 0;
    for (const value of this.outcome.values()) value === 'rotated' ? rotated++ : failed++;
    return { devices: this.agents.length, started: this.outcome.size + this.inFlight.size, rotated, failed, inProgress: this.inFlight.size };
  }

  private onReport(report: FleetReport): void {
    switch (report.kind) {
      case 'rotationStarted':
        this.inFlight.add(report.thingName);
        this.outcome.delete(report.thingName);
        break;
      case 'rotated':
        this.inFlight.delete(report.thingName);
        this.outcome.set(report.thingName, 'rotated');
        break;
      case 'aborted':
      case 'certificateRefused':
      case 'notHeld':
        this.inFlight.delete(report.thingName);
        this.outcome.set(report.thingName, 'failed');
        break;
      default:
        break;
    }
    this.emit('report', report);
  }
}
