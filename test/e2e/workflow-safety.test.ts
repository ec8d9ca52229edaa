import 'reflect-metadata';
import { AttachThingPrincipalCommand, CreateThingCommand, DetachThingPrincipalCommand, UpdateCertificateCommand } from '@aws-sdk/client-iot';
import { SendTaskSuccessCommand, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { executeRetries, planRetries } from '../../cli/operator/retry';
import { FailureReason, RotationStatus, Step } from '../../domain/rotation';
import { MessageType } from '../../domain/topics';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';
import { useRotationRig, type DeviceRotation } from '../fixtures/rotation-rig';
import { identityOf, newPendingKey, tryConnect, type DeviceIdentity, type PendingKey } from '../fixtures/scripted-device';

/**
 * Issue 9, the workflow's decisions on the real ASL and bundles (scenarios 1, 2 at Retire, 4,
 * 7 and 9 at Retire): what the cloud does when somebody else changes a certificate mid-rotation,
 * when a task token is completed without an ack, when a claim is abandoned, and how the
 * follow-up rotation finishes what a failed one left. Timeouts are never reached: every branch
 * is driven by the scripted device or by the test acting as an operator.
 */
/** Bounds on waits that normally end in well under a second; a first invocation on a loaded 2-core machine can take many seconds. */
const MESSAGE_WAIT_MS = 60_000;
const EXECUTION_WAIT_MS = 60_000;
const AUDIT_TASK = 'safety-audit';

const describeWithBundles = bundlesDescribe('test/e2e/workflow-safety.test.ts');

describeWithBundles('workflow safety on the local runtime', () => {
  const rig = useRotationRig({ name: 'safety', executionWaitMs: EXECUTION_WAIT_MS, messageWaitMs: MESSAGE_WAIT_MS });

  /** Answers csr_req with a fresh key; returns the key and, once crt_res arrives, the new identity. */
  async function toDelivery(r: DeviceRotation): Promise<{ pending: PendingKey; fresh: DeviceIdentity }> {
    await r.device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    const pending = await newPendingKey(r.thing);
    await r.device.publish(MessageType.CsrResponse, { rotationId: r.rotationId, CSR: pending.csrPem });
    const crt = await r.device.next(MessageType.CertificateResponse, MESSAGE_WAIT_MS);
    return { pending, fresh: identityOf(pending, crt.certificatePem) };
  }

  async function ackOverNew(r: DeviceRotation, fresh: DeviceIdentity): Promise<void> {
    await r.device.reconnect(fresh);
    await r.device.publish(MessageType.CertificateAck, { rotationId: r.rotationId });
  }

  // ---- scenario 1: the old certificate stops being ACTIVE mid-rotation ---------------------

  it.concurrent('old certificate REVOKED before Retire → new one taken down, OLD_CERTIFICATE_REVOKED, no abort, one escalation', async () => {
    const r = await rig.rotate('safety-revoked', { auditTaskId: AUDIT_TASK });
    const { pending, fresh } = await toDelivery(r);
    await rig.iot.send(new UpdateCertificateCommand({ certificateId: r.old.certificateId, newStatus: 'REVOKED' }));
    await ackOverNew(r, fresh);

    expect(await rig.finished(r.executionArn)).toMatchObject({ status: 'FAILED', error: FailureReason.OldCertificateRevoked });
    expect(await rig.record(r.thing)).toMatchObject({ status: RotationStatus.Failed, reason: FailureReason.OldCertificateRevoked, step: Step.RetireOldCertificate });
    // Cut off on purpose: no certificate for the new key, the revoked one left as the operator set it.
    expect(await rig.certificatesWithKeys([pending])).toEqual([]);
    expect(await rig.certificateStatus(r.old.certificateId)).toBe('REVOKED');
    expect(r.device.received(MessageType.Abort)).toEqual([]);
    expect(r.device.received(MessageType.RotationDone)).toEqual([]);
    const sent = rig.escalations(r.thing);
    expect(sent).toHaveLength(1);
    expect(sent[0].body).toMatchObject({ reason: FailureReason.OldCertificateRevoked, cause: expect.stringContaining('cut off on purpose') });
  }, 150_000);

  it.concurrent('old certificate set INACTIVE by somebody else, device acks over the new one → the rotation finishes', async () => {
    const r = await rig.rotate('safety-inactive', { auditTaskId: AUDIT_TASK });
    const { fresh } = await toDelivery(r);
    await rig.iot.send(new UpdateCertificateCommand({ certificateId: r.old.certificateId, newStatus: 'INACTIVE' }));
    await ackOverNew(r, fresh);

    await r.device.next(MessageType.RotationDone, MESSAGE_WAIT_MS);
    expect(await rig.finished(r.executionArn)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await rig.record(r.thing)).toMatchObject({ status: RotationStatus.Succeeded, newCertificateId: fresh.certificateId });
    expect(await rig.certificateStatus(r.old.certificateId)).toBe('GONE');
    expect(await rig.thingCertificates(r.thing)).toEqual([fresh.certificateId]);
    expect(r.device.received(MessageType.Abort)).toEqual([]);
    await r.device.disconnect();
    expect(await tryConnect(r.thing, rig.broker, fresh)).toEqual({ connected: true });
  }, 150_000);

  // ---- scenario 9: a task token completed without an ack over the new certificate --------

  it.concurrent('Deliver completed with a stolen task token, no ack → ACK_NOT_VERIFIED, the old certificate untouched', async () => {
    const r = await rig.rotate('safety-forged', { auditTaskId: AUDIT_TASK });
    const { fresh } = await toDelivery(r);
    const parked = await rig.eventually('the parked ack token', async () => {
      const current = await rig.record(r.thing);
      return current.waitFor === 'crt_ack' && current.taskToken ? current.taskToken : undefined;
    });
    await rig.sfn.send(new SendTaskSuccessCommand({ taskToken: parked, output: JSON.stringify({ principal: fresh.certificateId, ackedAt: new Date().toISOString() }) }));

    expect(await rig.finished(r.executionArn)).toMatchObject({ status: 'FAILED', error: FailureReason.AckNotVerified });
    expect(await rig.certificateStatus(r.old.certificateId)).toBe('ACTIVE');
    expect(await rig.thingCertificates(r.thing)).toContain(r.old.certificateId);
    expect(r.device.received(MessageType.RotationDone)).toEqual([]);
    await r.device.disconnect();
    expect(await tryConnect(r.thing, rig.broker, r.old)).toEqual({ connected: true });
  }, 150_000);

  // ---- scenario 2 at Retire, then scenario 7: the follow-up finishes it -------------------

  it.concurrent('old certificate shared with another thing → SHARED_CERTIFICATE, left ACTIVE; once unshared, rotor retry resumes at Retire', async () => {
    const r = await rig.rotate('safety-shared', { auditTaskId: AUDIT_TASK });
    const { fresh } = await toDelivery(r);
    const oldArn = rig.aws.iot.registry.certificateArn(r.old.certificateId);
    await rig.iot.send(new CreateThingCommand({ thingName: 'safety-shared-gateway' }));
    await rig.iot.send(new AttachThingPrincipalCommand({ thingName: 'safety-shared-gateway', principal: oldArn }));
    await ackOverNew(r, fresh);

    expect(await rig.finished(r.executionArn)).toMatchObject({ status: 'FAILED', error: FailureReason.SharedCertificate });
    expect(await rig.certificateStatus(r.old.certificateId)).toBe('ACTIVE');
    expect(await rig.thingCertificates('safety-shared-gateway')).toEqual([r.old.certificateId]);
    expect(await rig.record(r.thing)).toMatchObject({ leftoverCertificateId: fresh.certificateId, ackedCertificateId: fresh.certificateId });
    expect(r.device.received(MessageType.RotationDone)).toEqual([]);

    // The operator detaches the other thing and retries: the device is on the new certificate.
    await rig.iot.send(new DetachThingPrincipalCommand({ thingName: 'safety-shared-gateway', principal: oldArn }));
    const deps = { ddb: rig.ddb, sfn: rig.sfn, tableName: rig.aws.endpoints.tableName };
    const plan = await planRetries(deps, { thing: r.thing, allFailed: false });
    expect(plan.toStart[0].input.resume).toEqual({ newCertificateId: fresh.certificateId });
    const [started] = await executeRetries(deps, rig.aws.endpoints.stateMachineArn, plan, { concurrency: 1 });
    expect(started).toMatchObject({ outcome: 'started' });
    const retryArn = (started as { executionArn: string }).executionArn;

    expect(await rig.finished(retryArn)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await rig.record(r.thing)).toMatchObject({ status: RotationStatus.Succeeded, newCertificateId: fresh.certificateId });
    expect((await rig.record(r.thing)).leftoverCertificateId).toBeUndefined();
    expect(await rig.certificateStatus(r.old.certificateId)).toBe('GONE');
    expect(await rig.thingCertificates(r.thing)).toEqual([fresh.certificateId]);
    expect(r.device.received(MessageType.CsrRequest)).toHaveLength(1);
    await r.device.next(MessageType.RotationDone, MESSAGE_WAIT_MS);
    await r.device.disconnect();
    expect(await tryConnect(r.thing, rig.broker, fresh)).toEqual({ connected: true });
  }, 200_000);

  // ---- scenario 4: a claim whose execution is gone ------------------------------------------

  it.concurrent('a stopped execution leaves an IN_PROGRESS claim; the next audit releases it (EXECUTION_ABANDONED) and rotates', async () => {
    const { device, old } = await rig.connectNewDevice('safety-stopped');
    const first = await rig.start('safety-stopped', old.certificateId, { auditTaskId: 'safety-audit-1' });
    await device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    await rig.sfn.send(new StopExecutionCommand({ executionArn: first.executionArn, error: 'Operator', cause: 'stopped by hand' }));
    expect(await rig.finished(first.executionArn)).toMatchObject({ status: 'ABORTED' });
    expect(await rig.record('safety-stopped')).toMatchObject({ status: RotationStatus.InProgress, rotationId: first.rotationId });

    const second = await rig.start('safety-stopped', old.certificateId, { auditTaskId: 'safety-audit-2' });
    const r: DeviceRotation = { ...second, device, old };
    await device.next(MessageType.CsrRequest, MESSAGE_WAIT_MS);
    const pending = await newPendingKey(r.thing);
    await device.publish(MessageType.CsrResponse, { rotationId: r.rotationId, CSR: pending.csrPem });
    const crt = await device.next(MessageType.CertificateResponse, MESSAGE_WAIT_MS);
    const fresh = identityOf(pending, crt.certificatePem);
    await ackOverNew(r, fresh);

    expect(await rig.finished(second.executionArn)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await rig.record(r.thing)).toMatchObject({ status: RotationStatus.Succeeded, rotationId: second.rotationId });
    const abandoned = (await rig.historyItems(r.thing)).find((h) => h.rotationId === first.rotationId);
    expect(abandoned).toMatchObject({ outcome: RotationStatus.Failed, reason: FailureReason.ExecutionAbandoned, executionArn: first.executionArn });
    // Every failed rotation escalates once: the abandoned one through the execution that released it.
    const sent = rig.escalations(r.thing);
    expect(sent).toHaveLength(1);
    expect(sent[0].body).toMatchObject({ reason: FailureReason.ExecutionAbandoned, rotationId: first.rotationId, executionArn: first.executionArn });
    expect(await rig.thingCertificates(r.thing)).toEqual([fresh.certificateId]);
  }, 200_000);
});
