import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { AdmissionController, MAX_IN_LAMBDA_WAIT_MS, PACING_KEY, type Admission, type AdmissionState, type Bucket, type CallSite, type PacingSettings } from '../../domain/pacing/index.js';
import { CONDITIONAL_CHECK_FAILED, isNamed } from '../aws/errors.js';
import type { Clock } from './clock.js';
import type { TableDeps } from './rotation-table.js';

/**
 * The shared pacing budget: one item in the rotation table (PACING_KEY) holding the
 * AdmissionController's state (per bucket the GCRA's TAT and the AIMD share; the start pace),
 * versioned. Every Lambda and execution that spends the budget reads it, decides with the pure
 * controller, and writes it back with `version = :read` — a lost race is read again and decided
 * again, so two reservers never get the same slot. At Rotor's few reservations per second the
 * races are rare; one item absorbs far more writes than the quotas let Rotor make.
 */
export interface PacingStoreDeps extends TableDeps {
  clock: Clock;
}

export interface PacingStoreOptions {
  /** Read-decide-write rounds before giving up (each lost race is one). */
  maxAttempts?: number;
  /** Pause after the first lost race, at most (full jitter, doubling with each further one). */
  maxBackoffMs?: number;
}

export const DEFAULT_PACING_STORE_ATTEMPTS = 50;
const DEFAULT_MAX_BACKOFF_MS = 20;
const MAX_BACKOFF_CAP_MS = 400;

/** The stored item: the key, the version, the state as JSON text (one attribute, read whole). */
export interface PacingItem {
  pk: typeof PACING_KEY.pk;
  sk: typeof PACING_KEY.sk;
  version: number;
  state: string;
  updatedAt: string;
}

export class PacingContention extends Error {
  constructor(attempts: number) {
    super(`the pacing item changed under every one of ${attempts} attempts`);
    this.name = 'PacingContention';
  }
}

const EMPTY_STATE: AdmissionState = { tatMs: {}, share: {}, lastCutMs: {}, lastGrowMs: {}, startTatMs: 0 };

function parseState(text: unknown): AdmissionState {
  if (typeof text !== 'string') return EMPTY_STATE;
  try {
    const parsed = JSON.parse(text) as Partial<AdmissionState>;
    return {
      tatMs: parsed.tatMs ?? {},
      share: parsed.share ?? {},
      lastCutMs: parsed.lastCutMs ?? {},
      lastGrowMs: parsed.lastGrowMs ?? {},
      startTatMs: typeof parsed.startTatMs === 'number' ? parsed.startTatMs : 0,
    };
  } catch {
    // A damaged item must not stop every rotation: the budget starts over (at worst one burst).
    return EMPTY_STATE;
  }
}

/** What a round decides on: the item's version and state (undefined: there is no item yet). */
interface Seen {
  version?: number;
  state?: string;
}

const STALE = Symbol('stale');

/**
 * The version and state of an item as GetItem returns it through the document client, or as a
 * refused write's ALL_OLD carries it (raw attribute values: the document client does not convert
 * an error's item). Undefined: there is no item. STALE: a version that is neither, read it again.
 */
function seenOf(item: unknown): Seen | undefined | typeof STALE {
  if (item === undefined || item === null) return undefined;
  if (typeof item !== 'object') return STALE;
  const record = item as Record<string, unknown>;
  const raw = (value: unknown, type: 'N' | 'S'): unknown => (typeof value === 'object' && value !== null && type in value ? (value as Record<string, unknown>)[type] : value);
  const versionValue = raw(record.version, 'N');
  const version = typeof versionValue === 'number' ? versionValue : typeof versionValue === 'string' && versionValue !== '' ? Number(versionValue) : undefined;
  if (version !== undefined && !Number.isFinite(version)) return STALE;
  const state = raw(record.state, 'S');
  return { ...(version !== undefined ? { version } : {}), ...(typeof state === 'string' ? { state } : {}) };
}

export class PacingStore {
  private readonly maxAttempts: number;
  private readonly maxBackoffMs: number;
  /** How many rounds the last update took (1: no lost race): for tests and logs. */
  lastAttempts = 0;
  /** The item as this store last wrote or was told it is (undefined: none known, so the first write creates it or is refused with it; STALE: read it). */
  private seen: Seen | undefined | typeof STALE = undefined;

  constructor(
    private readonly deps: PacingStoreDeps,
    readonly settings: PacingSettings,
    options: PacingStoreOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? DEFAULT_PACING_STORE_ATTEMPTS;
    this.maxBackoffMs = options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
  }

  /**
   * Applies `decide` to the controller the item holds and writes it back if nothing changed
   * meanwhile. The item as this store last saw it is kept between invocations (a warm Lambda), so
   * a round is one conditional UpdateItem: a stale copy loses the race, and the lost race's answer
   * is the current item (ReturnValuesOnConditionCheckFailure ALL_OLD), decided on again — no
   * GetItem per round (docs/fleet-scale.md, "Pacing-item contention"). A GetItem is made only when
   * a failed write does not return the item (an implementation without ALL_OLD).
   */
  async update<T>(decide: (controller: AdmissionController, nowMs: number) => T): Promise<{ value: T; controller: AdmissionController }> {
    const { db, tableName, clock } = this.deps;
    let seen = this.seen;
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      if (seen === STALE) {
        const read = await db.send(new GetCommand({ TableName: tableName, Key: PACING_KEY, ConsistentRead: true }));
        const fresh = seenOf(read.Item);
        // A version that is not a number: decided on as a fresh item (its write is refused, as before).
        seen = fresh === STALE ? {} : fresh;
      }
      const now = clock.now();
      const controller = AdmissionController.fromState(this.settings, parseState(seen?.state), now.getTime());
      const value = decide(controller, now.getTime());
      const state = JSON.stringify(controller.toState());
      const version = seen?.version;
      try {
        await db.send(
          new UpdateCommand({
            TableName: tableName,
            Key: PACING_KEY,
            UpdateExpression: 'SET #state = :state, version = :next, updatedAt = :now',
            ConditionExpression: version === undefined ? 'attribute_not_exists(version)' : 'version = :read',
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: {
              ':state': state,
              ':next': (version ?? 0) + 1,
              ':now': now.toISOString(),
              ...(version === undefined ? {} : { ':read': version }),
            },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        );
        this.seen = { version: (version ?? 0) + 1, state };
        this.lastAttempts = attempt;
        return { value, controller };
      } catch (error) {
        if (!isNamed(error, CONDITIONAL_CHECK_FAILED)) throw error;
        // The current item came back with the refusal; without it (or with a damaged one), read it.
        const current = (error as { Item?: unknown }).Item;
        seen = current === undefined ? STALE : seenOf(current);
        if (seen !== STALE && seen?.version === version) seen = STALE;
        // Full jitter, doubling: racers spread out instead of colliding again.
        await clock.sleep(Math.random() * Math.min(this.maxBackoffMs * 2 ** (attempt - 1), MAX_BACKOFF_CAP_MS));
      }
    }
    this.seen = STALE;
    throw new PacingContention(this.maxAttempts);
  }

  /** When this site's calls may be made (ms since the epoch); reserved, never refused. */
  async reserve(site: CallSite): Promise<{ atMs: number; nowMs: number; controller: AdmissionController }> {
    let nowMs = 0;
    const { value, controller } = await this.update((c, now) => {
      nowMs = now;
      return c.reserve(site, now);
    });
    return { atMs: value, nowMs, controller };
  }

  /** May a rotation start now (start pace and backpressure)? Admitted starts reserve their calls. */
  async admitStart(): Promise<{ admission: Admission; nowMs: number }> {
    let nowMs = 0;
    const { value } = await this.update((c, now) => {
      nowMs = now;
      return c.admitStart(now);
    });
    return { admission: value, nowMs };
  }

  /** Several starts in one decision (AdmissionController.admitStarts): the ones admitted, or when to ask again. */
  async admitStarts(max: number): Promise<{ atMs: number[]; retryAtMs?: number; nowMs: number }> {
    let nowMs = 0;
    const { value } = await this.update((c, now) => {
      nowMs = now;
      // Sleeping in start-rotations until a start's place is cheap: batch as far ahead as a paced step may sleep.
      return c.admitStarts(now, max, Math.max(this.settings.maxQueueMs, MAX_IN_LAMBDA_WAIT_MS));
    });
    return { ...value, nowMs };
  }

  /** AWS throttled a call on this bucket: the AIMD cut, seen by every Lambda at its next reservation. */
  async observeThrottle(bucket: Bucket): Promise<number> {
    const { controller } = await this.update((c, now) => c.observeThrottle(bucket, now));
    return controller.shareOf(bucket);
  }
}
