import { auditExecutionName, executionConsoleUrl, isCertificateId, isThingName, retryExecutionName } from '../../../domain/naming.js';

/** Step Functions execution names: 1–80 characters of [A-Za-z0-9_-] (no whitespace, wildcards or control characters). */
const EXECUTION_NAME = /^[A-Za-z0-9_-]{1,80}$/;
const CERT = 'b'.repeat(64);

describe('execution names (the rotation ids)', () => {
  it('are deterministic: the same finding asks for the same name', () => {
    expect(auditExecutionName('sensor-1', CERT, 'task1')).toBe(auditExecutionName('sensor-1', CERT, 'task1'));
    expect(retryExecutionName('sensor-1', CERT, 'rot1')).toBe(retryExecutionName('sensor-1', CERT, 'rot1'));
  });

  it('differ when the thing, the certificate, the audit or the trigger differs', () => {
    const names = [
      auditExecutionName('sensor-1', CERT, 'task1'),
      auditExecutionName('sensor-2', CERT, 'task1'),
      auditExecutionName('sensor-1', 'c'.repeat(64), 'task1'),
      auditExecutionName('sensor-1', CERT, 'task2'),
      retryExecutionName('sensor-1', CERT, 'task1'),
    ];
    expect(new Set(names).size).toBe(names.length);
  });

  it.each([
    ['a short name', 'sensor-1'],
    ['the longest thing name', 'x'.repeat(128)],
    ['colons, which execution names do not allow', 'factory:line-3:sensor_9'],
  ])('stay within Step Functions limits for %s', (_name, thing) => {
    for (const name of [auditExecutionName(thing, CERT, '4e2270a6d2a7d2b8d8f4ad6d6fe3e29a'), retryExecutionName(thing, CERT, 'r'.repeat(80))]) {
      expect(name).toMatch(EXECUTION_NAME);
    }
  });

  it('keep the thing name readable at the front', () => {
    expect(auditExecutionName('sensor-1', CERT, 't')).toMatch(/^sensor-1-a[0-9a-f]{20}$/);
  });
});

describe('identifiers', () => {
  it('tells certificate ids apart', () => {
    expect(isCertificateId(CERT)).toBe(true);
    expect(isCertificateId('B'.repeat(64))).toBe(false);
    expect(isCertificateId('b'.repeat(63))).toBe(false);
  });

  it('tells thing names apart', () => {
    expect(isThingName('a:b_c-d')).toBe(true);
    expect(isThingName('')).toBe(false);
    expect(isThingName('a/b')).toBe(false);
    expect(isThingName('x'.repeat(129))).toBe(false);
  });

  it('links an execution to its console page in its own region', () => {
    const arn = 'arn:aws:states:eu-west-1:123456789012:execution:rotor-rotate-device:sensor-1-a0';
    expect(executionConsoleUrl(arn)).toBe(`https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/${arn}`);
  });
});
