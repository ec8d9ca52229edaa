import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  ClaimLost,
  CURRENT_SK,
  historySk,
  RotationStatus,
  Step,
  thingPk,
  type HistoryItem,
  type IgnoredMessage,
  type RotationRecord,
  type WaitFor,
} from '../../domain/index.js';
import { CONDITIONAL_CHECK_FAILED, isNamed } from '../aws/errors.js';

/** The rotation table (domain/records.ts) as the functions read and write it. */
export interface TableDeps {
  db: DynamoDBDocumentClient;
  tableName: string;
}

export function currentKey(thingName: string): { pk: string; sk: typeof CURRENT_SK } {
  return { pk: thingPk(thingName), sk: CURRENT_SK };
}

/** The thing's current record, read strongly consistent: it decides what a message may do. */
export async function getCurrentRecord(deps: TableDeps, thingName: string): Promise<RotationRecord | undefined> {
  const out = await deps.db.send(new GetCommand({ TableName: deps.tableName, Key: currentKey(thingName), ConsistentRead: true }));
  return out.Item as RotationRecord | undefined;
}

export interface ParkTaskToken {
  thingName: string;
  rotationId: string;
  taskToken: string;
  waitFor: WaitFor;
  step: string;
  now: Date;
  /** Extra attributes to SET in the same write (e.g. newCertificateId). */
  set?: Record<string, string>;
  /** Attributes to ADD 1 to in the same write (e.g. csrRequests). */
  increment?: readonly string[];
}

/**
 * Parks a task token on the thing's record, where only device-message reads it back. The
 * condition makes sure the record still belongs to this rotation: a rotation that lost its
 * claim must not overwrite another rotation's token.
 */
export async function parkTaskToken(deps: TableDeps, park: ParkTaskToken): Promise<void> {
  const names: Record<string, string> = { '#status': 'status', '#step': 'step' };
  const values: Record<string, unknown> = {
    ':rid': park.rotationId,
    ':inProgress': RotationStatus.InProgress,
    ':waitFor': park.waitFor,
    ':token': park.taskToken,
    ':step': park.step,
    ':now': park.now.toISOString(),
  };
  const sets = ['waitFor = :waitFor', 'taskToken = :token', '#step = :step', 'updatedAt = :now'];
  Object.entries(park.set ?? {}).forEach(([attribute, value], i) => {
    names[`#set${i}`] = attribute;
    values[`:set${i}`] = value;
    sets.push(`#set${i} = :set${i}`);
  });
  const adds = (park.increment ?? []).map((attribute, i) => {
    names[`#add${i}`] = attribute;
    values[':one'] = 1;
    return `#add${i} :one`;
  });
  try {
    await deps.db.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: currentKey(park.thingName),
        UpdateExpression: `SET ${sets.join(', ')}${adds.length ? ` ADD ${adds.join(', ')}` : ''}`,
        ConditionExpression: 'rotationId = :rid AND #status = :inProgress',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      }),
    );
  } catch (error) {
    if (isNamed(error, CONDITIONAL_CHECK_FAILED)) throw new ClaimLost(park.thingName, park.rotationId);
    throw error;
  }
}

export interface NewCertificate {
  thingName: string;
  rotationId: string;
  certificateId: string;
  /** A recorded id whose certificate was found gone, which this one may replace. */
  replaces?: string;
  now: Date;
}

/**
 * Records the certificate a rotation created, before anything else is done with it, so that a
 * retried Issue certificate finds it instead of creating a second one. Exactly one certificate
 * per rotation: a concurrent attempt that recorded its own first wins (ConditionalCheckFailed).
 */
export async function recordNewCertificate(deps: TableDeps, record: NewCertificate): Promise<void> {
  await deps.db.send(
    new UpdateCommand({
      TableName: deps.tableName,
      Key: currentKey(record.thingName),
      UpdateExpression: 'SET newCertificateId = :id, #step = :step, updatedAt = :now',
      ConditionExpression: record.replaces
        ? 'rotationId = :rid AND #status = :inProgress AND newCertificateId = :replaced'
        : 'rotationId = :rid AND #status = :inProgress AND attribute_not_exists(newCertificateId)',
      ExpressionAttributeNames: { '#status': 'status', '#step': 'step' },
      ExpressionAttributeValues: {
        ':id': record.certificateId,
        ':rid': record.rotationId,
        ':inProgress': RotationStatus.InProgress,
        ':step': Step.IssueCertificate,
        ':now': record.now.toISOString(),
        ...(record.replaces ? { ':replaced': record.replaces } : {}),
      },
    }),
  );
}

/**
 * Clears a parked token once it is answered. Conditional on the token itself, so that a
 * newer token the next state already parked is never removed. Returns false when the token
 * had already been replaced.
 */
export async function releaseTaskToken(deps: TableDeps, thingName: string, taskToken: string, now: Date): Promise<boolean> {
  try {
    await deps.db.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: currentKey(thingName),
        UpdateExpression: 'SET updatedAt = :now REMOVE waitFor, taskToken',
        ConditionExpression: 'taskToken = :token',
        ExpressionAttributeValues: { ':token': taskToken, ':now': now.toISOString() },
      }),
    );
    return true;
  } catch (error) {
    if (isNamed(error, CONDITIONAL_CHECK_FAILED)) return false;
    throw error;
  }
}

/**
 * Keeps the last ignored message on the thing's record for the operator. Only an existing
 * record is touched: a message for an unknown thing must not create one. `updatedAt` is left
 * alone because it orders the by-status index by rotation progress, not by device noise.
 */
export async function recordIgnored(deps: TableDeps, thingName: string, ignored: IgnoredMessage): Promise<boolean> {
  try {
    await deps.db.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: currentKey(thingName),
        UpdateExpression: 'SET lastIgnored = :ignored ADD ignoredCount :one',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':ignored': ignored, ':one': 1 },
      }),
    );
    return true;
  } catch (error) {
    if (isNamed(error, CONDITIONAL_CHECK_FAILED)) return false;
    throw error;
  }
}

export interface AckReceived {
  thingName: string;
  rotationId: string;
  /** The certificate the crt_ack came over; the record's newCertificateId must be it. */
  certificateId: string;
  /** The status the record must still have: IN_PROGRESS for an ack in time, FAILED for a late one. */
  status: RotationStatus;
}

/**
 * Records the certificate a crt_ack came over (`ackedCertificateId`) before the ack answers
 * anything: Retire checks it, so a task token alone cannot make it retire the old
 * certificate. Conditional on the rotation, its status and its new certificate; false when the
 * record moved on since it was read.
 */
export async function recordAck(deps: TableDeps, ack: AckReceived): Promise<boolean> {
  try {
    await deps.db.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: currentKey(ack.thingName),
        UpdateExpression: 'SET ackedCertificateId = :cert',
        ConditionExpression: 'rotationId = :rid AND #status = :status AND newCertificateId = :cert',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':cert': ack.certificateId, ':rid': ack.rotationId, ':status': ack.status },
      }),
    );
    return true;
  } catch (error) {
    if (isNamed(error, CONDITIONAL_CHECK_FAILED)) return false;
    throw error;
  }
}

const SECONDS_PER_DAY = 86_400;

/** The DynamoDB TTL (epoch seconds) of a history item written at `now`. */
export function historyExpiry(now: Date, retentionDays: number): number {
  return Math.floor(now.getTime() / 1000) + retentionDays * SECONDS_PER_DAY;
}

export function historyItem(fields: Omit<HistoryItem, 'pk' | 'sk'>): HistoryItem {
  return { pk: thingPk(fields.thingName), sk: historySk(fields.startedAt, fields.rotationId), ...fields };
}
