/**
 * Reads the SigV4 credential scope of a request: `AKID/DATE/REGION/SERVICE/aws4_request`,
 * from the Authorization header or, for presigned URLs, the X-Amz-Credential query parameter.
 * The signature itself is never checked: like LocalStack, the edge accepts any credentials.
 */
export interface CredentialScope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
}

const AUTH_SCOPE = /Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request/;

function parseScope(scope: string): CredentialScope | undefined {
  const parts = scope.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request') return undefined;
  const [accessKeyId, date, region, service] = parts;
  if (!accessKeyId || !/^\d{8}$/.test(date) || !region || !service) return undefined;
  return { accessKeyId, date, region, service };
}

export function credentialScopeOf(authorization: string | undefined, query: URLSearchParams): CredentialScope | undefined {
  if (authorization) {
    const match = AUTH_SCOPE.exec(authorization);
    if (match) return { accessKeyId: match[1], date: match[2], region: match[3], service: match[4] };
  }
  const presigned = query.get('X-Amz-Credential');
  return presigned ? parseScope(presigned) : undefined;
}
