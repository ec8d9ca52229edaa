import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  AttachThingPrincipalCommand,
  CreateThingCommand,
  DescribeCertificateCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  ListThingPrincipalsCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { DescribeExecutionCommand, SendTaskSuccessCommand, SFNClient, StartExecutionCommand, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { executeRetries, planRetries } from '../../cli/operator/retry';
import { auditExecutionName } from '../../domain/naming';
import { CURRENT_SK, thingPk, type HistoryItem, type RotationRecord } from '../../domain/records';
import { FailureReason, RotationStatus, Step, type RotationInput } from '../../domain/rotation';
import { MessageType } from '../../domain/topics';
import { DEVICE_POLICY_NAME, startLocalAws, type LocalAws } from '../../local/runtime';
import { identityOf, newPendingKey, ScriptedDevice, tryConnect, type BrokerAddress, type DeviceIdentity, type PendingKey } from '../fixtures/scripted-device';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * Issue 9, the workflow's decisions on the real ASL and bundles (scenarios 1, 2 at Retire, 4,
 * 7 and 9 at Retire): what the cloud does when somebody else changes a certificate mid-rotation,
 * when a task token is completed without an ack, when a claim is abandoned, and how the
 * follow-up rotation finishes what a failed one left. Timeouts are never reached: every branch
 * is driven by the scripted device or by the test acting as an operator.
 */
const TIME_SCALE = 0.001;
const PATIENT = { csrTimeoutSeconds: 60_000, csrRetryIntervalSeconds: 100, csrRequestRetries: 2, ackTimeoutSeconds: 60_000 };
/** Bounds on waits that normally end in well under a second; a first invocation on a loaded 2-core machine can take many seconds. */
const MESSAGE_WAIT_MS = 60_000;
const EXECUTION_WAIT_MS = 60_000;

const describeWithBundles = bundlesDescribe('test/e2e/workflow-safety.test.ts');

interface Rig {
  thing: string;
  device: ScriptedDevice;
  old: DeviceIdentity;
  executionArn: string;
  rotationId: string;
}

describeWithBundles('workflow safety on the local runtime', () => {
  let aws: LocalAws;
  let sfn: SFNClient;
  let iot: IoTClient;
  let ddb: DynamoDBDocumentClient;
  let broker: BrokerAddress;
  const devices: ScriptedDevice[] = [];

  beforeAll(async () => {
    aws = await startLocalAws({ port: 0, mqttPort: 0, timeScale: TIME_SCALE, settings: PATIENT, functionConcurrency: 2 });
    const config = { endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'safety', secretAccessKey: 'safety' } };
    sfn = new SFNClient(config);
    iot = new IoTClient(config);
    ddb = DynamoDBDocumentClient.from(new DynamoDBClient(config));
    broker = { host: aws.endpoints.mqtt.host, port: aws.endpoints.mqtt.port, caPem: aws.caPem };
  }, 60_000);

  afterAll(async () => {
    await Promise.all(devices.splice(0).map((device) => device.close()));
    sfn?.destroy();
    iot?.destroy();
    ddb?.destroy();
    await aws?.stop();
  }, 60_000);

  async function provision(thing: string): Promise<{ device: ScriptedDevice; old: DeviceIdentity }> {
    const first = await newPendingKey(thing);
    const provisioned = await aws.iot.registry.provisionDevice({ thingName: thing, policyName: DEVICE_POLICY_NAME, csrPem: first.csrPem, expiresInDays: 5 });
    const old = identityOf(first, provisioned.certificatePem);
    const device = await ScriptedDevice.connect(thing, broker, old);
    devices.push(device);
    return { device, old };
  }

  async function start(thing: string, old: DeviceIdentity, auditTask: string): Promise<{ executionArn: string; rotationId: string }> {
    const input: RotationInput = { thingName: thing, certificateId: old.certificateId, trigger: 'audit', auditTaskId: auditTask };
    const rotationId = auditExecutionName(thing, old.certificateId, auditTask);
    const started = await sfn.send(new StartExecutionCommand({ stateMachineArn: aws.endpoints.stateMachineArn, name: rotationId, input: JSON.stringify(input) }));
    return { executionArn: started.executionArn as string, rotationId };
  }

  async function rig(thing: string): Promise<Rig> {
    const { device, old } = await provision(thing);
    return { thing, device, old, ...(await start(thing, old, 'safety-audit')) };
  }

  /** Answers csr_req with a fresh key; returns the key and, once crt_res arrives, the new identity. */
  async function toDelivery(r: Rig): Promise<{ pending: PendingKey; fresh: DeviceIdentity }> {
    await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    const pending = await newPendingKey(r.thing);
    await r.device.publish(MessageType.CsrResponse, { rotationId: r.rotationId, CSR: pending.csrPem });
    const crt = await r.device.next(MessageType.CertificateResponse, MESSAGE_WAIT_MS);
    return { pending, fresh: identityOf(pending, crt.certificatePem) };
  }

  async function ackOverNew(r: Rig, fresh: DeviceIdentity): Promise<void> {
    await r.device.reconnect(fresh);
    await r.device.publish(MessageType.CertificateAck, { rotationId: r.rotationId });
  }

  async function finished(executionArn: string): Promise<{ status: string; error?: string }> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${executionArn}: not finished within ${EXECUTION_WAIT_MS} ms`)), EXECUTION_WAIT_MS);
    });
    try {
      await Promise.race([aws.stepFunctions.waitForExecution(executionArn), deadline]);
    } finally {
      clearTimeout(timer);
    }
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    return { status: described.status as string, error: described.error };
  }

  async function eventually<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + MESSAGE_WAIT_MS;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async function certificateStatus(certificateId: string): Promise<string> {
    try {
      const { certificateDescription } = await iot.send(new DescribeCertificateCommand({ certificateId }));
      return certificateDescription?.status as string;
    } catch (error) {
      if ((error as Error).name === 'ResourceNotFoundException') return 'GONE';
      throw error;
    }
  }

  async function thingCertificates(thing: string): Promise<string[]> {
    const { principals } = await iot.send(new ListThingPrincipalsCommand({ thingName: thing }));
    return (principals ?? []).map((arn) => arn.slice(arn.lastIndexOf('/') + 1)).sort();
  }

  async function certificatesWithKey(pending: PendingKey): Promise<string[]> {
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', pending.key.keys.publicKey));
    return aws.iot.registry
      .listCertificates()
      .filter((c) => new X509Certificate(c.certificatePem).publicKey.export({ type: 'spki', format: 'der' }).equals(spki))
      .map((c) => c.certificateId);
  }

  async function record(thing: string): Promise<RotationRecord> {
    const { Item } = await ddb.send(new GetCommand({ TableName: aws.endpoints.tableName, Key: { pk: thingPk(thing), sk: CURRENT_SK }, ConsistentRead: true }));
    if (!Item) throw new Error(`no current record for ${thing}`);
    return Item as RotationRecord;
  }

  async function historyItems(thing: string): Promise<HistoryItem[]> {
    const { Items } = await ddb.send(
      new QueryCommand({
        TableName: aws.endpoints.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :history)',
        ExpressionAttributeValues: { ':pk': thingPk(thing), ':history': 'rotation#' },
        ConsistentRead: true,
      }),
    );
    return (Items ?? []) as HistoryItem[];
  }

  function escalations(thing: string): { subject?: string; body: Record<string, unknown> }[] {
    return aws.sns
      .messages(aws.endpoints.topics.escalation)
      .map((m) => ({ subject: m.subject, body: JSON.parse(m.message) as Record<string, unknown> }))
      .filter((m) => m.body.thingName === thing);
  }

  // ---- scenario 1: the old certificate stops being ACTIVE mid-rotation ---------------------

  it.concurrent('old certificate REVOKED before Retire → new one taken down, OLD_CERTIFICATE_REVOKED, no abort, one escalation', async () => {
    const r = await rig('safety-revoked');
    const { pending, fresh } = await toDelivery(r);
    await iot.send(new UpdateCertificateCommand({ certificateId: r.old.certificateId, newStatus: 'REVOKED' }));
    await ackOverNew(r, fresh);

    expect(await finished(r.executionArn)).toMatchObject({ status: 'FAILED', error: FailureReason.OldCertificateRevoked });
    expect(await record(r.thing)).toMatchObject({ status: RotationStatus.Failed, reason: FailureReason.OldCertificateRevoked, step: Step.RetireOldCertificate });
    // Cut off on purpose: no certificate for the new key, the revoked one left as the operator set it.
    expect(await certificatesWithKey(pending)).toEqual([]);
    expect(await certificateStatus(r.old.certificateId)).toBe('REVOKED');
    expect(r.device.received(MessageType.Abort)).toEqual([]);
    expect(r.device.received(MessageType.RotationDone)).toEqual([]);
    const sent = escalations(r.thing);
    expect(sent).toHaveLength(1);
    expect(sent[0].body).toMatchObject({ reason: FailureReason.OldCertificateRevoked, cause: expect.stringContaining('cut off on purpose') });
  }, 150_000);

  it.concurrent('old certificate set INACTIVE by somebody else, device acks over the new one → the rotation finishes', async () => {
    const r = await rig('safety-inactive');
    const { fresh } = await toDelivery(r);
    await iot.send(new UpdateCertificateCommand({ certificateId: r.old.certificateId, newStatus: 'INACTIVE' }));
    await ackOverNew(r, fresh);

    await r.device.next(MessageType.RotationDone, MESSAGE_WAIT_MS);
    expect(await finished(r.executionArn)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await record(r.thing)).toMatchObject({ status: RotationStatus.Succeeded, newCertificateId: fresh.certificateId });
    expect(await certificateStatus(r.old.certificateId)).toBe('GONE');
    expect(await thingCertificates(r.thing)).toEqual([fresh.certificateId]);
    expect(r.device.received(MessageType.Abort)).toEqual([]);
    await r.device.disconnect();
    expect(await tryConnect(r.thing, broker, fresh)).toEqual({ connected: true });
  }, 150_000);

  // ---- scenario 9: a task token completed without an ack over the new certificate --------

  it.concurrent('Deliver completed with a stolen task token, no ack → ACK_NOT_VERIFIED, the old certificate untouched', async () => {
    const r = await rig('safety-forged');
    const { fresh } = await toDelivery(r);
    const parked = await eventually('the parked ack token', async () => {
      const current = await record(r.thing);
      return current.waitFor === 'crt_ack' && current.taskToken ? current.taskToken : undefined;
    });
    await sfn.send(new SendTaskSuccessCommand({ taskToken: parked, output: JSON.stringify({ principal: fresh.certificateId, ackedAt: new Date().toISOString() }) }));

    expect(await finished(r.executionArn)).toMatchObject({ status: 'FAILED', error: FailureReason.AckNotVerified });
    expect(await certificateStatus(r.old.certificateId)).toBe('ACTIVE');
    expect(await thingCertificates(r.thing)).toContain(r.old.certificateId);
    expect(r.device.received(MessageType.RotationDone)).toEqual([]);
    await r.device.disconnect();
    expect(await tryConnect(r.thing, broker, r.old)).toEqual({ connected: true });
  }, 150_000);

  // ---- scenario 2 at Retire, then scenario 7: the follow-up finishes it -------------------

  it.concurrent('old certificate shared with another thing → SHARED_CERTIFICATE, left ACTIVE; once unshared, rotor retry resumes at Retire', async () => {
    const r = await rig('safety-shared');
    const { fresh } = await toDelivery(r);
    const oldArn = aws.iot.registry.certificateArn(r.old.certificateId);
    await iot.send(new CreateThingCommand({ thingName: 'safety-shared-gateway' }));
    await iot.send(new AttachThingPrincipalCommand({ thingName: 'safety-shared-gateway', principal: oldArn }));
    await ackOverNew(r, fresh);

    expect(await finished(r.executionArn)).toMatchObject({ status: 'FAILED', error: FailureReason.SharedCertificate });
    expect(await certificateStatus(r.old.certificateId)).toBe('ACTIVE');
    expect(await thingCertificates('safety-shared-gateway')).toEqual([r.old.certificateId]);
    expect(await record(r.thing)).toMatchObject({ leftoverCertificateId: fresh.certificateId, ackedCertificateId: fresh.certificateId });
    expect(r.device.received(MessageType.RotationDone)).toEqual([]);

    // The operator detaches the other thing and retries: the device is on the new certificate.
    await iot.send(new DetachThingPrincipalCommand({ thingName: 'safety-shared-gateway', principal: oldArn }));
    const deps = { ddb, sfn, tableName: aws.endpoints.tableName };
    const plan = await planRetries(deps, { thing: r.thing, allFailed: false });
    expect(plan.toStart[0].input.resume).toEqual({ newCertificateId: fresh.certificateId });
    const [started] = await executeRetries(deps, aws.endpoints.stateMachineArn, plan, { concurrency: 1 });
    expect(started).toMatchObject({ outcome: 'started' });
    const retryArn = (started as { executionArn: string }).executionArn;

    expect(await finished(retryArn)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await record(r.thing)).toMatchObject({ status: RotationStatus.Succeeded, newCertificateId: fresh.certificateId });
    expect((await record(r.thing)).leftoverCertificateId).toBeUndefined();
    expect(await certificateStatus(r.old.certificateId)).toBe('GONE');
    expect(await thingCertificates(r.thing)).toEqual([fresh.certificateId]);
    expect(r.device.received(MessageType.CsrRequest)).toHaveLength(1);
    await r.device.next(MessageType.RotationDone, MESSAGE_WAIT_MS);
    await r.device.disconnect();
    expect(await tryConnect(r.thing, broker, fresh)).toEqual({ connected: true });
  }, 200_000);

  // ---- scenario 4: a claim whose execution is gone ------------------------------------------

  it.concurrent('a stopped execution leaves an IN_PROGRESS claim; the next audit releases it (EXECUTION_ABANDONED) and rotates', async () => {
    const { device, old } = await provision('safety-stopped');
    const first = await start('safety-stopped', old, 'safety-audit-1');
    await device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    await sfn.send(new StopExecutionCommand({ executionArn: first.executionArn, error: 'Operator', cause: 'stopped by hand' }));
    expect(await finished(first.executionArn)).toMatchObject({ status: 'ABORTED' });
    expect(await record('safety-stopped')).toMatchObject({ status: RotationStatus.InProgress, rotationId: first.rotationId });

    const second = await start('safety-stopped', old, 'safety-audit-2');
    const r: Rig = { thing: 'safety-stopped', device, old, ...second };
    await device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    const pending = await newPendingKey(r.thing);
    await device.publish(MessageType.CsrResponse, { rotationId: r.rotationId, CSR: pending.csrPem });
    const crt = await device.next(MessageType.CertificateResponse, MESSAGE_WAIT_MS);
    const fresh = identityOf(pending, crt.certificatePem);
    await ackOverNew(r, fresh);

    expect(await finished(second.executionArn)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await record(r.thing)).toMatchObject({ status: RotationStatus.Succeeded, rotationId: second.rotationId });
    const abandoned = (await historyItems(r.thing)).find((h) => h.rotationId === first.rotationId);
    expect(abandoned).toMatchObject({ outcome: RotationStatus.Failed, reason: FailureReason.ExecutionAbandoned, executionArn: first.executionArn });
    // Every failed rotation escalates once: the abandoned one through the execution that released it.
    const sent = escalations(r.thing);
    expect(sent).toHaveLength(1);
    expect(sent[0].body).toMatchObject({ reason: FailureReason.ExecutionAbandoned, rotationId: first.rotationId, executionArn: first.executionArn });
    expect(await thingCertificates(r.thing)).toEqual([fresh.certificateId]);
  }, 200_000);
});
