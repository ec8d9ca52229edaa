import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  ListTablesCommand,
  QueryCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { checkJava, DynamoDbLocal, DynamoDbLocalError } from '../../local/dynamodb/dynamodb-local';
import { EdgeServer } from '../../local/edge/edge-server';

/**
 * The official DynamoDB Local behind the edge, driven by the real SDK: CRUD, a GSI query,
 * TransactWriteItems, a conditional failure, TTL; then a clean stop (no java left behind).
 */
function javaChildrenOf(pid: number): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,ppid=,comm='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([, ppid, comm]) => Number(ppid) === pid && comm === 'java')
    .map(([childPid]) => Number(childPid));
}

describe('DynamoDB Local through the edge', () => {
  let db: DynamoDbLocal;
  let edge: EdgeServer;
  let client: DynamoDBClient;
  let doc: DynamoDBDocumentClient;

  beforeAll(async () => {
    db = await DynamoDbLocal.start();
    edge = new EdgeServer({ port: 0 });
    edge.register(db.route());
    const url = await edge.start();
    client = new DynamoDBClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: 'any' } });
    doc = DynamoDBDocumentClient.from(client);
    await client.send(
      new CreateTableCommand({
        TableName: 'rotations',
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
          { AttributeName: 'status', AttributeType: 'S' },
          { AttributeName: 'updatedAt', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: 'by-status',
            KeySchema: [
              { AttributeName: 'status', KeyType: 'HASH' },
              { AttributeName: 'updatedAt', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
      }),
    );
  }, 60_000);

  afterAll(async () => {
    client?.destroy();
    await edge?.stop();
    await db?.stop();
  });

  it('reads and writes items, queries the GSI and sets TTL', async () => {
    await doc.send(new PutCommand({ TableName: 'rotations', Item: { pk: 'thing#a', sk: 'current', status: 'FAILED', updatedAt: '2025-01-01T00:00:00Z' } }));
    await doc.send(new UpdateCommand({ TableName: 'rotations', Key: { pk: 'thing#a', sk: 'current' }, UpdateExpression: 'SET attempts = :one', ExpressionAttributeValues: { ':one': 1 } }));
    const { Item } = await doc.send(new GetCommand({ TableName: 'rotations', Key: { pk: 'thing#a', sk: 'current' } }));
    expect(Item).toEqual({ pk: 'thing#a', sk: 'current', status: 'FAILED', updatedAt: '2025-01-01T00:00:00Z', attempts: 1 });
    const failed = await client.send(new QueryCommand({ TableName: 'rotations', IndexName: 'by-status', KeyConditionExpression: '#s = :f', ExpressionAttributeNames: { '#s': 'status' }, ExpressionAttributeValues: { ':f': { S: 'FAILED' } } }));
    expect(failed.Count).toBe(1);
    await client.send(new UpdateTimeToLiveCommand({ TableName: 'rotations', TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true } }));
    const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: 'rotations' }));
    expect(ttl.TimeToLiveDescription?.AttributeName).toBe('expiresAt');
    expect(edge.calls()['dynamodb:Query']).toBe(1);
  });

  it('fails a conditional write with ConditionalCheckFailedException and keeps the item', async () => {
    await doc.send(new PutCommand({ TableName: 'rotations', Item: { pk: 'thing#b', sk: 'current', status: 'IN_PROGRESS', rotationId: 'r1', updatedAt: 't1' } }));
    const claim = new UpdateCommand({
      TableName: 'rotations',
      Key: { pk: 'thing#b', sk: 'current' },
      UpdateExpression: 'SET rotationId = :rid',
      ConditionExpression: 'attribute_not_exists(#s) OR #s <> :inProgress OR rotationId = :rid',
      ExpressionAttributeNames: { '#s': 'status' },
      ExpressionAttributeValues: { ':rid': 'r2', ':inProgress': 'IN_PROGRESS' },
    });
    await expect(doc.send(claim)).rejects.toBeInstanceOf(ConditionalCheckFailedException);
    const { Item } = await doc.send(new GetCommand({ TableName: 'rotations', Key: { pk: 'thing#b', sk: 'current' } }));
    expect(Item?.rotationId).toBe('r1');
  });

  it('commits TransactWriteItems all together, and cancels them all together', async () => {
    await client.send(
      new TransactWriteItemsCommand({
        TransactItems: [
          { Put: { TableName: 'rotations', Item: { pk: { S: 'thing#c' }, sk: { S: 'current' }, status: { S: 'SUCCEEDED' }, updatedAt: { S: 't' } } } },
          { Put: { TableName: 'rotations', Item: { pk: { S: 'thing#c' }, sk: { S: 'rotation#t#r1' } } } },
        ],
      }),
    );
    const cancelled = client.send(
      new TransactWriteItemsCommand({
        TransactItems: [
          { Put: { TableName: 'rotations', Item: { pk: { S: 'thing#d' }, sk: { S: 'current' } } } },
          { Put: { TableName: 'rotations', Item: { pk: { S: 'thing#c' }, sk: { S: 'current' } }, ConditionExpression: 'attribute_not_exists(pk)' } },
        ],
      }),
    );
    await expect(cancelled).rejects.toBeInstanceOf(TransactionCanceledException);
    await expect(cancelled).rejects.toMatchObject({ CancellationReasons: [{ Code: 'None' }, { Code: 'ConditionalCheckFailed' }] });
    expect((await doc.send(new GetCommand({ TableName: 'rotations', Key: { pk: 'thing#d', sk: 'current' } }))).Item).toBeUndefined();
    expect((await doc.send(new GetCommand({ TableName: 'rotations', Key: { pk: 'thing#c', sk: 'rotation#t#r1' } }))).Item).toBeDefined();
  });
});

describe('DynamoDB Local lifecycle', () => {
  it('keeps tables in a data directory and leaves no java process behind when stopped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-ddb-'));
    const db = await DynamoDbLocal.start({ dataDir: dir });
    try {
      const client = new DynamoDBClient({ endpoint: db.endpoint, region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
      await client.send(new CreateTableCommand({ TableName: 'tab', BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [{ AttributeName: 'k', AttributeType: 'S' }], KeySchema: [{ AttributeName: 'k', KeyType: 'HASH' }] }));
      // -sharedDb: other credentials and regions see the same tables.
      const other = new DynamoDBClient({ endpoint: db.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'other', secretAccessKey: 'z' } });
      expect((await other.send(new ListTablesCommand({}))).TableNames).toEqual(['tab']);
      await other.send(new DeleteTableCommand({ TableName: 'tab' }));
      client.destroy();
      other.destroy();
      expect(readdirSync(dir).some((f) => f.endsWith('.db'))).toBe(true);
      expect(javaChildrenOf(process.pid).length).toBe(1);
      await db.stop();
      expect(javaChildrenOf(process.pid)).toEqual([]);
    } finally {
      await db.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('names the fix when java is missing', () => {
    expect(() => checkJava('/nonexistent/java')).toThrow(DynamoDbLocalError);
    expect(() => checkJava('/nonexistent/java')).toThrow('install a Java 17+ runtime, e.g. apt-get install openjdk-17-jre-headless');
    expect(checkJava()).toBeGreaterThanOrEqual(17);
  });
});
