import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DescribeCertificateCommand } from '@aws-sdk/client-iot';
import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { iotClient } from '../../../../functions/aws/iot';
import { iotDataClient } from '../../../../functions/aws/iot-data';

/**
 * The IoT clients resolve a command's middleware stack once per command class
 * (cacheMiddleware), and every call still sends its own input. Against a real HTTP server.
 */
describe('SDK clients with a cached middleware stack', () => {
  let server: Server;
  let endpoint: string;
  const paths: string[] = [];
  const saved = { ...process.env };

  beforeAll(async () => {
    server = createServer((request, response) => {
      paths.push(request.url ?? '');
      request.resume();
      request.on('end', () => {
        const id = /\/certificates\/([^/?]+)/.exec(request.url ?? '')?.[1] ?? '';
        const body = JSON.stringify(id ? { certificateDescription: { certificateId: id, status: 'ACTIVE' } } : {});
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        response.end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    Object.assign(process.env, { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_ENDPOINT_URL: endpoint });
  });

  afterAll(async () => {
    process.env = saved;
    await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(() => {
    paths.length = 0;
  });

  it('IoT: one resolution for many calls of a command, each call with its own input', async () => {
    // Prepare
    const client = iotClient();
    const resolve = jest.spyOn(DescribeCertificateCommand.prototype, 'resolveMiddleware');
    try {
      // Act
      const answers = await Promise.all(['a1', 'b2', 'c3'].map((id) => client.send(new DescribeCertificateCommand({ certificateId: id }))));
      const last = await client.send(new DescribeCertificateCommand({ certificateId: 'd4' }));
      // Assess
      expect([...answers, last].map((answer) => answer.certificateDescription?.certificateId)).toEqual(['a1', 'b2', 'c3', 'd4']);
      expect(paths.map((path) => path.split('?')[0]).sort()).toEqual(['/certificates/a1', '/certificates/b2', '/certificates/c3', '/certificates/d4']);
      expect(resolve).toHaveBeenCalledTimes(1);
    } finally {
      resolve.mockRestore();
      client.destroy();
    }
  });

  it('IoT data plane: each Publish goes to its own topic', async () => {
    // Prepare
    const client = iotDataClient({ endpoint });
    try {
      // Act
      for (const topic of ['t/one', 't/two']) await client.send(new PublishCommand({ topic, qos: 1, payload: Buffer.from('{}') }));
      // Assess
      expect(paths.map((path) => decodeURIComponent(path.split('?')[0]))).toEqual(['/topics/t/one', '/topics/t/two']);
    } finally {
      client.destroy();
    }
  });
});
