import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pkcs10CertificateRequest } from '@peculiar/x509';
import { checkCsr } from '../../../domain/csr-rules.js';
import { deviceSubscriptionFilter, MessageType, topicFor } from '../../../domain/index.js';
import { DeviceAgent } from '../../../device-sim/agent.js';
import { FileKeyStore } from '../../../device-sim/key-store.js';
import { MqttTransport } from '../../../device-sim/transport.js';
import { createCa, issueCertificate, newEcKeyPem, type TestCa } from './pki.js';

type AedesBroker = Awaited<ReturnType<(typeof import('aedes'))['Aedes']['createBroker']>>;

const THING = 'sensor-mtls-1';
const RID = 'audit-t1-sensor-mtls-1';

interface Received {
  topic: string;
  body: Record<string, unknown>;
  /** DER of the client certificate the publishing connection was authenticated with. */
  peerCert: Buffer;
}

let ca: TestCa;
let broker: AedesBroker;
let server: Server;
let port: number;
let stateDir: string;
let agent: DeviceAgent | undefined;
const received: Received[] = [];
const waiters: Array<() => void> = [];

beforeAll(async () => {
  ca = await createCa();
  const serverKey = newEcKeyPem();
  const serverCert = await issueCertificate(ca, serverKey, 'localhost', { server: true });
  const { Aedes } = await import('aedes');
  broker = await Aedes.createBroker();
  broker.on('publish', (packet, client) => {
    if (!client || !packet.topic.startsWith('management/')) return;
    const socket = client.conn as unknown as TLSSocket;
    received.push({ topic: packet.topic, body: JSON.parse(packet.payload.toString()), peerCert: socket.getPeerCertificate().raw });
    waiters.splice(0).forEach((wake) => wake());
  });
  broker.on('subscribe', (subs) => {
    subscriptions.push(...subs.map((sub) => sub.topic));
  });
  server = createServer({ key: serverKey, cert: serverCert, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (socket) => broker.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => broker.close(() => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'rotor-agent-'));
  received.length = 0;
  subscriptions = [];
});

afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  await rm(stateDir, { recursive: true, force: true });
});

async function until<T>(find: () => T | undefined, what: string, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 25);
      waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

function publishToDevice(type: string, body: unknown): Promise<void> {
  return new Promise((resolve, reject) =>
    broker.publish({ cmd: 'publish', topic: topicFor(THING, type as MessageType), payload: Buffer.from(JSON.stringify(body)), qos: 1, retain: false, dup: false }, (e) =>
      e ? reject(e) : resolve(),
    ),
  );
}

let subscriptions: string[] = [];
function subscribed(): boolean {
  return subscriptions.includes(deviceSubscriptionFilter(THING));
}

async function startDevice(certPem: string, keyPem: string, caPem = ca.certPem): Promise<DeviceAgent> {
  const store = new FileKeyStore(stateDir);
  await store.importCurrent({ keyPem, certPem });
  const device = new DeviceAgent({
    thingName: THING,
    keyStore: store,
    transport: (handlers) =>
      new MqttTransport({ host: '127.0.0.1', port, caPem, clientId: THING, subscription: deviceSubscriptionFilter(THING), handlers, connectTimeoutMs: 3000 }),
  });
  agent = device;
  await device.start();
  return device;
}

describe('device agent over MQTT with mutual TLS (aedes on node:tls)', () => {
  it('connects with its certificate, answers csr_req with a valid CSR, acks over the NEW certificate and promotes on crt_done', async () => {
    const oldKey = newEcKeyPem();
    const oldCert = await issueCertificate(ca, oldKey, THING);
    const device = await startDevice(oldCert, oldKey);
    await until(() => (device.snapshot.connection.status === 'connected' && subscribed() ? true : undefined), 'the device to connect');

    await publishToDevice(MessageType.CsrRequest, { rotationId: RID });
    const csrRes = await until(() => received.find((r) => r.topic === topicFor(THING, MessageType.CsrResponse)), 'csr_res');
    expect(csrRes.body.rotationId).toBe(RID);
    expect(new X509Certificate(csrRes.peerCert).fingerprint256).toBe(new X509Certificate(oldCert).fingerprint256);
    const check = checkCsr(csrRes.body.CSR as string, { thingName: THING, oldCertificatePem: oldCert });
    expect(check).toMatchObject({ ok: true, facts: { commonName: THING, keyType: 'ec', keyDetail: 'prime256v1' } });

    // Play the cloud: issue a certificate for the CSR's key.
    const csr = new Pkcs10CertificateRequest(csrRes.body.CSR as string);
    const newCert = await issueCertificate(ca, csr.publicKey.toString('pem'), THING);
    await publishToDevice(MessageType.CertificateResponse, { rotationId: RID, certificateId: 'f'.repeat(64), certificatePem: newCert });
    const ackMsg = await until(() => received.find((r) => r.topic === topicFor(THING, MessageType.CertificateAck)), 'crt_ack');
    expect(ackMsg.body).toEqual({ rotationId: RID });
    expect(new X509Certificate(ackMsg.peerCert).fingerprint256).toBe(new X509Certificate(newCert).fingerprint256);

    // Until crt_done the old pair is still current on disk.
    expect((await new FileKeyStore(stateDir).load()).current?.certPem).toBe(oldCert);
    await publishToDevice(MessageType.RotationDone, { rotationId: RID });
    await until(() => (device.metrics.rotationsCompleted === 1 ? true : undefined), 'the rotation to complete');
    await device.stop();
    const stored = await new FileKeyStore(stateDir).load();
    expect(stored.current?.certPem).toBe(newCert);
    expect(stored.current?.keyPem).not.toBe(oldKey);
    expect(stored.pending).toBeUndefined();
    expect(device.metrics.lastStartedAt).toBeDefined();
    expect(device.metrics.lastFinishedAt).toBeDefined();
  });

  it('does not connect to a server its CA does not vouch for, and calls that a network problem, not a refusal', async () => {
    const otherCa = await createCa('Somebody Else');
    const key = newEcKeyPem();
    const device = await startDevice(await issueCertificate(ca, key, THING), key, otherCa.certPem);
    const entry = await until(() => device.eventLog.find((e) => e.message.includes('could not reach the server')), 'a failed connect');
    expect(entry.level).toBe('warn');
    expect(device.snapshot.connection).toMatchObject({ status: 'connecting', pair: 'current' });
  });

  it('a certificate from an unknown CA is refused by the broker', async () => {
    const rogue = await createCa('Rogue');
    const key = newEcKeyPem();
    const device = await startDevice(await issueCertificate(rogue, key, THING), key);
    const entry = await until(() => device.eventLog.find((e) => e.message.includes('current pair was refused')), 'the refusal');
    expect(entry.level).toBe('error');
  });
});
