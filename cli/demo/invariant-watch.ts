import { CertificateStatus, type IotRegistry } from '../../local/iot/index.js';
import { HeldKeyReader, spkiOfCertificate } from './key-holdings.js';

/**
 * PROTOCOL.md cloud rule 7, watched while the fleet rotates: each device holds the private
 * key of at least one ACTIVE certificate attached to its thing. The watcher samples the whole
 * fleet on an interval and re-checks a device the moment one of its certificates stops being
 * ACTIVE or is deleted (the registry's retirement event), so a short-lived breach between two
 * samples is still seen when a certificate change causes it.
 */
export interface WatchedDevice {
  thingName: string;
  stateDir: string;
}

export interface InvariantViolation {
  thingName: string;
  at: string;
  /** What started the check that found it. */
  trigger: 'sample' | 'certificate-retired' | 'key-removed' | 'final';
  detail: string;
}

export interface InvariantWatchOptions {
  registry: IotRegistry;
  devices: readonly WatchedDevice[];
  /** Pause between two slices of the background sweep. */
  intervalMs?: number;
  /**
   * The background sweep goes through the whole fleet once in this long (at least one
   * interval; 10 ms per device by default, so 1,000 devices take 10 s). The sweep is the safety
   * net: every change that can break the invariant also triggers a check of its own (a
   * certificate's retirement, a device removing a key), so it can be slow and cheap.
   */
  passMs?: number;
  now?: () => Date;
}

export interface WatchStats {
  /** Full passes over the fleet (background sweeps completed, and explicit `sample()` calls). */
  samples: number;
  deviceChecks: number;
  retirementChecks: number;
  /** Checks triggered by a device's removal of a key (deleting the old pair, dropping the pending one). */
  keyRemovalChecks: number;
  /**
   * Device checks that read the key store from disk: every `final` one, and those of a device
   * the fleet has not reported keys for. The others use the keys the fleet reported.
   */
  diskChecks: number;
}

/** Checks one device now, reading its key store: undefined when it holds a usable key, the breach otherwise. */
export async function checkDeviceInvariant(registry: IotRegistry, device: WatchedDevice, keys: HeldKeyReader = new HeldKeyReader()): Promise<string | undefined> {
  // Files first, registry second (synchronously, one instant): the device never drops a key
  // before the cloud has made another one usable, so this order cannot report a false breach.
  return invariantBreach(registry, device.thingName, await keys.read(device.stateDir));
}

/** Rule 7 for a device holding these keys (base64 DER SPKIs), against the registry as it is now. */
export function invariantBreach(registry: IotRegistry, thingName: string, keySpkis: ReadonlySet<string>): string | undefined {
  const certificates = registry.certificatesOf(thingName);
  const active = certificates.filter((c) => c.status === CertificateStatus.Active);
  if (active.some((c) => keySpkis.has(spkiOfCertificate(c.certificatePem)))) return undefined;
  const attached = certificates.map((c) => `${c.certificateId.slice(0, 12)}…=${c.status}`).join(', ') || 'none';
  return `holds ${keySpkis.size} private key(s), none of an ACTIVE certificate attached to the thing (attached: ${attached})`;
}

export class InvariantWatcher {
  readonly violations: InvariantViolation[] = [];
  readonly stats: WatchStats = { samples: 0, deviceChecks: 0, retirementChecks: 0, keyRemovalChecks: 0, diskChecks: 0 };
  private readonly byThing = new Map<string, WatchedDevice>();
  private readonly fleet: WatchedDevice[];
  /** certificate id → thing, learnt from the registry so a deleted certificate still names its device. */
  private readonly thingOfCertificate = new Map<string, string>();
  /** One report per device and kind of breach is enough; the list stays readable. */
  private readonly reported = new Set<string>();
  private readonly pendingChecks = new Set<Promise<void>>();
  /** Devices with an event-triggered check queued but not started: more events before it starts add nothing. */
  private readonly queued = new Set<string>();
  private readonly keys = new HeldKeyReader();
  /** thing → the keys its key store last reported holding (device-sim/key-store.ts HeldKeysObserver). */
  private readonly held = new Map<string, ReadonlySet<string>>();
  /** Devices an operator cut off on purpose (their certificate revoked): rule 7 no longer applies to them. */
  private readonly exempt = new Set<string>();
  /** Where the background sweep goes on from. */
  private cursor = 0;
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;
  private unsubscribe: (() => void) | undefined;
  private stopped = true;
  private readonly now: () => Date;

  constructor(private readonly options: InvariantWatchOptions) {
    for (const device of options.devices) this.byThing.set(device.thingName, device);
    this.fleet = [...this.byThing.values()];
    this.now = options.now ?? (() => new Date());
  }

  start(): void {
    this.stopped = false;
    this.learnCertificates();
    this.unsubscribe = this.options.registry.onRetired((certificateId) => this.onRetired(certificateId));
    this.schedule(0);
  }

  /** Stops sampling and waits for the checks in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.sampling;
    await Promise.all([...this.pendingChecks]);
  }

  /** Resolves once the sample and the checks in flight have finished (the watch goes on). */
  async idle(): Promise<void> {
    while (this.sampling || this.pendingChecks.size > 0) {
      await this.sampling;
      await Promise.all([...this.pendingChecks]);
    }
  }

  /** One pass over the whole fleet (also what `final` checks use). */
  async sample(trigger: InvariantViolation['trigger'] = 'sample'): Promise<void> {
    this.learnCertificates();
    this.stats.samples++;
    await this.checkAll(this.fleet, trigger);
  }

  /**
   * An operator is about to revoke the device's certificate: from now on it is cut off on
   * purpose, and holding no usable key is the intended outcome, not a stranded device. Called
   * before the revocation, so no check in between can report it.
   */
  cutOff(thingName: string): void {
    this.exempt.add(thingName);
  }

  /**
   * The keys the device's store now holds, as it reported them after a change (a key is reported
   * once durable on disk, a removal once the file is gone). From then on the watcher's checks of
   * that device use this instead of reading the store; a removal is followed by `keysRemoved`,
   * whose check sees it. `final` checks still read every store from disk.
   */
  heldKeys(thingName: string, spkis: readonly string[]): void {
    if (this.byThing.has(thingName)) this.held.set(thingName, new Set(spkis));
  }

  /**
   * Every device whose keys were reported holds at most one key: none is between creating a new
   * key and deleting its old one (or dropping the pending one). A device deletes its old key only
   * after `crt_done`, which the cloud sends as the execution ends, so the demo waits for this
   * before it stops the watcher: the last removals are then checked, not dropped.
   */
  settled(): boolean {
    for (const keys of this.held.values()) if (keys.size > 1) return false;
    return true;
  }

  /** The device removed a key from its store: check it as soon as the write is done. */
  keysRemoved(thingName: string): void {
    if (this.stopped) return;
    const device = this.byThing.get(thingName);
    if (!device) return;
    this.stats.keyRemovalChecks++;
    this.checkSoon(device, 'key-removed');
  }

  private async checkAll(devices: readonly WatchedDevice[], trigger: InvariantViolation['trigger']): Promise<void> {
    // A few devices at a time: enough to keep the disk busy without starving the event loop.
    const queue = [...devices];
    const workers = Array.from({ length: Math.min(16, queue.length) }, async () => {
      for (let device = queue.shift(); device; device = queue.shift()) await this.check(device, trigger);
    });
    await Promise.all(workers);
  }

  /** The background sweep: a slice of the fleet per interval, so no tick holds the event loop for long. */
  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const intervalMs = this.options.intervalMs ?? 150;
      const passMs = Math.max(intervalMs, this.options.passMs ?? this.fleet.length * 10);
      const size = Math.max(1, Math.ceil((this.fleet.length * intervalMs) / passMs));
      if (this.cursor === 0) this.learnCertificates();
      const slice = this.fleet.slice(this.cursor, this.cursor + size);
      this.cursor += slice.length;
      const completesPass = this.cursor >= this.fleet.length;
      if (completesPass) this.cursor = 0;
      const started = Date.now();
      this.sampling = this.checkAll(slice, 'sample').finally(() => {
        this.sampling = undefined;
        if (completesPass) this.stats.samples++;
        // A slice that took longer than the interval stretches the pause: the watcher must not slow the run it watches.
        this.schedule(Math.max(intervalMs, Date.now() - started));
      });
    }, delayMs);
  }

  private learnCertificates(): void {
    for (const thingName of this.byThing.keys()) {
      for (const certificate of this.options.registry.certificatesOf(thingName)) this.thingOfCertificate.set(certificate.certificateId, thingName);
    }
  }

  private onRetired(certificateId: string): void {
    if (this.stopped) return;
    // Called inside the registry's mutation: learn what is attached now, check on the next tick.
    const thingName = this.thingOfCertificate.get(certificateId) ?? this.options.registry.principalThings(this.options.registry.certificateArn(certificateId))[0];
    const device = thingName ? this.byThing.get(thingName) : undefined;
    if (!device) return;
    this.stats.retirementChecks++;
    this.checkSoon(device, 'certificate-retired');
  }

  /** Checks the device on the next tick; a check already queued (not yet started) covers this event too. */
  private checkSoon(device: WatchedDevice, trigger: InvariantViolation['trigger']): void {
    if (this.queued.has(device.thingName)) return;
    this.queued.add(device.thingName);
    const check = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => {
        this.queued.delete(device.thingName);
        return this.check(device, trigger);
      })
      .finally(() => this.pendingChecks.delete(check));
    this.pendingChecks.add(check);
  }

  private async check(device: WatchedDevice, trigger: InvariantViolation['trigger']): Promise<void> {
    if (this.exempt.has(device.thingName)) return;
    this.stats.deviceChecks++;
    let breach: string | undefined;
    try {
      const reported = trigger === 'final' ? undefined : this.held.get(device.thingName);
      if (reported) breach = invariantBreach(this.options.registry, device.thingName, reported);
      else {
        this.stats.diskChecks++;
        breach = await checkDeviceInvariant(this.options.registry, device, this.keys);
      }
    } catch (error) {
      breach = `could not be checked: ${(error as Error).message}`;
    }
    // Cut off while this check was reading: the revocation, not a stranding.
    if (breach === undefined || this.exempt.has(device.thingName)) return;
    const key = `${device.thingName}\u0000${breach}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.violations.push({ thingName: device.thingName, at: this.now().toISOString(), trigger, detail: breach });
  }
}
