import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pkcs10CertificateRequest } from '@peculiar/x509';
import { checkCsr } from '../../../domain/csr-rules.js';
import { deviceSubscriptionFilter, MessageType, topicFor } from '../../../domain/index.js';
import { DeviceAgent } from '../../../device-sim/agent.js';
import { FileKeyStore } from '../../../device-sim/key-store.js';
import { MtlsBroker } from '../../fixtures/mtls-broker.js';
import { createCa, issueCertificate, newEcKeyPem, type TestCa } from './pki.js';

const THING = 'sensor-mtls-1';
const RID = 'audit-t1-sensor-mtls-1';

let ca: TestCa;
let broker: MtlsBroker;
let stateDir: string;
let agent: DeviceAgent | undefined;

beforeAll(async () => {
  ca = await createCa();
  const key = newEcKeyPem();
  broker = await MtlsBroker.start({ key, cert: await issueCertificate(ca, key, 'localhost', { server: true }), clientCaPem: ca.certPem });
});

afterAll(async () => {
  await broker.close();
});

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'rotor-agent-'));
  broker.reset();
});

afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  await rm(stateDir, { recursive: true, force: true });
});

function until<T>(find: () => T | undefined, what: string): Promise<T> {
  return broker.until(find, what, { timeoutMs: 5000 });
}

function publishToDevice(type: MessageType, body: unknown): Promise<void> {
  return broker.publish(topicFor(THING, type), body);
}

function subscribed(): boolean {
  return broker.subscriptions.some((sub) => sub.topic === deviceSubscriptionFilter(THING));
}

async function startDevice(certPem: string, keyPem: string, caPem = ca.certPem): Promise<DeviceAgent> {
  const store = new FileKeyStore(stateDir);
  await store.importCurrent({ keyPem, certPem });
  const device = new DeviceAgent({ thingName: THING, keyStore: store, transport: broker.deviceTransport(THING, caPem) });
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
    const csrRes = await until(() => broker.received.find((r) => r.topic === topicFor(THING, MessageType.CsrResponse)), 'csr_res');
    expect(csrRes.body.rotationId).toBe(RID);
    expect(new X509Certificate(csrRes.peerCert).fingerprint256).toBe(new X509Certificate(oldCert).fingerprint256);
    const check = checkCsr(csrRes.body.CSR as string, { thingName: THING, oldCertificatePem: oldCert });
    expect(check).toMatchObject({ ok: true, facts: { commonName: THING, keyType: 'ec', keyDetail: 'prime256v1' } });

    // Play the cloud: issue a certificate for the CSR's key.
    const csr = new Pkcs10CertificateRequest(csrRes.body.CSR as string);
    const newCert = await issueCertificate(ca, csr.publicKey.toString('pem'), THING);
    await publishToDevice(MessageType.CertificateResponse, { rotationId: RID, certificateId: 'f'.repeat(64), certificatePem: newCert });
    const ackMsg = await until(() => broker.received.find((r) => r.topic === topicFor(THING, MessageType.CertificateAck)), 'crt_ack');
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
  }, 30_000);

  it('does not connect to a server its CA does not vouch for, and calls that a network problem, not a refusal', async () => {
    const otherCa = await createCa('Somebody Else');
    const key = newEcKeyPem();
    const device = await startDevice(await issueCertificate(ca, key, THING), key, otherCa.certPem);
    const entry = await until(() => device.eventLog.find((e) => e.message.includes('could not reach the server')), 'a failed connect');
    expect(entry.level).toBe('warn');
    expect(device.snapshot.connection).toMatchObject({ status: 'connecting', pair: 'current' });
  }, 30_000);

  it('a certificate from an unknown CA is refused by the broker', async () => {
    const rogue = await createCa('Rogue');
    const key = newEcKeyPem();
    const device = await startDevice(await issueCertificate(rogue, key, THING), key);
    const entry = await until(() => device.eventLog.find((e) => e.message.includes('current pair was refused')), 'the refusal');
    expect(entry.level).toBe('error');
  }, 30_000);
});
