import type { IoTClient } from '@aws-sdk/client-iot';
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import {
  AckNotVerified,
  ClaimLost,
  InvalidInput,
  MessageType,
  OldCertificateRevoked,
  RetireMode,
  REVOKED_STATUSES,
  RotationStatus,
  SharedCertificate,
  Step,
  Trigger,
  type RotationRecord,
} from '../domain/index.js';
import { describeCertificate, takeDownCertificate, thingsOf, type CertificateFacts, type DeleteRetry, type TakeDownResult } from './core/certificates.js';
import type { Clock } from './core/clock.js';
import { publishToDevice } from './core/device-channel.js';
import { optionalEnv, positiveIntegerEnv } from './core/environment.js';
import { once, rotorHandler, taskLogKeys } from './core/handler.js';
import { certificateIdField, objectInput, rotationIdField, stringField, thingNameField } from './core/input.js';
import { finishRotation, getCurrentRecord, type TableDeps } from './core/rotation-table.js';
import { MetricName, observability, type Telemetry } from './core/telemetry.js';
import { baseDeps, tracedIot, tracedIotData } from './core/runtime-deps.js';
import { pacedRuntime, pacedStep } from './core/pacing.js';
import { CallSite } from '../domain/pacing/index.js';

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
 * The checks before anything is touched. The record, not the task's output, says which
 * certificate the ack came over (whoever holds a task token can complete it with any output);
 * the new certificate must be ACTIVE; the old one must not have been revoked meanwhile (a
 * security decision: Roll back then takes the new one out of service too); and no other thing
 * may still use the old one.
 */
async function checkRetirable(
  deps: RetireCertificateDeps,
  input: RetireCertificateInput,
  record: RotationRecord | undefined,
): Promise<{ old?: CertificateFacts; leftover?: string }> {
  if (!record || record.rotationId !== input.rotationId || record.status !== RotationStatus.InProgress) throw new ClaimLost(input.thingName, input.rotationId);
  if (record.ackedCertificateId !== input.newCertificateId) {
    throw new AckNotVerified(
      `no crt_ack over the new certificate ${input.newCertificateId} is recorded (acked over: ${record.ackedCertificateId ?? 'nothing'}); nothing was retired`,
    );
  }
  const fresh = await describeCertificate(deps.iot, input.newCertificateId);
  if (fresh?.status !== 'ACTIVE') {
    throw new AckNotVerified(`the new certificate ${input.newCertificateId} is ${fresh ? fresh.status : 'gone'}, not ACTIVE; nothing was retired`);
  }
  const leftover = [record.leftoverCertificateId].find((id) => id && id !== input.newCertificateId && id !== input.oldCertificateId);
  const old = await describeCertificate(deps.iot, input.oldCertificateId);
  if (!old) return { leftover };
  if (REVOKED_STATUSES.includes(old.status)) throw new OldCertificateRevoked(old.certificateId, old.status);
  const others = (await thingsOf(deps.iot, old.certificateArn)).filter((thing) => thing !== input.thingName);
  if (others.length > 0) throw new SharedCertificate(old.certificateId, [input.thingName, ...others], [], 'left ACTIVE');
  return { old, leftover };
}

/**
 * Runs after device-message accepted a crt_ack made over the new certificate, so the device
 * provably holds a working key: the old certificate can go. An old certificate somebody else
 * set INACTIVE is retired all the same (the device is on the new one). Order matters: the
 * certificate is retired before crt_done (the device deletes its old key on crt_done), and
 * the success is recorded last (finishRotation) so that a retry after any partial run repeats
 * only idempotent steps; a retry after the record was written finds it SUCCEEDED and stops.
 */
export async function retireCertificate(event: unknown, deps: RetireCertificateDeps): Promise<RetireCertificateResult> {
  const input = parseRetireCertificateInput(event);
  const { thingName, rotationId } = input;

  const recorded = await getCurrentRecord(deps, thingName);
  if (recorded?.rotationId === rotationId && recorded.status === RotationStatus.Succeeded) {
    deps.telemetry.log.info('the rotation is already recorded SUCCEEDED; nothing left to do');
    return { retiredAt: recorded.finishedAt ?? recorded.updatedAt, oldCertificate: deps.retireMode === RetireMode.KeepInactive ? 'inactive' : 'deleted' };
  }

  const { old, leftover } = await checkRetirable(deps, input, recorded);
  if (leftover) {
    // An earlier failed rotation's certificate: the device is on this rotation's one now.
    const certificate = await describeCertificate(deps.iot, leftover);
    if (certificate) await takeDownCertificate(deps.iot, deps.clock, { certificate, thingName, keep: false, retry: deps.deleteRetry });
    deps.telemetry.log.info('retired the certificate a failed rotation left in service', { certificateId: leftover, found: !!certificate });
  }
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
  await finishRotation(deps, {
    outcome: RotationStatus.Succeeded,
    thingName,
    rotationId,
    executionArn: input.executionArn,
    oldCertificateId: input.oldCertificateId,
    newCertificateId: input.newCertificateId,
    trigger: input.trigger,
    startedAt: input.startedAt,
    now: finished,
    historyRetentionDays: deps.historyRetentionDays,
  });

  deps.telemetry.count(MetricName.RotationsSucceeded);
  deps.telemetry.log.info('rotation succeeded', {
    oldCertificateId: input.oldCertificateId,
    newCertificateId: input.newCertificateId,
    oldCertificate,
  });
  return { retiredAt: finished.toISOString(), oldCertificate };
}

const obs = observability('retire-certificate');
const runtime = once(() => {
  const base = baseDeps(obs);
  const paced = pacedRuntime(base);
  const deps: RetireCertificateDeps = {
    ...base,
    iot: paced.observe(tracedIot(obs), 'iot'),
    iotData: tracedIotData(obs),
    retireMode: parseRetireMode(optionalEnv('RETIRE_MODE')),
    historyRetentionDays: positiveIntegerEnv('HISTORY_RETENTION_DAYS', 400),
  };
  return { ...deps, pacing: paced.pacing };
});

/** Paced (docs/fleet-scale.md): the step's IoT calls are reserved on the shared budget first. */
export const handler = rotorHandler({ observability: obs, step: Step.RetireOldCertificate, logKeys: taskLogKeys }, (event: unknown) => {
  const deps = runtime();
  return pacedStep(deps, event, CallSite.RetireOldCertificate, () => retireCertificate(event, deps));
});
