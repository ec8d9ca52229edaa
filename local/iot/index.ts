import { LOCAL_ACCOUNT, LOCAL_REGION, type LambdaInvoker, type SnsPublisher } from '../types.js';
import { DeviceDefenderAudit, type AccountAuditConfiguration } from './audit.js';
import { MqttBroker, type BrokerEvent } from './broker.js';
import { CROSS_SIGNABLE_PATH_LENGTH, LocalCa, type CaMaterial } from './ca.js';
import { IotControlPlane } from './control-plane.js';
import { IotDataPlane } from './data-plane.js';
import { IotRegistry, type ClientIdPolicy } from './registry.js';
import { RulesEngine, type RuleError } from './rules.js';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SqsUrlSender } from '../sqs/sqs-service.js';

export { LocalCa, certificateIdOf, AWS_DEFAULT_NOT_AFTER } from './ca.js';
export { IotRegistry, CertificateStatus, defaultDevicePolicy } from './registry.js';
export type { CertificateRecord, ClientIdPolicy, ProvisionDeviceInput, ProvisionedDevice } from './registry.js';
export { MqttBroker, DATA_PLANE_PRINCIPAL } from './broker.js';
export type { BrokerEvent, ConnectedClient } from './broker.js';
export type { CaCertificateRecord, CertificateMode, RegisterCaInput } from './registry.js';
export { RulesEngine } from './rules.js';
export type { RuleError, TopicRule, TopicRuleInput } from './rules.js';
export { DeviceDefenderAudit } from './audit.js';
export type { AuditNotification, AuditFinding, AuditTask } from './audit.js';
export { IotControlPlane } from './control-plane.js';
export { IotDataPlane } from './data-plane.js';
export { parseRuleSql, topicMatches } from './rule-sql.js';

export interface LocalIotOptions {
  invoker: LambdaInvoker;
  /** Where rules with an SQS action send (the local SQS). */
  queues?: SqsUrlSender;
  sns: SnsPublisher;
  region?: string;
  account?: string;
  /** MQTT over TLS port; 0 (default) picks a free one. */
  mqttPort?: number;
  mqttHost?: string;
  /** Registry and CA are kept here as JSON/PEM when given, and reloaded on the next start. */
  dataDir?: string;
  /** What DescribeEndpoint(iot:Data-ATS) answers: the edge endpoint the data-plane client uses. */
  dataEndpoint?: () => string;
  /** Validity of API-issued certificates in days (default: AWS's 2049-12-31). */
  issuedValidityDays?: number;
  auditConfiguration?: Partial<AccountAuditConfiguration>;
  now?: () => Date;
  onBrokerEvent?: (event: BrokerEvent) => void;
  onRuleError?: (error: RuleError) => void;
  /** Which client ids a certificate may connect with (local-only; Rotor's device policy by default). */
  clientIdPolicy?: ClientIdPolicy;
}

/** What `rotor local server-ca rotate` reports: the broker's new server CA and the ones before it. */
export interface ServerCaRotation {
  /** PEM of the CA that signs the broker's server certificate now. */
  caPem: string;
  /** PEMs of the earlier server CAs, oldest first (devices still trusting only these cannot verify the broker). */
  previousCaPems: string[];
  serverCertificatePem: string;
  /**
   * The new CA cross-signed by the one before it, served after the leaf until `retireOldServerCa`:
   * devices that trust only the old CA still verify the broker. Absent when the old CA cannot
   * cross-sign (a data dir made before cross-signable CAs: see `notCrossSigned`).
   */
  crossCertificatePem?: string;
  /** Why the switch is not cross-signed, when it is not. */
  notCrossSigned?: string;
}

/** What `rotor local server-ca retire-old` reports. */
export interface ServerCaRetirement {
  /** PEM of the CA that alone verifies the broker from now on. */
  caPem: string;
  /** The cross-certificate no longer served; absent when none was (nothing changed). */
  retiredCrossCertificatePem?: string;
}

export interface LocalIot {
  ca: LocalCa;
  registry: IotRegistry;
  rules: RulesEngine;
  audit: DeviceDefenderAudit;
  broker: MqttBroker;
  controlPlane: IotControlPlane;
  dataPlane: IotDataPlane;
  /** mqtts://host:port for devices. */
  mqttUrl: string;
  /**
   * Local-only: switches the broker to a server certificate from a new server CA (made here,
   * kept in the data dir), keeping the old CAs for a trust-store update. Devices that trust
   * only the old CA stop verifying the broker on their next connection.
   */
  rotateServerCa(): Promise<ServerCaRotation>;
  /**
   * Local-only: stops serving the cross-certificate of the last switch, once every device trusts
   * the new CA. Devices that trust only the old CA stop verifying the broker on their next connection.
   */
  retireOldServerCa(): ServerCaRetirement;
  stop(): Promise<void>;
}

const CA_FILE = 'iot-ca.json';
/** The server CAs after a `server-ca rotate`, oldest first; absent: the device CA signs the server certificate. */
const SERVER_CAS_FILE = 'iot-server-cas.json';
/** The cross-certificate the broker serves during a switch ({ certificatePem }); absent: none served. */
const SERVER_CROSS_FILE = 'iot-server-ca-cross.json';

function loadCrossCertificate(dataDir: string | undefined): string | undefined {
  if (!dataDir || !existsSync(join(dataDir, SERVER_CROSS_FILE))) return undefined;
  return (JSON.parse(readFileSync(join(dataDir, SERVER_CROSS_FILE), 'utf8')) as { certificatePem: string }).certificatePem;
}

function loadServerCas(dataDir: string | undefined): Promise<LocalCa[]> {
  if (!dataDir || !existsSync(join(dataDir, SERVER_CAS_FILE))) return Promise.resolve([]);
  const materials = JSON.parse(readFileSync(join(dataDir, SERVER_CAS_FILE), 'utf8')) as CaMaterial[];
  return Promise.all(materials.map((m) => LocalCa.load(m)));
}

/**
 * The device CA also signs the first server certificate, so it must be able to cross-sign the
 * server CA that succeeds it (`server-ca rotate`). A data dir made before that keeps its CA
 * (pathLenConstraint 0): its devices keep working, but its server-CA switch cannot be cross-signed.
 */
function createDeviceCa(): Promise<LocalCa> {
  return LocalCa.create(undefined, { pathLength: CROSS_SIGNABLE_PATH_LENGTH });
}

async function loadOrCreateCa(dataDir: string | undefined): Promise<LocalCa> {
  if (!dataDir) return createDeviceCa();
  const file = join(dataDir, CA_FILE);
  if (existsSync(file)) return LocalCa.load(JSON.parse(readFileSync(file, 'utf8')));
  const ca = await createDeviceCa();
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, JSON.stringify(ca.material(), null, 2), { mode: 0o600 });
  return ca;
}

/** Starts the local AWS IoT: CA, registry, rules, audit, the MQTT broker and both APIs. */
export async function startLocalIot(options: LocalIotOptions): Promise<LocalIot> {
  const region = options.region ?? LOCAL_REGION;
  const account = options.account ?? LOCAL_ACCOUNT;
  const ca = await loadOrCreateCa(options.dataDir);
  const registry = new IotRegistry({ ca, region, account, now: options.now, dataDir: options.dataDir, issuedValidityDays: options.issuedValidityDays });
  const rules = new RulesEngine({ invoker: options.invoker, queues: options.queues, region, account, now: options.now, onError: options.onRuleError });
  const audit = new DeviceDefenderAudit({ registry, sns: options.sns, now: options.now, initialConfiguration: options.auditConfiguration });
  const serverCas = await loadServerCas(options.dataDir);
  const serverCross = serverCas.length > 0 ? loadCrossCertificate(options.dataDir) : undefined;
  const broker = await MqttBroker.start({
    registry, rules, port: options.mqttPort, host: options.mqttHost, now: options.now, onEvent: options.onBrokerEvent, clientIdPolicy: options.clientIdPolicy,
    serverCa: serverCas.at(-1), ...(serverCross ? { serverCrossCertificatePem: serverCross } : {}),
  });
  const mqttUrl = `mqtts://${broker.host}:${broker.port}`;
  const controlPlane = new IotControlPlane({ registry, audit, rules, dataEndpoint: options.dataEndpoint ?? (() => `${broker.host}:${broker.port}`) });
  const dataPlane = new IotDataPlane(() => broker);
  return {
    ca, registry, rules, audit, broker, controlPlane, dataPlane, mqttUrl,
    async rotateServerCa() {
      // The device CA signed the first server certificate; each rotation adds a CA of its own.
      const previous = [ca, ...serverCas];
      const current = previous.at(-1) as LocalCa;
      const next = await LocalCa.create(`Rotor Local Server CA ${previous.length + 1}`, { pathLength: CROSS_SIGNABLE_PATH_LENGTH });
      // C5: the old CA stays in service until every device acked, through the new CA cross-signed by it.
      const cross = current.canCrossSign ? (await current.crossSign(next)).certificatePem : undefined;
      serverCas.push(next);
      if (options.dataDir) {
        mkdirSync(options.dataDir, { recursive: true });
        writeFileSync(join(options.dataDir, SERVER_CAS_FILE), JSON.stringify(serverCas.map((c) => c.material()), null, 2), { mode: 0o600 });
        if (cross) writeFileSync(join(options.dataDir, SERVER_CROSS_FILE), JSON.stringify({ certificatePem: cross }, null, 2));
        else rmSync(join(options.dataDir, SERVER_CROSS_FILE), { force: true });
      }
      await broker.useServerCa(next, cross);
      return {
        caPem: next.certificatePem,
        previousCaPems: previous.map((c) => c.certificatePem),
        serverCertificatePem: broker.serverCertificatePem,
        ...(cross
          ? { crossCertificatePem: cross }
          : { notCrossSigned: 'the previous server CA has pathLenConstraint 0 (made before cross-signable local CAs): a CA it cross-signs cannot verify under it' }),
      };
    },
    retireOldServerCa() {
      const retired = broker.serverCrossCertificatePem;
      if (retired) {
        broker.retireCrossCertificate();
        if (options.dataDir) rmSync(join(options.dataDir, SERVER_CROSS_FILE), { force: true });
      }
      return { caPem: broker.caPem, ...(retired ? { retiredCrossCertificatePem: retired } : {}) };
    },
    async stop() {
      await broker.stop();
      await audit.idle();
      await rules.idle();
    },
  };
}
