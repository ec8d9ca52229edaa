import 'reflect-metadata';
import { CreateCertificateFromCsrCommand, DeleteCertificateCommand, UpdateCertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import { checkCsr } from '../domain/csr-rules.js';
import { CertificateNotFound, ClaimLost, CsrRejected, RotationStatus, Step } from '../domain/index.js';
import { CONDITIONAL_CHECK_FAILED, errorMessage, isNamed } from './aws/errors.js';
import type { Clock } from './core/clock.js';
import { copyAttachments, describeCertificate, type CertificateFacts } from './core/certificates.js';
import { once, rotorHandler, taskLogKeys } from './core/handler.js';
import { certificateIdField, objectInput, pemField, rotationIdField, thingNameField } from './core/input.js';
import { getCurrentRecord, recordNewCertificate, type TableDeps } from './core/rotation-table.js';
import { observability, type Telemetry } from './core/telemetry.js';
import { baseDeps, tracedIot } from './core/runtime-deps.js';

/** What the 'Issue certificate' state sends. */
export interface IssueCertificateInput {
  thingName: string;
  rotationId: string;
  oldCertificateId: string;
  csrPem: string;
}

export interface IssuedCertificate {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
}

export interface IssueCertificateDeps extends TableDeps {
  iot: IoTClient;
  clock: Clock;
  telemetry: Telemetry;
}

export function parseIssueCertificateInput(event: unknown): IssueCertificateInput {
  const input = objectInput(event, 'issue-certificate input');
  return {
    thingName: thingNameField(input),
    rotationId: rotationIdField(input),
    oldCertificateId: certificateIdField(input, 'oldCertificateId'),
    // The CSR is checked below, with a CsrRejected the state machine tells apart; only its
    // presence is input validation.
    csrPem: pemField(input, 'csrPem'),
  };
}

/** The attachments of a certificate that already exists for this rotation, then the certificate. */
async function completeExisting(deps: IssueCertificateDeps, input: IssueCertificateInput, issued: CertificateFacts): Promise<IssuedCertificate> {
  const old = await describeCertificate(deps.iot, input.oldCertificateId);
  if (!old) throw new CertificateNotFound(input.oldCertificateId);
  await copyAttachments(deps.iot, { fromArn: old.certificateArn, toArn: issued.certificateArn, thingName: input.thingName });
  return { certificateId: issued.certificateId, certificateArn: issued.certificateArn, certificatePem: issued.certificatePem };
}

/** Removes a certificate that was created but could not be recorded, so none is orphaned. */
async function discard(deps: IssueCertificateDeps, certificateId: string): Promise<void> {
  try {
    await deps.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
    await deps.iot.send(new DeleteCertificateCommand({ certificateId }));
  } catch (error) {
    // The original failure is what the state machine must see; this one is for the operator.
    deps.telemetry.log.error('could not delete an unrecorded new certificate; delete it by hand', {
      certificateId,
      error: errorMessage(error),
    });
  }
}

/**
 * Issues the new certificate. Idempotent across retries: the new certificate's id is written
 * to the record the moment it exists, and a retry that finds it completes that certificate
 * (attachments are idempotent) instead of creating a second one.
 */
export async function issueCertificate(event: unknown, deps: IssueCertificateDeps): Promise<IssuedCertificate> {
  const input = parseIssueCertificateInput(event);
  const { thingName, rotationId } = input;

  const record = await getCurrentRecord(deps, thingName);
  if (!record || record.rotationId !== rotationId || record.status !== RotationStatus.InProgress) throw new ClaimLost(thingName, rotationId);
  if (record.newCertificateId) {
    const existing = await describeCertificate(deps.iot, record.newCertificateId);
    if (existing) {
      deps.telemetry.log.info('the new certificate already exists for this rotation; completing it', { certificateId: existing.certificateId });
      return completeExisting(deps, input, existing);
    }
    deps.telemetry.log.warn('the recorded new certificate no longer exists; issuing another', { certificateId: record.newCertificateId });
  }

  const old = await describeCertificate(deps.iot, input.oldCertificateId);
  if (!old) throw new CertificateNotFound(input.oldCertificateId);

  const check = checkCsr(input.csrPem, { thingName, oldCertificatePem: old.certificatePem || undefined });
  if (!check.ok) {
    deps.telemetry.log.warn('CSR rejected', { rule: check.reason, detail: check.detail });
    throw new CsrRejected(check.reason, `${check.reason}: ${check.detail}`);
  }

  const created = await deps.iot.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: input.csrPem, setAsActive: true }));
  if (!created.certificateId || !created.certificateArn || !created.certificatePem) {
    throw new Error('CreateCertificateFromCsr returned no certificate id, ARN or PEM');
  }
  const issued: IssuedCertificate = {
    certificateId: created.certificateId,
    certificateArn: created.certificateArn,
    certificatePem: created.certificatePem,
  };

  try {
    await recordNewCertificate(deps, {
      thingName,
      rotationId,
      certificateId: issued.certificateId,
      replaces: record.newCertificateId,
      now: deps.clock.now(),
    });
  } catch (error) {
    await discard(deps, issued.certificateId);
    if (!isNamed(error, CONDITIONAL_CHECK_FAILED)) throw error;
    const now = await getCurrentRecord(deps, thingName);
    const winner = now?.rotationId === rotationId && now.status === RotationStatus.InProgress && now.newCertificateId
      ? await describeCertificate(deps.iot, now.newCertificateId)
      : undefined;
    if (!winner) throw new ClaimLost(thingName, rotationId);
    return completeExisting(deps, input, winner);
  }

  const policies = await copyAttachments(deps.iot, { fromArn: old.certificateArn, toArn: issued.certificateArn, thingName });
  deps.telemetry.log.info('new certificate issued', {
    certificateId: issued.certificateId,
    keyType: check.facts.keyType,
    keyDetail: check.facts.keyDetail,
    policies,
  });
  return issued;
}

const obs = observability('issue-certificate');
const runtime = once(
  (): IssueCertificateDeps => ({
    ...baseDeps(obs),
    iot: tracedIot(obs),
  }),
);

export const handler = rotorHandler({ observability: obs, step: Step.IssueCertificate, logKeys: taskLogKeys }, (event: unknown) =>
  issueCertificate(event, runtime()),
);
