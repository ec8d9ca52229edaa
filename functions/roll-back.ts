import type { IoTClient } from '@aws-sdk/client-iot';
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { isCertificateId, MessageType, REVOKED_STATUSES, RollbackUnsafe, Step } from '../domain/index.js';
import { certificatesWithKey, describeCertificate, takeDownCertificate, type DeleteRetry } from './core/certificates.js';
import type { Clock } from './core/clock.js';
import { publishToDevice } from './core/device-channel.js';
import { abortReason, classifyFailure } from './core/failure.js';
import { once, rotorHandler, taskLogKeys } from './core/handler.js';
import { objectInput, optionalStringField, rotationIdField } from './core/input.js';
import { getCurrentRecord, type TableDeps } from './core/rotation-table.js';
import { observability, type Telemetry } from './core/telemetry.js';
import { parseRotationState, type RotationState } from './core/rotation-state.js';
import { baseDeps, tracedIot, tracedIotData } from './core/runtime-deps.js';
import { pacedRuntime, pacedStep } from './core/pacing.js';
import { CallSite } from '../domain/pacing/index.js';

/** What the 'Roll back' state sends: the whole execution state, and the state that failed. */
export interface RollBackInput {
  rotation: RotationState;
  rotationId: string;
  failedStep?: string;
}

export interface RollBackResult {
  newCertificateId: string | null;
  deleted: boolean;
  /** What Roll back found the old certificate to be (GONE when deleted): Record failure names a revocation. */
  oldCertificateStatus: string;
  aborted: boolean;
}

export interface RollBackDeps extends TableDeps {
  iot: IoTClient;
  iotData: IoTDataPlaneClient;
  clock: Clock;
  telemetry: Telemetry;
  deleteRetry?: DeleteRetry;
}

export function parseRollBackInput(event: unknown): RollBackInput {
  const input = objectInput(event, 'roll-back input');
  return {
    rotation: parseRotationState(input.rotation),
    rotationId: rotationIdField(input),
    failedStep: optionalStringField(input, 'failedStep', 128),
  };
}

/**
 * Puts the device back where it was: the new certificate (if one was made, recorded, or only
 * announced by a crashed Issue) is deactivated, detached and deleted, and the device is told
 * to abort. It never touches the old certificate. What it may do depends on the old one:
 * - ACTIVE: delete the new one, send abort (the device keeps its old key).
 * - REVOKED / PENDING_TRANSFER: a security decision; delete the new one too (the device is
 *   cut off on purpose), and send no abort.
 * - INACTIVE or gone: the new certificate may be the device's only way in; it is kept
 *   (RollbackUnsafe when there is one) and no abort is sent, which would make the device
 *   throw that key away.
 */
export async function rollBack(event: unknown, deps: RollBackDeps): Promise<RollBackResult> {
  const input = parseRollBackInput(event);
  const { rotation, rotationId } = input;
  const { thingName, certificateId: oldCertificateId } = rotation;

  // The state may not know the new certificate (Issue can fail after creating it); the record does.
  const record = await getCurrentRecord(deps, thingName);
  const mine = record?.rotationId === rotationId ? record : undefined;
  const candidates = [mine?.newCertificateId, rotation.issued?.certificateId];
  const newCertificateIds = [...new Set(candidates.filter((id): id is string => !!id && isCertificateId(id) && id !== oldCertificateId))];
  if (mine?.issueIntent && !mine.newCertificateId) {
    // Issue crashed between creating and recording: what it made carries the announced key.
    for (const found of await certificatesWithKey(deps.iot, mine.issueIntent)) {
      if (found.certificateId !== oldCertificateId && !newCertificateIds.includes(found.certificateId)) newCertificateIds.push(found.certificateId);
    }
  }

  const old = await describeCertificate(deps.iot, oldCertificateId);
  const oldStatus = old?.status ?? 'GONE';
  const revoked = REVOKED_STATUSES.includes(oldStatus);
  if (newCertificateIds.length > 0 && oldStatus !== 'ACTIVE' && !revoked) {
    throw new RollbackUnsafe(`the old certificate ${oldCertificateId} is ${oldStatus}; deleting new certificate ${newCertificateIds.join(', ')} could strand ${thingName}`);
  }

  let deleted = false;
  if (newCertificateIds.length > 0) {
    deleted = true;
    for (const id of newCertificateIds) {
      const issued = await describeCertificate(deps.iot, id);
      const result = issued ? await takeDownCertificate(deps.iot, deps.clock, { certificate: issued, thingName, keep: false, retry: deps.deleteRetry }) : 'deleted';
      deleted &&= result === 'deleted';
      deps.telemetry.log.info(revoked ? 'new certificate taken down: the old one was revoked' : 'new certificate rolled back', {
        certificateId: id,
        result: issued ? result : 'already gone',
      });
    }
  }

  const failure = classifyFailure({ failedStep: input.failedStep, error: rotation.error });
  if (oldStatus !== 'ACTIVE') {
    deps.telemetry.log.warn('no abort sent: the old certificate is not ACTIVE', { oldStatus, reason: failure.reason });
    return { newCertificateId: newCertificateIds[0] ?? null, deleted, aborted: false, oldCertificateStatus: oldStatus };
  }
  await publishToDevice(deps.iotData, thingName, { type: MessageType.Abort, body: { rotationId, reason: abortReason(failure) } });
  deps.telemetry.log.info('abort published', { failedStep: input.failedStep, reason: failure.reason });
  return { newCertificateId: newCertificateIds[0] ?? null, deleted, aborted: true, oldCertificateStatus: oldStatus };
}

const obs = observability('roll-back');
const runtime = once(() => {
  const base = baseDeps(obs);
  const paced = pacedRuntime(base);
  const deps: RollBackDeps = { ...base, iot: paced.observe(tracedIot(obs), 'iot'), iotData: tracedIotData(obs) };
  return { ...deps, pacing: paced.pacing };
});

/**
 * What a roll back spends: a failure before Issue certificate left nothing to take down (one
 * DescribeCertificate of the old certificate); later, the issued certificate's take-down.
 */
export function rollBackSite(event: unknown): CallSite {
  const failedStep = typeof event === 'object' && event !== null ? (event as { failedStep?: unknown }).failedStep : undefined;
  return failedStep === Step.ClaimDevice || failedStep === Step.RequestCsr ? CallSite.RollBackNothingIssued : CallSite.RollBackIssued;
}

/** Paced (docs/fleet-scale.md): the step's IoT calls are reserved on the shared budget first. */
export const handler = rotorHandler({ observability: obs, step: Step.RollBack, logKeys: taskLogKeys }, (event: unknown) => {
  const deps = runtime();
  return pacedStep(deps, event, rollBackSite(event), () => rollBack(event, deps));
});

