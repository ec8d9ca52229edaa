import { AwsError, type EdgeRequest, type EdgeResponse } from '../types.js';

/**
 * The REST-JSON wire format of the IoT APIs: routes by method and path template, JSON bodies,
 * timestamps as epoch seconds, errors as status + x-amzn-ErrorType + {"message"} (the header
 * is what the SDK's deserialiser reads the error code from).
 */
export type JsonObject = Record<string, unknown>;

export interface RouteContext {
  request: EdgeRequest;
  /** Path parameters, percent-decoded. */
  params: Record<string, string>;
  body: JsonObject;
}

export interface Route {
  operation: string;
  method: string;
  /** e.g. '/certificates/{certificateId}' */
  path: string;
  handler: (context: RouteContext) => Promise<JsonObject | void> | JsonObject | void;
  /** The body is the payload itself (data-plane Publish), not a JSON document. */
  rawBody?: boolean;
}

interface CompiledRoute extends Route {
  pattern: RegExp;
  names: string[];
}

export function compileRoutes(routes: readonly Route[]): CompiledRoute[] {
  return routes.map((route) => {
    const names: string[] = [];
    const source = route.path.replace(/\{(\w+)\}/g, (_m, name: string) => {
      names.push(name);
      return '([^/]+)';
    });
    return { ...route, names, pattern: new RegExp(`^${source}$`) };
  });
}

export function errorResponse(error: AwsError): EdgeResponse {
  return {
    status: error.status,
    headers: { 'content-type': 'application/json', 'x-amzn-errortype': error.code },
    body: JSON.stringify({ message: error.message }),
  };
}

function parseBody(request: EdgeRequest): JsonObject {
  if (request.body.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(request.body.toString('utf8'));
  } catch {
    throw new AwsError('InvalidRequestException', 'the request body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AwsError('InvalidRequestException', 'the request body must be a JSON object');
  }
  return parsed as JsonObject;
}

/** Finds the route and runs it; unknown routes are an error that names them, never a silent success. */
/** The operation a request names, for call counting; undefined when no route matches. */
export function routeOperation(routes: readonly CompiledRoute[], request: EdgeRequest): string | undefined {
  const path = request.path.split('?')[0];
  return routes.find((route) => route.method === request.method.toUpperCase() && route.pattern.test(path))?.operation;
}

export async function dispatchRoute(
  routes: readonly CompiledRoute[],
  request: EdgeRequest,
  count: (operation: string) => void,
): Promise<EdgeResponse> {
  const path = request.path.split('?')[0];
  try {
    for (const route of routes) {
      if (route.method !== request.method.toUpperCase()) continue;
      const match = route.pattern.exec(path);
      if (!match) continue;
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => {
        try {
          params[name] = decodeURIComponent(match[i + 1]);
        } catch {
          throw new AwsError('InvalidRequestException', `path parameter ${name} is not valid percent-encoding`);
        }
      });
      count(route.operation);
      const result = await route.handler({ request, params, body: route.rawBody ? {} : parseBody(request) });
      return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(result ?? {}) };
    }
    throw new AwsError('UnknownOperationException', `no ${request.service || 'iot'} operation for ${request.method} ${path}`, 404);
  } catch (error) {
    if (error instanceof AwsError) return errorResponse(error);
    const message = error instanceof Error ? error.message : String(error);
    return errorResponse(new AwsError('InternalFailureException', message, 500));
  }
}

// ---- typed field readers: bad input is a clear InvalidRequestException -----------------------

export function optionalString(source: JsonObject, name: string): string | undefined {
  const value = source[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new AwsError('InvalidRequestException', `${name} must be a string`);
  return value;
}

export function requiredString(source: JsonObject, name: string): string {
  const value = optionalString(source, name);
  if (!value) throw new AwsError('InvalidRequestException', `${name} is required`);
  return value;
}

export function queryBoolean(query: URLSearchParams, name: string): boolean | undefined {
  const value = query.get(name);
  if (value === null) return undefined;
  if (value !== 'true' && value !== 'false') throw new AwsError('InvalidRequestException', `${name} must be true or false`);
  return value === 'true';
}

export function queryInteger(query: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const value = query.get(name);
  if (value === null) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new AwsError('InvalidRequestException', `${name} must be an integer from ${min} to ${max}`);
  return n;
}

export function bodyInteger(body: JsonObject, name: string, min: number, max: number): number | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new AwsError('InvalidRequestException', `${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** Epoch seconds (what the SDK sends for timestamps in JSON bodies and queries). */
export function epochSeconds(date: Date | string): number {
  return (typeof date === 'string' ? new Date(date) : date).getTime() / 1000;
}

export function parseTimestamp(value: unknown, name: string): Date | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value)) ? Number(value) : NaN;
  const date = Number.isNaN(n) ? new Date(String(value)) : new Date(n * 1000);
  if (Number.isNaN(date.getTime())) throw new AwsError('InvalidRequestException', `${name} is not a timestamp`);
  return date;
}

/**
 * One page of a list. Tokens are opaque to callers; here they are the offset, base64, so a
 * token from another list or a made-up one is refused rather than silently restarting.
 */
export function page<T>(items: readonly T[], size: number, token: string | undefined): { items: T[]; next?: string } {
  let start = 0;
  if (token) {
    const decoded = Buffer.from(token, 'base64').toString('utf8');
    const match = /^offset:(\d+)$/.exec(decoded);
    if (!match) throw new AwsError('InvalidRequestException', 'the pagination token is not valid');
    start = Number(match[1]);
  }
  const slice = items.slice(start, start + size);
  const nextOffset = start + size;
  return { items: slice, next: nextOffset < items.length ? Buffer.from(`offset:${nextOffset}`).toString('base64') : undefined };
}
