import { UpdateCertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
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
  type IssuedFrom,
  type RotationRecord,
} from '../domain/index.js';
import { CERTIFICATE_STATE_EXCEPTION, isNamed, RESOURCE_NOT_FOUND } from './aws/errors.js';
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
 *
 * API thrift (docs/design.md): when this rotation issued the new certificate, Issue recorded
 * the old one's ARN and policies with it (`issuedFrom`), and the checks spend one 10-TPS call,
 * ListPrincipalThings, the one answer nothing earlier can give fresh. The new certificate was
 * created ACTIVE by this rotation and the device has just connected with it (the ack's
 * principal); the old one's revocation is proved by UpdateCertificate's own refusal
 * (CertificateStateException: a REVOKED certificate's status cannot change), made before
 * anything else is touched. Otherwise (a resume after a late ack, a certificate adopted after
 * a crash) both certificates are described first, as before.
 */
async function checkRetirable(deps: RetireCertificateDeps, input: RetireCertificateInput, record: RotationRecord | undefined): Promise<RetirePlan> {
  if (!record || record.rotationId !== input.rotationId || record.status !== RotationStatus.InProgress) throw new ClaimLost(input.thingName, input.rotationId);
  if (record.ackedCertificateId !== input.newCertificateId) {
    throw new AckNotVerified(
      `no crt_ack over the new certificate ${input.newCertificateId} is recorded (acked over: ${record.ackedCertificateId ?? 'nothing'}); nothing was retired`,
    );
  }
  const leftover = [record.leftoverCertificateId].find((id) => id && id !== input.newCertificateId && id !== input.oldCertificateId);
  const issuedFrom = issuedByThisRotation(record, input);
  if (issuedFrom) {
    const old: CertificateFacts = { certificateId: input.oldCertificateId, certificateArn: issuedFrom.oldCertificateArn, status: 'ACTIVE', certificatePem: '' };
    await refuseShared(deps, input, old, false);
    return { old, policies: issuedFrom.oldPolicies, statusKnown: false, leftover };
  }
  const fresh = await describeCertificate(deps.iot, input.newCertificateId);
  if (fresh?.status !== 'ACTIVE') {
    throw new AckNotVerified(`the new certificate ${input.newCertificateId} is ${fresh ? fresh.status : 'gone'}, not ACTIVE; nothing was retired`);
  }
  const old = await describeCertificate(deps.iot, input.oldCertificateId);
  if (!old) return { leftover, statusKnown: true };
  if (REVOKED_STATUSES.includes(old.status)) throw new OldCertificateRevoked(old.certificateId, old.status);
  await refuseShared(deps, input, old, true);
  return { old, statusKnown: true, leftover };
}

interface RetirePlan {
  /** The old certificate; absent when it is already gone. */
  old?: CertificateFacts;
  /** Its policies as Issue listed them; absent: listed when it is taken down. */
  policies?: readonly string[];
  /** Whether old.status was read just now (else UpdateCertificate finds it out). */
  statusKnown: boolean;
  leftover?: string;
}

/** Issue's record of the old certificate, when it belongs to this rotation's new certificate. */
function issuedByThisRotation(record: RotationRecord, input: RetireCertificateInput): IssuedFrom | undefined {
  const from = record.issuedFrom;
  if (!from || record.newCertificateId !== input.newCertificateId) return undefined;
  return from.newCertificateId === input.newCertificateId && from.oldCertificateId === input.oldCertificateId ? from : undefined;
}

/** No other thing may use the old certificate: checked fresh, right before it is deactivated. */
async function refuseShared(deps: RetireCertificateDeps, input: RetireCertificateInput, old: CertificateFacts, statusKnown: boolean): Promise<void> {
  const others = (await thingsOf(deps.iot, old.certificateArn)).filter((thing) => thing !== input.thingName);
  if (others.length === 0) return;
  if (!statusKnown) {
    // A revoked certificate is a security decision that outranks the sharing (Roll back takes the new one down).
    const now = await describeCertificate(deps.iot, old.certificateId);
    if (now && REVOKED_STATUSES.includes(now.status)) throw new OldCertificateRevoked(now.certificateId, now.status);
  }
  throw new SharedCertificate(old.certificateId, [input.thingName, ...others], [], 'left ACTIVE');
}

/**
 * Deactivates the old certificate whose status was not read: UpdateCertificate refuses a
 * REVOKED (or PENDING_TRANSFER) one with CertificateStateException, and only then is it
 * described, to name its status. Returns false when the certificate is gone.
 */
async function deactivateOld(deps: RetireCertificateDeps, old: CertificateFacts): Promise<boolean> {
  try {
    await deps.iot.send(new UpdateCertificateCommand({ certificateId: old.certificateId, newStatus: 'INACTIVE' }));
    return true;
  } catch (error) {
    if (isNamed(error, RESOURCE_NOT_FOUND)) return false;
    if (!isNamed(error, CERTIFICATE_STATE_EXCEPTION)) throw error;
    const now = await describeCertificate(deps.iot, old.certificateId);
    if (!now) return false;
    if (REVOKED_STATUSES.includes(now.status)) throw new OldCertificateRevoked(now.certificateId, now.status);
    throw error;
  }
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

  const plan = await checkRetirable(deps, input, recorded);
  const { leftover } = plan;
  // The old certificate's revocation shows here at the latest, before anything else changes.
  const old = plan.old && !plan.statusKnown && !(await deactivateOld(deps, plan.old)) ? undefined : plan.old;
  if (leftover) {
    // An earlier failed rotation's certificate: the device is on this rotation's one now.
    const certificate = await describeCertificate(deps.iot, leftover);
    if (certificate) await takeDownCertificate(deps.iot, deps.clock, { certificate, thingName, keep: false, retry: deps.deleteRetry });
    deps.telemetry.log.info('retired the certificate a failed rotation left in service', { certificateId: leftover, found: !!certificate });
  }
  const oldCertificate: TakeDownResult = old
    ? await takeDownCertificate(deps.iot, deps.clock, {
        certificate: plan.statusKnown ? old : { ...old, status: 'INACTIVE' },
        thingName,
        keep: deps.retireMode === RetireMode.KeepInactive,
        retry: deps.deleteRetry,
        policies: plan.policies,
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
