import { checkCsr } from '../../../domain/csr-rules.js';
import { MessageType } from '../../../domain/index.js';
import {
  assignFaults,
  faultHooks,
  FaultKind,
  FaultSpecError,
  parseFault,
  parseFaultSpec,
  type Fault,
} from '../../../device-sim/faults.js';
import { initialState, reduce, type DeviceState, type Effect } from '../../../device-sim/reducer.js';

const THING = 'sensor-7';
const NOW = new Date('2025-06-01T00:00:00Z');
const things = Array.from({ length: 100 }, (_, i) => `dev-${String(i).padStart(3, '0')}`);
const state: DeviceState = initialState(THING, 'ec-p256');
const switching: DeviceState = {
  ...state,
  rotation: { status: 'switching', rotationId: 'r', startedAt: NOW.toISOString(), publicKeySpki: 'x', certificateId: 'c' },
};
const csrRes: Effect = { type: 'publish', message: { type: MessageType.CsrResponse, body: { rotationId: 'r', CSR: 'pem' } } };
const ack: Effect = { type: 'publish', message: { type: MessageType.CertificateAck, body: { rotationId: 'r' } } };
const genKey: Effect = { type: 'generateKey', rotationId: 'r', startedAt: NOW.toISOString(), algorithm: 'ec-p256', source: 'new' };
const connectPending: Effect = { type: 'connect', pair: 'pending', delayMs: 0 };
const csrReq = { type: 'messageReceived' as const, messageType: MessageType.CsrRequest, payload: '{"rotationId":"r"}' };
const hooks = (kind: Fault['kind'], durationMs = 0) => faultHooks({ kind, durationMs });

describe('fault spec', () => {
  it('parses counts, percentages and durations', () => {
    expect(parseFaultSpec(' offline=2:20s, slow=10%:500ms ,garbage-csr=1,crash-after-cert=3')).toEqual([
      { kind: 'offline', amount: { count: 2 }, durationMs: 20_000 },
      { kind: 'slow', amount: { percent: 10 }, durationMs: 500 },
      { kind: 'garbage-csr', amount: { count: 1 }, durationMs: 0 },
      { kind: 'crash-after-cert', amount: { count: 3 }, durationMs: 3_000 },
    ]);
    expect(parseFaultSpec('')).toEqual([]);
  });

  it.each([
    ['melt=1', 'unknown fault "melt"'],
    ['offline', 'expected KIND=COUNT'],
    ['slow=lots', 'neither a count nor a percentage'],
    ['slow=120%', 'more than the whole fleet'],
    ['slow=1:5 sec', 'is not a number followed by ms, s or m'],
    ['garbage-csr=1:5s', 'garbage-csr takes no duration'],
    ['duplicate=1,duplicate=2', 'listed twice'],
  ])('rejects %s with a clear error', (spec, message) => {
    expect(() => parseFaultSpec(spec)).toThrow(FaultSpecError);
    expect(() => parseFaultSpec(spec)).toThrow(message);
  });

  it('parses a single --fault', () => {
    expect(parseFault('slow:2s')).toEqual({ kind: 'slow', durationMs: 2000 });
    expect(parseFault('weak-key')).toEqual({ kind: 'weak-key', durationMs: 0 });
    expect(() => parseFault('weak-key:2s')).toThrow('takes no duration');
  });

  it('assigns the same devices for the same seed, others for another seed, one fault per device', () => {
    const spec = parseFaultSpec('offline=2,slow=10%,garbage-csr=1');
    const a = assignFaults(spec, things, 42);
    const b = assignFaults(spec, things, 42);
    const c = assignFaults(spec, things, 43);
    expect([...a.entries()]).toEqual([...b.entries()]);
    expect([...a.keys()]).not.toEqual([...c.keys()]);
    expect(a.size).toBe(13);
    const kinds = [...a.values()].map((f) => f.kind);
    expect(kinds.filter((k) => k === 'slow')).toHaveLength(10);
    expect(kinds.filter((k) => k === 'offline')).toHaveLength(2);
  });

  it('refuses a spec that needs more devices than the fleet has', () => {
    expect(() => assignFaults(parseFaultSpec('slow=60%,duplicate=50%'), things, 1)).toThrow('asks for 110 faulty devices but the fleet has 100');
  });
});

describe('fault hooks', () => {
  it('a device without faults runs every effect as asked', () => {
    expect(faultHooks(undefined).onEffect(csrRes, state)).toEqual({ action: 'run', effect: csrRes });
  });

  it('offline: loses the first csr_req and comes back after the duration; offline-for-good never comes back', () => {
    const h = hooks(FaultKind.Offline, 5000);
    expect(h.onEvent(csrReq, state)).toEqual({ action: 'goOffline', forMs: 5000 });
    expect(h.onEvent(csrReq, state)).toEqual({ action: 'deliver' });
    expect(hooks(FaultKind.OfflineForGood).onEvent(csrReq, state)).toEqual({ action: 'goOffline' });
  });

  it('slow delays every publish; duplicate sends each twice', () => {
    expect(hooks(FaultKind.Slow, 700).onEffect(ack, state)).toEqual({ action: 'run', effect: ack, delayMs: 700 });
    expect(hooks(FaultKind.Slow, 700).onEffect(genKey, state)).toEqual({ action: 'run', effect: genKey });
    expect(hooks(FaultKind.Duplicate).onEffect(csrRes, state)).toEqual({ action: 'run', effect: csrRes, times: 2 });
  });

  it('garbage-csr sends something the cloud rejects as invalid PEM', () => {
    const d = hooks(FaultKind.GarbageCsr).onEffect(csrRes, state);
    if (d.action !== 'run' || d.effect.type !== 'publish' || d.effect.message.type !== MessageType.CsrResponse) throw new Error('unexpected');
    expect(checkCsr(d.effect.message.body.CSR, { thingName: THING })).toMatchObject({ ok: false, reason: 'INVALID_PEM' });
  });

  it('wrong-cn, weak-key and reused-key change the key and CSR effects, nothing else', () => {
    expect(hooks(FaultKind.WrongCn).onEffect({ type: 'makeCsr', rotationId: 'r', commonName: THING }, state)).toEqual({
      action: 'run',
      effect: { type: 'makeCsr', rotationId: 'r', commonName: `${THING}-impostor` },
    });
    expect(hooks(FaultKind.WeakKey).onEffect(genKey, state)).toEqual({ action: 'run', effect: { ...genKey, algorithm: 'rsa-1024' } });
    expect(hooks(FaultKind.ReusedKey).onEffect(genKey, state)).toEqual({ action: 'run', effect: { ...genKey, source: 'current' } });
    expect(hooks(FaultKind.WeakKey).onEffect(csrRes, state)).toEqual({ action: 'run', effect: csrRes });
  });

  it('crash-after-cert dies once, when the certificate is stored and the switch begins', () => {
    const h = hooks(FaultKind.CrashAfterCert, 2000);
    expect(h.onEffect(connectPending, state)).toEqual({ action: 'run', effect: connectPending }); // not mid-rotation
    expect(h.onEffect(connectPending, switching)).toEqual({ action: 'crash', restartAfterMs: 2000 });
    expect(h.onEffect(connectPending, switching)).toEqual({ action: 'run', effect: connectPending });
  });

  it('refuse-bundle (v1.2) turns storing a trust bundle into trust_err; the old bundle stays, key pairs are untouched', () => {
    const store: Effect = { type: 'storeBundle', rotationId: 't', bundleId: 'b'.repeat(64), bundlePem: 'p' };
    const d = hooks(FaultKind.RefuseBundle).onEffect(store, state);
    expect(d).toEqual({ action: 'fail', event: { type: 'bundleStoreFailed', rotationId: 't', error: 'refused by fault injection' } });
    if (d.action !== 'fail') throw new Error('unexpected');
    const storing: DeviceState = { ...state, trust: { status: 'storingBundle', rotationId: 't', bundleId: 'b'.repeat(64) } };
    const t = reduce(storing, d.event, NOW);
    expect(t.effects.filter((e) => e.type === 'publish' || e.type === 'dropBundle' || e.type === 'dropPending')).toEqual([
      { type: 'publish', message: { type: 'trust_err', body: { rotationId: 't', bundleId: 'b'.repeat(64), code: 'STORAGE_FAILED', error: 'the device could not store the bundle: refused by fault injection' } } },
      { type: 'dropBundle', rotationId: 't' },
    ]);
    expect(t.state.trust).toEqual({ status: 'idle' });
    expect(t.state.currentBundleId).toBeUndefined();
    // A rotation is not touched by the fault.
    expect(hooks(FaultKind.RefuseBundle).onEffect(genKey, state)).toEqual({ action: 'run', effect: genKey });
  });

  it('refuse-cert turns storing the certificate into a failure the reducer answers with crt_err', () => {
    const store: Effect = { type: 'storePending', rotationId: 'r', certificateId: 'c', certificatePem: 'p' };
    const d = hooks(FaultKind.RefuseCert).onEffect(store, state);
    expect(d).toEqual({ action: 'fail', event: { type: 'certificateStoreFailed', rotationId: 'r', error: 'refused by fault injection' } });
    if (d.action !== 'fail') throw new Error('unexpected');
    const storing: DeviceState = {
      ...state,
      rotation: { status: 'storingCertificate', rotationId: 'r', startedAt: NOW.toISOString(), publicKeySpki: 'x', csrPem: 'csr', certificateId: 'c' },
    };
    const t = reduce(storing, d.event, NOW);
    expect(t.effects.filter((e) => e.type === 'publish' || e.type === 'dropPending')).toEqual([
      { type: 'dropPending', rotationId: 'r' },
      { type: 'publish', message: { type: MessageType.CertificateError, body: { rotationId: 'r', error: 'the device could not store the new certificate: refused by fault injection' } } },
    ]);
  });

  it('ack-over-old connects for the ack with the current credentials', () => {
    expect(hooks(FaultKind.AckOverOld).onEffect(connectPending, switching)).toEqual({ action: 'run', effect: { ...connectPending, credentialsOf: 'current' } });
  });

  it('restart-mid-rotation dies once, right after sending the CSR', () => {
    const h = hooks(FaultKind.RestartMidRotation, 1500);
    expect(h.onEffect(csrRes, state)).toEqual({ action: 'run', effect: csrRes, thenCrashForMs: 1500 });
    expect(h.onEffect(csrRes, state)).toEqual({ action: 'run', effect: csrRes });
  });
});
