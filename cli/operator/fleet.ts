import { GetCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { CALENDAR_KEY, deferredPk, PACING_KEY, type AdmissionState } from '../../domain/pacing/index.js';
import { RotationStatus } from '../../domain/rotation.js';
import { loadWiring } from '../../wiring/index.js';

/**
 * The fleet figures of `rotor status` (issue 10 part 8, the dashboard's figures at the command
 * line): started, succeeded, failed and in flight from the by-status counts; failures by reason
 * and the oldest in-flight rotation from Queries on the same sparse index (never a Scan), each
 * bounded to `maxPages` pages; the pacing budget from its one item; throttled calls where the
 * target can say (the local runtime's edge — on AWS they are the CloudWatch metric
 * `ThrottledCalls`, charted on the fleet dashboard).
 */
export interface FleetDeps {
  ddb: DynamoDBDocumentClient;
  tableName: string;
  now: () => Date;
  /** Pages of each Query read at most (1 MB each); past it the figures are a lower bound, said so. */
  maxPages?: number;
  /** Throttled calls per API, where the target counts them (the local edge's /_rotor/quotas). */
  throttledCalls?: () => Promise<ThrottledCalls | undefined>;
}

export interface ThrottledCalls {
  total: number;
  byApi: Record<string, number>;
}

export interface BucketPacing {
  /** How far ahead of now the reservations already made reach: this bucket's queue, in seconds. */
  queuedAheadS: number;
  /** The share of the configured budget AIMD allows after throttles (1: uncut). */
  share: number;
  /** When AWS's throttling last cut it. */
  lastCutAt?: string;
}

export interface FleetFigures {
  /** Rotations with a current record: every thing's latest (in flight or finished). */
  started: number;
  inFlight: number;
  succeeded: number;
  failed: number;
  /** FAILED current records by reason. */
  failuresByReason: Record<string, number>;
  oldestInFlight?: { thing: string; startedAt: string; ageSeconds: number };
  /** The shared pacing budget, per bucket it has reserved on; absent when no step has reserved yet. */
  pacing?: Record<string, BucketPacing>;
  throttledCalls?: ThrottledCalls;
  /** Starts the renewal calendar deferred, by day (UTC), with the earliest due. */
  deferred: { total: number; byDay: Record<string, number>; nextAt?: string };
  /** A Query stopped at maxPages: the reason counts and the oldest are over what was read. */
  truncated: boolean;
  sources: { counts: string; reasons: string; pacing: string; throttled: string; deferred: string };
}

export const DEFAULT_FLEET_MAX_PAGES = 100;

type Counts = Record<RotationStatus, number>;

/** Pages through one status of the by-status index, reading only `attributes`; stops at maxPages. */
async function eachIndexed(deps: FleetDeps, status: RotationStatus, attributes: string[], visit: (item: Record<string, unknown>) => void): Promise<boolean> {
  const names = Object.fromEntries([['#status', 'status'], ...attributes.map((a, i) => [`#a${i}`, a])]);
  let exclusiveStartKey: Record<string, unknown> | undefined;
  let pages = 0;
  do {
    const page = await deps.ddb.send(
      new QueryCommand({
        TableName: deps.tableName,
        IndexName: loadWiring().table.statusIndex.name,
        KeyConditionExpression: '#status = :status',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ':status': status },
        ProjectionExpression: attributes.map((_, i) => `#a${i}`).join(', '),
        ExclusiveStartKey: exclusiveStartKey,
      }),
    );
    pages++;
    for (const item of page?.Items ?? []) visit(item);
    exclusiveStartKey = page?.LastEvaluatedKey;
  } while (exclusiveStartKey && pages < (deps.maxPages ?? DEFAULT_FLEET_MAX_PAGES));
  return exclusiveStartKey !== undefined;
}

/** The budget item's state, per bucket; undefined when there is none or it cannot be read as one. */
async function readPacing(deps: FleetDeps, nowMs: number): Promise<Record<string, BucketPacing> | undefined> {
  const result = await deps.ddb.send(new GetCommand({ TableName: deps.tableName, Key: { ...PACING_KEY } }));
  const text = result?.Item?.state;
  if (typeof text !== 'string') return undefined;
  let state: Partial<AdmissionState>;
  try {
    state = JSON.parse(text) as Partial<AdmissionState>;
  } catch {
    return undefined;
  }
  const buckets: Record<string, BucketPacing> = {};
  for (const [bucket, tat] of Object.entries(state.tatMs ?? {})) {
    if (typeof tat !== 'number') continue;
    const cut = state.lastCutMs?.[bucket as keyof AdmissionState['lastCutMs']];
    buckets[bucket] = {
      queuedAheadS: Math.max(0, Math.round(tat - nowMs) / 1000),
      share: state.share?.[bucket as keyof AdmissionState['share']] ?? 1,
      ...(typeof cut === 'number' ? { lastCutAt: new Date(cut).toISOString() } : {}),
    };
  }
  return buckets;
}

/** The calendar item's days, and per day a COUNT Query of its partition (the first page also gives the earliest due). */
async function readDeferred(deps: FleetDeps): Promise<FleetFigures['deferred']> {
  const item = (await deps.ddb.send(new GetCommand({ TableName: deps.tableName, Key: { ...CALENDAR_KEY } })))?.Item;
  const days = [...((item?.days as Set<string> | string[] | undefined) ?? [])].sort();
  const byDay: Record<string, number> = {};
  let total = 0;
  let nextAt: string | undefined;
  for (const day of days) {
    let exclusiveStartKey: Record<string, unknown> | undefined;
    let count = 0;
    do {
      const page = await deps.ddb.send(
        new QueryCommand({ TableName: deps.tableName, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': deferredPk(day) }, Select: 'COUNT', ExclusiveStartKey: exclusiveStartKey }),
      );
      count += page?.Count ?? 0;
      exclusiveStartKey = page?.LastEvaluatedKey;
    } while (exclusiveStartKey);
    if (count === 0) continue;
    if (!nextAt) {
      const first = await deps.ddb.send(new QueryCommand({ TableName: deps.tableName, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': deferredPk(day) }, Limit: 1 }));
      const startAt = first?.Items?.[0]?.startAt;
      if (typeof startAt === 'string') nextAt = startAt;
    }
    byDay[day] = count;
    total += count;
  }
  return { total, byDay, ...(nextAt ? { nextAt } : {}) };
}

export async function fleetFigures(deps: FleetDeps, counts: Counts): Promise<FleetFigures> {
  const now = deps.now().getTime();
  const failuresByReason: Record<string, number> = {};
  let oldest: FleetFigures['oldestInFlight'];
  let truncated = false;
  if (counts.FAILED > 0) {
    truncated ||= await eachIndexed(deps, RotationStatus.Failed, ['reason'], (item) => {
      const reason = typeof item.reason === 'string' ? item.reason : 'UNKNOWN';
      failuresByReason[reason] = (failuresByReason[reason] ?? 0) + 1;
    });
  }
  if (counts.IN_PROGRESS > 0) {
    // The index sorts by updatedAt, not startedAt: the oldest start needs every in-flight record (keys and two fields).
    truncated ||= await eachIndexed(deps, RotationStatus.InProgress, ['thingName', 'startedAt'], (item) => {
      const at = typeof item.startedAt === 'string' ? Date.parse(item.startedAt) : Number.NaN;
      if (Number.isNaN(at) || (oldest && at >= Date.parse(oldest.startedAt))) return;
      oldest = { thing: String(item.thingName ?? '?'), startedAt: new Date(at).toISOString(), ageSeconds: Math.max(0, Math.round((now - at) / 1000)) };
    });
  }
  const [pacing, throttledCalls, deferred] = await Promise.all([readPacing(deps, now), deps.throttledCalls?.(), readDeferred(deps)]);
  return {
    started: counts.IN_PROGRESS + counts.SUCCEEDED + counts.FAILED,
    inFlight: counts.IN_PROGRESS,
    succeeded: counts.SUCCEEDED,
    failed: counts.FAILED,
    failuresByReason,
    ...(oldest ? { oldestInFlight: oldest } : {}),
    ...(pacing && Object.keys(pacing).length ? { pacing } : {}),
    ...(throttledCalls ? { throttledCalls } : {}),
    deferred,
    truncated,
    sources: {
      counts: 'COUNT queries on the by-status index',
      reasons: 'the by-status index (FAILED: reason; IN_PROGRESS: startedAt)',
      pacing: `the pacing item (pk=${PACING_KEY.pk}, sk=${PACING_KEY.sk})`,
      throttled: throttledCalls ? "the local runtime's edge (/_rotor/quotas)" : 'CloudWatch metric Rotor ThrottledCalls (dimension Api), on the fleet dashboard',
      deferred: `the calendar item (pk=${CALENDAR_KEY.pk}, sk=${CALENDAR_KEY.sk}) and a COUNT Query per day it lists`,
    },
  };
}

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7_200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3_600).toFixed(1)} h`;
}

function byCount(entries: Record<string, number>): string {
  return Object.entries(entries)
    .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
    .map(([key, n]) => `${key} ${n}`)
    .join(', ');
}

export function formatFleet(fleet: FleetFigures): string[] {
  const lines = [
    `started ${fleet.started}   in flight ${fleet.inFlight}   succeeded ${fleet.succeeded}   failed ${fleet.failed}`,
    `  oldest in flight    ${fleet.oldestInFlight ? `${duration(fleet.oldestInFlight.ageSeconds)} (${fleet.oldestInFlight.thing}, since ${fleet.oldestInFlight.startedAt})` : '-'}`,
    `  failures by reason  ${Object.keys(fleet.failuresByReason).length ? byCount(fleet.failuresByReason) : '-'}`,
  ];
  const pacing = Object.entries(fleet.pacing ?? {})
    .filter(([, b]) => b.queuedAheadS > 0 || b.share < 1)
    .map(([bucket, b]) => `${bucket} ${b.queuedAheadS.toFixed(1)} s ahead${b.share < 1 ? `, ${Math.round(b.share * 100)}% of budget (cut ${b.lastCutAt ?? '?'})` : ''}`);
  lines.push(`  pacing queue        ${fleet.pacing ? (pacing.length ? pacing.join('; ') : 'idle, full budget') : 'no reservation yet'}`);
  const days = Object.entries(fleet.deferred.byDay).map(([day, n]) => `${day} ${n}`);
  lines.push(`  deferred starts     ${fleet.deferred.total ? `${fleet.deferred.total} (${days.slice(0, 7).join(', ')}${days.length > 7 ? ', …' : ''}); next due ${fleet.deferred.nextAt}` : '-'}`);
  lines.push(`  throttled calls     ${fleet.throttledCalls ? `${fleet.throttledCalls.total}${fleet.throttledCalls.total ? ` (${byCount(fleet.throttledCalls.byApi)})` : ''}` : `see ${fleet.sources.throttled}`}`);
  if (fleet.truncated) lines.push('  (more records than the bounded Queries read: reasons and the oldest are over what was read)');
  return lines;
}
