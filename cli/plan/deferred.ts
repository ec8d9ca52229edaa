import { GetCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { CALENDAR_KEY, deferredPk, parseDeferredSk } from '../../domain/pacing/index.js';

/**
 * The starts the renewal calendar already holds (docs/fleet-scale.md, "The renewal calendar,
 * live"): the calendar item's days, then each day's partition, sort keys only. A sort key is the
 * start's time, certificate and audit, so the per-day counts, the next due start and the
 * certificates already scheduled come from the keys alone — a Query page per ~10,000 deferred
 * starts, never a Scan.
 */
export interface DeferredDay {
  date: string;
  starts: number;
}

export interface DeferredStarts {
  total: number;
  /** The earliest start due (ISO), when there is one. */
  nextAt?: string;
  byDay: DeferredDay[];
  /** The certificates with a deferred start: a plan does not count them again. */
  certificates: Set<string>;
}

export interface DeferredDeps {
  ddb: DynamoDBDocumentClient;
  tableName: string;
}

export async function readDeferredStarts(deps: DeferredDeps): Promise<DeferredStarts> {
  const item = (await deps.ddb.send(new GetCommand({ TableName: deps.tableName, Key: { ...CALENDAR_KEY } })))?.Item;
  const days = [...((item?.days as Set<string> | string[] | undefined) ?? [])].sort();
  const byDay: DeferredDay[] = [];
  const certificates = new Set<string>();
  let total = 0;
  let nextMs: number | undefined;
  for (const date of days) {
    let starts = 0;
    let exclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const page = await deps.ddb.send(
        new QueryCommand({
          TableName: deps.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': deferredPk(date) },
          ProjectionExpression: 'sk',
          ExclusiveStartKey: exclusiveStartKey,
        }),
      );
      for (const row of page?.Items ?? []) {
        const start = typeof row.sk === 'string' ? parseDeferredSk(row.sk) : undefined;
        if (!start) continue;
        starts++;
        certificates.add(start.certificateId);
        if (nextMs === undefined || start.atMs < nextMs) nextMs = start.atMs;
      }
      exclusiveStartKey = page?.LastEvaluatedKey;
    } while (exclusiveStartKey);
    // A day the sweep has emptied stays listed until it is over: it is not shown.
    if (starts === 0) continue;
    byDay.push({ date, starts });
    total += starts;
  }
  return { total, byDay, certificates, ...(nextMs !== undefined ? { nextAt: new Date(nextMs).toISOString() } : {}) };
}
