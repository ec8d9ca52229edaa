import mqtt, { type MqttClient } from 'mqtt';
import { deviceSubscriptionFilter, ruleNameFor, ruleSqlFor, topicFor } from '../../domain/topics.js';
import { LocalCa, startLocalIot, type LocalIot, type ProvisionedDevice } from '../../local/iot/index.js';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { clientConfig, RecordingInvoker, RecordingSns, serve, type Harness } from './iot-harness.js';

type Outcome = { connected: true; client: MqttClient } | { connected: false; reason: string };

/** Connects once (no reconnects) and reports what happened, whichever way it goes. */
function connect(iot: LocalIot, clientId: string, credentials: { key?: string; cert?: string }, clean = false): Promise<Outcome> {
  return new Promise((resolve) => {
    const client = mqtt.connect(iot.mqttUrl, {
      clientId,
      clean,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ca: iot.ca.certificatePem,
      key: credentials.key,
      cert: credentials.cert,
      rejectUnauthorized: true,
    });
    let settled = false;
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      if (!outcome.connected) client.end(true);
      resolve(outcome);
    };
    client.once('connect', () => settle({ connected: true, client }));
    client.once('error', (error) => settle({ connected: false, reason: error.message }));
    client.once('close', () => settle({ connected: false, reason: 'closed' }));
  });
}

function end(client: MqttClient): Promise<void> {
  if (!client.connected) {
    client.end(true);
    return Promise.resolve();
  }
  return new Promise((resolve) => client.end(false, {}, () => resolve()));
}

/** The SUBACK return code (0x80 = refused); mqtt.js reports a refusal as an error carrying the SUBACK. */
function subscribeCode(client: MqttClient, filter: string): Promise<number> {
  return new Promise((resolve) =>
    client.subscribe(filter, { qos: 1 }, (error, granted) => {
      const refused = (error as (Error & { packet?: { granted?: number[] } }) | null)?.packet?.granted?.[0];
      resolve(refused ?? granted?.[0]?.qos ?? -1);
    }),
  );
}

function nextMessage(client: MqttClient): Promise<{ topic: string; payload: string }> {
  return new Promise((resolve) => client.once('message', (topic, payload) => resolve({ topic, payload: payload.toString('utf8') })));
}

async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('local IoT broker over mutual TLS', () => {
  let iot: LocalIot;
  let invoker: RecordingInvoker;
  let device: ProvisionedDevice;
  const open: MqttClient[] = [];

  const device1 = (cred: ProvisionedDevice = device) => ({ key: cred.privateKeyPem, cert: cred.certificatePem });

  beforeAll(async () => {
    invoker = new RecordingInvoker();
    iot = await startLocalIot({ invoker, sns: new RecordingSns() });
    device = await iot.registry.provisionDevice({ thingName: 'dev-1', policyName: 'rotor-device' });
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map(end));
  });

  afterAll(async () => {
    await iot.stop();
  });

  async function connected(clientId: string, cred: ProvisionedDevice, clean = false): Promise<MqttClient> {
    const outcome = await connect(iot, clientId, device1(cred), clean);
    if (!outcome.connected) throw new Error(`expected ${clientId} to connect: ${outcome.reason}`);
    open.push(outcome.client);
    return outcome.client;
  }

  it('accepts an ACTIVE certificate attached to the thing named by the client id, and knows its principal', async () => {
    await connected('dev-1', device);
    expect(iot.broker.connectedClients()).toEqual([expect.objectContaining({ clientId: 'dev-1', certificateId: device.certificateId })]);
    expect(iot.broker.principalOf('dev-1')).toBe(device.certificateId);
  });

  it('refuses a client id that is not the thing the certificate is attached to', async () => {
    iot.registry.createThing('dev-other');
    const outcome = await connect(iot, 'dev-other', device1());
    expect(outcome.connected).toBe(false);
    expect(iot.broker.connectedClients()).toEqual([]);
  });

  it('refuses a certificate from a foreign CA, and a connection without a certificate', async () => {
    const foreign = await (await LocalCa.create('Foreign CA')).createKeyAndCertificate({ notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) });
    expect((await connect(iot, 'dev-1', { key: foreign.privateKeyPem, cert: foreign.certificatePem })).connected).toBe(false);
    expect((await connect(iot, 'dev-1', {})).connected).toBe(false);
  });

  it('refuses an INACTIVE certificate, and a registered certificate attached to no thing', async () => {
    const inactive = await iot.registry.provisionDevice({ thingName: 'dev-inactive', policyName: 'rotor-device' });
    iot.registry.updateCertificate(inactive.certificateId, 'INACTIVE');
    const refused = await connect(iot, 'dev-inactive', device1(inactive));
    expect(refused).toEqual({ connected: false, reason: expect.stringMatching(/Not authorized/i) });

    const loose = await iot.registry.provisionDevice({ thingName: 'dev-loose', policyName: 'rotor-device' });
    iot.registry.detachThingPrincipal('dev-loose', loose.certificateArn);
    expect((await connect(iot, 'dev-loose', device1(loose))).connected).toBe(false);
  });

  it('grants subscriptions below the device\'s own topic and refuses others (SUBACK 0x80)', async () => {
    const client = await connected('dev-1', device);
    expect(await subscribeCode(client, deviceSubscriptionFilter('dev-1'))).toBe(1);
    expect(await subscribeCode(client, 'management/topic/dev-2/+')).toBe(128);
    expect(await subscribeCode(client, '#')).toBe(128);
    expect(await subscribeCode(client, 'management/topic/dev-1')).toBe(128);
    expect(client.connected).toBe(true);
  });

  it('disconnects a device that publishes outside its own topic', async () => {
    const client = await connected('dev-1', device);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(topicFor('dev-2', 'csr_res'), '{}', { qos: 1 });
    await closed;
    await until(() => iot.broker.connectedClients().length === 0, 'the broker to drop the session');
  });

  it('disconnects a live client when its certificate is set INACTIVE', async () => {
    const other = await iot.registry.provisionDevice({ thingName: 'dev-deactivate', policyName: 'rotor-device' });
    const client = await connected('dev-deactivate', other);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    iot.registry.updateCertificate(other.certificateId, 'INACTIVE');
    await closed;
    expect(iot.broker.connectedClients().find((c) => c.clientId === 'dev-deactivate')).toBeUndefined();
  });

  it('queues QoS 1 messages for an offline persistent session and delivers them on reconnect', async () => {
    const queued = await iot.registry.provisionDevice({ thingName: 'dev-offline', policyName: 'rotor-device' });
    const first = await connected('dev-offline', queued);
    await first.subscribeAsync(deviceSubscriptionFilter('dev-offline'), { qos: 1 });
    await end(first);
    open.splice(open.indexOf(first), 1);
    await until(() => !iot.broker.connectedClients().some((c) => c.clientId === 'dev-offline'), 'the session to go offline');

    await iot.broker.publish(topicFor('dev-offline', 'csr_req'), Buffer.from('{"rotationId":"r-1"}'), 1);

    const outcome = await connect(iot, 'dev-offline', device1(queued));
    if (!outcome.connected) throw new Error(outcome.reason);
    open.push(outcome.client);
    const message = await nextMessage(outcome.client);
    expect(message).toEqual({ topic: topicFor('dev-offline', 'csr_req'), payload: '{"rotationId":"r-1"}' });
  });

  it('lets a second connection with the same client id take over the first', async () => {
    const first = await connected('dev-1', device);
    const firstClosed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    await connected('dev-1', device);
    await firstClosed;
    await until(() => iot.broker.connectedClients().filter((c) => c.clientId === 'dev-1').length === 1, 'one session for dev-1');
  });

  describe('rules and the data plane', () => {
    let harness: Harness;
    let data: IoTDataPlaneClient;

    beforeAll(async () => {
      iot.rules.createRule({ ruleName: ruleNameFor('csr_res'), sql: ruleSqlFor('csr_res'), functionArn: 'rotor-device-message' });
      harness = await serve(iot.dataPlane);
      data = new IoTDataPlaneClient(clientConfig(harness.endpoint));
    });

    afterAll(async () => {
      data.destroy();
      await harness.close();
    });

    it('invokes the rule\'s Lambda with the base64 payload, client id, certificate principal, topic and time', async () => {
      invoker.calls.length = 0;
      const client = await connected('dev-1', device);
      const before = Date.now();
      await client.publishAsync(topicFor('dev-1', 'csr_res'), 'not json at all', { qos: 1 });
      await until(() => invoker.calls.length === 1, 'the rule to invoke the function');
      await iot.rules.idle();
      const [call] = invoker.calls;
      expect(call.functionName).toBe('rotor-device-message');
      expect(call.invocationType).toBe('Event');
      const payload = call.payload as Record<string, unknown>;
      expect(payload).toEqual({
        payload: Buffer.from('not json at all').toString('base64'),
        clientId: 'dev-1',
        principal: device.certificateId,
        topic: topicFor('dev-1', 'csr_res'),
        receivedAt: expect.any(Number),
      });
      expect(payload.receivedAt as number).toBeGreaterThanOrEqual(before);
    });

    it('does not invoke the rule for a topic its filter does not match', async () => {
      invoker.calls.length = 0;
      const client = await connected('dev-1', device);
      await client.publishAsync(topicFor('dev-1', 'crt_ack'), '{}', { qos: 1 });
      await iot.rules.idle();
      expect(invoker.calls).toEqual([]);
    });

    it('records a failing rule action instead of failing the publish', async () => {
      invoker.calls.length = 0;
      invoker.failWith = { errorType: 'Boom', errorMessage: 'handler crashed' };
      try {
        const client = await connected('dev-1', device);
        await client.publishAsync(topicFor('dev-1', 'csr_res'), '{}', { qos: 1 });
        await until(() => invoker.calls.length === 1, 'the failing invocation');
        await iot.rules.idle();
        expect(iot.rules.ruleErrors().at(-1)).toMatchObject({ ruleName: ruleNameFor('csr_res'), error: 'Boom: handler crashed', clientId: 'dev-1' });
        expect(client.connected).toBe(true);
      } finally {
        invoker.failWith = undefined;
      }
    });

    it('delivers a data-plane Publish to the subscribed device', async () => {
      const client = await connected('dev-1', device);
      await client.subscribeAsync(deviceSubscriptionFilter('dev-1'), { qos: 1 });
      const received = nextMessage(client);
      await data.send(new PublishCommand({ topic: topicFor('dev-1', 'crt_done'), qos: 1, payload: Buffer.from('{"rotationId":"r-9"}') }));
      expect(await received).toEqual({ topic: topicFor('dev-1', 'crt_done'), payload: '{"rotationId":"r-9"}' });
      expect(iot.dataPlane.callCounts()).toEqual({ Publish: 1 });
      await expect(data.send(new PublishCommand({ topic: 'management/topic/+/x', payload: Buffer.from('{}') }))).rejects.toMatchObject({ name: 'InvalidRequestException' });
    });
  });
});

describe("local IoT broker with clientIdPolicy 'any' (a fleet policy allowing client/*; local-only)", () => {
  let iot: LocalIot;

  beforeAll(async () => {
    iot = await startLocalIot({ invoker: new RecordingInvoker(), sns: new RecordingSns(), clientIdPolicy: 'any' });
  });

  afterAll(async () => {
    await iot.stop();
  });

  it('lets an ACTIVE certificate with a policy connect as another thing, reporting its own certificate as the principal', async () => {
    const attacker = await iot.registry.provisionDevice({ thingName: 'any-attacker', policyName: 'rotor-device' });
    await iot.registry.provisionDevice({ thingName: 'any-victim', policyName: 'rotor-device' });

    const outcome = await connect(iot, 'any-victim', { key: attacker.privateKeyPem, cert: attacker.certificatePem });

    expect(outcome.connected).toBe(true);
    expect(iot.broker.principalOf('any-victim')).toBe(attacker.certificateId);
    if (outcome.connected) await end(outcome.client);
  });

  it('still refuses an INACTIVE certificate', async () => {
    const inactive = await iot.registry.provisionDevice({ thingName: 'any-inactive', policyName: 'rotor-device' });
    iot.registry.updateCertificate(inactive.certificateId, 'INACTIVE');

    expect((await connect(iot, 'any-victim', { key: inactive.privateKeyPem, cert: inactive.certificatePem })).connected).toBe(false);
  });
});
