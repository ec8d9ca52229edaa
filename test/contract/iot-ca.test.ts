import 'reflect-metadata';
import mqtt, { type MqttClient } from 'mqtt';
import { X509Certificate } from 'node:crypto';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateThingCommand,
  DescribeCACertificateCommand,
  DescribeCertificateCommand,
  GetRegistrationCodeCommand,
  IoTClient,
  ListCACertificatesCommand,
  ListCertificatesByCACommand,
  RegisterCACertificateCommand,
  RegisterCertificateCommand,
  RegisterCertificateWithoutCACommand,
  UpdateCACertificateCommand,
} from '@aws-sdk/client-iot';
import { defaultDevicePolicy, LocalCa, startLocalIot, type BrokerEvent, type LocalIot } from '../../local/iot/index.js';
import { createActiveRootCa, PrivateCa } from '../../local/pca/index.js';
import { clientConfig, makeCsr, RecordingInvoker, RecordingSns, serve, type Harness } from './iot-harness.js';

/**
 * The IoT CA APIs of the local registry, driven by @aws-sdk/client-iot: a CA from the local
 * Private CA registered in DEFAULT mode (verification certificate over the registration code)
 * and in SNI_ONLY mode, device certificates registered under it or without a CA, and what the
 * mutual-TLS broker then accepts — nothing under an INACTIVE CA (an assumption, local/README.md).
 */
type Outcome = { connected: true; client: MqttClient } | { connected: false; reason: string };

function connect(iot: LocalIot, clientId: string, key: string, cert: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const client = mqtt.connect(iot.mqttUrl, { clientId, clean: true, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ca: iot.broker.caPem, key, cert, rejectUnauthorized: true });
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

async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('IoT CA APIs and the broker\'s chain acceptance', () => {
  let iot: LocalIot;
  let harness: Harness;
  let client: IoTClient;
  let pca: PrivateCa;
  let caArn: string;
  let caPem: string;
  let caId: string;
  const open: MqttClient[] = [];
  const events: BrokerEvent[] = [];

  /** A device key and a certificate for it from the Private CA (what the private-ca signer does). */
  async function deviceFromPca(commonName: string, arn = caArn): Promise<{ key: string; cert: string }> {
    const { csrPem, privateKeyPem } = await makeCsr(commonName);
    const certificateArn = await pca.issueCertificate({ caArn: arn, csrPem, signingAlgorithm: 'SHA256WITHECDSA', validity: { Type: 'DAYS', Value: 30 } });
    return { key: privateKeyPem, cert: pca.getCertificate(arn, certificateArn).certificatePem };
  }

  /** A thing with the device policy and this certificate attached, through the API. */
  async function attach(thingName: string, certificateArn: string): Promise<void> {
    await client.send(new CreateThingCommand({ thingName }));
    await client.send(new AttachPolicyCommand({ policyName: 'rotor-device', target: certificateArn }));
    await client.send(new AttachThingPrincipalCommand({ thingName, principal: certificateArn }));
  }

  beforeAll(async () => {
    iot = await startLocalIot({ invoker: new RecordingInvoker(), sns: new RecordingSns(), onBrokerEvent: (event) => events.push(event) });
    harness = await serve(iot.controlPlane);
    client = new IoTClient(clientConfig(harness.endpoint));
    pca = new PrivateCa({ issueLatencyMs: 0 });
    caArn = await createActiveRootCa(pca, { commonName: 'Rotor Device CA 1' });
    caPem = pca.caCertificate(caArn).certificatePem;
    iot.registry.createPolicy('rotor-device', defaultDevicePolicy('us-east-1', '000000000000'));
  });

  afterEach(() => {
    for (const c of open.splice(0)) c.end(true);
  });

  afterAll(async () => {
    client.destroy();
    await harness.close();
    await iot.stop();
  });

  it('registers a CA in DEFAULT mode with a verification certificate over the registration code', async () => {
    // Prepare
    const { registrationCode } = await client.send(new GetRegistrationCodeCommand({}));
    const { csrPem } = await makeCsr(registrationCode as string);
    const verificationArn = await pca.issueCertificate({ caArn, csrPem, signingAlgorithm: 'SHA256WITHECDSA', validity: { Type: 'DAYS', Value: 1 } });
    const verificationCertificate = pca.getCertificate(caArn, verificationArn).certificatePem;
    // Act
    const registered = await client.send(new RegisterCACertificateCommand({ caCertificate: caPem, verificationCertificate, setAsActive: true }));
    const { certificateDescription } = await client.send(new DescribeCACertificateCommand({ certificateId: registered.certificateId }));
    const listed = await client.send(new ListCACertificatesCommand({}));
    const again = await client.send(new GetRegistrationCodeCommand({}));
    // Assess
    caId = registered.certificateId as string;
    expect(registrationCode).toMatch(/^[0-9a-f]{64}$/);
    expect(again.registrationCode).toBe(registrationCode);
    expect(registered.certificateArn).toBe(`arn:aws:iot:us-east-1:000000000000:cacert/${caId}`);
    expect(certificateDescription).toMatchObject({ certificateId: caId, status: 'ACTIVE', certificateMode: 'DEFAULT', autoRegistrationStatus: 'DISABLE', ownedBy: '000000000000', customerVersion: 1 });
    expect(certificateDescription?.validity?.notAfter?.getTime()).toBe(new Date(new X509Certificate(caPem).validTo).getTime());
    expect(listed.certificates?.map((c) => [c.certificateId, c.status])).toEqual([[caId, 'ACTIVE']]);
  });

  it('refuses a CA registration AWS refuses, with its errors', async () => {
    // Prepare
    const other = await LocalCa.create('Other CA');
    const code = (await client.send(new GetRegistrationCodeCommand({}))).registrationCode as string;
    const wrongName = await makeCsr('not-the-code');
    const wrongNameArn = await pca.issueCertificate({ caArn, csrPem: wrongName.csrPem, signingAlgorithm: 'SHA256WITHECDSA', validity: { Type: 'DAYS', Value: 1 } });
    const byOtherKeyArn = await pca.issueCertificate({ caArn, csrPem: (await makeCsr(code)).csrPem, signingAlgorithm: 'SHA256WITHECDSA', validity: { Type: 'DAYS', Value: 1 } });
    const byOtherKey = { certificatePem: pca.getCertificate(caArn, byOtherKeyArn).certificatePem };
    const device = await deviceFromPca('not-a-ca');
    const register = (input: ConstructorParameters<typeof RegisterCACertificateCommand>[0]) => client.send(new RegisterCACertificateCommand(input));
    // Act + Assess
    await expect(register({ caCertificate: other.certificatePem })).rejects.toMatchObject({ name: 'CertificateValidationException' });
    await expect(register({ caCertificate: caPem, verificationCertificate: pca.getCertificate(caArn, wrongNameArn).certificatePem })).rejects.toMatchObject({ name: 'CertificateValidationException', message: expect.stringContaining('registration code') });
    await expect(register({ caCertificate: other.certificatePem, verificationCertificate: byOtherKey.certificatePem })).rejects.toMatchObject({ name: 'CertificateValidationException', message: expect.stringContaining('not signed by') });
    await expect(register({ caCertificate: device.cert, certificateMode: 'SNI_ONLY' })).rejects.toMatchObject({ name: 'CertificateValidationException', message: expect.stringContaining('not a CA') });
    await expect(register({ caCertificate: caPem, certificateMode: 'SNI_ONLY' })).rejects.toMatchObject({ name: 'ResourceAlreadyExistsException' });
    await expect(register({ caCertificate: 'garbage', certificateMode: 'SNI_ONLY' })).rejects.toMatchObject({ name: 'CertificateValidationException' });
  });

  it('registers a device certificate the CA signed, in its mode, and lists it under the CA', async () => {
    // Prepare
    const device = await deviceFromPca('sensor-1');
    // Act
    const registered = await client.send(new RegisterCertificateCommand({ certificatePem: device.cert, status: 'ACTIVE' }));
    const { certificateDescription } = await client.send(new DescribeCertificateCommand({ certificateId: registered.certificateId }));
    const byCa = await client.send(new ListCertificatesByCACommand({ caCertificateId: caId }));
    // Assess
    expect(certificateDescription).toMatchObject({ status: 'ACTIVE', caCertificateId: caId, certificateMode: 'DEFAULT' });
    expect(certificateDescription?.validity?.notAfter?.getTime()).toBe(new Date(new X509Certificate(device.cert).validTo).getTime());
    expect(byCa.certificates?.map((c) => c.certificateId)).toEqual([registered.certificateId]);
    await expect(client.send(new RegisterCertificateCommand({ certificatePem: device.cert, caCertificatePem: caPem, status: 'ACTIVE' }))).rejects.toMatchObject({ name: 'ResourceAlreadyExistsException' });
    const inactiveByDefault = await client.send(new RegisterCertificateCommand({ certificatePem: (await deviceFromPca('sensor-x')).cert }));
    expect((await client.send(new DescribeCertificateCommand({ certificateId: inactiveByDefault.certificateId }))).certificateDescription?.status).toBe('INACTIVE');
  });

  it('refuses a device certificate whose CA is not registered, and one named with the wrong CA', async () => {
    const stranger = await LocalCa.create('Unregistered CA');
    const { csrPem } = await makeCsr('stray');
    const stray = await stranger.signCsr(csrPem, { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) });
    await expect(client.send(new RegisterCertificateCommand({ certificatePem: stray.certificatePem, status: 'ACTIVE' }))).rejects.toMatchObject({ name: 'CertificateValidationException' });
    await expect(client.send(new RegisterCertificateCommand({ certificatePem: stray.certificatePem, caCertificatePem: caPem, status: 'ACTIVE' }))).rejects.toMatchObject({ name: 'CertificateValidationException' });
    await expect(client.send(new RegisterCertificateCommand({ certificatePem: stray.certificatePem, status: 'PENDING_TRANSFER' }))).rejects.toMatchObject({ name: 'CertificateValidationException' });
  });

  it('connects a device whose registered certificate chains to the ACTIVE CA; an INACTIVE CA drops it and refuses it until ACTIVE again', async () => {
    // Prepare
    const device = await deviceFromPca('ca-dev-1');
    const { certificateArn } = await client.send(new RegisterCertificateCommand({ certificatePem: device.cert, status: 'ACTIVE' }));
    await attach('ca-dev-1', certificateArn as string);
    // Act
    const first = await connect(iot, 'ca-dev-1', device.key, device.cert);
    if (first.connected) open.push(first.client);
    await client.send(new UpdateCACertificateCommand({ certificateId: caId, newStatus: 'INACTIVE' }));
    if (first.connected) await until(() => !first.client.connected, 'the session under the INACTIVE CA to be dropped');
    const refused = await connect(iot, 'ca-dev-1', device.key, device.cert);
    const late = await deviceFromPca('late');
    await expect(client.send(new RegisterCertificateCommand({ certificatePem: late.cert, status: 'ACTIVE' }))).rejects.toMatchObject({ name: 'CertificateStateException' });
    const inactive = await client.send(new DescribeCACertificateCommand({ certificateId: caId }));
    await client.send(new UpdateCACertificateCommand({ certificateId: caId, newStatus: 'ACTIVE' }));
    const again = await connect(iot, 'ca-dev-1', device.key, device.cert);
    if (again.connected) open.push(again.client);
    // Assess
    expect(first.connected).toBe(true);
    expect(refused).toEqual({ connected: false, reason: expect.stringMatching(/Not authorized/i) });
    expect(inactive.certificateDescription).toMatchObject({ status: 'INACTIVE', customerVersion: 2 });
    expect(again.connected).toBe(true);
  });

  it('refuses a certificate the registered CA signed that is not itself registered', async () => {
    const device = await deviceFromPca('unregistered-dev');
    const outcome = await connect(iot, 'unregistered-dev', device.key, device.cert);
    expect(outcome.connected).toBe(false);
  });

  it('still refuses an expired certificate of the local CA right after the handshake, saying why', async () => {
    const expired = await iot.registry.provisionDevice({ thingName: 'expired-dev', policyName: 'rotor-device', expiresInDays: -1, createdDaysAgo: 30 });
    const outcome = await connect(iot, 'expired-dev', expired.privateKeyPem as string, expired.certificatePem);
    expect(outcome.connected).toBe(false);
    expect(events).toContainEqual({ type: 'refused', clientId: '', certificateId: expired.certificateId, reason: 'CERT_HAS_EXPIRED' });
  });

  it('registers a certificate without a CA (SNI_ONLY), which then connects on its own', async () => {
    // Prepare
    const stranger = await LocalCa.create('Outside CA');
    const { csrPem, privateKeyPem } = await makeCsr('sni-dev');
    const outside = await stranger.signCsr(csrPem, { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) });
    const before = await connect(iot, 'sni-dev', privateKeyPem, outside.certificatePem);
    // Act
    const { certificateArn, certificateId } = await client.send(new RegisterCertificateWithoutCACommand({ certificatePem: outside.certificatePem, status: 'ACTIVE' }));
    await attach('sni-dev', certificateArn as string);
    const after = await connect(iot, 'sni-dev', privateKeyPem, outside.certificatePem);
    if (after.connected) open.push(after.client);
    const { certificateDescription } = await client.send(new DescribeCertificateCommand({ certificateId }));
    // Assess
    expect(before.connected).toBe(false);
    expect(after.connected).toBe(true);
    expect(certificateDescription?.certificateMode).toBe('SNI_ONLY');
    expect(certificateDescription?.caCertificateId).toBeUndefined();
  });

  it('registers a second CA in SNI_ONLY mode without a verification certificate; its certificates are SNI_ONLY', async () => {
    const secondArn = await createActiveRootCa(pca, { commonName: 'Rotor Device CA 2' });
    const secondPem = pca.caCertificate(secondArn).certificatePem;
    const { certificateId: secondId } = await client.send(new RegisterCACertificateCommand({ caCertificate: secondPem, certificateMode: 'SNI_ONLY', setAsActive: true }));
    const device = await deviceFromPca('ca2-dev', secondArn);
    const { certificateId, certificateArn } = await client.send(new RegisterCertificateCommand({ certificatePem: device.cert, caCertificatePem: secondPem, status: 'ACTIVE' }));
    await attach('ca2-dev', certificateArn as string);
    const outcome = await connect(iot, 'ca2-dev', device.key, device.cert);
    if (outcome.connected) open.push(outcome.client);
    expect((await client.send(new DescribeCertificateCommand({ certificateId }))).certificateDescription).toMatchObject({ certificateMode: 'SNI_ONLY', caCertificateId: secondId });
    expect(outcome.connected).toBe(true);
    await expect(client.send(new UpdateCACertificateCommand({ certificateId: secondId, newStatus: 'REVOKED' as never }))).rejects.toMatchObject({ name: 'InvalidRequestException' });
    await expect(client.send(new DescribeCACertificateCommand({ certificateId: '0'.repeat(64) }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});
