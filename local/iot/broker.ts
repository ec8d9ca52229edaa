import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { TOPIC_ROOT } from '../../domain/topics.js';
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { certificateIdOf, type KeyAndCertificate, type LocalCa } from './ca.js';
import type { ClientIdPolicy, IotRegistry } from './registry.js';
import type { RulesEngine } from './rules.js';

export interface BrokerOptions {
  registry: IotRegistry;
  rules: RulesEngine;
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  now?: () => Date;
  /** Refused connections and other broker events worth a log line. */
  onEvent?: (event: BrokerEvent) => void;
  /** Which client ids a certificate may connect with; Rotor's device policy ('thing-name') by default. */
  clientIdPolicy?: ClientIdPolicy;
  /** The CA that signs the broker's TLS server certificate; the registry's CA by default. */
  serverCa?: LocalCa;
  /** During a server-CA switch: serverCa cross-signed by the CA before it, served after the leaf. */
  serverCrossCertificatePem?: string;
}

export type BrokerEvent =
  | { type: 'refused'; clientId: string; certificateId?: string; reason: string }
  | { type: 'connected'; clientId: string; certificateId: string }
  | { type: 'disconnected'; clientId: string; certificateId: string }
  | { type: 'denied'; clientId: string; action: 'publish' | 'subscribe'; topic: string }
  | { type: 'clientError'; clientId: string; error: string };

export interface ConnectedClient {
  clientId: string;
  certificateId: string;
  connectedAt: Date;
}

/** aedes' CONNACK return code 5: not authorized. */
const NOT_AUTHORIZED = 5;
/** The principal the rules engine reports for a data-plane publish (an IAM caller). */
export const DATA_PLANE_PRINCIPAL = 'AIDAAAAAAAAAAAAAAAAAA:rotor-local';

function notAuthorized(reason: string): AuthenticateError {
  return Object.assign(new Error(reason), { returnCode: NOT_AUTHORIZED }) as AuthenticateError;
}

/** Everything a device may touch: its own subtree, as the device policy says. */
function deviceTopicPrefix(clientId: string): string {
  return `${TOPIC_ROOT}/${clientId}/`;
}

function insideOwnTree(clientId: string, topicOrFilter: string): boolean {
  const prefix = deviceTopicPrefix(clientId);
  return topicOrFilter.startsWith(prefix) && topicOrFilter.length > prefix.length;
}

/**
 * The IoT message broker: aedes (MQTT 3.1.1) behind a TLS server that demands a client
 * certificate. Right after the handshake a missing, foreign or expired certificate is refused:
 * one must chain to the local CA or to a CA registered with RegisterCACertificate (TLS checks
 * the chain and the dates), or be registered without a CA (SNI_ONLY: then only its own dates
 * are checked). authenticate() then applies the registry (ACTIVE, under an ACTIVE CA, has a
 * policy, attached to the thing named by the client id), as AWS IoT does with Rotor's device policy.
 */
export class MqttBroker {
  private readonly sessions = new Map<Client, ConnectedClient>();
  /** The live clients of each certificate: a retirement drops them without a scan of every session. */
  private readonly clientsByCertificate = new Map<string, Set<Client>>();
  private readonly now: () => Date;
  private unsubscribeRetired?: () => void;
  private unsubscribeCaChange?: () => void;
  private serverCa: LocalCa;
  private crossCertificatePem: string | undefined;

  private constructor(
    private readonly options: BrokerOptions,
    private readonly aedes: Aedes,
    private readonly server: Server,
    private serverCredentials: KeyAndCertificate,
  ) {
    this.now = options.now ?? (() => new Date());
    this.serverCa = options.serverCa ?? options.registry.ca;
    this.crossCertificatePem = options.serverCrossCertificatePem;
  }

  /** What the TLS server presents: the leaf, then the cross-certificate while one is served (C5). */
  private static chain(leafPem: string, crossPem: string | undefined): string {
    return crossPem ? `${leafPem.trim()}\n${crossPem.trim()}\n` : leafPem;
  }

  /** What the TLS layer chains client certificates to: the local CA and every registered CA. */
  private static trust(registry: IotRegistry): string[] {
    return [registry.ca.certificatePem, ...registry.registeredCaPems()];
  }

  static async start(options: BrokerOptions): Promise<MqttBroker> {
    const { registry } = options;
    const server = await (options.serverCa ?? registry.ca).createServerCertificate(['localhost'], ['127.0.0.1']);
    let broker: MqttBroker | undefined;
    const aedes = await Aedes.createBroker({
      authenticate: (client, _username, _password, done) => {
        if (!broker) return done(notAuthorized('broker is starting'), false);
        const refusal = broker.authenticate(client);
        if (refusal) done(notAuthorized(refusal), false);
        else done(null, true);
      },
      authorizePublish: (client, packet, done) => {
        // A null client is the cloud side (data plane), which IAM, not the device policy, governs.
        if (!client || insideOwnTree(client.id, packet.topic)) return done(null);
        broker?.emit({ type: 'denied', clientId: client.id, action: 'publish', topic: packet.topic });
        done(new Error(`${client.id} may not publish to ${packet.topic}`));
      },
      authorizeSubscribe: (client, subscription, done) => {
        if (insideOwnTree(client.id, subscription.topic)) return done(null, subscription);
        broker?.emit({ type: 'denied', clientId: client.id, action: 'subscribe', topic: subscription.topic });
        // A null subscription is a SUBACK failure (0x80) for this filter; the connection stays.
        done(null, null);
      },
    });
    const tlsServer = createServer(
      {
        key: server.privateKeyPem,
        cert: MqttBroker.chain(server.certificatePem, options.serverCrossCertificatePem),
        ca: MqttBroker.trust(registry),
        requestCert: true,
        // Checked right after the handshake (admit()): a certificate registered without a CA has no chain to verify.
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
      },
      (socket) => {
        if (broker?.admit(socket)) aedes.handle(socket);
        else socket.destroy();
      },
    );
    // A TLS handshake refused for a missing or foreign certificate is the client's failure, not the server's.
    tlsServer.on('tlsClientError', (error) => broker?.emit({ type: 'refused', clientId: '', reason: error.message }));
    broker = new MqttBroker(options, aedes, tlsServer, server);
    broker.wire();
    await new Promise<void>((resolve, reject) => {
      tlsServer.once('error', reject);
      tlsServer.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        tlsServer.off('error', reject);
        resolve();
      });
    });
    return broker;
  }

  private wire(): void {
    this.aedes.on('clientDisconnect', (client) => this.forget(client));
    this.aedes.on('clientError', (client, error) => this.emit({ type: 'clientError', clientId: client.id, error: error.message }));
    this.aedes.on('publish', (packet, client) => {
      // Device publishes only: the data plane dispatches its own with an IAM principal.
      if (!client) return;
      const session = this.sessions.get(client);
      if (!session) return;
      this.options.rules.dispatch({
        topic: packet.topic,
        payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
        clientId: client.id,
        principal: session.certificateId,
        receivedAt: this.now().getTime(),
      });
    });
    this.unsubscribeRetired = this.options.registry.onRetired((certificateId) => this.disconnectCertificate(certificateId));
    this.unsubscribeCaChange = this.options.registry.onCaChange(() => this.refreshTls());
  }

  /** New handshakes use the current server certificate and the current registered CAs. */
  private refreshTls(): void {
    this.server.setSecureContext({
      key: this.serverCredentials.privateKeyPem,
      cert: MqttBroker.chain(this.serverCredentials.certificatePem, this.crossCertificatePem),
      ca: MqttBroker.trust(this.options.registry),
      minVersion: 'TLSv1.2',
    });
  }

  /**
   * The TLS layer's verdict, taken right after the handshake: a chain to a trusted CA within
   * its dates, or a certificate registered without a CA (SNI_ONLY) within its own dates.
   */
  private admit(socket: TLSSocket): boolean {
    // A verified chain implies a client certificate: only the other handshakes need it read here
    // (wrapping the peer certificate was ~4 % of the main thread in a 200-device profile).
    if (socket.authorized) return true;
    const peer = socket.getPeerX509Certificate();
    if (!peer) {
      this.emit({ type: 'refused', clientId: '', reason: 'no client certificate' });
      return false;
    }
    const record = this.options.registry.findCertificate(certificateIdOf(new Uint8Array(peer.raw)));
    const now = this.now().getTime();
    const inDates = new Date(peer.validFrom).getTime() <= now && now < new Date(peer.validTo).getTime();
    if (record?.certificateMode === 'SNI_ONLY' && !record.caCertificateId && inDates) return true;
    const reason = String(socket.authorizationError ?? 'the client certificate does not verify');
    this.emit({ type: 'refused', clientId: '', certificateId: record?.certificateId, reason });
    return false;
  }

  /**
   * Switches the broker to a server certificate from another CA (`rotor local server-ca rotate`),
   * served with `crossCertificatePem` (the new CA cross-signed by the old one) when given, so
   * devices that trust only the old CA still verify the broker. Live sessions keep the connection
   * they have; new handshakes get the new chain.
   */
  async useServerCa(ca: LocalCa, crossCertificatePem?: string): Promise<void> {
    this.serverCredentials = await ca.createServerCertificate(['localhost'], ['127.0.0.1']);
    this.serverCa = ca;
    this.crossCertificatePem = crossCertificatePem;
    this.refreshTls();
  }

  /** Stops serving the cross-certificate (`server-ca retire-old`): from the next handshake, only the current CA verifies the broker. */
  retireCrossCertificate(): void {
    this.crossCertificatePem = undefined;
    this.refreshTls();
  }

  /** The broker's current TLS server certificate (PEM). */
  get serverCertificatePem(): string {
    return this.serverCredentials.certificatePem;
  }

  /** The cross-certificate served after the leaf, while a server-CA switch keeps the old CA working. */
  get serverCrossCertificatePem(): string | undefined {
    return this.crossCertificatePem;
  }

  private authenticate(client: Client): string | undefined {
    const socket = client.conn as TLSSocket;
    // getPeerX509Certificate wraps the native certificate; getPeerCertificate() would first turn
    // every field of it into JS objects, and only the DER bytes are needed for the id.
    const peer = typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
    if (!peer?.raw) {
      const reason = 'no client certificate';
      this.emit({ type: 'refused', clientId: client.id, reason });
      return reason;
    }
    const certificateId = certificateIdOf(new Uint8Array(peer.raw));
    const refusal = this.options.registry.connectRefusal(certificateId, client.id, this.options.clientIdPolicy);
    if (refusal) {
      this.emit({ type: 'refused', clientId: client.id, certificateId, reason: refusal });
      return refusal;
    }
    this.track(client, { clientId: client.id, certificateId, connectedAt: this.now() });
    this.emit({ type: 'connected', clientId: client.id, certificateId });
    return undefined;
  }

  private track(client: Client, session: ConnectedClient): void {
    this.untrack(client);
    this.sessions.set(client, session);
    let clients = this.clientsByCertificate.get(session.certificateId);
    if (!clients) this.clientsByCertificate.set(session.certificateId, (clients = new Set()));
    clients.add(client);
  }

  /** Removes the client's session; returns it, or undefined when it had none. */
  private untrack(client: Client): ConnectedClient | undefined {
    const session = this.sessions.get(client);
    if (!session) return undefined;
    this.sessions.delete(client);
    const clients = this.clientsByCertificate.get(session.certificateId);
    clients?.delete(client);
    if (clients?.size === 0) this.clientsByCertificate.delete(session.certificateId);
    return session;
  }

  private forget(client: Client): void {
    const session = this.untrack(client);
    if (!session) return;
    this.emit({ type: 'disconnected', clientId: session.clientId, certificateId: session.certificateId });
  }

  private emit(event: BrokerEvent): void {
    this.options.onEvent?.(event);
  }

  /** Drops every live connection made with this certificate (it is no longer ACTIVE, or gone). */
  disconnectCertificate(certificateId: string): number {
    let closed = 0;
    for (const client of [...(this.clientsByCertificate.get(certificateId) ?? [])]) {
      const session = this.untrack(client);
      if (!session) continue;
      this.emit({ type: 'disconnected', clientId: session.clientId, certificateId });
      client.close();
      closed++;
    }
    return closed;
  }

  /** Publishes from the cloud side (data plane): delivered to subscribers and seen by the rules. */
  async publish(topic: string, payload: Buffer, qos: 0 | 1, retain = false): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.aedes.publish({ cmd: 'publish', topic, payload, qos, retain, dup: false }, (error) => (error ? reject(error) : resolve())),
    );
    this.options.rules.dispatch({ topic, payload, clientId: '', principal: DATA_PLANE_PRINCIPAL, receivedAt: this.now().getTime() });
  }

  connectedClients(): ConnectedClient[] {
    return [...this.sessions.values()].map((s) => ({ ...s }));
  }

  /** The certificate a live client authenticated with (what principal() reports). */
  principalOf(clientId: string): string | undefined {
    for (const session of this.sessions.values()) if (session.clientId === clientId) return session.certificateId;
    return undefined;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get host(): string {
    return (this.server.address() as AddressInfo).address;
  }

  /** The CA a device verifies the broker with: the one that signed its current server certificate. */
  get caPem(): string {
    return this.serverCa.certificatePem;
  }

  async stop(): Promise<void> {
    this.unsubscribeRetired?.();
    this.unsubscribeCaChange?.();
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    await serverClosed;
    this.sessions.clear();
    this.clientsByCertificate.clear();
  }
}
