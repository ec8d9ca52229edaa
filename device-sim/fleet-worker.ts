import { parentPort, workerData } from 'node:worker_threads';
import { Fleet, type FleetOptions } from './fleet.js';
import type { FleetCommand, FleetEvent } from './fleet-thread.js';
import { answerMemoryProbes } from './memory-probe.js';

/**
 * The body of one fleet thread or fleet process (device-sim/fleet-thread.ts starts it from an
 * esbuild bundle of this file): an ordinary in-process Fleet for its share of the devices,
 * driven by messages. Keys, CSRs, key store files, TLS and MQTT of these devices all run on
 * this event loop, none on the main thread's, which then only runs the local AWS. As a child
 * process it also has its own open-file limit and heap, and gets its options in a first
 * 'init' message instead of workerData.
 */
interface Channel {
  post(event: FleetEvent): void;
  onCommand(handler: (command: FleetCommand) => void): void;
}

function run(options: FleetOptions, channel: Channel): void {
  const fleet = new Fleet(options);
  const { post } = channel;

  fleet.on('keysRemoved', (thingName: string) => post({ type: 'keysRemoved', thingName }));
  fleet.on('heldKeys', (thingName: string, spkis: string[]) => post({ type: 'heldKeys', thingName, spkis }));
  fleet.on('report', (report) => post({ type: 'report', report }));

  // Connection counts, sent when they change: the demo waits for the whole fleet to be online.
  let lastConnected = -1;
  const connections = setInterval(() => {
    const connected = fleet.agents.filter((agent) => agent.snapshot.connection.status === 'connected').length;
    if (connected !== lastConnected) post({ type: 'connected', count: connected });
    lastConnected = connected;
  }, 50);

  channel.onCommand((command) => {
    switch (command.type) {
      case 'start':
        fleet.start().then(
          () => post({ type: 'started' }),
          (error: unknown) => post({ type: 'failed', error: error instanceof Error ? error.message : String(error) }),
        );
        return;
      case 'stop':
        clearInterval(connections);
        fleet.stop().then(
          () => post({ type: 'stopped' }),
          (error: unknown) => post({ type: 'failed', error: error instanceof Error ? error.message : String(error) }),
        );
        return;
      case 'init':
        return;
    }
  });
}

const port = parentPort;
if (port) {
  answerMemoryProbes('fleet');
  run(workerData as FleetOptions, { post: (event) => port.postMessage(event), onCommand: (handler) => port.on('message', handler) });
} else if (process.send) {
  const send = process.send.bind(process);
  // The parent gone (crashed, killed) leaves nothing to simulate for.
  process.on('disconnect', () => process.exit(0));
  process.once('message', (init: FleetCommand) => {
    if (init.type !== 'init') throw new Error(`device-sim/fleet-worker: expected init, got ${init.type}`);
    run(init.options, { post: (event) => void send(event), onCommand: (handler) => process.on('message', handler) });
  });
} else {
  throw new Error('device-sim/fleet-worker runs only as a worker thread or a forked child process');
}
