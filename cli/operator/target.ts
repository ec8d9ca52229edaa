import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { ListStateMachinesCommand, SFNClient } from '@aws-sdk/client-sfn';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { CliError, ExitCode, NotFoundError, UsageError } from './exit-codes.js';

/**
 * Where the commands look: a real AWS account (default credential chain) or the local
 * runtime through its endpoints file. Discovery by name prefix is deliberately simple: Terraform
 * names the table `<prefix>-rotations` and the state machine `<prefix>-rotate-device`.
 */
export interface TargetOptions {
  region?: string;
  profile?: string;
  table?: string;
  stateMachineArn?: string;
  namePrefix?: string;
  local?: boolean;
  dataDir?: string;
}

export interface OperatorClients {
  ddb: DynamoDBDocumentClient;
  sfn: SFNClient;
  iot: IoTClient;
}

export interface Target {
  kind: 'aws' | 'local';
  region: string;
  tableName: string;
  clients: OperatorClients;
  /** The local edge URL; undefined for AWS (the SDK picks the endpoint). */
  endpoint?: string;
  /** Resolved on first use: only `retry` needs it, and discovery costs a ListStateMachines. */
  stateMachineArn(): Promise<string>;
  destroy(): void;
}

export const DEFAULT_NAME_PREFIX = 'rotor';
export const DEFAULT_DATA_DIR = '.rotor/local';

export function tableNameFor(prefix: string): string {
  return `${prefix}-rotations`;
}
export function stateMachineNameFor(prefix: string): string {
  return `${prefix}-rotate-device`;
}

/** The part of the local runtime's DATA_DIR/endpoints.json the operator commands read. */
export interface LocalEndpoints {
  awsEndpoint: string;
  region: string;
  stateMachineArn: string;
  tableName: string;
}

export async function readLocalEndpoints(dataDir: string): Promise<LocalEndpoints> {
  const file = join(resolve(dataDir), 'endpoints.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new NotFoundError(`no local runtime found: ${file} does not exist (start it first, or pass --data-dir)`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(`${file} is not valid JSON`, ExitCode.Failure);
  }
  const obj = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  for (const field of ['awsEndpoint', 'region', 'stateMachineArn', 'tableName'] as const) {
    if (typeof obj[field] !== 'string' || obj[field] === '') {
      throw new CliError(`${file} has no ${field}: is it from an older runtime?`, ExitCode.Failure);
    }
  }
  return {
    awsEndpoint: obj.awsEndpoint as string,
    region: obj.region as string,
    stateMachineArn: obj.stateMachineArn as string,
    tableName: obj.tableName as string,
  };
}

function buildClients(config: { region: string; endpoint?: string; profile?: string; local: boolean }): OperatorClients {
  const common = {
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    ...(config.profile ? { profile: config.profile } : {}),
    // The local runtime routes on the SigV4 scope and checks no secret.
    ...(config.local ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
  };
  return {
    ddb: DynamoDBDocumentClient.from(new DynamoDBClient(common), { marshallOptions: { removeUndefinedValues: true } }),
    sfn: new SFNClient(common),
    iot: new IoTClient(common),
  };
}

export async function discoverStateMachineArn(sfn: SFNClient, name: string, region: string): Promise<string> {
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new ListStateMachinesCommand({ nextToken, maxResults: 1000 }));
    const found = page.stateMachines?.find((machine) => machine.name === name);
    if (found?.stateMachineArn) return found.stateMachineArn;
    nextToken = page.nextToken;
  } while (nextToken);
  throw new NotFoundError(`no state machine named ${name} in ${region}: pass --state-machine-arn ARN or --name-prefix PREFIX`);
}

function memo(fn: () => Promise<string>): () => Promise<string> {
  let value: Promise<string> | undefined;
  return () => (value ??= fn());
}

export async function connect(options: TargetOptions): Promise<Target> {
  const prefix = options.namePrefix ?? DEFAULT_NAME_PREFIX;
  if (!/^[A-Za-z0-9_.-]{1,200}$/.test(prefix)) throw new UsageError(`--name-prefix ${JSON.stringify(prefix)} is not a valid resource name prefix`);
  if (options.local) {
    if (options.region || options.profile) throw new UsageError('--local takes its region and credentials from the endpoints file; drop --region/--profile');
    const endpoints = await readLocalEndpoints(options.dataDir ?? DEFAULT_DATA_DIR);
    const clients = buildClients({ region: endpoints.region, endpoint: endpoints.awsEndpoint, local: true });
    const arn = options.stateMachineArn ?? endpoints.stateMachineArn;
    return {
      kind: 'local',
      region: endpoints.region,
      tableName: options.table ?? endpoints.tableName,
      clients,
      endpoint: endpoints.awsEndpoint,
      stateMachineArn: async () => arn,
      destroy: () => destroyClients(clients),
    };
  }
  if (options.dataDir) throw new UsageError('--data-dir only applies with --local');
  const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!region) throw new UsageError('no AWS region: pass --region or set AWS_REGION');
  const clients = buildClients({ region, profile: options.profile, local: false });
  const explicitArn = options.stateMachineArn;
  return {
    kind: 'aws',
    region,
    tableName: options.table ?? tableNameFor(prefix),
    clients,
    stateMachineArn: memo(async () => explicitArn ?? discoverStateMachineArn(clients.sfn, stateMachineNameFor(prefix), region)),
    destroy: () => destroyClients(clients),
  };
}

/** The clients only `rotor dlq` needs (SQS, Lambda), for the same account or local runtime as the target. */
export function deadLetterClients(target: Target, profile?: string): { sqs: SQSClient; lambda: LambdaClient } {
  const common = {
    region: target.region,
    ...(target.endpoint ? { endpoint: target.endpoint } : {}),
    ...(profile && target.kind === 'aws' ? { profile } : {}),
    ...(target.kind === 'local' ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
  };
  return { sqs: new SQSClient(common), lambda: new LambdaClient(common) };
}

function destroyClients(clients: OperatorClients): void {
  clients.ddb.destroy();
  clients.sfn.destroy();
  clients.iot.destroy();
}
