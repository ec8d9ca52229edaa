import { InvalidInput, isCertificateId, isThingName } from '../../domain/index.js';

/**
 * Validation of what the state machine sends a function. The ASL is the only caller, so a
 * failure here means a wiring bug: it is reported as InvalidInput (a stable error name the
 * execution history shows) instead of a TypeError deep inside an AWS call.
 */
export type Fields = Record<string, unknown>;

/** Step Functions execution names are at most 80 characters. */
const MAX_ROTATION_ID = 80;
/** Task tokens are opaque; Step Functions documents up to 1024 characters, leave room. */
const MAX_TASK_TOKEN = 2048;
const MAX_PEM = 16_384;

export function objectInput(value: unknown, what: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidInput(`${what} must be a JSON object`);
  }
  return value as Fields;
}

export function stringField(input: Fields, field: string, max = 4096): string {
  const value = input[field];
  if (typeof value !== 'string' || value.length === 0) throw new InvalidInput(`${field} must be a non-empty string`);
  if (value.length > max) throw new InvalidInput(`${field} is longer than ${max} characters`);
  return value;
}

export function optionalStringField(input: Fields, field: string, max = 4096): string | undefined {
  return input[field] === undefined || input[field] === null ? undefined : stringField(input, field, max);
}

export function thingNameField(input: Fields, field = 'thingName'): string {
  const value = stringField(input, field, 128);
  if (!isThingName(value)) throw new InvalidInput(`${field} ${JSON.stringify(value)} is not a valid thing name`);
  return value;
}

export function rotationIdField(input: Fields, field = 'rotationId'): string {
  return stringField(input, field, MAX_ROTATION_ID);
}

export function taskTokenField(input: Fields, field = 'taskToken'): string {
  return stringField(input, field, MAX_TASK_TOKEN);
}

export function certificateIdField(input: Fields, field: string): string {
  const value = stringField(input, field, 64);
  if (!isCertificateId(value)) throw new InvalidInput(`${field} must be 64 lowercase hex characters`);
  return value;
}

export function pemField(input: Fields, field: string): string {
  return stringField(input, field, MAX_PEM);
}
