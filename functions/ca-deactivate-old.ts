import { ListCertificatesByCACommand, UpdateCACertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { CaRolloverStatus, oldCaStillInUse, rolloverPk, ROLLOVER_SK, type ResolvedCas } from '../domain/ca-rollover.js';
import { resolvedCasField, rolloverIdField, rolloverLogKeys } from './core/ca-rollover-input.js';
import type { Clock } from './core/clock.js';
import { once, rotorHandler } from './core/handler.js';
import { objectInput } from './core/input.js';
import type { TableDeps } from './core/rotation-table.js';
import { baseDeps, tracedIot } from './core/runtime-deps.js';
import { observability, type Telemetry } from './core/telemetry.js';

export interface DeactivateOldCaDeps extends TableDeps {
  iot: IoTClient;
  clock: Clock;
  telemetry: Telemetry;
  pageSize?: number;
}

export function parseDeactivateOldCaEvent(event: unknown): { rolloverId: string; cas: ResolvedCas } {
  const input = objectInput(event, 'ca-deactivate-old input');
  return { rolloverId: rolloverIdField(input), cas: resolvedCasField(input) };
}

/** ListCertificatesByCA allows up to 250 a page; INACTIVE and REVOKED ones are listed too. */
const PAGE_SIZE = 250;

/**
 * Step (d): the old CA becomes INACTIVE only when no ACTIVE device certificate under it
 * remains. The pass that found none may be minutes old, so this looks again, every page,
 * right before UpdateCACertificate: one found means OldCaStillInUse, and the rollover goes
 * back to moving devices with the old CA still ACTIVE.
 */
export async function deactivateOldCa(event: unknown, deps: DeactivateOldCaDeps): Promise<{ oldCaStatus: 'INACTIVE' }> {
  const { rolloverId, cas } = parseDeactivateOldCaEvent(event);
  let marker: string | undefined;
  do {
    const page = await deps.iot.send(new ListCertificatesByCACommand({ caCertificateId: cas.oldCaCertificateId, pageSize: deps.pageSize ?? PAGE_SIZE, marker }));
    const active = (page.certificates ?? []).find((certificate) => certificate.status === 'ACTIVE');
    if (active) throw oldCaStillInUse(`certificate ${active.certificateId} under the old CA ${cas.oldCaCertificateId} is ACTIVE: the CA stays ACTIVE`);
    marker = page.nextMarker;
  } while (marker);

  await deps.iot.send(new UpdateCACertificateCommand({ certificateId: cas.oldCaCertificateId, newStatus: 'INACTIVE' }));
  await deps.db.send(
    new UpdateCommand({
      TableName: deps.tableName,
      Key: { pk: rolloverPk(cas.oldCaCertificateId), sk: ROLLOVER_SK },
      UpdateExpression: 'SET #status = :done, oldCaStatus = :inactive, devicesLeft = :zero, stuckDevices = :none, updatedAt = :now',
      ConditionExpression: 'rolloverId = :rid',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':done': CaRolloverStatus.Done, ':inactive': 'INACTIVE', ':zero': 0, ':none': [], ':now': deps.clock.now().toISOString(), ':rid': rolloverId },
    }),
  );
  deps.telemetry.log.info('old CA set INACTIVE', { oldCaCertificateId: cas.oldCaCertificateId });
  return { oldCaStatus: 'INACTIVE' };
}

const obs = observability('ca-deactivate-old');
const runtime = once(() => ({ ...baseDeps(obs), iot: tracedIot(obs) }));

export const handler = rotorHandler({ observability: obs, step: 'Deactivate old CA', logKeys: rolloverLogKeys }, (event: unknown) => deactivateOldCa(event, runtime()));
