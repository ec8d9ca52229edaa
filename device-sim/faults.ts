import { MessageType } from '../domain/index.js';
import { KeyAlgorithm } from './keys.js';
import type { DeviceEvent, DeviceState, Effect } from './reducer.js';

/**
 * Fault injection: what a misbehaving device does, applied around the reducer — to the
 * events going in and the effects coming out — so the protocol logic stays the reference.
 *
 * Grammar of a fleet fault spec (whitespace ignored):
 *
 *     spec     := entry ("," entry)*
 *     entry    := kind "=" amount [":" duration]
 *     amount   := integer            number of devices, e.g. 2
 *               | number "%"         share of the fleet, rounded to the nearest device, e.g. 10%
 *     duration := number ("ms"|"s"|"m")   for offline, slow, crash-after-cert, restart-mid-rotation
 *
 * e.g. `offline=2:20s,slow=10%:3s,garbage-csr=1,duplicate=5%`. A device gets at most one
 * fault; which devices get which is decided by the seed alone (same seed, same fleet, same
 * assignment).
 */
export const FaultKind = {
  /** Goes offline when the first csr_req arrives (the request is lost) and comes back after the duration. */
  Offline: 'offline',
  /** Goes offline when the first csr_req arrives and never comes back. */
  OfflineForGood: 'offline-for-good',
  /** Every publish is sent after the duration. */
  Slow: 'slow',
  /** The csr_res carries a PEM block that is not a CSR. */
  GarbageCsr: 'garbage-csr',
  /** The CSR's subject CN is not the thing name. */
  WrongCn: 'wrong-cn',
  /** The new key is RSA-1024. */
  WeakKey: 'weak-key',
  /** The CSR is made from the current key instead of a new one. */
  ReusedKey: 'reused-key',
  /** The process dies after storing the certificate, before acking; it restarts after the duration. */
  CrashAfterCert: 'crash-after-cert',
  /** The device will not use the certificate it receives: it answers crt_err. */
  RefuseCert: 'refuse-cert',
  /** The ack goes out over a connection made with the old certificate. */
  AckOverOld: 'ack-over-old',
  /** Every message the device publishes is sent twice. */
  Duplicate: 'duplicate',
  /** The process dies right after sending its CSR; it restarts after the duration. */
  RestartMidRotation: 'restart-mid-rotation',
  /** Protocol v1.2: the device will not take a server trust bundle: it answers trust_err and keeps the old one. */
  RefuseBundle: 'refuse-bundle',
} as const;
export type FaultKind = (typeof FaultKind)[keyof typeof FaultKind];

const FAULT_KINDS: readonly string[] = Object.values(FaultKind);

const DEFAULT_DURATION_MS: Partial<Record<FaultKind, number>> = {
  [FaultKind.Offline]: 30_000,
  [FaultKind.Slow]: 5_000,
  [FaultKind.CrashAfterCert]: 3_000,
  [FaultKind.RestartMidRotation]: 3_000,
};

export interface Fault {
  kind: FaultKind;
  /** How long (offline, slow, restart delay); 0 for kinds without a duration. */
  durationMs: number;
}

export type FaultAmount = { count: number } | { percent: number };

export interface FaultSpecEntry {
  kind: FaultKind;
  amount: FaultAmount;
  durationMs: number;
}

export class FaultSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FaultSpecError';
  }
}

export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (!match) throw new FaultSpecError(`duration ${JSON.stringify(text)} is not a number followed by ms, s or m (e.g. 500ms, 20s, 2m)`);
  const value = Number(match[1]);
  const unit = match[2] === 'ms' ? 1 : match[2] === 's' ? 1_000 : 60_000;
  return Math.round(value * unit);
}

function parseKind(text: string): FaultKind {
  if (!FAULT_KINDS.includes(text)) {
    throw new FaultSpecError(`unknown fault ${JSON.stringify(text)}; known faults: ${FAULT_KINDS.join(', ')}`);
  }
  return text as FaultKind;
}

function durationFor(kind: FaultKind, text: string | undefined, where: string): number {
  const fallback = DEFAULT_DURATION_MS[kind];
  if (text === undefined) return fallback ?? 0;
  if (fallback === undefined) throw new FaultSpecError(`${where}: ${kind} takes no duration`);
  return parseDuration(text);
}

/** One fault for one device: `KIND[:DURATION]` (the CLI's --fault). */
export function parseFault(text: string): Fault {
  const [kindText, durationText, extra] = text.trim().split(':');
  if (extra !== undefined) throw new FaultSpecError(`fault ${JSON.stringify(text)} has more than one ":"`);
  const kind = parseKind(kindText);
  return { kind, durationMs: durationFor(kind, durationText, text) };
}

export function parseFaultSpec(spec: string): FaultSpecEntry[] {
  const text = spec.replace(/\s+/g, '');
  if (text === '') return [];
  const seen = new Set<FaultKind>();
  return text.split(',').map((entry, index) => {
    const where = `fault spec entry ${index + 1} (${JSON.stringify(entry)})`;
    const match = /^([a-z-]+)=([^:]+)(?::(.+))?$/.exec(entry);
    if (!match) throw new FaultSpecError(`${where}: expected KIND=COUNT or KIND=PERCENT%, optionally :DURATION`);
    const kind = parseKind(match[1]);
    if (seen.has(kind)) throw new FaultSpecError(`${where}: ${kind} is listed twice`);
    seen.add(kind);
    let amount: FaultAmount;
    const amountText = match[2];
    if (/^\d+$/.test(amountText)) amount = { count: Number(amountText) };
    else if (/^\d+(\.\d+)?%$/.test(amountText)) {
      const percent = Number(amountText.slice(0, -1));
      if (percent > 100) throw new FaultSpecError(`${where}: ${percent}% is more than the whole fleet`);
      amount = { percent };
    } else throw new FaultSpecError(`${where}: amount ${JSON.stringify(amountText)} is neither a count nor a percentage`);
    return { kind, amount, durationMs: durationFor(kind, match[3], where) };
  });
}

/** Small, fast, seedable PRNG (mulberry32): the assignment must be reproducible, not secret. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Which device gets which fault. Devices not in the map behave. */
export function assignFaults(entries: readonly FaultSpecEntry[], thingNames: readonly string[], seed: number): Map<string, Fault> {
  const counts = entries.map((entry) =>
    'count' in entry.amount ? entry.amount.count : Math.round((entry.amount.percent / 100) * thingNames.length),
  );
  const total = counts.reduce((a, b) => a + b, 0);
  if (total > thingNames.length) {
    throw new FaultSpecError(`the fault spec asks for ${total} faulty devices but the fleet has ${thingNames.length}`);
  }
  // Fisher-Yates over the device order, driven by the seed.
  const order = [...thingNames];
  const random = seededRandom(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const assigned = new Map<string, Fault>();
  let next = 0;
  entries.forEach((entry, index) => {
    for (let n = 0; n < counts[index]; n++) assigned.set(order[next++], { kind: entry.kind, durationMs: entry.durationMs });
  });
  return assigned;
}

// --- applying a fault ---

/** What the agent does with an incoming event. */
export type EventDecision =
  | { action: 'deliver' }
  /** Lose the event and drop off the network; come back after `forMs` (never when undefined). */
  | { action: 'goOffline'; forMs?: number };

/** What the agent does with an effect the reducer asked for. */
export type EffectDecision =
  | {
      action: 'run';
      effect: Effect;
      delayMs?: number;
      times?: number;
      /** After running it, the process dies and restarts after this long. */
      thenCrashForMs?: number;
    }
  /** The process dies instead of running it; restarts after `restartAfterMs`. */
  | { action: 'crash'; restartAfterMs: number }
  /** The effect fails: the agent feeds this event to the reducer instead. */
  | { action: 'fail'; event: DeviceEvent };

export interface FaultHooks {
  readonly fault?: Fault;
  onEvent(event: DeviceEvent, state: DeviceState): EventDecision;
  onEffect(effect: Effect, state: DeviceState): EffectDecision;
}

/** A device without faults. */
export const NO_FAULTS: FaultHooks = {
  onEvent: () => ({ action: 'deliver' }),
  onEffect: (effect) => ({ action: 'run', effect }),
};

export const GARBAGE_CSR = '-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY2VydGlmaWNhdGUgcmVxdWVzdA==\n-----END CERTIFICATE REQUEST-----\n';

/**
 * The hooks of one fault. One-shot faults (offline, crashes) fire once per device lifetime so
 * the device can finish the retried rotation; behavioural ones (slow, duplicate, bad CSRs)
 * stay on, as a broken firmware would.
 */
export function faultHooks(fault: Fault | undefined): FaultHooks {
  if (!fault) return NO_FAULTS;
  let fired = false;
  const once = (): boolean => {
    if (fired) return false;
    fired = true;
    return true;
  };
  return {
    fault,
    onEvent(event) {
      const isCsrRequest = event.type === 'messageReceived' && event.messageType === MessageType.CsrRequest;
      if (isCsrRequest && fault.kind === FaultKind.Offline && once()) return { action: 'goOffline', forMs: fault.durationMs };
      if (isCsrRequest && fault.kind === FaultKind.OfflineForGood && once()) return { action: 'goOffline' };
      return { action: 'deliver' };
    },
    onEffect(effect, state) {
      switch (fault.kind) {
        case FaultKind.Slow:
          return effect.type === 'publish' ? { action: 'run', effect, delayMs: fault.durationMs } : { action: 'run', effect };
        case FaultKind.Duplicate:
          return effect.type === 'publish' ? { action: 'run', effect, times: 2 } : { action: 'run', effect };
        case FaultKind.GarbageCsr:
          if (effect.type === 'publish' && effect.message.type === MessageType.CsrResponse) {
            return { action: 'run', effect: { ...effect, message: { ...effect.message, body: { ...effect.message.body, CSR: GARBAGE_CSR } } } };
          }
          return { action: 'run', effect };
        case FaultKind.WrongCn:
          return effect.type === 'makeCsr' ? { action: 'run', effect: { ...effect, commonName: `${effect.commonName}-impostor` } } : { action: 'run', effect };
        case FaultKind.WeakKey:
          return effect.type === 'generateKey' ? { action: 'run', effect: { ...effect, algorithm: KeyAlgorithm.Rsa1024 } } : { action: 'run', effect };
        case FaultKind.ReusedKey:
          return effect.type === 'generateKey' ? { action: 'run', effect: { ...effect, source: 'current' } } : { action: 'run', effect };
        case FaultKind.CrashAfterCert:
          // The certificate is on disk, the switch to the new pair is next: die before the ack.
          if (effect.type === 'connect' && effect.pair === 'pending' && state.rotation.status === 'switching' && once()) {
            return { action: 'crash', restartAfterMs: fault.durationMs };
          }
          return { action: 'run', effect };
        case FaultKind.RefuseCert:
          if (effect.type === 'storePending') {
            return { action: 'fail', event: { type: 'certificateStoreFailed', rotationId: effect.rotationId, error: 'refused by fault injection' } };
          }
          return { action: 'run', effect };
        case FaultKind.AckOverOld:
          if (effect.type === 'connect' && effect.pair === 'pending') return { action: 'run', effect: { ...effect, credentialsOf: 'current' } };
          return { action: 'run', effect };
        case FaultKind.RestartMidRotation:
          if (effect.type === 'publish' && effect.message.type === MessageType.CsrResponse && once()) {
            return { action: 'run', effect, thenCrashForMs: fault.durationMs };
          }
          return { action: 'run', effect };
        case FaultKind.RefuseBundle:
          if (effect.type === 'storeBundle') {
            return { action: 'fail', event: { type: 'bundleStoreFailed', rotationId: effect.rotationId, error: 'refused by fault injection' } };
          }
          return { action: 'run', effect };
        case FaultKind.Offline:
        case FaultKind.OfflineForGood:
          return { action: 'run', effect };
      }
    },
  };
}
