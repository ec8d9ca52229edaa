import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoTClient, StartOnDemandAuditTaskCommand } from '@aws-sdk/client-iot';
import { auditExecutionName } from '../../domain/naming.js';
import { CURRENT_SK, thingPk } from '../../domain/records.js';
import { RotationStatus, Step } from '../../domain/rotation.js';
import { Fleet } from '../../device-sim/fleet.js';
import { createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem } from '../../device-sim/keys.js';
import { DEVICE_POLICY_NAME, startLocalAws, type LocalAws } from '../../local/runtime.js';
import type { ExecutionDescription } from '../../local/stepfunctions/service.js';
import { REPO_ROOT, loadWiring } from '../../wiring/index.js';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';
import { findAwsCli, findBoto3, runWithBoto3, runWithCli, type ApiStep, type StepResult, type Transcript } from '../fixtures/official-clients/clients.js';

/**
 * `rotor local up` driven by official clients that are not the JS SDK: the AWS CLI v2 and boto3
 * as Debian packages them (awscli 2.9, python3-boto3 1.26, both signing IoT as `execute-api`).
 * After one real rotation on the runtime, each client lists and describes certificates, lists
 * the thing's principals, deactivates and reactivates a certificate, lists and describes the
 * state machine's executions and reads an execution's history, reads the rotation table and
 * publishes to a topic, and every answer is compared with what the runtime holds. The
 * sessions are written to .rotor/transcripts/official-clients.txt. A missing client is
 * skipped with a warning on a developer's machine and fails the suite under CI (`make test`
 * installs both when it runs as root).
 */
const describeWithBundles = bundlesDescribe('test/contract/official-clients.test.ts');
const TRANSCRIPT = join(REPO_ROOT, '.rotor', 'transcripts', 'official-clients.txt');
const THING = 'oc-device';
const SPARE = 'oc-spare';
const TIME_SCALE = 0.01;
const SETTINGS = { csrTimeoutSeconds: 600, csrRetryIntervalSeconds: 100, csrRequestRetries: 1, ackTimeoutSeconds: 600 };
const CREDENTIALS = { accessKeyId: 'contract', secretAccessKey: 'contract' };

const cli = findAwsCli();
const boto3 = findBoto3();
for (const [name, found, install] of [
  ['the AWS CLI v2', cli, 'awscli'],
  ['boto3', boto3, 'python3-boto3'],
] as const) {
  if (found) continue;
  const why = `test/contract/official-clients.test.ts: ${name} is not installed (apt-get install ${install}; make test does it as root)`;
  if (process.env.CI) throw new Error(why);
  console.warn(`${why}: its tests are skipped`);
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function response(result: StepResult | undefined): Record<string, unknown> {
  if (!result?.ok) throw new Error(`the call failed: ${JSON.stringify(result)}`);
  return result.response;
}

describeWithBundles('official AWS clients against the local runtime', () => {
  jest.setTimeout(180_000);
  let dir: string;
  let aws: LocalAws;
  let fleet: Fleet | undefined;
  let execution: ExecutionDescription;
  let oldCertificateId: string;
  let spareCertificateId: string;
  const transcripts: Transcript[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-official-clients-'));
    aws = await startLocalAws({ dataDir: join(dir, 'aws'), port: 0, mqttPort: 0, timeScale: TIME_SCALE, settings: SETTINGS });
    // One device due for rotation, rotated for real; one that is not, for update-certificate.
    const keyPem = await generatePrivateKeyPem(DEFAULT_KEY_ALGORITHM);
    const device = await aws.iot.registry.provisionDevice({ thingName: THING, policyName: DEVICE_POLICY_NAME, csrPem: await createCsrPem(keyPem, THING), expiresInDays: 10 });
    oldCertificateId = device.certificateId;
    spareCertificateId = (await aws.iot.registry.provisionDevice({ thingName: SPARE, policyName: DEVICE_POLICY_NAME })).certificateId;
    fleet = new Fleet({
      endpoint: { host: aws.endpoints.mqtt.host, port: aws.endpoints.mqtt.port, caPem: aws.caPem },
      devices: [{ thingName: THING, stateDir: join(dir, 'device'), provisioned: { keyPem, certPem: device.certificatePem } }],
    });
    await fleet.start();
    await until(() => fleet?.agents[0].snapshot.connection.status === 'connected', 10_000, 'the device to connect');
    const iot = new IoTClient({ endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: CREDENTIALS });
    let taskId: string;
    try {
      const checks = String(aws.deployment.settings.auditChecks).split(',').map((c) => c.trim());
      taskId = (await iot.send(new StartOnDemandAuditTaskCommand({ targetCheckNames: checks }))).taskId ?? '';
    } finally {
      iot.destroy();
    }
    const arn = `${aws.endpoints.stateMachineArn.replace(':stateMachine:', ':execution:')}:${auditExecutionName(THING, oldCertificateId, taskId)}`;
    await until(
      () => {
        try {
          execution = aws.stepFunctions.describeExecution(arn);
          return execution.status !== 'RUNNING';
        } catch {
          return false;
        }
      },
      60_000,
      'the rotation to end',
    );
    expect(execution.status).toBe('SUCCEEDED');
  }, 120_000);

  afterAll(async () => {
    if (transcripts.length > 0) {
      mkdirSync(join(REPO_ROOT, '.rotor', 'transcripts'), { recursive: true });
      writeFileSync(TRANSCRIPT, transcripts.map((t) => `# ${t.client}\n\n${t.entries.map((e) => `${e.command}\n${e.output}`).join('\n\n')}\n`).join('\n\n'));
    }
    await fleet?.stop();
    await aws?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  const table = (): string => aws.endpoints.tableName;
  const newCertificateId = (): string => {
    const principals = aws.iot.registry.thingPrincipals(THING);
    expect(principals).toHaveLength(1);
    return principals[0].slice(principals[0].lastIndexOf('/') + 1);
  };

  const iotSteps = (): ApiStep[] => [
    { service: 'iot', operation: 'ListCertificates', params: {} },
    { service: 'iot', operation: 'DescribeCertificate', params: { certificateId: newCertificateId() } },
    { service: 'iot', operation: 'ListThingPrincipals', params: { thingName: THING } },
    { service: 'iot', operation: 'UpdateCertificate', params: { certificateId: spareCertificateId, newStatus: 'INACTIVE' } },
    { service: 'iot', operation: 'DescribeCertificate', params: { certificateId: spareCertificateId } },
    { service: 'iot', operation: 'UpdateCertificate', params: { certificateId: spareCertificateId, newStatus: 'ACTIVE' } },
  ];
  const stepFunctionsSteps = (): ApiStep[] => [
    { service: 'stepfunctions', operation: 'ListStateMachines', params: {} },
    { service: 'stepfunctions', operation: 'ListExecutions', params: { stateMachineArn: aws.endpoints.stateMachineArn } },
    { service: 'stepfunctions', operation: 'DescribeExecution', params: { executionArn: execution.executionArn } },
    { service: 'stepfunctions', operation: 'GetExecutionHistory', params: { executionArn: execution.executionArn } },
  ];
  const dynamodbSteps = (): ApiStep[] => {
    const { partitionKey, sortKey } = loadWiring().table;
    return [
      { service: 'dynamodb', operation: 'ListTables', params: {} },
      { service: 'dynamodb', operation: 'GetItem', params: { TableName: table(), Key: { [partitionKey]: { S: thingPk(THING) }, [sortKey]: { S: CURRENT_SK } } } },
      {
        service: 'dynamodb',
        operation: 'Query',
        params: { TableName: table(), KeyConditionExpression: '#pk = :pk', ExpressionAttributeNames: { '#pk': partitionKey }, ExpressionAttributeValues: { ':pk': { S: thingPk(THING) } } },
      },
    ];
  };
  const snsSteps = (client: string): ApiStep[] => [
    { service: 'sns', operation: 'ListTopics', params: {} },
    { service: 'sns', operation: 'Publish', params: { TopicArn: aws.endpoints.topics.escalation, Message: `published with ${client}` } },
  ];

  /** What every client must have answered, checked against the runtime's own state. */
  function assessIot(results: StepResult[]): void {
    const [list, described, principals, deactivated, inactive, reactivated] = results;
    const listed = (response(list).certificates as { certificateId: string; status: string }[]).map((c) => c.certificateId);
    expect(listed).toEqual(expect.arrayContaining([newCertificateId(), spareCertificateId]));
    expect(listed).toHaveLength(aws.iot.registry.listCertificates().length);
    expect(response(described).certificateDescription).toMatchObject({ certificateId: newCertificateId(), status: 'ACTIVE' });
    expect(response(principals).principals).toEqual(aws.iot.registry.thingPrincipals(THING));
    expect(deactivated.ok).toBe(true);
    expect(response(inactive).certificateDescription).toMatchObject({ certificateId: spareCertificateId, status: 'INACTIVE' });
    expect(reactivated.ok).toBe(true);
    expect(aws.iot.registry.describeCertificate(spareCertificateId).status).toBe('ACTIVE');
  }

  function assessStepFunctions(results: StepResult[]): void {
    const [machines, executions, described, history] = results;
    expect((response(machines).stateMachines as { stateMachineArn: string }[]).map((m) => m.stateMachineArn)).toContain(aws.endpoints.stateMachineArn);
    expect(response(executions).executions).toEqual(expect.arrayContaining([expect.objectContaining({ executionArn: execution.executionArn, status: 'SUCCEEDED' })]));
    const description = response(described);
    expect(description).toMatchObject({ executionArn: execution.executionArn, status: 'SUCCEEDED' });
    expect(JSON.parse(description.input as string)).toMatchObject({ thingName: THING, certificateId: oldCertificateId });
    const events = response(history).events as { type: string; stateEnteredEventDetails?: { name: string } }[];
    expect(events[0].type).toBe('ExecutionStarted');
    expect(events.at(-1)?.type).toBe('ExecutionSucceeded');
    expect(events.filter((e) => e.type.endsWith('StateEntered')).map((e) => e.stateEnteredEventDetails?.name)).toEqual(expect.arrayContaining([Step.RequestCsr, Step.IssueCertificate, Step.DeliverCertificate]));
  }

  function assessDynamodb(results: StepResult[]): void {
    const [tables, item, query] = results;
    expect(response(tables).TableNames).toContain(table());
    expect(response(item).Item).toMatchObject({ status: { S: RotationStatus.Succeeded }, thingName: { S: THING }, newCertificateId: { S: newCertificateId() }, oldCertificateId: { S: oldCertificateId } });
    const items = response(query).Items as Record<string, { S?: string }>[];
    // The current record and the finished rotation's history item.
    expect(items.length).toBe(2);
    expect(response(query).Count).toBe(2);
  }

  function assessSns(results: StepResult[], client: string): void {
    const [topics, published] = results;
    expect((response(topics).Topics as { TopicArn: string }[]).map((t) => t.TopicArn)).toEqual(expect.arrayContaining([aws.endpoints.topics.audit, aws.endpoints.topics.escalation]));
    const messageId = response(published).MessageId;
    expect(aws.sns.messages(aws.endpoints.topics.escalation)).toContainEqual(expect.objectContaining({ messageId, message: `published with ${client}` }));
  }

  (cli ? describe : describe.skip)(`the AWS CLI (${cli?.version ?? 'not installed'})`, () => {
    const transcript: Transcript = { client: `AWS CLI: ${cli?.version}`, entries: [] };
    beforeAll(() => {
      transcripts.push(transcript);
    });
    const run = (steps: ApiStep[]): Promise<StepResult[]> => runWithCli(cli as NonNullable<typeof cli>, aws.endpoints.awsEndpoint, aws.endpoints.region, steps, transcript);

    it('iot: list-certificates, describe-certificate, list-thing-principals, update-certificate (signed execute-api by botocore 1.29)', async () => {
      assessIot(await run(iotSteps()));
    });
    it('stepfunctions: list-state-machines, list-executions, describe-execution, get-execution-history', async () => {
      assessStepFunctions(await run(stepFunctionsSteps()));
    });
    it('dynamodb: list-tables, get-item, query', async () => {
      assessDynamodb(await run(dynamodbSteps()));
    });
    it('sns: list-topics, publish', async () => {
      assessSns(await run(snsSteps('the AWS CLI')), 'the AWS CLI');
    });
  });

  (boto3 ? describe : describe.skip)(`boto3 (${boto3?.version ?? 'not installed'})`, () => {
    const transcript: Transcript = { client: `Python boto3: ${boto3?.version}`, entries: [] };
    beforeAll(() => {
      transcripts.push(transcript);
    });
    it('answers the same calls: IoT, Step Functions, DynamoDB and SNS in one session', async () => {
      const groups = [iotSteps(), stepFunctionsSteps(), dynamodbSteps(), snsSteps('boto3')];
      const results = await runWithBoto3(boto3 as NonNullable<typeof boto3>, aws.endpoints.awsEndpoint, aws.endpoints.region, groups.flat(), transcript);
      let at = 0;
      const next = (count: number): StepResult[] => results.slice(at, (at += count));
      assessIot(next(groups[0].length));
      assessStepFunctions(next(groups[1].length));
      assessDynamodb(next(groups[2].length));
      assessSns(next(groups[3].length), 'boto3');
    });
  });
});
