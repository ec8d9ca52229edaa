import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CreateTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDbDirectPath } from '../../local/dynamodb/direct-path';
import { DynamoDbLocal } from '../../local/dynamodb/dynamodb-local';
import { EdgeServer } from '../../local/edge/edge-server';
import { LambdaService } from '../../local/lambda/lambda-service';

/**
 * A function's DynamoDB calls skip the edge's hop (local/dynamodb/direct-path.ts) and lose
 * nothing the edge did for them: they reach the official DynamoDB Local, they are counted in the
 * edge's call counts once, a throttle fault for DynamoDB still throttles them, and a crash fault
 * still counts their responses. The function is a tiny ESM bundle using the real SDK client with
 * the edge as its endpoint, as Rotor's bundles do.
 */
const SDK = pathToFileURL(require.resolve('@aws-sdk/client-dynamodb')).href;
const BUNDLE = `
  import { DynamoDBClient, PutItemCommand, GetItemCommand } from '${SDK}';
  const client = new DynamoDBClient({ maxAttempts: 3 });
  export const handler = async (event) => {
    await client.send(new PutItemCommand({ TableName: 'direct', Item: { pk: { S: event.pk }, n: { N: '1' } } }));
    const { Item } = await client.send(new GetItemCommand({ TableName: 'direct', Key: { pk: { S: event.pk } } }));
    return { n: Item?.n?.N ?? null };
  };`;

describe('the Lambda workers\' direct path to DynamoDB Local', () => {
  let dir: string;
  let db: DynamoDbLocal;
  let edge: EdgeServer;
  let direct: DynamoDbDirectPath;
  let lambda: LambdaService;
  let client: DynamoDBClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-direct-'));
    writeFileSync(join(dir, 'table.mjs'), BUNDLE);
    db = await DynamoDbLocal.start();
    edge = new EdgeServer({ port: 0 });
    edge.register(db.route());
    const url = await edge.start();
    direct = new DynamoDbDirectPath(db.endpoint);
    edge.countAlso(direct);
    edge.faults.onThrottleRulesChanged = (services) => {
      direct.viaEdge = services.has('dynamodb');
    };
    lambda = new LambdaService({ endpointUrl: url, output: 'discard', dynamodbDirect: direct, crashes: (name) => edge.faults.takeCrash(name) });
    edge.faults.knownFunctions = () => lambda.functions().map((f) => f.name);
    lambda.deploy({ name: 'table', bundlePath: join(dir, 'table.mjs'), timeoutSeconds: 10, maxConcurrency: 1 });
    client = new DynamoDBClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: 'any' } });
    await client.send(
      new CreateTableCommand({
        TableName: 'direct',
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      }),
    );
  }, 180_000);

  afterAll(async () => {
    client?.destroy();
    await lambda?.stop();
    await edge?.stop();
    await db?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    edge.resetCalls();
    edge.faults.clear();
  });

  it('sends the calls to DynamoDB Local without the edge and counts them once with the edge\'s', async () => {
    // Act
    const result = await lambda.invoke('table', { pk: 'a' });
    // Assess: the calls took the direct path, and the edge reports each once.
    expect(result).toEqual({ ok: true, payload: { n: '1' } });
    expect(direct.calls()).toEqual({ 'dynamodb:PutItem': 1, 'dynamodb:GetItem': 1 });
    expect(edge.calls()).toEqual({ 'dynamodb:GetItem': 1, 'dynamodb:PutItem': 1 });
    expect(edge.totalCalls('dynamodb')).toBe(2);
    // Calls of other clients still cross the edge, counted there.
    await client.send(new GetItemCommand({ TableName: 'direct', Key: { pk: { S: 'a' } } }));
    expect(edge.calls()).toEqual({ 'dynamodb:GetItem': 2, 'dynamodb:PutItem': 1 });
    expect(direct.calls()).toEqual({ 'dynamodb:PutItem': 1, 'dynamodb:GetItem': 1 });
  }, 30_000);

  it('sends the calls through the edge while a throttle fault for DynamoDB is pending, and directly again after', async () => {
    // Prepare
    edge.faults.throttle('dynamodb', 'GetItem', 1);
    expect(direct.viaEdge).toBe(true);
    // Act: the SDK retries the throttled GetItem.
    const result = await lambda.invoke('table', { pk: 'b' });
    // Assess
    expect(result).toEqual({ ok: true, payload: { n: '1' } });
    expect(edge.faults.injected()).toEqual({ 'dynamodb:GetItem': 1 });
    expect(edge.calls()).toEqual({ 'dynamodb:GetItem': 2, 'dynamodb:PutItem': 1 });
    // PutItem and the throttled GetItem crossed the edge; the fault was used up, so the retry did not.
    expect(direct.calls()).toEqual({ 'dynamodb:GetItem': 1 });
    expect(direct.viaEdge).toBe(false);
    await lambda.invoke('table', { pk: 'c' });
    expect(direct.calls()).toEqual({ 'dynamodb:PutItem': 1, 'dynamodb:GetItem': 2 });
  }, 30_000);

  it('lets a crash fault count the direct responses: the write took effect, the function never knew', async () => {
    // Prepare: die right after the first AWS call (PutItem) returns.
    edge.faults.crash('table', 1);
    // Act
    const result = await lambda.invoke('table', { pk: 'd' });
    // Assess
    expect(result).toEqual({ ok: false, error: expect.objectContaining({ errorType: 'Sandbox.Timedout' }) });
    const { Item } = await client.send(new GetItemCommand({ TableName: 'direct', Key: { pk: { S: 'd' } } }));
    expect(Item?.n?.N).toBe('1');
    expect(direct.calls()).toEqual({ 'dynamodb:PutItem': 1 });
  }, 30_000);
});
