import type { EdgeResponse } from '../types.js';

/**
 * Renders an error in the wire shape the caller's protocol expects, for the errors the edge
 * raises itself (no service for a signing name, a service that threw). The protocol is
 * guessed from the request the way the SDKs send it: X-Amz-Target → JSON, a form body with
 * Action= → Query XML, anything else → REST-JSON with the x-amzn-ErrorType header.
 */
export type WireProtocol = 'json' | 'query' | 'rest-json';

export function protocolOf(headers: Record<string, string>, body: Buffer): WireProtocol {
  if (headers['x-amz-target']) return 'json';
  const type = headers['content-type'] ?? '';
  if (type.startsWith('application/x-www-form-urlencoded') && /(^|&)Action=/.test(body.toString('utf8', 0, 4096))) return 'query';
  return 'rest-json';
}

/** Escapes text for an XML text node (the only place it is used: never in attributes). */
export function xmlEscape(text: string): string {
  return text.replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c] ?? c);
}

export function awsErrorResponse(protocol: WireProtocol, code: string, message: string, status: number, requestId: string): EdgeResponse {
  const common = { 'x-amzn-requestid': requestId, 'x-amzn-errortype': code };
  switch (protocol) {
    case 'json':
      return {
        status,
        headers: { ...common, 'content-type': 'application/x-amz-json-1.0' },
        body: JSON.stringify({ __type: code, message }),
      };
    case 'query':
      return {
        status,
        headers: { 'x-amzn-requestid': requestId, 'content-type': 'text/xml' },
        body:
          `<ErrorResponse><Error><Type>${status >= 500 ? 'Receiver' : 'Sender'}</Type><Code>${xmlEscape(code)}</Code>` +
          `<Message>${xmlEscape(message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      };
    case 'rest-json':
      return { status, headers: { ...common, 'content-type': 'application/json' }, body: JSON.stringify({ message }) };
  }
}
