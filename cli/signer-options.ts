import { InvalidArgumentError } from 'commander';
import { DEFAULT_VALIDITY_DAYS, EXPIRING_CHECK_DAYS, SIGNER_KINDS, SignerKind } from '../domain/signer.js';
import type { LocalSignerOptions } from '../local/pca/index.js';
import type { Settings } from '../wiring/index.js';

/**
 * `--signer` and `--pca-validity-days`, as `rotor local up` and `rotor demo` take them. The
 * rules are the functions' own (domain/signer.ts): a validity the expiring check would flag at
 * once is refused here, before anything starts.
 */
export function signerOption(value: string): SignerKind {
  if (!(SIGNER_KINDS as readonly string[]).includes(value)) throw new InvalidArgumentError(`one of ${SIGNER_KINDS.join(', ')} is expected`);
  return value as SignerKind;
}

export function validityDaysOption(value: string): number {
  const days = Number(value);
  if (!Number.isInteger(days) || days <= EXPIRING_CHECK_DAYS) {
    throw new InvalidArgumentError(`a whole number of days over ${EXPIRING_CHECK_DAYS} is expected: DEVICE_CERTIFICATE_EXPIRING_CHECK flags certificates that expire within ${EXPIRING_CHECK_DAYS} days`);
  }
  return days;
}

/** Two flags that do not go together. Not a commander error: main() prints only its own, and this one must be read. */
export class SignerOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SignerOptionError';
  }
}

/** The runtime's signer option from the two flags; a validity without the private-ca signer is a mistake worth saying. */
export function localSigner(kind: SignerKind, validityDays: number | undefined): LocalSignerOptions {
  if (kind !== SignerKind.PrivateCa) {
    if (validityDays !== undefined) throw new SignerOptionError('--pca-validity-days needs --signer private-ca (IoT signs until 2049)');
    return { kind };
  }
  return { kind, validityDays: validityDays ?? DEFAULT_VALIDITY_DAYS };
}

/** One line for `local up` and the demo: who signs, and for how long. */
export function describeSigner(settings: Settings): string {
  if (settings.signer !== SignerKind.PrivateCa) return 'aws-iot (CreateCertificateFromCsr; new certificates expire on 2049-12-31)';
  return `private-ca (the local Private CA above; new certificates valid ${settings.privateCaValidityDays} days)`;
}
