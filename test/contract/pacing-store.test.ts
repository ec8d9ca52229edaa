import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { CallSite, DEFAULT_PACING, PACING_KEY, parseQuotasFile, type PacingSettings } from '../../domain/pacing/index';
import { systemClock } from '../../functions/core/clock';
import { PacingStore } from '../../functions/core/pacing-store';
import { DynamoDbLocal } from '../../local/dynamodb/dynamodb-local';
import { rotationTableInput } from '../../local/dynamodb/rotation-table';
import { EdgeServer } from '../../local/edge/edge-server';
import { loadWiring } from '../../wiring/index';

/**
 * The shared budget against the official DynamoDB Local: many reservers racing on the one item
 * (each its own client and store, as separate Lambdas are) never get more grants in any second
 * than the budget allows, and no reservation is lost or given twice.
 */
const QUOTA_TPS = 5;
const SETTINGS: PacingSettings = { ...DEFAULT_PACING, quotas: parseQuotasFile(`{"quotas":{"iot:CreateCertificateFromCsr":{"rate":${QUOTA_TPS}}}}`) };
const BUDGET = QUOTA_TPS * 0.9;
const RESERVERS = 16;
const EACH = 4;

describe('the pacing item on DynamoDB Local, under concurrent reservers', () => {
  let db: DynamoDbLocal;
  let edge: EdgeServer;
  let url: string;
  const clients: DynamoDBClient[] = [];

  beforeAll(async () => {
    db = await DynamoDbLocal.start();
    edge = new EdgeServer({ port: 0 });
    edge.register(db.route());
    url = await edge.start();
    const admin = new DynamoDBClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: 'any' } });
    clients.push(admin);
    await admin.send(new CreateTableCommand(rotationTableInput('rotations', loadWiring().table)));
  }, 120_000);

  afterAll(async () => {
    for (const client of clients) client.destroy();
    await edge?.stop();
    await db?.stop();
  }, 60_000);

  it(`grants ${RESERVERS}×${EACH} racing Issue reservations at most ${QUOTA_TPS} per second, each once`, async () => {
    // Prepare: one store and client per reserver.
    const calls: Record<string, number> = {};
    const stores = Array.from({ length: RESERVERS }, () => {
      const client = new DynamoDBClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: 'any' } });
      client.middlewareStack.add((next, context) => (args) => {
        calls[String(context.commandName)] = (calls[String(context.commandName)] ?? 0) + 1;
        return next(args);
      }, { step: 'initialize', name: 'countCalls' });
      clients.push(client);
      return new PacingStore({ db: DynamoDBDocumentClient.from(client), tableName: 'rotations', clock: systemClock }, SETTINGS);
    });
    const started = Date.now();

    // Act
    const attempts: number[] = [];
    const grants = (
      await Promise.all(
        stores.map(async (store) => {
          const mine: number[] = [];
          for (let i = 0; i < EACH; i++) {
            mine.push((await store.reserve(CallSite.IssueCertificate)).atMs);
            attempts.push(store.lastAttempts);
          }
          return mine;
        }),
      )
    )
      .flat()
      .sort((a, b) => a - b);

    // Assess: every reservation granted, none twice; they raced for real.
    expect(grants).toHaveLength(RESERVERS * EACH);
    expect(new Set(grants).size).toBe(grants.length);
    expect(Math.max(...attempts)).toBeGreaterThan(1);
    const rounds = attempts.reduce((a, b) => a + b, 0);
    console.log(`rounds per reservation: mean ${(rounds / attempts.length).toFixed(2)}, max ${Math.max(...attempts)}; DynamoDB calls per reservation: ${Object.entries(calls).map(([name, n]) => `${name} ${(n / attempts.length).toFixed(2)}`).join(', ')}; ${Date.now() - started} ms`);
    // A round is one UpdateItem: DynamoDB Local returns the current item with a refused write
    // (ReturnValuesOnConditionCheckFailure ALL_OLD), so a lost race costs no read.
    expect(calls.UpdateItemCommand).toBe(rounds);
    expect(calls.GetItemCommand ?? 0).toBe(0);
    // Spaced by the budget's interval (no burst tolerance at this quota), so any 1 s window holds ≤ quota.
    const interval = 1000 / BUDGET;
    for (let i = 1; i < grants.length; i++) expect(grants[i] - grants[i - 1]).toBeGreaterThanOrEqual(interval - 1e-3); // ms since the epoch: doubles keep ~1e-4 ms
    for (let i = 0; i < grants.length; i++) {
      const inWindow = grants.filter((t) => t >= grants[i] && t < grants[i] + 1000).length;
      expect(inWindow).toBeLessThanOrEqual(QUOTA_TPS);
    }
    expect(grants[0]).toBeGreaterThanOrEqual(started);
    // The item holds the last grant's successor and counts every write.
    const doc = DynamoDBDocumentClient.from(clients[0]);
    const item = (await doc.send(new GetCommand({ TableName: 'rotations', Key: PACING_KEY, ConsistentRead: true }))).Item;
    expect(item?.version).toBe(RESERVERS * EACH);
    expect(JSON.parse(String(item?.state)).tatMs['iot:CreateCertificateFromCsr']).toBeCloseTo(grants[grants.length - 1] + interval, 3);
  }, 120_000);
});
