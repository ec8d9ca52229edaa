import type { IoTClient } from '@aws-sdk/client-iot';
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { ClaimLost, InvalidInput, MessageType, RetireMode, RotationStatus, Step, Trigger } from '../domain/index.js';
import { isTransactionConditionFailure } from './aws/errors.js';
import { describeCertificate, takeDownCertificate, type DeleteRetry, type TakeDownResult } from './core/certificates.js';
import type { Clock } from './core/clock.js';
import { publishToDevice } from './core/device-channel.js';
import { optionalEnv, positiveIntegerEnv } from './core/environment.js';
import { once, rotorHandler, taskLogKeys } from './core/handler.js';
import { certificateIdField, objectInput, rotationIdField, stringField, thingNameField } from './core/input.js';
import { currentKey, historyExpiry, historyItem, type TableDeps } from './core/rotation-table.js';
import { MetricName, observability, type Telemetry } from './core/telemetry.js';
import { baseDeps, tracedIot, tracedIotData } from './core/runtime-deps.js';

/** What the 'Retire old certificate' state sends. */
export interface RetireCertificateInput {
  thingName: string;
  rotationId: string;
  executionArn: string;
  oldCertificateId: string;
  newCertificateId: string;
  trigger: Trigger;
  startedAt: string;
}

export interface RetireCertificateDeps extends TableDeps {
  iot: IoTClient;
  iotData: IoTDataPlaneClient;
  clock: Clock;
  telemetry: Telemetry;
  retireMode: RetireMode;
  historyRetentionDays: number;
  deleteRetry?: DeleteRetry;
}

export interface RetireCertificateResult {
  retiredAt: string;
  oldCertificate: TakeDownResult;
}

const TRIGGERS: readonly string[] = Object.values(Trigger);

export function parseRetireCertificateInput(event: unknown): RetireCertificateInput {
  const input = objectInput(event, 'retire-certificate input');
  const parsed: RetireCertificateInput = {
    thingName: thingNameField(input),
    rotationId: rotationIdField(input),
    executionArn: stringField(input, 'executionArn', 2048),
    oldCertificateId: certificateIdField(input, 'oldCertificateId'),
    newCertificateId: certificateIdField(input, 'newCertificateId'),
    trigger: stringField(input, 'trigger', 16) as Trigger,
    startedAt: stringField(input, 'startedAt', 64),
  };
  if (!TRIGGERS.includes(parsed.trigger)) throw new InvalidInput(`trigger must be one of ${TRIGGERS.join(', ')}`);
  // The one mistake here that would strand the device: retiring the certificate it now uses.
  if (parsed.oldCertificateId === parsed.newCertificateId) throw new InvalidInput('oldCertificateId and newCertificateId are the same certificate');
  return parsed;
}

export function parseRetireMode(value: string | undefined): RetireMode {
  const modes: readonly string[] = Object.values(RetireMode);
  if (value === undefined) return RetireMode.Delete;
  if (!modes.includes(value)) throw new InvalidInput(`RETIRE_MODE must be one of ${modes.join(', ')}, got ${JSON.stringify(value)}`);
  return value as RetireMode;
}

/**
 * Runs only after device-message accepted a crt_ack made over the new certificate, so the
 * device provably holds a working key: the old certificate can go. Order matters: the
 * certificate is retired before crt_done (the device deletes its old key on crt_done), and
 * the success is recorded last so that a retry after any partial run repeats only
 * idempotent steps.
 */
export async function retireCertificate(event: unknown, deps: RetireCertificateDeps): Promise<RetireCertificateResult> {
  const input = parseRetireCertificateInput(event);
  const { thingName, rotationId } = input;

  const old = await describeCertificate(deps.iot, input.oldCertificateId);
  const oldCertificate: TakeDownResult = old
    ? await takeDownCertificate(deps.iot, deps.clock, {
        certificate: old,
        thingName,
        keep: deps.retireMode === RetireMode.KeepInactive,
        retry: deps.deleteRetry,
      })
    : 'deleted';

  await publishToDevice(deps.iotData, thingName, { type: MessageType.RotationDone, body: { rotationId } });

  const finished = deps.clock.now();
  const finishedAt = finished.toISOString();
  try {
    await deps.db.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Update: {
              TableName: deps.tableName,
              Key: currentKey(thingName),
              UpdateExpression:
                'SET #status = :succeeded, #step = :rotated, newCertificateId = :new, finishedAt = :now, updatedAt = :now REMOVE waitFor, taskToken, reason, #cause',
              ConditionExpression: 'rotationId = :rid',
              ExpressionAttributeNames: { '#status': 'status', '#step': 'step', '#cause': 'cause' },
              ExpressionAttributeValues: {
                ':succeeded': RotationStatus.Succeeded,
                ':rotated': Step.Rotated,
                ':new': input.newCertificateId,
                ':now': finishedAt,
                ':rid': rotationId,
              },
            },
          },
          {
            Put: {
              TableName: deps.tableName,
              Item: historyItem({
                thingName,
                rotationId,
                executionArn: input.executionArn,
                outcome: RotationStatus.Succeeded,
                step: Step.Rotated,
                oldCertificateId: input.oldCertificateId,
                newCertificateId: input.newCertificateId,
                trigger: input.trigger,
                startedAt: input.startedAt,
                finishedAt,
                expiresAt: historyExpiry(finished, deps.historyRetentionDays),
              }),
            },
          },
        ],
      }),
    );
  } catch (error) {
    if (isTransactionConditionFailure(error)) throw new ClaimLost(thingName, rotationId);
    throw error;
  }

  deps.telemetry.count(MetricName.RotationsSucceeded);
  deps.telemetry.log.info('rotation succeeded', {
    oldCertificateId: input.oldCertificateId,
    newCertificateId: input.newCertificateId,
    oldCertificate,
  });
  return { retiredAt: finishedAt, oldCertificate };
}

const obs = observability('retire-certificate');
const runtime = once(
  (): RetireCertificateDeps => ({
    ...baseDeps(obs),
    iot: tracedIot(obs),
    iotData: tracedIotData(obs),
    retireMode: parseRetireMode(optionalEnv('RETIRE_MODE')),
    historyRetentionDays: positiveIntegerEnv('HISTORY_RETENTION_DAYS', 400),
  }),
);

export const handler = rotorHandler({ observability: obs, step: Step.RetireOldCertificate, logKeys: taskLogKeys }, (event: unknown) =>
  retireCertificate(event, runtime()),
);
