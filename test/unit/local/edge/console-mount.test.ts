import { EdgeServer, UNCOUNTED_USER_AGENT } from '../../../../local/edge/edge-server';
import type { LocalService } from '../../../../local/types';

/** The edge's hooks for the console: a mounted path prefix, and reads that are served but not counted. */
describe('EdgeServer mount and uncounted callers', () => {
  const states: LocalService = { signingNames: ['states'], handle: async () => ({ status: 200, headers: { 'content-type': 'application/x-amz-json-1.0' }, body: '{}' }) };
  let edge: EdgeServer;
  let url = '';

  beforeAll(async () => {
    edge = new EdgeServer({ port: 0 }).register(states);
    edge.mount('/console/', async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('mounted');
    });
    url = await edge.start();
  });
  afterAll(() => edge.stop());

  const call = (userAgent: string): Promise<Response> =>
    fetch(url, {
      method: 'POST',
      headers: { authorization: 'AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/states/aws4_request, SignedHeaders=host, Signature=x', 'x-amz-target': 'AWSStepFunctions.ListExecutions', 'user-agent': userAgent },
      body: '{}',
    });

  it('serves unsigned requests under a mounted prefix (and the bare prefix) with the mounted handler', async () => {
    expect(await (await fetch(`${url}/console/executions/x`)).text()).toBe('mounted');
    expect(await (await fetch(`${url}/console`)).text()).toBe('mounted');
    expect((await fetch(`${url}/consoles`)).status).toBe(403);
  });

  it('counts the calls of ordinary clients but not those of the console', async () => {
    edge.resetCalls();
    expect((await call('aws-sdk-js/3 rotor-demo')).status).toBe(200);
    expect((await call(`aws-sdk-js/3 ${UNCOUNTED_USER_AGENT}`)).status).toBe(200);
    expect(edge.calls()).toEqual({ 'states:ListExecutions': 1 });
  });
});
