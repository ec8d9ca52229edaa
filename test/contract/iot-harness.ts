import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { EdgeRequest, LambdaInvoker, InvokeResult, LocalService, SnsPublisher } from '../../local/types.js';

/**
 * A tiny HTTP front for one LocalService on 127.0.0.1:0, enough for the real SDK clients
 * (no SigV4 check: the edge server owns that). Not the edge server; only for these tests.
 */
export interface Harness {
  endpoint: string;
  close(): Promise<void>;
}

export async function serve(service: LocalService): Promise<Harness> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers[name.toLowerCase()] = value;
      const request: EdgeRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        headers,
        body: Buffer.concat(chunks),
        service: service.signingNames[0],
        region: 'us-east-1',
      };
      service.handle(request).then(
        (response) => {
          res.writeHead(response.status, response.headers ?? {});
          res.end(response.body ?? '');
        },
        (error: unknown) => {
          res.writeHead(500, { 'x-amzn-errortype': 'HarnessError' });
          res.end(JSON.stringify({ message: String(error) }));
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const clientConfig = (endpoint: string) => ({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' },
  maxAttempts: 1,
});

/** Records every invocation; answers ok unless told to fail. */
export class RecordingInvoker implements LambdaInvoker {
  readonly calls: { functionName: string; payload: unknown; invocationType?: string }[] = [];
  failWith?: { errorType: string; errorMessage: string };
  /** The Invoke call itself fails (no such function, throttled), as opposed to the function failing. */
  refuseWith?: Error;

  async invoke(functionName: string, payload: unknown, invocationType?: 'RequestResponse' | 'Event'): Promise<InvokeResult> {
    this.calls.push({ functionName, payload, invocationType });
    if (this.refuseWith) throw this.refuseWith;
    return this.failWith ? { ok: false, error: this.failWith } : { ok: true, payload: null };
  }
}

export class RecordingSns implements SnsPublisher {
  readonly messages: { topicArn: string; message: string; subject?: string }[] = [];

  async publish(input: { topicArn: string; message: string; subject?: string }): Promise<{ messageId: string }> {
    this.messages.push(input);
    return { messageId: String(this.messages.length) };
  }
}

/** A fresh EC P-256 key and a CSR for it, made with @peculiar/x509 at test time. */
export async function makeCsr(commonName: string): Promise<{ csrPem: string; privateKeyPem: string }> {
  const { Pkcs10CertificateRequestGenerator } = await import('@peculiar/x509');
  const { webcrypto } = await import('node:crypto');
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const csr = await Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys: keys as never,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const privateKeyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)?.join('\n')}\n-----END PRIVATE KEY-----\n`;
  return { csrPem: csr.toString('pem'), privateKeyPem };
}
