import { ErrorName, FailureReason, REVOKED_STATUSES, StatesError, Step } from '../../domain/index.js';

/** The `{Error, Cause}` object a Catch with ResultPath stores in the execution state. */
export interface StateError {
  Error?: string;
  Cause?: string;
}

export interface Failure {
  /** The state the rotation failed in (a domain Step value, or what the ASL sent). */
  step: string;
  reason: FailureReason;
  cause: string;
}

/** Causes are stored and escalated; a hostile or verbose error must not make them huge. */
export const MAX_CAUSE_CHARS = 1_000;

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

const OWN_ERRORS: readonly string[] = Object.values(ErrorName);

/**
 * Turns a Catch's `Cause` into one readable line. A Lambda's Cause is the JSON of
 * {errorType, errorMessage, trace}: the message is what matters, and the type is kept in
 * front unless it is one of Rotor's own errors, whose messages already say what happened.
 * SendTaskFailure's Cause (a device's crt_err text) is plain text and is kept as is.
 */
export function readableCause(error: StateError | undefined): string {
  const name = error?.Error;
  const raw = error?.Cause;
  if (!raw) return name ?? 'unknown error';
  let text = raw;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (typeof parsed === 'object' && parsed !== null && typeof (parsed as { errorMessage?: unknown }).errorMessage === 'string') {
      const { errorMessage, errorType } = parsed as { errorMessage: string; errorType?: unknown };
      const type = typeof errorType === 'string' ? errorType : name;
      text = type && !OWN_ERRORS.includes(type) && !errorMessage.startsWith(type) ? `${type}: ${errorMessage}` : errorMessage;
    }
  } catch {
    // Not JSON: a plain-text cause.
  }
  return clip(text.replace(/\s+/g, ' ').trim(), MAX_CAUSE_CHARS);
}

function reasonFor(step: string, name: string | undefined): FailureReason {
  switch (name) {
    case ErrorName.CsrRejected:
      return FailureReason.CsrRejected;
    case ErrorName.DeviceReportedError:
      return FailureReason.DeviceError;
    case ErrorName.CertificateNotFound:
      return FailureReason.CertificateNotFound;
    case ErrorName.OldCertificateRevoked:
      return FailureReason.OldCertificateRevoked;
    case ErrorName.OldCertificateInactive:
      return FailureReason.OldCertificateInactive;
    case ErrorName.SharedCertificate:
      return FailureReason.SharedCertificate;
    case ErrorName.AckNotVerified:
      return FailureReason.AckNotVerified;
  }
  if (name === StatesError.Timeout && step === Step.RequestCsr) return FailureReason.NoCsrResponse;
  if (name === StatesError.Timeout && step === Step.DeliverCertificate) return FailureReason.NoAck;
  if (step === Step.RetireOldCertificate) return FailureReason.RetireFailed;
  if (step === Step.IssueCertificate) return FailureReason.IssueFailed;
  return FailureReason.Internal;
}

function defaultCause(reason: FailureReason, error: StateError | undefined): string {
  if (error?.Cause) return readableCause(error);
  switch (reason) {
    case FailureReason.NoCsrResponse:
      return 'the device sent no csr_res before the timeout, after every re-sent csr_req';
    case FailureReason.NoAck:
      return 'no crt_ack over the new certificate before the timeout';
    default:
      return error?.Error ?? 'unknown error';
  }
}

/**
 * Why a rotation failed, from the step that failed and the error its Catch stored. A failed
 * roll-back outranks the original failure: a new certificate may still be live, which is what
 * the operator must look at first; the original failure is kept in the cause.
 */
export function classifyFailure(input: { failedStep?: string; error?: StateError; rollbackError?: StateError; oldCertificateStatus?: string }): Failure {
  const step = input.failedStep ?? 'unknown';
  const found = reasonFor(step, input.error?.Error);
  const original = defaultCause(found, input.error);
  // Roll back found the old certificate revoked: whatever failed first (often NO_ACK, the device
  // having been disconnected by the revocation), the rotation ended because of a security decision.
  const revokedMeanwhile = found !== FailureReason.OldCertificateRevoked && input.oldCertificateStatus !== undefined && REVOKED_STATUSES.includes(input.oldCertificateStatus);
  const reason = revokedMeanwhile ? FailureReason.OldCertificateRevoked : found;
  const cause = revokedMeanwhile
    ? clip(`the old certificate is ${input.oldCertificateStatus}: the device is cut off on purpose, no new certificate is left in service (after '${step}' failed: ${found}: ${original})`, MAX_CAUSE_CHARS)
    : original;
  // A revocation outranks a failed roll back: the operator must know the device was cut off on purpose.
  if (input.rollbackError && reason !== FailureReason.OldCertificateRevoked) {
    return {
      step: Step.RollBack,
      reason: FailureReason.RollbackFailed,
      cause: clip(`${readableCause(input.rollbackError)} (rolling back after '${step}' failed: ${reason}: ${cause})`, MAX_CAUSE_CHARS),
    };
  }
  return { step, reason, cause };
}

/** A rule code at the start of a cause ("WRONG_COMMON_NAME: subject CN is …"). */
const LEADING_CODE = /^([A-Z][A-Z0-9_]{2,63}):/;

/**
 * The reason of the abort a device gets (PROTOCOL.md: "the device gets abort with the reason").
 * Reason codes only: a cause can carry AWS error text (account ids, role ARNs) that a device
 * has no business reading. A refused CSR adds the rule it broke, itself a code.
 */
export function abortReason(failure: Failure): string {
  const rule = failure.reason === FailureReason.CsrRejected ? LEADING_CODE.exec(failure.cause)?.[1] : undefined;
  return rule ? `${failure.reason}: ${rule}` : failure.reason;
}
