import { CLOUD_TO_DEVICE, parseTopic, parseTrustTopic, topicFor, TrustMessageType, trustTopicFor, type CloudToDeviceType } from '../domain/index.js';
import { NO_FAULTS, type FaultHooks } from './faults.js';
import type { KeyStore, KeyStoreSnapshot, StoredPair } from './key-store.js';
import { certificateIdOfPem, createCsrPem, DEFAULT_KEY_ALGORITHM, generatePrivateKeyPem, publicKeySpkiOfPrivateKey, type KeyAlgorithm } from './keys.js';
import { initialState, reduce, type DeviceEvent, type DeviceState, type Effect, type LogLevel, type RotationReport, type StoredSummary } from './reducer.js';
import type { Transport, TransportHandlers } from './transport.js';
import type { TrustSnapshot, TrustStore } from './trust-store.js';

/** Time, injected so tests and the local runtime's scaled clock drive the device. */
export interface AgentClock {
  now(): Date;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: AgentClock = {
  now: () => new Date(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface LogEntry {
  at: string;
  level: LogLevel;
  thingName: string;
  message: string;
  rotationId?: string;
}

/** Timestamps for the demo's figures: when the last rotation started and how it ended. */
export interface AgentMetrics {
  rotationsStarted: number;
  rotationsCompleted: number;
  rotationsFailed: number;
  lastStartedAt?: string;
  lastFinishedAt?: string;
  lastOutcome?: 'rotated' | 'aborted' | 'certificateRefused' | 'notHeld';
}

export interface AgentOptions {
  thingName: string;
  keyAlgorithm?: KeyAlgorithm;
  keyStore: KeyStore;
  /** Builds the transport; the agent hands it the handlers for messages and lost connections. */
  transport: (handlers: TransportHandlers) => Transport;
  clock?: AgentClock;
  faults?: FaultHooks;
  onLog?: (entry: LogEntry) => void;
  onReport?: (report: RotationReport & { thingName: string }) => void;
  /**
   * After every key store write that may have removed a private key (an observer re-checks
   * what the device holds; a key added can never break PROTOCOL.md cloud rule 7).
   */
  onKeysRemoved?: (thingName: string) => void;
  /** Entries kept in `eventLog`. */
  logCapacity?: number;
  /**
   * Protocol v1.2: where the server trust bundles are kept. A device given one takes trust_req;
   * without one it is a v1.1 device and ignores it.
   */
  trustStore?: TrustStore;
}

const FINAL_REPORTS = new Set(['rotated', 'aborted', 'certificateRefused', 'notHeld']);

/**
 * Runs one device: feeds events to the reducer one at a time and carries out the effects it
 * returns against the key store and the transport, with the fault hooks in between.
 */
export class DeviceAgent {
  readonly eventLog: LogEntry[] = [];
  readonly metrics: AgentMetrics = { rotationsStarted: 0, rotationsCompleted: 0, rotationsFailed: 0 };

  private state: DeviceState;
  private readonly clock: AgentClock;
  private readonly faults: FaultHooks;
  private readonly transport: Transport;
  private readonly queue: DeviceEvent[] = [];
  private draining = false;
  /** Bumped by every crash and stop: work started in an earlier life reports to no one. */
  private life = 0;
  private connectAttempt = 0;
  private connectTimer: unknown;
  private readonly timers = new Set<unknown>();
  private storeChain: Promise<unknown> = Promise.resolve();
  private offlineUntil = 0;
  private running = false;
  /**
   * The pending pair as this life last wrote it to the key store, so that making the CSR and
   * connecting with the new pair do not read back what was just written (a full key store
   * load is ~30 file operations). Writes still go to disk first; this is set only after the
   * write succeeded and is forgotten on any other change, any failure, and every crash.
   */
  private written: { rotationId: string; keyPem: string; certPem?: string } | undefined;

  constructor(private readonly options: AgentOptions) {
    this.clock = options.clock ?? systemClock;
    this.faults = options.faults ?? NO_FAULTS;
    this.state = initialState(options.thingName, options.keyAlgorithm ?? DEFAULT_KEY_ALGORITHM, { trustUpdates: options.trustStore !== undefined });
    this.transport = options.transport({
      onMessage: (topic, payload) => this.onMessage(topic, payload),
      onConnectionLost: (reason) => {
        const c = this.state.connection;
        if (c.status === 'connected') this.dispatch({ type: 'connectionLost', pair: c.pair, reason });
      },
    });
  }

  get thingName(): string {
    return this.options.thingName;
  }

  /** A copy of the reducer's state, for tests and the demo's status view. */
  get snapshot(): DeviceState {
    return this.state;
  }

  /** Boots: reads the key store and connects (current pair first, PROTOCOL.md device rule 5). */
  async start(): Promise<void> {
    this.running = true;
    const life = this.life;
    const snapshot = await this.store(() => this.options.keyStore.load());
    for (const note of snapshot.repaired) this.log('warn', `key store: ${note}`);
    if (snapshot.repaired.length > 0) this.keysRemoved();
    const trustStore = this.options.trustStore;
    const trust: TrustSnapshot = trustStore
      ? await this.store(() => trustStore.load()).catch((error: Error): TrustSnapshot => {
          this.log('error', `trust store: ${error.message}`);
          return {};
        })
      : {};
    if (life !== this.life) return;
    const stored = summarize(snapshot);
    this.dispatch({
      type: 'started',
      stored: {
        ...stored,
        ...(trust.current ? { currentBundleId: trust.current.bundleId } : {}),
        ...(trust.pending ? { pendingBundle: { rotationId: trust.pending.rotationId, bundleId: trust.pending.bundleId } } : {}),
      },
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    this.life++;
    this.written = undefined;
    this.clearTimers();
    this.queue.length = 0;
    await this.transport.close();
    await this.storeChain.catch(() => undefined);
  }

  /** The process "dies": no clean disconnect, memory lost, disk kept; it boots again later. */
  async crash(restartAfterMs: number): Promise<void> {
    this.log('warn', `simulated crash; restarting in ${restartAfterMs} ms`);
    this.life++;
    this.written = undefined;
    this.clearTimers();
    this.queue.length = 0;
    await this.transport.close(true);
    await this.storeChain.catch(() => undefined);
    this.state = initialState(this.state.thingName, this.state.keyAlgorithm);
    this.later(restartAfterMs, () => {
      if (this.running) void this.start();
    });
  }

  dispatch(event: DeviceEvent): void {
    this.queue.push(event);
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        const event = this.queue.shift() as DeviceEvent;
        const decision = this.faults.onEvent(event, this.state);
        if (decision.action === 'goOffline') {
          await this.goOffline(decision.forMs);
          continue;
        }
        const { state, effects } = reduce(this.state, event, this.clock.now());
        this.state = state;
        const life = this.life;
        for (const effect of effects) {
          if (life !== this.life) break;
          await this.apply(effect);
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private async apply(effect: Effect): Promise<void> {
    const decision = this.faults.onEffect(effect, this.state);
    switch (decision.action) {
      case 'crash':
        await this.crash(decision.restartAfterMs);
        return;
      case 'fail':
        this.dispatch(decision.event);
        return;
      case 'run': {
        const times = decision.times ?? 1;
        for (let i = 0; i < times; i++) {
          if (decision.delayMs) {
            const life = this.life;
            this.later(decision.delayMs, () => {
              if (life === this.life) void this.run(decision.effect);
            });
          } else await this.run(decision.effect);
        }
        if (decision.thenCrashForMs !== undefined) await this.crash(decision.thenCrashForMs);
      }
    }
  }

  private async run(effect: Effect): Promise<void> {
    const life = this.life;
    const keyStore = this.options.keyStore;
    switch (effect.type) {
      case 'log':
        this.log(effect.level, effect.message, effect.rotationId);
        return;
      case 'report':
        this.onReport(effect.report);
        return;
      case 'connect':
        await this.connect(effect);
        return;
      case 'publish': {
        const type = effect.message.type;
        const topic = type === TrustMessageType.TrustAck || type === TrustMessageType.TrustError
          ? trustTopicFor(this.options.thingName, type)
          : topicFor(this.options.thingName, type);
        // Not awaited: a PUBACK must not hold up the next message; errors are logged.
        this.transport.publish(topic, JSON.stringify(effect.message.body)).then(
          () => this.log('debug', `published ${effect.message.type}`, effect.message.body.rotationId),
          (error: Error) => this.log('warn', `could not publish ${effect.message.type}: ${error.message}`, effect.message.body.rotationId),
        );
        return;
      }
      case 'generateKey':
        // In the background: RSA keys take long enough to matter, and messages keep flowing.
        void (async () => {
          try {
            let keyPem: string;
            if (effect.source === 'current') {
              const current = (await this.store(() => keyStore.load())).current;
              if (!current) throw new Error('no current key to re-use');
              keyPem = current.keyPem;
            } else keyPem = await generatePrivateKeyPem(effect.algorithm);
            const publicKeySpki = publicKeySpkiOfPrivateKey(keyPem);
            this.written = undefined;
            await this.store(() =>
              keyStore.createPending({ rotationId: effect.rotationId, startedAt: effect.startedAt, keyAlgorithm: effect.algorithm, publicKeySpki }, keyPem),
            );
            if (life === this.life) this.written = { rotationId: effect.rotationId, keyPem };
            this.dispatchIn(life, { type: 'keyGenerated', rotationId: effect.rotationId, publicKeySpki });
          } catch (error) {
            this.dispatchIn(life, { type: 'keyGenerationFailed', rotationId: effect.rotationId, error: (error as Error).message });
          }
        })();
        return;
      case 'makeCsr':
        void (async () => {
          try {
            const written = this.written?.rotationId === effect.rotationId ? this.written : undefined;
            let keyPem = written?.keyPem;
            if (keyPem === undefined) {
              const pending = (await this.store(() => keyStore.load())).pending;
              if (!pending || pending.rotation.rotationId !== effect.rotationId) throw new Error('the pending key is gone');
              keyPem = pending.keyPem;
            }
            const csrPem = await createCsrPem(keyPem, effect.commonName);
            await this.store(() => keyStore.storePendingCsr(effect.rotationId, csrPem));
            this.dispatchIn(life, { type: 'csrMade', rotationId: effect.rotationId, csrPem });
          } catch (error) {
            this.dispatchIn(life, { type: 'keyGenerationFailed', rotationId: effect.rotationId, error: (error as Error).message });
          }
        })();
        return;
      case 'storePending':
        try {
          const written = this.written?.rotationId === effect.rotationId ? this.written : undefined;
          this.written = undefined;
          await this.store(() => keyStore.storePendingCertificate(effect.rotationId, effect.certificatePem, effect.certificateId));
          if (written && life === this.life) this.written = { ...written, certPem: effect.certificatePem };
          this.dispatchIn(life, { type: 'certificateStored', rotationId: effect.rotationId });
        } catch (error) {
          this.dispatchIn(life, { type: 'certificateStoreFailed', rotationId: effect.rotationId, error: (error as Error).message });
        }
        return;
      case 'promotePending':
        this.written = undefined;
        await this.storeOrLog(() => keyStore.promotePending(effect.rotationId), 'promote the pending pair', effect.rotationId);
        return;
      case 'deleteOldKey':
        await this.storeOrLog(() => keyStore.deleteOldKey(), 'delete the old key');
        this.keysRemoved();
        return;
      case 'dropPending':
        this.written = undefined;
        await this.storeOrLog(() => keyStore.dropPending(effect.rotationId), 'drop the pending pair', effect.rotationId);
        this.keysRemoved();
        return;
      case 'storeBundle': {
        const trustStore = this.options.trustStore;
        try {
          if (!trustStore) throw new Error('this device has no trust store');
          await this.store(() => trustStore.storePending({ rotationId: effect.rotationId, bundleId: effect.bundleId, pem: effect.bundlePem }));
          this.dispatchIn(life, { type: 'bundleStored', rotationId: effect.rotationId });
        } catch (error) {
          this.dispatchIn(life, { type: 'bundleStoreFailed', rotationId: effect.rotationId, error: (error as Error).message });
        }
        return;
      }
      case 'promoteBundle': {
        const trustStore = this.options.trustStore;
        if (trustStore) await this.storeOrLog(() => trustStore.promotePending(effect.rotationId), 'make the pending trust bundle current', effect.rotationId);
        return;
      }
      case 'dropBundle': {
        const trustStore = this.options.trustStore;
        if (trustStore) await this.storeOrLog(() => trustStore.dropPending(effect.rotationId), 'drop the pending trust bundle', effect.rotationId);
        return;
      }
    }
  }

  private async connect(effect: Extract<Effect, { type: 'connect' }>): Promise<void> {
    const attempt = ++this.connectAttempt;
    if (this.connectTimer !== undefined) this.clock.clearTimeout(this.connectTimer);
    this.timers.delete(this.connectTimer);
    this.connectTimer = undefined;
    await this.transport.close();
    if (this.offlineUntil === Infinity) return;
    const delay = Math.max(effect.delayMs, this.offlineUntil - this.clock.now().getTime(), 0);
    const life = this.life;
    this.connectTimer = this.later(delay, () => {
      void (async () => {
        const credentialsOf = effect.credentialsOf ?? effect.pair;
        let credentials: StoredPair | undefined;
        const written = this.written;
        try {
          if (credentialsOf === 'pending' && written?.certPem !== undefined) {
            // Wait for the writes queued before this connect, then use what they wrote.
            await this.store(async () => undefined);
            if (this.written === written) credentials = { keyPem: written.keyPem, certPem: written.certPem };
          }
          if (!credentials) {
            const snapshot = await this.store(() => this.options.keyStore.load());
            credentials = credentialsOf === 'current' ? snapshot.current : pendingPair(snapshot);
          }
        } catch (error) {
          this.log('error', `could not read the ${credentialsOf} pair: ${(error as Error).message}`);
        }
        // Protocol v1.2: the bundle the server is verified with (none stored: the provisioned one).
        const bundle = effect.bundle ?? 'current';
        const withBundle = effect.bundle === undefined ? {} : { bundle: effect.bundle };
        let caPem: string | undefined;
        let bundleMissing = false;
        const trustStore = this.options.trustStore;
        if (trustStore) {
          try {
            const trust = await this.store(() => trustStore.load());
            caPem = trust[bundle]?.pem;
          } catch (error) {
            this.log('error', `could not read the ${bundle} trust bundle: ${(error as Error).message}`);
          }
          bundleMissing = bundle === 'pending' && caPem === undefined;
        }
        if (attempt !== this.connectAttempt || life !== this.life) return;
        if (!credentials || bundleMissing) {
          const reason = credentials ? 'no pending trust bundle is stored' : `no ${credentialsOf} pair is stored`;
          this.dispatchIn(life, { type: 'connectFailed', pair: effect.pair, reason, refused: true, ...withBundle });
          return;
        }
        try {
          await this.transport.connect(credentials, caPem);
          if (attempt === this.connectAttempt) this.dispatchIn(life, { type: 'connected', pair: effect.pair, ...withBundle });
        } catch (error) {
          // With the pending bundle, a server it does not verify is that bundle's failure (rule T4), not the network's.
          const unverified = bundle === 'pending' && (error as { serverUnverified?: unknown }).serverUnverified === true;
          const refused = (error as { refused?: unknown }).refused === true || unverified;
          if (attempt === this.connectAttempt) {
            this.dispatchIn(life, { type: 'connectFailed', pair: effect.pair, reason: (error as Error).message, refused, ...withBundle });
          }
        }
      })();
    });
  }

  private async goOffline(forMs: number | undefined): Promise<void> {
    this.offlineUntil = forMs === undefined ? Infinity : this.clock.now().getTime() + forMs;
    this.log('warn', forMs === undefined ? 'dropping off the network for good' : `dropping off the network for ${forMs} ms`);
    const c = this.state.connection;
    await this.transport.close(true);
    // Tell the reducer as the transport would have: it schedules the reconnect.
    if (c.status === 'connected') this.queue.unshift({ type: 'connectionLost', pair: c.pair, reason: 'network gone' });
  }

  private onMessage(topic: string, payload: Buffer): void {
    const trust = parseTrustTopic(topic);
    if (trust && trust.thingName === this.options.thingName) {
      // Protocol v1.2; the reducer ignores it on a device that does not take trust updates.
      if (trust.type === TrustMessageType.TrustRequest) this.dispatch({ type: 'messageReceived', messageType: trust.type, payload: payload.toString('utf8') });
      return;
    }
    const parsed = parseTopic(topic);
    if (!parsed || parsed.thingName !== this.options.thingName) {
      this.log('warn', `message on unexpected topic ${topic} ignored`);
      return;
    }
    // The subscription covers the device's own publishes too; those echo back and are not for it.
    if (!(CLOUD_TO_DEVICE as readonly string[]).includes(parsed.type)) return;
    this.dispatch({ type: 'messageReceived', messageType: parsed.type as CloudToDeviceType, payload: payload.toString('utf8') });
  }

  private onReport(report: RotationReport): void {
    if (report.kind === 'rotationStarted') {
      this.metrics.rotationsStarted++;
      this.metrics.lastStartedAt = report.at;
    } else if (FINAL_REPORTS.has(report.kind)) {
      if (report.kind === 'rotated') this.metrics.rotationsCompleted++;
      else this.metrics.rotationsFailed++;
      this.metrics.lastFinishedAt = report.at;
      this.metrics.lastOutcome = report.kind as AgentMetrics['lastOutcome'];
    }
    this.options.onReport?.({ ...report, thingName: this.options.thingName });
  }

  private log(level: LogLevel, message: string, rotationId?: string): void {
    const entry: LogEntry = {
      at: this.clock.now().toISOString(),
      level,
      thingName: this.options.thingName,
      message,
      ...(rotationId === undefined || rotationId === '' ? {} : { rotationId }),
    };
    this.eventLog.push(entry);
    const capacity = this.options.logCapacity ?? 500;
    if (this.eventLog.length > capacity) this.eventLog.splice(0, this.eventLog.length - capacity);
    this.options.onLog?.(entry);
  }

  private keysRemoved(): void {
    this.options.onKeysRemoved?.(this.options.thingName);
  }

  private dispatchIn(life: number, event: DeviceEvent): void {
    if (life === this.life) this.dispatch(event);
  }

  /** Key store operations run one at a time, in the order the reducer asked for them. */
  private store<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.storeChain.then(operation, operation);
    this.storeChain = result.catch(() => undefined);
    return result;
  }

  private async storeOrLog(operation: () => Promise<void>, what: string, rotationId?: string): Promise<void> {
    try {
      await this.store(operation);
    } catch (error) {
      this.log('error', `could not ${what}: ${(error as Error).message}`, rotationId);
    }
  }

  private later(ms: number, callback: () => void): unknown {
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(handle);
      callback();
    }, ms);
    this.timers.add(handle);
    return handle;
  }

  private clearTimers(): void {
    for (const handle of this.timers) this.clock.clearTimeout(handle);
    this.timers.clear();
    this.connectTimer = undefined;
  }
}

function pendingPair(snapshot: KeyStoreSnapshot): StoredPair | undefined {
  const pending = snapshot.pending;
  return pending?.certPem ? { keyPem: pending.keyPem, certPem: pending.certPem } : undefined;
}

export function summarize(snapshot: KeyStoreSnapshot): StoredSummary {
  const pending = snapshot.pending;
  const currentCertificateId = snapshot.current ? certificateIdOfPem(snapshot.current.certPem) : undefined;
  return {
    current: snapshot.current !== undefined,
    ...(currentCertificateId ? { currentCertificateId } : {}),
    ...(pending
      ? { pending: { rotation: pending.rotation, ...(pending.csrPem ? { csrPem: pending.csrPem } : {}), hasCertificate: pending.certPem !== undefined } }
      : {}),
  };
}
