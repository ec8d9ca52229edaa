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

export class PacingStore {
  private readonly maxAttempts: number;
  private readonly maxBackoffMs: number;
  /** How many rounds the last update took (1: no lost race): for tests and logs. */
  lastAttempts = 0;

  constructor(
    private readonly deps: PacingStoreDeps,
    readonly settings: PacingSettings,
    options: PacingStoreOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? DEFAULT_PACING_STORE_ATTEMPTS;
    this.maxBackoffMs = options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
  }

  /** Reads the item, applies `decide` to the controller it holds, writes it back if nothing changed meanwhile. */
  async update<T>(decide: (controller: AdmissionController, nowMs: number) => T): Promise<{ value: T; controller: AdmissionController }> {
    const { db, tableName, clock } = this.deps;
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const read = await db.send(new GetCommand({ TableName: tableName, Key: PACING_KEY, ConsistentRead: true }));
      const item = read.Item as Partial<PacingItem> | undefined;
      const version = typeof item?.version === 'number' ? item.version : undefined;
      const now = clock.now();
      const controller = AdmissionController.fromState(this.settings, parseState(item?.state), now.getTime());
      const value = decide(controller, now.getTime());
      try {
        await db.send(
          new UpdateCommand({
            TableName: tableName,
            Key: PACING_KEY,
            UpdateExpression: 'SET #state = :state, version = :next, updatedAt = :now',
            ConditionExpression: version === undefined ? 'attribute_not_exists(version)' : 'version = :read',
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: {
              ':state': JSON.stringify(controller.toState()),
              ':next': (version ?? 0) + 1,
              ':now': now.toISOString(),
              ...(version === undefined ? {} : { ':read': version }),
            },
          }),
        );
        this.lastAttempts = attempt;
        return { value, controller };
      } catch (error) {
        if (!isNamed(error, CONDITIONAL_CHECK_FAILED)) throw error;
        // Full jitter, doubling: racers spread out instead of colliding again.
        await clock.sleep(Math.random() * Math.min(this.maxBackoffMs * 2 ** (attempt - 1), MAX_BACKOFF_CAP_MS));
      }
    }
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
