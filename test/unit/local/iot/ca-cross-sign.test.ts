import { X509Certificate } from 'node:crypto';
import { connect, createServer, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { CROSS_SIGNABLE_PATH_LENGTH, LocalCa, type KeyAndCertificate } from '../../../../local/iot/ca';

/**
 * Local CAs that can be cross-signed (issue 11 part 3): a server certificate from a new CA,
 * served with the new CA cross-signed by the old one, verifies for a TLS client that trusts
 * only the old CA, only the new one, or both — checked by node's TLS (OpenSSL), not by hand.
 * A CA made before this (pathLenConstraint 0) cannot cross-sign, and the cross-certificate
 * does not let a client certificate from the new CA chain to the old one.
 */
const DAY = 86_400_000;

interface Verdict {
  authorized: boolean;
  error?: string;
}

function serve(options: { cert: string; key: string; ca?: string[]; requestCert?: boolean }): Promise<{ server: Server; port: number; clientVerdicts: Verdict[] }> {
  const clientVerdicts: Verdict[] = [];
  const server = createServer({ ...options, rejectUnauthorized: false }, (socket) => {
    clientVerdicts.push({ authorized: socket.authorized, ...(socket.authorizationError ? { error: String(socket.authorizationError) } : {}) });
    socket.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, clientVerdicts })));
}

function handshake(port: number, ca: string[], client?: { cert: string; key: string }): Promise<Verdict> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, rejectUnauthorized: false, ...(client ?? {}) }, () => {
      const verdict: Verdict = { authorized: socket.authorized, ...(socket.authorizationError ? { error: String(socket.authorizationError) } : {}) };
      socket.once('close', () => resolve(verdict));
      socket.end();
    });
    socket.once('error', reject);
  });
}

describe('LocalCa cross-signing', () => {
  let oldCa: LocalCa;
  let newCa: LocalCa;
  let leaf: KeyAndCertificate;
  let cross: string;
  const servers: Server[] = [];

  beforeAll(async () => {
    oldCa = await LocalCa.create('Old Server CA', { pathLength: CROSS_SIGNABLE_PATH_LENGTH });
    newCa = await LocalCa.create('New Server CA', { pathLength: CROSS_SIGNABLE_PATH_LENGTH });
    leaf = await newCa.createServerCertificate(['localhost'], ['127.0.0.1']);
    cross = (await oldCa.crossSign(newCa)).certificatePem;
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('makes a cross-certificate with the new CA\'s subject and key, signed by the old CA', () => {
    // Assess
    const crossCert = new X509Certificate(cross);
    const newCert = new X509Certificate(newCa.certificatePem);
    expect(crossCert.subject).toBe(newCert.subject);
    expect(crossCert.issuer).toBe(new X509Certificate(oldCa.certificatePem).subject);
    expect(crossCert.publicKey.export({ format: 'der', type: 'spki' })).toEqual(newCert.publicKey.export({ format: 'der', type: 'spki' }));
    expect(crossCert.verify(new X509Certificate(oldCa.certificatePem).publicKey)).toBe(true);
    expect(crossCert.ca).toBe(true);
    expect(crossCert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(oldCa.pathLength).toBe(1);
    expect(oldCa.canCrossSign).toBe(true);
  });

  it('serves leaf + cross-certificate so clients on the old CA, the new CA or both verify the server', async () => {
    // Prepare
    const { server, port } = await serve({ cert: `${leaf.certificatePem}${cross}`, key: leaf.privateKeyPem });
    servers.push(server);
    const stranger = await LocalCa.create('Stranger CA');
    // Act
    const onOld = await handshake(port, [oldCa.certificatePem]);
    const onNew = await handshake(port, [newCa.certificatePem]);
    const onBoth = await handshake(port, [oldCa.certificatePem, newCa.certificatePem]);
    const onStranger = await handshake(port, [stranger.certificatePem]);
    // Assess
    expect(onOld).toEqual({ authorized: true });
    expect(onNew).toEqual({ authorized: true });
    expect(onBoth).toEqual({ authorized: true });
    expect(onStranger.authorized).toBe(false);
  });

  it('without the cross-certificate, a client on the old CA cannot verify the server', async () => {
    // Prepare
    const { server, port } = await serve({ cert: leaf.certificatePem, key: leaf.privateKeyPem });
    servers.push(server);
    // Act
    const onOld = await handshake(port, [oldCa.certificatePem]);
    const onNew = await handshake(port, [newCa.certificatePem]);
    // Assess
    expect(onOld).toEqual({ authorized: false, error: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/) });
    expect(onNew).toEqual({ authorized: true });
  });

  it('does not let a client certificate from the new CA chain to the old CA through the cross-certificate', async () => {
    // Prepare: a server that trusts the old CA for client certificates, as the broker trusts the device CA.
    const serverCert = await oldCa.createServerCertificate(['localhost'], ['127.0.0.1']);
    const { server, port, clientVerdicts } = await serve({ cert: serverCert.certificatePem, key: serverCert.privateKeyPem, ca: [oldCa.certificatePem], requestCert: true });
    servers.push(server);
    const client = await newCa.createKeyAndCertificate({ notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) });
    const deviceOfOldCa = await oldCa.createKeyAndCertificate({ notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) });
    // Act
    await handshake(port, [oldCa.certificatePem], { cert: `${client.certificatePem}${cross}`, key: client.privateKeyPem });
    await handshake(port, [oldCa.certificatePem], { cert: deviceOfOldCa.certificatePem, key: deviceOfOldCa.privateKeyPem });
    // Assess
    expect(clientVerdicts[0]).toEqual({ authorized: false, error: expect.stringMatching(/UNSUPPORTED_CERTIFICATE_PURPOSE|INVALID_PURPOSE|purpose/i) });
    expect(clientVerdicts[1]).toEqual({ authorized: true });
  });

  it('refuses to cross-sign from a CA with pathLenConstraint 0 (a CA made before this change)', async () => {
    // Prepare
    const legacy = await LocalCa.create('Legacy CA');
    // Act / Assess
    expect(legacy.pathLength).toBe(0);
    expect(legacy.canCrossSign).toBe(false);
    await expect(legacy.crossSign(newCa)).rejects.toThrow(/pathLenConstraint 0/);
  });

  it('is right to refuse: OpenSSL rejects a cross-signed chain under a pathLenConstraint 0 anchor', async () => {
    // Prepare: the guard lifted on purpose, to show what it protects against.
    const legacy = await LocalCa.create('Legacy CA');
    Object.defineProperty(legacy, 'canCrossSign', { get: () => true });
    const crossFromLegacy = (await legacy.crossSign(newCa)).certificatePem;
    const { server, port } = await serve({ cert: `${leaf.certificatePem}${crossFromLegacy}`, key: leaf.privateKeyPem });
    servers.push(server);
    // Act
    const onLegacy = await handshake(port, [legacy.certificatePem]);
    // Assess
    expect(onLegacy).toEqual({ authorized: false, error: 'PATH_LENGTH_EXCEEDED' });
  });
});
