import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { CaRolloverStatus, issuingCaConflict, rolloverPk, ROLLOVER_SK, signerNotPrivateCa, type ResolvedCas } from '../domain/ca-rollover.js';
import { SignerEnv, SignerKind } from '../domain/signer.js';
import { CONDITIONAL_CHECK_FAILED, isNamed } from './aws/errors.js';
import { resolvedCasField, rolloverIdField, rolloverLogKeys } from './core/ca-rollover-input.js';
import type { Clock } from './core/clock.js';
import { optionalEnv } from './core/environment.js';
import { once, rotorHandler } from './core/handler.js';
import { objectInput, stringField } from './core/input.js';
import { switchIssuingCa } from './core/issuing-ca.js';
import type { TableDeps } from './core/rotation-table.js';
import { baseDeps } from './core/runtime-deps.js';
import { observability, type Telemetry } from './core/telemetry.js';

export interface SwitchIssuingEvent {
  rolloverId: string;
  executionArn: string;
  cas: ResolvedCas;
}

export interface SwitchIssuingDeps extends TableDeps {
  /** The deployment's signer (ROTOR_SIGNER): only private-ca reads the issuing-CA item. */
  signer: string;
  clock: Clock;
  telemetry: Telemetry;
}

export function parseSwitchIssuingEvent(event: unknown): SwitchIssuingEvent {
  const input = objectInput(event, 'ca-switch-issuing input');
  return { rolloverId: rolloverIdField(input), executionArn: stringField(input, 'executionArn', 2048), cas: resolvedCasField(input) };
}

/**
 * Step (b): the issuing-CA item names NEW (a conditional write, functions/core/issuing-ca.ts),
 * and the rollover's progress item is started for `rotor ca status`. From here every Issue
 * certificate signs with NEW, including that of a rotation already in flight.
 */
export async function switchIssuing(event: unknown, deps: SwitchIssuingDeps): Promise<{ issuingCaArn: string }> {
  const { rolloverId, executionArn, cas } = parseSwitchIssuingEvent(event);
  if (deps.signer !== SignerKind.PrivateCa) {
    throw signerNotPrivateCa(`the deployment signs with ${deps.signer} (${SignerEnv.Signer}); a CA rollover needs private-ca, or no device certificate would come from ${cas.newPrivateCaArn}`);
  }
  const now = deps.clock.now();
  try {
    await switchIssuingCa(deps, { caArn: cas.newPrivateCaArn, caCertificateId: cas.newCaCertificateId, previousCaCertificateId: cas.oldCaCertificateId, rolloverId, now });
  } catch (error) {
    if (!isNamed(error, CONDITIONAL_CHECK_FAILED)) throw error;
    throw issuingCaConflict(`the issuing CA is neither ${cas.oldCaCertificateId} nor ${cas.newCaCertificateId}: another rollover changed it; this one stops without touching it`);
  }
  await deps.db.send(
    new UpdateCommand({
      TableName: deps.tableName,
      Key: { pk: rolloverPk(cas.oldCaCertificateId), sk: ROLLOVER_SK },
      // A new rollover of the same old CA starts the count again.
      UpdateExpression:
        'SET rolloverId = :rid, executionArn = :exec, oldCaCertificateId = :old, newCaCertificateId = :new, newPrivateCaArn = :arn, #status = :moving, startedAt = :now, updatedAt = :now REMOVE devicesAtStart, devicesLeft, stuckDevices, oldCaStatus',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: {
        ':rid': rolloverId,
        ':exec': executionArn,
        ':old': cas.oldCaCertificateId,
        ':new': cas.newCaCertificateId,
        ':arn': cas.newPrivateCaArn,
        ':moving': CaRolloverStatus.Moving,
        ':now': now.toISOString(),
      },
    }),
  );
  deps.telemetry.log.info('issuing CA switched', { newPrivateCaArn: cas.newPrivateCaArn, oldCaCertificateId: cas.oldCaCertificateId });
  return { issuingCaArn: cas.newPrivateCaArn };
}

const obs = observability('ca-switch-issuing');
const runtime = once(() => ({ ...baseDeps(obs), signer: optionalEnv(SignerEnv.Signer) ?? SignerKind.AwsIot }));

export const handler = rotorHandler({ observability: obs, step: 'Switch issuing CA', logKeys: rolloverLogKeys }, (event: unknown) => switchIssuing(event, runtime()));
