import { randomBytes } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConsoleSource, ExecutionFilter } from '../../../../local/console/api';
import { CONTENT_SECURITY_POLICY, ConsoleServer, executionFilterOf, isLoopbackAddress, isLoopbackHost } from '../../../../local/console/console-server';
import { MASKED } from '../../../../local/console/mask';

const TOKEN = `AQ${randomBytes(192).toString('base64url')}`;
const ARN = 'arn:aws:states:us-east-1:000000000000:execution:rotor-rotate-device:pump-7-a0123456789abcdef0123';

/** A source that answers with a task token in every place one can hide, and records the filters it was asked for. */
function leakySource(): ConsoleSource & { filters: ExecutionFilter[] } {
  const filters: ExecutionFilter[] = [];
  return {
    filters,
    fleet: async () => ({ generatedAt: 'now', counts: { FAILED: 1 }, total: 1, series: { bucketMs: 1000, buckets: [] }, executions: { total: 1, byStatus: {} }, inFlightByStep: {}, failuresByReason: { [`late ${TOKEN}`]: 1 } }),
    executions: async (filter) => {
      filters.push(filter);
      return { executions: [], truncated: false };
    },
    execution: async (arn) =>
      arn === ARN
        ? ({ execution: { executionArn: ARN, name: 'x', status: 'FAILED', input: JSON.stringify({ taskToken: TOKEN }) }, stateMachine: { stateMachineArn: 'sm' }, graph: { startAt: 'A', nodes: [], edges: [] }, path: { states: {}, transitions: [] }, events: [] } as never)
        : undefined,
    thing: async () => undefined,
  };
}

describe('ConsoleServer over HTTP', () => {
  let server: Server;
  let base: string;
  let source: ReturnType<typeof leakySource>;

  beforeAll(async () => {
    source = leakySource();
    server = createServer((req, res) => void new ConsoleServer(source).handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const send = (path: string, options: { method?: string; host?: string } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> =>
    new Promise((resolve, reject) => {
      const url = new URL(path, base);
      const req = request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: options.method ?? 'GET', headers: options.host ? { host: options.host } : {} }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end();
    });

  it('serves every page path the same shell, with the CSP and no inline script', async () => {
    for (const path of ['/console/', '/console/executions', `/console/executions/${ARN}`, '/console/things/pump-7']) {
      const answer = await send(path);
      expect(answer.status).toBe(200);
      expect(answer.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
      expect(answer.body).toContain('<script defer src="/console/assets/console.js"></script>');
      expect(answer.body).not.toMatch(/<script>|https?:\/\/(?!127)/);
    }
    expect((await send('/console')).status).toBe(308);
  });

  it('masks a task token wherever the source put one', async () => {
    const fleet = await send('/console/api/fleet');
    const execution = await send(`/console/api/executions/${encodeURIComponent(ARN)}`);
    for (const answer of [fleet, execution]) {
      expect(answer.status).toBe(200);
      expect(answer.body).not.toContain(TOKEN);
      expect(answer.body).toContain(MASKED);
    }
  });

  it('is read-only, and answers loopback hosts only', async () => {
    expect((await send('/console/api/fleet', { method: 'POST' })).status).toBe(405);
    expect((await send('/console/api/fleet', { method: 'DELETE' })).status).toBe(405);
    expect((await send('/console/api/fleet', { host: 'attacker.example' })).status).toBe(403);
    expect((await send('/console/api/fleet', { host: 'localhost:4566' })).status).toBe(200);
  });

  it('turns bad input into 400 and unknown things into 404, with a message', async () => {
    const badStatus = await send('/console/api/executions?status=DONE');
    expect(badStatus.status).toBe(400);
    expect(JSON.parse(badStatus.body).message).toContain('status must be');
    expect((await send('/console/api/executions/not-an-arn')).status).toBe(400);
    expect((await send(`/console/api/executions/${encodeURIComponent(ARN)}x`)).status).toBe(404);
    expect((await send('/console/api/things/pump-7')).status).toBe(404);
    expect((await send('/console/api/things/bad%20name')).status).toBe(400);
    expect((await send('/console/api/nothing')).status).toBe(404);
    expect((await send('/console/api/things/%E0%A4%A')).status).toBe(400);
  });

  it('passes the list filters on to the source', async () => {
    await send('/console/api/executions?status=FAILED&thing=pump&since=2025-01-01T00:00:00Z&limit=20');
    expect(source.filters.at(-1)).toEqual({ status: 'FAILED', thing: 'pump', since: '2025-01-01T00:00:00.000Z', until: undefined, limit: 20 });
  });

  it('serves the bundled pages: dagre and chart.js inside, nothing fetched from elsewhere', async () => {
    const js = await send('/console/assets/console.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toContain('javascript');
    expect(js.body.length).toBeGreaterThan(50_000);
    expect(js.body).not.toMatch(/import\s*\(|from\s*["']https?:/);
    expect((await send('/console/assets/console.css')).body).toContain('.outcome-failed');
    expect((await send('/console/assets/other.js')).status).toBe(404);
  }, 30_000);
});

describe('the console\'s guards', () => {
  it('knows loopback peers and hosts', () => {
    expect(['127.0.0.1', '::1', '::ffff:127.0.0.1', '127.3.2.1'].every(isLoopbackAddress)).toBe(true);
    expect(['10.0.0.1', '::ffff:192.168.1.2', '', undefined].some(isLoopbackAddress)).toBe(false);
    expect(['127.0.0.1:4566', 'localhost', '[::1]:4566', 'localhost:80'].every(isLoopbackHost)).toBe(true);
    expect(['example.com', '127.0.0.1.nip.io:4566', 'localhost.evil.com', undefined].some(isLoopbackHost)).toBe(false);
  });

  it('validates the list filters', () => {
    expect(executionFilterOf(new URLSearchParams(''))).toEqual({ limit: 100 });
    expect(() => executionFilterOf(new URLSearchParams('limit=0'))).toThrow('limit');
    expect(() => executionFilterOf(new URLSearchParams('since=yesterday'))).toThrow('since');
    expect(() => executionFilterOf(new URLSearchParams('thing=a b'))).toThrow('thing');
  });
});
