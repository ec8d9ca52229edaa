import {
  encodeCloudMessage,
  MAX_CSR_CHARS,
  MAX_ERROR_CHARS,
  MAX_ROTATION_ID_CHARS,
  parseCloudMessage,
  parseDeviceMessage,
} from '../../../domain/messages.js';
import { MessageType } from '../../../domain/topics.js';

const CSR = '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n';

describe('parseDeviceMessage', () => {
  it('accepts each device → cloud message, with and without rotationId (blog-era devices)', () => {
    expect(parseDeviceMessage(MessageType.CsrResponse, JSON.stringify({ rotationId: 'r1', CSR }))).toEqual({
      ok: true,
      value: { type: 'csr_res', body: { rotationId: 'r1', CSR } },
    });
    expect(parseDeviceMessage(MessageType.CsrResponse, JSON.stringify({ CSR }))).toEqual({ ok: true, value: { type: 'csr_res', body: { CSR } } });
    expect(parseDeviceMessage(MessageType.CertificateAck, '{}')).toEqual({ ok: true, value: { type: 'crt_ack', body: {} } });
    expect(parseDeviceMessage(MessageType.CertificateError, Buffer.from(JSON.stringify({ rotationId: 'r1', error: 'tls failed' })))).toEqual({
      ok: true,
      value: { type: 'crt_err', body: { rotationId: 'r1', error: 'tls failed' } },
    });
  });

  it('drops fields that are not part of the protocol', () => {
    const parsed = parseDeviceMessage(MessageType.CertificateAck, JSON.stringify({ rotationId: 'r1', extra: 'x' }));
    expect(parsed).toEqual({ ok: true, value: { type: 'crt_ack', body: { rotationId: 'r1' } } });
  });

  const bad: [string, 'csr_res' | 'crt_ack' | 'crt_err', string, RegExp][] = [
    ['not JSON', MessageType.CsrResponse, '{"CSR":', /not valid JSON/],
    ['an empty payload', MessageType.CertificateAck, '', /not valid JSON/],
    ['a JSON array', MessageType.CertificateAck, '[]', /not a JSON object/],
    ['JSON null', MessageType.CertificateAck, 'null', /not a JSON object/],
    ['a JSON string', MessageType.CsrResponse, '"CSR"', /not a JSON object/],
    ['a missing CSR', MessageType.CsrResponse, '{"rotationId":"r1"}', /CSR is missing/],
    ['a CSR that is not a string', MessageType.CsrResponse, '{"CSR":42}', /CSR must be a string/],
    ['a CSR that is too long', MessageType.CsrResponse, JSON.stringify({ CSR: 'x'.repeat(MAX_CSR_CHARS + 1) }), /CSR/],
    ['a missing error', MessageType.CertificateError, '{"rotationId":"r1"}', /error is missing/],
    ['an error that is not a string', MessageType.CertificateError, '{"error":{"code":1}}', /error must be a string/],
    ['an error that is too long', MessageType.CertificateError, JSON.stringify({ error: 'e'.repeat(MAX_ERROR_CHARS + 1) }), /error/],
    ['a rotationId that is a number', MessageType.CertificateAck, '{"rotationId":7}', /rotationId/],
    ['an empty rotationId', MessageType.CertificateAck, '{"rotationId":""}', /rotationId/],
    ['a rotationId that is too long', MessageType.CertificateAck, JSON.stringify({ rotationId: 'r'.repeat(MAX_ROTATION_ID_CHARS + 1) }), /rotationId/],
  ];

  it.each(bad)('rejects %s', (_name, type, payload, error) => {
    const parsed = parseDeviceMessage(type, payload);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(error);
  });
});

describe('cloud → device messages', () => {
  const id = 'a'.repeat(64);

  it('round-trips every cloud message through encodeCloudMessage and parseCloudMessage', () => {
    const messages = [
      { type: MessageType.CsrRequest, body: { rotationId: 'r1' } },
      { type: MessageType.CertificateResponse, body: { rotationId: 'r1', certificateId: id, certificatePem: 'PEM' } },
      { type: MessageType.RotationDone, body: { rotationId: 'r1' } },
      { type: MessageType.Abort, body: { rotationId: 'r1', reason: 'CSR_REJECTED: KEY_REUSED' } },
    ] as const;
    for (const message of messages) {
      expect(parseCloudMessage(message.type, encodeCloudMessage(message))).toEqual({ ok: true, value: message });
    }
  });

  it('encodes exactly the protocol body, nothing else', () => {
    expect(encodeCloudMessage({ type: MessageType.CsrRequest, body: { rotationId: 'r1' } })).toBe('{"rotationId":"r1"}');
  });

  it('accepts a blog-era csr_req without rotationId', () => {
    expect(parseCloudMessage(MessageType.CsrRequest, '{}')).toEqual({ ok: true, value: { type: 'csr_req', body: { rotationId: '' } } });
  });

  it.each([
    ['a crt_res whose certificateId is not 64 hex', MessageType.CertificateResponse, JSON.stringify({ rotationId: 'r', certificateId: 'XYZ', certificatePem: 'p' })],
    ['a crt_res without certificatePem', MessageType.CertificateResponse, JSON.stringify({ rotationId: 'r', certificateId: id })],
    ['a device → cloud type', MessageType.CsrResponse, '{}'],
    ['not JSON', MessageType.Abort, 'abort'],
  ])('rejects %s', (_name, type, payload) => {
    expect(parseCloudMessage(type, payload).ok).toBe(false);
  });
});
