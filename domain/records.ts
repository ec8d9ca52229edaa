import type { FailableStep, FailureReason, RotationStatus, Trigger, WaitFor } from './rotation.js';

/**
 * The rotation table (single table, see docs/table-design.md):
 *   pk = thing#<thingName>, sk = current                      one record per thing: the rotation in
 *                                                             flight or the last one's outcome
 *   pk = thing#<thingName>, sk = rotation#<startedAt>#<id>    one history item per finished rotation
 *   pk = audit#<taskId>,    sk = report                       what the audit trigger started / skipped
 * GSI by-status (status, updatedAt) holds only current records (history items have no `status`):
 * the operator CLI lists FAILED devices with a Query, never a Scan.
 */
export const CURRENT_SK = 'current';
export const REPORT_SK = 'report';

export function thingPk(thingName: string): string {
  return `thing#${thingName}`;
}

export function historySk(startedAt: string, rotationId: string): string {
  return `rotation#${startedAt}#${rotationId}`;
}

export function auditPk(taskId: string): string {
  return `audit#${taskId}`;
}

export function isHistorySk(sk: string): boolean {
  return sk.startsWith('rotation#');
}

/** A message that was recorded and dropped, kept on the thing's record for the operator. */
export interface IgnoredMessage {
  type: string;
  reason: string;
  rotationId?: string;
  at: string;
}

/** The current record of a thing (sk = current). */
export interface RotationRecord {
  pk: string;
  sk: typeof CURRENT_SK;
  thingName: string;
  status: RotationStatus;
  /** The state the rotation is in, or failed in. */
  step: string;
  rotationId: string;
  executionArn: string;
  oldCertificateId: string;
  newCertificateId?: string;
  trigger?: Trigger;
  auditTaskId?: string;
  checkName?: string;
  startedAt: string;
  updatedAt: string;
  finishedAt?: string;
  attempts: number;
  csrRequests?: number;
  /** Set while a task token is parked, cleared when it is answered. */
  waitFor?: WaitFor;
  taskToken?: string;
  reason?: FailureReason | string;
  cause?: string;
  ignoredCount?: number;
  lastIgnored?: IgnoredMessage;
  /** The certificate a crt_ack was made over (its principal), written by device-message before it answers. */
  ackedCertificateId?: string;
  /**
   * Written by Issue certificate right before CreateCertificateFromCsr and removed once the new
   * certificate is recorded: a retry that finds it looks for what a crashed attempt created.
   */
  issueIntent?: IssueIntent;
  /**
   * A new certificate a FAILED rotation left in service (retire or roll back failed, claim
   * abandoned). The next rotation finishes it: resumes at Retire when the device acked over it,
   * else takes it down in Issue (the device never used it); Retire removes it once the device
   * is on a newer one. Claim keeps it.
   */
  leftoverCertificateId?: string;
  /**
   * The notAfter (ISO 8601) of the newest certificate Rotor issued for this thing, written with
   * newCertificateId: 2049 from the aws-iot signer, the configured validity from private-ca.
   * Claim leaves it, so between rotations it is the expiry of the certificate the thing got last.
   */
  newCertificateNotAfter?: string;
  /**
   * What Issue certificate read of the old certificate, recorded with the new certificate's id
   * in the same write: Retire detaches exactly these policies without listing them again (a
   * 10-TPS API). Valid only while `newCertificateId` equals its own `newCertificateId`.
   */
  issuedFrom?: IssuedFrom;
}

/** The old certificate as Issue certificate found it (docs/design.md, "API thrift"). */
export interface IssuedFrom {
  newCertificateId: string;
  oldCertificateId: string;
  oldCertificateArn: string;
  /** The policies attached to the old certificate, copied to the new one. */
  oldPolicies: string[];
}

/** What Issue certificate is about to create: enough to find the certificate if it crashes. */
export interface IssueIntent {
  /** SHA-256 (hex) of the CSR's SubjectPublicKeyInfo DER: the key the certificate will carry. */
  keyFingerprint: string;
  /** When the create was attempted (ISO): the certificate's creationDate is no earlier. */
  at: string;
}

/** A finished rotation (sk = rotation#…); history items never carry `status`, so the GSI stays sparse. */
export interface HistoryItem {
  pk: string;
  sk: string;
  thingName: string;
  rotationId: string;
  executionArn: string;
  outcome: RotationStatus;
  step: string;
  reason?: string;
  cause?: string;
  oldCertificateId: string;
  newCertificateId?: string;
  trigger?: Trigger;
  startedAt: string;
  finishedAt: string;
  expiresAt: number;
}

export interface FailureDetails {
  step: FailableStep;
  reason: FailureReason;
  cause: string;
}
