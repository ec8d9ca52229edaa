import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join, resolve } from 'node:path';
import { DescribeAuditTaskCommand, DescribeCertificateCommand, IoTClient, ListThingPrincipalsCommand, StartOnDemandAuditTaskCommand } from '@aws-sdk/client-iot';
import { Command, InvalidArgumentError } from 'commander';
import { createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem } from '../device-sim/keys.js';
import { defaultSettings } from '../wiring/index.js';
import { QuotasFileError } from '../domain/pacing/index.js';
import { isLogLevel, streamLogger } from '../local/edge/logger.js';
import { loadLocalQuotas, type LocalQuotas } from '../local/edge/quotas.js';
import { tuneHeapsForLocalRuntime } from '../local/heap.js';
import { ENDPOINTS_FILE, startLocalAws, type LocalAws, type ProvisionAnswer } from '../local/runtime.js';
import type { LocalSignerOptions } from '../local/pca/index.js';
import { describeSigner, localSigner, signerOption, validityDaysOption } from './signer-options.js';
import { mountConsole } from './console/index.js';
import { DEFAULT_DATA_DIR, localClientConfig, runningEndpoints } from './endpoints.js';

/**
 * `rotor local …`: run the embedded local AWS in the foreground, provision a device on it,
 * and run the Device Defender audit now (which starts rotations).
 */
export interface LocalCommandIo {
  out: (line: string) => void;
  /** Resolves when the user asks `local up` to stop (Ctrl-C, SIGTERM). */
  untilInterrupted: () => Promise<string>;
}

export function defaultLocalIo(): LocalCommandIo {
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    untilInterrupted: () =>
      new Promise((resolveSignal) => {
        const on = (signal: NodeJS.Signals): void => {
          process.off('SIGINT', on);
          process.off('SIGTERM', on);
          resolveSignal(signal);
        };
        process.on('SIGINT', on);
        process.on('SIGTERM', on);
      }),
  };
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a positive number is expected');
  return n;
}

/** `--quotas aws-default|FILE`: read and checked before anything starts. */
export function quotasOption(value: string): LocalQuotas {
  try {
    return loadLocalQuotas(value);
  } catch (error) {
    if (error instanceof QuotasFileError) throw new InvalidArgumentError(error.message);
    throw error;
  }
}

function days(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('a number of days is expected (negative: already expired)');
  return n;
}

export async function localUp(
  options: { port?: number; mqttPort?: number; dataDir: string; timeScale?: number; issuedValidityDays?: number; logLevel?: string; quotas?: LocalQuotas; signer?: LocalSignerOptions },
  io: LocalCommandIo,
): Promise<number> {
  const level = options.logLevel ?? 'info';
  if (!isLogLevel(level)) throw new InvalidArgumentError(`unknown log level ${level}`);
  const aws: LocalAws = await startLocalAws({
    port: options.port,
    mqttPort: options.mqttPort,
    dataDir: options.dataDir,
    timeScale: options.timeScale,
    issuedValidityDays: options.issuedValidityDays,
    logger: streamLogger(level),
    console: true,
    ...(options.quotas ? { quotas: options.quotas } : {}),
    ...(options.signer ? { signer: options.signer } : {}),
  });
  const e = aws.endpoints;
  const web = mountConsole(aws);
  io.out(`local AWS running (Ctrl-C to stop)`);
  io.out(`  AWS endpoint     ${e.awsEndpoint}   (region ${e.region}, any credentials)`);
  io.out(`  console          ${web.url}   (read-only, this machine only)`);
  io.out(`  MQTT over TLS    mqtts://${e.mqtt.host}:${e.mqtt.port}   CA ${e.mqtt.caFile ?? '(in memory)'}`);
  io.out(`  state machine    ${e.stateMachineArn}`);
  if (e.privateCaArn) io.out(`  private CA       ${e.privateCaArn}   (AWS Private CA, registered with IoT)`);
  io.out(`  signer           ${describeSigner(aws.deployment.settings)}`);
  io.out(`  table            ${e.tableName}`);
  io.out(`  topics           audit ${e.topics.audit}`);
  io.out(`                   escalation ${e.topics.escalation}`);
  io.out(`  endpoints file   ${join(resolve(options.dataDir), ENDPOINTS_FILE)}`);
  if (options.quotas) io.out(`  quotas           ${options.quotas.source}, enforced (rates ÷ time scale ${options.timeScale ?? 1}); throttled calls: ${e.awsEndpoint}/_rotor/quotas`);
  const signal = await io.untilInterrupted();
  io.out(`${signal}: stopping`);
  web.stop();
  await aws.stop();
  const throttled = aws.quotas?.figures().throttledCalls.total;
  io.out(`stopped (${aws.edge.totalCalls()} AWS API calls served${throttled === undefined ? '' : `, ${throttled} throttled by the quotas`})`);
  return 0;
}

export async function localProvision(options: { thing: string; out: string; expiresInDays?: number; createdDaysAgo?: number; dataDir: string }, io: LocalCommandIo): Promise<number> {
  const endpoints = await runningEndpoints(options.dataDir);
  // The key is made here and never leaves this machine: the runtime only signs its CSR.
  const keyPem = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
  const csrPem = await createCsrPem(keyPem, options.thing);
  const answer = await fetch(`${endpoints.awsEndpoint}/_rotor/iot/provision`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ thingName: options.thing, csrPem, expiresInDays: options.expiresInDays, createdDaysAgo: options.createdDaysAgo }),
  });
  const body = (await answer.json()) as ProvisionAnswer & { message?: string };
  if (!answer.ok) throw new Error(`provisioning ${options.thing} failed: ${body.message ?? `HTTP ${answer.status}`}`);

  // Check through the public API what a device depends on: an ACTIVE certificate attached to its thing.
  const iot = new IoTClient(localClientConfig(endpoints));
  try {
    const { certificateDescription } = await iot.send(new DescribeCertificateCommand({ certificateId: body.certificateId }));
    if (certificateDescription?.status !== 'ACTIVE') throw new Error(`certificate ${body.certificateId} is ${certificateDescription?.status ?? 'missing'}, not ACTIVE`);
    const { principals } = await iot.send(new ListThingPrincipalsCommand({ thingName: options.thing }));
    if (!principals?.includes(body.certificateArn)) throw new Error(`certificate ${body.certificateId} is not attached to thing ${options.thing}`);
  } finally {
    iot.destroy();
  }

  const out = resolve(options.out);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'cert.pem'), body.certificatePem);
  writeFileSync(join(out, 'key.pem'), keyPem, { mode: 0o600 });
  chmodSync(join(out, 'key.pem'), 0o600);
  writeFileSync(join(out, 'ca.pem'), body.caPem);
  io.out(`provisioned ${options.thing}: certificate ${body.certificateId}`);
  io.out(`  ${join(out, 'cert.pem')}, ${join(out, 'key.pem')}, ${join(out, 'ca.pem')}`);
  io.out(`  connect: mqtts://${endpoints.mqtt.host}:${endpoints.mqtt.port} with client id ${options.thing}`);
  return 0;
}

export async function localAudit(options: { dataDir: string; wait: boolean; timeoutSeconds: number }, io: LocalCommandIo): Promise<number> {
  const endpoints = await runningEndpoints(options.dataDir);
  const checks = String(defaultSettings().auditChecks).split(',').map((c) => c.trim()).filter(Boolean);
  const iot = new IoTClient(localClientConfig(endpoints));
  try {
    const { taskId } = await iot.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: checks }));
    io.out(`audit task ${taskId} started (${checks.join(', ')})`);
    if (!options.wait || !taskId) return 0;
    const deadline = Date.now() + options.timeoutSeconds * 1000;
    for (;;) {
      const task = await iot.send(new DescribeAuditTaskCommand({ taskId }));
      if (task.taskStatus !== 'IN_PROGRESS') {
        const stats = task.taskStatistics;
        io.out(`audit task ${taskId} ${task.taskStatus}: ${stats?.nonCompliantChecks ?? 0} non-compliant of ${stats?.totalChecks ?? 0} checks; the notification on ${endpoints.topics.audit} starts the rotations`);
        return task.taskStatus === 'COMPLETED' ? 0 : 1;
      }
      if (Date.now() > deadline) throw new Error(`audit task ${taskId} still IN_PROGRESS after ${options.timeoutSeconds} s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    iot.destroy();
  }
}

/** Files `server-ca rotate` writes next to endpoints.json (the runtime rewrites ca.pem itself). */
export const SERVER_CA_FILE = 'server-ca.pem';
export const SERVER_CA_BUNDLE_FILE = 'server-ca-bundle.pem';

/**
 * `rotor local server-ca rotate`: the broker switches to a server certificate from a new server
 * CA, served with the new CA cross-signed by the old one (docs/protocol.md C5), so devices that
 * trust only the old CA keep verifying it until `server-ca retire-old`. The bundle (old CAs +
 * new) is what a device's trust store holds during a switch.
 */
export async function localServerCaRotate(options: { dataDir: string }, io: LocalCommandIo): Promise<number> {
  const endpoints = await runningEndpoints(options.dataDir);
  const answer = await fetch(`${endpoints.awsEndpoint}/_rotor/iot/server-ca/rotate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const body = (await answer.json()) as { caPem: string; previousCaPems: string[]; crossCertificatePem?: string; notCrossSigned?: string; message?: string };
  if (!answer.ok) throw new Error(`the server-CA switch failed: ${body.message ?? `HTTP ${answer.status}`}`);
  const dir = resolve(options.dataDir);
  writeFileSync(join(dir, SERVER_CA_FILE), body.caPem);
  writeFileSync(join(dir, SERVER_CA_BUNDLE_FILE), [...body.previousCaPems, body.caPem].map((pem) => pem.trim()).join('\n') + '\n');
  const subject = new X509Certificate(body.caPem).subject.replace(/\n/g, ', ');
  io.out(`the broker now serves a certificate from a new server CA (${subject})`);
  io.out(`  new server CA     ${join(dir, SERVER_CA_FILE)} (also ${endpoints.mqtt.caFile ?? 'ca.pem'}, for devices provisioned from now on)`);
  io.out(`  trust bundle      ${join(dir, SERVER_CA_BUNDLE_FILE)} (${body.previousCaPems.length} earlier CA${body.previousCaPems.length === 1 ? '' : 's'} + the new one)`);
  if (body.crossCertificatePem) {
    const previous = new X509Certificate(body.previousCaPems.at(-1) as string).subject.replace(/\n/g, ', ');
    io.out(`  cross-signed      the broker serves the new CA cross-signed by ${previous}: devices that trust only it keep connecting`);
    io.out(`  once every device trusts the new CA (rotor trust status): rotor local server-ca retire-old`);
  } else {
    io.out(`  not cross-signed  ${body.notCrossSigned ?? 'the previous server CA cannot cross-sign'}`);
    io.out(`  devices that trust only an earlier CA cannot verify the broker on their next connection`);
  }
  return 0;
}

/**
 * `rotor local server-ca retire-old`: the broker stops serving the cross-certificate of the last
 * switch. Devices that trust only the old CA stop verifying it on their next connection, so run it
 * once `rotor trust status` shows every device updated.
 */
export async function localServerCaRetireOld(options: { dataDir: string }, io: LocalCommandIo): Promise<number> {
  const endpoints = await runningEndpoints(options.dataDir);
  const answer = await fetch(`${endpoints.awsEndpoint}/_rotor/iot/server-ca/retire-old`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const body = (await answer.json()) as { caPem: string; retiredCrossCertificatePem?: string; message?: string };
  if (!answer.ok) throw new Error(`retiring the old server CA failed: ${body.message ?? `HTTP ${answer.status}`}`);
  const subject = new X509Certificate(body.caPem).subject.replace(/\n/g, ', ');
  if (!body.retiredCrossCertificatePem) {
    io.out(`no cross-certificate is served: only ${subject} verifies the broker already`);
    return 0;
  }
  const cross = new X509Certificate(body.retiredCrossCertificatePem);
  io.out(`the broker no longer serves ${subject} cross-signed by ${cross.issuer.replace(/\n/g, ', ')}`);
  io.out(`  devices that trust only the old CA cannot verify the broker on their next connection`);
  return 0;
}

export function registerLocalCommands(program: Command, io: LocalCommandIo = defaultLocalIo()): Command {
  const local = program.command('local').description('the embedded local AWS: run it, provision devices on it, audit it');
  const dataDir = (): [string, string, string] => ['--data-dir <dir>', 'where the runtime keeps its state and endpoints.json', DEFAULT_DATA_DIR];
  // Like the operator commands, the exit code goes to process.exitCode, which main() returns.
  const done = (code: number): void => {
    if (code !== 0) process.exitCode = code;
  };

  local
    .command('up')
    .description('start the local AWS with Rotor deployed, in the foreground; Ctrl-C stops it')
    .option('--port <n>', 'edge (AWS API) port', port, 4566)
    .option('--mqtt-port <n>', 'MQTT over TLS port', port, 8883)
    .option(...dataDir())
    .option('--time-scale <x>', 'workflow time scale (0.01: a 900 s wait lasts 9 s)', positiveNumber, 1)
    .option('--issued-validity-days <n>', 'validity of certificates issued by rotations (default: AWS\'s 2049-12-31)', positiveNumber)
    .option('--log-level <level>', 'debug | info | warn | error | silent', 'info')
    .option('--quotas <aws-default|file>', "enforce AWS's default quotas or a quotas file's as the account's, in AWS's throttling shapes (scaled by the time scale)", quotasOption)
    .option('--signer <aws-iot|private-ca>', "who signs the rotations' new certificates: IoT (they expire in 2049) or the local Private CA (with --pca-validity-days)", signerOption, 'aws-iot')
    .option('--pca-validity-days <n>', 'with --signer private-ca: how many days new certificates are valid (more than 30)', validityDaysOption)
    .action(async (opts: { port: number; mqttPort: number; dataDir: string; timeScale: number; issuedValidityDays?: number; logLevel: string; quotas?: LocalQuotas; signer: LocalSignerOptions['kind']; pcaValidityDays?: number }) => {
      const { signer, pcaValidityDays, ...rest } = opts;
      tuneHeapsForLocalRuntime();
      done(await localUp({ ...rest, signer: localSigner(signer, pcaValidityDays) }, io));
    });

  local
    .command('provision')
    .description('create a thing with a device key and certificate on the running local AWS')
    .requiredOption('--thing <name>', 'thing name (the MQTT client id)')
    .requiredOption('--out <dir>', 'where cert.pem, key.pem and ca.pem are written')
    .option('--expires-in-days <n>', 'certificate expiry, days from now (negative: already expired)', days)
    .option('--created-days-ago <n>', 'certificate creation date, days ago (for the age check)', days)
    .option(...dataDir())
    .action(async (opts: { thing: string; out: string; expiresInDays?: number; createdDaysAgo?: number; dataDir: string }) => done(await localProvision(opts, io)));

  local
    .command('audit')
    .description('run the Device Defender audit now (both certificate checks); its findings start rotations')
    .option(...dataDir())
    .option('--no-wait', 'return once the task has started')
    .option('--timeout <seconds>', 'how long to wait for the task', positiveNumber, 60)
    .action(async (opts: { dataDir: string; wait: boolean; timeout: number }) => done(await localAudit({ dataDir: opts.dataDir, wait: opts.wait, timeoutSeconds: opts.timeout }, io)));

  const serverCa = local.command('server-ca').description('the broker\'s server certificate authority');
  serverCa
    .command('rotate')
    .description('switch the broker to a server certificate from a new server CA, cross-signed by the old one (writes server-ca.pem and server-ca-bundle.pem)')
    .option(...dataDir())
    .action(async (opts: { dataDir: string }) => done(await localServerCaRotate(opts, io)));
  serverCa
    .command('retire-old')
    .description('stop serving the cross-signed chain of the last switch: from then on only the new server CA verifies the broker')
    .option(...dataDir())
    .action(async (opts: { dataDir: string }) => done(await localServerCaRetireOld(opts, io)));

  return program;
}
