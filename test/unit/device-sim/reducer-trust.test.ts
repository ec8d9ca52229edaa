import { parseTrustBundle } from '../../../domain/index.js';
import { initialState, reduce, type DeviceEvent, type DeviceState, type Effect } from '../../../device-sim/reducer.js';
import { createCa, issueCertificate, newEcKeyPem, type TestCa } from './pki.js';

/** Protocol v1.2, device rules T1–T7 (docs/protocol.md), on plain values: no mocks, no I/O. */
const THING = 'sensor-0001';
const NOW = new Date();
const TID = 'trust-1-sensor-0001';

let ca2: TestCa;
let bundle: string;
let bundleId: string;
let leafBundle: string;

beforeAll(async () => {
  ca2 = await createCa('Server Root 2');
  bundle = ca2.certPem;
  const parsed = parseTrustBundle(bundle, NOW);
  if (!parsed.ok) throw new Error(parsed.error);
  bundleId = parsed.value.bundleId;
  leafBundle = await issueCertificate(ca2, newEcKeyPem(), 'localhost', { server: true });
});

function run(state: DeviceState, events: DeviceEvent[]): { state: DeviceState; effects: Effect[] } {
  const effects: Effect[] = [];
  for (const event of events) {
    const t = reduce(state, event, NOW);
    state = t.state;
    effects.push(...t.effects);
  }
  return { state, effects };
}

const trustReq = (body: Record<string, unknown>): DeviceEvent => ({ type: 'messageReceived', messageType: 'trust_req', payload: JSON.stringify(body) });

function published(effects: Effect[]): Array<{ type: string; body: Record<string, unknown> }> {
  return effects.flatMap((e) => (e.type === 'publish' ? [{ type: e.message.type, body: e.message.body as Record<string, unknown> }] : []));
}
function stores(effects: Effect[]): string[] {
  return effects.filter((e) => ['storeBundle', 'promoteBundle', 'dropBundle', 'connect'].includes(e.type)).map((e) => (e.type === 'connect' ? `connect:${e.pair}/${e.bundle ?? 'current'}` : e.type));
}

function online(trustUpdates = true): DeviceState {
  return run(initialState(THING, 'ec-p256', { trustUpdates }), [{ type: 'started', stored: { current: true } }, { type: 'connected', pair: 'current' }]).state;
}

/** Online, the bundle stored as pending, reconnecting to verify the server with it. */
function verifying(): { state: DeviceState; effects: Effect[] } {
  return run(online(), [trustReq({ rotationId: TID, bundle, bundleId }), { type: 'bundleStored', rotationId: TID }]);
}

describe('trust_req (protocol v1.2)', () => {
  it('T2/T3: stores the bundle as pending, reconnects verifying the server with it, acks over that connection, then makes it current', () => {
    const { state, effects } = verifying();
    expect(stores(effects)).toEqual(['storeBundle', 'connect:current/pending']);
    expect(published(effects)).toEqual([]);
    expect(state.currentBundleId).toBeUndefined();

    const done = run(state, [{ type: 'connected', pair: 'current', bundle: 'pending' }]);
    expect(published(done.effects)).toEqual([{ type: 'trust_ack', body: { rotationId: TID, bundleId } }]);
    const order = done.effects.map((e) => e.type).filter((t) => t === 'publish' || t === 'promoteBundle');
    expect(order).toEqual(['publish', 'promoteBundle']);
    expect(done.state.currentBundleId).toBe(bundleId);
    expect(done.state.trust).toEqual({ status: 'idle' });
    expect(done.state.connection).toEqual({ status: 'connected', pair: 'current' });
  });

  it('T4: a server the new bundle does not verify: drop it, reconnect with the current bundle, then trust_err CONNECT_FAILED', () => {
    const failed = run(verifying().state, [
      { type: 'connectFailed', pair: 'current', bundle: 'pending', reason: 'unable to verify the first certificate', refused: true },
    ]);
    expect(stores(failed.effects)).toEqual(['dropBundle', 'connect:current/current']);
    expect(published(failed.effects)).toEqual([]);
    const back = run(failed.state, [{ type: 'connected', pair: 'current' }]);
    const [err] = published(back.effects);
    expect(err.type).toBe('trust_err');
    expect(err.body).toMatchObject({ rotationId: TID, bundleId, code: 'CONNECT_FAILED' });
    expect(String(err.body.error)).toContain('unable to verify the first certificate');
    expect(back.state.currentBundleId).toBeUndefined();
    expect(back.effects.some((e) => e.type === 'report' && e.report.kind === 'trustRefused')).toBe(true);
  });

  it('T4: network failures with the new bundle are retried a bounded number of times before it counts as failed', () => {
    let t = verifying();
    const connects: string[] = [];
    for (let i = 0; i < 4; i++) {
      t = run(t.state, [{ type: 'connectFailed', pair: 'current', bundle: 'pending', reason: 'ECONNREFUSED', refused: false }]);
      connects.push(...stores(t.effects));
    }
    expect(connects).toEqual(['connect:current/pending', 'connect:current/pending', 'connect:current/pending', 'dropBundle', 'connect:current/current']);
    expect(t.state.trust.status).toBe('reportingError');
  });

  it('T1: a bundle that is not usable, or not the one named, is refused with BUNDLE_INVALID and changes nothing', () => {
    for (const body of [
      { rotationId: TID, bundle: leafBundle, bundleId },
      { rotationId: TID, bundle, bundleId: 'b'.repeat(64) },
    ]) {
      const before = online();
      const { state, effects } = run(before, [trustReq(body)]);
      expect(published(effects).map((m) => [m.type, m.body.code])).toEqual([['trust_err', 'BUNDLE_INVALID']]);
      expect(stores(effects)).toEqual([]);
      expect(state).toEqual(before);
    }
  });

  it('T2: a bundle that cannot be stored: trust_err STORAGE_FAILED, nothing else changes', () => {
    const { state, effects } = run(online(), [trustReq({ rotationId: TID, bundle, bundleId }), { type: 'bundleStoreFailed', rotationId: TID, error: 'ENOSPC' }]);
    expect(published(effects).map((m) => [m.type, m.body.code])).toEqual([['trust_err', 'STORAGE_FAILED']]);
    expect(state.trust).toEqual({ status: 'idle' });
    expect(state.connection).toEqual({ status: 'connected', pair: 'current' });
  });

  it('T5: idempotent on bundleId — a repeat in flight is ignored, a repeat of the current bundle is acked again, another bundle is BUSY', () => {
    const inFlight = run(verifying().state, [trustReq({ rotationId: TID, bundle, bundleId })]);
    expect(published(inFlight.effects)).toEqual([]);
    expect(stores(inFlight.effects)).toEqual([]);

    const busy = run(verifying().state, [trustReq({ rotationId: 'trust-2', bundle: leafBundle, bundleId: 'c'.repeat(64) })]);
    expect(published(busy.effects).map((m) => [m.type, m.body.code])).toEqual([['trust_err', 'BUSY']]);

    const current = run(verifying().state, [{ type: 'connected', pair: 'current', bundle: 'pending' }]).state;
    const again = run(current, [trustReq({ rotationId: TID, bundle, bundleId })]);
    expect(published(again.effects)).toEqual([{ type: 'trust_ack', body: { rotationId: TID, bundleId } }]);
    expect(stores(again.effects)).toEqual([]);
  });

  it('T7: a trust_req during a certificate rotation is answered BUSY and the rotation is untouched', () => {
    const rotating = run(online(), [{ type: 'messageReceived', messageType: 'csr_req', payload: JSON.stringify({ rotationId: 'rot-1' }) }]).state;
    const { state, effects } = run(rotating, [trustReq({ rotationId: TID, bundle, bundleId })]);
    expect(published(effects).map((m) => [m.type, m.body.code])).toEqual([['trust_err', 'BUSY']]);
    expect(state.rotation).toEqual(rotating.rotation);
  });

  it('T6: a pending bundle left by a restart is dropped; the current bundle id is remembered', () => {
    const { state, effects } = run(initialState(THING, 'ec-p256'), [
      { type: 'started', stored: { current: true, currentBundleId: 'd'.repeat(64), pendingBundle: { rotationId: TID, bundleId } } },
    ]);
    expect(stores(effects)).toEqual(['dropBundle', 'connect:current/current']);
    expect(state.currentBundleId).toBe('d'.repeat(64));
  });

  it('a v1/v1.1 device ignores trust_req: nothing published, nothing stored, state unchanged', () => {
    const before = online(false);
    const { state, effects } = run(before, [trustReq({ rotationId: TID, bundle, bundleId })]);
    expect(published(effects)).toEqual([]);
    expect(stores(effects)).toEqual([]);
    expect(state).toEqual(before);
  });
});
