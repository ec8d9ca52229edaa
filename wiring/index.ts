import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Typed access to wiring/wiring.json, the one description of how Rotor is wired, read by
 * Terraform (terraform/locals.tf) and by the local runtime. References inside it are
 * strings resolved by `resolveReference` against the values of one deployment.
 */
export const REPO_ROOT = resolve(__dirname, '..');
export const WIRING_FILE = join(REPO_ROOT, 'wiring', 'wiring.json');

export interface SettingSpec {
  default: string | number;
  description: string;
}

export interface FunctionSpec {
  description: string;
  timeoutSeconds: number;
  memoryMb: number;
  /** Environment variable → reference. */
  environment: Record<string, string>;
  /** IAM action → resource kind. */
  permissions: Record<string, string>;
}

export interface RuleSpec {
  messageType: 'csr_res' | 'crt_ack' | 'crt_err' | 'trust_ack' | 'trust_err';
  function: string;
}

/** The functions Lambda invokes asynchronously, and what happens to an event they fail. */
export interface AsyncInvocationSpec {
  functions: string[];
  /** Lambda's retries after the first failed attempt (0-2). */
  maximumRetryAttempts: number;
  /** How long Lambda keeps trying an event before it goes to the dead-letter queue (60-21600). */
  maximumEventAgeSeconds: number;
}

/** The queue between the IoT rules and the function they feed, and its event source mapping. */
export interface RuleQueueSpec {
  /** The queue's name after the deployment's prefix: NAME_PREFIX-NAME. */
  name: string;
  /** The function the rules name and the event source mapping invokes. */
  function: string;
  /** Records per invocation (1-10 without a batching window). */
  batchSize: number;
  maximumBatchingWindowSeconds: number;
  /** Invocations of the function the mapping runs at once (2-1000). */
  maximumConcurrency: number;
  /** How long a received record stays hidden: at least the function's timeout (AWS advises six times). */
  visibilityTimeoutSeconds: number;
  /** Receives before a record moves to the dead-letter queue. */
  maxReceiveCount: number;
  messageRetentionSeconds: number;
}

/** A state machine of the wiring: its ASL template, what fills its placeholders, what its role may do. */
export interface StateMachineSpec {
  name: string;
  definition: string;
  substitutions: Record<string, string>;
  permissions: Record<string, string>;
}

export interface Wiring {
  settings: Record<string, SettingSpec>;
  functions: Record<string, FunctionSpec>;
  stateMachine: StateMachineSpec;
  /** The server trust-store update (protocol v1.2), started by `rotor trust push`. */
  trustStateMachine: StateMachineSpec;
  rules: RuleSpec[];
  subscriptions: { topic: 'audit'; function: string }[];
  asyncInvocations: AsyncInvocationSpec;
  ruleQueue: RuleQueueSpec;
  table: {
    partitionKey: string;
    sortKey: string;
    statusIndex: {
      name: string;
      partitionKey: string;
      sortKey: string;
      /** Attributes projected besides the keys (INCLUDE): never the task token. */
      nonKeyAttributes: string[];
    };
    ttlAttribute: string;
  };
  /** The CA rollover's state machine (statemachines/ca-rollover.asl.json). */
  caRollover: StateMachineSpec;
}

let cached: Wiring | undefined;
export function loadWiring(): Wiring {
  cached ??= JSON.parse(readFileSync(WIRING_FILE, 'utf8')) as Wiring;
  return cached;
}

export type Settings = Record<string, string | number>;

export function defaultSettings(wiring: Wiring = loadWiring()): Settings {
  return Object.fromEntries(Object.entries(wiring.settings).map(([name, spec]) => [name, spec.default]));
}

/** The dead-letter queue (on-failure destination) of an asynchronously invoked function, as Terraform names it. */
export function deadLetterQueueName(functionName: string, namePrefix = 'rotor'): string {
  return `${namePrefix}-${functionName}-dlq`;
}

/** The queue the IoT rules write device messages to, as Terraform names it. */
export function ruleQueueName(namePrefix = 'rotor', wiring: Wiring = loadWiring()): string {
  return `${namePrefix}-${wiring.ruleQueue.name}`;
}

/**
 * The functions with a dead-letter queue: those Lambda invokes asynchronously (their on-failure
 * destination) and the one fed by the rule queue (the queue's redrive target).
 */
export function deadLetterFunctions(wiring: Wiring = loadWiring()): string[] {
  return [...new Set([...wiring.asyncInvocations.functions, wiring.ruleQueue.function])].sort();
}

/** The concrete values of one deployment that references resolve to. */
export interface Deployment {
  tableName: string;
  stateMachineArn: string;
  functionArn: (name: string) => string;
  topicArns: { audit: string; escalation: string };
  iotDataEndpoint: string;
  region: string;
  settings: Settings;
}

export class WiringError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WiringError';
  }
}

export function resolveReference(ref: string, deployment: Deployment): string | number {
  const [kind, name] = ref.includes(':') ? [ref.slice(0, ref.indexOf(':')), ref.slice(ref.indexOf(':') + 1)] : [ref, ''];
  switch (kind) {
    case 'table':
      return deployment.tableName;
    case 'stateMachine':
      return deployment.stateMachineArn;
    case 'caRolloverStateMachine':
      return siblingStateMachineArn(deployment.stateMachineArn, loadWiring().caRollover.name);
    case 'iotDataEndpoint':
      return deployment.iotDataEndpoint;
    case 'region':
      return deployment.region;
    case 'statusIndex':
      return loadWiring().table.statusIndex.name;
    case 'function':
      return deployment.functionArn(name);
    case 'topic':
      if (name !== 'audit' && name !== 'escalation') throw new WiringError(`unknown topic reference ${ref}`);
      return deployment.topicArns[name];
    case 'setting': {
      const value = deployment.settings[name];
      if (value === undefined) throw new WiringError(`unknown setting reference ${ref}`);
      return value;
    }
    default:
      throw new WiringError(`unknown reference ${ref}`);
  }
}

/**
 * Another state machine of the deployment, given the rotation's ARN: the same prefix, as
 * Terraform names them (`<name_prefix>-<wiring name>`).
 */
export function siblingStateMachineArn(rotationStateMachineArn: string, name: string, wiring: Wiring = loadWiring()): string {
  const colon = rotationStateMachineArn.lastIndexOf(':');
  const rotationName = rotationStateMachineArn.slice(colon + 1);
  if (!rotationName.endsWith(wiring.stateMachine.name)) throw new WiringError(`${rotationStateMachineArn} is not named <prefix>${wiring.stateMachine.name}`);
  const prefix = rotationName.slice(0, rotationName.length - wiring.stateMachine.name.length);
  return `${rotationStateMachineArn.slice(0, colon + 1)}${prefix}${name}`;
}

/** A function's environment for one deployment. */
export function functionEnvironment(name: string, deployment: Deployment, wiring: Wiring = loadWiring()): Record<string, string> {
  const spec = wiring.functions[name];
  if (!spec) throw new WiringError(`no function ${name} in the wiring`);
  return Object.fromEntries(
    Object.entries(spec.environment).map(([key, ref]) => [key, String(resolveReference(ref, deployment))]),
  );
}

const PLACEHOLDER = /\$\{(\w+)\}/g;

/**
 * Fills the ASL template's ${placeholders} the way Terraform's templatefile does: string
 * placeholders sit inside quotes, numeric settings stand bare so that the result has numbers.
 */
export function renderStateMachine(deployment: Deployment, wiring: Wiring = loadWiring(), machine: StateMachineSpec = wiring.stateMachine): string {
  const template = readFileSync(join(REPO_ROOT, machine.definition), 'utf8');
  return template.replace(PLACEHOLDER, (_match, name: string) => {
    const ref = machine.substitutions[name];
    if (ref === undefined) throw new WiringError(`${machine.definition} uses \${${name}}, which the wiring does not define`);
    return String(resolveReference(ref, deployment));
  });
}

/** The trust-update state machine's name in a deployment with this prefix, and its ARN given the rotation's. */
export function trustStateMachineArn(rotationStateMachineArn: string, namePrefix = 'rotor', wiring: Wiring = loadWiring()): string {
  return `${rotationStateMachineArn.slice(0, rotationStateMachineArn.lastIndexOf(':') + 1)}${namePrefix}-${wiring.trustStateMachine.name}`;
}

/** The placeholders a state machine's ASL template uses (the rotation's by default). */
export function templatePlaceholders(wiring: Wiring = loadWiring(), machine: StateMachineSpec = wiring.stateMachine): string[] {
  const template = readFileSync(join(REPO_ROOT, machine.definition), 'utf8');
  return [...new Set([...template.matchAll(PLACEHOLDER)].map((m) => m[1]))].sort();
}

/** A deployment with made-up ARNs, for tests and tools that only need a well-formed definition. */
export function exampleDeployment(region = 'us-east-1', account = '123456789012', settings: Settings = defaultSettings()): Deployment {
  return {
    tableName: 'rotor-rotations',
    stateMachineArn: `arn:aws:states:${region}:${account}:stateMachine:rotor-rotate-device`,
    functionArn: (name) => `arn:aws:lambda:${region}:${account}:function:rotor-${name}`,
    topicArns: {
      audit: `arn:aws:sns:${region}:${account}:rotor-audit`,
      escalation: `arn:aws:sns:${region}:${account}:rotor-escalations`,
    },
    iotDataEndpoint: `https://example-ats.iot.${region}.amazonaws.com`,
    region,
    settings,
  };
}
