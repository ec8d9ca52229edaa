import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeTableCommand, DescribeTimeToLiveCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeAccountAuditConfigurationCommand, GetPolicyCommand, GetTopicRuleCommand, IoTClient } from '@aws-sdk/client-iot';
import { DescribeStateMachineCommand, SFNClient } from '@aws-sdk/client-sfn';
import { ListSubscriptionsByTopicCommand, ListTopicsCommand, SNSClient } from '@aws-sdk/client-sns';
import { connectAsync } from 'mqtt';
import { ruleNameFor, ruleSqlFor } from '../../domain/topics';
import { loadWiring, ruleQueueName } from '../../wiring/index';
import { localAudit, localProvision, type LocalCommandIo } from '../../cli/local';
import { startLocalAws, type LocalAws } from '../../local/runtime';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * The whole local runtime, started as `rotor local up` starts it: Rotor deployed from the
 * wiring, visible through the SDK; a device provisioned with `rotor local provision` connects
 * over mutual TLS. Needs the function bundles (`make build`, which `make test` runs first).
 */
const describeWithBundles = bundlesDescribe('test/e2e/local-up.test.ts');

describeWithBundles('rotor local up', () => {
  let dir: string;
  let aws: LocalAws;
  const lines: string[] = [];
  const io: LocalCommandIo = { out: (line) => lines.push(line), untilInterrupted: () => new Promise(() => undefined) };
  const config = (): { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } } => ({
    endpoint: aws.endpoints.awsEndpoint,
    region: aws.endpoints.region,
    credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' },
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-local-up-'));
    aws = await startLocalAws({ port: 0, mqttPort: 0, dataDir: dir, timeScale: 0.01 });
  }, 90_000);

  afterAll(async () => {
    await aws?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('writes endpoints.json and the CA file', () => {
    const endpoints = JSON.parse(readFileSync(join(dir, 'endpoints.json'), 'utf8')) as typeof aws.endpoints;
    expect(endpoints).toEqual(aws.endpoints);
    expect(endpoints.awsEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(endpoints.mqtt.port).toBeGreaterThan(0);
    expect(readFileSync(endpoints.mqtt.caFile as string, 'utf8')).toContain('BEGIN CERTIFICATE');
  });

  it('deploys the table, topics, subscription, state machine, rules, device policy and audit from the wiring', async () => {
    const wiring = loadWiring();
    const dynamodb = new DynamoDBClient(config());
    const sns = new SNSClient(config());
    const sfn = new SFNClient(config());
    const iot = new IoTClient(config());
    try {
      const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: aws.endpoints.tableName }));
      expect(Table?.KeySchema).toEqual([
        { AttributeName: wiring.table.partitionKey, KeyType: 'HASH' },
        { AttributeName: wiring.table.sortKey, KeyType: 'RANGE' },
      ]);
      expect(Table?.GlobalSecondaryIndexes?.map((i) => i.IndexName)).toEqual([wiring.table.statusIndex.name]);
      const ttl = await dynamodb.send(new DescribeTimeToLiveCommand({ TableName: aws.endpoints.tableName }));
      expect(ttl.TimeToLiveDescription?.AttributeName).toBe(wiring.table.ttlAttribute);

      const topics = (await sns.send(new ListTopicsCommand({}))).Topics?.map((t) => t.TopicArn);
      expect(topics).toEqual(expect.arrayContaining([aws.endpoints.topics.audit, aws.endpoints.topics.escalation]));
      const subscriptions = await sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: aws.endpoints.topics.audit }));
      expect(subscriptions.Subscriptions?.map((s) => [s.Protocol, s.Endpoint])).toEqual(
        wiring.subscriptions.map((s) => ['lambda', aws.deployment.functionArn(s.function)]),
      );

      const machine = await sfn.send(new DescribeStateMachineCommand({ stateMachineArn: aws.endpoints.stateMachineArn }));
      expect(machine.status).toBe('ACTIVE');
      expect(machine.definition).not.toContain('${');

      for (const rule of wiring.rules) {
        const { rule: found } = await iot.send(new GetTopicRuleCommand({ ruleName: ruleNameFor(rule.messageType, 'rotor') }));
        expect(found?.sql).toBe(ruleSqlFor(rule.messageType));
        // Every rule writes to the rule queue; its event source mapping feeds the rule's function.
        expect(found?.actions?.[0]?.sqs).toEqual({ queueUrl: aws.sqs.queueUrl(ruleQueueName()), useBase64: false });
        expect(aws.ruleQueueMapping).toBeDefined();
        expect(rule.function).toBe(wiring.ruleQueue.function);
      }
      const policy = await iot.send(new GetPolicyCommand({ policyName: aws.endpoints.devicePolicyName }));
      expect(policy.policyDocument).toContain('management/topic/${iot:Connection.Thing.ThingName}/*');
      const audit = await iot.send(new DescribeAccountAuditConfigurationCommand({}));
      expect(audit.auditNotificationTargetConfigurations?.SNS).toMatchObject({ targetArn: aws.endpoints.topics.audit, enabled: true });
      // As AWS, every check the audit knows is listed; the wiring's are enabled, the CA check is not.
      expect(Object.entries(audit.auditCheckConfigurations ?? {}).filter(([, c]) => c.enabled).map(([name]) => name).sort()).toEqual(['DEVICE_CERTIFICATE_AGE_CHECK', 'DEVICE_CERTIFICATE_EXPIRING_CHECK']);
      expect(audit.auditCheckConfigurations?.CA_CERTIFICATE_EXPIRING_CHECK).toEqual({ enabled: false });

      expect(aws.lambda.functions().map((f) => f.name).sort()).toEqual(Object.keys(wiring.functions).map((n) => `rotor-${n}`).sort());
    } finally {
      dynamodb.destroy();
      sns.destroy();
      sfn.destroy();
      iot.destroy();
    }
  }, 30_000);

  it('provisions a device that connects over mutual TLS with its thing name, and audits on demand', async () => {
    const out = join(dir, 'device-1');
    await expect(localProvision({ thing: 'device-1', out, expiresInDays: 5, dataDir: dir }, io)).resolves.toBe(0);
    for (const file of ['cert.pem', 'key.pem', 'ca.pem']) expect(existsSync(join(out, file))).toBe(true);

    const client = await connectAsync(`mqtts://${aws.endpoints.mqtt.host}:${aws.endpoints.mqtt.port}`, {
      clientId: 'device-1',
      cert: readFileSync(join(out, 'cert.pem')),
      key: readFileSync(join(out, 'key.pem')),
      ca: readFileSync(join(out, 'ca.pem')),
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    try {
      expect(client.connected).toBe(true);
    } finally {
      await client.endAsync();
    }

    // The certificate expires in 5 days: the audit finds it.
    await expect(localAudit({ dataDir: dir, wait: true, timeoutSeconds: 30 }, io)).resolves.toBe(0);
    expect(lines.some((line) => /COMPLETED: [1-9]\d* non-compliant/.test(line))).toBe(true);
  }, 60_000);
});
