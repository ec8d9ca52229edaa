import { AwsError } from '../types.js';

/**
 * AWS Private CA's Validity {Value, Type}: how IssueCertificate reads it (API reference,
 * "Validity"). DAYS, MONTHS and YEARS count from the moment of issuance; END_DATE is UTCTime
 * (YYMMDDHHMMSS, YY ≥ 50 → 19YY) or GeneralizedTime (YYYYMMDDHHMMSS); ABSOLUTE is seconds since
 * the epoch. The minimum relative validity is one day.
 */
export const ValidityType = {
  Days: 'DAYS',
  Months: 'MONTHS',
  Years: 'YEARS',
  EndDate: 'END_DATE',
  Absolute: 'ABSOLUTE',
} as const;
export type ValidityType = (typeof ValidityType)[keyof typeof ValidityType];
const TYPES: readonly string[] = Object.values(ValidityType);

export interface ValidityInput {
  Value?: unknown;
  Type?: unknown;
}

function invalidArgs(message: string): AwsError {
  return new AwsError('InvalidArgsException', message);
}

function addMonths(from: Date, months: number): Date {
  const to = new Date(from.getTime());
  to.setUTCMonth(to.getUTCMonth() + months);
  return to;
}

function endDate(value: number): Date {
  const text = String(value);
  let year: number;
  let rest: string;
  if (text.length === 12) {
    const yy = Number(text.slice(0, 2));
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    rest = text.slice(2);
  } else if (text.length === 14) {
    year = Number(text.slice(0, 4));
    rest = text.slice(4);
  } else {
    throw invalidArgs(`Validity END_DATE ${text} is neither YYMMDDHHMMSS nor YYYYMMDDHHMMSS`);
  }
  const [month, day, hour, minute, second] = [0, 2, 4, 6, 8].map((i) => Number(rest.slice(i, i + 2)));
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    throw invalidArgs(`Validity END_DATE ${text} is not a valid date and time`);
  }
  return date;
}

/** The notAfter a Validity asks for, issued at `now`. */
export function notAfterOf(validity: ValidityInput | undefined, now: Date): Date {
  if (!validity || typeof validity !== 'object') throw invalidArgs('Validity is required');
  const { Value: value, Type: type } = validity;
  if (typeof type !== 'string' || !TYPES.includes(type)) throw invalidArgs(`Validity.Type ${JSON.stringify(type)} is not one of ${TYPES.join(', ')}`);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw invalidArgs('Validity.Value must be a positive whole number');
  switch (type as ValidityType) {
    case 'DAYS':
      return new Date(now.getTime() + value * 86_400_000);
    case 'MONTHS':
      return addMonths(now, value);
    case 'YEARS':
      return addMonths(now, value * 12);
    case 'END_DATE':
      return endDate(value);
    case 'ABSOLUTE':
      return new Date(value * 1000);
  }
}

/** ValidityNotBefore: ABSOLUTE only; without it AWS back-dates notBefore by 60 minutes. */
export function notBeforeOf(validity: ValidityInput | undefined, now: Date): Date {
  if (validity === undefined || validity === null) return new Date(now.getTime() - 60 * 60_000);
  if (typeof validity !== 'object' || validity.Type !== ValidityType.Absolute) throw invalidArgs('ValidityNotBefore.Type must be ABSOLUTE');
  return notAfterOf(validity, now);
}
