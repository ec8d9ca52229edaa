import { InvalidInput } from '../../domain/index.js';
import type { ResolvedCas } from '../../domain/ca-rollover.js';
import { objectInput, optionalStringField, stringField, type Fields } from './input.js';

/**
 * Validation of what the ca-rollover state machine sends its functions (as input.ts does for
 * rotate-device): a failure is a wiring bug, reported as InvalidInput.
 */
const CA_CERTIFICATE_ID = /^[0-9a-f]{64}$/;

function caCertificateIdField(input: Fields, field: string): string {
  const value = stringField(input, field, 64);
  if (!CA_CERTIFICATE_ID.test(value)) throw new InvalidInput(`${field} must be 64 lowercase hex characters`);
  return value;
}

export function resolvedCasField(input: Fields, field = 'cas'): ResolvedCas {
  const cas = objectInput(input[field], field);
  const oldPrivateCaArn = optionalStringField(cas, 'oldPrivateCaArn', 200);
  return {
    oldCaCertificateId: caCertificateIdField(cas, 'oldCaCertificateId'),
    ...(oldPrivateCaArn ? { oldPrivateCaArn } : {}),
    newCaCertificateId: caCertificateIdField(cas, 'newCaCertificateId'),
    newPrivateCaArn: stringField(cas, 'newPrivateCaArn', 200),
  };
}

export function rolloverIdField(input: Fields): string {
  return stringField(input, 'rolloverId', 80);
}

/** Log keys of a rollover state's input: the rollover's id, where a rotation's id would be. */
export function rolloverLogKeys(event: unknown): Record<string, string | undefined> {
  const fields = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  return { rotationId: typeof fields.rolloverId === 'string' ? fields.rolloverId : undefined };
}
