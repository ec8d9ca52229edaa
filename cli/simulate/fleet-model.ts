import { FaultKind, FaultSpecError, parseFaultSpec, seededRandom } from '../../device-sim/faults.js';

/**
 * The simulated fleet: which device has which of the demo's faults (assigned by the seed, as
 * `rotor demo` assigns them, here by index so a million devices need no names), and how long a
 * device stays away when it drops off. Typed arrays indexed by device.
 */

/** Fault codes (0: none), in FaultKind order. */
const FAULT_KINDS = Object.values(FaultKind);
export const faultCode = (kind: FaultKind): number => FAULT_KINDS.indexOf(kind) + 1;
export const F = {
  Offline: faultCode(FaultKind.Offline),
  OfflineForGood: faultCode(FaultKind.OfflineForGood),
  Slow: faultCode(FaultKind.Slow),
  GarbageCsr: faultCode(FaultKind.GarbageCsr),
  WrongCn: faultCode(FaultKind.WrongCn),
  WeakKey: faultCode(FaultKind.WeakKey),
  ReusedKey: faultCode(FaultKind.ReusedKey),
  CrashAfterCert: faultCode(FaultKind.CrashAfterCert),
  RefuseCert: faultCode(FaultKind.RefuseCert),
  AckOverOld: faultCode(FaultKind.AckOverOld),
  Duplicate: faultCode(FaultKind.Duplicate),
  RestartMidRotation: faultCode(FaultKind.RestartMidRotation),
} as const;

export class FleetSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FleetSpecError';
  }
}

export interface FleetModel {
  fault: Uint8Array;
  /** The fault's duration (offline, slow, restarts), ms. */
  faultMs: Float64Array;
  /**
   * How long a device stays away once it drops off at its first csr_req (that request is lost):
   * the offline fault's duration, or for the offline share an exponential draw; 0: never drops off.
   */
  offlineForS: Float64Array;
}

export function buildFleet(n: number, spec: string, seed: number, offline: { share: number; meanS: number }, random: () => number): FleetModel {
  let entries;
  try {
    entries = parseFaultSpec(spec);
  } catch (error) {
    if (error instanceof FaultSpecError) throw new FleetSpecError(error.message);
    throw error;
  }
  const counts = entries.map((entry) => ('count' in entry.amount ? entry.amount.count : Math.round((entry.amount.percent / 100) * n)));
  const faulty = counts.reduce((a, b) => a + b, 0);
  if (faulty > n) throw new FleetSpecError(`the fault spec asks for ${faulty} faulty devices but the fleet has ${n}`);

  // Fisher–Yates over the device indexes, driven by the seed (device-sim's assignFaults, by index).
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const shuffle = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(shuffle() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  const fault = new Uint8Array(n);
  const faultMs = new Float64Array(n);
  let next = 0;
  entries.forEach((entry, index) => {
    for (let k = 0; k < counts[index]; k++) {
      const d = order[next++];
      fault[d] = faultCode(entry.kind);
      faultMs[d] = entry.durationMs;
    }
  });

  const offlineForS = new Float64Array(n);
  for (let d = 0; d < n; d++) {
    if (fault[d] === F.Offline) offlineForS[d] = faultMs[d] / 1000;
    else if (fault[d] === 0 && random() < offline.share) offlineForS[d] = -offline.meanS * Math.log(1 - random());
  }
  return { fault, faultMs, offlineForS };
}
