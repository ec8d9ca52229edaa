import mqtt, { type MqttClient } from 'mqtt';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { startLocalIot, type LocalIot, type ProvisionedDevice } from '../../local/iot/index.js';
import { RecordingInvoker, RecordingSns } from './iot-harness.js';

/**
 * The broker's server-CA switch (`rotor local server-ca rotate`): after it, a device that
 * trusts only the old server CA cannot verify the broker, one that trusts the new one (alone
 * or in a bundle with the old) connects, a live session is kept, and the switch survives a
 * restart with the data dir.
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

  it('serves a certificate from a new server CA: old-only trust fails, new or bundle trust connects, a live session stays', async () => {
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
    expect(oldOnly).toEqual({ connected: false, reason: expect.stringMatching(/self.signed|unable to (get|verify)/i) });
    expect(newOnly.connected).toBe(true);
    expect(bundle.connected).toBe(true);
    // The device certificates are still the device CA's: only the server side changed.
    expect(device.caPem).toBe(oldCa);
  });

  it('keeps the new server CA across a restart, and a second switch lists both earlier CAs', async () => {
    // Prepare
    const current = iot.broker.caPem;
    for (const c of open.splice(0)) c.end(true);
    await iot.stop();
    // Act
    iot = await start();
    const afterRestart = await connect(iot, device, [current]);
    if (afterRestart.connected) afterRestart.client.end(true);
    const second = await iot.rotateServerCa();
    // Assess
    expect(iot.ca.certificatePem).toBe(device.caPem);
    expect(afterRestart.connected).toBe(true);
    expect(second.previousCaPems).toEqual([device.caPem, current]);
    expect(new X509Certificate(second.caPem).subject).toContain('Rotor Local Server CA 3');
  });
});
