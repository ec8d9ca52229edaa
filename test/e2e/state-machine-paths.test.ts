import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { CsrRejection } from '../../domain/csr-rules';
import { executionConsoleUrl } from '../../domain/naming';
import { FailureReason, IgnoredReason, RotationStatus, Step } from '../../domain/rotation';
import { MessageType } from '../../domain/topics';
import { DEVICE_POLICY_NAME } from '../../local/runtime';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';
import { FAILED_BEFORE_ISSUE, FAILED_IN_DELIVERY, FAILED_IN_ISSUE, HAPPY_STATES, PATIENT, useRotationRig, type DeviceRotation } from '../fixtures/rotation-rig';
import { identityOf, newPendingKey, tryConnect, type DeviceIdentity, type PendingKey } from '../fixtures/scripted-device';

/**
 * Every branch of the rotate-device state machine, run for real: the rendered ASL on the local
 * Step Functions, the built Lambda bundles, DynamoDB Local, the IoT registry and its mTLS
 * broker, with a scripted device that does exactly what each branch needs. Each test asserts
 * what an operator and the device would see: the execution and the states it entered, the
 * rotation record, the certificates in the registry, the device's messages, the escalation,
 * and that the device can still connect with a certificate it holds (cloud rule 7).
 *
 * Time (test/fixtures/rotation-rig.ts): at scale 0.001 one workflow second lasts 1 ms. A
 * device answer normally takes tens of ms, but a first Lambda invocation on a loaded 2-core
 * machine can take seconds, so no branch bets on an answer beating a short timeout: branches
 * where the device answers run on the deployed state machine with timeouts of a minute (never
 * reached), and each timeout branch gets the same ASL rendered from the wiring with its own
 * settings — short where the device stays silent, generous where it must still get a word in.
 * csr_req is re-sent twice, after at most 0.1 s then 0.2 s (FULL jitter on a 100 s interval).
 */

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

const describeWithBundles = bundlesDescribe('test/e2e/state-machine-paths.test.ts');

describeWithBundles('rotate-device paths on the local runtime', () => {
  const rig = useRotationRig({ name: 'paths', executionWaitMs: EXECUTION_WAIT_MS, messageWaitMs: MESSAGE_WAIT_MS });
  const machines = new Map<Machine, string>();

  beforeAll(async () => {
    machines.set('patient', rig.aws.endpoints.stateMachineArn);
    for (const [name, overrides] of Object.entries(IMPATIENT)) machines.set(name as Machine, await rig.createStateMachine(name, overrides));
  }, 60_000);

  // ---- the device side ---------------------------------------------------------------------

  /** Provisions `thing` with a key made here, connects its device, starts its rotation. */
  async function rotate(thing: string, machine: Machine = 'patient'): Promise<DeviceRotation> {
    return rig.rotate(thing, { auditTaskId: AUDIT_TASK, stateMachineArn: machines.get(machine) });
  }

  /** Device rule 1: a new key and a CSR for it, sent in answer to csr_req. */
  async function answerCsr(r: DeviceRotation, commonName = r.thing): Promise<PendingKey> {
    const pending = await newPendingKey(commonName);
    await r.device.publish(MessageType.CsrResponse, { rotationId: r.rotationId, CSR: pending.csrPem });
    return pending;
  }

  /** Device rule 2: the certificate must carry the pending key; returns the new identity. */
  async function receiveCertificate(r: DeviceRotation, pending: PendingKey): Promise<DeviceIdentity> {
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

  /** Everything a rolled-back failure must leave behind (cloud rules 5, 6, 7). */
  async function expectRolledBack(
    r: DeviceRotation,
    expected: { step: Step; reason: FailureReason; states: Step[]; newCertificateId?: string; cause?: string | RegExp },
  ): Promise<void> {
    const execution = await rig.finished(r.executionArn);
    expect(execution).toMatchObject({ status: 'FAILED', error: expected.reason });
    expect(await rig.statesEntered(r.executionArn)).toEqual(expected.states);

    const current = await rig.record(r.thing);
    expect(current).toMatchObject({ status: RotationStatus.Failed, step: expected.step, reason: expected.reason, rotationId: r.rotationId, executionArn: r.executionArn });
    expect(current.taskToken).toBeUndefined();
    if (expected.cause) expect(current.cause).toEqual(typeof expected.cause === 'string' ? expected.cause : expect.stringMatching(expected.cause));

    // The old certificate is untouched: ACTIVE, still the thing's only one, policy kept.
    expect(await rig.certificateStatus(r.old.certificateId)).toBe('ACTIVE');
    expect(await rig.thingCertificates(r.thing)).toEqual([r.old.certificateId]);
    expect(await rig.policiesOf(r.old.certificateId)).toEqual([DEVICE_POLICY_NAME]);
    if (expected.newCertificateId) expect(await rig.certificateStatus(expected.newCertificateId)).toBe('GONE');

    const abort = await r.device.next(MessageType.Abort, MESSAGE_WAIT_MS);
    expect(abort.rotationId).toBe(r.rotationId);
    // Reason codes only (a refused CSR adds its rule): never AWS or device text.
    expect(abort.reason).toMatch(new RegExp(`^${expected.reason}(: [A-Z_]+)?$`));
    expect(r.device.received(MessageType.Abort)).toHaveLength(1);
    expect(r.device.received(MessageType.CertificateResponse)).toHaveLength(expected.newCertificateId ? 1 : 0);
    expect(r.device.received(MessageType.RotationDone)).toEqual([]);

    const sent = rig.escalations(r.thing);
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
    expect(await tryConnect(r.thing, rig.broker, r.old)).toEqual({ connected: true });
    expect(r.device.malformed).toEqual([]);
  }

  /** Everything a successful rotation must leave behind (cloud rule 2, device rule 3). */
  async function expectRotated(r: DeviceRotation, fresh: DeviceIdentity): Promise<void> {
    const done = await r.device.next(MessageType.RotationDone, MESSAGE_WAIT_MS);
    expect(done.rotationId).toBe(r.rotationId);
    expect(await rig.finished(r.executionArn)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await rig.statesEntered(r.executionArn)).toEqual(HAPPY_STATES);

    expect(await rig.record(r.thing)).toMatchObject({
      status: RotationStatus.Succeeded,
      step: Step.Rotated,
      rotationId: r.rotationId,
      oldCertificateId: r.old.certificateId,
      newCertificateId: fresh.certificateId,
    });
    expect(await rig.certificateStatus(r.old.certificateId)).toBe('GONE');
    expect(await rig.certificateStatus(fresh.certificateId)).toBe('ACTIVE');
    expect(await rig.thingCertificates(r.thing)).toEqual([fresh.certificateId]);
    expect(await rig.policiesOf(fresh.certificateId)).toEqual([DEVICE_POLICY_NAME]);

    expect(r.device.received(MessageType.CertificateResponse)).toHaveLength(1);
    expect(r.device.received(MessageType.RotationDone)).toHaveLength(1);
    expect(r.device.received(MessageType.Abort)).toEqual([]);
    expect(rig.escalations(r.thing)).toEqual([]);

    await r.device.disconnect();
    expect(await tryConnect(r.thing, rig.broker, fresh)).toEqual({ connected: true });
    expect(await tryConnect(r.thing, rig.broker, r.old)).toMatchObject({ connected: false });
    expect(r.device.malformed).toEqual([]);
  }

  /** csr_req messages: how many, and that each names this rotation. */
  function expectCsrRequests(r: DeviceRotation, count: number): void {
    const requests = r.device.received(MessageType.CsrRequest);
    expect(requests.map((m) => m.body.rotationId)).toEqual(Array(count).fill(r.rotationId));
  }

  // ---- the branches ------------------------------------------------------------------------
  // Each branch has its own thing, so they run side by side: the file lasts as long as its
  // slowest timeout path, not the sum of them. Only the throttling test runs alone, since its
  // faults and call counts are global to the runtime.

  it.concurrent('happy path: CSR, certificate, ack over the new certificate → old retired, crt_done', async () => {
    const r = await rotate('paths-happy');
    const request = await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    expect(request.rotationId).toBe(r.rotationId);
    const pending = await answerCsr(r);
    const fresh = await receiveCertificate(r, pending);
    await r.device.reconnect(fresh);
    await r.device.publish(MessageType.CertificateAck, { rotationId: r.rotationId });

    await expectRotated(r, fresh);
    expectCsrRequests(r, 1);
    expect((await rig.record(r.thing)).csrRequests).toBe(1);
    expect(r.device.received(MessageType.RotationDone)[0].certificateId).toBe(fresh.certificateId);
  }, 60_000);

  it.concurrent('no csr_res in time, then an answer to the re-sent csr_req → rotates', async () => {
    const r = await rotate('paths-late-csr', 'lateCsr');
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
    expect((await rig.record(r.thing)).csrRequests).toBe(2);
    const events = await rig.history(r.executionArn);
    expect(events.filter((e) => e.type === 'TaskTimedOut')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'TaskScheduled' && e.taskScheduledEventDetails?.parameters?.includes('"attempt":1'))).toHaveLength(1);
  }, 60_000);

  it.concurrent('no csr_res at all → NO_CSR_RESPONSE after every re-sent csr_req, nothing issued', async () => {
    const r = await rotate('paths-silent', 'silent');
    await expectRolledBack(r, {
      step: Step.RequestCsr,
      reason: FailureReason.NoCsrResponse,
      states: FAILED_BEFORE_ISSUE,
      cause: `The task 'Request CSR' did not finish within ${IMPATIENT.silent.csrTimeoutSeconds} seconds`,
    });
    expectCsrRequests(r, 1 + PATIENT.csrRequestRetries);
    expect((await rig.record(r.thing)).csrRequests).toBe(1 + PATIENT.csrRequestRetries);
    expect(r.device.received(MessageType.CertificateResponse)).toEqual([]);
    expect((await rig.record(r.thing)).newCertificateId).toBeUndefined();
  }, 60_000);

  it.concurrent('a refused CSR (CN is not the thing name) → CSR_REJECTED with the rule, nothing issued', async () => {
    const r = await rotate('paths-refused');
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
    expect((await rig.record(r.thing)).newCertificateId).toBeUndefined();
    expect(await rig.certificatesWithKeys([refused])).toEqual([]);
  }, 60_000);

  it.concurrent('no crt_ack in time → NO_ACK, the new certificate deleted, abort', async () => {
    const r = await rotate('paths-no-ack', 'noAck');
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
    expect(await tryConnect(r.thing, rig.broker, fresh)).toMatchObject({ connected: false });
  }, 60_000);

  it.concurrent('crt_err → DEVICE_ERROR with the device text, the new certificate deleted, abort', async () => {
    const r = await rotate('paths-crt-err');
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
    expect(rig.escalations(r.thing)[0].body.cause).toBe(text);
  }, 60_000);

  it.concurrent('crt_ack over the old certificate → ignored and recorded, then NO_ACK and roll back', async () => {
    const r = await rotate('paths-ack-over-old', 'ackOverOld');
    await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    expectCsrRequests(r, 1);
    const fresh = await receiveCertificate(r, await answerCsr(r));
    await r.device.publish(MessageType.CertificateAck, { rotationId: r.rotationId });

    // Recorded while the rotation still waits: the ack did not answer the task token.
    const ignored = await rig.eventually('the ignored ack on the record', async () => {
      const current = await rig.record(r.thing);
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
    expect(await rig.record(r.thing)).toMatchObject({ ignoredCount: 1, lastIgnored: { reason: IgnoredReason.WrongPrincipal } });
  }, 60_000);

  it('throttled IoT calls (CreateCertificateFromCsr ×2, UpdateCertificate ×1) are retried → rotates', async () => {
    const callsBefore = rig.aws.edge.calls();
    rig.aws.edge.faults.throttle('iot', 'CreateCertificateFromCsr', 2);
    rig.aws.edge.faults.throttle('iot', 'UpdateCertificate', 1);
    try {
      const r = await rotate('paths-throttled');
      await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
      const pending = await answerCsr(r);
      const fresh = await receiveCertificate(r, pending);
      await r.device.reconnect(fresh);
      await r.device.publish(MessageType.CertificateAck, { rotationId: r.rotationId });
      await expectRotated(r, fresh);

      expect(rig.aws.edge.faults.pending()).toEqual([]);
      expect(rig.aws.edge.faults.injected()).toEqual({ 'iot:CreateCertificateFromCsr': 2, 'iot:UpdateCertificate': 1 });
      const callsAfter = rig.aws.edge.calls();
      const delta = (key: string): number => (callsAfter[key] ?? 0) - (callsBefore[key] ?? 0);
      // Two throttled answers and the call that went through; retire's UpdateCertificate (old → INACTIVE) once more.
      expect(delta('iot:CreateCertificateFromCsr')).toBe(3);
      expect(delta('iot:UpdateCertificate')).toBe(2);
      // The SDK's own retries absorbed it: each task was scheduled once, none failed.
      const events = await rig.history(r.executionArn);
      expect(events.filter((e) => e.type === 'TaskFailed')).toEqual([]);
      const scheduled = (fn: string): number =>
        events.filter((e) => e.type === 'TaskScheduled' && e.taskScheduledEventDetails?.parameters?.includes(`:function:rotor-${fn}"`)).length;
      expect([scheduled('issue-certificate'), scheduled('retire-certificate')]).toEqual([1, 1]);
    } finally {
      rig.aws.edge.faults.clear();
    }
  }, 60_000);
});
