import { ErrorName, FailureReason, StatesError, Step } from '../../domain/index.js';

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
    case ErrorName.SharedCertificate:
      return FailureReason.SharedCertificate;
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
export function classifyFailure(input: { failedStep?: string; error?: StateError; rollbackError?: StateError }): Failure {
  const step = input.failedStep ?? 'unknown';
  const reason = reasonFor(step, input.error?.Error);
  const cause = defaultCause(reason, input.error);
  if (input.rollbackError) {
    return {
      step: Step.RollBack,
      reason: FailureReason.RollbackFailed,
      cause: clip(`${readableCause(input.rollbackError)} (rolling back after '${step}' failed: ${reason}: ${cause})`, MAX_CAUSE_CHARS),
    };
  }
  return { step, reason, cause };
}

/** The reason text of the abort a device gets (PROTOCOL.md: "the device gets abort with the reason"). */
export function abortReason(failure: Failure, max = 512): string {
  return clip(`${failure.reason}: ${failure.cause}`, max);
}
