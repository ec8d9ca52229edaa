import {
  DeviceErrorCode,
  MessageType,
  parseCloudMessage,
  type CertificateAck,
  type CertificateError,
  type CsrResponse,
  type DeviceMessage,
  parseTrustBundle,
  parseTrustRequest,
  TrustErrorCode,
  TrustMessageType,
  type TrustAck,
  type TrustError,
  type TrustDeviceMessage,
} from '../domain/index.js';
import { publicKeySpkiOfCertificate, type KeyAlgorithm } from './keys.js';
import type { PendingRotation } from './key-store.js';

/**
 * The device side of PROTOCOL.md as a pure reducer: `reduce(state, event, now)` returns the
 * next state and the effects to run, as data. Nothing here does I/O or reads a clock, so every
 * rule — and every fault, which wraps the effects from outside — is tested on plain values.
 *
 * The state has two independent parts, each a union keyed on `status`: the MQTT connection
 * (which key pair it uses) and the rotation in flight (how far the device got).
 */

/** Which stored key pair a connection presents. */
export type Pair = 'current' | 'pending';
/** Protocol v1.2: which stored server trust bundle a connection verifies the server with. */
export type BundleSlot = 'current' | 'pending';

export type ConnectionState =
  | { status: 'offline' }
  | {
      status: 'connecting';
      pair: Pair;
      attempt: number;
      /** Set once the current pair was refused since boot: the pending pair is then never dropped. */
      currentRefused: boolean;
      /** v1.2: set while the server is being verified with the pending trust bundle. */
      bundle?: BundleSlot;
    }
  | { status: 'connected'; pair: Pair };

interface RotationBase {
  /** '' for a blog-era cloud that sends no rotationId. */
  rotationId: string;
  startedAt: string;
}
interface WithKey extends RotationBase {
  /** Base64 DER SPKI of the pending key. */
  publicKeySpki: string;
}

export type RotationState =
  | { status: 'idle' }
  | ({ status: 'generatingKey' } & RotationBase)
  | ({ status: 'makingCsr' } & WithKey)
  | ({ status: 'awaitingCertificate'; csrPem: string } & WithKey)
  | ({ status: 'storingCertificate'; csrPem: string; certificateId: string } & WithKey)
  /** The certificate is stored as pending; the device is moving onto the pending pair to ack. */
  | ({ status: 'switching'; certificateId: string } & WithKey)
  /** crt_ack went out over the pending pair; the old key is kept until crt_done. */
  | ({ status: 'awaitingDone'; certificateId: string } & WithKey)
  /** The pending pair was refused and dropped; crt_err goes out once connected with current. */
  | ({ status: 'reportingError'; error: string } & RotationBase);

export type RotationStatus = RotationState['status'];

/** Protocol v1.2: the server trust-store update in flight, independent of the rotation (rule T7). */
interface TrustBase {
  rotationId: string;
  bundleId: string;
}
export type TrustState =
  | { status: 'idle' }
  /** The bundle is being written beside the current one. */
  | ({ status: 'storingBundle' } & TrustBase)
  /** Reconnecting with the current pair, verifying the server with the pending bundle only (T3). */
  | ({ status: 'verifying' } & TrustBase)
  /** The pending bundle failed and was dropped; trust_err goes out once connected with the current one (T4). */
  | ({ status: 'reportingError'; code: TrustErrorCode; error: string } & TrustBase);

export interface DeviceState {
  thingName: string;
  keyAlgorithm: KeyAlgorithm;
  connection: ConnectionState;
  rotation: RotationState;
  /** Rotations that ended here (newest last), so late duplicates are told apart from stale ids. */
  finished: readonly string[];
  /** The id of the current certificate (protocol v1.1: a csr_req naming another one is refused). Unknown: not checked. */
  currentCertificateId?: string;
  /** Protocol v1.2: whether this device takes trust_req. A v1/v1.1 device ignores it. */
  trustUpdates: boolean;
  trust: TrustState;
  /** The bundleId of the current server trust bundle, when the device knows it. */
  currentBundleId?: string;
}

/** What the key store holds at boot, as the reducer needs it. */
export interface StoredSummary {
  current: boolean;
  /** The id (SHA-256 of the DER) of the current certificate, when one is stored. */
  currentCertificateId?: string;
  pending?: { rotation: PendingRotation; csrPem?: string; hasCertificate: boolean };
  /** v1.2: the bundleId of the current trust bundle, if one was pushed and stored. */
  currentBundleId?: string;
  /** v1.2: a pending trust bundle left by a reboot (rule T6: dropped). */
  pendingBundle?: { rotationId: string; bundleId: string };
}

export type DeviceEvent =
  | { type: 'started'; stored: StoredSummary }
  | { type: 'connected'; pair: Pair; bundle?: BundleSlot }
  /** `refused`: the server rejected the pair (TLS alert, CONNACK refusal), or the device the server; otherwise the network failed. */
  | { type: 'connectFailed'; pair: Pair; reason: string; refused: boolean; bundle?: BundleSlot }
  | { type: 'connectionLost'; pair: Pair; reason: string }
  /** A message on one of the device's topics; `messageType` is the last topic level. */
  | { type: 'messageReceived'; messageType: string; payload: string }
  | { type: 'keyGenerated'; rotationId: string; publicKeySpki: string }
  | { type: 'keyGenerationFailed'; rotationId: string; error: string }
  | { type: 'csrMade'; rotationId: string; csrPem: string }
  | { type: 'certificateStored'; rotationId: string }
  | { type: 'certificateStoreFailed'; rotationId: string; error: string }
  | { type: 'bundleStored'; rotationId: string }
  | { type: 'bundleStoreFailed'; rotationId: string; error: string };

export type ReportKind =
  | 'rotationStarted'
  | 'csrSent'
  | 'certificateReceived'
  | 'acked'
  | 'rotated'
  | 'aborted'
  | 'certificateRefused'
  /** Protocol v1.1: a csr_req named a certificate this device does not hold; it answered crt_err. */
  | 'notHeld'
  | 'stranded'
  /** Protocol v1.2: the new trust bundle verified the server and is current. */
  | 'trustUpdated'
  /** Protocol v1.2: the device answered trust_err and kept its old bundle. */
  | 'trustRefused';

/** Progress the agent turns into metrics and the fleet into counts. */
export interface RotationReport {
  kind: ReportKind;
  rotationId: string;
  at: string;
  detail?: string;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type Effect =
  /**
   * Close the present connection and, after `delayMs`, connect presenting the keys of
   * `credentialsOf` (default: `pair`). Only fault injection sets `credentialsOf`: the
   * reducer always connects with the pair it names.
   */
  | { type: 'connect'; pair: Pair; delayMs: number; credentialsOf?: Pair; bundle?: BundleSlot }
  | { type: 'publish'; message: DeviceMessage | TrustDeviceMessage }
  /** `source: 'current'` re-uses the current key (fault injection only). */
  | { type: 'generateKey'; rotationId: string; startedAt: string; algorithm: KeyAlgorithm; source: 'new' | 'current' }
  | { type: 'makeCsr'; rotationId: string; commonName: string }
  | { type: 'storePending'; rotationId: string; certificateId: string; certificatePem: string }
  | { type: 'promotePending'; rotationId: string }
  | { type: 'deleteOldKey' }
  | { type: 'dropPending'; rotationId: string }
  /** v1.2: write the bundle beside the current one (T2). */
  | { type: 'storeBundle'; rotationId: string; bundleId: string; bundlePem: string }
  /** v1.2: pending bundle → current, atomically; the old one is deleted (T3). */
  | { type: 'promoteBundle'; rotationId: string; bundleId: string }
  | { type: 'dropBundle'; rotationId: string }
  | { type: 'log'; level: LogLevel; message: string; rotationId?: string }
  | { type: 'report'; report: RotationReport };

export interface Transition {
  state: DeviceState;
  effects: Effect[];
}

/** Backoff of reconnect attempts: 1 s, 2 s, 4 s … capped. */
export const RECONNECT_BASE_MS = 1_000;
export const RECONNECT_MAX_MS = 30_000;
/** With no usable pair, try again rarely: an operator may re-activate a certificate. */
export const STRANDED_RETRY_MS = 60_000;
/** Network failures (not refusals) tolerated on the pending pair before it counts as refused. */
export const PENDING_NETWORK_ATTEMPTS = 4;
const FINISHED_MEMORY = 16;

export function initialState(thingName: string, keyAlgorithm: KeyAlgorithm, options: { trustUpdates?: boolean } = {}): DeviceState {
  return {
    thingName,
    keyAlgorithm,
    connection: { status: 'offline' },
    rotation: { status: 'idle' },
    finished: [],
    trustUpdates: options.trustUpdates ?? true,
    trust: { status: 'idle' },
  };
}

export function backoffMs(attempt: number): number {
  return Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.max(0, attempt - 1));
}

// --- effect constructors (keep the message shapes in one place) ---

function withRotationId(rotationId: string): { rotationId?: string } {
  // A blog-era cloud sent no id; the device answers the same way it was asked.
  return rotationId === '' ? {} : { rotationId };
}

function publishCsr(rotationId: string, csrPem: string): Effect {
  const body: CsrResponse = { ...withRotationId(rotationId), CSR: csrPem };
  return { type: 'publish', message: { type: MessageType.CsrResponse, body } };
}

function publishAck(rotationId: string): Effect {
  const body: CertificateAck = withRotationId(rotationId);
  return { type: 'publish', message: { type: MessageType.CertificateAck, body } };
}

function publishError(rotationId: string, error: string): Effect {
  const body: CertificateError = { ...withRotationId(rotationId), error };
  return { type: 'publish', message: { type: MessageType.CertificateError, body } };
}

function log(level: LogLevel, message: string, rotationId?: string): Effect {
  return { type: 'log', level, message, ...(rotationId === undefined ? {} : { rotationId }) };
}

function report(kind: ReportKind, rotationId: string, now: Date, detail?: string): Effect {
  return { type: 'report', report: { kind, rotationId, at: now.toISOString(), ...(detail === undefined ? {} : { detail }) } };
}

function connect(pair: Pair, delayMs = 0): Effect {
  return { type: 'connect', pair, delayMs };
}

function label(rotationId: string): string {
  return rotationId === '' ? '(no rotationId)' : rotationId;
}

function finish(state: DeviceState, rotationId: string): readonly string[] {
  if (rotationId === '') return state.finished;
  return [...state.finished.filter((id) => id !== rotationId), rotationId].slice(-FINISHED_MEMORY);
}

/** PROTOCOL.md: an id that is present and differs from the rotation in flight marks a stale message. */
function matches(rotation: RotationState, rotationId: string): boolean {
  return rotation.status !== 'idle' && (rotationId === '' || rotationId === rotation.rotationId);
}

/** The rotation holds a certificate stored as pending. */
function hasPendingCertificate(rotation: RotationState): rotation is Extract<RotationState, { status: 'switching' | 'awaitingDone' }> {
  return rotation.status === 'switching' || rotation.status === 'awaitingDone';
}

/** The key pair the connection uses (or is trying), if any. */
function connectionPair(connection: ConnectionState): Pair | undefined {
  return connection.status === 'offline' ? undefined : connection.pair;
}

function connecting(pair: Pair, attempt = 1, currentRefused = false): ConnectionState {
  return { status: 'connecting', pair, attempt, currentRefused };
}

function ignore(state: DeviceState, level: LogLevel, message: string, rotationId?: string): Transition {
  return { state, effects: [log(level, message, rotationId)] };
}

export function reduce(state: DeviceState, event: DeviceEvent, now: Date): Transition {
  switch (event.type) {
    case 'started':
      return onStarted(state, event.stored, now);
    case 'connected':
      return onConnected(state, event.pair, now, event.bundle);
    case 'connectFailed':
      return onConnectFailed(state, event, now);
    case 'connectionLost':
      return onConnectionLost(state, event);
    case 'messageReceived':
      return onMessage(state, event.messageType, event.payload, now);
    case 'keyGenerated':
      return onKeyGenerated(state, event);
    case 'keyGenerationFailed':
      return onKeyGenerationFailed(state, event);
    case 'csrMade':
      return onCsrMade(state, event, now);
    case 'certificateStored':
      return onCertificateStored(state, event);
    case 'certificateStoreFailed':
      return onCertificateStoreFailed(state, event, now);
    case 'bundleStored':
      return onBundleStored(state, event);
    case 'bundleStoreFailed':
      return onBundleStoreFailed(state, event, now);
  }
}

function onStarted(booted: DeviceState, stored: StoredSummary, now: Date): Transition {
  let state: DeviceState = stored.currentCertificateId ? { ...booted, currentCertificateId: stored.currentCertificateId } : booted;
  if (stored.currentBundleId) state = { ...state, currentBundleId: stored.currentBundleId };
  const pending = stored.pending;
  const effects: Effect[] = [];
  if (stored.pendingBundle) {
    // Rule T6: a bundle never acked is dropped; the cloud asks again.
    effects.push(
      log('info', `dropping trust bundle ${stored.pendingBundle.bundleId} left pending by a restart`, stored.pendingBundle.rotationId),
      { type: 'dropBundle', rotationId: stored.pendingBundle.rotationId },
    );
  }
  let rotation: RotationState = { status: 'idle' };
  if (pending) {
    const base = { rotationId: pending.rotation.rotationId, startedAt: pending.rotation.startedAt, publicKeySpki: pending.rotation.publicKeySpki };
    if (pending.hasCertificate && pending.rotation.certificateId) {
      // The certificate arrived before the reboot; the ack may not have gone out. Acking
      // again is harmless: the cloud answers a finished rotation's ack with nothing or abort.
      rotation = { status: 'switching', ...base, certificateId: pending.rotation.certificateId };
    } else if (pending.csrPem) {
      rotation = { status: 'awaitingCertificate', ...base, csrPem: pending.csrPem };
    } else {
      rotation = { status: 'makingCsr', ...base };
      effects.push({ type: 'makeCsr', rotationId: base.rotationId, commonName: state.thingName });
    }
    effects.push(log('info', `resuming rotation ${label(base.rotationId)} at ${rotation.status}`, base.rotationId));
  }
  if (stored.current) {
    // Rule 5: after a reboot the current pair comes first, whatever is pending.
    return { state: { ...state, rotation, connection: connecting('current') }, effects: [...effects, connect('current')] };
  }
  if (hasPendingCertificate(rotation)) {
    return {
      state: { ...state, rotation, connection: connecting('pending', 1, true) },
      effects: [...effects, log('warn', 'no current pair stored; trying the pending pair'), connect('pending')],
    };
  }
  return {
    state: { ...state, rotation, connection: { status: 'offline' } },
    effects: [...effects, log('error', 'no usable key pair is stored: the device cannot connect'), report('stranded', '', now, 'no key pair')],
  };
}

function onConnected(state: DeviceState, pair: Pair, now: Date, bundle: BundleSlot = 'current'): Transition {
  const trusted = onTrustConnected(state, pair, bundle, now);
  if (trusted) return trusted;
  const next: DeviceState = { ...state, connection: { status: 'connected', pair } };
  const effects: Effect[] = [log('info', `connected with the ${pair} pair`)];
  const rotation = state.rotation;
  switch (rotation.status) {
    case 'switching':
      if (pair === 'pending') {
        effects.push(publishAck(rotation.rotationId), report('acked', rotation.rotationId, now));
        return { state: { ...next, rotation: { ...rotation, status: 'awaitingDone' } }, effects };
      }
      // Booted on the current pair with a certificate pending: finish the switch.
      effects.push(connect('pending'));
      return { state: { ...next, connection: connecting('pending') }, effects };
    case 'awaitingDone':
      // Back after a lost connection on the new pair: the first ack may not have arrived.
      if (pair === 'pending') effects.push(publishAck(rotation.rotationId));
      return { state: next, effects };
    case 'reportingError':
      effects.push(
        publishError(rotation.rotationId, rotation.error),
        report('certificateRefused', rotation.rotationId, now, rotation.error),
      );
      return { state: { ...next, rotation: { status: 'idle' }, finished: finish(state, rotation.rotationId) }, effects };
    default:
      return { state: next, effects };
  }
}

function onConnectFailed(state: DeviceState, event: Extract<DeviceEvent, { type: 'connectFailed' }>, now: Date): Transition {
  const connection = state.connection;
  if (connection.status !== 'connecting' || connection.pair !== event.pair || (connection.bundle ?? 'current') !== (event.bundle ?? 'current')) {
    return ignore(state, 'debug', `late connect failure of the ${event.pair} pair ignored: ${event.reason}`);
  }
  if (connection.bundle === 'pending') return onPendingBundleFailed(state, connection, event);
  const refusedNow = event.refused || (event.pair === 'pending' && connection.attempt >= PENDING_NETWORK_ATTEMPTS);
  if (!refusedNow) {
    const attempt = connection.attempt + 1;
    const delay = backoffMs(connection.attempt);
    return {
      state: { ...state, connection: { ...connection, attempt } },
      effects: [log('warn', `could not reach the server with the ${event.pair} pair (${event.reason}); retrying in ${delay} ms`), connect(event.pair, delay)],
    };
  }

  const rotation = state.rotation;
  if (event.pair === 'current') {
    if (hasPendingCertificate(rotation)) {
      // Rule 5: the current pair is refused and a pending pair exists: try it.
      return {
        state: { ...state, connection: connecting('pending', 1, true) },
        effects: [log('warn', `the current pair was refused (${event.reason}); trying the pending pair`, rotation.rotationId), connect('pending')],
      };
    }
    return {
      state: { ...state, connection: connecting('current', connection.attempt + 1, true) },
      effects: [
        log('error', `the current pair was refused (${event.reason}) and no pending certificate exists`),
        report('stranded', rotation.status === 'idle' ? '' : rotation.rotationId, now, event.reason),
        connect('current', STRANDED_RETRY_MS),
      ],
    };
  }

  // The pending pair was refused.
  if (connection.currentRefused) {
    // Both pairs refused: dropping either could throw away the only key that will work once
    // the server side recovers, so keep both and alternate slowly.
    return {
      state: { ...state, connection: connecting('current', 1, false) },
      effects: [log('error', `both pairs were refused (pending: ${event.reason}); keeping both and retrying`), connect('current', STRANDED_RETRY_MS)],
    };
  }
  if (rotation.status === 'switching' || rotation.status === 'awaitingDone') {
    const error = `the new certificate was refused by the server: ${event.reason}`;
    // Rule 2 and 4: drop the pending pair, go back to the current one and say so.
    return {
      state: { ...state, connection: connecting('current'), rotation: { status: 'reportingError', rotationId: rotation.rotationId, startedAt: rotation.startedAt, error } },
      effects: [log('warn', error, rotation.rotationId), { type: 'dropPending', rotationId: rotation.rotationId }, connect('current')],
    };
  }
  return { state: { ...state, connection: connecting('current') }, effects: [log('warn', `the pending pair was refused (${event.reason})`), connect('current')] };
}

function onConnectionLost(state: DeviceState, event: Extract<DeviceEvent, { type: 'connectionLost' }>): Transition {
  const connection = state.connection;
  if (connection.status !== 'connected' || connection.pair !== event.pair) {
    return ignore(state, 'debug', `loss of an old ${event.pair} connection ignored`);
  }
  return {
    state: { ...state, connection: connecting(event.pair) },
    effects: [log('warn', `connection lost (${event.reason}); reconnecting with the ${event.pair} pair`), connect(event.pair, RECONNECT_BASE_MS)],
  };
}

function onMessage(state: DeviceState, messageType: string, payload: string, now: Date): Transition {
  if (messageType === TrustMessageType.TrustRequest) return onTrustRequest(state, payload, now);
  const parsed = parseCloudMessage(messageType, payload);
  if (!parsed.ok) return ignore(state, 'warn', `ignored a ${messageType} message: ${parsed.error}`);
  const message = parsed.value;
  switch (message.type) {
    case MessageType.CsrRequest:
      return onCsrRequest(state, message.body.rotationId, message.body.certificateId, now);
    case MessageType.CertificateResponse:
      return onCertificateResponse(state, message.body.rotationId, message.body.certificateId, message.body.certificatePem, now);
    case MessageType.RotationDone:
      return onRotationDone(state, message.body.rotationId, now);
    case MessageType.Abort:
      return onAbort(state, message.body.rotationId, message.body.reason, now);
  }
}

function startRotation(state: DeviceState, rotationId: string, now: Date, prior: Effect[] = []): Transition {
  const startedAt = now.toISOString();
  return {
    state: { ...state, rotation: { status: 'generatingKey', rotationId, startedAt } },
    effects: [
      ...prior,
      log('info', `csr_req received: generating a ${state.keyAlgorithm} key`, rotationId),
      report('rotationStarted', rotationId, now),
      { type: 'generateKey', rotationId, startedAt, algorithm: state.keyAlgorithm, source: 'new' },
    ],
  };
}

/** The certificates whose private key this device holds: the current one and a pending one. */
function heldCertificates(state: DeviceState): string[] {
  const held = state.currentCertificateId ? [state.currentCertificateId] : [];
  if (hasPendingCertificate(state.rotation)) held.push(state.rotation.certificateId);
  return held;
}

/**
 * Protocol v1.1 device rule 6: a csr_req that names a certificate this device does not hold
 * is answered with crt_err, and nothing is touched — no key is made, none is dropped. The
 * cloud is about to rotate a certificate that is not this device's; rotating it would end in
 * crt_done making the device delete the key it actually uses.
 */
function refuseNotHeld(state: DeviceState, rotationId: string, certificateId: string, now: Date): Transition {
  const error = `${DeviceErrorCode.CertificateNotHeld}: csr_req names certificate ${certificateId}, which this device does not hold`;
  return {
    state,
    effects: [log('warn', error, rotationId), publishError(rotationId, error), report('notHeld', rotationId, now, certificateId)],
  };
}

function onCsrRequest(state: DeviceState, rotationId: string, certificateId: string | undefined, now: Date): Transition {
  const rotation = state.rotation;
  const repeated = rotation.status !== 'idle' && rotationId === rotation.rotationId;
  if (!repeated && certificateId !== undefined && state.currentCertificateId !== undefined && !heldCertificates(state).includes(certificateId)) {
    if (rotationId !== '' && state.finished.includes(rotationId)) return ignore(state, 'info', 'csr_req of a rotation that already ended ignored', rotationId);
    return refuseNotHeld(state, rotationId, certificateId, now);
  }
  if (rotation.status === 'idle') {
    if (rotationId !== '' && state.finished.includes(rotationId)) {
      return ignore(state, 'info', 'csr_req of a rotation that already ended ignored', rotationId);
    }
    return startRotation(state, rotationId, now);
  }
  if (rotationId === rotation.rotationId) {
    switch (rotation.status) {
      case 'generatingKey':
      case 'makingCsr':
        return ignore(state, 'info', 'repeated csr_req: the CSR is being made', rotationId);
      case 'awaitingCertificate':
        // Rule 1: the same rotation gets the same CSR, never a second key.
        return { state, effects: [log('info', 'repeated csr_req: re-sending the same CSR', rotationId), publishCsr(rotationId, rotation.csrPem)] };
      default:
        return ignore(state, 'info', `csr_req repeated after the certificate arrived (${rotation.status}) ignored`, rotationId);
    }
  }
  // A csr_req for another rotation: the cloud runs one rotation per thing at a time, so the
  // one in flight here ended without this device hearing how.
  if (rotation.status === 'awaitingDone' && state.connection.status === 'connected' && state.connection.pair === 'pending') {
    // This connection is authenticated with the pending certificate, so it is ACTIVE: the
    // crt_done was lost. Keeping the old key would keep the one the cloud retired.
    const prior: Effect[] = [
      log('warn', `new rotation ${label(rotationId)} while waiting for crt_done: the pending pair is in use, making it current`, rotation.rotationId),
      { type: 'promotePending', rotationId: rotation.rotationId },
      { type: 'deleteOldKey' },
      report('rotated', rotation.rotationId, now, 'implicit: crt_done not received'),
    ];
    const promoted: DeviceState = {
      ...state,
      connection: { status: 'connected', pair: 'current' },
      finished: finish(state, rotation.rotationId),
      currentCertificateId: rotation.certificateId,
    };
    return startRotation(promoted, rotationId, now, prior);
  }
  const prior: Effect[] = [
    log('warn', `new rotation ${label(rotationId)} replaces ${label(rotation.rotationId)} (${rotation.status}); dropping its pending pair`, rotation.rotationId),
    { type: 'dropPending', rotationId: rotation.rotationId },
    report('aborted', rotation.rotationId, now, 'superseded by a new rotation'),
  ];
  const effectsForConnection: Effect[] = connectionPair(state.connection) === 'pending' ? [connect('current')] : [];
  const base: DeviceState = {
    ...state,
    finished: finish(state, rotation.rotationId),
    connection: effectsForConnection.length ? connecting('current') : state.connection,
  };
  const started = startRotation(base, rotationId, now, prior);
  return { state: started.state, effects: [...started.effects, ...effectsForConnection] };
}

function onCertificateResponse(state: DeviceState, rotationId: string, certificateId: string, certificatePem: string, now: Date): Transition {
  const rotation = state.rotation;
  if (!matches(rotation, rotationId) || rotation.status === 'idle') {
    const why = rotationId !== '' && state.finished.includes(rotationId) ? 'of a rotation that already ended' : 'for no rotation in flight';
    return ignore(state, 'warn', `crt_res ${why} ignored`, rotationId);
  }
  switch (rotation.status) {
    case 'awaitingCertificate': {
      const spki = publicKeySpkiOfCertificate(certificatePem);
      if (spki === undefined) return ignore(state, 'warn', 'crt_res ignored: certificatePem is not a certificate', rotation.rotationId);
      if (spki !== rotation.publicKeySpki) {
        return ignore(state, 'warn', `crt_res ignored: certificate ${certificateId} is not for the pending key`, rotation.rotationId);
      }
      return {
        state: { ...state, rotation: { ...rotation, status: 'storingCertificate', certificateId } },
        effects: [
          log('info', `certificate ${certificateId} received; storing it as pending`, rotation.rotationId),
          report('certificateReceived', rotation.rotationId, now, certificateId),
          { type: 'storePending', rotationId: rotation.rotationId, certificateId, certificatePem },
        ],
      };
    }
    case 'awaitingDone':
      if (state.connection.status === 'connected' && state.connection.pair === 'pending' && certificateId === rotation.certificateId) {
        return { state, effects: [log('info', 'repeated crt_res: acking again', rotation.rotationId), publishAck(rotation.rotationId)] };
      }
      return ignore(state, 'info', 'repeated crt_res ignored', rotation.rotationId);
    case 'generatingKey':
    case 'makingCsr':
      return ignore(state, 'warn', 'crt_res before the CSR was sent ignored', rotation.rotationId);
    default:
      return ignore(state, 'info', `repeated crt_res ignored (${rotation.status})`, rotation.rotationId);
  }
}

function onRotationDone(state: DeviceState, rotationId: string, now: Date): Transition {
  const rotation = state.rotation;
  if (!matches(rotation, rotationId)) {
    const why = rotationId !== '' && state.finished.includes(rotationId) ? 'repeated crt_done ignored' : 'crt_done for no rotation in flight ignored';
    return ignore(state, 'info', why, rotationId);
  }
  if (!hasPendingCertificate(rotation)) {
    return ignore(state, 'warn', `crt_done ignored: no certificate is pending (${rotation.status})`, rotationId);
  }
  // Rule 3: only now does the new pair become current and the old key go.
  const connection: ConnectionState =
    state.connection.status === 'offline' ? state.connection : { ...state.connection, pair: 'current' } as ConnectionState;
  return {
    state: { ...state, connection, rotation: { status: 'idle' }, finished: finish(state, rotation.rotationId), currentCertificateId: rotation.certificateId },
    effects: [
      log('info', `crt_done: certificate ${rotation.certificateId} is now current; deleting the old key`, rotation.rotationId),
      { type: 'promotePending', rotationId: rotation.rotationId },
      { type: 'deleteOldKey' },
      report('rotated', rotation.rotationId, now, rotation.certificateId),
    ],
  };
}

function onAbort(state: DeviceState, rotationId: string, reason: string, now: Date): Transition {
  const rotation = state.rotation;
  if (!matches(rotation, rotationId) || rotation.status === 'idle') {
    const why = rotationId !== '' && state.finished.includes(rotationId) ? 'repeated abort ignored' : 'abort for no rotation in flight ignored';
    return ignore(state, 'info', why, rotationId);
  }
  // Rule 4: drop the pending pair, keep (or go back to) the current one.
  const effects: Effect[] = [
    log('warn', `abort: ${reason || 'no reason given'}; dropping the pending pair`, rotation.rotationId),
    { type: 'dropPending', rotationId: rotation.rotationId },
    report('aborted', rotation.rotationId, now, reason),
  ];
  let connection = state.connection;
  if (connectionPair(connection) === 'pending') {
    connection = connecting('current');
    effects.push(connect('current'));
  }
  return { state: { ...state, connection, rotation: { status: 'idle' }, finished: finish(state, rotation.rotationId) }, effects };
}

function onKeyGenerated(state: DeviceState, event: Extract<DeviceEvent, { type: 'keyGenerated' }>): Transition {
  const rotation = state.rotation;
  if (rotation.status !== 'generatingKey' || rotation.rotationId !== event.rotationId) {
    return {
      state,
      effects: [log('info', 'a key finished after its rotation ended; dropping it', event.rotationId), { type: 'dropPending', rotationId: event.rotationId }],
    };
  }
  return {
    state: { ...state, rotation: { ...rotation, status: 'makingCsr', publicKeySpki: event.publicKeySpki } },
    effects: [{ type: 'makeCsr', rotationId: rotation.rotationId, commonName: state.thingName }],
  };
}

function onKeyGenerationFailed(state: DeviceState, event: Extract<DeviceEvent, { type: 'keyGenerationFailed' }>): Transition {
  const rotation = state.rotation;
  if ((rotation.status !== 'generatingKey' && rotation.status !== 'makingCsr') || rotation.rotationId !== event.rotationId) {
    return ignore(state, 'warn', `key generation of an ended rotation failed: ${event.error}`, event.rotationId);
  }
  // Nothing is sent: the cloud asks again (csr_req retry) and the device tries again then.
  return {
    state: { ...state, rotation: { status: 'idle' } },
    effects: [log('error', `could not make a key and CSR: ${event.error}`, event.rotationId), { type: 'dropPending', rotationId: event.rotationId }],
  };
}

function onCsrMade(state: DeviceState, event: Extract<DeviceEvent, { type: 'csrMade' }>, now: Date): Transition {
  const rotation = state.rotation;
  if (rotation.status !== 'makingCsr' || rotation.rotationId !== event.rotationId) {
    return ignore(state, 'info', 'a CSR finished after its rotation ended; not sent', event.rotationId);
  }
  return {
    state: { ...state, rotation: { ...rotation, status: 'awaitingCertificate', csrPem: event.csrPem } },
    effects: [publishCsr(rotation.rotationId, event.csrPem), report('csrSent', rotation.rotationId, now)],
  };
}

function onCertificateStored(state: DeviceState, event: Extract<DeviceEvent, { type: 'certificateStored' }>): Transition {
  const rotation = state.rotation;
  if (rotation.status !== 'storingCertificate' || rotation.rotationId !== event.rotationId) {
    return ignore(state, 'info', 'a certificate was stored after its rotation ended', event.rotationId);
  }
  // Rule 2: disconnect and come back with the new pair; the ack goes over that connection.
  return {
    state: {
      ...state,
      connection: connecting('pending'),
      rotation: { status: 'switching', rotationId: rotation.rotationId, startedAt: rotation.startedAt, publicKeySpki: rotation.publicKeySpki, certificateId: rotation.certificateId },
    },
    effects: [log('info', 'reconnecting with the pending pair', rotation.rotationId), connect('pending')],
  };
}

function onCertificateStoreFailed(state: DeviceState, event: Extract<DeviceEvent, { type: 'certificateStoreFailed' }>, now: Date): Transition {
  const rotation = state.rotation;
  if (rotation.status !== 'storingCertificate' || rotation.rotationId !== event.rotationId) {
    return ignore(state, 'warn', `storing a certificate of an ended rotation failed: ${event.error}`, event.rotationId);
  }
  const error = `the device could not store the new certificate: ${event.error}`;
  return {
    state: { ...state, rotation: { status: 'idle' }, finished: finish(state, rotation.rotationId) },
    effects: [
      log('error', error, rotation.rotationId),
      { type: 'dropPending', rotationId: rotation.rotationId },
      publishError(rotation.rotationId, error),
      report('certificateRefused', rotation.rotationId, now, error),
    ],
  };
}

// --- Protocol v1.2: the server trust-store update (docs/protocol.md, rules T1–T7) ---

function publishTrustAck(rotationId: string, bundleId: string): Effect {
  const body: TrustAck = { rotationId, bundleId };
  return { type: 'publish', message: { type: TrustMessageType.TrustAck, body } };
}

function publishTrustError(rotationId: string, bundleId: string, code: TrustErrorCode, error: string): Effect {
  const body: TrustError = { rotationId, bundleId, code, error };
  return { type: 'publish', message: { type: TrustMessageType.TrustError, body } };
}

function refuseTrust(state: DeviceState, rotationId: string, bundleId: string, code: TrustErrorCode, error: string, now: Date): Transition {
  return {
    state,
    effects: [log('warn', `trust_req refused: ${code}: ${error}`, rotationId), publishTrustError(rotationId, bundleId, code, error), report('trustRefused', rotationId, now, `${code}: ${error}`)],
  };
}

function onTrustRequest(state: DeviceState, payload: string, now: Date): Transition {
  // A v1/v1.1 device does not know the message type: it ignores it and keeps rotating.
  if (!state.trustUpdates) return ignore(state, 'debug', 'trust_req ignored: this device does not take trust-store updates');
  const parsed = parseTrustRequest(payload);
  if (!parsed.ok) return ignore(state, 'warn', `ignored a trust_req message: ${parsed.error}`);
  const { rotationId, bundleId, bundle } = parsed.value;
  const trust = state.trust;
  // Rule T5: idempotent on the bundleId.
  if (bundleId === state.currentBundleId && trust.status === 'idle') {
    if (state.connection.status !== 'connected' || state.connection.pair !== 'current') {
      return ignore(state, 'info', 'repeated trust_req of the current bundle: answered once connected with the current pair', rotationId);
    }
    return { state, effects: [log('info', 'repeated trust_req: the bundle is already current; acking again', rotationId), publishTrustAck(rotationId, bundleId)] };
  }
  if (trust.status !== 'idle') {
    if (trust.bundleId === bundleId) return ignore(state, 'info', `repeated trust_req while ${trust.status}: its answer is coming`, rotationId);
    return refuseTrust(state, rotationId, bundleId, TrustErrorCode.Busy, `trust update ${trust.rotationId} is in flight`, now);
  }
  if (state.rotation.status !== 'idle') {
    return refuseTrust(state, rotationId, bundleId, TrustErrorCode.Busy, `certificate rotation ${label(state.rotation.rotationId)} is in flight`, now);
  }
  // Rule T1: a bundle that is not usable, or is not the one named, changes nothing.
  const checked = parseTrustBundle(bundle, now);
  if (!checked.ok) return refuseTrust(state, rotationId, bundleId, TrustErrorCode.BundleInvalid, checked.error, now);
  if (checked.value.bundleId !== bundleId) {
    return refuseTrust(state, rotationId, bundleId, TrustErrorCode.BundleInvalid, `bundleId ${bundleId} does not match the bundle (${checked.value.bundleId})`, now);
  }
  // Rule T2: stored beside the current bundle, never over it.
  return {
    state: { ...state, trust: { status: 'storingBundle', rotationId, bundleId } },
    effects: [
      log('info', `trust_req: storing bundle ${bundleId} (${checked.value.certificates.length} CA certificates) as pending`, rotationId),
      // Stored as the parsed certificates' PEM, one block per line: TLS stacks refuse glued blocks.
      { type: 'storeBundle', rotationId, bundleId, bundlePem: checked.value.certificates.map((c) => c.pem).join('') },
    ],
  };
}

function onBundleStored(state: DeviceState, event: Extract<DeviceEvent, { type: 'bundleStored' }>): Transition {
  const trust = state.trust;
  if (trust.status !== 'storingBundle' || trust.rotationId !== event.rotationId) {
    return ignore(state, 'info', 'a trust bundle was stored after its update ended', event.rotationId);
  }
  // Rule T3: reconnect with the current pair, verifying the server with the pending bundle only.
  return {
    state: { ...state, trust: { ...trust, status: 'verifying' }, connection: { status: 'connecting', pair: 'current', attempt: 1, currentRefused: false, bundle: 'pending' } },
    effects: [log('info', 'reconnecting to verify the server with the pending bundle', trust.rotationId), { type: 'connect', pair: 'current', delayMs: 0, bundle: 'pending' }],
  };
}

function onBundleStoreFailed(state: DeviceState, event: Extract<DeviceEvent, { type: 'bundleStoreFailed' }>, now: Date): Transition {
  const trust = state.trust;
  if (trust.status !== 'storingBundle' || trust.rotationId !== event.rotationId) {
    return ignore(state, 'warn', `storing a trust bundle of an ended update failed: ${event.error}`, event.rotationId);
  }
  const refused = refuseTrust(state, trust.rotationId, trust.bundleId, TrustErrorCode.StorageFailed, `the device could not store the bundle: ${event.error}`, now);
  return { state: { ...state, trust: { status: 'idle' } }, effects: [...refused.effects, { type: 'dropBundle', rotationId: trust.rotationId }] };
}

/** The trust-update part of a successful connect; undefined when the update is not concerned. */
function onTrustConnected(state: DeviceState, pair: Pair, bundle: BundleSlot, now: Date): Transition | undefined {
  const trust = state.trust;
  if (trust.status === 'verifying' && bundle === 'pending') {
    // Rule T3: the server was verified with the new bundle: ack over this connection, then make it current.
    return {
      state: { ...state, connection: { status: 'connected', pair }, trust: { status: 'idle' }, currentBundleId: trust.bundleId },
      effects: [
        log('info', `connected verifying the server with bundle ${trust.bundleId}; acking and making it current`, trust.rotationId),
        publishTrustAck(trust.rotationId, trust.bundleId),
        { type: 'promoteBundle', rotationId: trust.rotationId, bundleId: trust.bundleId },
        report('trustUpdated', trust.rotationId, now, trust.bundleId),
      ],
    };
  }
  if (trust.status === 'reportingError' && bundle === 'current') {
    // Rule T4: back on the old bundle; the error goes over this connection.
    return {
      state: { ...state, connection: { status: 'connected', pair }, trust: { status: 'idle' } },
      effects: [
        log('info', `connected with the ${pair} pair and the current bundle`),
        publishTrustError(trust.rotationId, trust.bundleId, trust.code, trust.error),
        report('trustRefused', trust.rotationId, now, `${trust.code}: ${trust.error}`),
      ],
    };
  }
  return undefined;
}

function onPendingBundleFailed(
  state: DeviceState,
  connection: Extract<ConnectionState, { status: 'connecting' }>,
  event: Extract<DeviceEvent, { type: 'connectFailed' }>,
): Transition {
  const trust = state.trust;
  const refusedNow = event.refused || connection.attempt >= PENDING_NETWORK_ATTEMPTS;
  if (!refusedNow) {
    const delay = backoffMs(connection.attempt);
    return {
      state: { ...state, connection: { ...connection, attempt: connection.attempt + 1 } },
      effects: [
        log('warn', `could not reach the server with the pending bundle (${event.reason}); retrying in ${delay} ms`),
        { type: 'connect', pair: connection.pair, delayMs: delay, bundle: 'pending' },
      ],
    };
  }
  // Rule T4: drop the pending bundle, go back to the current one, report once connected.
  const effects: Effect[] = [log('warn', `the server could not be verified with the pending bundle (${event.reason}); going back to the current bundle`)];
  let next: DeviceState = { ...state, connection: connecting(connection.pair) };
  if (trust.status === 'verifying') {
    const error = `could not connect verifying the server with bundle ${trust.bundleId}: ${event.reason}`;
    next = { ...next, trust: { status: 'reportingError', rotationId: trust.rotationId, bundleId: trust.bundleId, code: TrustErrorCode.ConnectFailed, error } };
    effects.push({ type: 'dropBundle', rotationId: trust.rotationId });
  }
  effects.push(connect(connection.pair));
  return { state: next, effects };
}
