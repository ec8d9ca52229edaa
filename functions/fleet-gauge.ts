import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { RotationStatus } from '../domain/index.js';
import type { Clock } from './core/clock.js';
import { positiveIntegerEnv, requiredEnv } from './core/environment.js';
import { once, rotorHandler } from './core/handler.js';
import type { TableDeps } from './core/rotation-table.js';
import { MetricName, observability, type Telemetry } from './core/telemetry.js';
import { baseDeps } from './core/runtime-deps.js';

/**
 * The fleet's gauges for the dashboard (issue 10 part 8): how many rotations are in flight and
 * how long the oldest has been. Counters (started, succeeded, failed) say what happened; only a
 * look at the records says what is open now. Run on a schedule (terraform/dashboard.tf,
 * EventBridge rate(5 minutes)); it Queries the sparse by-status index for IN_PROGRESS records —
 * never a Scan — and reads at most `maxPages` pages, so its cost stays bounded at any fleet size.
 */
export interface FleetGaugeDeps extends TableDeps {
  /** The table's by-status index (wiring table.statusIndex.name). */
  statusIndexName: string;
  /** Pages of the Query read at most (1 MB each): past it the figures are a lower bound, said so in the log. */
  maxPages: number;
  clock: Clock;
  telemetry: Telemetry;
}

export interface FleetGauge {
  inFlight: number;
  /** Seconds since the oldest in-flight rotation started; 0 when none is in flight. */
  oldestInFlightAgeSeconds: number;
  oldestRotationId?: string;
  /** The page bound was reached: there are more in-flight records than counted. */
  truncated: boolean;
}

/** The startedAt of an index item, when it is a date. */
function startedAtMs(item: Record<string, unknown>): number | undefined {
  const value = typeof item.startedAt === 'string' ? Date.parse(item.startedAt) : Number.NaN;
  return Number.isNaN(value) ? undefined : value;
}

export async function measureFleet(deps: FleetGaugeDeps): Promise<FleetGauge> {
  const now = deps.clock.now().getTime();
  let inFlight = 0;
  let oldest: { at: number; rotationId?: string } | undefined;
  let exclusiveStartKey: Record<string, unknown> | undefined;
  let pages = 0;
  do {
    const page = await deps.db.send(
      new QueryCommand({
        TableName: deps.tableName,
        IndexName: deps.statusIndexName,
        KeyConditionExpression: '#status = :status',
        ExpressionAttributeNames: { '#status': 'status', '#startedAt': 'startedAt', '#rotationId': 'rotationId' },
        ExpressionAttributeValues: { ':status': RotationStatus.InProgress },
        ProjectionExpression: '#startedAt, #rotationId',
        ExclusiveStartKey: exclusiveStartKey,
      }),
    );
    pages++;
    for (const item of page.Items ?? []) {
      inFlight++;
      const at = startedAtMs(item);
      if (at !== undefined && (oldest === undefined || at < oldest.at)) oldest = { at, rotationId: typeof item.rotationId === 'string' ? item.rotationId : undefined };
    }
    exclusiveStartKey = page.LastEvaluatedKey;
  } while (exclusiveStartKey && pages < deps.maxPages);

  const gauge: FleetGauge = {
    inFlight,
    oldestInFlightAgeSeconds: oldest ? Math.max(0, Math.round((now - oldest.at) / 1000)) : 0,
    ...(oldest?.rotationId ? { oldestRotationId: oldest.rotationId } : {}),
    truncated: exclusiveStartKey !== undefined,
  };
  deps.telemetry.count(MetricName.RotationsInFlight, gauge.inFlight);
  deps.telemetry.count(MetricName.OldestInFlightAgeSeconds, gauge.oldestInFlightAgeSeconds);
  if (gauge.truncated) deps.telemetry.log.warn('fleet gauge: more in-flight rotations than the page bound reads; the figures are a lower bound', { pages, inFlight });
  else deps.telemetry.log.info('fleet gauge', { inFlight, oldestInFlightAgeSeconds: gauge.oldestInFlightAgeSeconds, oldestRotationId: gauge.oldestRotationId });
  return gauge;
}

const obs = observability('fleet-gauge');
const runtime = once(
  (): FleetGaugeDeps => ({
    ...baseDeps(obs),
    statusIndexName: requiredEnv('STATUS_INDEX_NAME'),
    maxPages: positiveIntegerEnv('FLEET_GAUGE_MAX_PAGES', 100),
  }),
);

/** The scheduled event carries nothing the gauge needs. */
export const handler = rotorHandler({ observability: obs, step: 'Fleet gauge', logKeys: () => ({}) }, () => measureFleet(runtime()));
