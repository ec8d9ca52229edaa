import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { trustKey, TrustStatus, type TrustFailureReason, type TrustRecord } from '../../domain/index.js';
import { CONDITIONAL_CHECK_FAILED, isNamed } from '../aws/errors.js';
import type { TableDeps } from './rotation-table.js';

/**
 * The thing's trust record (domain/trust-update.ts, sk = trust) as the trust functions and
 * device-message read and write it. Every write is conditional on the update id, so an update
 * that lost its claim never writes over the next one's record.
 */
export async function getTrustRecord(deps: TableDeps, thingName: string): Promise<TrustRecord | undefined> {
  const out = await deps.db.send(new GetCommand({ TableName: deps.tableName, Key: trustKey(thingName), ConsistentRead: true }));
  return out.Item as TrustRecord | undefined;
}

async function conditional(send: () => Promise<unknown>): Promise<boolean> {
  try {
    await send();
    return true;
  } catch (error) {
    if (isNamed(error, CONDITIONAL_CHECK_FAILED)) return false;
    throw error;
  }
}

/** Parks the trust_req's task token and counts the request; false when the update no longer holds the record. */
export function parkTrustToken(deps: TableDeps, input: { thingName: string; updateId: string; taskToken: string; step: string; now: Date }): Promise<boolean> {
  return conditional(() =>
    deps.db.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: trustKey(input.thingName),
        UpdateExpression: 'SET taskToken = :token, #step = :step, updatedAt = :now ADD requests :one',
        ConditionExpression: 'updateId = :uid AND trustStatus = :inProgress',
        ExpressionAttributeNames: { '#step': 'step' },
        ExpressionAttributeValues: { ':token': input.taskToken, ':step': input.step, ':now': input.now.toISOString(), ':one': 1, ':uid': input.updateId, ':inProgress': TrustStatus.InProgress },
      }),
    ),
  );
}

/** Takes the token off the record once device-message answered it: it is spent. */
export function releaseTrustToken(deps: TableDeps, thingName: string, taskToken: string, now: Date): Promise<boolean> {
  return conditional(() =>
    deps.db.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: trustKey(thingName),
        UpdateExpression: 'SET updatedAt = :now REMOVE taskToken',
        ConditionExpression: 'taskToken = :token',
        ExpressionAttributeValues: { ':token': taskToken, ':now': now.toISOString() },
      }),
    ),
  );
}

/** Counts a trust_ack / trust_err that was dropped, with why, on the thing's trust record (when it has one). */
export function recordTrustIgnored(deps: TableDeps, thingName: string, ignored: { type: string; reason: string; at: string }): Promise<boolean> {
  return conditional(() =>
    deps.db.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: trustKey(thingName),
        UpdateExpression: 'SET lastIgnored = :ignored ADD ignoredCount :one',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':ignored': ignored, ':one': 1 },
      }),
    ),
  );
}

export type TrustOutcome =
  | { status: typeof TrustStatus.Updated; bundleId: string; certificateId: string }
  | { status: typeof TrustStatus.Refused | typeof TrustStatus.NotUpdated; reason: TrustFailureReason; cause: string };

/** Finishes the update on the record; false when it no longer holds the record (another update claimed it). */
export function finishTrustUpdate(deps: TableDeps, input: { thingName: string; updateId: string; step: string; now: Date; outcome: TrustOutcome }): Promise<boolean> {
  const { outcome } = input;
  const values: Record<string, unknown> = { ':uid': input.updateId, ':status': outcome.status, ':step': input.step, ':now': input.now.toISOString() };
  let update = 'SET trustStatus = :status, #step = :step, updatedAt = :now, finishedAt = :now';
  if (outcome.status === TrustStatus.Updated) {
    update += ', currentBundleId = :bundle, ackedCertificateId = :cert REMOVE taskToken, reason, #cause';
    values[':bundle'] = outcome.bundleId;
    values[':cert'] = outcome.certificateId;
  } else {
    update += ', reason = :reason, #cause = :cause REMOVE taskToken';
    values[':reason'] = outcome.reason;
    values[':cause'] = outcome.cause.slice(0, 2048);
  }
  return conditional(() =>
    deps.db.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: trustKey(input.thingName),
        UpdateExpression: update,
        ConditionExpression: 'updateId = :uid',
        ExpressionAttributeNames: { '#step': 'step', '#cause': 'cause' },
        ExpressionAttributeValues: values,
      }),
    ),
  );
}

/**
 * Records a trust_ack that came after its update timed out (domain decideTrust, 'acked-late';
 * or an answer whose task token was already spent): the device's current bundle is the update's,
 * although the update ends, or ended, NOT_UPDATED. Only while the record is still that update's.
 */
export function recordLateTrustAck(deps: TableDeps, input: { thingName: string; updateId: string; bundleId: string; certificateId: string; now: Date }): Promise<boolean> {
  return conditional(() =>
    deps.db.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: trustKey(input.thingName),
        UpdateExpression: 'SET currentBundleId = :bundle, ackedCertificateId = :cert, ackedLateAt = :now, updatedAt = :now',
        // UPDATED: the update was answered in time after all (this was a repeated ack).
        ConditionExpression: 'updateId = :uid AND bundleId = :bundle AND trustStatus <> :updated',
        ExpressionAttributeValues: { ':bundle': input.bundleId, ':cert': input.certificateId, ':now': input.now.toISOString(), ':uid': input.updateId, ':updated': TrustStatus.Updated },
      }),
    ),
  );
}
