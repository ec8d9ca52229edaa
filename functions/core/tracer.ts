import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';

/**
 * X-Ray tracing without aws-xray-sdk-core. With active tracing, Lambda records the function's
 * segment itself and hands the invocation its trace in _X_AMZN_TRACE_ID (Root, Parent,
 * Sampled) and the X-Ray daemon's address in AWS_XRAY_DAEMON_ADDRESS. For a sampled
 * invocation this module sends, as the X-Ray SDK does, one subsegment document per UDP
 * datagram to that daemon: `## handler` (annotated ColdStart, Service and the rotation's
 * thingName/rotationId, so traces can be searched by device) and one per AWS SDK call, named
 * for the service, with its operation, request id, retries and outcome; and it passes the
 * call's subsegment on in the X-Amzn-Trace-Id header, so the services the call reaches (Step
 * Functions, SNS, Lambda) join the same trace. Without a sampled trace or a daemon (tests, the
 * local runtime) it does nothing.
 */
export interface TraceContext {
  root: string;
  /** The id of the segment the invocation's subsegments hang from (Lambda's function segment). */
  parent: string;
  sampled: boolean;
}

/** Reads `Root=1-…;Parent=…;Sampled=1[;Lineage=…]`. */
export function parseTraceHeader(value: string | undefined): TraceContext | undefined {
  if (!value) return undefined;
  const fields = new Map(value.split(';').map((part) => part.trim().split('=') as [string, string]));
  const root = fields.get('Root');
  const parent = fields.get('Parent');
  if (!root || !parent) return undefined;
  return { root, parent, sampled: fields.get('Sampled') === '1' };
}

/** `host:port`, or the `tcp:host:port udp:host:port` form (subsegments go over UDP). */
export function parseDaemonAddress(value: string | undefined): { host: string; port: number } | undefined {
  if (!value) return undefined;
  const parts = value.trim().split(/\s+/);
  const udp = parts.find((part) => part.startsWith('udp:'))?.slice(4) ?? parts.find((part) => !part.startsWith('tcp:'));
  const match = udp ? /^(.+):(\d+)$/.exec(udp) : null;
  return match ? { host: match[1], port: Number(match[2]) } : undefined;
}

export type Annotations = Record<string, string | number | boolean>;

export interface SubsegmentDocument {
  name: string;
  id: string;
  trace_id: string;
  parent_id: string;
  type: 'subsegment';
  start_time: number;
  end_time: number;
  namespace?: 'aws' | 'remote';
  annotations?: Annotations;
  aws?: Record<string, unknown>;
  http?: { response: { status?: number } };
  error?: boolean;
  fault?: boolean;
  throttle?: boolean;
  cause?: { exceptions: { id: string; type: string; message: string }[] };
}

/** An open subsegment: ended once, with what happened. */
export interface OpenSubsegment {
  readonly id: string;
  end(fields?: Partial<Pick<SubsegmentDocument, 'namespace' | 'annotations' | 'aws' | 'http' | 'error' | 'fault' | 'throttle'>> & { exception?: unknown }): void;
}

const HEADER = '{"format": "json", "version": 1}\n';
const seconds = (): number => Date.now() / 1000;
const newId = (): string => randomBytes(8).toString('hex');

/** Annotation keys allow letters, digits and underscores only. */
const annotationKey = (key: string): string => key.replace(/[^A-Za-z0-9_]/g, '_');

export type SendDocument = (datagram: string) => Promise<void>;

export interface TracerOptions {
  serviceName: string;
  /** Sends one datagram; UDP to AWS_XRAY_DAEMON_ADDRESS by default. */
  send?: SendDocument;
}

interface SdkContext {
  clientName?: string;
  commandName?: string;
}

interface SdkOutput {
  response?: { statusCode?: number };
  output?: { $metadata?: { requestId?: string; attempts?: number; httpStatusCode?: number } };
}

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { requestId?: string; attempts?: number; httpStatusCode?: number };
}

/** Just enough of an SDK v3 middleware stack (every client's, the document client's) to add one. */
interface MiddlewareStackLike {
  add(middleware: (next: (args: unknown) => Promise<unknown>, context: SdkContext) => (args: unknown) => Promise<unknown>, options: { step: 'build'; name: string; priority: 'high' }): void;
}

export class XRayTracer {
  private readonly pending = new Set<Promise<void>>();
  private readonly sendDocument: SendDocument;
  private socket: Socket | undefined;
  private handler: OpenSubsegment | undefined;

  constructor(private readonly options: TracerOptions) {
    this.sendDocument = options.send ?? ((datagram) => this.udp(datagram));
  }

  get serviceName(): string {
    return this.options.serviceName;
  }

  /** The invocation's trace when it is sampled and there is a daemon to send to. */
  active(): TraceContext | undefined {
    const trace = parseTraceHeader(process.env._X_AMZN_TRACE_ID);
    if (!trace?.sampled) return undefined;
    if (!this.options.send && !parseDaemonAddress(process.env.AWS_XRAY_DAEMON_ADDRESS)) return undefined;
    return trace;
  }

  /** Opens a subsegment under the open handler subsegment, or under Lambda's segment. */
  begin(name: string, parentId?: string): OpenSubsegment | undefined {
    const trace = this.active();
    if (!trace) return undefined;
    const id = newId();
    const start = seconds();
    const parent = parentId ?? trace.parent;
    let ended = false;
    return {
      id,
      end: ({ exception, ...fields } = {}) => {
        if (ended) return;
        ended = true;
        const document: SubsegmentDocument = { name, id, trace_id: trace.root, parent_id: parent, type: 'subsegment', start_time: start, end_time: seconds(), ...fields };
        if (exception !== undefined) {
          const error = exception as SdkError;
          document.cause = { exceptions: [{ id: newId(), type: String(error?.name ?? 'Error'), message: String(error?.message ?? exception) }] };
          if (document.error === undefined && document.fault === undefined) document.fault = true;
        }
        this.emit(document);
      },
    };
  }

  /** `## handler`, the subsegment of one invocation; SDK calls made meanwhile hang from it. */
  beginHandler(annotations: Annotations): OpenSubsegment | undefined {
    const handler = this.begin(`## ${process.env._HANDLER ?? 'index.handler'}`);
    if (!handler) return undefined;
    const named = Object.fromEntries(Object.entries({ Service: this.options.serviceName, ...annotations }).map(([key, value]) => [annotationKey(key), value]));
    const open: OpenSubsegment = {
      id: handler.id,
      end: (fields = {}) => {
        if (this.handler === open) this.handler = undefined;
        handler.end({ ...fields, annotations: { ...named, ...fields.annotations } });
      },
    };
    this.handler = open;
    return open;
  }

  /** Traces every call of an SDK v3 client and passes the trace on to the service it calls. */
  captureClient<T extends { middlewareStack: object }>(client: T): T {
    (client.middlewareStack as MiddlewareStackLike).add(
      (next, context) => async (args) => {
        const service = (context.clientName ?? 'AWS').replace(/Client$/, '');
        const call = this.begin(service, this.handler?.id);
        if (!call) return next(args);
        const trace = this.active() as TraceContext;
        const request = (args as { request?: { headers?: Record<string, string> } }).request;
        if (request?.headers) request.headers['X-Amzn-Trace-Id'] = `Root=${trace.root};Parent=${call.id};Sampled=1`;
        const aws = (metadata: SdkError['$metadata']): Record<string, unknown> => ({
          operation: (context.commandName ?? '').replace(/Command$/, ''),
          region: process.env.AWS_REGION,
          ...(metadata?.requestId ? { request_id: metadata.requestId } : {}),
          retries: Math.max(0, (metadata?.attempts ?? 1) - 1),
        });
        try {
          const result = (await next(args)) as SdkOutput;
          const status = result.response?.statusCode ?? result.output?.$metadata?.httpStatusCode;
          call.end({ namespace: 'aws', aws: aws(result.output?.$metadata), http: { response: { status } } });
          return result;
        } catch (error) {
          const failure = error as SdkError;
          const status = failure?.$metadata?.httpStatusCode;
          const throttle = status === 429 || /Throttl|TooManyRequests|RequestLimitExceeded/.test(String(failure?.name));
          call.end({
            namespace: 'aws',
            aws: aws(failure?.$metadata),
            http: { response: { status } },
            exception: error,
            ...(status !== undefined && status < 500 ? { error: true, throttle } : { fault: true }),
          });
          throw error;
        }
      },
      { step: 'build', name: 'rotorXRayTracing', priority: 'high' },
    );
    return client;
  }

  /** Resolves when every document sent so far has left (before the invocation returns and Lambda freezes). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  private emit(document: SubsegmentDocument): void {
    const sent = this.sendDocument(HEADER + JSON.stringify(document)).catch(() => undefined);
    this.pending.add(sent);
    void sent.finally(() => this.pending.delete(sent));
  }

  private udp(datagram: string): Promise<void> {
    const daemon = parseDaemonAddress(process.env.AWS_XRAY_DAEMON_ADDRESS);
    if (!daemon) return Promise.resolve();
    if (!this.socket) {
      this.socket = createSocket(daemon.host.includes(':') ? 'udp6' : 'udp4');
      // Tracing must never keep the function's event loop alive.
      this.socket.unref();
    }
    const socket = this.socket;
    return new Promise((resolve, reject) => socket.send(datagram, daemon.port, daemon.host, (error) => (error ? reject(error) : resolve())));
  }
}
