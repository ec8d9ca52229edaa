import { EventEmitter } from 'node:events';
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FleetDevice, FleetOptions, FleetReport } from './fleet.js';
import { processFigures } from './memory-probe.js';

/**
 * A simulated fleet spread over worker threads. One process holds the local AWS and the
 * fleet; with the devices on the main thread as well, their keys, CSRs, key store files, TLS
 * handshakes and MQTT parsing queue behind the edge, the broker and the workflow engine on one
 * event loop (docs/demo.md measured it at 96 % busy). Here each thread runs an ordinary Fleet
 * for a contiguous share of the devices; the devices still talk to the broker over real
 * mutual-TLS sockets, keep their key stores on disk, and report the same events.
 *
 * Emits 'keysRemoved' (thingName), 'heldKeys' (thingName, SPKIs) and 'report' (FleetReport), as Fleet does.
 */
export type FleetCommand = { type: 'init'; options: FleetOptions } | { type: 'start' } | { type: 'stop' };
export type FleetEvent =
  | { type: 'started' }
  | { type: 'stopped' }
  | { type: 'failed'; error: string }
  | { type: 'connected'; count: number }
  | { type: 'keysRemoved'; thingName: string }
  | { type: 'heldKeys'; thingName: string; spkis: string[] }
  | { type: 'report'; report: FleetReport };

export interface ThreadedFleetOptions extends Omit<FleetOptions, 'clock'> {
  /** Worker threads (or child processes) the devices are spread over (at least 1, at most one per device). */
  threads: number;
  /**
   * 'thread' (default): worker threads of this process. 'process': forked child processes, each
   * with its own heap and its own open-file limit (a device holds one socket in the fleet's
   * process; the broker's end stays in this one), reached over IPC instead of a MessagePort.
   */
  isolation?: FleetIsolation;
}

export const FleetIsolation = { Thread: 'thread', Process: 'process' } as const;
export type FleetIsolation = (typeof FleetIsolation)[keyof typeof FleetIsolation];

/**
 * Peak RSS and CPU of the fleet processes this process started, by pid: read live while one
 * runs, and kept as last read just before it was told to stop (the bench asks after the demo
 * has stopped its fleet).
 */
const fleetProcesses = new Map<number, { running: boolean; last: ReturnType<typeof processFigures> }>();
export function fleetProcessFigures(): Array<ReturnType<typeof processFigures>> {
  return [...fleetProcesses.entries()].map(([pid, entry]) => (entry.running ? processFigures(pid) : entry.last));
}

export class FleetThreadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FleetThreadError';
  }
}

const SOURCE = join(__dirname, 'fleet-worker.ts');
/** Under node_modules so that the bundle's own imports (mqtt, @peculiar/x509) resolve from it. */
const BUNDLE_DIR = join(__dirname, '..', 'node_modules', '.cache', 'rotor');
let bundled: Promise<string> | undefined;

/**
 * Workers cannot load TypeScript the same way under tsx, jest and a compiled build, so the
 * worker's entry is bundled once per process with esbuild (tsx's own compiler, always there
 * where this code runs from source); the npm packages stay imports, resolved from node_modules.
 */
function workerBundle(): Promise<string> {
  bundled ??= (async () => {
    const { build } = await import('esbuild');
    const result = await build({ entryPoints: [SOURCE], bundle: true, write: false, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'silent' });
    const code = result.outputFiles[0].contents;
    // Named by content: runs of the same code share one file, and none is left per run.
    const file = join(BUNDLE_DIR, `fleet-worker-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
    if (!existsSync(file)) {
      mkdirSync(BUNDLE_DIR, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, code);
      renameSync(tmp, file);
    }
    return file;
  })();
  return bundled;
}

interface Shard {
  send(command: FleetCommand): void;
  terminate(): Promise<void>;
  connected: number;
  devices: number;
  waiting?: { type: 'started' | 'stopped'; resolve: () => void; reject: (error: Error) => void };
  exited: boolean;
}

export class ThreadedFleet extends EventEmitter {
  private shards: Shard[] = [];

  constructor(private readonly options: ThreadedFleetOptions) {
    super();
    if (!Number.isInteger(options.threads) || options.threads < 1) throw new FleetThreadError(`threads must be a whole number ≥ 1, got ${options.threads}`);
  }

  get size(): number {
    return this.options.devices.length;
  }

  /** Devices whose connection is up right now (as their threads last reported). */
  get connected(): number {
    return this.shards.reduce((sum, shard) => sum + shard.connected, 0);
  }

  /** Starts the threads and boots every device (key store, then the connect). */
  async start(): Promise<void> {
    const file = await workerBundle();
    const devices = this.options.devices;
    const threads = Math.min(this.options.threads, Math.max(1, devices.length));
    const per = Math.ceil(devices.length / threads);
    for (let i = 0; i < threads; i++) {
      const share: FleetDevice[] = devices.slice(i * per, (i + 1) * per);
      if (share.length === 0) continue;
      const data: FleetOptions = { ...this.options, devices: share };
      delete (data as Partial<ThreadedFleetOptions>).threads;
      delete (data as Partial<ThreadedFleetOptions>).isolation;
      this.shards.push(this.options.isolation === FleetIsolation.Process ? this.forkChild(file, data) : this.spawn(file, data));
    }
    await Promise.all(this.shards.map((shard) => this.command(shard, 'start', 'started')));
  }

  /** Stops every device (clean disconnects) and ends the threads. */
  async stop(): Promise<void> {
    const shards = this.shards.splice(0);
    await Promise.all(
      shards.map(async (shard) => {
        try {
          if (!shard.exited) await this.command(shard, 'stop', 'stopped');
        } finally {
          await shard.terminate();
        }
      }),
    );
  }

  private spawn(file: string, data: FleetOptions): Shard {
    const worker = new Worker(file, { workerData: data });
    const shard: Shard = {
      send: (command) => worker.postMessage(command),
      terminate: async () => {
        await worker.terminate();
      },
      connected: 0,
      devices: data.devices.length,
      exited: false,
    };
    worker.on('message', (event: FleetEvent) => this.onEvent(shard, event));
    const ended = (error: Error): void => {
      shard.exited = true;
      shard.connected = 0;
      shard.waiting?.reject(error);
      shard.waiting = undefined;
    };
    worker.on('error', (error) => ended(new FleetThreadError(`a fleet thread crashed: ${error.message}`, { cause: error })));
    worker.on('exit', (code) => ended(new FleetThreadError(`a fleet thread exited with code ${code}`)));
    return shard;
  }

  private forkChild(file: string, data: FleetOptions): Shard {
    // 'advanced' serialization: the same structured clone as a MessagePort, so the events are unchanged.
    const child: ChildProcess = fork(file, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    const pid = child.pid;
    if (pid !== undefined) fleetProcesses.set(pid, { running: true, last: {} });
    const shard: Shard = {
      send: (command) => {
        child.send(command);
      },
      terminate: () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          if (pid !== undefined) fleetProcesses.set(pid, { running: false, last: processFigures(pid) });
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
      connected: 0,
      devices: data.devices.length,
      exited: false,
    };
    child.on('message', (event: FleetEvent) => this.onEvent(shard, event));
    const ended = (error: Error): void => {
      const entry = pid === undefined ? undefined : fleetProcesses.get(pid);
      if (entry) entry.running = false;
      shard.exited = true;
      shard.connected = 0;
      shard.waiting?.reject(error);
      shard.waiting = undefined;
    };
    child.on('error', (error) => ended(new FleetThreadError(`a fleet process failed: ${error.message}`, { cause: error })));
    child.on('exit', (code, signal) => ended(new FleetThreadError(`a fleet process exited with ${signal ?? `code ${code}`}`)));
    child.send({ type: 'init', options: data } satisfies FleetCommand);
    return shard;
  }

  private onEvent(shard: Shard, event: FleetEvent): void {
    switch (event.type) {
      case 'connected':
        shard.connected = event.count;
        return;
      case 'keysRemoved':
        this.emit('keysRemoved', event.thingName);
        return;
      case 'heldKeys':
        this.emit('heldKeys', event.thingName, event.spkis);
        return;
      case 'report':
        this.emit('report', event.report);
        return;
      case 'started':
      case 'stopped':
        if (shard.waiting?.type === event.type) {
          shard.waiting.resolve();
          shard.waiting = undefined;
        }
        return;
      case 'failed':
        shard.waiting?.reject(new FleetThreadError(`a fleet thread failed: ${event.error}`));
        shard.waiting = undefined;
        return;
    }
  }

  private command(shard: Shard, type: 'start' | 'stop', answer: 'started' | 'stopped'): Promise<void> {
    if (shard.exited) return Promise.reject(new FleetThreadError('the fleet thread has exited'));
    return new Promise<void>((resolve, reject) => {
      shard.waiting = { type: answer, resolve, reject };
      shard.send({ type });
    });
  }
}
