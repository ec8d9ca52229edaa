import { decide, type CertificateState, type MessageContext } from '../../../domain/device-rules';
import type { DeviceMessage } from '../../../domain/messages';
import { resumeExecutionName } from '../../../domain/naming';
import type { RotationRecord } from '../../../domain/records';

/**
 * The cloud's rules for device messages (docs/protocol.md, "Cloud rules"), on plain values:
 * no mocks, no clients. Each block names the rule it holds to.
 */
const THING = 'sensor-1';
const ROTATION = 'sensor-1-a01';
const OLD = 'a'.repeat(64);
const NEW = 'b'.repeat(64);
const THIRD = 'c'.repeat(64);
const TOKEN = 'token-1';
const AT = '2026-03-01T12:00:00.000Z';

function record(fields: Partial<RotationRecord> = {}): RotationRecord {
  return {
    pk: `thing#${THING}`,
    sk: 'current',
    thingName: THING,
    status: 'IN_PROGRESS',
    step: 'Request CSR',
    rotationId: ROTATION,
    executionArn: 'arn:aws:states:us-east-1:123456789012:execution:rotor-rotate-device:sensor-1-a01',
    oldCertificateId: OLD,
    startedAt: AT,
    updatedAt: AT,
    attempts: 1,
    ...fields,
  };
}

const waitingForCsr = (fields: Partial<RotationRecord> = {}): RotationRecord => record({ waitFor: 'csr_res', taskToken: TOKEN, ...fields });
const waitingForAck = (fields: Partial<RotationRecord> = {}): RotationRecord =>
  record({ step: 'Deliver certificate', waitFor: 'crt_ack', taskToken: TOKEN, newCertificateId: NEW, ...fields });
const failed = (fields: Partial<RotationRecord> = {}): RotationRecord =>
  record({ status: 'FAILED', step: 'Deliver certificate', reason: 'NO_ACK', newCertificateId: NEW, ...fields });

const csrRes = (rotationId: string | undefined = ROTATION): DeviceMessage => ({
  type: 'csr_res',
  body: { ...(rotationId ? { rotationId } : {}), CSR: '-----BEGIN CERTIFICATE REQUEST-----' },
});
const crtAck = (rotationId: string | undefined = ROTATION): DeviceMessage => ({ type: 'crt_ack', body: rotationId ? { rotationId } : {} });
const crtErr = (error = 'TLS alert 42', rotationId: string | undefined = ROTATION): DeviceMessage => ({
  type: 'crt_err',
  body: { ...(rotationId ? { rotationId } : {}), error },
});

function over(principal: string, certificates?: { old: CertificateState; new?: CertificateState }): MessageContext {
  return { principal, receivedAt: AT, ...(certificates ? { certificates } : {}) };
}

describe('device rules: nothing to act on', () => {
  it('ignores any message for a thing without a record (not recorded anywhere)', () => {
    expect(decide(undefined, csrRes(), over(OLD))).toEqual({ kind: 'ignore', reason: 'UNKNOWN_THING' });
  });

  it('ignores a message naming another rotation than the one in flight (stale id)', () => {
    expect(decide(waitingForCsr(), csrRes('older'), over(OLD))).toEqual({ kind: 'ignore', reason: 'STALE_ROTATION_ID' });
  });

  it('ignores messages after a rotation succeeded', () => {
    const done = record({ status: 'SUCCEEDED', step: 'Rotated', newCertificateId: NEW });
    for (const message of [csrRes(), crtAck(), crtErr()]) expect(decide(done, message, over(NEW))).toEqual({ kind: 'ignore', reason: 'NO_ROTATION_IN_FLIGHT' });
  });

  it('ignores a message the rotation is not waiting for', () => {
    expect(decide(waitingForAck(), csrRes(), over(OLD))).toMatchObject({ kind: 'ignore', reason: 'UNEXPECTED_MESSAGE', detail: 'waiting for crt_ack' });
    expect(decide(waitingForCsr({ newCertificateId: NEW }), crtAck(), over(NEW))).toMatchObject({ kind: 'ignore', reason: 'UNEXPECTED_MESSAGE' });
    expect(decide(record(), csrRes(), over(OLD))).toMatchObject({ kind: 'ignore', reason: 'UNEXPECTED_MESSAGE', detail: 'waiting for nothing' });
  });
});

describe('device rules: cloud rule 9, every message is tied to a certificate of its rotation', () => {
  it('accepts csr_res only over the old certificate', () => {
    expect(decide(waitingForCsr(), csrRes(), over(OLD))).toMatchObject({ kind: 'answer-success', taskToken: TOKEN });
    for (const principal of [NEW, THIRD, '']) {
      expect(decide(waitingForCsr({ newCertificateId: NEW }), csrRes(), over(principal))).toMatchObject({ kind: 'ignore', reason: 'CSR_NOT_OVER_OLD_CERTIFICATE' });
    }
  });

  it('accepts crt_ack only over the new certificate (cloud rule 2)', () => {
    expect(decide(waitingForAck(), crtAck(), over(NEW))).toMatchObject({ kind: 'answer-success' });
    for (const principal of [OLD, THIRD, '']) {
      expect(decide(waitingForAck(), crtAck(), over(principal))).toMatchObject({ kind: 'ignore', reason: 'ACK_NOT_OVER_NEW_CERTIFICATE' });
    }
    // Before any new certificate exists, no principal can ack — not even an empty one.
    expect(decide(waitingForCsr(), crtAck(), over(''))).toMatchObject({ kind: 'ignore', reason: 'ACK_NOT_OVER_NEW_CERTIFICATE' });
  });

  it('accepts crt_err over the old or the new certificate, never a third one', () => {
    expect(decide(waitingForAck(), crtErr(), over(OLD))).toMatchObject({ kind: 'answer-failure' });
    expect(decide(waitingForAck(), crtErr(), over(NEW))).toMatchObject({ kind: 'answer-failure' });
    expect(decide(waitingForAck(), crtErr(), over(THIRD))).toMatchObject({ kind: 'ignore', reason: 'ERROR_NOT_OVER_ROTATION_CERTIFICATE', detail: `crt_err over certificate ${THIRD}` });
    expect(decide(waitingForCsr(), crtErr(), over(''))).toMatchObject({ kind: 'ignore', reason: 'ERROR_NOT_OVER_ROTATION_CERTIFICATE' });
  });

  it('ties a failed rotation\'s late messages to its certificates too', () => {
    expect(decide(failed(), csrRes(), over(THIRD))).toMatchObject({ kind: 'ignore', reason: 'CSR_NOT_OVER_OLD_CERTIFICATE' });
    expect(decide(failed(), crtAck(), over(THIRD))).toMatchObject({ kind: 'ignore', reason: 'ACK_NOT_OVER_NEW_CERTIFICATE' });
  });
});

describe('device rules: answering the rotation in flight', () => {
  it('answers csr_res with the CSR and when it arrived', () => {
    expect(decide(waitingForCsr(), csrRes(undefined), over(OLD))).toEqual({
      kind: 'answer-success',
      taskToken: TOKEN,
      output: JSON.stringify({ pem: '-----BEGIN CERTIFICATE REQUEST-----', receivedAt: AT }),
    });
  });

  it('answers crt_ack with the principal, and asks for the ack to be recorded first', () => {
    expect(decide(waitingForAck(), crtAck(), over(NEW))).toEqual({
      kind: 'answer-success',
      taskToken: TOKEN,
      output: JSON.stringify({ principal: NEW, ackedAt: AT }),
      ack: { certificateId: NEW },
    });
  });

  it('fails the parked task with DeviceReportedError and the device text on crt_err (cloud rule 5)', () => {
    expect(decide(waitingForAck(), crtErr('unknown ca'), over(NEW))).toEqual({ kind: 'answer-failure', taskToken: TOKEN, error: 'DeviceReportedError', cause: 'unknown ca' });
  });

  it('lets a v1.1 device refuse csr_req with crt_err while the CSR is awaited (cloud rule 11)', () => {
    expect(decide(waitingForCsr(), crtErr('CERTIFICATE_NOT_HELD'), over(OLD))).toMatchObject({ kind: 'answer-failure', error: 'DeviceReportedError', cause: 'CERTIFICATE_NOT_HELD' });
  });
});

describe('device rules: late messages of a failed rotation', () => {
  it('asks for the certificates\' statuses before deciding, and only then', () => {
    expect(decide(failed(), crtAck(), over(NEW))).toEqual({ kind: 'look-up-certificates', newCertificateId: NEW });
    expect(decide(failed({ newCertificateId: undefined, step: 'Request CSR', reason: 'NO_CSR_RESPONSE' }), csrRes(), over(OLD))).toEqual({ kind: 'look-up-certificates' });
    // A status of the old certificate alone is not enough while a new one exists.
    expect(decide(failed(), crtAck(), over(NEW, { old: 'ACTIVE' }))).toMatchObject({ kind: 'look-up-certificates' });
  });

  it('answers a late csr_res or crt_ack with abort and the reason code while the old certificate is ACTIVE (cloud rule 2)', () => {
    expect(decide(failed(), crtAck(), over(NEW, { old: 'ACTIVE', new: 'GONE' }))).toEqual({ kind: 'abort', rotationId: ROTATION, reasonCode: 'NO_ACK' });
    const noCsr = failed({ newCertificateId: undefined, step: 'Request CSR', reason: 'NO_CSR_RESPONSE' });
    expect(decide(noCsr, csrRes(undefined), over(OLD, { old: 'ACTIVE' }))).toEqual({ kind: 'abort', rotationId: ROTATION, reasonCode: 'NO_CSR_RESPONSE' });
  });

  it('never sends AWS text as the abort reason: an unknown reason becomes INTERNAL_ERROR', () => {
    const odd = failed({ reason: 'AccessDeniedException: User arn:aws:sts::123456789012:assumed-role/x is not authorized' });
    expect(decide(odd, crtAck(), over(NEW, { old: 'ACTIVE', new: 'GONE' }))).toEqual({ kind: 'abort', rotationId: ROTATION, reasonCode: 'INTERNAL_ERROR' });
  });

  it.each<CertificateState>(['INACTIVE', 'REVOKED', 'PENDING_TRANSFER', 'GONE'])('never aborts when the old certificate is %s (scenario 1)', (old) => {
    expect(decide(failed({ step: 'Roll back', reason: 'ROLLBACK_FAILED' }), crtAck(), over(NEW, { old, new: 'INACTIVE' }))).toMatchObject({
      kind: 'ignore',
      reason: 'OLD_CERTIFICATE_NOT_ACTIVE',
    });
    expect(decide(failed({ newCertificateId: undefined }), csrRes(), over(OLD, { old }))).toMatchObject({ kind: 'ignore', reason: 'OLD_CERTIFICATE_NOT_ACTIVE' });
  });

  it('does not abort a rotation that failed while retiring the old certificate', () => {
    const retire = failed({ step: 'Retire old certificate', reason: 'RETIRE_FAILED' });
    expect(decide(retire, crtAck(), over(NEW, { old: 'ACTIVE', new: 'INACTIVE' }))).toMatchObject({ kind: 'ignore', reason: 'NO_ROTATION_IN_FLIGHT' });
  });

  it('finishes the rotation when the ack is over the new certificate and it is still ACTIVE (cloud rule 10)', () => {
    const rolledBackBadly = failed({ step: 'Roll back', reason: 'ROLLBACK_FAILED', auditTaskId: 'task-1' });
    for (const old of ['INACTIVE', 'ACTIVE', 'GONE'] as const) {
      expect(decide(rolledBackBadly, crtAck(), over(NEW, { old, new: 'ACTIVE' }))).toEqual({
        kind: 'finish-late-ack',
        rotationId: ROTATION,
        newCertificateId: NEW,
        executionName: resumeExecutionName(THING, NEW),
        input: { thingName: THING, certificateId: OLD, trigger: 'resume', resume: { newCertificateId: NEW }, auditTaskId: 'task-1' },
      });
    }
  });

  it.each<CertificateState>(['REVOKED', 'PENDING_TRANSFER'])('never finishes a rotation whose old certificate was %s on purpose', (old) => {
    expect(decide(failed(), crtAck(), over(NEW, { old, new: 'ACTIVE' }))).toMatchObject({ kind: 'ignore', reason: 'OLD_CERTIFICATE_NOT_ACTIVE' });
  });

  it('ignores crt_err and messages naming another rotation after a failure', () => {
    expect(decide(failed(), crtErr(), over(OLD))).toEqual({ kind: 'ignore', reason: 'NO_ROTATION_IN_FLIGHT' });
    expect(decide(failed(), crtAck('older'), over(NEW))).toEqual({ kind: 'ignore', reason: 'NO_ROTATION_IN_FLIGHT' });
  });
});

describe('resumeExecutionName', () => {
  it('is deterministic, a valid Step Functions name, and differs per new certificate', () => {
    const name = resumeExecutionName(THING, NEW);
    expect(name).toBe(resumeExecutionName(THING, NEW));
    expect(name).not.toBe(resumeExecutionName(THING, THIRD));
    expect(name).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    expect(resumeExecutionName('x'.repeat(128), NEW).length).toBeLessThanOrEqual(80);
  });
});
