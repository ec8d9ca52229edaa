import { MessageType } from '../../../domain/index.js';
import { publicKeySpkiOfPrivateKey } from '../../../device-sim/keys.js';
import {
  initialState,
  reduce,
  type DeviceEvent,
  type DeviceState,
  type Effect,
  type StoredSummary,
} from '../../../device-sim/reducer.js';
import { createCa, issueCertificate, newEcKeyPem, type TestCa } from './pki.js';

const THING = 'sensor-0001';
const NOW = new Date('2025-06-01T12:00:00.000Z');
const RID = 'audit-123-sensor-0001';
const CSR = '-----BEGIN CERTIFICATE REQUEST-----\nQUJD\n-----END CERTIFICATE REQUEST-----\n';
const CERT_ID = 'a'.repeat(64);

let ca: TestCa;
let pendingKey: string;
let pendingSpki: string;
let pendingCert: string;
let otherCert: string;

beforeAll(async () => {
  ca = await createCa();
  pendingKey = newEcKeyPem();
  pendingSpki = publicKeySpkiOfPrivateKey(pendingKey);
  pendingCert = await issueCertificate(ca, pendingKey, THING);
  otherCert = await issueCertificate(ca, newEcKeyPem(), THING);
});

function message(type: string, body: unknown): DeviceEvent {
  return { type: 'messageReceived', messageType: type, payload: JSON.stringify(body) };
}

/** Runs events in order; returns the final state and every effect, in order. */
function run(state: DeviceState, events: DeviceEvent[]): { state: DeviceState; effects: Effect[] } {
  const effects: Effect[] = [];
  for (const event of events) {
    const t = reduce(state, event, NOW);
    state = t.state;
    effects.push(...t.effects);
  }
  return { state, effects };
}

function withoutLogs(effects: Effect[]): Effect[] {
  return effects.filter((e) => e.type !== 'log' && e.type !== 'report');
}

function published(effects: Effect[]): Array<{ type: string; body: Record<string, unknown> }> {
  return effects.flatMap((e) => (e.type === 'publish' ? [{ type: e.message.type, body: e.message.body as Record<string, unknown> }] : []));
}

const booted = (stored: StoredSummary = { current: true }): DeviceEvent => ({ type: 'started', stored });

/** A device online on its current pair. */
function online(): DeviceState {
  return run(initialState(THING, 'ec-p256'), [booted(), { type: 'connected', pair: 'current' }]).state;
}

/** A device that has sent its CSR for RID. */
function awaitingCertificate(): DeviceState {
  return run(online(), [
    message(MessageType.CsrRequest, { rotationId: RID }),
    { type: 'keyGenerated', rotationId: RID, publicKeySpki: pendingSpki },
    { type: 'csrMade', rotationId: RID, csrPem: CSR },
  ]).state;
}

/** A device that acked RID over the pending pair. */
function awaitingDone(): DeviceState {
  return run(awaitingCertificate(), [
    message(MessageType.CertificateResponse, { rotationId: RID, certificateId: CERT_ID, certificatePem: pendingCert }),
    { type: 'certificateStored', rotationId: RID },
    { type: 'connected', pair: 'pending' },
  ]).state;
}

describe('boot', () => {
  it('connects with the current pair', () => {
    const { state, effects } = run(initialState(THING, 'ec-p256'), [booted()]);
    expect(withoutLogs(effects)).toEqual([{ type: 'connect', pair: 'current', delayMs: 0 }]);
    expect(state.connection).toMatchObject({ status: 'connecting', pair: 'current' });
  });

  it('reports a device with no key pair as stranded and does not connect', () => {
    const { effects } = run(initialState(THING, 'ec-p256'), [booted({ current: false })]);
    expect(effects.some((e) => e.type === 'connect')).toBe(false);
    expect(effects).toContainEqual(expect.objectContaining({ type: 'report', report: expect.objectContaining({ kind: 'stranded' }) }));
  });
});

describe('csr_req', () => {
  it('makes a new key with the configured algorithm, then a CSR with CN = thing name, and publishes it', () => {
    const start = run(online(), [message(MessageType.CsrRequest, { rotationId: RID })]);
    expect(withoutLogs(start.effects)).toEqual([
      { type: 'generateKey', rotationId: RID, startedAt: NOW.toISOString(), algorithm: 'ec-p256', source: 'new' },
    ]);
    const key = run(start.state, [{ type: 'keyGenerated', rotationId: RID, publicKeySpki: pendingSpki }]);
    expect(withoutLogs(key.effects)).toEqual([{ type: 'makeCsr', rotationId: RID, commonName: THING }]);
    const csr = run(key.state, [{ type: 'csrMade', rotationId: RID, csrPem: CSR }]);
    expect(published(csr.effects)).toEqual([{ type: MessageType.CsrResponse, body: { rotationId: RID, CSR } }]);
    expect(csr.state.rotation.status).toBe('awaitingCertificate');
  });

  it('uses the selected algorithm', () => {
    const state = { ...online(), keyAlgorithm: 'rsa-2048' as const };
    const { effects } = run(state, [message(MessageType.CsrRequest, { rotationId: RID })]);
    expect(effects).toContainEqual(expect.objectContaining({ type: 'generateKey', algorithm: 'rsa-2048' }));
  });

  it('answers a repeated csr_req with the same CSR and no new key', () => {
    const { effects } = run(awaitingCertificate(), [message(MessageType.CsrRequest, { rotationId: RID })]);
    expect(withoutLogs(effects)).toEqual([{ type: 'publish', message: { type: MessageType.CsrResponse, body: { rotationId: RID, CSR } } }]);
  });

  it('ignores a repeated csr_req while the key is still being made', () => {
    const state = run(online(), [message(MessageType.CsrRequest, { rotationId: RID })]).state;
    const { effects } = run(state, [message(MessageType.CsrRequest, { rotationId: RID })]);
    expect(withoutLogs(effects)).toEqual([]);
  });

  it('works with a blog-era cloud that sends {} and answers without a rotationId', () => {
    const { effects, state } = run(online(), [
      message(MessageType.CsrRequest, {}),
      { type: 'keyGenerated', rotationId: '', publicKeySpki: pendingSpki },
      { type: 'csrMade', rotationId: '', csrPem: CSR },
      message(MessageType.CsrRequest, {}),
    ]);
    expect(published(effects)).toEqual([
      { type: MessageType.CsrResponse, body: { CSR } },
      { type: MessageType.CsrResponse, body: { CSR } },
    ]);
    expect(effects.filter((e) => e.type === 'generateKey')).toHaveLength(1);
    expect(state.rotation.status).toBe('awaitingCertificate');
  });

  it('replaces a rotation the cloud gave up on: drops its pending pair, starts afresh', () => {
    const { effects, state } = run(awaitingCertificate(), [message(MessageType.CsrRequest, { rotationId: 'retry-2' })]);
    expect(withoutLogs(effects)).toEqual([
      { type: 'dropPending', rotationId: RID },
      { type: 'generateKey', rotationId: 'retry-2', startedAt: NOW.toISOString(), algorithm: 'ec-p256', source: 'new' },
    ]);
    expect(state.rotation).toMatchObject({ status: 'generatingKey', rotationId: 'retry-2' });
  });

  it('ignores a late csr_req of a rotation that already ended', () => {
    const ended = run(awaitingCertificate(), [message(MessageType.Abort, { rotationId: RID, reason: 'x' })]).state;
    const { effects } = run(ended, [message(MessageType.CsrRequest, { rotationId: RID })]);
    expect(withoutLogs(effects)).toEqual([]);
  });

  it('drops the key of a rotation that ended while the key was being made', () => {
    const state = run(online(), [message(MessageType.CsrRequest, { rotationId: RID }), message(MessageType.Abort, { rotationId: RID, reason: 'x' })]).state;
    const { effects } = run(state, [{ type: 'keyGenerated', rotationId: RID, publicKeySpki: pendingSpki }]);
    expect(withoutLogs(effects)).toEqual([{ type: 'dropPending', rotationId: RID }]);
  });
});

describe('crt_res', () => {
  it('stores the certificate as pending, then reconnects with the pending pair and acks over it', () => {
    const received = run(awaitingCertificate(), [
      message(MessageType.CertificateResponse, { rotationId: RID, certificateId: CERT_ID, certificatePem: pendingCert }),
    ]);
    expect(withoutLogs(received.effects)).toEqual([{ type: 'storePending', rotationId: RID, certificateId: CERT_ID, certificatePem: pendingCert }]);
    const stored = run(received.state, [{ type: 'certificateStored', rotationId: RID }]);
    expect(withoutLogs(stored.effects)).toEqual([{ type: 'connect', pair: 'pending', delayMs: 0 }]);
    expect(published(stored.effects)).toEqual([]); // no ack over the old connection
    const connected = run(stored.state, [{ type: 'connected', pair: 'pending' }]);
    expect(published(connected.effects)).toEqual([{ type: MessageType.CertificateAck, body: { rotationId: RID } }]);
    expect(connected.state.rotation.status).toBe('awaitingDone');
  });

  it('ignores a certificate that is not for the pending key', () => {
    const { effects, state } = run(awaitingCertificate(), [
      message(MessageType.CertificateResponse, { rotationId: RID, certificateId: CERT_ID, certificatePem: otherCert }),
    ]);
    expect(withoutLogs(effects)).toEqual([]);
    expect(effects).toContainEqual(expect.objectContaining({ type: 'log', level: 'warn', message: expect.stringContaining('not for the pending key') }));
    expect(state.rotation.status).toBe('awaitingCertificate');
  });

  it('ignores a crt_res for another rotation id', () => {
    const { effects, state } = run(awaitingCertificate(), [
      message(MessageType.CertificateResponse, { rotationId: 'someone-else', certificateId: CERT_ID, certificatePem: pendingCert }),
    ]);
    expect(withoutLogs(effects)).toEqual([]);
    expect(state.rotation.status).toBe('awaitingCertificate');
  });

  it('answers a duplicated crt_res after acking with another ack, not another store', () => {
    const { effects } = run(awaitingDone(), [
      message(MessageType.CertificateResponse, { rotationId: RID, certificateId: CERT_ID, certificatePem: pendingCert }),
    ]);
    expect(withoutLogs(effects)).toEqual([{ type: 'publish', message: { type: MessageType.CertificateAck, body: { rotationId: RID } } }]);
  });

  it('ignores a malformed crt_res', () => {
    const { effects } = run(awaitingCertificate(), [message(MessageType.CertificateResponse, { rotationId: RID, certificateId: 'nope' })]);
    expect(withoutLogs(effects)).toEqual([]);
  });
});

describe('crt_done', () => {
  it('promotes the pending pair and only then deletes the old key', () => {
    const whole = run(online(), [
      message(MessageType.CsrRequest, { rotationId: RID }),
      { type: 'keyGenerated', rotationId: RID, publicKeySpki: pendingSpki },
      { type: 'csrMade', rotationId: RID, csrPem: CSR },
      message(MessageType.CertificateResponse, { rotationId: RID, certificateId: CERT_ID, certificatePem: pendingCert }),
      { type: 'certificateStored', rotationId: RID },
      { type: 'connected', pair: 'pending' },
    ]);
    expect(whole.effects.some((e) => e.type === 'deleteOldKey' || e.type === 'promotePending')).toBe(false);
    const done = run(whole.state, [message(MessageType.RotationDone, { rotationId: RID })]);
    expect(withoutLogs(done.effects)).toEqual([{ type: 'promotePending', rotationId: RID }, { type: 'deleteOldKey' }]);
    expect(done.state.rotation.status).toBe('idle');
    expect(done.state.connection).toEqual({ status: 'connected', pair: 'current' });
  });

  it('answers a duplicated crt_done idempotently (nothing promoted twice)', () => {
    const done = run(awaitingDone(), [message(MessageType.RotationDone, { rotationId: RID })]).state;
    const { effects } = run(done, [message(MessageType.RotationDone, { rotationId: RID })]);
    expect(withoutLogs(effects)).toEqual([]);
  });

  it('ignores crt_done before any certificate is pending', () => {
    const { effects } = run(awaitingCertificate(), [message(MessageType.RotationDone, { rotationId: RID })]);
    expect(withoutLogs(effects)).toEqual([]);
  });

  it('ignores a crt_done of another rotation', () => {
    const { effects, state } = run(awaitingDone(), [message(MessageType.RotationDone, { rotationId: 'other' })]);
    expect(withoutLogs(effects)).toEqual([]);
    expect(state.rotation.status).toBe('awaitingDone');
  });
});

describe('abort', () => {
  it('drops the pending pair and keeps the current one', () => {
    const { effects, state } = run(awaitingCertificate(), [message(MessageType.Abort, { rotationId: RID, reason: 'CSR rejected: WRONG_COMMON_NAME' })]);
    expect(withoutLogs(effects)).toEqual([{ type: 'dropPending', rotationId: RID }]);
    expect(state.rotation.status).toBe('idle');
  });

  it('after the ack: drops the pending pair and reconnects with the current one, never deleting the old key', () => {
    const { effects, state } = run(awaitingDone(), [message(MessageType.Abort, { rotationId: RID, reason: 'ack timed out' })]);
    expect(withoutLogs(effects)).toEqual([{ type: 'dropPending', rotationId: RID }, { type: 'connect', pair: 'current', delayMs: 0 }]);
    expect(state.connection).toMatchObject({ status: 'connecting', pair: 'current' });
  });

  it('ignores an abort of another rotation and a repeated abort', () => {
    const other = run(awaitingCertificate(), [message(MessageType.Abort, { rotationId: 'other', reason: 'x' })]);
    expect(withoutLogs(other.effects)).toEqual([]);
    const ended = run(awaitingCertificate(), [message(MessageType.Abort, { rotationId: RID, reason: 'x' })]).state;
    expect(withoutLogs(run(ended, [message(MessageType.Abort, { rotationId: RID, reason: 'x' })]).effects)).toEqual([]);
  });
});

describe('the pending pair refused', () => {
  it('drops it, reconnects with the current pair and publishes crt_err over it', () => {
    const switching = run(awaitingCertificate(), [
      message(MessageType.CertificateResponse, { rotationId: RID, certificateId: CERT_ID, certificatePem: pendingCert }),
      { type: 'certificateStored', rotationId: RID },
    ]).state;
    const refused = run(switching, [{ type: 'connectFailed', pair: 'pending', reason: 'bad certificate', refused: true }]);
    expect(withoutLogs(refused.effects)).toEqual([{ type: 'dropPending', rotationId: RID }, { type: 'connect', pair: 'current', delayMs: 0 }]);
    expect(published(refused.effects)).toEqual([]);
    const back = run(refused.state, [{ type: 'connected', pair: 'current' }]);
    expect(published(back.effects)).toEqual([
      { type: MessageType.CertificateError, body: { rotationId: RID, error: 'the new certificate was refused by the server: bad certificate' } },
    ]);
    expect(back.state.rotation.status).toBe('idle');
  });

  it('retries the pending pair on a network failure instead of dropping it', () => {
    const switching = run(awaitingCertificate(), [
      message(MessageType.CertificateResponse, { rotationId: RID, certificateId: CERT_ID, certificatePem: pendingCert }),
      { type: 'certificateStored', rotationId: RID },
    ]).state;
    const { effects } = run(switching, [{ type: 'connectFailed', pair: 'pending', reason: 'ECONNREFUSED', refused: false }]);
    expect(withoutLogs(effects)).toEqual([{ type: 'connect', pair: 'pending', delayMs: 1000 }]);
  });
});

describe('reboot in the middle of a rotation', () => {
  const pendingWithCert = (): StoredSummary => ({
    current: true,
    pending: { rotation: { rotationId: RID, startedAt: NOW.toISOString(), keyAlgorithm: 'ec-p256', publicKeySpki: pendingSpki, certificateId: CERT_ID }, csrPem: CSR, hasCertificate: true },
  });

  it('connects with the current pair first, then finishes the switch and acks over the pending pair', () => {
    const { effects } = run(initialState(THING, 'ec-p256'), [booted(pendingWithCert()), { type: 'connected', pair: 'current' }, { type: 'connected', pair: 'pending' }]);
    expect(withoutLogs(effects)).toEqual([
      { type: 'connect', pair: 'current', delayMs: 0 },
      { type: 'connect', pair: 'pending', delayMs: 0 },
      { type: 'publish', message: { type: MessageType.CertificateAck, body: { rotationId: RID } } },
    ]);
  });

  it('tries the pending pair when the current one is refused', () => {
    const { effects, state } = run(initialState(THING, 'ec-p256'), [
      booted(pendingWithCert()),
      { type: 'connectFailed', pair: 'current', reason: 'certificate revoked', refused: true },
      { type: 'connected', pair: 'pending' },
      message(MessageType.RotationDone, { rotationId: RID }),
    ]);
    expect(withoutLogs(effects)).toEqual([
      { type: 'connect', pair: 'current', delayMs: 0 },
      { type: 'connect', pair: 'pending', delayMs: 0 },
      { type: 'publish', message: { type: MessageType.CertificateAck, body: { rotationId: RID } } },
      { type: 'promotePending', rotationId: RID },
      { type: 'deleteOldKey' },
    ]);
    expect(state.rotation.status).toBe('idle');
  });

  it('keeps both pairs when both are refused', () => {
    const { effects } = run(initialState(THING, 'ec-p256'), [
      booted(pendingWithCert()),
      { type: 'connectFailed', pair: 'current', reason: 'revoked', refused: true },
      { type: 'connectFailed', pair: 'pending', reason: 'revoked', refused: true },
    ]);
    expect(effects.some((e) => e.type === 'dropPending' || e.type === 'deleteOldKey')).toBe(false);
    expect(effects.at(-1)).toEqual({ type: 'connect', pair: 'current', delayMs: 60_000 });
  });

  it('resumes waiting for the certificate with the CSR it already sent', () => {
    const stored: StoredSummary = {
      current: true,
      pending: { rotation: { rotationId: RID, startedAt: NOW.toISOString(), keyAlgorithm: 'ec-p256', publicKeySpki: pendingSpki }, csrPem: CSR, hasCertificate: false },
    };
    const { effects, state } = run(initialState(THING, 'ec-p256'), [booted(stored), { type: 'connected', pair: 'current' }, message(MessageType.CsrRequest, { rotationId: RID })]);
    expect(published(effects)).toEqual([{ type: MessageType.CsrResponse, body: { rotationId: RID, CSR } }]);
    expect(effects.some((e) => e.type === 'generateKey')).toBe(false);
    expect(state.rotation.status).toBe('awaitingCertificate');
  });
});

describe('connection handling', () => {
  it('reconnects with the same pair after a lost connection', () => {
    const { effects } = run(online(), [{ type: 'connectionLost', pair: 'current', reason: 'socket hang up' }]);
    expect(withoutLogs(effects)).toEqual([{ type: 'connect', pair: 'current', delayMs: 1000 }]);
  });

  it('re-acks after reconnecting on the pending pair while waiting for crt_done', () => {
    const { effects } = run(awaitingDone(), [{ type: 'connectionLost', pair: 'pending', reason: 'x' }, { type: 'connected', pair: 'pending' }]);
    expect(published(effects)).toEqual([{ type: MessageType.CertificateAck, body: { rotationId: RID } }]);
  });

  it('ignores a payload that is not JSON', () => {
    const { effects, state } = run(online(), [{ type: 'messageReceived', messageType: MessageType.CsrRequest, payload: 'not json' }]);
    expect(withoutLogs(effects)).toEqual([]);
    expect(state.rotation.status).toBe('idle');
  });
});

describe('protocol v1.1: csr_req names the certificate being replaced', () => {
  const CURRENT_ID = 'c'.repeat(64);
  const FOREIGN_ID = 'f'.repeat(64);

  /** A device that knows the id of its current certificate. */
  function onlineV11(): DeviceState {
    return run(initialState(THING, 'ec-p256'), [booted({ current: true, currentCertificateId: CURRENT_ID }), { type: 'connected', pair: 'current' }]).state;
  }

  it('rotates when the named certificate is the one it holds', () => {
    const { state, effects } = run(onlineV11(), [message(MessageType.CsrRequest, { rotationId: RID, certificateId: CURRENT_ID })]);
    expect(state.rotation.status).toBe('generatingKey');
    expect(effects.some((e) => e.type === 'generateKey')).toBe(true);
  });

  it('answers crt_err CERTIFICATE_NOT_HELD for a certificate it does not hold, and touches no key', () => {
    // Prepare
    const before = onlineV11();

    // Act
    const { state, effects } = run(before, [message(MessageType.CsrRequest, { rotationId: RID, certificateId: FOREIGN_ID })]);

    // Assess
    expect(state).toEqual(before);
    expect(withoutLogs(effects)).toEqual([
      { type: 'publish', message: { type: MessageType.CertificateError, body: { rotationId: RID, error: expect.stringMatching(new RegExp(`^CERTIFICATE_NOT_HELD: .*${FOREIGN_ID}`)) } } },
    ]);
    expect(effects.some((e) => e.type === 'generateKey' || e.type === 'dropPending' || e.type === 'deleteOldKey' || e.type === 'promotePending')).toBe(false);
    expect(effects).toContainEqual({ type: 'report', report: { kind: 'notHeld', rotationId: RID, at: NOW.toISOString(), detail: FOREIGN_ID } });
  });

  it('keeps a rotation in flight and its pending pair when another csr_req names a foreign certificate', () => {
    const inFlight = run(onlineV11(), [
      message(MessageType.CsrRequest, { rotationId: RID, certificateId: CURRENT_ID }),
      { type: 'keyGenerated', rotationId: RID, publicKeySpki: pendingSpki },
      { type: 'csrMade', rotationId: RID, csrPem: CSR },
    ]).state;

    const { state, effects } = run(inFlight, [message(MessageType.CsrRequest, { rotationId: 'other-rotation', certificateId: FOREIGN_ID })]);

    expect(state).toEqual(inFlight);
    expect(published(effects)).toEqual([{ type: MessageType.CertificateError, body: { rotationId: 'other-rotation', error: expect.stringContaining('CERTIFICATE_NOT_HELD') } }]);
  });

  it('holds the new certificate after crt_done: the next rotation may name it', () => {
    const rotated = run(onlineV11(), [
      message(MessageType.CsrRequest, { rotationId: RID, certificateId: CURRENT_ID }),
      { type: 'keyGenerated', rotationId: RID, publicKeySpki: pendingSpki },
      { type: 'csrMade', rotationId: RID, csrPem: CSR },
      message(MessageType.CertificateResponse, { rotationId: RID, certificateId: CERT_ID, certificatePem: pendingCert }),
      { type: 'certificateStored', rotationId: RID },
      { type: 'connected', pair: 'pending' },
      message(MessageType.RotationDone, { rotationId: RID }),
    ]).state;
    expect(rotated.currentCertificateId).toBe(CERT_ID);

    const next = run(rotated, [message(MessageType.CsrRequest, { rotationId: 'next', certificateId: CERT_ID })]);
    expect(next.state.rotation.status).toBe('generatingKey');
    const refused = run(rotated, [message(MessageType.CsrRequest, { rotationId: 'next', certificateId: CURRENT_ID })]);
    expect(published(refused.effects)[0]).toMatchObject({ type: MessageType.CertificateError });
  });

  it('acts as a v1 device when it does not know its certificate id, and on a csr_req without certificateId', () => {
    expect(run(online(), [message(MessageType.CsrRequest, { rotationId: RID, certificateId: FOREIGN_ID })]).state.rotation.status).toBe('generatingKey');
    expect(run(onlineV11(), [message(MessageType.CsrRequest, { rotationId: RID })]).state.rotation.status).toBe('generatingKey');
  });

  it('ignores a csr_req whose certificateId is not a certificate id', () => {
    const before = onlineV11();
    const { state, effects } = run(before, [message(MessageType.CsrRequest, { rotationId: RID, certificateId: 'not-an-id' })]);
    expect(state).toEqual(before);
    expect(withoutLogs(effects)).toEqual([]);
  });
});
