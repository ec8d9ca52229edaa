/**
 * The rotation's vocabulary: the states of the per-device state machine (their names are
 * what an operator reads in the Step Functions console), the statuses of a rotation record,
 * and the reasons a rotation fails or a device message is ignored.
 */

/** Every state of statemachines/rotate-device.asl.json, by role. The contract test checks both ways. */
export const Step = {
  ClaimDevice: 'Claim device',
  AlreadyRotating: 'Already rotating',
  RequestCsr: 'Request CSR',
  IssueCertificate: 'Issue certificate',
  DeliverCertificate: 'Deliver certificate',
  RetireOldCertificate: 'Retire old certificate',
  Rotated: 'Rotated',
  RollBack: 'Roll back',
  RecordFailure: 'Record failure',
  Escalate: 'Escalate',
  RotationFailed: 'Rotation failed',
  FailureNotRecorded: 'Failure not recorded',
  /** After the claim: a resumed rotation (late crt_ack over the new certificate) goes straight to Retire. */
  ResumeOrRotate: 'Resume or rotate',
  ResumeAfterAck: 'Resume after ack',
  /** Recording failed for good: the escalation is still sent, saying so. */
  EscalateUnrecorded: 'Escalate unrecorded failure',
  /** Escalating failed for good: the execution ends with its own error (an alarm watches it). */
  EscalationFailed: 'Escalation failed',
  /** The claim is held: by a running execution ('Already rotating'), or by one that ended without recording (released). */
  CheckClaimHolder: 'Check claim holder',
  /** The claim was released from an abandoned execution: that failed rotation gets its one escalation. */
  AbandonedClaimReleased: 'Abandoned claim released?',
  EscalateAbandonedRotation: 'Escalate abandoned rotation',
  /**
   * The pacing loop of each paced step (domain/pacing/live.ts): the step returned `waitUntil`
   * (its calls are reserved for later), the Wait holds no Lambda and no budget, then the step
   * runs again; otherwise its result goes where the step's result always went.
   */
  IssueCertificatePaced: 'Issue certificate: wait for budget?',
  IssueCertificateWait: 'Issue certificate: waiting for budget',
  IssueCertificateDone: 'Issue certificate: done',
  RetireOldCertificatePaced: 'Retire old certificate: wait for budget?',
  RetireOldCertificateWait: 'Retire old certificate: waiting for budget',
  RetireOldCertificateDone: 'Retire old certificate: done',
  RollBackPaced: 'Roll back: wait for budget?',
  RollBackWait: 'Roll back: waiting for budget',
  RollBackDone: 'Roll back: done',
} as const;
export type Step = (typeof Step)[keyof typeof Step];

/** The steps in which a rotation can fail; the failure record names one of them. */
export const FAILABLE_STEPS = [
  Step.ClaimDevice,
  Step.RequestCsr,
  Step.IssueCertificate,
  Step.DeliverCertificate,
  Step.RetireOldCertificate,
  Step.RollBack,
] as const;
export type FailableStep = (typeof FAILABLE_STEPS)[number];

export const RotationStatus = {
  InProgress: 'IN_PROGRESS',
  Succeeded: 'SUCCEEDED',
  Failed: 'FAILED',
} as const;
export type RotationStatus = (typeof RotationStatus)[keyof typeof RotationStatus];

/** What the rotation is waiting for from the device while a task token is parked. */
export const WaitFor = {
  CsrResponse: 'csr_res',
  CertificateAck: 'crt_ack',
} as const;
export type WaitFor = (typeof WaitFor)[keyof typeof WaitFor];

/** Why a rotation failed: the summary an operator filters on and the metric dimension. */
export const FailureReason = {
  NoCsrResponse: 'NO_CSR_RESPONSE',
  CsrRejected: 'CSR_REJECTED',
  NoAck: 'NO_ACK',
  DeviceError: 'DEVICE_ERROR',
  CertificateNotFound: 'CERTIFICATE_NOT_FOUND',
  IssueFailed: 'ISSUE_FAILED',
  RetireFailed: 'RETIRE_FAILED',
  RollbackFailed: 'ROLLBACK_FAILED',
  Internal: 'INTERNAL_ERROR',
  /** The old certificate was REVOKED (or put in transfer) mid-rotation: the device is cut off on purpose. */
  OldCertificateRevoked: 'OLD_CERTIFICATE_REVOKED',
  /** Somebody else set the old certificate INACTIVE before a new one was issued. */
  OldCertificateInactive: 'OLD_CERTIFICATE_INACTIVE',
  /** Another thing still uses the old certificate: it is left ACTIVE. */
  SharedCertificate: 'SHARED_CERTIFICATE',
  /** Retire found no ack over the new certificate on the record, or the new certificate not ACTIVE. */
  AckNotVerified: 'ACK_NOT_VERIFIED',
  /** The claim's execution ended (crashed, stopped, timed out) without recording anything; released. */
  ExecutionAbandoned: 'EXECUTION_ABANDONED',
} as const;
export type FailureReason = (typeof FailureReason)[keyof typeof FailureReason];

/** Why a device message was recorded and dropped instead of acted on. */
export const IgnoredReason = {
  Malformed: 'MALFORMED',
  UnknownThing: 'UNKNOWN_THING',
  TopicMismatch: 'TOPIC_MISMATCH',
  NoRotationInFlight: 'NO_ROTATION_IN_FLIGHT',
  StaleRotationId: 'STALE_ROTATION_ID',
  Unexpected: 'UNEXPECTED_MESSAGE',
  WrongPrincipal: 'ACK_NOT_OVER_NEW_CERTIFICATE',
  Duplicate: 'DUPLICATE',
  /** A csr_res over any certificate but the one being replaced (docs/protocol.md cloud rule 9). */
  CsrNotOverOldCertificate: 'CSR_NOT_OVER_OLD_CERTIFICATE',
  /** A crt_err over neither the old nor the new certificate of the rotation. */
  ErrorNotOverRotationCertificate: 'ERROR_NOT_OVER_ROTATION_CERTIFICATE',
  /** A late message the cloud may not answer with abort: the old certificate is no longer ACTIVE. */
  OldCertificateNotActive: 'OLD_CERTIFICATE_NOT_ACTIVE',
} as const;
export type IgnoredReason = (typeof IgnoredReason)[keyof typeof IgnoredReason];

/** What the audit trigger did with one finding. */
export const StartOutcome = {
  Started: 'STARTED',
  AlreadyStarted: 'ALREADY_STARTED',
  CertificateNotFound: 'CERTIFICATE_NOT_FOUND',
  NoThing: 'NO_THING_ATTACHED',
  NotADeviceCertificate: 'NOT_A_DEVICE_CERTIFICATE',
  CertificateNotActive: 'CERTIFICATE_NOT_ACTIVE',
  /** The finding is suppressed in Device Defender: the operator chose not to act on it. */
  Suppressed: 'SUPPRESSED',
  /** The renewal calendar places it later: a sweep starts it on its day (domain/pacing/calendar.ts). */
  Deferred: 'DEFERRED',
} as const;
export type StartOutcome = (typeof StartOutcome)[keyof typeof StartOutcome];

/** Device Defender checks Rotor can act on. */
export const AuditCheck = {
  Expiring: 'DEVICE_CERTIFICATE_EXPIRING_CHECK',
  Age: 'DEVICE_CERTIFICATE_AGE_CHECK',
} as const;
export type AuditCheck = (typeof AuditCheck)[keyof typeof AuditCheck];
export const AUDIT_CHECKS: readonly AuditCheck[] = Object.values(AuditCheck);

/** How a rotation was started: recorded on the execution input and the history. */
export const Trigger = {
  Audit: 'audit',
  Retry: 'retry',
  /** A late crt_ack over the new certificate of a failed rotation: finish it (docs/protocol.md cloud rule 10). */
  Resume: 'resume',
  /** A CA rollover moving the device off the old CA (domain/ca-rollover.ts). */
  CaRollover: 'ca-rollover',
} as const;
export type Trigger = (typeof Trigger)[keyof typeof Trigger];

/** The input of one rotate-device execution. */
export interface RotationInput {
  thingName: string;
  certificateId: string;
  trigger: Trigger;
  auditTaskId?: string;
  checkName?: AuditCheck;
  /** Set when trigger = resume: the certificate the device acked over, which the execution finishes with. */
  resume?: { newCertificateId: string };
  /**
   * Every thing the certificate is attached to, as start-rotations listed them to start this
   * execution: Request CSR refuses a shared certificate from it instead of listing them again.
   * Absent when the list was not complete or the start was not an audit's.
   */
  certificateThings?: string[];
}

/** What the old certificate becomes once a rotation succeeds. */
export const RetireMode = {
  Delete: 'delete',
  KeepInactive: 'keep-inactive',
} as const;
export type RetireMode = (typeof RetireMode)[keyof typeof RetireMode];

/**
 * Device Defender's check of the CA certificates registered with IoT: expiring within 30 days,
 * or expired. It starts no device rotation; the CA rollover (issue 11) acts on it.
 */
export const CaAuditCheck = {
  Expiring: 'CA_CERTIFICATE_EXPIRING_CHECK',
} as const;
export type CaAuditCheck = (typeof CaAuditCheck)[keyof typeof CaAuditCheck];

/** The reason codes of CA_CERTIFICATE_EXPIRING_CHECK findings. */
export const CaExpiryReason = {
  Approaching: 'CERTIFICATE_APPROACHING_EXPIRATION',
  Past: 'CERTIFICATE_PAST_EXPIRATION',
} as const;
export type CaExpiryReason = (typeof CaExpiryReason)[keyof typeof CaExpiryReason];
