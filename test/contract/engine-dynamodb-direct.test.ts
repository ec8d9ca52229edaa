import { CreateTableCommand, DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDbDirectPath } from '../../local/dynamodb/direct-path';
import { DynamoDbLocal } from '../../local/dynamodb/dynamodb-local';
import { EdgeServer } from '../../local/edge/edge-server';
import { DirectDynamoDb } from '../../local/stepfunctions/direct-dynamodb';

/**
 * The workflow engine's DynamoDB tasks (Claim device's updateItem) skip the edge
 * (local/stepfunctions/direct-dynamodb.ts) and lose nothing the edge did for them: they reach the
 * official DynamoDB Local, they are counted once in the edge's call counts, and a throttle fault
 * for DynamoDB still throttles them.
 */
const CREDENTIALS = { accessKeyId: 'any', secretAccessKey: 'any' };

describe('the workflow engine\'s direct path to DynamoDB Local', () => {
  let db: DynamoDbLocal;
  let edge: EdgeServer;
  let direct: DynamoDbDirectPath;
  let engine: DirectDynamoDb;
  let client: DynamoDBClient;

  beforeAll(async () => {
    db = await DynamoDbLocal.start();
    edge = new EdgeServer({ port: 0 });
    edge.register(db.route());
    const url = await edge.start();
    direct = new DynamoDbDirectPath(db.endpoint);
    edge.faults.onThrottleRulesChanged = (services) => {
      direct.viaEdge = services.has('dynamodb');
    };
    engine = new DirectDynamoDb({ upstream: db.endpoint, edge: url, region: 'us-east-1', credentials: CREDENTIALS, viaEdge: () => direct.viaEdge });
    edge.countAlso(engine);
    client = new DynamoDBClient({ endpoint: url, region: 'us-east-1', credentials: CREDENTIALS });
    await client.send(
      new CreateTableCommand({
        TableName: 'claims',
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      }),
    );
  }, 180_000);

  afterAll(async () => {
    client?.destroy();
    engine?.destroy();
    await edge?.stop();
    await db?.stop();
  });

  beforeEach(() => {
    edge.resetCalls();
    edge.faults.clear();
  });

  const claim = (pk: string) =>
    engine.client.send(new UpdateItemCommand({ TableName: 'claims', Key: { pk: { S: pk } }, UpdateExpression: 'ADD n :one', ExpressionAttributeValues: { ':one': { N: '1' } } }));

  it('sends the engine\'s UpdateItem to DynamoDB Local without the edge and counts it once with the edge\'s', async () => {
    // Act
    await claim('a');
    // Assess: the write is in DynamoDB Local, counted once, and only by the direct path.
    expect(engine.calls()).toEqual({ 'dynamodb:UpdateItem': 1 });
    expect(edge.calls()).toEqual({ 'dynamodb:UpdateItem': 1 });
    const { Item } = await client.send(new GetItemCommand({ TableName: 'claims', Key: { pk: { S: 'a' } } }));
    expect(Item?.n?.N).toBe('1');
    // The GetItem above crossed the edge and was counted there, not by the engine's path.
    expect(edge.calls()).toEqual({ 'dynamodb:GetItem': 1, 'dynamodb:UpdateItem': 1 });
    expect(engine.calls()).toEqual({ 'dynamodb:UpdateItem': 1 });
  }, 30_000);

  it('sends it through the edge while a throttle fault for DynamoDB is pending, and directly again after', async () => {
    // Prepare
    edge.faults.throttle('dynamodb', 'UpdateItem', 1);
    expect(direct.viaEdge).toBe(true);
    // Act: the SDK retries the throttled call.
    await claim('b');
    // Assess: the edge threw the fault and counted that call; the retry went direct.
    expect(edge.faults.injected()).toEqual({ 'dynamodb:UpdateItem': 1 });
    expect(edge.calls()).toEqual({ 'dynamodb:UpdateItem': 2 });
    expect(engine.calls()).toEqual({ 'dynamodb:UpdateItem': 1 });
    const { Item } = await client.send(new GetItemCommand({ TableName: 'claims', Key: { pk: { S: 'b' } } }));
    expect(Item?.n?.N).toBe('1');
  }, 30_000);
});
