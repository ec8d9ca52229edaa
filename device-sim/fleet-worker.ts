import { parentPort, workerData } from 'node:worker_threads';
import { Fleet, type FleetOptions } from './fleet.js';
import type { FleetCommand, FleetEvent } from './fleet-thread.js';
import { answerMemoryProbes } from './memory-probe.js';

/**
 * The body of one fleet thread (device-sim/fleet-thread.ts starts it from an esbuild bundle of
 * this file): an ordinary in-process Fleet for its share of the devices, driven by messages.
 * Keys, CSRs, key store files, TLS and MQTT of these devices all run on this thread's event
 * loop, none on the main thread's, which then only runs the local AWS.
 */
const port = parentPort;
if (!port) throw new Error('device-sim/fleet-worker runs only as a worker thread');
answerMemoryProbes('fleet');
const fleet = new Fleet(workerData as FleetOptions);
const post = (event: FleetEvent): void => port.postMessage(event);

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

port.on('message', (command: FleetCommand) => {
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
  }
});
