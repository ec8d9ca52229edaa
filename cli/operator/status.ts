import { GetCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { CURRENT_SK, type HistoryItem, type RotationRecord, thingPk } from '../../domain/records.js';
import { RotationStatus } from '../../domain/rotation.js';
import { executionConsoleUrl, isThingName } from '../../domain/naming.js';
import { consoleExecutionPath } from '../../local/console/api.js';
import { loadWiring } from '../../wiring/index.js';
import { NotFoundError, UsageError } from './exit-codes.js';
import { fleetFigures, formatFleet, type FleetFigures, type ThrottledCalls } from './fleet.js';
import { renderTable, shortTime, type Column } from './text-table.js';

/** `rotor status`: where the fleet stands, or the whole story of one thing. */
export interface StatusOptions {
  thing?: string;
  status?: RotationStatus;
  /** Rows listed (counts always cover everything). */
  limit: number;
}

export interface StatusDeps {
  ddb: DynamoDBDocumentClient;
  tableName: string;
  /** Local executions have no Step Functions console page: the local console's, or how to trace them. */
  local: boolean;
  /** The local runtime's edge URL when it serves the console (/console/). */
  consoleBase?: string;
  now?: () => Date;
  /** Throttled calls per API, where the target counts them (the local edge). */
  throttledCalls?: () => Promise<ThrottledCalls | undefined>;
}

export type StatusCounts = Record<RotationStatus, number>;

export interface RotationRow {
  thing: string;
  status: RotationStatus;
  step: string;
  reason?: string;
  startedAt: string;
  updatedAt: string;
  attempts: number;
  rotationId: string;
  executionArn: string;
}

export interface HistoryRow {
  rotationId: string;
  outcome: RotationStatus;
  step: string;
  reason?: string;
  cause?: string;
  trigger?: string;
  startedAt: string;
  finishedAt: string;
  oldCertificateId: string;
  newCertificateId?: string;
  executionArn: string;
  /** Console URL, or for the local runtime the command that traces the execution. */
  link: string;
}

export type StatusReport =
  | { kind: 'fleet'; counts: StatusCounts; total: number; fleet: FleetFigures; filter?: RotationStatus; rows: RotationRow[]; truncated: boolean }
  | { kind: 'thing'; thing: string; current?: RotationRow & { link: string; cause?: string }; history: HistoryRow[] };

const STATUSES: readonly RotationStatus[] = Object.values(RotationStatus);

export function parseStatus(value: string): RotationStatus {
  const upper = value.toUpperCase().replace(/-/g, '_');
  if (!(STATUSES as readonly string[]).includes(upper)) {
    throw new UsageError(`--status must be one of ${STATUSES.join(', ')}; got ${JSON.stringify(value)}`);
  }
  return upper as RotationStatus;
}

export function parsePositiveInt(flag: string, value: string, max = 1_000_000): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1 || Number(value) > max) {
    throw new UsageError(`${flag} must be a whole number from 1 to ${max}; got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

export function requireThingName(value: string): string {
  if (!isThingName(value)) throw new UsageError(`--thing ${JSON.stringify(value)} is not a valid thing name`);
  return value;
}

function statusIndexName(): string {
  return loadWiring().table.statusIndex.name;
}

/** The Query on the sparse by-status index that both counting and listing page through. */
function statusQuery(deps: StatusDeps, status: RotationStatus) {
  return {
    TableName: deps.tableName,
    IndexName: statusIndexName(),
    KeyConditionExpression: '#status = :status',
    ExpressionAttributeNames: { '#status': 'status' },
    ExpressionAttributeValues: { ':status': status },
  };
}

/** Counts the current records of one status with COUNT queries on the sparse by-status index. */
export async function countStatus(deps: StatusDeps, status: RotationStatus): Promise<number> {
  let count = 0;
  let exclusiveStartKey: Record<string, unknown> | undefined;
  do {
    const page = await deps.ddb.send(
      new QueryCommand({
        ...statusQuery(deps, status),
        Select: 'COUNT',
        ExclusiveStartKey: exclusiveStartKey,
      }),
    );
    count += page.Count ?? 0;
    exclusiveStartKey = page.LastEvaluatedKey;
  } while (exclusiveStartKey);
  return count;
}

export async function countByStatus(deps: StatusDeps): Promise<StatusCounts> {
  const counts = await Promise.all(STATUSES.map((status) => countStatus(deps, status)));
  return Object.fromEntries(STATUSES.map((status, i) => [status, counts[i]])) as StatusCounts;
}

/** The current records of one status, most recently updated first, up to `limit` (or all). */
export async function listByStatus(deps: StatusDeps, status: RotationStatus, limit = Infinity): Promise<RotationRecord[]> {
  const records: RotationRecord[] = [];
  let exclusiveStartKey: Record<string, unknown> | undefined;
  do {
    const page = await deps.ddb.send(
      new QueryCommand({
        ...statusQuery(deps, status),
        ScanIndexForward: false,
        ...(Number.isFinite(limit) ? { Limit: Math.min(1000, limit - records.length) } : {}),
        ExclusiveStartKey: exclusiveStartKey,
      }),
    );
    records.push(...((page.Items ?? []) as RotationRecord[]));
    exclusiveStartKey = page.LastEvaluatedKey;
  } while (exclusiveStartKey && records.length < limit);
  return records.slice(0, limit);
}

export async function getCurrentRecord(deps: Pick<StatusDeps, 'ddb' | 'tableName'>, thing: string): Promise<RotationRecord | undefined> {
  const result = await deps.ddb.send(
    new GetCommand({ TableName: deps.tableName, Key: { pk: thingPk(thing), sk: CURRENT_SK }, ConsistentRead: true }),
  );
  return result.Item as RotationRecord | undefined;
}

/** Every history item of a thing, newest first (the sort key starts with the start time). */
export async function getHistory(deps: StatusDeps, thing: string): Promise<HistoryItem[]> {
  const items: HistoryItem[] = [];
  let exclusiveStartKey: Record<string, unknown> | undefined;
  do {
    const page = await deps.ddb.send(
      new QueryCommand({
        TableName: deps.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :history)',
        ExpressionAttributeValues: { ':pk': thingPk(thing), ':history': 'rotation#' },
        ScanIndexForward: false,
        ExclusiveStartKey: exclusiveStartKey,
      }),
    );
    items.push(...((page.Items ?? []) as HistoryItem[]));
    exclusiveStartKey = page.LastEvaluatedKey;
  } while (exclusiveStartKey);
  return items;
}

export function executionLink(executionArn: string, local: boolean, consoleBase?: string): string {
  if (!executionArn) return '-';
  if (!local) return executionConsoleUrl(executionArn);
  return consoleBase ? `${consoleBase}${consoleExecutionPath(executionArn)}` : `rotor trace --local --execution ${executionArn}`;
}

function toRow(record: RotationRecord): RotationRow {
  return {
    thing: record.thingName,
    status: record.status,
    step: record.step,
    reason: record.reason,
    startedAt: record.startedAt,
    updatedAt: record.updatedAt,
    attempts: record.attempts ?? 0,
    rotationId: record.rotationId,
    executionArn: record.executionArn,
  };
}

export async function status(deps: StatusDeps, options: StatusOptions): Promise<StatusReport> {
  if (options.thing !== undefined) {
    const thing = requireThingName(options.thing);
    const [current, history] = await Promise.all([getCurrentRecord(deps, thing), getHistory(deps, thing)]);
    if (!current && history.length === 0) {
      throw new NotFoundError(`no rotation recorded for thing ${thing} in table ${deps.tableName}`);
    }
    return {
      kind: 'thing',
      thing,
      current: current && { ...toRow(current), cause: current.cause, link: executionLink(current.executionArn, deps.local, deps.consoleBase) },
      history: history.map((item) => ({
        rotationId: item.rotationId,
        outcome: item.outcome,
        step: item.step,
        reason: item.reason,
        cause: item.cause,
        trigger: item.trigger,
        startedAt: item.startedAt,
        finishedAt: item.finishedAt,
        oldCertificateId: item.oldCertificateId,
        newCertificateId: item.newCertificateId,
        executionArn: item.executionArn,
        link: executionLink(item.executionArn, deps.local, deps.consoleBase),
      })),
    };
  }
  const counts = await countByStatus(deps);
  const fleet = await fleetFigures({ ddb: deps.ddb, tableName: deps.tableName, now: deps.now ?? (() => new Date()), throttledCalls: deps.throttledCalls }, counts);
  const listed = options.status ? [options.status] : STATUSES;
  const perStatus = await Promise.all(listed.map((s) => listByStatus(deps, s, options.limit)));
  const rows = perStatus
    .flat()
    .map(toRow)
    .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt))
    .slice(0, options.limit);
  const available = listed.reduce((sum, s) => sum + counts[s], 0);
  return {
    kind: 'fleet',
    counts,
    total: STATUSES.reduce((sum, s) => sum + counts[s], 0),
    fleet,
    filter: options.status,
    rows,
    truncated: rows.length < available,
  };
}

const ROTATION_COLUMNS: readonly Column<RotationRow>[] = [
  { header: 'THING', value: (r) => r.thing },
  { header: 'STATUS', value: (r) => r.status },
  { header: 'STEP', value: (r) => r.step },
  { header: 'REASON', value: (r) => r.reason ?? '-', maxWidth: 40 },
  { header: 'STARTED', value: (r) => shortTime(r.startedAt) },
  { header: 'UPDATED', value: (r) => shortTime(r.updatedAt) },
  { header: 'ATTEMPTS', value: (r) => String(r.attempts) },
];

const HISTORY_COLUMNS: readonly Column<HistoryRow>[] = [
  { header: 'STARTED', value: (r) => shortTime(r.startedAt) },
  { header: 'FINISHED', value: (r) => shortTime(r.finishedAt) },
  { header: 'OUTCOME', value: (r) => r.outcome },
  { header: 'STEP', value: (r) => r.step },
  { header: 'REASON', value: (r) => r.reason ?? '-', maxWidth: 40 },
  { header: 'TRIGGER', value: (r) => r.trigger ?? '-' },
  { header: 'EXECUTION', value: (r) => r.link },
];

export function formatStatus(report: StatusReport): string[] {
  if (report.kind === 'fleet') {
    const lines = [
      `${STATUSES.map((s) => `${s} ${report.counts[s]}`).join('   ')}   (total ${report.total})`,
      ...formatFleet(report.fleet),
      '',
    ];
    if (report.rows.length === 0) {
      lines.push(report.filter ? `no rotation is ${report.filter}` : 'no rotation recorded yet');
      return lines;
    }
    lines.push(...renderTable(ROTATION_COLUMNS, report.rows));
    if (report.truncated) lines.push('', `showing the ${report.rows.length} most recently updated; use --limit N or --status STATUS for more`);
    return lines;
  }
  const lines = [`thing ${report.thing}`];
  const current = report.current;
  if (current) {
    lines.push(
      `  status     ${current.status}${current.status === RotationStatus.InProgress ? ` (in ${current.step})` : ` (${current.step})`}`,
      ...(current.reason ? [`  reason     ${current.reason}${current.cause ? `: ${current.cause}` : ''}`] : []),
      `  rotation   ${current.rotationId}`,
      `  started    ${shortTime(current.startedAt)}   updated ${shortTime(current.updatedAt)}   attempts ${current.attempts}`,
      `  execution  ${current.link}`,
    );
  } else {
    lines.push('  no current record (only history)');
  }
  lines.push('', `history (${report.history.length}, newest first)`);
  if (report.history.length === 0) lines.push('  none yet');
  else lines.push(...renderTable(HISTORY_COLUMNS, report.history).map((line) => `  ${line}`));
  return lines;
}
