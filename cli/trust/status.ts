import { ListThingsCommand, type IoTClient } from '@aws-sdk/client-iot';
import { BatchGetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { trustKey, TrustStatus, type TrustRecord } from '../../domain/index.js';

/**
 * `rotor trust status`: where each device's trust store stands, from its trust record
 * (domain/trust-update.ts): updated to the bundle, refused (TRUST_<code>), not updated (no
 * answer), pending, or never asked. Reads the records by key (BatchGetItem), never a Scan.
 */
export interface TrustStatusOptions {
  things?: string[];
  all?: boolean;
  /** Count as updated only devices whose current bundle is this one (default: the newest bundle pushed). */
  bundleId?: string;
}

export interface TrustDeviceRow {
  thingName: string;
  state: 'updated' | 'refused' | 'not-updated' | 'pending' | 'never-asked' | 'on-other-bundle';
  bundleId?: string;
  currentBundleId?: string;
  reason?: string;
  cause?: string;
  pushId?: string;
  finishedAt?: string;
  /** The device acked the bundle after its update had timed out (NOT_UPDATED, escalated NO_ACK): it is on the bundle. */
  ackedLateAt?: string;
}

export interface TrustStatusReport {
  bundleId?: string;
  counts: { devices: number; updated: number; refused: number; notUpdated: number; pending: number; neverAsked: number; onOtherBundle: number; ackedLate: number };
  devices: TrustDeviceRow[];
}

async function allThings(iot: IoTClient): Promise<string[]> {
  const names: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await iot.send(new ListThingsCommand({ maxResults: 250, nextToken }));
    names.push(...(page.things ?? []).map((t) => t.thingName ?? '').filter(Boolean));
    nextToken = page.nextToken;
  } while (nextToken);
  return names.sort();
}

export async function trustRecords(ddb: DynamoDBDocumentClient, tableName: string, things: readonly string[]): Promise<Map<string, TrustRecord>> {
  const found = new Map<string, TrustRecord>();
  for (let i = 0; i < things.length; i += 100) {
    let keys: Record<string, unknown>[] | undefined = things.slice(i, i + 100).map((thing) => trustKey(thing));
    for (let round = 0; keys && keys.length > 0; round++) {
      const out = await ddb.send(new BatchGetCommand({ RequestItems: { [tableName]: { Keys: keys, ConsistentRead: true } } }));
      for (const item of (out.Responses?.[tableName] ?? []) as TrustRecord[]) found.set(item.thingName, item);
      keys = out.UnprocessedKeys?.[tableName]?.Keys as Record<string, unknown>[] | undefined;
      if (keys?.length) await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 50 * 2 ** round)));
    }
  }
  return found;
}

export function rowOf(thingName: string, record: TrustRecord | undefined, bundleId: string | undefined): TrustDeviceRow {
  if (!record) return { thingName, state: 'never-asked' };
  const base = { thingName, bundleId: record.bundleId, pushId: record.pushId, ...(record.currentBundleId ? { currentBundleId: record.currentBundleId } : {}), ...(record.finishedAt ? { finishedAt: record.finishedAt } : {}) };
  const failure = { ...(record.reason ? { reason: record.reason } : {}), ...(record.cause ? { cause: record.cause } : {}) };
  if (bundleId && record.bundleId !== bundleId) return record.currentBundleId === bundleId ? { ...base, state: 'updated' } : { ...base, state: 'on-other-bundle' };
  switch (record.trustStatus) {
    case TrustStatus.Updated:
      return { ...base, state: 'updated' };
    case TrustStatus.Refused:
      return { ...base, ...failure, state: 'refused' };
    case TrustStatus.NotUpdated:
      // Its ack came after the update timed out: the update failed, but the device switched.
      if (record.ackedLateAt && record.currentBundleId === record.bundleId) return { ...base, ...failure, state: 'updated', ackedLateAt: record.ackedLateAt };
      return { ...base, ...failure, state: 'not-updated' };
    default:
      return { ...base, state: 'pending' };
  }
}

export async function trustStatus(deps: { ddb: DynamoDBDocumentClient; iot: IoTClient; tableName: string }, options: TrustStatusOptions): Promise<TrustStatusReport> {
  const things = options.all || !options.things?.length ? await allThings(deps.iot) : [...new Set(options.things)];
  const records = await trustRecords(deps.ddb, deps.tableName, things);
  // Without --bundle-id, the bundle of the newest push is the one the counts are about.
  const bundleId = options.bundleId ?? [...records.values()].sort((a, b) => b.startedAt.localeCompare(a.startedAt))[0]?.bundleId;
  const devices = things.map((thing) => rowOf(thing, records.get(thing), bundleId));
  const count = (state: TrustDeviceRow['state']): number => devices.filter((d) => d.state === state).length;
  return {
    ...(bundleId ? { bundleId } : {}),
    counts: { devices: devices.length, updated: count('updated'), refused: count('refused'), notUpdated: count('not-updated'), pending: count('pending'), neverAsked: count('never-asked'), onOtherBundle: count('on-other-bundle'), ackedLate: devices.filter((d) => d.ackedLateAt).length },
    devices,
  };
}

export function formatTrustStatus(report: TrustStatusReport, limit = 50): string[] {
  const c = report.counts;
  const lines = [
    report.bundleId ? `bundle ${report.bundleId}` : 'no trust update pushed yet',
    `devices ${c.devices}: updated ${c.updated}${c.ackedLate ? ` (${c.ackedLate} acked late)` : ''}, refused ${c.refused}, not updated ${c.notUpdated}, pending ${c.pending}, never asked ${c.neverAsked}` + (c.onOtherBundle ? `, on another bundle ${c.onOtherBundle}` : ''),
  ];
  const notable = report.devices.filter((d) => d.state !== 'updated' || d.ackedLateAt);
  for (const row of notable.slice(0, limit)) {
    if (row.ackedLateAt) lines.push(`  ${row.thingName}  updated  acked late at ${row.ackedLateAt}, after its update timed out (escalated ${row.reason ?? 'NO_ACK'}): it is on the bundle`);
    else lines.push(`  ${row.thingName}  ${row.state}${row.reason ? `  ${row.reason}` : ''}${row.cause ? `  ${row.cause.slice(0, 120)}` : ''}`);
  }
  if (notable.length > limit) lines.push(`  … and ${notable.length - limit} more (--json lists them all)`);
  return lines;
}
