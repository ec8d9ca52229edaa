import { FaultKind, FaultSpecError, seededRandom, type Fault } from '../../device-sim/faults.js';
import { CertificateStatus, type IotRegistry } from '../../local/iot/index.js';
import type { FaultInjector } from '../../local/edge/faults.js';

/**
 * Faults the cloud side suffers, for `rotor demo --faults` beside the devices' own (issue 9:
 * show on a fleet that revocations, shared certificates and crashed Lambdas never strand a
 * device, never orphan a certificate and always escalate). They share the device faults'
 * grammar (`kind=amount`) and the seed:
 *
 *   revoke-old=N     an operator revokes the device's old certificate while Rotor waits for the
 *                    ack over the new one: the rotation fails OLD_CERTIFICATE_REVOKED, the new
 *                    certificate is taken down, and the device is cut off on purpose. The device
 *                    also sends its messages late (slow, 1 s) so the revocation lands in that wait.
 *   shared-cert=N    the device's certificate is also attached to a second thing (`<thing>-twin`):
 *                    both rotations are refused with SHARED_CERTIFICATE and nothing changes.
 *   lambda-crash=N   N invocations of the rotation's functions die after one of their AWS calls
 *                    (local/edge/faults.ts crash rules): every step is retried or recovered, so no
 *                    device's outcome changes. Not tied to a device: N counts crashes.
 */
export const CloudFaultKind = {
  RevokeOld: 'revoke-old',
  SharedCert: 'shared-cert',
  LambdaCrash: 'lambda-crash',
} as const;
export type CloudFaultKind = (typeof CloudFaultKind)[keyof typeof CloudFaultKind];

const CLOUD_KINDS: readonly string[] = Object.values(CloudFaultKind);

/** The device fault a revoke-old device also gets, so the revocation lands while Rotor waits for its ack. */
export const REVOKE_OLD_DEVICE_FAULT: Fault = { kind: FaultKind.Slow, durationMs: 1_000 };

/** The functions a rotation's happy path runs, and how many AWS calls each makes at least (a crash lands after one of them). */
export const CRASHABLE_FUNCTIONS: readonly { name: string; minCalls: number }[] = [
  { name: 'request-csr', minCalls: 2 },
  { name: 'issue-certificate', minCalls: 4 },
  { name: 'deliver-certificate', minCalls: 2 },
  { name: 'retire-certificate', minCalls: 4 },
  { name: 'device-message', minCalls: 2 },
];

export interface CloudFaultPlan {
  /** Things whose old certificate is revoked mid-rotation. */
  revokeOld: Set<string>;
  /** Things whose certificate is also attached to `<thing>-twin`. */
  sharedCert: Set<string>;
  /** Crash rules: per function, how many invocations die and after which AWS call. */
  crashes: { function: string; afterAwsCalls: number; times: number }[];
}

export interface SplitSpec {
  /** The spec of the device faults, for device-sim/faults.ts. */
  deviceSpec: string;
  cloud: { kind: CloudFaultKind; amount: { count: number } | { percent: number } }[];
}

/** Separates the cloud kinds from a `--faults` spec; the rest goes to the device simulator's parser. */
export function splitFaultSpec(spec: string): SplitSpec {
  const entries = spec.replace(/\s+/g, '').split(',').filter(Boolean);
  const device: string[] = [];
  const cloud: SplitSpec['cloud'] = [];
  for (const entry of entries) {
    const kind = entry.split('=')[0];
    if (!CLOUD_KINDS.includes(kind)) {
      device.push(entry);
      continue;
    }
    const match = /^([a-z-]+)=(\d+(?:\.\d+)?%?)$/.exec(entry);
    if (!match) throw new FaultSpecError(`fault spec entry ${JSON.stringify(entry)}: ${kind} takes KIND=COUNT or KIND=PERCENT% and no duration`);
    if (cloud.some((c) => c.kind === kind)) throw new FaultSpecError(`fault spec entry ${JSON.stringify(entry)}: ${kind} is listed twice`);
    const amountText = match[2];
    const percent = amountText.endsWith('%') ? Number(amountText.slice(0, -1)) : undefined;
    const amount = percent === undefined ? { count: Number(amountText) } : { percent };
    if (percent !== undefined && percent > 100) throw new FaultSpecError(`fault spec entry ${JSON.stringify(entry)}: more than the whole fleet`);
    cloud.push({ kind: kind as CloudFaultKind, amount });
  }
  return { deviceSpec: device.join(','), cloud };
}

/**
 * Which devices get which cloud fault (devices without a device fault, drawn by the seed), and
 * the crash rules. A revoke-old device is also made slow (REVOKE_OLD_DEVICE_FAULT), added to
 * `deviceFaults`.
 */
export function planCloudFaults(split: SplitSpec, names: readonly string[], deviceFaults: Map<string, Fault>, seed: number): CloudFaultPlan {
  const plan: CloudFaultPlan = { revokeOld: new Set(), sharedCert: new Set(), crashes: [] };
  const random = seededRandom(seed ^ 0x5eed);
  const free = names.filter((name) => !deviceFaults.has(name));
  for (let i = free.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [free[i], free[j]] = [free[j], free[i]];
  }
  const countOf = (amount: SplitSpec['cloud'][number]['amount']): number => ('count' in amount ? amount.count : Math.round((amount.percent / 100) * names.length));
  for (const { kind, amount } of split.cloud) {
    const count = countOf(amount);
    if (kind === CloudFaultKind.LambdaCrash) {
      const perFunction = new Map<string, number>();
      for (let n = 0; n < count; n++) {
        const target = CRASHABLE_FUNCTIONS[Math.floor(random() * CRASHABLE_FUNCTIONS.length)];
        perFunction.set(target.name, (perFunction.get(target.name) ?? 0) + 1);
      }
      for (const [name, times] of perFunction) {
        const target = CRASHABLE_FUNCTIONS.find((f) => f.name === name) as (typeof CRASHABLE_FUNCTIONS)[number];
        plan.crashes.push({ function: name, afterAwsCalls: 1 + Math.floor(random() * target.minCalls), times });
      }
      continue;
    }
    if (count > free.length) throw new FaultSpecError(`the fault spec asks for ${count} ${kind} devices but only ${free.length} devices have no other fault`);
    const chosen = free.splice(0, count);
    for (const name of chosen) {
      if (kind === CloudFaultKind.RevokeOld) {
        plan.revokeOld.add(name);
        deviceFaults.set(name, REVOKE_OLD_DEVICE_FAULT);
      } else plan.sharedCert.add(name);
    }
  }
  return plan;
}

export function twinThingName(thingName: string): string {
  return `${thingName}-twin`;
}

/** Before the audit: the shared certificates are attached to their twins, the crash rules are armed. */
export function armCloudFaults(plan: CloudFaultPlan, registry: IotRegistry, faults: FaultInjector, certificateOf: (thingName: string) => string): void {
  for (const thingName of plan.sharedCert) {
    const twin = twinThingName(thingName);
    registry.createThing(twin);
    registry.attachThingPrincipal(twin, registry.certificateArn(certificateOf(thingName)));
  }
  for (const crash of plan.crashes) faults.crash(crash.function, crash.afterAwsCalls, crash.times);
}

/**
 * During the run: revokes each revoke-old device's old certificate once Rotor has issued the new
 * one (the thing holds two certificates), as an operator reacting to a compromise would. `cutOff`
 * is told first, so the invariant watch knows the device is cut off on purpose.
 */
export class Revoker {
  private readonly waiting: Set<string>;
  private timer: NodeJS.Timeout | undefined;
  readonly revoked: string[] = [];

  constructor(
    private readonly plan: CloudFaultPlan,
    private readonly registry: IotRegistry,
    private readonly certificateOf: (thingName: string) => string,
    private readonly cutOff: (thingName: string) => void,
  ) {
    this.waiting = new Set(plan.revokeOld);
  }

  start(intervalMs = 20): void {
    if (this.waiting.size === 0) return;
    const tick = (): void => {
      for (const thingName of [...this.waiting]) {
        if (this.registry.certificatesOf(thingName).length < 2) continue;
        this.waiting.delete(thingName);
        const old = this.certificateOf(thingName);
        if (this.registry.findCertificate(old)?.status !== CertificateStatus.Active) continue;
        this.cutOff(thingName);
        this.registry.updateCertificate(old, 'REVOKED');
        this.revoked.push(thingName);
      }
      if (this.waiting.size > 0) this.timer = setTimeout(tick, intervalMs);
    };
    this.timer = setTimeout(tick, intervalMs);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
