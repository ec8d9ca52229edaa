/** PEM armour: the one place that knows its shape. */
export function pemToDer(pem: string, label: string): Uint8Array | undefined {
  const re = new RegExp(`^-----BEGIN ${label}-----\\r?\\n([A-Za-z0-9+/=\\r\\n]+?)\\r?\\n?-----END ${label}-----\\s*$`);
  const match = re.exec(pem.trim());
  if (!match) return undefined;
  const body = match[1].replace(/[\r\n]/g, '');
  if (body.length === 0 || body.length % 4 !== 0) return undefined;
  return new Uint8Array(Buffer.from(body, 'base64'));
}

export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
