import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import {
  CALENDAR_KEY,
  DAY_S,
  DEFAULT_RENEWAL,
  deferredDay,
  deferredPk,
  deferredSkUntil,
  type Cohort,
  type DeferredStart,
  type RenewalSettings,
} from '../../domain/pacing/index.js';
import { auditPk, REPORT_SK } from '../../domain/records.js';
import { ConfigurationError, optionalEnv, type Environment } from './environment.js';
import type { TableDeps } from './rotation-table.js';

/**
 * The renewal calendar's records (docs/fleet-scale.md, "The renewal calendar, live"): the cohort
 * an audit fixed, the deferred starts, and the calendar item that lists their days. Every write is
 * idempotent (the same deferral writes the same key), and a deferred start is deleted only after
 * its start was made or refused: a crash anywhere leaves it to the next sweep.
 */
export const CalendarEnv = {
  WindowDays: 'ROTOR_RENEWAL_WINDOW_DAYS',
  MarginDays: 'ROTOR_RENEWAL_MARGIN_DAYS',
  Enabled: 'ROTOR_CALENDAR_ENABLED',
  TimeScale: 'ROTOR_TIME_SCALE',
} as const;

/** The calendar's settings from the environment, in the function's real time (× ROTOR_TIME_SCALE); undefined when off. */
export function calendarSettings(env: Environment = process.env): RenewalSettings | undefined {
  const enabled = optionalEnv(CalendarEnv.Enabled, env);
  if (enabled !== undefined && !['true', 'false'].includes(enabled.toLowerCase())) {
    throw new ConfigurationError(`${CalendarEnv.Enabled} must be "true" or "false", got ${JSON.stringify(enabled)}`);
  }
  if (enabled?.toLowerCase() === 'false') return undefined;
  const days = (name: string, fallbackS: number): number => {
    const raw = optionalEnv(name, env);
    if (raw === undefined) return fallbackS;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0 || value > 3650) throw new ConfigurationError(`${name} must be a number of days from 0 to 3650, got ${JSON.stringify(raw)}`);
    return value * DAY_S;
  };
  const scaleText = optionalEnv(CalendarEnv.TimeScale, env);
  const scale = scaleText === undefined ? 1 : Number(scaleText);
  if (!(scale > 0)) throw new ConfigurationError(`${CalendarEnv.TimeScale} must be a number above 0, got ${JSON.stringify(scaleText)}`);
  return {
    windowS: days(CalendarEnv.WindowDays, DEFAULT_RENEWAL.windowS) * scale,
    marginS: days(CalendarEnv.MarginDays, DEFAULT_RENEWAL.marginS) * scale,
    sweepS: DEFAULT_RENEWAL.sweepS * scale,
  };
}

/**
 * The audit's cohort: fixed on the audit's report item by the first invocation that asks (a
 * redelivered notification or a continuation gets the same one back).
 */
export async function fixCohort(deps: TableDeps, taskId: string, proposed: Cohort & { devices: number }): Promise<Cohort> {
  const out = await deps.db.send(
    new UpdateCommand({
      TableName: deps.tableName,
      Key: { pk: auditPk(taskId), sk: REPORT_SK },
      UpdateExpression: 'SET taskId = :taskId, cohortStartMs = if_not_exists(cohortStartMs, :start), cohortSpreadS = if_not_exists(cohortSpreadS, :spread), cohortDevices = if_not_exists(cohortDevices, :devices)',
      ExpressionAttributeValues: { ':taskId': taskId, ':start': proposed.startMs, ':spread': proposed.spreadS, ':devices': proposed.devices },
      ReturnValues: 'ALL_NEW',
    }),
  );
  const item = out.Attributes ?? {};
  return { startMs: Number(item.cohortStartMs ?? proposed.startMs), spreadS: Number(item.cohortSpreadS ?? proposed.spreadS) };
}

/** Records deferred starts: their days in the calendar item first, so that no item is ever on a day the sweep does not know. */
export async function deferStarts(deps: TableDeps, starts: readonly DeferredStart[], concurrency = 8): Promise<void> {
  if (starts.length === 0) return;
  const days = [...new Set(starts.map((start) => deferredDay(Date.parse(start.startAt))))];
  await deps.db.send(
    new UpdateCommand({ TableName: deps.tableName, Key: { ...CALENDAR_KEY }, UpdateExpression: 'ADD #days :days', ExpressionAttributeNames: { '#days': 'days' }, ExpressionAttributeValues: { ':days': new Set(days) } }),
  );
  for (let i = 0; i < starts.length; i += concurrency) {
    await Promise.all(starts.slice(i, i + concurrency).map((start) => deps.db.send(new PutCommand({ TableName: deps.tableName, Item: { ...start } }))));
  }
}

/** The days the calendar item lists, oldest first. */
export async function calendarDays(deps: TableDeps): Promise<string[]> {
  const out = await deps.db.send(new GetCommand({ TableName: deps.tableName, Key: { ...CALENDAR_KEY }, ConsistentRead: true }));
  const days = out.Item?.days as Set<string> | string[] | undefined;
  return [...(days ?? [])].sort();
}

/** Up to `limit` deferred starts due by `untilMs`, the earliest first. */
export async function dueStarts(deps: TableDeps, untilMs: number, limit: number): Promise<DeferredStart[]> {
  const lastDay = deferredDay(untilMs);
  const due: DeferredStart[] = [];
  for (const day of await calendarDays(deps)) {
    if (day > lastDay || due.length >= limit) break;
    const page = await deps.db.send(
      new QueryCommand({
        TableName: deps.tableName,
        KeyConditionExpression: 'pk = :pk AND sk <= :until',
        ExpressionAttributeValues: { ':pk': deferredPk(day), ':until': deferredSkUntil(untilMs) },
        Limit: limit - due.length,
        ConsistentRead: true,
      }),
    );
    due.push(...((page.Items ?? []) as DeferredStart[]));
  }
  return due;
}

/** A deferred start whose start was made (or refused for good): removed. */
export async function startedDeferred(deps: TableDeps, start: Pick<DeferredStart, 'pk' | 'sk'>): Promise<void> {
  await deps.db.send(new DeleteCommand({ TableName: deps.tableName, Key: { pk: start.pk, sk: start.sk } }));
}

/**
 * Drops from the calendar item the days that are over and hold nothing more. Only a past day can
 * be dropped: a deferral never writes to one (its starts are later than the next sweep).
 */
export async function pruneDays(deps: TableDeps, nowMs: number): Promise<string[]> {
  const today = deferredDay(nowMs);
  const empty: string[] = [];
  for (const day of await calendarDays(deps)) {
    if (day >= today) break;
    const page = await deps.db.send(new QueryCommand({ TableName: deps.tableName, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': deferredPk(day) }, Limit: 1, ConsistentRead: true }));
    if ((page.Items ?? []).length === 0) empty.push(day);
  }
  if (empty.length) {
    await deps.db.send(
      new UpdateCommand({ TableName: deps.tableName, Key: { ...CALENDAR_KEY }, UpdateExpression: 'DELETE #days :days', ExpressionAttributeNames: { '#days': 'days' }, ExpressionAttributeValues: { ':days': new Set(empty) } }),
    );
  }
  return empty;
}

/**
 * Takes (or renews, or with untilMs 0 gives back) the sweep's lease on the calendar item: one
 * sweep at a time, so two never start the same deferred starts; a crashed sweep's lease runs out.
 */
export async function leaseSweep(deps: TableDeps, lease: string, nowMs: number, untilMs: number): Promise<boolean> {
  try {
    await deps.db.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: { ...CALENDAR_KEY },
        UpdateExpression: 'SET sweepLease = :lease, sweepUntil = :until',
        ConditionExpression: 'attribute_not_exists(sweepUntil) OR sweepUntil < :now OR sweepLease = :lease',
        ExpressionAttributeValues: { ':lease': lease, ':until': untilMs, ':now': nowMs },
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof Error && error.name === 'ConditionalCheckFailedException') return false;
    throw error;
  }
}
