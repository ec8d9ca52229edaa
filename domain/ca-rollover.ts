import { createHash } from 'node:crypto';
import { RotorError } from './errors.js';

/**
 * The CA rollover (issue 11 part 2): moving every device whose ACTIVE certificate an old CA
 * signed to certificates of a new one, then setting the old CA INACTIVE. Its own state
 * machine (statemachines/ca-rollover.asl.json); the devices move through the normal
 * rotate-device workflow. Pure: names, the rollover's input, and the rules the functions and
 * the CLI share. docs/design.md "CA rollover" says why it is shaped so.
 */

/** The states of the ca-rollover state machine: what an operator reads in the console. */
export const CaRolloverStep = {
  /** Resolve OLD and NEW, then issue a test certificate with NEW, register it in IoT, delete it. */
  VerifyNewCa: 'Verify new CA',
  /** The issuing-CA item now names NEW: every Issue certificate from here on signs with it. */
  SwitchIssuingCa: 'Switch issuing CA',
  StartPass: 'Start a pass',
  /** One pass over the old CA's certificates (a page per invocation): start, count, list. */
  MoveDevices: 'Move devices',
  MorePages: 'More certificates to look at?',
  DevicesLeft: 'Devices left?',
  WaitForRotations: 'Wait for rotations',
  /** No ACTIVE certificate under the old CA remains: UpdateCACertificate INACTIVE. */
  DeactivateOldCa: 'Deactivate old CA',
  /** The one escalation listing the devices that could not be moved; the old CA stays ACTIVE. */
  EscalateDevicesLeft: 'Escalate devices left',
  /** The rollover failed before any device moved (verify or switch): one escalation. */
  EscalateRolloverFailed: 'Escalate rollover failed',
  RolloverDone: 'Rollover done',
  DevicesNotMoved: 'Devices not moved',
  RolloverFailed: 'Rollover failed',
  EscalationFailed: 'Escalation failed',
  /** Before Escalate rollover failed: the escalation carries the error's type and message, not a function's stack trace. */
  WhichError: 'Which error?',
  ReadFunctionError: 'Read the function error',
  KeepTypeAndMessage: 'Keep its type and message',
  ErrorWithoutCause: 'Error without a cause',
} as const;
export type CaRolloverStep = (typeof CaRolloverStep)[keyof typeof CaRolloverStep];

/** Errors the rollover's functions raise on purpose; the ASL matches these names. */
export const CaRolloverErrorName = {
  /** NEW is not a registered, ACTIVE CA that can sign a certificate IoT accepts. */
  NewCaNotReady: 'NewCaNotReady',
  /** OLD cannot be resolved to a registered IoT CA certificate, or is NEW itself. */
  OldCaNotFound: 'OldCaNotFound',
  /** Another rollover switched the issuing CA to a third CA: this one does not overwrite it. */
  IssuingCaConflict: 'IssuingCaConflict',
  /** The deployment's signer is not private-ca: no device certificate would come from NEW. */
  SignerNotPrivateCa: 'SignerNotPrivateCa',
  /** Deactivate found an ACTIVE certificate under the old CA after all: back to waiting. */
  OldCaStillInUse: 'OldCaStillInUse',
  /** An audit flagged the CA as expiring, and no successor CA is configured (next_private_ca_arn). */
  NoSuccessor: 'NoSuccessor',
} as const;
export type CaRolloverErrorName = (typeof CaRolloverErrorName)[keyof typeof CaRolloverErrorName];

/** Why a rollover escalated: the subject an operator filters on. */
export const CaRolloverReason = {
  NewCaNotReady: 'CA_NEW_NOT_READY',
  OldCaNotFound: 'CA_OLD_NOT_FOUND',
  IssuingCaConflict: 'CA_ISSUING_CONFLICT',
  SignerNotPrivateCa: 'CA_SIGNER_NOT_PRIVATE_CA',
  DevicesLeft: 'CA_DEVICES_LEFT',
  /** A CA_CERTIFICATE_EXPIRING_CHECK finding, and no successor CA is configured. */
  NoSuccessor: 'CA_NO_SUCCESSOR',
  Internal: 'CA_ROLLOVER_FAILED',
} as const;
export type CaRolloverReason = (typeof CaRolloverReason)[keyof typeof CaRolloverReason];

/** How the rollover was started. */
export const CaRolloverTrigger = {
  Cli: 'cli',
  Audit: 'audit',
} as const;
export type CaRolloverTrigger = (typeof CaRolloverTrigger)[keyof typeof CaRolloverTrigger];

/**
 * The input of one ca-rollover execution. OLD and NEW may each be a Private CA ARN or an IoT CA
 * certificate id (64 hex); Verify new CA maps a Private CA to its IoT CA certificate by the
 * certificate itself (the IoT id is the SHA-256 of its DER). NEW must be a Private CA: it signs.
 */
export interface CaRolloverInput {
  oldCa: string;
  /** Absent only when an audit started it and no successor is configured: Verify new CA escalates that. */
  newCa?: string;
  trigger: CaRolloverTrigger;
  auditTaskId?: string;
}

/** Both CAs as Verify new CA resolved them: what every later state works with. */
export interface ResolvedCas {
  oldCaCertificateId: string;
  /** Known when OLD was given as a Private CA ARN. */
  oldPrivateCaArn?: string;
  newCaCertificateId: string;
  newPrivateCaArn: string;
}

/** Where a pass of Move devices stands, and what it found so far. */
export interface MoveTally {
  /** ACTIVE device certificates under the old CA seen in this pass. */
  left: number;
  /** Rotations started by this pass. */
  started: number;
  /** Rotations of this rollover still running (started by an earlier pass). */
  inFlight: number;
  /** Devices whose rotation of this rollover ended and left them under the old CA. */
  stuck: number;
  /** The first MAX_LISTED of them, for the escalation and `rotor ca status`. */
  stuckDevices: StuckDevice[];
}

export interface StuckDevice {
  thingName: string;
  certificateId: string;
}

/** Devices named in the one escalation; the rest are counted. */
export const MAX_LISTED = 50;

export function emptyTally(): MoveTally {
  return { left: 0, started: 0, inFlight: 0, stuck: 0, stuckDevices: [] };
}

/** Adds one device to the tally (the first MAX_LISTED stuck ones by name). */
export function tallyDevice(tally: MoveTally, outcome: 'started' | 'inFlight' | 'stuck', device: StuckDevice): MoveTally {
  const next = { ...tally, left: tally.left + 1, [outcome]: tally[outcome] + 1 };
  if (outcome === 'stuck' && tally.stuckDevices.length < MAX_LISTED) next.stuckDevices = [...tally.stuckDevices, device];
  return next;
}

/**
 * What the rollover does after a complete pass (rule of the 'Devices left?' choice, computed in
 * Move devices so that it is tested here): nothing left → deactivate; something still moving
 * and time left → wait and look again; else → one escalation listing the devices left.
 */
export type PassVerdict = 'deactivate' | 'wait' | 'escalate';
export function passVerdict(tally: MoveTally, pastDeadline: boolean): PassVerdict {
  if (tally.left === 0) return 'deactivate';
  if (tally.started + tally.inFlight > 0 && !pastDeadline) return 'wait';
  return 'escalate';
}

/**
 * Name of the rotate-device execution the rollover starts for one certificate: one per
 * (rollover, thing, certificate). A later pass that asks again for a rotation that is still
 * running gets it back (same name and input); one that ended answers ExecutionAlreadyExists,
 * which is how a pass knows the device was tried and is still under the old CA.
 */
export function caRolloverExecutionName(rolloverId: string, thingName: string, certificateId: string): string {
  const hash = createHash('sha256').update(['ca-rollover', rolloverId, thingName, certificateId].join('\u0000')).digest('hex').slice(0, 20);
  const prefix = thingName.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 80 - hash.length - 3);
  return `${prefix}-c${hash}`;
}

/**
 * Name of the rollover execution itself: one per OLD, NEW and discriminator (the audit task id,
 * or the CLI's start time), so a repeated audit notification starts nothing twice while an
 * operator's second `rotor ca rollover` is a new attempt (its device rotations get new names).
 */
export function caRolloverName(oldCa: string, newCa: string, discriminator: string): string {
  const hash = createHash('sha256').update(['rollover', oldCa, newCa, discriminator].join('\u0000')).digest('hex').slice(0, 24);
  return `ca-rollover-${hash}`;
}

/**
 * The issuing-CA item of the rotation table: which Private CA signs device certificates now.
 * Absent: the deployment's ROTOR_PCA_ARN. Written only by Switch issuing CA, conditionally.
 */
export const ISSUING_CA_PK = 'ca#issuing';
export const ISSUING_CA_SK = 'current';

export interface IssuingCaItem {
  pk: typeof ISSUING_CA_PK;
  sk: typeof ISSUING_CA_SK;
  caArn: string;
  /** The IoT CA certificate id of caArn's certificate. */
  caCertificateId: string;
  /** The rollover that wrote it, and the CA it replaced. */
  rolloverId: string;
  previousCaCertificateId: string;
  updatedAt: string;
}

/** The progress item of a rollover, by old CA: what `rotor ca status` reads. */
export function rolloverPk(oldCaCertificateId: string): string {
  return `ca-rollover#${oldCaCertificateId}`;
}
export const ROLLOVER_SK = 'progress';

export const CaRolloverStatus = {
  Moving: 'MOVING',
  Done: 'DONE',
  DevicesLeft: 'DEVICES_LEFT',
} as const;
export type CaRolloverStatus = (typeof CaRolloverStatus)[keyof typeof CaRolloverStatus];

export interface RolloverProgress {
  pk: string;
  sk: typeof ROLLOVER_SK;
  rolloverId: string;
  executionArn: string;
  oldCaCertificateId: string;
  newCaCertificateId: string;
  newPrivateCaArn: string;
  status: CaRolloverStatus;
  /** Devices under the old CA when the first pass completed. */
  devicesAtStart?: number;
  /** Devices under the old CA at the last complete pass. */
  devicesLeft?: number;
  stuckDevices?: StuckDevice[];
  oldCaStatus?: string;
  startedAt: string;
  updatedAt: string;
}

/** Devices moved so far: those under the old CA at the start that are not any more (never negative). */
export function devicesMoved(progress: Pick<RolloverProgress, 'devicesAtStart' | 'devicesLeft'>): number {
  return Math.max(0, (progress.devicesAtStart ?? 0) - (progress.devicesLeft ?? 0));
}

const CA_CERTIFICATE_ID = /^[0-9a-f]{64}$/;
const PRIVATE_CA_ARN = /^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:\d{12}:certificate-authority\/[0-9a-f-]{36}$/;

export type CaReference = { kind: 'iot'; caCertificateId: string } | { kind: 'private-ca'; arn: string };

/** OLD or NEW as the operator gave it: an IoT CA certificate id or a Private CA ARN, else an error naming what is expected. */
export function parseCaReference(value: string, what: 'OLD' | 'NEW'): CaReference | { error: string } {
  const text = value.trim();
  if (CA_CERTIFICATE_ID.test(text)) return { kind: 'iot', caCertificateId: text };
  if (PRIVATE_CA_ARN.test(text)) return { kind: 'private-ca', arn: text };
  return { error: `${what} must be an IoT CA certificate id (64 hex characters) or a Private CA ARN (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/UUID); got ${JSON.stringify(value)}` };
}

/**
 * The rollover an audit's CA_CERTIFICATE_EXPIRING_CHECK finding starts (issue 11 part 2): from
 * the flagged CA to the configured successor, named by the CA, the successor and the audit task,
 * so a redelivered notification starts nothing twice. Without a successor the same execution
 * starts with no NEW, and Verify new CA sends the one escalation that says so.
 */
export function auditRollover(caCertificateId: string, auditTaskId: string, successor: string | undefined): { name: string; input: CaRolloverInput } {
  const newCa = successor?.trim() || undefined;
  return {
    name: caRolloverName(caCertificateId, newCa ?? '', auditTaskId),
    input: { oldCa: caCertificateId, ...(newCa ? { newCa } : {}), trigger: CaRolloverTrigger.Audit, auditTaskId },
  };
}

/** What Verify new CA says when an audit flagged OLD and there is no successor to move to. */
export function noSuccessorMessage(oldCa: string, auditTaskId: string | undefined): string {
  return [
    `The CA ${oldCa} is expiring or has expired${auditTaskId ? ` (Device Defender audit ${auditTaskId}, CA_CERTIFICATE_EXPIRING_CHECK)` : ''}, and no successor CA is configured: nothing was changed.`,
    'Create the successor Private CA, register its certificate with AWS IoT (RegisterCACertificate, ACTIVE), set Terraform next_private_ca_arn to it and apply;',
    `the next audit then starts the rollover, or start it now with: rotor ca rollover --from ${oldCa} --to <successor Private CA ARN>`,
  ].join('\n');
}

/** SNS subjects: at most 100 printable ASCII characters. */
export function rolloverEscalationSubject(oldCaCertificateId: string, reason: CaRolloverReason): string {
  return `Rotor: CA rollover of ${oldCaCertificateId.slice(0, 12)}... stopped (${reason})`.replace(/[^\x20-\x7e]/g, '.').slice(0, 100);
}

/** The one escalation of a rollover that left devices under the old CA. */
export function devicesLeftMessage(cas: ResolvedCas, tally: MoveTally, executionArn: string): string {
  const lines = [
    `The CA rollover ${executionArn} could not move ${tally.left} device(s) off the old CA ${cas.oldCaCertificateId}.`,
    `The old CA stays ACTIVE while any device depends on it; new certificates are issued by ${cas.newPrivateCaArn}.`,
    `Still running: ${tally.started + tally.inFlight}. Rotation ended, still under the old CA: ${tally.stuck}.`,
    ...tally.stuckDevices.map((device) => `  ${device.thingName} ${device.certificateId}`),
    ...(tally.stuck > tally.stuckDevices.length ? [`  … and ${tally.stuck - tally.stuckDevices.length} more`] : []),
    'Each device rotation that failed sent its own escalation. Fix them, then run `rotor ca rollover` again with the same OLD and NEW.',
  ];
  return lines.join('\n');
}

/** A rollover error: its name is what the ca-rollover ASL matches, its reason what the escalation says. */
export class CaRolloverError extends RotorError {
  constructor(
    name: CaRolloverErrorName,
    readonly reason: CaRolloverReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = name;
  }
}

export const newCaNotReady = (message: string, cause?: unknown): CaRolloverError =>
  new CaRolloverError(CaRolloverErrorName.NewCaNotReady, CaRolloverReason.NewCaNotReady, message, cause === undefined ? undefined : { cause });
export const oldCaNotFound = (message: string): CaRolloverError => new CaRolloverError(CaRolloverErrorName.OldCaNotFound, CaRolloverReason.OldCaNotFound, message);
export const issuingCaConflict = (message: string): CaRolloverError => new CaRolloverError(CaRolloverErrorName.IssuingCaConflict, CaRolloverReason.IssuingCaConflict, message);
export const signerNotPrivateCa = (message: string): CaRolloverError => new CaRolloverError(CaRolloverErrorName.SignerNotPrivateCa, CaRolloverReason.SignerNotPrivateCa, message);
export const noSuccessor = (message: string): CaRolloverError => new CaRolloverError(CaRolloverErrorName.NoSuccessor, CaRolloverReason.NoSuccessor, message);
export const oldCaStillInUse = (message: string): CaRolloverError => new CaRolloverError(CaRolloverErrorName.OldCaStillInUse, CaRolloverReason.DevicesLeft, message);
