import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetFunctionCommand, InvokeCommand, LambdaClient, ListFunctionsCommand, ResourceNotFoundException } from '@aws-sdk/client-lambda';
import { EdgeServer } from '../../local/edge/edge-server';
import { LambdaService } from '../../local/lambda/lambda-service';

/**
 * The local Lambda driven by the real SDK v3 client through the edge, with tiny ESM bundles
 * written at test time: success, a function error, a timeout, environment isolation and the
 * concurrency limit.
 */
const BUNDLES: Record<string, string> = {
  'echo.mjs': `
    export const handler = async (event, context) => {
      const seenBefore = process.env.SET_BY_FUNCTION ?? null;
      process.env.SET_BY_FUNCTION = 'yes';
      return {
        echo: event,
        functionName: context.functionName,
        arn: context.invokedFunctionArn,
        requestId: context.awsRequestId,
        remainingPositive: context.getRemainingTimeInMillis() > 0,
        env: {
          TABLE_NAME: process.env.TABLE_NAME,
          parentSecret: process.env.ROTOR_TEST_PARENT_SECRET ?? null,
          endpoint: process.env.AWS_ENDPOINT_URL,
          region: process.env.AWS_REGION,
          tracing: process.env.POWERTOOLS_TRACE_ENABLED,
        },
        seenBefore,
      };
    };`,
  'fail.mjs': `
    class CsrRejected extends Error { constructor(m) { super(m); this.name = 'CsrRejected'; } }
    export const handler = async () => { throw new CsrRejected('the CSR subject is not the thing name'); };`,
  'slow.mjs': `
    export const handler = async (event) => {
      await new Promise((resolve) => setTimeout(resolve, event.ms));
      return { slept: event.ms };
    };`,
  'spin.mjs': `export const handler = async () => { for (;;) {} };`,
};

describe('local Lambda through the edge', () => {
  let dir: string;
  let edge: EdgeServer;
  let lambda: LambdaService;
  let client: LambdaClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-lambda-'));
    for (const [name, source] of Object.entries(BUNDLES)) writeFileSync(join(dir, name), source);
    edge = new EdgeServer({ port: 0 });
    const url = await edge.start();
    lambda = new LambdaService({ endpointUrl: url, output: () => undefined });
    edge.register(lambda);
    lambda.deploy({ name: 'echo', bundlePath: join(dir, 'echo.mjs'), timeoutSeconds: 5, environment: { TABLE_NAME: 'rotor-rotations' }, maxConcurrency: 1 });
    lambda.deploy({ name: 'fail', bundlePath: join(dir, 'fail.mjs'), timeoutSeconds: 5 });
    lambda.deploy({ name: 'slow', bundlePath: join(dir, 'slow.mjs'), timeoutSeconds: 5, maxConcurrency: 2 });
    lambda.deploy({ name: 'spin', bundlePath: join(dir, 'spin.mjs'), timeoutSeconds: 1 });
    client = new LambdaClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: 'any' } });
  });

  afterAll(async () => {
    client.destroy();
    await lambda.stop();
    await edge.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const decode = (payload: Uint8Array | undefined): unknown => JSON.parse(Buffer.from(payload ?? []).toString('utf8'));

  it('invokes a function and returns its result, with a Lambda-like context and its own environment', async () => {
    // Prepare: a variable of the parent process that must not reach the function.
    process.env.ROTOR_TEST_PARENT_SECRET = 'parent-only';
    try {
      // Act
      const answer = await client.send(new InvokeCommand({ FunctionName: 'echo', Payload: Buffer.from(JSON.stringify({ thingName: 'dev-1' })) }));
      // Assess
      expect(answer.StatusCode).toBe(200);
      expect(answer.FunctionError).toBeUndefined();
      expect(answer.ExecutedVersion).toBe('$LATEST');
      const result = decode(answer.Payload) as Record<string, unknown>;
      expect(result).toMatchObject({
        echo: { thingName: 'dev-1' },
        functionName: 'echo',
        arn: 'arn:aws:lambda:us-east-1:000000000000:function:echo',
        remainingPositive: true,
        env: { TABLE_NAME: 'rotor-rotations', parentSecret: null, endpoint: edge.url, region: 'us-east-1', tracing: 'false' },
      });
      expect(result.requestId).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      delete process.env.ROTOR_TEST_PARENT_SECRET;
    }
  });

  it('keeps what a function writes to process.env in its sandbox, warm across invocations', async () => {
    const second = decode((await client.send(new InvokeCommand({ FunctionName: 'echo', Payload: Buffer.from('{}') }))).Payload) as { seenBefore: string | null };
    // The warm worker remembers its own write (like a reused Lambda container) …
    expect(second.seenBefore).toBe('yes');
    // … and the parent never sees it.
    expect(process.env.SET_BY_FUNCTION).toBeUndefined();
  });

  it('reports a function error with X-Amz-Function-Error and the error shape', async () => {
    const answer = await client.send(new InvokeCommand({ FunctionName: 'arn:aws:lambda:us-east-1:000000000000:function:fail', Payload: Buffer.from('{}') }));
    expect(answer.StatusCode).toBe(200);
    expect(answer.FunctionError).toBe('Unhandled');
    const error = decode(answer.Payload) as { errorType: string; errorMessage: string; trace: string[] };
    expect(error.errorType).toBe('CsrRejected');
    expect(error.errorMessage).toBe('the CSR subject is not the thing name');
    expect(error.trace.length).toBeGreaterThan(0);
    // The in-process invoker reports the same error.
    await expect(lambda.invoke('fail', {})).resolves.toMatchObject({ ok: false, error: { errorType: 'CsrRejected' } });
  });

  it('terminates a function that overruns its timeout with Sandbox.Timedout, and the next invocation gets a fresh sandbox', async () => {
    const started = Date.now();
    const answer = await client.send(new InvokeCommand({ FunctionName: 'spin', Payload: Buffer.from('{}') }));
    const elapsed = Date.now() - started;
    expect(answer.FunctionError).toBe('Unhandled');
    expect(decode(answer.Payload)).toMatchObject({ errorType: 'Sandbox.Timedout', errorMessage: expect.stringContaining('Task timed out after 1.00 seconds') });
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeLessThan(4000);
    const again = await lambda.invoke('spin', {});
    expect(again).toMatchObject({ ok: false, error: { errorType: 'Sandbox.Timedout' } });
  });

  it('runs at most maxConcurrency invocations of a function at once and queues the rest', async () => {
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 6 }, () => lambda.invoke('slow', { ms: 250 })));
    const elapsed = Date.now() - started;
    expect(results.every((r) => r.ok && (r.payload as { slept: number }).slept === 250)).toBe(true);
    expect(lambda.peakConcurrency('slow')).toBe(2);
    // Six 250 ms invocations two at a time take three rounds.
    expect(elapsed).toBeGreaterThanOrEqual(740);
  });

  it('accepts Event invocations with 202 and runs them later', async () => {
    const before = lambda.invocations('slow').length;
    const answer = await client.send(new InvokeCommand({ FunctionName: 'slow', InvocationType: 'Event', Payload: Buffer.from('{"ms":10}') }));
    expect(answer.StatusCode).toBe(202);
    await lambda.settled();
    expect(lambda.invocations('slow').length).toBe(before + 1);
  });

  it('answers GetFunction and ListFunctions, and ResourceNotFoundException for an unknown function', async () => {
    const fn = await client.send(new GetFunctionCommand({ FunctionName: 'echo' }));
    expect(fn.Configuration).toMatchObject({ FunctionName: 'echo', Timeout: 5, Runtime: 'nodejs22.x', Environment: { Variables: { TABLE_NAME: 'rotor-rotations' } } });
    const list = await client.send(new ListFunctionsCommand({}));
    expect(list.Functions?.map((f) => f.FunctionName).sort()).toEqual(['echo', 'fail', 'slow', 'spin']);
    await expect(client.send(new InvokeCommand({ FunctionName: 'nope', Payload: Buffer.from('{}') }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    expect(edge.calls()['lambda:Invoke']).toBeGreaterThan(0);
  });
});
