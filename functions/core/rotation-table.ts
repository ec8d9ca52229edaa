import { GetCommand, TransactWriteCommand, UpdateCommand, type DynamoDBDocumentClient, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import {
  ClaimLost,
  CURRENT_SK,
  historySk,
  RotationStatus,
  Step,
  thingPk,
  type HistoryItem,
  type IgnoredMessage,
  type IssueIntent,
  type IssuedFrom,
  type RotationRecord,
  type Trigger,
  WaitFor,
} from '../../domain/index.js';
import { CONDITIONAL_CHECK_FAILED, isNamed, isTransactionConditionFailure } from '../aws/errors.js';

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

/**
 * A conditional update of the thing's current record: false when its condition failed (the
 * record moved on, or is not there), which each caller answers in its own way.
 */
async function updateCurrentIf(deps: TableDeps, thingName: string, update: Omit<UpdateCommandInput, 'TableName' | 'Key'>): Promise<boolean> {
  try {
    await deps.db.send(new UpdateCommand({ TableName: deps.tableName, Key: currentKey(thingName), ...update }));
    return true;
  } catch (error) {
    if (isNamed(error, CONDITIONAL_CHECK_FAILED)) return false;
    throw error;
  }
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
  const parked = await updateCurrentIf(deps, park.thingName, {
    UpdateExpression: `SET ${sets.join(', ')}${adds.length ? ` ADD ${adds.join(', ')}` : ''}`,
    ConditionExpression: 'rotationId = :rid AND #status = :inProgress',
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  });
  if (!parked) throw new ClaimLost(park.thingName, park.rotationId);
}

export interface NewCertificate {
  thingName: string;
  rotationId: string;
  certificateId: string;
  /** A recorded id whose certificate was found gone, which this one may replace. */
  replaces?: string;
  /** The new certificate's notAfter (ISO 8601), recorded as newCertificateNotAfter. */
  notAfter?: string;
  /** What Issue read of the old certificate, kept for Retire in the same write. */
  issuedFrom?: IssuedFrom;
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
      UpdateExpression:
        `SET newCertificateId = :id, #step = :step, updatedAt = :now${record.notAfter ? ', newCertificateNotAfter = :notAfter' : ''}` +
        (record.issuedFrom ? ', issuedFrom = :from REMOVE issueIntent' : ' REMOVE issueIntent, issuedFrom'),
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
        ...(record.notAfter ? { ':notAfter': record.notAfter } : {}),
        ...(record.issuedFrom ? { ':from': record.issuedFrom } : {}),
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
  return updateCurrentIf(deps, thingName, {
    UpdateExpression: 'SET updatedAt = :now REMOVE waitFor, taskToken',
    ConditionExpression: 'taskToken = :token',
    ExpressionAttributeValues: { ':token': taskToken, ':now': now.toISOString() },
  });
}

/**
 * Keeps the last ignored message on the thing's record for the operator. Only an existing
 * record is touched: a message for an unknown thing must not create one. `updatedAt` is left
 * alone because it orders the by-status index by rotation progress, not by device noise.
 */
export async function recordIgnored(deps: TableDeps, thingName: string, ignored: IgnoredMessage): Promise<boolean> {
  return updateCurrentIf(deps, thingName, {
    UpdateExpression: 'SET lastIgnored = :ignored ADD ignoredCount :one',
    ConditionExpression: 'attribute_exists(pk)',
    ExpressionAttributeValues: { ':ignored': ignored, ':one': 1 },
  });
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
  return updateCurrentIf(deps, ack.thingName, {
    UpdateExpression: 'SET ackedCertificateId = :cert',
    ConditionExpression: 'rotationId = :rid AND #status = :status AND newCertificateId = :cert',
    ExpressionAttributeNames: { '#status': 'status' },
    ExpressionAttributeValues: { ':cert': ack.certificateId, ':rid': ack.rotationId, ':status': ack.status },
  });
}

const SECONDS_PER_DAY = 86_400;

/** The DynamoDB TTL (epoch seconds) of a history item written at `now`. */
export function historyExpiry(now: Date, retentionDays: number): number {
  return Math.floor(now.getTime() / 1000) + retentionDays * SECONDS_PER_DAY;
}

export function historyItem(fields: Omit<HistoryItem, 'pk' | 'sk'>): HistoryItem {
  return { pk: thingPk(fields.thingName), sk: historySk(fields.startedAt, fields.rotationId), ...fields };
}

/**
 * Records what Issue certificate is about to create, right before CreateCertificateFromCsr:
 * if the function dies between the create and recordNewCertificate, the retry (or Roll back)
 * knows to look for a certificate carrying this key. It also clears the csr_res's token, which
 * device-message answered and left on the record: the release costs no call of its own.
 */
export async function recordIssueIntent(deps: TableDeps, intent: { thingName: string; rotationId: string; intent: IssueIntent }): Promise<void> {
  const recorded = await updateCurrentIf(deps, intent.thingName, {
    UpdateExpression: 'SET issueIntent = :intent REMOVE waitFor, taskToken',
    // Never a token parked after this Issue: an attempt that outlived its timeout, writing after
    // Deliver parked the crt_ack's token, fails here (ClaimLost) instead of removing that token.
    ConditionExpression: 'rotationId = :rid AND #status = :inProgress AND (attribute_not_exists(waitFor) OR waitFor = :csrRes)',
    ExpressionAttributeNames: { '#status': 'status' },
    ExpressionAttributeValues: { ':intent': intent.intent, ':rid': intent.rotationId, ':inProgress': RotationStatus.InProgress, ':csrRes': WaitFor.CsrResponse },
  });
  if (!recorded) throw new ClaimLost(intent.thingName, intent.rotationId);
}

/** Removes an intent whose create was refused outright (nothing was made), so no retry searches for it. */
export async function clearIssueIntent(deps: TableDeps, thingName: string, rotationId: string): Promise<void> {
  // A record that moved on to another rotation has no intent of this one to clear.
  await updateCurrentIf(deps, thingName, {
    UpdateExpression: 'REMOVE issueIntent',
    ConditionExpression: 'rotationId = :rid',
    ExpressionAttributeValues: { ':rid': rotationId },
  });
}

interface FinishCommon {
  thingName: string;
  rotationId: string;
  executionArn: string;
  oldCertificateId: string;
  newCertificateId?: string;
  trigger?: Trigger;
  startedAt: string;
  now: Date;
  historyRetentionDays: number;
}

export type Finish =
  | (FinishCommon & { outcome: typeof RotationStatus.Succeeded; newCertificateId: string })
  | (FinishCommon & {
      outcome: typeof RotationStatus.Failed;
      step: string;
      reason: string;
      cause: string;
      /** Only an abandoned claim is released: the record must still be IN_PROGRESS for that execution. */
      onlyIfInProgress?: boolean;
      /** A new certificate this rotation leaves in service, for the next one to finish. */
      leftoverCertificateId?: string;
    });

/**
 * recorded: current record and history item written together. history-only: the current record
 * belongs to another rotation, so only this one's history item was written. already-succeeded:
 * this rotation is recorded SUCCEEDED and nothing was changed. not-current: (onlyIfInProgress)
 * the claim had already moved on; nothing was written.
 */
export type FinishResult = 'recorded' | 'history-only' | 'already-succeeded' | 'not-current';

/**
 * Finishes a rotation, success or failure: the thing's current record and a history item in
 * one transaction. A SUCCEEDED rotation is never overwritten: not its record (a Record failure
 * that runs after a Retire that committed and then timed out), not its history item.
 */
export async function finishRotation(deps: TableDeps, finish: Finish): Promise<FinishResult> {
  const finishedAt = finish.now.toISOString();
  const succeeded = finish.outcome === RotationStatus.Succeeded;
  const history = {
    Put: {
      TableName: deps.tableName,
      Item: historyItem({
        thingName: finish.thingName,
        rotationId: finish.rotationId,
        executionArn: finish.executionArn,
        outcome: finish.outcome,
        step: succeeded ? Step.Rotated : finish.step,
        ...(succeeded ? {} : { reason: finish.reason, cause: finish.cause }),
        oldCertificateId: finish.oldCertificateId,
        ...(finish.newCertificateId ? { newCertificateId: finish.newCertificateId } : {}),
        ...(finish.trigger ? { trigger: finish.trigger } : {}),
        startedAt: finish.startedAt,
        finishedAt,
        expiresAt: historyExpiry(finish.now, finish.historyRetentionDays),
      }),
      ConditionExpression: 'attribute_not_exists(sk) OR outcome <> :succeeded',
      ExpressionAttributeValues: { ':succeeded': RotationStatus.Succeeded },
    },
  };
  const current = succeeded
    ? {
        Update: {
          TableName: deps.tableName,
          Key: currentKey(finish.thingName),
          UpdateExpression:
            'SET #status = :succeeded, #step = :rotated, newCertificateId = :new, finishedAt = :now, updatedAt = :now REMOVE waitFor, taskToken, reason, #cause, issueIntent, leftoverCertificateId',
          ConditionExpression: 'rotationId = :rid AND #status = :inProgress',
          ExpressionAttributeNames: { '#status': 'status', '#step': 'step', '#cause': 'cause' },
          ExpressionAttributeValues: {
            ':succeeded': RotationStatus.Succeeded,
            ':inProgress': RotationStatus.InProgress,
            ':rotated': Step.Rotated,
            ':new': finish.newCertificateId,
            ':now': finishedAt,
            ':rid': finish.rotationId,
          },
        },
      }
    : {
        Update: {
          TableName: deps.tableName,
          Key: currentKey(finish.thingName),
          UpdateExpression: `SET #status = :failed, #step = :step, reason = :reason, #cause = :cause, executionArn = :exec, finishedAt = :now, updatedAt = :now${
            finish.leftoverCertificateId ? ', leftoverCertificateId = :leftover' : ''
          } REMOVE waitFor, taskToken, issueIntent`,
          ConditionExpression: finish.onlyIfInProgress
            ? 'rotationId = :rid AND executionArn = :exec AND #status = :inProgress'
            : 'rotationId = :rid AND #status <> :succeeded',
          ExpressionAttributeNames: { '#status': 'status', '#step': 'step', '#cause': 'cause' },
          ExpressionAttributeValues: {
            ':failed': RotationStatus.Failed,
            ':step': finish.step,
            ':reason': finish.reason,
            ':cause': finish.cause,
            ':exec': finish.executionArn,
            ':now': finishedAt,
            ':rid': finish.rotationId,
            ...(finish.onlyIfInProgress ? { ':inProgress': RotationStatus.InProgress } : { ':succeeded': RotationStatus.Succeeded }),
            ...(finish.leftoverCertificateId ? { ':leftover': finish.leftoverCertificateId } : {}),
          },
        },
      };

  try {
    await deps.db.send(new TransactWriteCommand({ TransactItems: [current, history] }));
    return 'recorded';
  } catch (error) {
    if (!isTransactionConditionFailure(error)) throw error;
  }
  const now = await getCurrentRecord(deps, finish.thingName);
  const mine = now?.rotationId === finish.rotationId;
  if (mine && now.status === RotationStatus.Succeeded) return 'already-succeeded';
  if (succeeded) throw new ClaimLost(finish.thingName, finish.rotationId);
  if (finish.onlyIfInProgress) return 'not-current';
  try {
    await deps.db.send(new TransactWriteCommand({ TransactItems: [history] }));
    return 'history-only';
  } catch (error) {
    // The only condition left: this rotation's history item says SUCCEEDED.
    if (isTransactionConditionFailure(error)) return 'already-succeeded';
    throw error;
  }
}

/** Forgets a leftover certificate once it is taken down (Issue) or retired (Retire does it in finishRotation). */
export async function clearLeftover(deps: TableDeps, thingName: string, rotationId: string): Promise<void> {
  // A record that moved on to another rotation has no leftover of this one to forget.
  await updateCurrentIf(deps, thingName, {
    UpdateExpression: 'REMOVE leftoverCertificateId',
    ConditionExpression: 'rotationId = :rid',
    ExpressionAttributeValues: { ':rid': rotationId },
  });
}
