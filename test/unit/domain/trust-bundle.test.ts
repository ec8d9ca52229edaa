import { createHash } from 'node:crypto';
import { bundleIdOf, MAX_BUNDLE_CERTIFICATES, parseTrustBundle } from '../../../domain/trust-bundle';
import { pemToDer } from '../../../domain/pem';
import { parseTrustRequest, validateTrustDeviceMessage } from '../../../domain/messages';
import { parseTrustTopic, trustTopicFor, parseTopic } from '../../../domain/topics';
import { createCa, issueCertificate, newEcKeyPem, type TestCa } from '../device-sim/pki';

const NOW = new Date();
let ca1: TestCa;
let ca2: TestCa;
let leafPem: string;

beforeAll(async () => {
  ca1 = await createCa('Server Root 1');
  ca2 = await createCa('Server Root 2');
  leafPem = await issueCertificate(ca1, newEcKeyPem(), 'localhost', { server: true });
});

function der(pem: string): Uint8Array {
  const out = pemToDer(pem, 'CERTIFICATE');
  if (!out) throw new Error('bad test PEM');
  return out;
}

describe('parseTrustBundle', () => {
  it('reads every CA certificate and ids the bundle by the SHA-256 of their DER in order', () => {
    const result = parseTrustBundle(`${ca1.certPem}\n${ca2.certPem}`, NOW);
    if (!result.ok) throw new Error(result.error);
    expect(result.value.certificates.map((c) => c.subject)).toEqual(['CN=Server Root 1', 'CN=Server Root 2']);
    const expected = createHash('sha256').update(der(ca1.certPem)).update(der(ca2.certPem)).digest('hex');
    expect(result.value.bundleId).toBe(expected);
    expect(result.value.certificates[0].fingerprint).toBe(createHash('sha256').update(der(ca1.certPem)).digest('hex'));
  });

  it('gives the same id whatever the line endings and blank lines', () => {
    const a = parseTrustBundle(`${ca1.certPem}${ca2.certPem}`, NOW);
    const b = parseTrustBundle(`\r\n${ca1.certPem.replace(/\n/g, '\r\n')}\r\n\r\n${ca2.certPem}\n\n`, NOW);
    expect(a.ok && b.ok && a.value.bundleId === b.value.bundleId).toBe(true);
    expect(bundleIdOf([der(ca2.certPem), der(ca1.certPem)])).not.toBe(a.ok ? a.value.bundleId : '');
  });

  it.each([
    ['', 'the bundle is empty'],
    ['hello', 'the bundle holds text outside its PEM blocks'],
    ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', 'certificate 1 is not an X.509 certificate'],
    ['-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', 'block 1 is a PRIVATE KEY, not a CERTIFICATE'],
  ])('refuses %j: %s', (pem, error) => {
    expect(parseTrustBundle(pem, NOW)).toEqual({ ok: false, error });
  });

  it('refuses a certificate that is not a CA, naming it', () => {
    const result = parseTrustBundle(`${ca1.certPem}${leafPem}`, NOW);
    expect(result).toEqual({ ok: false, error: 'certificate 2 (CN=localhost) is not a CA certificate' });
  });

  it('refuses a CA that is not valid at the time given, a duplicate, and too many certificates', () => {
    const later = new Date(NOW.getTime() + 2 * 365 * 86_400_000);
    const expired = parseTrustBundle(ca1.certPem, later);
    expect(expired.ok ? '' : expired.error).toMatch(/^certificate 1 \(CN=Server Root 1\) is not valid now/);
    expect(parseTrustBundle(`${ca1.certPem}${ca1.certPem}`, NOW)).toEqual({ ok: false, error: 'certificate 2 appears twice' });
    const many = parseTrustBundle(ca1.certPem.repeat(MAX_BUNDLE_CERTIFICATES + 1), NOW);
    expect(many).toEqual({ ok: false, error: `the bundle holds more than ${MAX_BUNDLE_CERTIFICATES} certificates` });
  });
});

describe('trust messages (protocol v1.2)', () => {
  const id = 'a'.repeat(64);

  it('trust_req needs rotationId, bundle and a 64-hex bundleId', () => {
    expect(parseTrustRequest(JSON.stringify({ rotationId: 'r1', bundle: 'x', bundleId: id }))).toEqual({
      ok: true,
      value: { rotationId: 'r1', bundle: 'x', bundleId: id },
    });
    expect(parseTrustRequest(JSON.stringify({ rotationId: 'r1', bundle: 'x', bundleId: 'ABC' }))).toEqual({
      ok: false,
      error: 'bundleId must be 64 lowercase hex characters',
    });
    expect(parseTrustRequest(JSON.stringify({ rotationId: 'r1', bundleId: id }))).toEqual({ ok: false, error: 'bundle is missing' });
    expect(parseTrustRequest('{')).toEqual({ ok: false, error: 'payload is not valid JSON' });
  });

  it('trust_ack carries the bundleId; trust_err a known code and a text', () => {
    expect(validateTrustDeviceMessage('trust_ack', { rotationId: 'r1', bundleId: id })).toEqual({
      ok: true,
      value: { type: 'trust_ack', body: { rotationId: 'r1', bundleId: id } },
    });
    expect(validateTrustDeviceMessage('trust_ack', { rotationId: 'r1' })).toEqual({ ok: false, error: 'bundleId is missing' });
    expect(validateTrustDeviceMessage('trust_err', { bundleId: id, code: 'CONNECT_FAILED', error: 'x' })).toEqual({
      ok: true,
      value: { type: 'trust_err', body: { bundleId: id, code: 'CONNECT_FAILED', error: 'x' } },
    });
    const bad = validateTrustDeviceMessage('trust_err', { code: 'NOPE', error: 'x' });
    expect(bad.ok ? '' : bad.error).toMatch(/^code must be one of BUNDLE_INVALID, /);
  });

  it('its topics sit below the device subscription, unknown to the v1 topic parser', () => {
    expect(trustTopicFor('t1', 'trust_req')).toBe('management/topic/t1/trust_req');
    expect(parseTrustTopic('management/topic/t1/trust_err')).toEqual({ thingName: 't1', type: 'trust_err' });
    expect(parseTrustTopic('management/topic/t1/csr_req')).toBeUndefined();
    expect(parseTopic('management/topic/t1/trust_req')).toBeUndefined();
  });
});
