import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FleetDevice, FleetOptions, FleetReport } from './fleet.js';

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
export type FleetCommand = { type: 'start' } | { type: 'stop' };
export type FleetEvent =
  | { type: 'started' }
  | { type: 'stopped' }
  | { type: 'failed'; error: string }
  | { type: 'connected'; count: number }
  | { type: 'keysRemoved'; thingName: string }
  | { type: 'heldKeys'; thingName: string; spkis: string[] }
  | { type: 'report'; report: FleetReport };

export interface ThreadedFleetOptions extends Omit<FleetOptions, 'clock'> {
  /** Worker threads the devices are spread over (at least 1, at most one per device). */
  threads: number;
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
  worker: Worker;
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
      this.shards.push(this.spawn(file, data));
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
          await shard.worker.terminate();
        }
      }),
    );
  }

  private spawn(file: string, data: FleetOptions): Shard {
    const worker = new Worker(file, { workerData: data });
    const shard: Shard = { worker, connected: 0, devices: data.devices.length, exited: false };
    worker.on('message', (event: FleetEvent) => {
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
    });
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

  private command(shard: Shard, type: FleetCommand['type'], answer: 'started' | 'stopped'): Promise<void> {
    if (shard.exited) return Promise.reject(new FleetThreadError('the fleet thread has exited'));
    return new Promise<void>((resolve, reject) => {
      shard.waiting = { type: answer, resolve, reject };
      shard.worker.postMessage({ type } satisfies FleetCommand);
    });
  }
}
