import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeCertificateCommand, IoTClient, ListAttachedPoliciesCommand, ListThingPrincipalsCommand } from '@aws-sdk/client-iot';
import { CreateStateMachineCommand, DescribeExecutionCommand, GetExecutionHistoryCommand, SFNClient, StartExecutionCommand, type HistoryEvent } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { CsrRejection } from '../../domain/csr-rules';
import { auditExecutionName, executionConsoleUrl } from '../../domain/naming';
import { CURRENT_SK, thingPk, type RotationRecord } from '../../domain/records';
import { FailureReason, IgnoredReason, RotationStatus, Step, type RotationInput } from '../../domain/rotation';
import { MessageType } from '../../domain/topics';
import { DEVICE_POLICY_NAME, startLocalAws, type LocalAws } from '../../local/runtime';
import { renderStateMachine } from '../../wiring/index';
import { identityOf, newPendingKey, ScriptedDevice, tryConnect, type BrokerAddress, type DeviceIdentity, type PendingKey } from '../fixtures/scripted-device';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * Every branch of the rotate-device state machine, run for real: the rendered ASL on the local
 * Step Functions, the built Lambda bundles, DynamoDB Local, the IoT registry and its mTLS
 * broker, with a scripted device that does exactly what each branch needs. Each test asserts
 * what an operator and the device would see: the execution and the states it entered, the
 * rotation record, the certificates in the registry, the device's messages, the escalation,
 * and that the device can still connect with a certificate it holds (cloud rule 7).
 *
 * Time: at scale 0.001 one workflow second lasts 1 ms. A device answer normally takes tens of
 * ms, but a first Lambda invocation on a loaded 2-core machine can take seconds, so no branch
 * bets on an answer beating a short timeout: branches where the device answers run on the
 * deployed state machine with timeouts of a minute (never reached), and each timeout branch
 * gets the same ASL rendered from the wiring with its own settings — short where the device
 * stays silent, generous where it must still get a word in. csr_req is re-sent twice, after at
 * most 0.1 s then 0.2 s (FULL jitter on a 100 s interval).
 */
const TIME_SCALE = 0.001;
const PATIENT = { csrTimeoutSeconds: 60_000, csrRetryIntervalSeconds: 100, csrRequestRetries: 2, ackTimeoutSeconds: 60_000 };
/** Per timeout branch: what differs from PATIENT. */
const IMPATIENT = {
  // The first csr_req goes unanswered (3 s); the answer to the second has 3 s too.
  lateCsr: { csrTimeoutSeconds: 3_000 },
  // Nobody answers: three waits of 0.3 s.
  silent: { csrTimeoutSeconds: 300 },
  // The device never acks: 1.5 s.
  noAck: { ackTimeoutSeconds: 1_500 },
  // The ack over the old certificate must be seen (and ignored) before the 4 s wait ends.
  ackOverOld: { ackTimeoutSeconds: 4_000 },
} as const;
type Machine = keyof typeof IMPATIENT | 'patient';
/** Bounds on waits that normally end in well under a second; only a broken path reaches them. */
const MESSAGE_WAIT_MS = 20_000;
const EXECUTION_WAIT_MS = 30_000;
const AUDIT_TASK = 'paths-audit-task';

const HAPPY_STATES = [Step.ClaimDevice, Step.ResumeOrRotate, Step.RequestCsr, Step.IssueCertificate, Step.IssueCertificatePaced, Step.IssueCertificateDone, Step.DeliverCertificate, Step.RetireOldCertificate, Step.RetireOldCertificatePaced, Step.RetireOldCertificateDone, Step.Rotated];
const FAILED_BEFORE_ISSUE = [Step.ClaimDevice, Step.ResumeOrRotate, Step.RequestCsr, Step.RollBack, Step.RollBackPaced, Step.RollBackDone, Step.RecordFailure, Step.Escalate, Step.RotationFailed];
const FAILED_IN_ISSUE = [Step.ClaimDevice, Step.ResumeOrRotate, Step.RequestCsr, Step.IssueCertificate, Step.RollBack, Step.RollBackPaced, Step.RollBackDone, Step.RecordFailure, Step.Escalate, Step.RotationFailed];
const FAILED_IN_DELIVERY = [
  Step.ClaimDevice, Step.ResumeOrRotate, Step.RequestCsr, Step.IssueCertificate, Step.IssueCertificatePaced, Step.IssueCertificateDone, Step.DeliverCertificate, Step.RollBack, Step.RollBackPaced, Step.RollBackDone, Step.RecordFailure, Step.Escalate, Step.RotationFailed,
];

const describeWithBundles = bundlesDescribe('test/e2e/state-machine-paths.test.ts');

/** Polls `probe` until it returns a value, or fails naming `what` at the deadline. */
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
  executionArn: string;
  consoleUrl: string;
}

describeWithBundles('rotate-device paths on the local runtime', () => {
  let aws: LocalAws;
  let sfn: SFNClient;
  let iot: IoTClient;
  let ddb: DynamoDBDocumentClient;
  let broker: BrokerAddress;
  const devices: ScriptedDevice[] = [];
  const machines = new Map<Machine, string>();

  beforeAll(async () => {
    aws = await startLocalAws({ port: 0, mqttPort: 0, timeScale: TIME_SCALE, settings: PATIENT, functionConcurrency: 2 });
    const config = { endpoint: aws.endpoints.awsEndpoint, region: aws.endpoints.region, credentials: { accessKeyId: 'paths', secretAccessKey: 'paths' } };
    sfn = new SFNClient(config);
    iot = new IoTClient(config);
    ddb = DynamoDBDocumentClient.from(new DynamoDBClient(config));
    broker = { host: aws.endpoints.mqtt.host, port: aws.endpoints.mqtt.port, caPem: aws.caPem };
    machines.set('patient', aws.endpoints.stateMachineArn);
    for (const [name, overrides] of Object.entries(IMPATIENT)) {
      const deployment = { ...aws.deployment, settings: { ...aws.deployment.settings, ...overrides } };
      const created = await sfn.send(
        new CreateStateMachineCommand({
          name: `rotor-rotate-device-${name}`,
          definition: renderStateMachine(deployment),
          roleArn: 'arn:aws:iam::000000000000:role/rotor-state-machine',
          type: 'STANDARD',
        }),
      );
      machines.set(name as Machine, created.stateMachineArn as string);
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all(devices.splice(0).map((device) => device.close()));
    sfn?.destroy();
    iot?.destroy();
    ddb?.destroy();
    await aws?.stop();
  }, 60_000);

  // ---- the device side ---------------------------------------------------------------------

  interface Rig {
    thing: string;
    device: ScriptedDevice;
    old: DeviceIdentity;
    executionArn: string;
    rotationId: string;
  }

  /** Provisions `thing` with a key made here, connects its device, starts its rotation. */
  async function rig(thing: string, machine: Machine = 'patient'): Promise<Rig> {
    const first = await newPendingKey(thing);
    const provisioned = await aws.iot.registry.provisionDevice({ thingName: thing, policyName: DEVICE_POLICY_NAME, csrPem: first.csrPem, expiresInDays: 5 });
    const old = identityOf(first, provisioned.certificatePem);
    const device = await ScriptedDevice.connect(thing, broker, old);
    devices.push(device);
    const input: RotationInput = { thingName: thing, certificateId: old.certificateId, trigger: 'audit', auditTaskId: AUDIT_TASK };
    const rotationId = auditExecutionName(thing, old.certificateId, AUDIT_TASK);
    const started = await sfn.send(new StartExecutionCommand({ stateMachineArn: machines.get(machine), name: rotationId, input: JSON.stringify(input) }));
    return { thing, device, old, executionArn: started.executionArn as string, rotationId };
  }

  /** Device rule 1: a new key and a CSR for it, sent in answer to csr_req. */
  async function answerCsr(r: Rig, commonName = r.thing): Promise<PendingKey> {
    const pending = await newPendingKey(commonName);
    await r.device.publish(MessageType.CsrResponse, { rotationId: r.rotationId, CSR: pending.csrPem });
    return pending;
  }

  /** Device rule 2: the certificate must carry the pending key; returns the new identity. */
  async function receiveCertificate(r: Rig, pending: PendingKey): Promise<DeviceIdentity> {
    const crt = await r.device.next(MessageType.CertificateResponse, MESSAGE_WAIT_MS);
    expect(crt.rotationId).toBe(r.rotationId);
    const issued = new X509Certificate(crt.certificatePem);
    const pendingSpki = Buffer.from(await webcrypto.subtle.exportKey('spki', pending.key.keys.publicKey));
    expect(issued.publicKey.export({ type: 'spki', format: 'der' }).equals(pendingSpki)).toBe(true);
    const fresh = identityOf(pending, crt.certificatePem);
    expect(fresh.certificateId).toBe(crt.certificateId);
    return fresh;
  }

  // ---- what the cloud side shows -----------------------------------------------------------

  async function finished(r: Rig): Promise<{ status: string; error?: string; cause?: string }> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${r.thing}: the execution did not finish within ${EXECUTION_WAIT_MS} ms`)), EXECUTION_WAIT_MS);
    });
    try {
      await Promise.race([aws.stepFunctions.waitForExecution(r.executionArn), deadline]);
    } finally {
      clearTimeout(timer);
    }
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn: r.executionArn }));
    return { status: described.status as string, error: described.error, cause: described.cause };
  }

  async function history(r: Rig): Promise<HistoryEvent[]> {
    const events: HistoryEvent[] = [];
    let nextToken: string | undefined;
    do {
      const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn: r.executionArn, maxResults: 1000, nextToken }));
      events.push(...(page.events ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    return events;
  }

  async function statesEntered(r: Rig): Promise<string[]> {
    return (await history(r)).filter((e) => e.type?.endsWith('StateEntered')).map((e) => e.stateEnteredEventDetails?.name as string);
  }

  async function record(thing: string): Promise<RotationRecord> {
    const { Item } = await ddb.send(new GetCommand({ TableName: aws.endpoints.tableName, Key: { pk: thingPk(thing), sk: CURRENT_SK }, ConsistentRead: true }));
    if (!Item) throw new Error(`no current record for ${thing}`);
    return Item as RotationRecord;
  }

  /** The certificate's status, or 'GONE' when the registry no longer has it. */
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

  /** Certificates in the registry that carry this key (none: nothing was issued for it). */
  async function certificatesWithKey(pending: PendingKey): Promise<string[]> {
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', pending.key.keys.publicKey));
    return aws.iot.registry
      .listCertificates()
      .filter((c) => new X509Certificate(c.certificatePem).publicKey.export({ type: 'spki', format: 'der' }).equals(spki))
      .map((c) => c.certificateId);
  }

  async function policiesOf(certificateId: string): Promise<string[]> {
    const { policies } = await iot.send(new ListAttachedPoliciesCommand({ target: aws.iot.registry.certificateArn(certificateId) }));
    return (policies ?? []).map((p) => p.policyName as string);
  }

  function escalations(thing: string): { subject?: string; body: EscalationMessage }[] {
    return aws.sns
      .messages(aws.endpoints.topics.escalation)
      .map((m) => ({ subject: m.subject, body: JSON.parse(m.message) as EscalationMessage }))
      .filter((m) => m.body.thingName === thing);
  }

  /** Everything a rolled-back failure must leave behind (cloud rules 5, 6, 7). */
  async function expectRolledBack(
    r: Rig,
    expected: { step: Step; reason: FailureReason; states: Step[]; newCertificateId?: string; cause?: string | RegExp },
  ): Promise<void> {
    const execution = await finished(r);
    expect(execution).toMatchObject({ status: 'FAILED', error: expected.reason });
    expect(await statesEntered(r)).toEqual(expected.states);

    const current = await record(r.thing);
    expect(current).toMatchObject({ status: RotationStatus.Failed, step: expected.step, reason: expected.reason, rotationId: r.rotationId, executionArn: r.executionArn });
    expect(current.taskToken).toBeUndefined();
    if (expected.cause) expect(current.cause).toEqual(typeof expected.cause === 'string' ? expected.cause : expect.stringMatching(expected.cause));

    // The old certificate is untouched: ACTIVE, still the thing's only one, policy kept.
    expect(await certificateStatus(r.old.certificateId)).toBe('ACTIVE');
    expect(await thingCertificates(r.thing)).toEqual([r.old.certificateId]);
    expect(await policiesOf(r.old.certificateId)).toEqual([DEVICE_POLICY_NAME]);
    if (expected.newCertificateId) expect(await certificateStatus(expected.newCertificateId)).toBe('GONE');

    const abort = await r.device.next(MessageType.Abort, MESSAGE_WAIT_MS);
    expect(abort.rotationId).toBe(r.rotationId);
    // Reason codes only (a refused CSR adds its rule): never AWS or device text.
    expect(abort.reason).toMatch(new RegExp(`^${expected.reason}(: [A-Z_]+)?$`));
    expect(r.device.received(MessageType.Abort)).toHaveLength(1);
    expect(r.device.received(MessageType.CertificateResponse)).toHaveLength(expected.newCertificateId ? 1 : 0);
    expect(r.device.received(MessageType.RotationDone)).toEqual([]);

    const sent = escalations(r.thing);
    expect(sent).toHaveLength(1);
    expect(sent[0].subject).toContain(expected.reason);
    expect(sent[0].body).toMatchObject({
      thingName: r.thing,
      oldCertificateId: r.old.certificateId,
      newCertificateId: expected.newCertificateId ?? null,
      step: expected.step,
      reason: expected.reason,
      rotationId: r.rotationId,
      executionArn: r.executionArn,
      consoleUrl: executionConsoleUrl(r.executionArn),
    });

    // Cloud rule 7: the pair the device kept still gets it in.
    await r.device.disconnect();
    expect(await tryConnect(r.thing, broker, r.old)).toEqual({ connected: true });
    expect(r.device.malformed).toEqual([]);
  }

  /** Everything a successful rotation must leave behind (cloud rule 2, device rule 3). */
  async function expectRotated(r: Rig, fresh: DeviceIdentity): Promise<void> {
    const done = await r.device.next(MessageType.RotationDone, MESSAGE_WAIT_MS);
    expect(done.rotationId).toBe(r.rotationId);
    expect(await finished(r)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await statesEntered(r)).toEqual(HAPPY_STATES);

    expect(await record(r.thing)).toMatchObject({
      status: RotationStatus.Succeeded,
      step: Step.Rotated,
      rotationId: r.rotationId,
      oldCertificateId: r.old.certificateId,
      newCertificateId: fresh.certificateId,
    });
    expect(await certificateStatus(r.old.certificateId)).toBe('GONE');
    expect(await certificateStatus(fresh.certificateId)).toBe('ACTIVE');
    expect(await thingCertificates(r.thing)).toEqual([fresh.certificateId]);
    expect(await policiesOf(fresh.certificateId)).toEqual([DEVICE_POLICY_NAME]);

    expect(r.device.received(MessageType.CertificateResponse)).toHaveLength(1);
    expect(r.device.received(MessageType.RotationDone)).toHaveLength(1);
    expect(r.device.received(MessageType.Abort)).toEqual([]);
    expect(escalations(r.thing)).toEqual([]);

    await r.device.disconnect();
    expect(await tryConnect(r.thing, broker, fresh)).toEqual({ connected: true });
    expect(await tryConnect(r.thing, broker, r.old)).toMatchObject({ connected: false });
    expect(r.device.malformed).toEqual([]);
  }

  /** csr_req messages: how many, and that each names this rotation. */
  function expectCsrRequests(r: Rig, count: number): void {
    const requests = r.device.received(MessageType.CsrRequest);
    expect(requests.map((m) => m.body.rotationId)).toEqual(Array(count).fill(r.rotationId));
  }

  // ---- the branches ------------------------------------------------------------------------
  // Each branch has its own thing, so they run side by side: the file lasts as long as its
  // slowest timeout path, not the sum of them. Only the throttling test runs alone, since its
  // faults and call counts are global to the runtime.

  it.concurrent('happy path: CSR, certificate, ack over the new certificate → old retired, crt_done', async () => {
    const r = await rig('paths-happy');
    const request = await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    expect(request.rotationId).toBe(r.rotationId);
    const pending = await answerCsr(r);
    const fresh = await receiveCertificate(r, pending);
    await r.device.reconnect(fresh);
    await r.device.publish(MessageType.CertificateAck, { rotationId: r.rotationId });

    await expectRotated(r, fresh);
    expectCsrRequests(r, 1);
    expect((await record(r.thing)).csrRequests).toBe(1);
    expect(r.device.received(MessageType.RotationDone)[0].certificateId).toBe(fresh.certificateId);
  }, 60_000);

  it.concurrent('no csr_res in time, then an answer to the re-sent csr_req → rotates', async () => {
    const r = await rig('paths-late-csr', 'lateCsr');
    const first = await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    // The device ignores the first request; the timeout re-sends it with a new task token.
    const second = await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    expect([first.rotationId, second.rotationId]).toEqual([r.rotationId, r.rotationId]);
    const pending = await answerCsr(r);
    const fresh = await receiveCertificate(r, pending);
    await r.device.reconnect(fresh);
    await r.device.publish(MessageType.CertificateAck, { rotationId: r.rotationId });

    await expectRotated(r, fresh);
    expectCsrRequests(r, 2);
    expect((await record(r.thing)).csrRequests).toBe(2);
    const events = await history(r);
    expect(events.filter((e) => e.type === 'TaskTimedOut')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'TaskScheduled' && e.taskScheduledEventDetails?.parameters?.includes('"attempt":1'))).toHaveLength(1);
  }, 60_000);

  it.concurrent('no csr_res at all → NO_CSR_RESPONSE after every re-sent csr_req, nothing issued', async () => {
    const r = await rig('paths-silent', 'silent');
    await expectRolledBack(r, {
      step: Step.RequestCsr,
      reason: FailureReason.NoCsrResponse,
      states: FAILED_BEFORE_ISSUE,
      cause: `The task 'Request CSR' did not finish within ${IMPATIENT.silent.csrTimeoutSeconds} seconds`,
    });
    expectCsrRequests(r, 1 + PATIENT.csrRequestRetries);
    expect((await record(r.thing)).csrRequests).toBe(1 + PATIENT.csrRequestRetries);
    expect(r.device.received(MessageType.CertificateResponse)).toEqual([]);
    expect((await record(r.thing)).newCertificateId).toBeUndefined();
  }, 60_000);

  it.concurrent('a refused CSR (CN is not the thing name) → CSR_REJECTED with the rule, nothing issued', async () => {
    const r = await rig('paths-refused');
    await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    expectCsrRequests(r, 1);
    const refused = await answerCsr(r, 'somebody-else');
    await expectRolledBack(r, {
      step: Step.IssueCertificate,
      reason: FailureReason.CsrRejected,
      states: FAILED_IN_ISSUE,
      cause: new RegExp(`^${CsrRejection.WrongCommonName}: subject CN is "somebody-else"`),
    });
    expect(r.device.received(MessageType.Abort)[0].body).toMatchObject({ reason: expect.stringContaining(CsrRejection.WrongCommonName) });
    expect(r.device.received(MessageType.CertificateResponse)).toEqual([]);
    expect((await record(r.thing)).newCertificateId).toBeUndefined();
    expect(await certificatesWithKey(refused)).toEqual([]);
  }, 60_000);

  it.concurrent('no crt_ack in time → NO_ACK, the new certificate deleted, abort', async () => {
    const r = await rig('paths-no-ack', 'noAck');
    await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    expectCsrRequests(r, 1);
    const fresh = await receiveCertificate(r, await answerCsr(r));
    await expectRolledBack(r, {
      step: Step.DeliverCertificate,
      reason: FailureReason.NoAck,
      states: FAILED_IN_DELIVERY,
      newCertificateId: fresh.certificateId,
    });
    // Device rule 4: the pending pair is refused now; the current one is the way in.
    expect(await tryConnect(r.thing, broker, fresh)).toMatchObject({ connected: false });
  }, 60_000);

  it.concurrent('crt_err → DEVICE_ERROR with the device text, the new certificate deleted, abort', async () => {
    const r = await rig('paths-crt-err');
    await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    expectCsrRequests(r, 1);
    const fresh = await receiveCertificate(r, await answerCsr(r));
    const text = 'TLS handshake with the new pair failed: unknown ca';
    await r.device.publish(MessageType.CertificateError, { rotationId: r.rotationId, error: text });
    await expectRolledBack(r, {
      step: Step.DeliverCertificate,
      reason: FailureReason.DeviceError,
      states: FAILED_IN_DELIVERY,
      newCertificateId: fresh.certificateId,
      cause: text,
    });
    expect(escalations(r.thing)[0].body.cause).toBe(text);
  }, 60_000);

  it.concurrent('crt_ack over the old certificate → ignored and recorded, then NO_ACK and roll back', async () => {
    const r = await rig('paths-ack-over-old', 'ackOverOld');
    await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    expectCsrRequests(r, 1);
    const fresh = await receiveCertificate(r, await answerCsr(r));
    await r.device.publish(MessageType.CertificateAck, { rotationId: r.rotationId });

    // Recorded while the rotation still waits: the ack did not answer the task token.
    const ignored = await eventually('the ignored ack on the record', async () => {
      const current = await record(r.thing);
      return current.lastIgnored ? current : undefined;
    });
    expect(ignored.status).toBe(RotationStatus.InProgress);
    expect(ignored.lastIgnored).toMatchObject({ type: MessageType.CertificateAck, reason: IgnoredReason.WrongPrincipal, rotationId: r.rotationId });
    expect(ignored.ignoredCount).toBe(1);

    await expectRolledBack(r, {
      step: Step.DeliverCertificate,
      reason: FailureReason.NoAck,
      states: FAILED_IN_DELIVERY,
      newCertificateId: fresh.certificateId,
    });
    expect(await record(r.thing)).toMatchObject({ ignoredCount: 1, lastIgnored: { reason: IgnoredReason.WrongPrincipal } });
  }, 60_000);

  it('throttled IoT calls (CreateCertificateFromCsr ×2, UpdateCertificate ×1) are retried → rotates', async () => {
    const callsBefore = aws.edge.calls();
    aws.edge.faults.throttle('iot', 'CreateCertificateFromCsr', 2);
    aws.edge.faults.throttle('iot', 'UpdateCertificate', 1);
    try {
      const r = await rig('paths-throttled');
      await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
      const pending = await answerCsr(r);
      const fresh = await receiveCertificate(r, pending);
      await r.device.reconnect(fresh);
      await r.device.publish(MessageType.CertificateAck, { rotationId: r.rotationId });
      await expectRotated(r, fresh);

      expect(aws.edge.faults.pending()).toEqual([]);
      expect(aws.edge.faults.injected()).toEqual({ 'iot:CreateCertificateFromCsr': 2, 'iot:UpdateCertificate': 1 });
      const callsAfter = aws.edge.calls();
      const delta = (key: string): number => (callsAfter[key] ?? 0) - (callsBefore[key] ?? 0);
      // Two throttled answers and the call that went through; retire's UpdateCertificate (old → INACTIVE) once more.
      expect(delta('iot:CreateCertificateFromCsr')).toBe(3);
      expect(delta('iot:UpdateCertificate')).toBe(2);
      // The SDK's own retries absorbed it: each task was scheduled once, none failed.
      const events = await history(r);
      expect(events.filter((e) => e.type === 'TaskFailed')).toEqual([]);
      const scheduled = (fn: string): number =>
        events.filter((e) => e.type === 'TaskScheduled' && e.taskScheduledEventDetails?.parameters?.includes(`:function:rotor-${fn}"`)).length;
      expect([scheduled('issue-certificate'), scheduled('retire-certificate')]).toEqual([1, 1]);
    } finally {
      aws.edge.faults.clear();
    }
  }, 60_000);
});
