import { type AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SFNClient } from '@aws-sdk/client-sfn';
import { StepFunctionsService } from '../../../../local/stepfunctions/service.js';
import { type FunctionErrorPayload, type InvokeResult, type LambdaInvoker, type SnsPublisher, scaledClock } from '../../../../local/types.js';

/**
 * A tiny edge for the tests: an HTTP server on 127.0.0.1:0 that hands every request to the
 * StepFunctionsService, so the real @aws-sdk/client-sfn is what drives it.
 */

export type FakeFunction = (payload: Record<string, unknown>) => Promise<unknown> | unknown;

/** Plays Lambda functions by name; a thrown Error becomes a function error with its name as errorType. */
export class FakeInvoker implements LambdaInvoker {
  readonly calls: { functionName: string; payload: Record<string, unknown> }[] = [];
  constructor(private readonly functions: Record<string, FakeFunction>) {}

  async invoke(functionNameOrArn: string, payload: unknown): Promise<InvokeResult> {
    const name = functionNameOrArn.split(':function:').pop()?.split(':')[0] ?? functionNameOrArn;
    this.calls.push({ functionName: name, payload: payload as Record<string, unknown> });
    const fn = this.functions[name];
    if (!fn) throw Object.assign(new Error(`Function not found: ${functionNameOrArn}`), { name: 'ResourceNotFoundException' });
    try {
      return { ok: true, payload: await fn(payload as Record<string, unknown>) };
    } catch (error) {
      const e = error as Error;
      const functionError: FunctionErrorPayload = { errorType: e.name, errorMessage: e.message, trace: [] };
      return { ok: false, error: functionError };
    }
  }

  callsTo(name: string): Record<string, unknown>[] {
    return this.calls.filter((c) => c.functionName === name).map((c) => c.payload);
  }
}

export class FakeSns implements SnsPublisher {
  readonly published: { topicArn: string; message: string; subject?: string }[] = [];
  async publish(input: { topicArn: string; message: string; subject?: string }): Promise<{ messageId: string }> {
    this.published.push(input);
    return { messageId: `msg-${this.published.length}` };
  }
}

export interface Harness {
  service: StepFunctionsService;
  sfn: SFNClient;
  invoker: FakeInvoker;
  sns: FakeSns;
  dynamodb: DynamoDBClient;
  close(): Promise<void>;
}

export async function startHarness(options: {
  functions?: Record<string, FakeFunction>;
  scale?: number;
  random?: () => number;
  dynamodb?: DynamoDBClient;
  /** The account's state-transition quota, as the runtime passes it (local/edge/quotas.ts). */
  transition?: (signal: AbortSignal) => Promise<void>;
}): Promise<Harness> {
  const invoker = new FakeInvoker(options.functions ?? {});
  const sns = new FakeSns();
  // Never used for traffic unless a test mocks it: the endpoint is a closed local port.
  const dynamodb = options.dynamodb ?? new DynamoDBClient({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const service = new StepFunctionsService({
    invoker,
    dynamodb,
    sns,
    clock: scaledClock(options.scale ?? 0.001),
    region: 'us-east-1',
    accountId: '123456789012',
    random: options.random,
    ...(options.transition ? { transition: options.transition } : {}),
  });
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')]));
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      service
        .handle({
          method: req.method ?? 'POST',
          path: url.pathname,
          query: url.searchParams,
          headers,
          body: Buffer.concat(chunks),
          service: 'states',
          region: 'us-east-1',
          target: headers['x-amz-target'],
        })
        .then((response) => {
          res.writeHead(response.status, response.headers);
          res.end(response.body);
        }, (error: unknown) => {
          res.writeHead(500);
          res.end(String(error));
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const sfn = new SFNClient({
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${port}`,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 1,
  });
  return {
    service,
    sfn,
    invoker,
    sns,
    dynamodb,
    async close() {
      await service.stop();
      sfn.destroy();
      if (!options.dynamodb) dynamodb.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Polls until `check` returns a value (not undefined), failing after `ms`. */
export async function eventually<T>(check: () => T | undefined, ms = 3000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

export const ROLE = 'arn:aws:iam::123456789012:role/sfn';
export const fnArn = (name: string): string => `arn:aws:lambda:us-east-1:123456789012:function:${name}`;
