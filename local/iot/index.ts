import { LOCAL_ACCOUNT, LOCAL_REGION, type LambdaInvoker, type SnsPublisher } from '../types.js';
import { DeviceDefenderAudit, type AccountAuditConfiguration } from './audit.js';
import { MqttBroker, type BrokerEvent } from './broker.js';
import { CROSS_SIGNABLE_PATH_LENGTH, LocalCa, type CaMaterial } from './ca.js';
import { IotControlPlane } from './control-plane.js';
import { IotDataPlane } from './data-plane.js';
import { IotRegistry, type ClientIdPolicy } from './registry.js';
import { RulesEngine, type RuleError } from './rules.js';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
  stop(): Promise<void>;
}

const CA_FILE = 'iot-ca.json';
/** The server CAs after a `server-ca rotate`, oldest first; absent: the device CA signs the server certificate. */
const SERVER_CAS_FILE = 'iot-server-cas.json';

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
  const broker = await MqttBroker.start({ registry, rules, port: options.mqttPort, host: options.mqttHost, now: options.now, onEvent: options.onBrokerEvent, clientIdPolicy: options.clientIdPolicy, serverCa: serverCas.at(-1) });
  const mqttUrl = `mqtts://${broker.host}:${broker.port}`;
  const controlPlane = new IotControlPlane({ registry, audit, rules, dataEndpoint: options.dataEndpoint ?? (() => `${broker.host}:${broker.port}`) });
  const dataPlane = new IotDataPlane(() => broker);
  return {
    ca, registry, rules, audit, broker, controlPlane, dataPlane, mqttUrl,
    async rotateServerCa() {
      // The device CA signed the first server certificate; each rotation adds a CA of its own.
      const previous = [ca, ...serverCas];
      const next = await LocalCa.create(`Rotor Local Server CA ${previous.length + 1}`);
      serverCas.push(next);
      if (options.dataDir) {
        mkdirSync(options.dataDir, { recursive: true });
        writeFileSync(join(options.dataDir, SERVER_CAS_FILE), JSON.stringify(serverCas.map((c) => c.material()), null, 2), { mode: 0o600 });
      }
      await broker.useServerCa(next);
      return { caPem: next.certificatePem, previousCaPems: previous.map((c) => c.certificatePem), serverCertificatePem: broker.serverCertificatePem };
    },
    async stop() {
      await broker.stop();
      await audit.idle();
      await rules.idle();
    },
  };
}
