import { notAfterOf, notBeforeOf } from '../../../../local/pca/validity';

/** AWS Private CA's Validity {Value, Type}, read as the API reference describes it. */
describe('Private CA validity', () => {
  const issuedAt = new Date('2026-01-31T12:34:56Z');

  it.each([
    [{ Type: 'DAYS', Value: 90 }, '2026-05-01T12:34:56.000Z'],
    [{ Type: 'MONTHS', Value: 1 }, '2026-03-03T12:34:56.000Z'],
    [{ Type: 'YEARS', Value: 2 }, '2028-01-31T12:34:56.000Z'],
    [{ Type: 'END_DATE', Value: 491231235959 }, '2049-12-31T23:59:59.000Z'],
    [{ Type: 'END_DATE', Value: 500101000000 }, '1950-01-01T00:00:00.000Z'],
    [{ Type: 'END_DATE', Value: 20500101000000 }, '2050-01-01T00:00:00.000Z'],
    [{ Type: 'ABSOLUTE', Value: 2524608000 }, '2050-01-01T00:00:00.000Z'],
  ])('%j ends at %s', (validity, expected) => {
    expect(notAfterOf(validity, issuedAt).toISOString()).toBe(expected);
  });

  it.each([
    [undefined, 'Validity is required'],
    [{ Type: 'WEEKS', Value: 1 }, 'Validity.Type'],
    [{ Type: 'DAYS', Value: 0 }, 'positive whole number'],
    [{ Type: 'DAYS', Value: 1.5 }, 'positive whole number'],
    [{ Type: 'END_DATE', Value: 2612311 }, 'neither YYMMDDHHMMSS'],
    [{ Type: 'END_DATE', Value: 260230000000 }, 'not a valid date'],
  ])('refuses %j with InvalidArgsException', (validity, message) => {
    expect(() => notAfterOf(validity, issuedAt)).toThrow(expect.objectContaining({ code: 'InvalidArgsException', message: expect.stringContaining(message) }));
  });

  it('back-dates notBefore by 60 minutes unless ValidityNotBefore (ABSOLUTE only) says otherwise', () => {
    expect(notBeforeOf(undefined, issuedAt).toISOString()).toBe('2026-01-31T11:34:56.000Z');
    expect(notBeforeOf({ Type: 'ABSOLUTE', Value: 1767225600 }, issuedAt).toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(() => notBeforeOf({ Type: 'DAYS', Value: 1 }, issuedAt)).toThrow(expect.objectContaining({ code: 'InvalidArgsException' }));
  });
});
