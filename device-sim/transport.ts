import { isIP } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { StoredPair } from './key-store.js';

/**
 * The device's MQTT link behind an interface, so the agent runs the same against AWS IoT,
 * the local runtime, or a test double. One connection at a time: `connect` closes the old one.
 */
export interface Transport {
  /**
   * Resolves once CONNACK arrived and the subscription is in place; rejects with ConnectError.
   * `caPem` (protocol v1.2) verifies the server with that bundle instead of the endpoint's.
   */
  connect(credentials: StoredPair, caPem?: string): Promise<void>;
  /** QoS 1; resolves on PUBACK. */
  publish(topic: string, payload: string): Promise<void>;
  /** Ends the connection; `abrupt` drops the socket without DISCONNECT (a crash). */
  close(abrupt?: boolean): Promise<void>;
}

export interface TransportHandlers {
  onMessage(topic: string, payload: Buffer): void;
  /** The connection dropped without `close` being called. */
  onConnectionLost(reason: string): void;
}

export interface Endpoint {
  host: string;
  port: number;
  /** PEM CA bundle the server certificate is checked against. */
  caPem: string;
  /** TLS SNI / host check name when it differs from `host`. */
  serverName?: string;
}

export class ConnectError extends Error {
  constructor(
    message: string,
    /** The server rejected the credentials (as opposed to the network failing). */
    readonly refused: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ConnectError';
    this.serverUnverified = isServerCheckFailure(options?.cause);
  }
  /** The device could not verify the server with its CA bundle (protocol v1.2 rule T4 acts on it at once). */
  readonly serverUnverified: boolean;
}

/** Parses HOST:PORT (port defaults to 8883, MQTT over TLS). */
export function parseEndpoint(value: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(value.trim());
  if (!match) throw new Error(`endpoint ${JSON.stringify(value)} is not HOST or HOST:PORT`);
  const host = match[1].replace(/^\[|\]$/g, '');
  const port = match[2] === undefined ? 8883 : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`endpoint port ${match[2]} is not 1-65535`);
  return { host, port };
}

/** Failures of the path to the server, not of the credentials: retry, never drop a key for them. */
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'CONNECT_TIMEOUT']);
/** The device rejecting the *server*: a configuration problem, not a refusal of the device's pair. */
const SERVER_CHECK_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The device rejected the server's certificate (the CA bundle does not vouch for it). */
export function isServerCheckFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && SERVER_CHECK_ERRORS.has(code);
}

/** Decides whether a failed connect means "the server refused this key pair". */
export function isRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'number') return code === 4 || code === 5 || code === 134 || code === 135; // CONNACK: bad credentials / not authorized
  if (typeof code === 'string') {
    if (NETWORK_ERRORS.has(code) || SERVER_CHECK_ERRORS.has(code)) return false;
    // TLS alerts from the server (bad/unknown/revoked certificate) and resets mid-handshake.
    return code.startsWith('ERR_SSL') || code === 'ECONNRESET';
  }
  // Closed after the TLS handshake without CONNACK: AWS IoT's answer to an inactive certificate.
  return true;
}

export interface MqttTransportOptions extends Endpoint {
  clientId: string;
  /** Topic filter subscribed after each connect. */
  subscription: string;
  handlers: TransportHandlers;
  connectTimeoutMs?: number;
  keepaliveSeconds?: number;
}

/**
 * mqtt.js 5, MQTT 3.1.1, mutual TLS. Reconnects are the reducer's decision (it chooses the
 * key pair), so mqtt.js's own reconnect is off. Messages that arrive before `connect`
 * resolves (a persistent session's backlog) are held back until it has, so the agent always
 * learns of the connection before the first message over it.
 */
export class MqttTransport implements Transport {
  private client: MqttClient | undefined;
  private generation = 0;

  constructor(private readonly options: MqttTransportOptions) {}

  async connect(credentials: StoredPair, bundlePem?: string): Promise<void> {
    await this.close(true);
    const generation = ++this.generation;
    const { host, port, serverName } = this.options;
    const caPem = bundlePem ?? this.options.caPem;
    const sni = serverName ?? (isIP(host) === 0 ? host : undefined);
    const clientOptions: IClientOptions = {
      protocol: 'mqtts',
      host,
      port,
      protocolVersion: 4,
      clientId: this.options.clientId,
      clean: false, // persistent session: requests sent while offline wait for the device
      reconnectPeriod: 0,
      connectTimeout: this.options.connectTimeoutMs ?? 10_000,
      keepalive: this.options.keepaliveSeconds ?? 60,
      key: credentials.keyPem,
      cert: credentials.certPem,
      ca: caPem,
      rejectUnauthorized: true,
      // SNI is required by AWS IoT ATS endpoints; an IP address must not be sent as SNI.
      ...(sni ? { servername: sni } : {}),
      // Port 443 on AWS IoT carries MQTT only with this ALPN protocol.
      ...(port === 443 ? { ALPNProtocols: ['x-amzn-mqtt-ca'] } : {}),
    };
    const client = mqtt.connect(clientOptions);
    this.client = client;
    const held: Array<[string, Buffer]> = [];
    let ready = false;
    client.on('message', (topic, payload) => {
      if (generation !== this.generation) return;
      if (ready) this.options.handlers.onMessage(topic, payload);
      else held.push([topic, payload]);
    });

    await new Promise<void>((resolve, reject) => {
      let lastError: unknown;
      const fail = (error: unknown): void => {
        cleanup();
        client.end(true);
        const message = error instanceof Error ? error.message : 'connection closed before CONNACK';
        reject(new ConnectError(message, isRefusal(error), { cause: error }));
      };
      const onError = (error: Error): void => {
        lastError = error;
      };
      const onClose = (): void => fail(lastError);
      const onConnect = (): void => {
        cleanup();
        resolve();
      };
      const cleanup = (): void => {
        client.removeListener('connect', onConnect);
        client.removeListener('close', onClose);
      };
      client.on('error', onError);
      client.once('connect', onConnect);
      client.once('close', onClose);
    });

    try {
      await client.subscribeAsync(this.options.subscription, { qos: 1 });
    } catch (error) {
      client.end(true);
      throw new ConnectError(`subscribe to ${this.options.subscription} failed: ${(error as Error).message}`, false, { cause: error });
    }
    if (generation !== this.generation) return;
    client.once('close', () => {
      if (generation === this.generation) {
        this.client = undefined;
        this.options.handlers.onConnectionLost('connection closed');
      }
    });
    ready = true;
    for (const [topic, payload] of held.splice(0)) this.options.handlers.onMessage(topic, payload);
  }

  async publish(topic: string, payload: string): Promise<void> {
    const client = this.client;
    if (!client?.connected) throw new Error('not connected');
    await client.publishAsync(topic, payload, { qos: 1 });
  }

  async close(abrupt = false): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.generation++;
    if (!client) return;
    await client.endAsync(abrupt).catch(() => undefined);
  }
}
