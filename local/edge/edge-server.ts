import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { EdgeRequest, EdgeResponse, LocalService } from '../types.js';
import { AwsError } from '../types.js';
import { awsErrorResponse, protocolOf } from './aws-error-response.js';
import { credentialScopeOf } from './credential-scope.js';
import { serviceOfQuery, serviceOfTarget, servicesSignedAs, signingNamesOf } from './service-identity.js';
import { FaultError, FaultInjector, parseFaultRequest, type FaultAnswer } from './faults.js';
import { silentLogger, type LocalLogger } from './logger.js';
import type { QuotaEnforcer } from './quotas.js';

/**
 * The one HTTP endpoint of the local AWS (like LocalStack's :4566). Every SDK client and the
 * AWS CLI point at it; it routes each request to the service it is for — read from its
 * X-Amz-Target, its Query version or, for REST services, the signing name in its SigV4
 * credential scope and its path (service-identity.ts) — accepts any signing name a released
 * client uses for that service, and counts calls per service and operation so that the demo
 * can report how many AWS API calls one rotation costs.
 */

/** A service that is another HTTP server (DynamoDB Local): requests go to it byte for byte. */
export interface ProxyRoute {
  readonly signingNames: readonly string[];
  /** Base URL of the upstream server, e.g. http://127.0.0.1:41234. */
  readonly upstream: string;
}

/** Services may name the operation of a request (REST protocols carry it only in the path). */
export interface NamesOperations {
  operationOf(request: EdgeRequest): string | undefined;
}

export type EdgeRoute = LocalService | ProxyRoute;

/** Calls made to a service without crossing the edge (local/dynamodb/direct-path.ts), counted with the edge's own. */
export interface CallSource {
  /** Keyed `service:Operation`, as the edge counts. */
  calls(): Record<string, number>;
  reset(): void;
}

/**
 * A local-only admin operation under /_rotor/ (unsigned, JSON in and out) for what AWS has no
 * API for, e.g. issuing a device certificate with a chosen expiry. Throwing an Error answers 400.
 */
export type AdminHandler = (body: unknown) => Promise<unknown>;

/** A local-only web app under a path prefix (the console): unsigned requests there are its own. */
export type MountedHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export interface EdgeOptions {
  host?: string;
  /** 4566 by default; 0 picks a free port (tests). */
  port?: number;
  logger?: LocalLogger;
  /** Requests larger than this are refused (413); generous, AWS's own limits are smaller. */
  maxBodyBytes?: number;
}

export const DEFAULT_EDGE_PORT = 4566;

/**
 * SDK clients whose user agent carries this (the local console's) are served but not counted:
 * the call counts say what the rotations cost, not what watching them costs.
 */
export const UNCOUNTED_USER_AGENT = 'rotor-console';

/** Local-only routes, unsigned, under this prefix: health and call counts. */
export const ADMIN_PREFIX = '/_rotor/';

function isProxy(route: EdgeRoute): route is ProxyRoute {
  return 'upstream' in route;
}

function namesOperations(service: LocalService): service is LocalService & NamesOperations {
  return typeof (service as Partial<NamesOperations>).operationOf === 'function';
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        reject(new BodyTooLarge(`request body over ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function lowerCaseHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

/** The operation a request names, for the call counts: X-Amz-Target, a Query Action, or the service's own reading. */
function operationFrom(headers: Record<string, string>, body: Buffer | undefined): string | undefined {
  const target = headers['x-amz-target'];
  if (target) return target.slice(target.lastIndexOf('.') + 1);
  if (body && (headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    return new URLSearchParams(body.toString('utf8')).get('Action') ?? undefined;
  }
  return undefined;
}

export class EdgeServer {
  private readonly routes = new Map<string, EdgeRoute>();
  /** acceptedSigningNames() by service, worked out once per service after the last register(). */
  private readonly accepted = new Map<string, readonly string[]>();
  private readonly counts = new Map<string, number>();
  private readonly callSources: CallSource[] = [];
  private readonly adminRoutes = new Map<string, AdminHandler>();
  private readonly mounts = new Map<string, MountedHandler>();
  /** Local-only: throttle the next N calls of an operation (faults.ts, POST /_rotor/faults). */
  readonly faults = new FaultInjector(() => this.signingNames);
  /** Local-only: the account's quotas, enforced when the runtime was started with `--quotas` (quotas.ts). */
  quotas: QuotaEnforcer | undefined;
  private readonly logger: LocalLogger;
  private readonly maxBodyBytes: number;
  private server: Server | undefined;
  private address: AddressInfo | undefined;

  constructor(private readonly options: EdgeOptions = {}) {
    this.logger = options.logger ?? silentLogger;
    this.maxBodyBytes = options.maxBodyBytes ?? 16 * 1024 * 1024;
  }

  /** Routes every signing name of the service to it; a name can have one service only. */
  register(route: EdgeRoute): this {
    for (const name of route.signingNames) {
      if (this.routes.has(name)) throw new Error(`the edge already routes signing name '${name}'`);
      this.routes.set(name, route);
    }
    this.accepted.clear();
    return this;
  }

  /** Serves POST /_rotor/NAME with the handler. */
  addAdminRoute(name: string, handler: AdminHandler): this {
    this.adminRoutes.set(`${ADMIN_PREFIX}${name}`, handler);
    return this;
  }

  /** Serves unsigned requests whose path starts with `prefix` (e.g. '/console/') with the handler. */
  mount(prefix: string, handler: MountedHandler): this {
    this.mounts.set(prefix, handler);
    return this;
  }

  /** The services the edge serves, by the name it counts them under (their signing name in current SDKs). */
  get signingNames(): string[] {
    return [...this.routes.keys()].sort();
  }

  /** Every signing name a released client uses for the service (see service-identity.ts). */
  private acceptedSigningNames(service: string): readonly string[] {
    let names = this.accepted.get(service);
    if (!names) {
      const route = this.routes.get(service);
      names = [...new Set([...(route?.signingNames ?? []), ...signingNamesOf(service)])];
      this.accepted.set(service, names);
    }
    return names;
  }

  private accepts(service: string, signingName: string): boolean {
    return this.acceptedSigningNames(service).includes(signingName);
  }

  /**
   * The REST service a request is for. A signing name the edge routes is trusted; one that
   * released clients use for several services (execute-api) goes to the served service that
   * knows the request's method and path.
   */
  private restServiceFor(signingName: string, request: EdgeRequest): string | undefined {
    if (this.routes.has(signingName)) return signingName;
    return servicesSignedAs(signingName).find((name) => {
      const route = this.routes.get(name);
      return route !== undefined && !isProxy(route) && namesOperations(route) && route.operationOf(request) !== undefined;
    });
  }

  async start(): Promise<string> {
    if (this.server) throw new Error('the edge is already started');
    const server = createServer((req, res) => {
      this.dispatch(req, res).catch((error: unknown) => {
        this.logger.error('edge request failed', { error: error instanceof Error ? error.message : String(error) });
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: 'internal error in the local edge' }));
      });
    });
    server.keepAliveTimeout = 5_000;
    const host = this.options.host ?? '127.0.0.1';
    const port = this.options.port ?? DEFAULT_EDGE_PORT;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        reject(
          error.code === 'EADDRINUSE'
            ? new Error(`port ${port} on ${host} is in use: stop what listens there or pick another with --port`)
            : error,
        );
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    this.server = server;
    this.address = server.address() as AddressInfo;
    return this.url;
  }

  get url(): string {
    if (!this.address) throw new Error('the edge is not started');
    return `http://${this.address.address}:${this.address.port}`;
  }

  get port(): number {
    if (!this.address) throw new Error('the edge is not started');
    return this.address.port;
  }

  /** Counts the calls of `source` with the edge's own (calls that reach a service without crossing the edge). */
  countAlso(source: CallSource): this {
    this.callSources.push(source);
    return this;
  }

  /** Calls so far, keyed `service:Operation`. */
  calls(): Record<string, number> {
    const all = new Map(this.counts);
    for (const source of this.callSources) {
      for (const [key, count] of Object.entries(source.calls())) all.set(key, (all.get(key) ?? 0) + count);
    }
    return Object.fromEntries([...all.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }

  totalCalls(service?: string): number {
    let total = 0;
    for (const [key, count] of Object.entries(this.calls())) if (!service || key.startsWith(`${service}:`)) total += count;
    return total;
  }

  resetCalls(): void {
    this.counts.clear();
    for (const source of this.callSources) source.reset();
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.address = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private count(service: string, operation: string | undefined): void {
    const key = `${service}:${operation ?? 'Unknown'}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'http://edge');
    const headers = lowerCaseHeaders(req);
    const requestId = randomUUID();

    const mounted = headers.authorization ? undefined : [...this.mounts].find(([prefix]) => url.pathname.startsWith(prefix) || `${url.pathname}/` === prefix);
    if (mounted) return mounted[1](req, res);

    if (url.pathname.startsWith(ADMIN_PREFIX) && !headers.authorization) {
      await this.answerAdmin(req, url.pathname, res);
      this.logger.debug('edge admin', { method: req.method, path: url.pathname, status: res.statusCode, ms: Date.now() - started });
      return;
    }

    const scope = credentialScopeOf(headers.authorization, url.searchParams);
    // The console's own reads are served but not counted: they are not the rotations' calls.
    const counted = !(headers['user-agent'] ?? '').includes(UNCOUNTED_USER_AGENT);
    // A JSON-protocol request names its service in a header: a proxied one goes on unread.
    const targeted = scope ? serviceOfTarget(headers['x-amz-target']) : undefined;
    const targetedRoute = targeted ? this.routes.get(targeted) : undefined;
    if (scope && targeted && targetedRoute && isProxy(targetedRoute) && this.accepts(targeted, scope.service)) {
      const operation = operationFrom(headers, undefined);
      if (counted) this.count(targeted, operation);
      const fault = this.faults.take(targeted, operation);
      if (fault) {
        await readBody(req, this.maxBodyBytes).catch(() => req.destroy());
        this.sendFault(res, fault, protocolOf(headers, Buffer.alloc(0)), requestId);
        return;
      }
      const status = await this.proxy(req, res, targetedRoute, url);
      this.logger.debug('edge', { service: targeted, operation, method: req.method, path: url.pathname, status, ms: Date.now() - started });
      return;
    }

    let body: Buffer;
    try {
      body = await readBody(req, this.maxBodyBytes);
    } catch (error) {
      if (!(error instanceof BodyTooLarge)) throw error;
      this.send(res, awsErrorResponse(protocolOf(headers, Buffer.alloc(0)), 'RequestEntityTooLarge', error.message, 413, requestId));
      req.destroy();
      return;
    }
    const protocol = protocolOf(headers, body);

    if (!scope) {
      this.send(res, awsErrorResponse(protocol, 'MissingAuthenticationToken', 'the request is not signed with SigV4: the local edge routes requests by the signing name in the credential scope (any credentials are accepted)', 403, requestId));
      return;
    }
    const request: EdgeRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      headers,
      body,
      service: scope.service,
      region: scope.region,
      target: headers['x-amz-target'],
    };
    const name = targeted ?? (protocol === 'query' ? serviceOfQuery(new URLSearchParams(body.toString('utf8'))) : undefined) ?? this.restServiceFor(scope.service, request);
    const route = name ? this.routes.get(name) : undefined;
    if (!name || !route) {
      const served = this.signingNames.join(', ');
      this.count(scope.service, operationFrom(headers, body));
      this.send(res, awsErrorResponse(protocol, 'UnknownServiceException', `the local AWS does not emulate the service '${name ?? scope.service}' (it serves: ${served})`, 400, requestId));
      this.logger.debug('edge', { service: name ?? scope.service, method: req.method, path: url.pathname, status: 400, unknownService: true });
      return;
    }
    if (!this.accepts(name, scope.service)) {
      // What AWS answers when the credential scope names another service than the endpoint's.
      const code = protocol === 'query' ? 'SignatureDoesNotMatch' : 'InvalidSignatureException';
      this.count(name, operationFrom(headers, body));
      this.send(res, awsErrorResponse(protocol, code, `Credential should be scoped to correct service: '${name}'. (the local edge accepts ${this.acceptedSigningNames(name).map((n) => `'${n}'`).join(' or ')} for this request)`, 403, requestId));
      return;
    }
    if (isProxy(route)) {
      // A proxied service is only ever reached through its X-Amz-Target (above).
      this.count(name, operationFrom(headers, body));
      this.send(res, awsErrorResponse(protocol, 'UnknownOperationException', `the local ${name} takes JSON-protocol requests (X-Amz-Target) only`, 400, requestId));
      return;
    }
    const service = route;
    request.service = name;

    const operation = operationFrom(headers, body) ?? (namesOperations(service) ? service.operationOf(request) : undefined) ?? `${request.method} ${url.pathname.split('/').slice(0, 2).join('/')}`;
    if (counted) this.count(name, operation);
    const fault = this.faults.take(name, operation);
    if (fault) {
      this.sendFault(res, fault, protocol, requestId);
      this.logger.debug('edge fault injected', { service: name, operation, code: fault.code });
      return;
    }
    const throttled = this.quotas?.throttle(name, operation);
    if (throttled) {
      this.send(res, awsErrorResponse(protocol, throttled.code, throttled.message, throttled.status, requestId));
      this.logger.debug('edge quota exceeded', { service: name, operation, bucket: throttled.bucket });
      return;
    }
    let response: EdgeResponse;
    try {
      response = await service.handle(request);
    } catch (error) {
      // A service renders its own errors; one that escapes is still answered in the caller's shape.
      response =
        error instanceof AwsError
          ? awsErrorResponse(protocol, error.code, error.message, error.status, requestId)
          : awsErrorResponse(protocol, 'InternalFailure', error instanceof Error ? error.message : String(error), 500, requestId);
      if (!(error instanceof AwsError)) this.logger.error('service failed', { service: name, operation, error: error instanceof Error ? error.stack : String(error) });
    }
    this.send(res, response, requestId);
    this.logger.debug('edge', { service: name, operation, method: request.method, path: url.pathname, status: response.status, ms: Date.now() - started });
  }

  private sendFault(res: ServerResponse, fault: FaultAnswer, protocol: ReturnType<typeof protocolOf>, requestId: string): void {
    this.send(res, awsErrorResponse(protocol, fault.code, fault.message, fault.status, requestId));
  }

  private send(res: ServerResponse, response: EdgeResponse, requestId?: string): void {
    const body = response.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(response.body) ? response.body : Buffer.from(response.body, 'utf8');
    const headers: Record<string, string> = { ...(requestId ? { 'x-amzn-requestid': requestId } : {}), ...response.headers };
    headers['content-length'] = String(body.length);
    res.writeHead(response.status, headers);
    res.end(body);
  }

  private async answerAdmin(req: IncomingMessage, path: string, res: ServerResponse): Promise<void> {
    const answer = (status: number, value: unknown): void => this.send(res, { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) });
    const handler = this.adminRoutes.get(path);
    if (handler) {
      if (req.method !== 'POST') return answer(405, { message: `${path} takes POST` });
      let body: unknown;
      try {
        const text = (await readBody(req, this.maxBodyBytes)).toString('utf8');
        body = text ? JSON.parse(text) : {};
      } catch (error) {
        return answer(400, { message: `the body of ${path} is not JSON: ${(error as Error).message}` });
      }
      try {
        return answer(200, await handler(body));
      } catch (error) {
        return answer(error instanceof AwsError ? error.status : 400, { code: error instanceof Error ? error.name : 'Error', message: error instanceof Error ? error.message : String(error) });
      }
    }
    switch (path) {
      case `${ADMIN_PREFIX}health`:
        return answer(200, { status: 'running', services: this.signingNames });
      case `${ADMIN_PREFIX}calls`:
        return answer(200, { total: this.totalCalls(), calls: this.calls() });
      case `${ADMIN_PREFIX}quotas`:
        return answer(200, this.quotas?.figures() ?? { quotas: 'none', throttledCalls: { total: 0, byApi: {} }, delayedTransitions: 0, delayedAsyncInvocations: 0 });
      case `${ADMIN_PREFIX}faults`: {
        if (req.method === 'POST') {
          try {
            const text = (await readBody(req, this.maxBodyBytes)).toString('utf8');
            const request = parseFaultRequest(text ? JSON.parse(text) : undefined);
            if (request.kind === 'crash') this.faults.crash(request.function, request.afterAwsCalls, request.times, request.surface);
            else this.faults.throttle(request.service, request.operation, request.count);
          } catch (error) {
            if (!(error instanceof FaultError || error instanceof SyntaxError)) throw error;
            return answer(400, { code: error.name, message: error.message });
          }
        } else if (req.method !== 'GET') {
          return answer(405, { message: `${path} takes GET (show) or POST (throttle or crash)` });
        }
        return answer(200, { pending: this.faults.pending(), injected: this.faults.injected(), crashes: this.faults.pendingCrashes(), crashed: this.faults.crashed() });
      }
      default:
        return answer(404, { message: `no local route ${path} (try ${ADMIN_PREFIX}health, ${ADMIN_PREFIX}calls or ${ADMIN_PREFIX}faults)` });
    }
  }

  /** Streams the request to the upstream and its answer back, headers and bytes untouched. */
  /**
   * Forwards a request to an upstream server (DynamoDB Local). Request and answer are small
   * JSON documents, so each is buffered and written once: piping them wrote many small chunks
   * to loopback sockets, the largest cost left on the runtime's main thread in a 300-device
   * profile.
   */
  private async proxy(req: IncomingMessage, res: ServerResponse, route: ProxyRoute, url: URL): Promise<number> {
    const upstream = new URL(route.upstream);
    let body: Buffer;
    try {
      body = await readBody(req, this.maxBodyBytes);
    } catch (error) {
      if (!(error instanceof BodyTooLarge)) {
        req.destroy();
        return 400;
      }
      this.send(res, awsErrorResponse('json', 'RequestEntityTooLargeException', `the request body exceeds ${this.maxBodyBytes} bytes`, 413, randomUUID()));
      return 413;
    }
    return new Promise((resolve) => {
      const headers = { ...req.headers, 'content-length': String(body.length) };
      delete headers['transfer-encoding'];
      const outgoing = httpRequest(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: `${url.pathname}${url.search}`, headers },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => {
            const payload = Buffer.concat(chunks);
            const answerHeaders = { ...answer.headers, 'content-length': String(payload.length) };
            delete answerHeaders['transfer-encoding'];
            res.writeHead(answer.statusCode ?? 502, answerHeaders);
            res.end(payload);
            resolve(answer.statusCode ?? 502);
          });
          answer.on('error', () => {
            res.destroy();
            resolve(502);
          });
        },
      );
      outgoing.on('error', (error) => {
        if (!res.headersSent) {
          this.send(res, awsErrorResponse('json', 'ServiceUnavailable', `the local ${route.signingNames.join('/')} server is not reachable: ${error.message}`, 503, randomUUID()));
        } else {
          res.destroy();
        }
        resolve(503);
      });
      outgoing.end(body);
    });
  }
}
