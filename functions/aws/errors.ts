/**
 * AWS SDK v3 errors are told apart by `name` (the service's error code). These helpers read
 * it from an `unknown` catch value without trusting its shape.
 */
export function errorName(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const name = (error as { name?: unknown }).name;
  return typeof name === 'string' ? name : undefined;
}

export function isNamed(error: unknown, ...names: readonly string[]): boolean {
  const name = errorName(error);
  return name !== undefined && names.includes(name);
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** IoT's answer for a certificate, thing or policy that does not exist (any more). */
export const RESOURCE_NOT_FOUND = 'ResourceNotFoundException';
/** IoT's refusal of a status change a certificate cannot make (a REVOKED certificate's status never changes). */
export const CERTIFICATE_STATE_EXCEPTION = 'CertificateStateException';
/** DynamoDB's answer when a ConditionExpression does not hold. */
export const CONDITIONAL_CHECK_FAILED = 'ConditionalCheckFailedException';
/** DynamoDB's answer when a transaction is cancelled (a condition failed, or a conflict). */
export const TRANSACTION_CANCELED = 'TransactionCanceledException';

/** True when a TransactWriteItems failed because one of its conditions did not hold. */
export function isTransactionConditionFailure(error: unknown): boolean {
  if (!isNamed(error, TRANSACTION_CANCELED)) return false;
  const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons;
  // Without reasons (older SDKs, some emulators) the message still names the cause.
  if (!Array.isArray(reasons)) return /ConditionalCheckFailed/.test(errorMessage(error));
  return reasons.some((reason) => reason?.Code === 'ConditionalCheckFailed');
}
