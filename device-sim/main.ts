import { readFile } from 'node:fs/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { deviceSubscriptionFilter } from '../domain/index.js';
import { DeviceAgent, type LogEntry } from './agent.js';
import { faultHooks, FaultSpecError, parseFault, type Fault } from './faults.js';
import { FileKeyStore, readProvisionedPair } from './key-store.js';
import { FileTrustStore } from './trust-store.js';
import { DEFAULT_KEY_ALGORITHM, SELECTABLE_KEY_ALGORITHMS, type KeyAlgorithm } from './keys.js';
import { MqttTransport, parseEndpoint } from './transport.js';

interface CliOptions {
  endpoint: { host: string; port: number };
  ca: string;
  cert: string;
  key: string;
  thing: string;
  stateDir: string;
  keyAlgorithm: KeyAlgorithm;
  fault?: Fault;
  serverName?: string;
  exitAfterRotation?: boolean;
  quiet?: boolean;
}

/** Thing names as AWS IoT allows them (they are also the MQTT client id and a topic level). */
const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;

function argument<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/**
 * `rotor-device`: one simulated device against any MQTT broker speaking PROTOCOL.md. `argv`
 * holds the arguments only (no node, no script). Resolves with the exit code once the device
 * stops (SIGINT/SIGTERM, or after one rotation with --exit-after-rotation).
 */
export async function main(argv: string[]): Promise<number> {
  const errors: string[] = [];
  const program = new Command('rotor-device')
    .description('Simulated AWS IoT device that rotates its certificate as PROTOCOL.md describes')
    .exitOverride()
    .configureOutput({ writeErr: (text) => errors.push(text.trimEnd()), writeOut: (text) => process.stdout.write(text) })
    .requiredOption('--endpoint <host:port>', 'MQTT broker (AWS IoT: the iot:Data-ATS endpoint, port 8883 or 443)', argument(parseEndpoint))
    .requiredOption('--ca <file>', 'CA bundle that signs the server certificate (AWS IoT: AmazonRootCA1.pem)')
    .requiredOption('--cert <file>', 'provisioned device certificate (PEM), used on first boot')
    .requiredOption('--key <file>', 'provisioned private key (PEM), used on first boot')
    .requiredOption('--thing <name>', 'thing name = MQTT client id = certificate CN', argument((value) => {
      if (!THING_NAME.test(value)) throw new Error('must be 1-128 characters of a-z A-Z 0-9 : _ -');
      return value;
    }))
    .requiredOption('--state-dir <dir>', 'where the device keeps its key pairs across restarts')
    .addOption(new Option('--key-algorithm <alg>', 'algorithm of new keys').choices(SELECTABLE_KEY_ALGORITHMS as string[]).default(DEFAULT_KEY_ALGORITHM))
    .option('--fault <kind[:duration]>', 'misbehave on purpose (see device-sim/README.md)', argument(parseFault))
    .option('--server-name <name>', 'TLS server name to check, when it differs from the endpoint host')
    .option('--exit-after-rotation', 'exit once one rotation has ended (0 rotated, 1 otherwise)')
    .option('--quiet', 'log warnings and errors only');

  let options: CliOptions;
  try {
    await program.parseAsync(argv, { from: 'user' });
    options = program.opts<CliOptions>();
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return 0; // --help, --version
      process.stderr.write(`rotor-device: ${(errors.at(-1) ?? error.message).replace(/^error: /, '')}\n`);
      return 2;
    }
    throw error;
  }

  let agent: DeviceAgent;
  try {
    const caPem = await readText(options.ca, 'CA file');
    const provisioned = await readProvisionedPair(options.key, options.cert);
    const store = new FileKeyStore(options.stateDir);
    const stored = await store.load();
    // The state directory wins once it holds a pair: after a rotation the files given on
    // the command line are the retired ones.
    if (!stored.current) await store.importCurrent(provisioned);
    let finish: (code: number) => void = () => undefined;
    const finished = new Promise<number>((resolve) => (finish = resolve));
    agent = new DeviceAgent({
      thingName: options.thing,
      keyAlgorithm: options.keyAlgorithm,
      keyStore: store,
      // Protocol v1.2: the simulated device takes server trust-store updates.
      trustStore: new FileTrustStore(options.stateDir),
      faults: faultHooks(options.fault),
      transport: (handlers) =>
        new MqttTransport({
          ...options.endpoint,
          caPem,
          ...(options.serverName ? { serverName: options.serverName } : {}),
          clientId: options.thing,
          subscription: deviceSubscriptionFilter(options.thing),
          handlers,
        }),
      onLog: (entry: LogEntry) => {
        if (entry.level === 'debug' || (options.quiet && entry.level === 'info')) return;
        process.stdout.write(`${JSON.stringify(entry)}\n`);
      },
      onReport: (report) => {
        process.stdout.write(`${JSON.stringify({ report })}\n`);
        if (options.exitAfterRotation && ['rotated', 'aborted', 'certificateRefused'].includes(report.kind)) {
          finish(report.kind === 'rotated' ? 0 : 1);
        }
      },
    });
    const onSignal = (): void => finish(0);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    await agent.start();
    const code = await finished;
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await agent.stop();
    return code;
  } catch (error) {
    const message = error instanceof FaultSpecError || error instanceof Error ? error.message : String(error);
    process.stderr.write(`rotor-device: ${message}\n`);
    return 1;
  }
}
