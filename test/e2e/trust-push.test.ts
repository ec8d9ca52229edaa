import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { localProvision, type LocalCommandIo } from '../../cli/local';
import { trustPush } from '../../cli/trust/push';
import { trustStatus, type TrustStatusReport } from '../../cli/trust/status';
import { deviceSubscriptionFilter } from '../../domain/index';
import { DeviceAgent } from '../../device-sim/agent';
import { faultHooks, parseFault } from '../../device-sim/faults';
import { FileKeyStore } from '../../device-sim/key-store';
import { FileTrustStore } from '../../device-sim/trust-store';
import { MqttTransport } from '../../device-sim/transport';
import { CA_FILE, startLocalAws, type LocalAws } from '../../local/runtime';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';
import { createCa } from '../unit/device-sim/pki';

/**
 * `rotor trust push` end to end on the local runtime (protocol v1.2, C1–C6): real devices over
 * mutual TLS, the trust-update state machine, device-message and the rules. A device that
 * verifies the broker with the pushed bundle acks and is recorded UPDATED; one with the
 * refuse-bundle fault is recorded REFUSED (TRUST_STORAGE_FAILED) and escalated once; a v1.1
 * device (no trust store) never answers and is reported NOT_UPDATED (NO_ACK); a bundle that
 * cannot verify the broker fails the device with TRUST_CONNECT_FAILED and the device keeps working.
 */
const describeWithBundles = bundlesDescribe('test/e2e/trust-push.test.ts');

describeWithBundles('rotor trust push on the local runtime', () => {
  jest.setTimeout(180_000);
  let dir: string;
  let aws: LocalAws;
  let clients: { ddb: DynamoDBDocumentClient; sfn: SFNClient; iot: IoTClient };
  const agents: DeviceAgent[] = [];
  const io: LocalCommandIo = { out: () => undefined, untilInterrupted: () => new Promise(() => undefined) };

  async function device(thing: string, options: { trust: boolean; fault?: string }): Promise<{ agent: DeviceAgent; stateDir: string }> {
    const out = join(dir, 'devices', thing);
    await localProvision({ thing, out, dataDir: dir }, io);
    const stateDir = join(out, 'state');
    const store = new FileKeyStore(stateDir);
    await store.importCurrent({ keyPem: readFileSync(join(out, 'key.pem'), 'utf8'), certPem: readFileSync(join(out, 'cert.pem'), 'utf8') });
    const trustStore = options.trust ? new FileTrustStore(stateDir) : undefined;
    const caPem = readFileSync(join(out, 'ca.pem'), 'utf8');
    const agent = new DeviceAgent({
      thingName: thing,
      keyStore: store,
      ...(trustStore ? { trustStore } : {}),
      ...(options.fault ? { faults: faultHooks(parseFault(options.fault)) } : {}),
      transport: (handlers) =>
        new MqttTransport({ host: aws.endpoints.mqtt.host, port: aws.endpoints.mqtt.port, caPem, clientId: thing, subscription: deviceSubscriptionFilter(thing), handlers, connectTimeoutMs: 3000 }),
    });
    agents.push(agent);
    await agent.start();
    for (let i = 0; i < 200 && agent.snapshot.connection.status !== 'connected'; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(agent.snapshot.connection.status).toBe('connected');
    return { agent, stateDir };
  }

  async function settled(things: string[], bundleId: string): Promise<TrustStatusReport> {
    let report: TrustStatusReport | undefined;
    for (let i = 0; i < 300; i++) {
      report = await trustStatus({ ...clients, tableName: aws.endpoints.tableName }, { things, bundleId });
      if (report.counts.pending === 0 && report.counts.neverAsked === 0) return report;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`the trust updates did not settle: ${JSON.stringify(report?.devices)}`);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-trust-push-'));
    // Short waits for the v1.1 device: one trust_req, sent once more, then NO_ACK.
    aws = await startLocalAws({ port: 0, mqttPort: 0, dataDir: dir, timeScale: 0.01, settings: { trustAckTimeoutSeconds: 300, trustRequestRetries: 1, trustRetryIntervalSeconds: 60 } });
    const config = { endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' } };
    clients = { ddb: DynamoDBDocumentClient.from(new DynamoDBClient(config)), sfn: new SFNClient(config), iot: new IoTClient(config) };
  }, 120_000);

  afterAll(async () => {
    for (const agent of agents) await agent.stop().catch(() => undefined);
    clients?.sfn.destroy();
    clients?.iot.destroy();
    clients?.ddb.destroy();
    await aws?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const push = (bundleFile: string, things: string[], pushId: string) =>
    trustPush({ bundleFile, things, pushId }, { sfn: clients.sfn, iot: clients.iot, trustStateMachineArn: aws.endpoints.trustStateMachineArn as string, now: () => new Date(), sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) });

  it('records UPDATED, TRUST_<code> with one escalation, and NO_ACK, each device on its own', async () => {
    // Prepare
    const updated = await device('trust-ok-1', { trust: true });
    const refusing = await device('trust-refuse-1', { trust: true, fault: 'refuse-bundle' });
    await device('trust-v11-1', { trust: false });
    const things = ['trust-ok-1', 'trust-refuse-1', 'trust-v11-1'];
    // The broker's own server CA: a device verifies the broker with it for real.
    const bundleFile = join(dir, CA_FILE);

    // Act
    const report = await push(bundleFile, things, 'e2e-1');
    const status = await settled(things, report.bundleId);

    // Assess
    expect(report.started).toEqual(things);
    const byThing = Object.fromEntries(status.devices.map((d) => [d.thingName, d]));
    expect(byThing['trust-ok-1']).toMatchObject({ state: 'updated', currentBundleId: report.bundleId });
    expect(byThing['trust-refuse-1']).toMatchObject({ state: 'refused', reason: 'TRUST_STORAGE_FAILED' });
    expect(byThing['trust-v11-1']).toMatchObject({ state: 'not-updated', reason: 'NO_ACK' });
    expect((await new FileTrustStore(updated.stateDir).load()).current?.bundleId).toBe(report.bundleId);
    expect((await new FileTrustStore(refusing.stateDir).load()).current).toBeUndefined();
    const escalations = aws.sns.messages(aws.endpoints.topics.escalation).map((m) => JSON.parse(m.message) as { kind?: string; thingName?: string; reason?: string });
    const trustEscalations = escalations.filter((m) => m.kind === 'trust-update-failed');
    expect(trustEscalations.map((m) => [m.thingName, m.reason]).sort()).toEqual([['trust-refuse-1', 'TRUST_STORAGE_FAILED'], ['trust-v11-1', 'NO_ACK']]);
    // Every device is still connected on its old bundle or the new one.
    for (const agent of agents) expect(agent.snapshot.connection.status).toBe('connected');
  });

  it('fails a device with TRUST_CONNECT_FAILED when the bundle cannot verify the broker; it keeps working on its old one', async () => {
    // Prepare
    const { agent, stateDir } = await device('trust-wrong-1', { trust: true });
    const stranger = await createCa('Not The Server CA');
    const bundleFile = join(dir, 'stranger.pem');
    writeFileSync(bundleFile, stranger.certPem);

    // Act
    const report = await push(bundleFile, ['trust-wrong-1'], 'e2e-2');
    const status = await settled(['trust-wrong-1'], report.bundleId);

    // Assess
    expect(status.devices[0]).toMatchObject({ state: 'refused', reason: 'TRUST_CONNECT_FAILED' });
    expect((await new FileTrustStore(stateDir).load()).current).toBeUndefined();
    for (let i = 0; i < 100 && agent.snapshot.connection.status !== 'connected'; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(agent.snapshot.connection.status).toBe('connected');
  });

  it('refuses a bundle that is not CA certificates and starts nothing (C1)', async () => {
    const bad = join(dir, 'bad.pem');
    writeFileSync(bad, 'not a bundle');
    await expect(push(bad, ['trust-ok-1'], 'e2e-3')).rejects.toThrow(/refused, nothing was sent/);
  });
});
