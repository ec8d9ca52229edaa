import { decideTrust, TrustStatus, trustEscalation, type TrustDeviceMessage, type TrustRecord } from '../../../domain/index.js';

const BUNDLE = 'c'.repeat(64);
const OTHER_BUNDLE = 'd'.repeat(64);
const CERT = 'a'.repeat(64);
const ACTIVE = { status: 'ACTIVE', attachedToThing: true };

function record(fields: Partial<TrustRecord> = {}): TrustRecord {
  return {
    pk: 'thing#sensor-1',
    sk: 'trust',
    thingName: 'sensor-1',
    trustStatus: TrustStatus.InProgress,
    step: 'Send trust request',
    updateId: 'sensor-1-t01',
    executionArn: 'arn:aws:states:us-east-1:123456789012:execution:rotor-trust-update:sensor-1-t01',
    pushId: 'push-1',
    bundleId: BUNDLE,
    startedAt: '2026-11-30T22:00:00.000Z',
    updatedAt: '2026-11-30T22:00:00.000Z',
    taskToken: 'token',
    ...fields,
  };
}
const ack = (body: Partial<{ rotationId: string; bundleId: string }> = {}): TrustDeviceMessage => ({ type: 'trust_ack', body: { rotationId: 'sensor-1-t01', bundleId: BUNDLE, ...body } });
const err = (code: 'CONNECT_FAILED' | 'BUSY' = 'CONNECT_FAILED'): TrustDeviceMessage => ({ type: 'trust_err', body: { rotationId: 'sensor-1-t01', bundleId: BUNDLE, code, error: 'server not verified' } });

describe('decideTrust (docs/protocol.md C4, C5)', () => {
  it('answers the waiting update with the bundle sent and the certificate the ack came over', () => {
    expect(decideTrust(record(), ack(), { principal: CERT })).toEqual({ kind: 'look-up-principal' });
    const decision = decideTrust(record(), ack(), { principal: CERT, principalState: ACTIVE });
    expect(decision).toEqual(expect.objectContaining({ kind: 'acked', taskToken: 'token', bundleId: BUNDLE, certificateId: CERT }));
    expect(JSON.parse((decision as { output: string }).output)).toEqual({ bundleId: BUNDLE, certificateId: CERT });
  });

  it('fails the waiting update with TRUST_<code> and the device text on trust_err', () => {
    const decision = decideTrust(record(), err(), { principal: CERT, principalState: ACTIVE });
    expect(decision).toEqual(expect.objectContaining({ kind: 'refused', error: 'TrustRefused' }));
    expect(JSON.parse((decision as { cause: string }).cause)).toEqual({ reason: 'TRUST_CONNECT_FAILED', error: 'server not verified' });
  });

  it.each([
    ['no update in flight', undefined, ack(), ACTIVE, 'NO_TRUST_UPDATE_IN_FLIGHT'],
    ['an update already finished', record({ trustStatus: TrustStatus.Updated, taskToken: undefined }), ack(), ACTIVE, 'NO_TRUST_UPDATE_IN_FLIGHT'],
    ['another update id', record(), ack({ rotationId: 'sensor-1-t00' }), ACTIVE, 'STALE_ROTATION_ID'],
    ['another bundle', record(), ack({ bundleId: OTHER_BUNDLE }), ACTIVE, 'WRONG_BUNDLE_ID'],
    ['an ack without an update id', record(), { type: 'trust_ack', body: { bundleId: BUNDLE } } as TrustDeviceMessage, ACTIVE, 'STALE_ROTATION_ID'],
    ['an INACTIVE certificate', record(), ack(), { status: 'INACTIVE', attachedToThing: true }, 'NOT_OVER_ACTIVE_CERTIFICATE'],
    ["another thing's certificate", record(), ack(), { status: 'ACTIVE', attachedToThing: false }, 'NOT_OVER_ACTIVE_CERTIFICATE'],
  ])('ignores a message with %s', (_what, rec, message, principalState, reason) => {
    expect(decideTrust(rec, message, { principal: CERT, principalState })).toEqual(expect.objectContaining({ kind: 'ignore', reason }));
  });

  it('records an ack that came after its update ended NOT_UPDATED, under the same C4 checks', () => {
    // Prepare
    const ended = record({ trustStatus: TrustStatus.NotUpdated, reason: 'NO_ACK', taskToken: undefined });
    // Act / Assess
    expect(decideTrust(ended, ack(), { principal: CERT })).toEqual({ kind: 'look-up-principal' });
    expect(decideTrust(ended, ack(), { principal: CERT, principalState: ACTIVE })).toEqual({ kind: 'acked-late', updateId: 'sensor-1-t01', bundleId: BUNDLE, certificateId: CERT });
    expect(decideTrust(ended, ack({ bundleId: OTHER_BUNDLE }), { principal: CERT, principalState: ACTIVE })).toEqual(expect.objectContaining({ kind: 'ignore', reason: 'WRONG_BUNDLE_ID' }));
    expect(decideTrust(ended, ack(), { principal: CERT, principalState: { status: 'INACTIVE', attachedToThing: true } })).toEqual(expect.objectContaining({ kind: 'ignore', reason: 'NOT_OVER_ACTIVE_CERTIFICATE' }));
    // Another update's ack, or a late trust_err, is not the device switching to this bundle.
    expect(decideTrust(ended, ack({ rotationId: 'sensor-1-t00' }), { principal: CERT, principalState: ACTIVE })).toEqual(expect.objectContaining({ kind: 'ignore', reason: 'NO_TRUST_UPDATE_IN_FLIGHT' }));
    expect(decideTrust(ended, err(), { principal: CERT, principalState: ACTIVE })).toEqual(expect.objectContaining({ kind: 'ignore', reason: 'NO_TRUST_UPDATE_IN_FLIGHT' }));
    expect(decideTrust(record({ trustStatus: TrustStatus.Refused, taskToken: undefined }), ack(), { principal: CERT, principalState: ACTIVE })).toEqual(expect.objectContaining({ kind: 'ignore' }));
  });

  it('composes one escalation naming the reason and what the operator must keep', () => {
    const escalation = trustEscalation({ thingName: 'sensor-1', updateId: 'u', bundleId: BUNDLE, reason: 'TRUST_CONNECT_FAILED', cause: 'x', executionArn: 'arn' });
    expect(escalation.subject).toBe('Rotor: trust update of sensor-1 failed (TRUST_CONNECT_FAILED)');
    expect(JSON.parse(escalation.message)).toEqual(expect.objectContaining({ kind: 'trust-update-failed', reason: 'TRUST_CONNECT_FAILED', thingName: 'sensor-1' }));
  });
});
