import { createSocket, type Socket } from 'node:dgram';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetItemCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { rotorHandler, taskLogKeys } from '../../../../functions/core/handler';
import { StructuredLogger } from '../../../../functions/core/logger';
import { EmfMetrics, MetricUnit } from '../../../../functions/core/metrics';
import { MetricName, observability } from '../../../../functions/core/telemetry';
import { parseDaemonAddress, parseTraceHeader, XRayTracer, type SubsegmentDocument } from '../../../../functions/core/tracer';
import { fakeContext } from '../../../fixtures/lambda-context';

/**
 * Rotor's own structured logs, EMF metrics and X-Ray subsegments (they replace Powertools and
 * aws-xray-sdk-core, for the bundle size): the shapes CloudWatch and X-Ray read, the rotation's
 * identity on every line of an invocation and on its trace, and no task token or CSR ever
 * written, through the same middleware stack the functions run in.
 */
const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAAWsecret-task-token';
const CSR = '-----BEGIN CERTIFICATE REQUEST-----\nMIIBsecret\n-----END CERTIFICATE REQUEST-----';

function captureStdout(): { lines: () => Record<string, unknown>[]; restore: () => void } {
  const written: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  return {
    lines: () => written.join('').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>),
    restore: () => spy.mockRestore(),
  };
}

describe('StructuredLogger', () => {
  it('writes one JSON object per line with level, message, service and the attributes, above the threshold only', () => {
    const lines: string[] = [];
    const logger = new StructuredLogger({ serviceName: 'svc', level: 'INFO', write: (line) => lines.push(line), now: () => new Date('2026-01-01T00:00:00Z') });

    logger.debug('hidden');
    logger.info('shown', { thingName: 'dev-1', count: 2 });

    expect(lines.map((line) => JSON.parse(line))).toEqual([{ level: 'INFO', message: 'shown', timestamp: '2026-01-01T00:00:00.000Z', service: 'svc', thingName: 'dev-1', count: 2 }]);
  });

  it('never writes a task token, a CSR or a key, at any depth, and writes errors with name and message', () => {
    const lines: string[] = [];
    const logger = new StructuredLogger({ serviceName: 'svc', write: (line) => lines.push(line) });

    logger.warn('whole event', { event: { taskToken: TOKEN, body: { csr: CSR }, certificateSigningRequest: CSR }, error: new TypeError('bad') });

    expect(lines.join('')).not.toContain('secret');
    const line = JSON.parse(lines[0]) as { event: unknown; error: { name: string; message: string } };
    expect(line.event).toEqual({ taskToken: '[redacted]', body: { csr: '[redacted]' }, certificateSigningRequest: '[redacted]' });
    expect(line.error).toMatchObject({ name: 'TypeError', message: 'bad' });
  });
});

describe('EmfMetrics', () => {
  it('flushes the added metrics in one EMF document with the service dimension', () => {
    const lines: string[] = [];
    const metrics = new EmfMetrics({ namespace: 'Rotor', serviceName: 'svc', write: (line) => lines.push(line), now: () => 1_700_000_000_000 });

    metrics.add('RotationsStarted', MetricUnit.Count, 2);
    metrics.add('RotationsStarted', MetricUnit.Count, 1);
    metrics.flush();
    metrics.flush();

    expect(lines.map((line) => JSON.parse(line))).toEqual([
      {
        _aws: { Timestamp: 1_700_000_000_000, CloudWatchMetrics: [{ Namespace: 'Rotor', Dimensions: [['service']], Metrics: [{ Name: 'RotationsStarted', Unit: 'Count' }] }] },
        service: 'svc',
        RotationsStarted: [2, 1],
      },
    ]);
  });

  it('emits a metric with its own dimensions at once, and ColdStart on the first invocation only', () => {
    const lines: string[] = [];
    const metrics = new EmfMetrics({ namespace: 'Rotor', serviceName: 'svc', write: (line) => lines.push(line) });

    metrics.single('RotationsFailed', MetricUnit.Count, 1, { reason: 'NO_ACK' });
    metrics.coldStart('fn');
    metrics.coldStart('fn');

    const documents = lines.map((line) => JSON.parse(line) as { _aws: { CloudWatchMetrics: { Dimensions: string[][] }[] } } & Record<string, unknown>);
    expect(documents).toHaveLength(2);
    expect(documents[0]).toMatchObject({ service: 'svc', reason: 'NO_ACK', RotationsFailed: 1 });
    expect(documents[0]._aws.CloudWatchMetrics[0].Dimensions).toEqual([['service', 'reason']]);
    expect(documents[1]).toMatchObject({ service: 'svc', function_name: 'fn', ColdStart: 1 });
  });
});

describe('the middleware stack of every function', () => {
  it('puts thingName and rotationId on every line of the invocation, and nothing of it on the next', async () => {
    // Prepare: a function that logs the whole event, task token included.
    const obs = observability('stack-test', 'INFO');
    const handler = rotorHandler({ observability: obs, step: 'Request CSR', logKeys: taskLogKeys }, async (event: unknown) => {
      obs.telemetry.log.info('got', { event });
      obs.telemetry.count(MetricName.RotationsStarted);
      return 'ok';
    });
    const out = captureStdout();
    try {
      // Act
      await handler({ thingName: 'dev-1', rotationId: 'dev-1-r1', taskToken: TOKEN }, fakeContext());
      await handler({}, fakeContext({ awsRequestId: 'second' }));
    } finally {
      out.restore();
    }

    // Assess
    const logs = out.lines().filter((line) => line.level);
    expect(logs[0]).toMatchObject({ level: 'INFO', message: 'got', service: 'stack-test', thingName: 'dev-1', rotationId: 'dev-1-r1', cold_start: true, function_request_id: 'c6af9ac6-7b61-11e6-9a41-93e812345678' });
    expect(logs[1]).toMatchObject({ message: 'got', cold_start: false, function_request_id: 'second' });
    expect(logs[1]).not.toHaveProperty('thingName');
    expect(JSON.stringify(out.lines())).not.toContain('secret-task-token');
    const metrics = out.lines().filter((line) => line._aws).map((line) => Object.keys(line).find((key) => !['_aws', 'service', 'function_name', 'step'].includes(key)));
    expect(metrics).toEqual(['ColdStart', 'StepDuration', 'RotationsStarted', 'StepDuration', 'RotationsStarted']);
  });
});

describe('X-Ray tracing without the X-Ray SDK', () => {
  let daemon: Socket;
  let documents: SubsegmentDocument[];
  let service: Server;
  let seenHeaders: IncomingHttpHeaders[];
  const saved = { ...process.env };

  beforeAll(async () => {
    daemon = createSocket('udp4');
    daemon.on('message', (message) => {
      const [header, body] = message.toString('utf8').split('\n');
      expect(JSON.parse(header)).toEqual({ format: 'json', version: 1 });
      documents.push(JSON.parse(body) as SubsegmentDocument);
    });
    await new Promise<void>((resolve) => daemon.bind(0, '127.0.0.1', resolve));
    service = createServer((req, res) => {
      seenHeaders.push(req.headers);
      req.resume();
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'REQ-1' });
      res.end('{}');
    });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    daemon.close();
    await new Promise((resolve) => service.close(resolve));
  });

  beforeEach(() => {
    documents = [];
    seenHeaders = [];
    process.env.AWS_XRAY_DAEMON_ADDRESS = `127.0.0.1:${(daemon.address() as AddressInfo).port}`;
    process.env._HANDLER = 'index.handler';
  });

  afterEach(() => {
    process.env = { ...saved };
  });

  async function invoke(traceHeader: string): Promise<void> {
    process.env._X_AMZN_TRACE_ID = traceHeader;
    const obs = observability('trace-test', 'SILENT');
    const db = obs.tracer.captureClient(
      new DynamoDBClient({ endpoint: `http://127.0.0.1:${(service.address() as AddressInfo).port}`, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }),
    );
    const handler = rotorHandler({ observability: obs, step: 'Request CSR', logKeys: taskLogKeys }, async () => {
      await db.send(new GetItemCommand({ TableName: 't', Key: { pk: { S: 'x' } } }));
      return 'ok';
    });
    const out = captureStdout();
    try {
      await handler({ thingName: 'dev-1', rotationId: 'dev-1-r1' }, fakeContext());
    } finally {
      out.restore();
      db.destroy();
    }
    // Datagrams on loopback arrive within a tick or two of being sent.
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  it('sends the handler subsegment, annotated for the rotation, and one per SDK call under it, passing the trace on', async () => {
    await invoke('Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0');

    const handler = documents.find((d) => d.name === '## index.handler');
    const call = documents.find((d) => d.name === 'DynamoDB');
    expect(handler).toMatchObject({
      type: 'subsegment',
      trace_id: '1-5759e988-bd862e3fe1be46a994272793',
      parent_id: '53995c3f42cd8ad8',
      annotations: { Service: 'trace-test', ColdStart: true, thingName: 'dev-1', rotationId: 'dev-1-r1' },
    });
    expect(call).toMatchObject({
      type: 'subsegment',
      namespace: 'aws',
      trace_id: '1-5759e988-bd862e3fe1be46a994272793',
      parent_id: handler?.id,
      aws: { operation: 'GetItem', request_id: 'REQ-1', retries: 0 },
      http: { response: { status: 200 } },
    });
    expect(call?.end_time).toBeGreaterThanOrEqual(call?.start_time ?? Infinity);
    expect(seenHeaders[0]['x-amzn-trace-id']).toBe(`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=${call?.id};Sampled=1`);
  });

  it('sends nothing for an invocation that is not sampled', async () => {
    await invoke('Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0');

    expect(documents).toEqual([]);
    expect(seenHeaders).toHaveLength(1);
  });

  it('reads the trace header and both forms of the daemon address', () => {
    expect(parseTraceHeader('Root=1-a-b;Parent=c;Sampled=1')).toEqual({ root: '1-a-b', parent: 'c', sampled: true });
    expect(parseTraceHeader('Root=1-a-b')).toBeUndefined();
    expect(parseDaemonAddress('169.254.79.129:2000')).toEqual({ host: '169.254.79.129', port: 2000 });
    expect(parseDaemonAddress('tcp:127.0.0.1:2000 udp:127.0.0.2:2001')).toEqual({ host: '127.0.0.2', port: 2001 });
    expect(new XRayTracer({ serviceName: 's' }).serviceName).toBe('s');
  });
});
