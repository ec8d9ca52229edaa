import mqtt, { type MqttClient } from 'mqtt';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { LocalCa } from '../../local/iot/ca.js';
import { startLocalIot, type LocalIot, type ProvisionedDevice } from '../../local/iot/index.js';
import { RecordingInvoker, RecordingSns } from './iot-harness.js';

/**
 * The broker's server-CA switch (`rotor local server-ca rotate`), with real mutual TLS: the
 * broker serves a leaf from the new server CA with the new CA cross-signed by the old one (C5),
 * so a device that trusts only the old CA, only the new one, or both connects, and a live
 * session is kept. After `retire-old` only the new CA verifies the broker. Both survive a
 * restart with the data dir. A data dir whose device CA predates cross-signable CAs
 * (pathLenConstraint 0) switches without a cross-certificate.
 */
type Outcome = { connected: true; client: MqttClient } | { connected: false; reason: string };

function connect(iot: LocalIot, device: ProvisionedDevice, ca: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const client = mqtt.connect(iot.mqttUrl, {
      clientId: device.thingName, clean: true, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000,
      ca, key: device.privateKeyPem, cert: device.certificatePem, rejectUnauthorized: true,
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

describe('the broker\'s server CA switch', () => {
  let dir: string;
  let iot: LocalIot;
  let device: ProvisionedDevice;
  const open: MqttClient[] = [];
  const start = () => startLocalIot({ invoker: new RecordingInvoker(), sns: new RecordingSns(), dataDir: dir });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-server-ca-'));
    iot = await start();
    device = await iot.registry.provisionDevice({ thingName: 'dev-1', policyName: 'rotor-device' });
  });

  afterAll(async () => {
    for (const c of open) c.end(true);
    await iot.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves a certificate from a new server CA cross-signed by the old one: old-only, new-only and bundle trust connect, a live session stays', async () => {
    // Prepare
    const oldCa = iot.broker.caPem;
    const live = await connect(iot, device, [oldCa]);
    if (live.connected) open.push(live.client);
    // Act
    const rotation = await iot.rotateServerCa();
    await new Promise((r) => setTimeout(r, 100));
    // Checked before the next connections: they use the same client id, which takes a session over.
    const liveAfterSwitch = live.connected && live.client.connected;
    const oldOnly = await connect(iot, device, [oldCa]);
    const newOnly = await connect(iot, device, [rotation.caPem]);
    if (newOnly.connected) newOnly.client.end(true);
    const bundle = await connect(iot, device, [oldCa, rotation.caPem]);
    if (bundle.connected) open.push(bundle.client);
    // Assess
    expect(liveAfterSwitch).toBe(true);
    expect(oldCa).toBe(iot.ca.certificatePem);
    expect(rotation.previousCaPems).toEqual([oldCa]);
    expect(iot.broker.caPem).toBe(rotation.caPem);
    expect(new X509Certificate(rotation.caPem).subject).toContain('Rotor Local Server CA 2');
    expect(new X509Certificate(rotation.serverCertificatePem).verify(new X509Certificate(rotation.caPem).publicKey)).toBe(true);
    expect(new X509Certificate(rotation.crossCertificatePem as string).verify(new X509Certificate(oldCa).publicKey)).toBe(true);
    expect(rotation.notCrossSigned).toBeUndefined();
    expect(oldOnly.connected).toBe(true);
    if (oldOnly.connected) oldOnly.client.end(true);
    expect(newOnly.connected).toBe(true);
    expect(bundle.connected).toBe(true);
    // The device certificates are still the device CA's: only the server side changed.
    expect(device.caPem).toBe(oldCa);
  });

  it('keeps the new server CA and its cross-certificate across a restart; retire-old leaves only the new CA, also after a restart', async () => {
    // Prepare
    const current = iot.broker.caPem;
    for (const c of open.splice(0)) c.end(true);
    await iot.stop();
    // Act
    iot = await start();
    const oldAfterRestart = await connect(iot, device, [device.caPem]);
    if (oldAfterRestart.connected) oldAfterRestart.client.end(true);
    const retirement = iot.retireOldServerCa();
    const oldAfterRetire = await connect(iot, device, [device.caPem]);
    const newAfterRetire = await connect(iot, device, [current]);
    if (newAfterRetire.connected) newAfterRetire.client.end(true);
    const again = iot.retireOldServerCa();
    await iot.stop();
    iot = await start();
    const oldAfterSecondRestart = await connect(iot, device, [device.caPem]);
    const newAfterSecondRestart = await connect(iot, device, [current]);
    if (newAfterSecondRestart.connected) newAfterSecondRestart.client.end(true);
    // Assess
    expect(iot.ca.certificatePem).toBe(device.caPem);
    expect(oldAfterRestart.connected).toBe(true);
    expect(retirement).toEqual({ caPem: current, retiredCrossCertificatePem: expect.stringContaining('BEGIN CERTIFICATE') });
    expect(oldAfterRetire).toEqual({ connected: false, reason: expect.stringMatching(/self.signed|unable to (get|verify)/i) });
    expect(newAfterRetire.connected).toBe(true);
    expect(again).toEqual({ caPem: current });
    expect(oldAfterSecondRestart.connected).toBe(false);
    expect(newAfterSecondRestart.connected).toBe(true);
  });

  it('a second switch lists both earlier CAs and is cross-signed by the server CA before it', async () => {
    // Prepare
    const current = iot.broker.caPem;
    // Act
    const second = await iot.rotateServerCa();
    const onPrevious = await connect(iot, device, [current]);
    if (onPrevious.connected) onPrevious.client.end(true);
    const onFirst = await connect(iot, device, [device.caPem]);
    // Assess
    expect(second.previousCaPems).toEqual([device.caPem, current]);
    expect(new X509Certificate(second.caPem).subject).toContain('Rotor Local Server CA 3');
    expect(new X509Certificate(second.crossCertificatePem as string).issuer).toContain('Rotor Local Server CA 2');
    expect(onPrevious.connected).toBe(true);
    // One cross-certificate, one step back: a device still on the first CA missed a whole switch.
    expect(onFirst.connected).toBe(false);
  });
});

describe('a server CA switch in a data dir made before cross-signable CAs', () => {
  let dir: string;
  let iot: LocalIot;

  afterAll(async () => {
    await iot?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('switches without a cross-certificate and says why: devices on the old CA alone cannot verify the broker', async () => {
    // Prepare: the device CA as data dirs made before this change hold it (pathLenConstraint 0).
    dir = mkdtempSync(join(tmpdir(), 'rotor-server-ca-legacy-'));
    const legacy = await LocalCa.create();
    writeFileSync(join(dir, 'iot-ca.json'), JSON.stringify(legacy.material()));
    iot = await startLocalIot({ invoker: new RecordingInvoker(), sns: new RecordingSns(), dataDir: dir });
    const device = await iot.registry.provisionDevice({ thingName: 'legacy-1', policyName: 'rotor-device' });
    // Act
    const rotation = await iot.rotateServerCa();
    const oldOnly = await connect(iot, device, [legacy.certificatePem]);
    const newOnly = await connect(iot, device, [rotation.caPem]);
    if (newOnly.connected) newOnly.client.end(true);
    // Assess
    expect(iot.ca.pathLength).toBe(0);
    expect(rotation.crossCertificatePem).toBeUndefined();
    expect(rotation.notCrossSigned).toMatch(/pathLenConstraint 0/);
    expect(oldOnly.connected).toBe(false);
    expect(newOnly.connected).toBe(true);
    // Its devices keep rotating: the device CA still signs device certificates.
    expect(device.caPem).toBe(legacy.certificatePem);
  });
});
