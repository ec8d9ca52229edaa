/**
 * Errors the state machine tells apart. Step Functions matches `error.name` (a Lambda's
 * errorType, or the `error` of SendTaskFailure) in Retry/Catch `ErrorEquals`, so each name
 * here is stable and is checked against the ASL by a contract test.
 */
export const ErrorName = {
  CsrRejected: 'CsrRejected',
  DeviceReportedError: 'DeviceReportedError',
  CertificateNotFound: 'CertificateNotFound',
  ClaimLost: 'ClaimLost',
  RollbackUnsafe: 'RollbackUnsafe',
  InvalidInput: 'InvalidInput',
  OldCertificateRevoked: 'OldCertificateRevoked',
  OldCertificateInactive: 'OldCertificateInactive',
  SharedCertificate: 'SharedCertificate',
  AckNotVerified: 'AckNotVerified',
  /** Record failure found the rotation already SUCCEEDED (Retire committed, then timed out): it stays so. */
  RotationAlreadySucceeded: 'RotationAlreadySucceeded',
  /** The failure could not be recorded; its escalation was still sent. */
  RecordFailureFailed: 'RecordFailureFailed',
  /** The escalation could not be published after every retry. CloudWatch alarms on this error. */
  EscalationFailed: 'EscalationFailed',
  /** The thing is claimed by an execution that is still RUNNING. */
  ClaimHeld: 'ClaimHeld',
} as const;
export type ErrorName = (typeof ErrorName)[keyof typeof ErrorName];

/** Step Functions' own error names that the ASL uses. */
export const StatesError = {
  Timeout: 'States.Timeout',
  All: 'States.ALL',
  TaskFailed: 'States.TaskFailed',
  ConditionalCheckFailed: 'DynamoDB.ConditionalCheckFailedException',
} as const;

/**
 * Errors worth retrying with backoff: throttling, 5xx and network failures from AWS, as the SDK names them
 * (a Lambda that lets one escape reports it as its errorType), and the Lambda service's own
 * transient failures as the lambda:invoke integration names them.
 */
export const TRANSIENT_ERRORS = [
  'ThrottlingException',
  'TooManyRequestsException',
  'ServiceUnavailableException',
  'InternalFailureException',
  'InternalServerException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  // The SDK's name for a network failure it retried and gave up on (ECONNRESET, EPIPE, ETIMEDOUT,
  // a socket timeout): transient like a 5xx, and as safe to run again.
  'TimeoutError',
] as const;

export const DYNAMODB_TRANSIENT_ERRORS = [
  'DynamoDB.ProvisionedThroughputExceededException',
  'DynamoDB.ThrottlingException',
  'DynamoDB.RequestLimitExceeded',
  'DynamoDB.InternalServerErrorException',
  'DynamoDB.AmazonDynamoDBException',
] as const;

/**
 * How a Lambda that timed out or whose runtime died surfaces in Step Functions. Only steps
 * that are safe to run again retry on them (Issue certificate is, thanks to its recorded intent).
 */
export const LAMBDA_CRASH_ERRORS = ['Sandbox.Timedout', 'Lambda.Unknown', 'Runtime.ExitError'] as const;

/** TransactWriteItems cancelled by a concurrent write (not a failed condition): try again. */
export const TRANSACTION_CONFLICT_ERRORS = ['TransactionCanceledException', 'TransactionConflictException'] as const;

export const SNS_TRANSIENT_ERRORS = ['SNS.ThrottledException', 'SNS.InternalErrorException', 'SNS.SnsException'] as const;

/** Base of every error Rotor raises on purpose. */
export class RotorError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RotorError';
  }
}

/** The device's CSR breaks a rule of PROTOCOL.md cloud rule 4; `reason` is the rule. */
export class CsrRejected extends RotorError {
  constructor(
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = ErrorName.CsrRejected;
  }
}

/** The certificate being rotated no longer exists (deleted since the audit ran). */
export class CertificateNotFound extends RotorError {
  constructor(readonly certificateId: string, options?: { cause?: unknown }) {
    super(`certificate ${certificateId} does not exist`, options);
    this.name = ErrorName.CertificateNotFound;
  }
}

/** The rotation record no longer belongs to this execution (another rotation claimed the thing). */
export class ClaimLost extends RotorError {
  constructor(readonly thingName: string, readonly rotationId: string) {
    super(`rotation ${rotationId} no longer holds the claim on ${thingName}`);
    this.name = ErrorName.ClaimLost;
  }
}

/** Deleting the new certificate would leave the device without an ACTIVE certificate. */
export class RollbackUnsafe extends RotorError {
  constructor(message: string) {
    super(message);
    this.name = ErrorName.RollbackUnsafe;
  }
}

/** A Lambda was invoked with input it cannot act on. */
export class InvalidInput extends RotorError {
  constructor(message: string) {
    super(message);
    this.name = ErrorName.InvalidInput;
  }
}

/**
 * The certificate being rotated is attached to other things, or the thing holds other
 * certificates: retiring it could cut another device off, and the device might not hold it.
 * Rotor refuses before anything is created (docs/protocol.md cloud rule 8), and Retire re-checks
 * before it deactivates anything (another thing may have been attached since).
 */
export class SharedCertificate extends RotorError {
  constructor(
    readonly certificateId: string,
    readonly things: readonly string[],
    readonly otherCertificates: readonly string[] = [],
    /** What Rotor did about it: refused before anything was created, or left it ACTIVE at Retire. */
    outcome: 'not rotated' | 'left ACTIVE' = 'not rotated',
  ) {
    const parts: string[] = [];
    if (things.length > 1) parts.push(`is attached to ${things.length} things (${things.join(', ')})`);
    if (otherCertificates.length) parts.push(`shares its thing with ${otherCertificates.length} other certificate(s) (${otherCertificates.join(', ')})`);
    super(`certificate ${certificateId} ${parts.join(' and ')}: ${outcome}`);
    this.name = ErrorName.SharedCertificate;
  }
}

/** Certificate statuses that mean somebody decided the device must not connect with it. */
export const REVOKED_STATUSES: readonly string[] = ['REVOKED', 'PENDING_TRANSFER'];

/** The old certificate was revoked (or put in transfer) during the rotation: a security decision. */
export class OldCertificateRevoked extends RotorError {
  constructor(readonly certificateId: string, readonly status: string) {
    super(`the old certificate ${certificateId} is ${status}: the device is cut off on purpose, no new certificate is left in service`);
    this.name = ErrorName.OldCertificateRevoked;
  }
}

/** The old certificate was set INACTIVE by somebody else before a new one was issued. */
export class OldCertificateInactive extends RotorError {
  constructor(readonly certificateId: string) {
    super(`the old certificate ${certificateId} was set INACTIVE outside Rotor; no new certificate was issued`);
    this.name = ErrorName.OldCertificateInactive;
  }
}

/** Retire could not verify that the device acked over the new certificate and that it is ACTIVE. */
export class AckNotVerified extends RotorError {
  constructor(message: string) {
    super(message);
    this.name = ErrorName.AckNotVerified;
  }
}

/** The rotation is already recorded SUCCEEDED: a late failure path must not overwrite it. */
export class RotationAlreadySucceeded extends RotorError {
  constructor(readonly thingName: string, readonly rotationId: string) {
    super(`rotation ${rotationId} of ${thingName} is already recorded SUCCEEDED`);
    this.name = ErrorName.RotationAlreadySucceeded;
  }
}

/** Another execution that is still RUNNING holds the claim on the thing. */
export class ClaimHeld extends RotorError {
  constructor(readonly thingName: string, readonly holder: string) {
    super(`rotation ${holder} of ${thingName} is still running`);
    this.name = ErrorName.ClaimHeld;
  }
}
