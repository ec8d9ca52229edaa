import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient, ResourceNotFoundException, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { CreatePolicyCommand, CreateTopicRuleCommand, IoTClient, UpdateAccountAuditConfigurationCommand } from '@aws-sdk/client-iot';
import { LambdaClient, PutFunctionEventInvokeConfigCommand } from '@aws-sdk/client-lambda';
import { CreateStateMachineCommand, SFNClient } from '@aws-sdk/client-sfn';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { ruleNameFor, ruleSqlFor } from '../domain/topics.js';
import { deadLetterQueueName, defaultSettings, functionEnvironment, loadWiring, REPO_ROOT, renderStateMachine, ruleQueueName, type Deployment, type RuleQueueSpec, type Settings, type StateMachineSpec, type Wiring } from '../wiring/index.js';
import { DynamoDbDirectPath } from './dynamodb/direct-path.js';
import { DynamoDbLocal } from './dynamodb/dynamodb-local.js';
import { rotationTableInput } from './dynamodb/rotation-table.js';
import { DEFAULT_EDGE_PORT, EdgeServer } from './edge/edge-server.js';
import { silentLogger, type LocalLogger } from './edge/logger.js';
import { AWS_DEFAULT_QUOTAS_NAME, QuotaEnforcer, type LocalQuotas } from './edge/quotas.js';
import { defaultDevicePolicy, startLocalIot, type ClientIdPolicy, type LocalIot } from './iot/index.js';
import { ensureDefaultPrivateCa, PcaService, PrivateCa, signerSettings, type LocalSignerOptions } from './pca/index.js';
import { LambdaService } from './lambda/lambda-service.js';
import { SnsService } from './sns/sns-service.js';
import { EventSourceMapping } from './sqs/event-source-mapping.js';
import { startSchedule } from './events/schedule.js';
import { DEFAULT_RENEWAL } from '../domain/pacing/calendar.js';
import { SqsService } from './sqs/sqs-service.js';
import { DirectDynamoDb } from './stepfunctions/direct-dynamodb.js';
import { StepFunctionsService } from './stepfunctions/service.js';
import { LOCAL_ACCOUNT, LOCAL_REGION, scaledClock } from './types.js';


/**
 * Starts the whole local AWS and deploys Rotor on it the way Terraform does: every resource
 * comes from the wiring (wiring/wiring.json) and is created through the same APIs, with the
 * SDK, through the edge — so a drift between the wiring, the APIs and the functions shows up
 * locally first. Only the Lambda functions are deployed in-process (there is no zip upload).
 */
export interface LocalAwsOptions {
  /** Edge port; 4566 by default, 0 for a free one. */
  port?: number;
  /** MQTT over TLS port; 8883 by default, 0 for a free one. */
  mqttPort?: number;
  /** Tables, the IoT registry and CA, SNS messages, logs and endpoints.json live here; in memory when absent. */
  dataDir?: string;
  /** Workflow time scale: 0.01 makes a 900 s wait last 9 s. */
  timeScale?: number;
  /** Overrides of the wiring's tunable settings. */
  settings?: Partial<Settings>;
  /**
   * More environment for every function, as Terraform passes it beside the wiring's: the pacing
   * settings (ROTOR_PACING_QUOTAS, ROTOR_PACING_SAFETY_FRACTION, ROTOR_PACING_ENABLED;
   * functions/core/pacing-settings.ts). The time scale reaches them as ROTOR_TIME_SCALE.
   */
  environment?: Record<string, string>;
  /** Overrides of the rule queue's settings (wiring ruleQueue): tests shorten maxReceiveCount. */
  ruleQueue?: Partial<Pick<RuleQueueSpec, 'maxReceiveCount' | 'maximumConcurrency' | 'batchSize'>>;
  /** Validity in days of certificates issued through the IoT API (rotations); AWS's 2049 date when absent. */
  issuedValidityDays?: number;
  /**
   * Who signs the rotations' new certificates (domain/signer.ts): 'aws-iot' (default) or
   * 'private-ca', with the local Private CA `rotor local up` makes, through the wiring's signer
   * settings as Terraform sets them (local/pca/signer-settings.ts).
   */
  signer?: LocalSignerOptions;
  /** Worker threads per function. */
  functionConcurrency?: number;
  /**
   * The edge serves the local console (the CLI mounts it): the escalations then link to its
   * execution pages, through the functions' ROTOR_CONSOLE_URL, instead of to AWS's console.
   */
  console?: boolean;
  /** Where the bundles are; dist/functions by default. */
  functionsDir?: string;
  logger?: LocalLogger;
  /**
   * Local-only: 'any' lets a device connect with any client id, as a fleet policy allowing
   * iot:Connect on client/* does. Tests use it to show a device cannot act for another one.
   */
  clientIdPolicy?: ClientIdPolicy;
  /**
   * Local-only: enforce these quotas as the account's (local/edge/quotas.ts), scaled by the time
   * scale; absent, nothing is throttled. A quotas file is also what Rotor's functions are told
   * (ROTOR_PACING_QUOTAS), as a deployment whose `api_quotas` matches its account.
   */
  quotas?: LocalQuotas;
  /**
   * false: the functions are not told a quotas file's figures, so Rotor paces to AWS's defaults
   * while the account enforces the file — an account with less than Rotor was told. Default true.
   */
  pacingFromQuotas?: boolean;
}

/** The pacing settings functions get for a quotas file: its own JSON (empty for AWS's defaults). */
function pacingEnvironment(quotas: LocalQuotas | undefined): Record<string, string> {
  if (!quotas || quotas.source === AWS_DEFAULT_QUOTAS_NAME) return {};
  const { safetyFraction, quotas: table } = quotas.settings;
  const named = Object.fromEntries(
    Object.entries(table)
      .filter(([, quota]) => quota.source === 'quotas-file')
      .map(([bucket, quota]) => [bucket, quota.kind === 'rate' ? { rate: quota.rate, burst: quota.burst } : { concurrency: quota.concurrency }]),
  );
  return { ROTOR_PACING_QUOTAS: JSON.stringify({ safetyFraction, quotas: named }) };
}

export interface LocalEndpoints {
  awsEndpoint: string;
  region: string;
  mqtt: { host: string; port: number; caFile?: string };
  stateMachineArn: string;
  tableName: string;
  topics: { audit: string; escalation: string };
  devicePolicyName: string;
  /** The local Private CA's certificate authority, registered with IoT (the private-ca signer's CA). */
  privateCaArn?: string;
  /** The trust-update state machine (protocol v1.2) that `rotor trust push` starts. */
  trustStateMachineArn?: string;
  /** The CA rollover state machine (`rotor ca rollover --local`). */
  caRolloverStateMachineArn?: string;
}

export interface LocalAws {
  endpoints: LocalEndpoints;
  deployment: Deployment;
  edge: EdgeServer;
  dynamodb: DynamoDbLocal;
  sns: SnsService;
  sqs: SqsService;
  /** The event source mapping of the rule queue: device messages reach device-message through it. */
  ruleQueueMapping: EventSourceMapping;
  lambda: LambdaService;
  iot: LocalIot;
  stepFunctions: StepFunctionsService;
  /** The quotas enforced (`--quotas`), and what they throttled; absent when nothing is. */
  quotas?: QuotaEnforcer;
  /** The local AWS Private CA (acm-pca). */
  pca: PrivateCa;
  /** The CA devices verify the broker with (PEM). */
  caPem: string;
  stop(): Promise<void>;
}

export class LocalRuntimeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LocalRuntimeError';
  }
}

export const ENDPOINTS_FILE = 'endpoints.json';
export const CA_FILE = 'ca.pem';
export const DEFAULT_MQTT_PORT = 8883;
/** Resource names, as terraform/ names them with its default prefix. */
export const PREFIX = 'rotor';
export const DEVICE_POLICY_NAME = `${PREFIX}-device`;
const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

export function functionName(name: string): string {
  return `${PREFIX}-${name}`;
}

/** The bundle of each function in the wiring, or an error naming `make build`. */
export function functionBundles(functionsDir = join(REPO_ROOT, 'dist', 'functions')): Record<string, string> {
  const names = Object.keys(loadWiring().functions);
  const bundles = Object.fromEntries(names.map((name) => [name, join(functionsDir, name, 'index.mjs')]));
  const missing = names.filter((name) => !existsSync(bundles[name]));
  if (missing.length > 0) {
    throw new LocalRuntimeError(`the function bundles are missing (${missing.join(', ')} under ${functionsDir}): run \`make build\` first`);
  }
  return bundles;
}

/** A state machine's name, as terraform/ names it with its default prefix. */
function stateMachineName(machine: StateMachineSpec): string {
  return `${PREFIX}-${machine.name}`;
}

/** The one ARN builder of the local state machines. */
export function stateMachineArn(machine: StateMachineSpec, region = LOCAL_REGION, accountId = LOCAL_ACCOUNT): string {
  return `arn:aws:states:${region}:${accountId}:stateMachine:${stateMachineName(machine)}`;
}

/** The wiring's state machines with the role each runs as (terraform/iam.tf, trust.tf, ca-rollover.tf). */
function stateMachines(wiring: Wiring): { machine: StateMachineSpec; role: string }[] {
  return [
    { machine: wiring.stateMachine, role: 'state-machine' },
    { machine: wiring.trustStateMachine, role: 'trust-state-machine' },
    { machine: wiring.caRollover, role: 'ca-rollover' },
  ];
}

async function ignoreExisting(action: Promise<unknown>): Promise<void> {
  try {
    await action;
  } catch (error) {
    // A data dir keeps the IoT registry between runs: what exists is what we would create.
    if (!(error instanceof Error && (error.name === 'ResourceAlreadyExistsException' || error.name === 'ResourceInUseException'))) throw error;
  }
}

export async function startLocalAws(options: LocalAwsOptions = {}): Promise<LocalAws> {
  const wiring = loadWiring();
  const bundles = functionBundles(options.functionsDir);
  const logger = options.logger ?? silentLogger;
  const region = LOCAL_REGION;
  const accountId = LOCAL_ACCOUNT;
  const dataDir = options.dataDir ? resolve(options.dataDir) : undefined;
  if (dataDir) mkdirSync(dataDir, { recursive: true });

  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const stop of stops.splice(0).reverse()) {
      try {
        await stop();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) logger.warn('local runtime stopped with errors', { errors: errors.map(String) });
  };

  try {
    const dynamodb = await DynamoDbLocal.start({ dataDir: dataDir ? join(dataDir, 'dynamodb') : undefined });
    stops.push(() => dynamodb.stop());

    const edge = new EdgeServer({ port: options.port ?? DEFAULT_EDGE_PORT, logger });
    const url = await edge.start();
    stops.push(() => edge.stop());

    const functionLog = dataDir ? join(dataDir, 'logs', 'functions.log') : undefined;
    if (functionLog) mkdirSync(join(dataDir as string, 'logs'), { recursive: true });
    const clock = scaledClock(options.timeScale ?? 1);
    const quotas = options.quotas ? new QuotaEnforcer(options.quotas, { timeScale: clock.scale }) : undefined;
    edge.quotas = quotas;
    // The functions' DynamoDB calls go straight to DynamoDB Local, counted with the edge's calls;
    // through the edge while a throttle fault for DynamoDB is pending (local/dynamodb/direct-path.ts).
    const dynamodbDirect = new DynamoDbDirectPath(dynamodb.endpoint);
    edge.countAlso(dynamodbDirect);
    edge.faults.onThrottleRulesChanged = (services) => {
      dynamodbDirect.viaEdge = services.has('dynamodb');
    };
    // The dead-letter queues: Lambda's on-failure destinations, kept with the data dir.
    const sqs = new SqsService({ endpointUrl: url, region, accountId, dataDir: dataDir ? join(dataDir, 'sqs') : undefined, logger });
    const lambda = new LambdaService({
      endpointUrl: url,
      clock,
      destinations: sqs,
      region,
      accountId,
      logger,
      defaultConcurrency: options.functionConcurrency,
      // Function logs go to a file, so `rotor local up` stays readable with a hundred devices rotating.
      // Without a log file or a logger, nothing would read it: the workers drop it themselves.
      output: functionLog ? (_name, _stream, chunk) => appendFileSync(functionLog, chunk) : options.logger ? undefined : 'discard',
      crashes: (name) => edge.faults.takeCrash(name),
      quotas,
      dynamodbDirect,
    });
    edge.faults.knownFunctions = () => lambda.functions().map((f) => f.name);
    stops.push(() => lambda.stop());
    const sns = new SnsService({ invoker: lambda, region, accountId, dataDir, logger });
    stops.push(() => sns.settled());

    const iot = await startLocalIot({
      invoker: lambda,
      queues: sqs,
      sns,
      region,
      account: accountId,
      mqttPort: options.mqttPort ?? DEFAULT_MQTT_PORT,
      mqttHost: '127.0.0.1',
      dataDir: dataDir ? join(dataDir, 'iot') : undefined,
      dataEndpoint: () => url,
      issuedValidityDays: options.issuedValidityDays,
      clientIdPolicy: options.clientIdPolicy,
      onRuleError: (error) => logger.warn('iot rule error', { error: JSON.stringify(error) }),
    });
    stops.push(() => iot.stop());

    // The engine's own DynamoDB tasks go straight to DynamoDB Local too, counted with the edge's calls.
    const engineDynamoDb = new DirectDynamoDb({ upstream: dynamodb.endpoint, edge: url, region, credentials: LOCAL_CREDENTIALS, viaEdge: () => dynamodbDirect.viaEdge });
    edge.countAlso(engineDynamoDb);
    stops.push(async () => engineDynamoDb.destroy());
    const stepFunctions = new StepFunctionsService({ invoker: lambda, dynamodb: engineDynamoDb.client, sns, clock, region, accountId, ...(quotas ? { transition: (signal: AbortSignal) => quotas.transition(signal) } : {}) });
    stops.push(() => stepFunctions.stop());

    edge.register(dynamodb.route()).register(sns).register(sqs).register(lambda).register(iot.controlPlane).register(iot.dataPlane).register(stepFunctions);
    const pca = new PrivateCa({ region, account: accountId, dataDir: dataDir ? join(dataDir, 'pca') : undefined });
    edge.register(new PcaService(pca));
    // Before the functions are deployed: with the private-ca signer, its ARN is one of their settings.
    const privateCa = await ensureDefaultPrivateCa(pca, iot.registry);

    const deployment: Deployment = {
      tableName: `${PREFIX}-rotations`,
      stateMachineArn: stateMachineArn(wiring.stateMachine, region, accountId),
      functionArn: (name) => lambda.functionArn(functionName(name)),
      topicArns: { audit: `arn:aws:sns:${region}:${accountId}:${PREFIX}-audit`, escalation: `arn:aws:sns:${region}:${accountId}:${PREFIX}-escalations` },
      iotDataEndpoint: url,
      region,
      settings: { ...defaultSettings(wiring), ...signerSettings(options.signer, privateCa.certificateAuthorityArn), ...(options.settings as Settings | undefined) },
    };
    // The functions pace in real time against quotas at the workflow's scale (a 10 TPS quota is
    // 1,000 calls/s at 0.01), as the local runtime enforces them: the demo is not slowed.
    // The host's own ROTOR_PACING_*, ROTOR_CALENDAR_* and ROTOR_RENEWAL_* (as `ROTOR_PACING_ENABLED=false rotor demo`) pass through too.
    const fromHost = Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => /^ROTOR_(PACING|CALENDAR|RENEWAL)_/.test(entry[0]) && typeof entry[1] === 'string'));
    // A quotas file is what the functions are told too (unless pacingFromQuotas is false).
    const fromQuotas = options.pacingFromQuotas === false ? {} : pacingEnvironment(options.quotas);
    const environment = { ROTOR_TIME_SCALE: String(options.timeScale ?? 1), ...fromHost, ...fromQuotas, ...(options.environment ?? {}) };
    const ruleQueue: RuleQueueSpec = { ...wiring.ruleQueue, ...options.ruleQueue };
    await deploy({ url, deployment, lambda, bundles, logger, console: options.console, environment, ruleQueue });
    // The rule queue's event source mapping (terraform/lambda.tf), in-process like the functions.
    const ruleQueueMapping = new EventSourceMapping({
      sqs,
      queueName: ruleQueueName(PREFIX, wiring),
      invoker: lambda,
      functionName: functionName(ruleQueue.function),
      batchSize: ruleQueue.batchSize,
      maximumConcurrency: ruleQueue.maximumConcurrency,
      visibilityTimeoutSeconds: ruleQueue.visibilityTimeoutSeconds,
      functionTimeoutSeconds: wiring.functions[ruleQueue.function].timeoutSeconds,
      clock,
      region,
      logger,
    }).start();
    stops.push(() => ruleQueueMapping.stop());
    // The renewal calendar's sweep (terraform/calendar.tf: every 15 minutes, here × the time scale).
    const calendarSweep = startSchedule({ invoker: lambda, functionName: functionName('start-rotations'), periodMs: DEFAULT_RENEWAL.sweepS * 1000 * (options.timeScale ?? 1), input: { sweep: 'calendar' }, logger });
    stops.push(async () => calendarSweep.stop());
    edge.addAdminRoute('iot/provision', (body) => provisionThroughRegistry({ iot }, body));
    edge.addAdminRoute('iot/server-ca/rotate', async () => {
      const rotation = await iot.rotateServerCa();
      // ca.pem is what devices verify the broker with: from now on, the new server CA.
      if (dataDir) writeFileSync(join(dataDir, CA_FILE), rotation.caPem);
      return rotation;
    });
    edge.addAdminRoute('iot/server-ca/retire-old', async () => iot.retireOldServerCa());

    const caPem = iot.ca.certificatePem;
    const endpoints: LocalEndpoints = {
      awsEndpoint: url,
      region,
      mqtt: { host: iot.broker.host, port: iot.broker.port },
      stateMachineArn: deployment.stateMachineArn,
      tableName: deployment.tableName,
      topics: deployment.topicArns,
      devicePolicyName: DEVICE_POLICY_NAME,
      privateCaArn: privateCa.certificateAuthorityArn,
      trustStateMachineArn: stateMachineArn(wiring.trustStateMachine, region, accountId),
      caRolloverStateMachineArn: stateMachineArn(wiring.caRollover, region, accountId),
    };
    if (dataDir) {
      endpoints.mqtt.caFile = join(dataDir, CA_FILE);
      writeFileSync(endpoints.mqtt.caFile, caPem);
      writeFileSync(join(dataDir, ENDPOINTS_FILE), `${JSON.stringify(endpoints, null, 2)}\n`);
      // A stopped runtime must not leave an endpoints file that looks alive.
      stops.unshift(async () => {
        const { rmSync } = await import('node:fs');
        rmSync(join(dataDir, ENDPOINTS_FILE), { force: true });
      });
    }
    logger.info('local AWS ready', { endpoint: url, mqtt: `${endpoints.mqtt.host}:${endpoints.mqtt.port}` });

    let stopping: Promise<void> | undefined;
    return { endpoints, deployment, edge, dynamodb, sns, sqs, ruleQueueMapping, lambda, iot, stepFunctions, pca, ...(quotas ? { quotas } : {}), caPem, stop: () => (stopping ??= stopAll()) };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Creates Rotor's resources from the wiring, through the APIs, like terraform/main.tf. */
async function deploy(input: {
  url: string;
  deployment: Deployment;
  lambda: LambdaService;
  bundles: Record<string, string>;
  logger: LocalLogger;
  console?: boolean;
  environment: Record<string, string>;
  ruleQueue: RuleQueueSpec;
}): Promise<void> {
  const { url, deployment, lambda, bundles } = input;
  const wiring = loadWiring();
  const config = { endpoint: url, region: deployment.region, credentials: LOCAL_CREDENTIALS };
  const dynamodb = new DynamoDBClient(config);
  const sns = new SNSClient(config);
  const sfn = new SFNClient(config);
  const iot = new IoTClient(config);
  const sqs = new SQSClient(config);
  const lambdaClient = new LambdaClient(config);
  try {
    // The table: keys, the sparse by-status GSI, TTL on history items.
    const table = wiring.table;
    let exists = true;
    try {
      await dynamodb.send(new DescribeTableCommand({ TableName: deployment.tableName }));
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw error;
      exists = false;
    }
    if (!exists) {
      await dynamodb.send(new CreateTableCommand(rotationTableInput(deployment.tableName, table)));
      await dynamodb.send(new UpdateTimeToLiveCommand({ TableName: deployment.tableName, TimeToLiveSpecification: { AttributeName: table.ttlAttribute, Enabled: true } }));
    }

    // Topics (CreateTopic is idempotent and returns the ARN the deployment expects).
    for (const [kind, arn] of Object.entries(deployment.topicArns)) {
      const created = await sns.send(new CreateTopicCommand({ Name: arn.slice(arn.lastIndexOf(':') + 1) }));
      if (created.TopicArn !== arn) throw new LocalRuntimeError(`the ${kind} topic came out as ${created.TopicArn}, expected ${arn}`);
    }

    // Functions, each with its resolved environment, timeout and memory.
    for (const [name, spec] of Object.entries(wiring.functions)) {
      lambda.deploy({
        name: functionName(name),
        bundlePath: bundles[name],
        environment: { ...functionEnvironment(name, deployment, wiring), ...input.environment, ...(input.console ? { ROTOR_CONSOLE_URL: `${url}/console/` } : {}) },
        timeoutSeconds: spec.timeoutSeconds,
        memoryMb: spec.memoryMb,
        description: spec.description,
      });
    }
    // Asynchronous invocations: Lambda's retries, then the function's dead-letter queue (terraform/lambda.tf).
    const asyncInvocations = wiring.asyncInvocations;
    for (const name of asyncInvocations.functions) {
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: deadLetterQueueName(name, PREFIX), Attributes: { SqsManagedSseEnabled: 'true', MessageRetentionPeriod: '1209600' } }));
      const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
      await lambdaClient.send(
        new PutFunctionEventInvokeConfigCommand({
          FunctionName: functionName(name),
          MaximumRetryAttempts: asyncInvocations.maximumRetryAttempts,
          MaximumEventAgeInSeconds: asyncInvocations.maximumEventAgeSeconds,
          DestinationConfig: { OnFailure: { Destination: Attributes?.QueueArn } },
        }),
      );
    }
    // The rule queue (terraform/sqs.tf): the IoT rules write device messages to it; after
    // maxReceiveCount receives a message moves to the function's dead-letter queue.
    const ruleQueue = input.ruleQueue;
    const ruleDlq = await sqs.send(new CreateQueueCommand({ QueueName: deadLetterQueueName(ruleQueue.function, PREFIX), Attributes: { SqsManagedSseEnabled: 'true', MessageRetentionPeriod: '1209600' } }));
    const ruleDlqArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: ruleDlq.QueueUrl, AttributeNames: ['QueueArn'] }))).Attributes?.QueueArn;
    const { QueueUrl: ruleQueueUrl } = await sqs.send(
      new CreateQueueCommand({
        QueueName: ruleQueueName(PREFIX, wiring),
        Attributes: {
          SqsManagedSseEnabled: 'true',
          MessageRetentionPeriod: String(ruleQueue.messageRetentionSeconds),
          VisibilityTimeout: String(ruleQueue.visibilityTimeoutSeconds),
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: ruleDlqArn, maxReceiveCount: ruleQueue.maxReceiveCount }),
        },
      }),
    );
    for (const subscription of wiring.subscriptions) {
      await sns.send(new SubscribeCommand({ TopicArn: deployment.topicArns[subscription.topic], Protocol: 'lambda', Endpoint: deployment.functionArn(subscription.function) }));
    }

    // The state machines, each rendered from the same wiring (settings included), as terraform/
    // deploys them: the rotation, the trust update (`rotor trust push`) and the CA rollover.
    for (const { machine, role } of stateMachines(wiring)) {
      await sfn.send(
        new CreateStateMachineCommand({
          name: stateMachineName(machine),
          definition: renderStateMachine(deployment, wiring, machine),
          roleArn: `arn:aws:iam::${LOCAL_ACCOUNT}:role/${PREFIX}-${role}`,
          type: 'STANDARD',
        }),
      );
    }

    // IoT: the rules that carry device messages to Lambda, the device policy, the audit.
    for (const rule of wiring.rules) {
      await ignoreExisting(
        iot.send(
          new CreateTopicRuleCommand({
            ruleName: ruleNameFor(rule.messageType, PREFIX),
            // Every rule's function is fed through the rule queue (wiring ruleQueue; test/contract/wiring-async.test.ts).
            topicRulePayload: { sql: ruleSqlFor(rule.messageType), awsIotSqlVersion: '2016-03-23', ruleDisabled: false, actions: [{ sqs: { queueUrl: ruleQueueUrl, roleArn: `arn:aws:iam::${LOCAL_ACCOUNT}:role/${PREFIX}-iot-rule-queue`, useBase64: false } }] },
          }),
        ),
      );
    }
    await ignoreExisting(iot.send(new CreatePolicyCommand({ policyName: DEVICE_POLICY_NAME, policyDocument: defaultDevicePolicy(deployment.region, LOCAL_ACCOUNT) })));
    const checks = String(deployment.settings.auditChecks).split(',').map((check) => check.trim()).filter(Boolean);
    await iot.send(
      new UpdateAccountAuditConfigurationCommand({
        roleArn: `arn:aws:iam::${LOCAL_ACCOUNT}:role/${PREFIX}-audit`,
        auditCheckConfigurations: Object.fromEntries(checks.map((check) => [check, { enabled: true }])),
        auditNotificationTargetConfigurations: { SNS: { targetArn: deployment.topicArns.audit, roleArn: `arn:aws:iam::${LOCAL_ACCOUNT}:role/${PREFIX}-audit`, enabled: true } },
      }),
    );
  } finally {
    dynamodb.destroy();
    sns.destroy();
    sfn.destroy();
    iot.destroy();
    sqs.destroy();
    lambdaClient.destroy();
  }
}

/** The body of the local-only POST /_rotor/iot/provision route. */
export interface ProvisionRequest {
  thingName: string;
  /** PKCS#10 PEM: the caller keeps its private key; the local CA signs. */
  csrPem: string;
  /** notAfter this many days from now (negative: already expired). */
  expiresInDays?: number;
  /** The certificate's creation date this many days ago (the age check). */
  createdDaysAgo?: number;
}

export interface ProvisionAnswer {
  thingName: string;
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  caPem: string;
}

function parseProvisionRequest(body: unknown): ProvisionRequest {
  if (typeof body !== 'object' || body === null) throw new LocalRuntimeError('the provision request must be a JSON object');
  const value = body as Record<string, unknown>;
  if (typeof value.thingName !== 'string' || !value.thingName) throw new LocalRuntimeError('thingName (string) is required');
  if (typeof value.csrPem !== 'string' || !value.csrPem.includes('CERTIFICATE REQUEST')) throw new LocalRuntimeError('csrPem (a PEM PKCS#10 request) is required');
  for (const key of ['expiresInDays', 'createdDaysAgo'] as const) {
    if (value[key] !== undefined && (typeof value[key] !== 'number' || !Number.isFinite(value[key]))) throw new LocalRuntimeError(`${key} must be a number`);
  }
  return value as unknown as ProvisionRequest;
}

/**
 * Issues a device certificate with a chosen validity — which AWS's API cannot do (it always
 * signs until 2049) and the demo needs (certificates that are due for rotation). The thing,
 * the device policy and both attachments are made as Terraform's operator would.
 */
export async function provisionThroughRegistry(aws: Pick<LocalAws, 'iot'>, body: unknown): Promise<ProvisionAnswer> {
  const request = parseProvisionRequest(body);
  const device = await aws.iot.registry.provisionDevice({
    thingName: request.thingName,
    policyName: DEVICE_POLICY_NAME,
    csrPem: request.csrPem,
    expiresInDays: request.expiresInDays,
    createdDaysAgo: request.createdDaysAgo,
  });
  // caPem: what the device verifies the broker with (the server CA, after a `server-ca rotate`).
  return { thingName: device.thingName, certificateId: device.certificateId, certificateArn: device.certificateArn, certificatePem: device.certificatePem, caPem: aws.iot.broker.caPem };
}
