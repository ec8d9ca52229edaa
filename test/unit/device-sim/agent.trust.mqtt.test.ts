import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceSubscriptionFilter, parseTrustBundle, trustTopicFor } from '../../../domain/index.js';
import { DeviceAgent } from '../../../device-sim/agent.js';
import { FileKeyStore } from '../../../device-sim/key-store.js';
import { FileTrustStore } from '../../../device-sim/trust-store.js';
import { MqttTransport } from '../../../device-sim/transport.js';
import { createCa, issueCertificate, newEcKeyPem, type TestCa } from './pki.js';

/**
 * Protocol v1.2 over real mutual TLS: aedes behind node:tls, the device's MqttTransport, its
 * file key store and trust store. The server's certificate comes from server CA 1 (what the
 * device was provisioned with); CA 2 is the next server CA; a bundle of only CA 3 cannot verify it.
 */
type AedesBroker = Awaited<ReturnType<(typeof import('aedes'))['Aedes']['createBroker']>>;

const THING = 'sensor-trust-1';

interface Received {
  topic: string;
  body: Record<string, unknown>;
  socket: TLSSocket;
}

let deviceCa: TestCa;
let serverCa1: TestCa;
let serverCa2: TestCa;
let serverCa3: TestCa;
let serverKey1: string;
let serverCert1: string;
let serverKey2: string;
let serverCert2: string;
let broker: AedesBroker;
let server: Server;
let port: number;
let stateDir: string;
let agent: DeviceAgent | undefined;
const received: Received[] = [];
const sockets = new Set<TLSSocket>();
let subscribedOn: TLSSocket[] = [];

beforeAll(async () => {
  deviceCa = await createCa('Device CA');
  serverCa1 = await createCa('Server CA 1');
  serverCa2 = await createCa('Server CA 2');
  serverCa3 = await createCa('Server CA 3');
  serverKey1 = newEcKeyPem();
  serverCert1 = await issueCertificate(serverCa1, serverKey1, 'localhost', { server: true });
  serverKey2 = newEcKeyPem();
  serverCert2 = await issueCertificate(serverCa2, serverKey2, 'localhost', { server: true });
  const { Aedes } = await import('aedes');
  broker = await Aedes.createBroker();
  broker.on('publish', (packet, client) => {
    if (!client || !packet.topic.startsWith('management/')) return;
    received.push({ topic: packet.topic, body: JSON.parse(packet.payload.toString()), socket: client.conn as unknown as TLSSocket });
  });
  broker.on('subscribe', (_subs, client) => {
    if (client) subscribedOn.push(client.conn as unknown as TLSSocket);
  });
  server = createServer({ key: serverKey1, cert: serverCert1, ca: deviceCa.certPem, requestCert: true, rejectUnauthorized: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => broker.close(() => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'rotor-trust-'));
  received.length = 0;
  subscribedOn = [];
});

afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  await rm(stateDir, { recursive: true, force: true });
});

async function until<T>(find: () => T | undefined, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) {
      // The device's own log says which step it was at; a timeout alone does not.
      const log = agent?.eventLog.map((entry) => `  ${entry.level} ${entry.message}`).join('\n') ?? '';
      throw new Error(`timed out waiting for ${what}; device log:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function pushBundle(rotationId: string, bundle: string): Promise<string> {
  const parsed = parseTrustBundle(bundle, new Date());
  if (!parsed.ok) throw new Error(parsed.error);
  const body = { rotationId, bundle, bundleId: parsed.value.bundleId };
  return new Promise((resolve, reject) =>
    broker.publish({ cmd: 'publish', topic: trustTopicFor(THING, 'trust_req'), payload: Buffer.from(JSON.stringify(body)), qos: 1, retain: false, dup: false }, (e) =>
      e ? reject(e) : resolve(parsed.value.bundleId),
    ),
  );
}

async function startDevice(): Promise<{ device: DeviceAgent; firstSocket: TLSSocket }> {
  const keyPem = newEcKeyPem();
  const store = new FileKeyStore(stateDir);
  await store.importCurrent({ keyPem, certPem: await issueCertificate(deviceCa, keyPem, THING) });
  const device = new DeviceAgent({
    thingName: THING,
    keyStore: store,
    trustStore: new FileTrustStore(stateDir),
    transport: (handlers) =>
      new MqttTransport({ host: '127.0.0.1', port, caPem: serverCa1.certPem, clientId: THING, subscription: deviceSubscriptionFilter(THING), handlers, connectTimeoutMs: 3000 }),
  });
  agent = device;
  await device.start();
  const firstSocket = await until(() => (device.snapshot.connection.status === 'connected' ? subscribedOn[0] : undefined), 'the device to connect');
  return { device, firstSocket };
}

describe('server trust-store update over mutual TLS (protocol v1.2)', () => {
  it('a bundle that verifies the server: acked over a NEW connection, made current, and the device then follows a server-CA switch', async () => {
    const { device, firstSocket } = await startDevice();
    const bundleId = await pushBundle('trust-1', serverCa1.certPem + serverCa2.certPem);

    const ack = await until(() => received.find((r) => r.topic === trustTopicFor(THING, 'trust_ack')), 'trust_ack');
    expect(ack.body).toEqual({ rotationId: 'trust-1', bundleId });
    expect(ack.socket).not.toBe(firstSocket);
    await until(() => (device.snapshot.currentBundleId === bundleId ? true : undefined), 'the bundle to become current');
    // The promote on disk runs after the ack went out: wait for it, then read what is stored.
    let stored = await new FileTrustStore(stateDir).load();
    for (let i = 0; i < 200 && stored.pending; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      stored = await new FileTrustStore(stateDir).load();
    }
    expect(stored.pending).toBeUndefined();
    expect(stored.current?.bundleId).toBe(bundleId);

    // The server moves to a certificate from server CA 2; only a device holding CA 2 reconnects.
    server.setSecureContext({ key: serverKey2, cert: serverCert2, ca: deviceCa.certPem });
    const before = subscribedOn.length;
    for (const socket of sockets) socket.destroy();
    try {
      await until(() => (subscribedOn.length > before && device.snapshot.connection.status === 'connected' ? true : undefined), 'a reconnect to the switched server');
    } finally {
      server.setSecureContext({ key: serverKey1, cert: serverCert1, ca: deviceCa.certPem });
    }
  }, 30_000);

  it('a bundle that does not verify the server: the old bundle is kept, the device reconnects with it and reports trust_err CONNECT_FAILED', async () => {
    const { device, firstSocket } = await startDevice();
    const bundleId = await pushBundle('trust-2', serverCa3.certPem);

    const err = await until(() => received.find((r) => r.topic === trustTopicFor(THING, 'trust_err')), 'trust_err');
    expect(err.body).toMatchObject({ rotationId: 'trust-2', bundleId, code: 'CONNECT_FAILED' });
    expect(err.socket).not.toBe(firstSocket);
    expect(received.some((r) => r.topic === trustTopicFor(THING, 'trust_ack'))).toBe(false);
    expect(device.snapshot.connection).toEqual({ status: 'connected', pair: 'current' });
    expect(device.snapshot.currentBundleId).toBeUndefined();
    const stored = await new FileTrustStore(stateDir).load();
    expect(stored).toEqual({});
  }, 30_000);
});
