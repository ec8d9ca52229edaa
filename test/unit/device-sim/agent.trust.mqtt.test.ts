import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrustBundle, trustTopicFor } from '../../../domain/index.js';
import { DeviceAgent } from '../../../device-sim/agent.js';
import { FileKeyStore } from '../../../device-sim/key-store.js';
import { FileTrustStore } from '../../../device-sim/trust-store.js';
import { MtlsBroker } from '../../fixtures/mtls-broker.js';
import { createCa, issueCertificate, newEcKeyPem, type TestCa } from './pki.js';

/**
 * Protocol v1.2 over real mutual TLS: aedes behind node:tls, the device's MqttTransport, its
 * file key store and trust store. The server's certificate comes from server CA 1 (what the
 * device was provisioned with); CA 2 is the next server CA; a bundle of only CA 3 cannot verify it.
 */
const THING = 'sensor-trust-1';

let deviceCa: TestCa;
let serverCa1: TestCa;
let serverCa2: TestCa;
let serverCa3: TestCa;
let serverKey1: string;
let serverCert1: string;
let serverKey2: string;
let serverCert2: string;
let broker: MtlsBroker;
let stateDir: string;
let agent: DeviceAgent | undefined;

beforeAll(async () => {
  deviceCa = await createCa('Device CA');
  serverCa1 = await createCa('Server CA 1');
  serverCa2 = await createCa('Server CA 2');
  serverCa3 = await createCa('Server CA 3');
  serverKey1 = newEcKeyPem();
  serverCert1 = await issueCertificate(serverCa1, serverKey1, 'localhost', { server: true });
  serverKey2 = newEcKeyPem();
  serverCert2 = await issueCertificate(serverCa2, serverKey2, 'localhost', { server: true });
  broker = await MtlsBroker.start({ key: serverKey1, cert: serverCert1, clientCaPem: deviceCa.certPem });
});

afterAll(async () => {
  await broker.close();
});

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'rotor-trust-'));
  broker.reset();
});

afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  await rm(stateDir, { recursive: true, force: true });
});

/** The connections the device subscribed on, in order. */
function subscribedOn(): TLSSocket[] {
  return broker.subscriptions.map((sub) => sub.socket);
}

function until<T>(find: () => T | undefined, what: string): Promise<T> {
  // The device's own log says which step it was at; a timeout alone does not.
  const context = (): string => `device log:\n${agent?.eventLog.map((entry) => `  ${entry.level} ${entry.message}`).join('\n') ?? ''}`;
  return broker.until(find, what, { timeoutMs: 10_000, context });
}

async function pushBundle(rotationId: string, bundle: string): Promise<string> {
  const parsed = parseTrustBundle(bundle, new Date());
  if (!parsed.ok) throw new Error(parsed.error);
  await broker.publish(trustTopicFor(THING, 'trust_req'), { rotationId, bundle, bundleId: parsed.value.bundleId });
  return parsed.value.bundleId;
}

async function startDevice(): Promise<{ device: DeviceAgent; firstSocket: TLSSocket }> {
  const keyPem = newEcKeyPem();
  const store = new FileKeyStore(stateDir);
  await store.importCurrent({ keyPem, certPem: await issueCertificate(deviceCa, keyPem, THING) });
  const device = new DeviceAgent({ thingName: THING, keyStore: store, trustStore: new FileTrustStore(stateDir), transport: broker.deviceTransport(THING, serverCa1.certPem) });
  agent = device;
  await device.start();
  const firstSocket = await until(() => (device.snapshot.connection.status === 'connected' ? subscribedOn()[0] : undefined), 'the device to connect');
  return { device, firstSocket };
}

describe('server trust-store update over mutual TLS (protocol v1.2)', () => {
  it('a bundle that verifies the server: acked over a NEW connection, made current, and the device then follows a server-CA switch', async () => {
    const { device, firstSocket } = await startDevice();
    const bundleId = await pushBundle('trust-1', serverCa1.certPem + serverCa2.certPem);

    const ack = await until(() => broker.received.find((r) => r.topic === trustTopicFor(THING, 'trust_ack')), 'trust_ack');
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
    broker.server.setSecureContext({ key: serverKey2, cert: serverCert2, ca: deviceCa.certPem });
    const before = subscribedOn().length;
    for (const socket of broker.sockets) socket.destroy();
    try {
      await until(() => (subscribedOn().length > before && device.snapshot.connection.status === 'connected' ? true : undefined), 'a reconnect to the switched server');
    } finally {
      broker.server.setSecureContext({ key: serverKey1, cert: serverCert1, ca: deviceCa.certPem });
    }
  }, 30_000);

  it('a bundle that does not verify the server: the old bundle is kept, the device reconnects with it and reports trust_err CONNECT_FAILED', async () => {
    const { device, firstSocket } = await startDevice();
    const bundleId = await pushBundle('trust-2', serverCa3.certPem);

    const err = await until(() => broker.received.find((r) => r.topic === trustTopicFor(THING, 'trust_err')), 'trust_err');
    expect(err.body).toMatchObject({ rotationId: 'trust-2', bundleId, code: 'CONNECT_FAILED' });
    expect(err.socket).not.toBe(firstSocket);
    expect(broker.received.some((r) => r.topic === trustTopicFor(THING, 'trust_ack'))).toBe(false);
    expect(device.snapshot.connection).toEqual({ status: 'connected', pair: 'current' });
    expect(device.snapshot.currentBundleId).toBeUndefined();
    const stored = await new FileTrustStore(stateDir).load();
    expect(stored).toEqual({});
  }, 30_000);
});
