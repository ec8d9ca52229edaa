import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  AttachThingPrincipalCommand,
  CreateThingCommand,
  DescribeCertificateCommand,
  IoTClient,
  ListPrincipalThingsCommand,
  ListThingPrincipalsCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { CreateStateMachineCommand, DescribeExecutionCommand, GetExecutionHistoryCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { DeviceErrorCode } from '../../domain/messages';
import { auditExecutionName, resumeExecutionName } from '../../domain/naming';
import { CURRENT_SK, thingPk, type RotationRecord } from '../../domain/records';
import { FailureReason, IgnoredReason, RotationStatus, Step, type RotationInput } from '../../domain/rotation';
import { MessageType } from '../../domain/topics';
import { DEVICE_POLICY_NAME, startLocalAws, type LocalAws } from '../../local/runtime';
import { renderStateMachine } from '../../wiring/index';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';
import { identityOf, newPendingKey, ScriptedDevice, tryConnect, type BrokerAddress, type DeviceIdentity } from '../fixtures/scripted-device';

/**
 * Issue 9 on the real ASL and bundles: devices and fleets that do not play by Rotor's rules.
 * The local IoT runs with clientIdPolicy 'any' — a fleet policy that lets any ACTIVE
 * certificate connect with any client id (iot:Connect on client/*), which many fleets have —
 * so that one device can publish on another's topics and the cloud must tell them apart by the
 * certificate the connection was made with (principal()), not by the client id.
 *
 * Time scale as in state-machine-paths: one workflow second lasts 1 ms; timeouts a test does
 * not wait for are a minute of real time.
 */
const TIME_SCALE = 0.001;
const PATIENT = { csrTimeoutSeconds: 60_000, csrRetryIntervalSeconds: 100, csrRequestRetries: 2, ackTimeoutSeconds: 60_000 };
/** The ack wait the late-ack branch lets run out: long enough to deactivate the old certificate first. */
const LATE_ACK = { ackTimeoutSeconds: 4_000 };
const MESSAGE_WAIT_MS = 20_000;
const EXECUTION_WAIT_MS = 30_000;
const AUDIT_TASK = 'hostile-audit-task';

const HAPPY_STATES = [Step.ClaimDevice, Step.ResumeOrRotate, Step.RequestCsr, Step.IssueCertificate, Step.IssueCertificatePaced, Step.IssueCertificateDone, Step.DeliverCertificate, Step.RetireOldCertificate, Step.RetireOldCertificatePaced, Step.RetireOldCertificateDone, Step.Rotated];
const FAILED_BEFORE_ISSUE = [Step.ClaimDevice, Step.ResumeOrRotate, Step.RequestCsr, Step.RollBack, Step.RollBackPaced, Step.RollBackDone, Step.RecordFailure, Step.Escalate, Step.RotationFailed];

const describeWithBundles = bundlesDescribe('test/e2e/hostile-devices.test.ts');

/** Whether the state machine takes a `resume` input (RotationInput.resume) and finishes the rotation from Retire. */
const ASL_RESUMES = readFileSync(join(__dirname, '../../statemachines/rotate-device.asl.json'), 'utf8').includes('$.resume');

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = MESSAGE_WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

interface EscalationMessage {
  thingName: string;
  oldCertificateId: string;
  newCertificateId: string | null;
  step: string;
  reason: string;
  cause: string;
  rotationId: string;
}

describeWithBundles('hostile devices and shared certificates on the local runtime (issue 9)', () => {
  let aws: LocalAws;
  let sfn: SFNClient;
  let iot: IoTClient;
  let ddb: DynamoDBDocumentClient;
  let broker: BrokerAddress;
  let lateAckMachine: string;
  const devices: ScriptedDevice[] = [];

  beforeAll(async () => {
    aws = await startLocalAws({ port: 0, mqttPort: 0, timeScale: TIME_SCALE, settings: PATIENT, functionConcurrency: 2, clientIdPolicy: 'any' });
    const config = { endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'hostile', secretAccessKey: 'hostile' } };
    sfn = new SFNClient(config);
    iot = new IoTClient(config);
    ddb = DynamoDBDocumentClient.from(new DynamoDBClient(config));
    broker = { host: aws.endpoints.mqtt.host, port: aws.endpoints.mqtt.port, caPem: aws.caPem };
    const deployment = { ...aws.deployment, settings: { ...aws.deployment.settings, ...LATE_ACK } };
    const created = await sfn.send(
      new CreateStateMachineCommand({
        name: 'rotor-rotate-device-late-ack',
        definition: renderStateMachine(deployment),
        roleArn: 'arn:aws:iam::000000000000:role/rotor-state-machine',
        type: 'STANDARD',
      }),
    );
    lateAckMachine = created.stateMachineArn as string;
  }, 60_000);

  afterAll(async () => {
    await Promise.all(devices.splice(0).map((device) => device.close()));
    sfn?.destroy();
    iot?.destroy();
    ddb?.destroy();
    await aws?.stop();
  }, 60_000);

  // ---- rigging -----------------------------------------------------------------------------

  /** Provisions one more certificate for `thing` (creating the thing on first use), with a key made here. */
  async function provision(thing: string): Promise<DeviceIdentity> {
    const key = await newPendingKey(thing);
    const provisioned = await aws.iot.registry.provisionDevice({ thingName: thing, policyName: DEVICE_POLICY_NAME, csrPem: key.csrPem, expiresInDays: 5 });
    return identityOf(key, provisioned.certificatePem);
  }

  async function connect(thing: string, identity: DeviceIdentity): Promise<ScriptedDevice> {
    const device = await ScriptedDevice.connect(thing, broker, identity);
    devices.push(device);
    return device;
  }

  interface Started {
    thing: string;
    certificateId: string;
    rotationId: string;
    executionArn: string;
  }

  async function start(thing: string, certificateId: string, machine = aws.endpoints.stateMachineArn): Promise<Started> {
    const input: RotationInput = { thingName: thing, certificateId, trigger: 'audit', auditTaskId: AUDIT_TASK };
    const rotationId = auditExecutionName(thing, certificateId, AUDIT_TASK);
    const started = await sfn.send(new StartExecutionCommand({ stateMachineArn: machine, name: rotationId, input: JSON.stringify(input) }));
    return { thing, certificateId, rotationId, executionArn: started.executionArn as string };
  }

  // ---- what the cloud shows ----------------------------------------------------------------

  async function finished(executionArn: string): Promise<{ status: string; error?: string }> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${executionArn} did not finish within ${EXECUTION_WAIT_MS} ms`)), EXECUTION_WAIT_MS);
    });
    try {
      await Promise.race([aws.stepFunctions.waitForExecution(executionArn), deadline]);
    } finally {
      clearTimeout(timer);
    }
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    return { status: described.status as string, error: described.error };
  }

  async function statesEntered(executionArn: string): Promise<string[]> {
    const { events } = await sfn.send(new GetExecutionHistoryCommand({ executionArn, maxResults: 1000 }));
    return (events ?? []).filter((e) => e.type?.endsWith('StateEntered')).map((e) => e.stateEnteredEventDetails?.name as string);
  }

  async function record(thing: string): Promise<RotationRecord> {
    const { Item } = await ddb.send(new GetCommand({ TableName: aws.endpoints.tableName, Key: { pk: thingPk(thing), sk: CURRENT_SK }, ConsistentRead: true }));
    if (!Item) throw new Error(`no current record for ${thing}`);
    return Item as RotationRecord;
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

  function escalations(thing: string): EscalationMessage[] {
    return aws.sns
      .messages(aws.endpoints.topics.escalation)
      .map((m) => JSON.parse(m.message) as EscalationMessage)
      .filter((m) => m.thingName === thing);
  }

  /** The whole registry, to prove a refusal changed nothing. */
  /**
   * The certificates of these things and their statuses. Scoped to the test's own things: the
   * tests run concurrently on one runtime, and the others issue certificates meanwhile.
   */
  function registrySnapshot(...things: string[]): string {
    return JSON.stringify(
      things.map((thing) => [thing, aws.iot.registry.certificatesOf(thing).map((c) => [c.certificateId, c.status]).sort()]),
    );
  }

  // ---- scenario 3: every device message is tied to a certificate -----------------------------

  it.concurrent('a device connecting as another thing (client/* policy) cannot answer its rotation: csr_res and crt_err ignored, the real device rotates', async () => {
    // Prepare: two things; the rotation of the victim waits for its CSR.
    const victimThing = 'hostile-victim';
    const victimOld = await provision(victimThing);
    const attackerIdentity = await provision('hostile-attacker');
    const victim = await connect(victimThing, victimOld);
    const r = await start(victimThing, victimOld.certificateId);
    const request = await victim.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    expect(request).toEqual({ rotationId: r.rotationId, certificateId: victimOld.certificateId });

    // Act: the attacker connects with ITS certificate as client id = the victim's thing name.
    await victim.disconnect();
    const attacker = await connect(victimThing, attackerIdentity);
    const attackerKey = await newPendingKey(victimThing);
    await attacker.publish(MessageType.CsrResponse, { rotationId: r.rotationId, CSR: attackerKey.csrPem });
    const afterCsr = await eventually('the impostor csr_res on the record', async () => {
      const current = await record(victimThing);
      return current.ignoredCount === 1 ? current : undefined;
    });
    await attacker.publish(MessageType.CertificateError, { rotationId: r.rotationId, error: 'please roll back' });
    const afterErr = await eventually('the impostor crt_err on the record', async () => {
      const current = await record(victimThing);
      return current.ignoredCount === 2 ? current : undefined;
    });

    // Assess: both recorded and dropped; the rotation still waits for the victim's CSR.
    expect(afterCsr.lastIgnored).toMatchObject({ type: MessageType.CsrResponse, reason: IgnoredReason.CsrNotOverOldCertificate, rotationId: r.rotationId });
    expect(afterErr.lastIgnored).toMatchObject({ type: MessageType.CertificateError, reason: IgnoredReason.ErrorNotOverRotationCertificate, rotationId: r.rotationId });
    expect(afterErr).toMatchObject({ status: RotationStatus.InProgress, waitFor: 'csr_res' });
    expect(afterErr.newCertificateId).toBeUndefined();
    await attacker.close();

    // The real device answers and rotates; nothing was issued for the attacker's key.
    await victim.reconnect(victimOld);
    const pending = await newPendingKey(victimThing);
    await victim.publish(MessageType.CsrResponse, { rotationId: r.rotationId, CSR: pending.csrPem });
    const crt = await victim.next(MessageType.CertificateResponse, MESSAGE_WAIT_MS);
    const fresh = identityOf(pending, crt.certificatePem);
    await victim.reconnect(fresh);
    await victim.publish(MessageType.CertificateAck, { rotationId: r.rotationId });
    await victim.next(MessageType.RotationDone, MESSAGE_WAIT_MS);
    expect(await finished(r.executionArn)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await statesEntered(r.executionArn)).toEqual(HAPPY_STATES);
    expect(await record(victimThing)).toMatchObject({ status: RotationStatus.Succeeded, newCertificateId: fresh.certificateId, ackedCertificateId: fresh.certificateId, ignoredCount: 2 });
    expect(await thingCertificates(victimThing)).toEqual([fresh.certificateId]);
    expect(await certificateStatus(attackerIdentity.certificateId)).toBe('ACTIVE');
    expect(await thingCertificates('hostile-attacker')).toEqual([attackerIdentity.certificateId]);
    expect(escalations(victimThing)).toEqual([]);
  }, 90_000);

  // ---- scenario 2: shared certificates are refused before anything is created -----------------

  it.concurrent('a thing with two certificates (A in use, B flagged) → SHARED_CERTIFICATE, no csr_req, nothing changed, one escalation', async () => {
    // Prepare
    const thing = 'hostile-two-certs';
    const inUse = await provision(thing);
    const flagged = await provision(thing);
    const device = await connect(thing, inUse);
    const before = registrySnapshot(thing);

    // Act
    const r = await start(thing, flagged.certificateId);

    // Assess
    expect(await finished(r.executionArn)).toEqual({ status: 'FAILED', error: FailureReason.SharedCertificate });
    expect(await statesEntered(r.executionArn)).toEqual(FAILED_BEFORE_ISSUE);
    const current = await record(thing);
    expect(current).toMatchObject({ status: RotationStatus.Failed, step: Step.RequestCsr, reason: FailureReason.SharedCertificate, oldCertificateId: flagged.certificateId });
    expect(current.cause).toContain(`shares its thing with 1 other certificate(s) (${inUse.certificateId})`);
    expect(current.csrRequests).toBeUndefined();
    expect(device.received(MessageType.CsrRequest)).toEqual([]);
    expect(device.received(MessageType.CertificateResponse)).toEqual([]);
    expect(registrySnapshot(thing)).toBe(before);
    expect(await thingCertificates(thing)).toEqual([inUse.certificateId, flagged.certificateId].sort());
    const sent = escalations(thing);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ reason: FailureReason.SharedCertificate, step: Step.RequestCsr, oldCertificateId: flagged.certificateId, newCertificateId: null });

    await device.disconnect();
    expect(await tryConnect(thing, broker, inUse)).toEqual({ connected: true });
  }, 90_000);

  it.concurrent('a certificate attached to two things → SHARED_CERTIFICATE for the rotation, the other thing keeps its certificate', async () => {
    // Prepare: the same certificate on a second thing.
    const thing = 'hostile-shared-a';
    const other = 'hostile-shared-b';
    const shared = await provision(thing);
    await iot.send(new CreateThingCommand({ thingName: other }));
    await iot.send(new AttachThingPrincipalCommand({ thingName: other, principal: aws.iot.registry.certificateArn(shared.certificateId) }));
    const device = await connect(thing, shared);
    const before = registrySnapshot(thing, other);

    // Act
    const r = await start(thing, shared.certificateId);

    // Assess
    expect(await finished(r.executionArn)).toEqual({ status: 'FAILED', error: FailureReason.SharedCertificate });
    expect(await record(thing)).toMatchObject({ status: RotationStatus.Failed, reason: FailureReason.SharedCertificate, cause: expect.stringContaining(`is attached to 2 things`) });
    expect(device.received(MessageType.CsrRequest)).toEqual([]);
    expect(registrySnapshot(thing, other)).toBe(before);
    const { things } = await iot.send(new ListPrincipalThingsCommand({ principal: aws.iot.registry.certificateArn(shared.certificateId) }));
    expect([...(things ?? [])].sort()).toEqual([thing, other]);
    expect(await certificateStatus(shared.certificateId)).toBe('ACTIVE');
    expect(escalations(thing)).toHaveLength(1);
  }, 90_000);

  // ---- protocol v1.1: csr_req names the certificate being replaced ----------------------------

  it.concurrent('a v1.1 device that does not hold the named certificate answers crt_err → DEVICE_ERROR, nothing issued, its keys intact', async () => {
    // Prepare
    const thing = 'hostile-not-held';
    const old = await provision(thing);
    const device = await connect(thing, old);
    const r = await start(thing, old.certificateId);

    // Act: the device checks csr_req's certificateId against what its key store says it holds
    // (here: a firmware that believes it holds another certificate) and refuses.
    const request = await device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    expect(request.certificateId).toBe(old.certificateId);
    const error = `${DeviceErrorCode.CertificateNotHeld}: csr_req names certificate ${request.certificateId}, which this device does not hold`;
    await device.publish(MessageType.CertificateError, { rotationId: r.rotationId, error });

    // Assess
    expect(await finished(r.executionArn)).toEqual({ status: 'FAILED', error: FailureReason.DeviceError });
    expect(await statesEntered(r.executionArn)).toEqual(FAILED_BEFORE_ISSUE);
    expect(await record(thing)).toMatchObject({ status: RotationStatus.Failed, step: Step.RequestCsr, reason: FailureReason.DeviceError, cause: error });
    expect(await thingCertificates(thing)).toEqual([old.certificateId]);
    expect(await certificateStatus(old.certificateId)).toBe('ACTIVE');
    expect(escalations(thing)).toHaveLength(1);
    await device.disconnect();
    expect(await tryConnect(thing, broker, old)).toEqual({ connected: true });
  }, 90_000);

  // ---- scenario 1: a late crt_ack after the old certificate stopped being ACTIVE --------------

  it.concurrent('a late crt_ack after ROLLBACK_FAILED (old certificate set INACTIVE by someone else) is not answered with abort: recorded, resume started', async () => {
    // Prepare: the device has its new certificate but has not acked when the old one is deactivated.
    const thing = 'hostile-late-ack';
    const old = await provision(thing);
    const device = await connect(thing, old);
    const r = await start(thing, old.certificateId, lateAckMachine);
    await device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    const pending = await newPendingKey(thing);
    await device.publish(MessageType.CsrResponse, { rotationId: r.rotationId, CSR: pending.csrPem });
    const crt = await device.next(MessageType.CertificateResponse, MESSAGE_WAIT_MS);
    const fresh = identityOf(pending, crt.certificatePem);
    await device.disconnect();
    await iot.send(new UpdateCertificateCommand({ certificateId: old.certificateId, newStatus: 'INACTIVE' }));

    // The ack wait runs out; roll back refuses to delete the only ACTIVE certificate.
    expect(await finished(r.executionArn)).toEqual({ status: 'FAILED', error: FailureReason.RollbackFailed });
    expect(await certificateStatus(fresh.certificateId)).toBe('ACTIVE');

    // Act: the device comes back on the new pair and acks, late.
    await device.reconnect(fresh);
    await device.publish(MessageType.CertificateAck, { rotationId: r.rotationId });

    // Assess: the ack is recorded on the failed rotation, and a resume execution is started.
    const acked = await eventually('the late ack on the record', async () => {
      const current = await record(thing);
      return current.ackedCertificateId ? current : undefined;
    });
    expect(acked.ackedCertificateId).toBe(fresh.certificateId);
    const resumeArn = `${aws.endpoints.stateMachineArn.replace(':stateMachine:', ':execution:')}:${resumeExecutionName(thing, fresh.certificateId)}`;
    const resumed = await eventually('the resume execution', async () => {
      try {
        return await sfn.send(new DescribeExecutionCommand({ executionArn: resumeArn }));
      } catch {
        return undefined;
      }
    });
    expect(JSON.parse(resumed.input ?? '{}')).toEqual({ thingName: thing, certificateId: old.certificateId, trigger: 'resume', resume: { newCertificateId: fresh.certificateId } });
    // Never an abort for the failed rotation: the new pair is the device's only working one.
    expect(device.received(MessageType.Abort).filter((m) => m.body.rotationId === r.rotationId)).toEqual([]);

    // The resume execution finishes the rotation (retire old, crt_done) — the ASL's part of
    // cloud rule 10. Checked whenever the ASL handles a resume input (issue 9, workflow half).
    if (ASL_RESUMES) {
      expect(await finished(resumeArn)).toMatchObject({ status: 'SUCCEEDED' });
      const done = await device.next(MessageType.RotationDone, MESSAGE_WAIT_MS);
      expect(done.rotationId).toBe(resumed.name);
      expect(await certificateStatus(old.certificateId)).toBe('GONE');
      expect(await thingCertificates(thing)).toEqual([fresh.certificateId]);
      expect(device.received(MessageType.Abort)).toEqual([]);
    } else {
      console.warn('hostile-devices: the ASL does not handle a resume input yet; the resume execution was only checked to start');
    }
    await device.disconnect();
    expect(await tryConnect(thing, broker, fresh)).toEqual({ connected: true });
    expect(await tryConnect(thing, broker, old)).toMatchObject({ connected: false });
  }, 90_000);
});
