/**
 * MQTT topics of the rotation protocol (PROTOCOL.md, "Topics"). Every other part of Rotor —
 * the functions, the IoT rules in Terraform and the local runtime, the device policy, the
 * simulator — derives its topic strings from here; a contract test checks that.
 */
export const TOPIC_ROOT = 'management/topic' as const;

export const MessageType = {
  CsrRequest: 'csr_req',
  CsrResponse: 'csr_res',
  CertificateResponse: 'crt_res',
  CertificateAck: 'crt_ack',
  CertificateError: 'crt_err',
  RotationDone: 'crt_done',
  Abort: 'abort',
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Messages a device publishes; the cloud receives them through IoT rules. */
export const DEVICE_TO_CLOUD = [
  MessageType.CsrResponse,
  MessageType.CertificateAck,
  MessageType.CertificateError,
] as const;
export type DeviceToCloudType = (typeof DEVICE_TO_CLOUD)[number];

/** Messages the cloud publishes; a device subscribes to them. */
export const CLOUD_TO_DEVICE = [
  MessageType.CsrRequest,
  MessageType.CertificateResponse,
  MessageType.RotationDone,
  MessageType.Abort,
] as const;
export type CloudToDeviceType = (typeof CLOUD_TO_DEVICE)[number];

const ALL_TYPES: readonly string[] = Object.values(MessageType);

export function topicFor(thingName: string, type: MessageType): string {
  return `${TOPIC_ROOT}/${thingName}/${type}`;
}

/** The wildcard filter an IoT rule subscribes to for one device → cloud message type. */
export function ruleTopicFilter(type: DeviceToCloudType | TrustDeviceToCloudType): string {
  return `${TOPIC_ROOT}/+/${type}`;
}

/** The filter a device subscribes to: every message below its own topic. */
export function deviceSubscriptionFilter(thingName: string): string {
  return `${TOPIC_ROOT}/${thingName}/+`;
}

export interface ParsedTopic {
  thingName: string;
  type: MessageType;
}

/** Splits a rotation topic into thing name and message type; undefined for any other topic. */
export function parseTopic(topic: string): ParsedTopic | undefined {
  const prefix = `${TOPIC_ROOT}/`;
  if (!topic.startsWith(prefix)) return undefined;
  const rest = topic.slice(prefix.length).split('/');
  if (rest.length !== 2) return undefined;
  const [thingName, type] = rest;
  if (!thingName || !ALL_TYPES.includes(type)) return undefined;
  return { thingName, type: type as MessageType };
}

/** IoT rule name for a device → cloud message type (rule names allow only [a-zA-Z0-9_]). */
export function ruleNameFor(type: DeviceToCloudType | TrustDeviceToCloudType, prefix = 'rotor'): string {
  return `${prefix.replace(/[^a-zA-Z0-9_]/g, '_')}_${type}`;
}

/**
 * The SQL of the IoT rule that forwards one device → cloud message type to Rotor. The
 * payload is passed base64-encoded so that a device sending something that is not JSON
 * still reaches the handler, which records and drops it, instead of failing in the rule.
 * clientid() is the thing name (the device policy binds them) and principal() is the id of
 * the certificate the connection was authenticated with: the ack check depends on it.
 */
export function ruleSqlFor(type: DeviceToCloudType | TrustDeviceToCloudType): string {
  return (
    "SELECT encode(*, 'base64') AS payload, clientid() AS clientId, principal() AS principal, " +
    `topic() AS topic, timestamp() AS receivedAt FROM '${ruleTopicFilter(type)}'`
  );
}

/**
 * Protocol v1.2 (opt-in): the server trust-store update. Its message types live below the same
 * topic root, so a device's subscription already covers `trust_req`; they are kept out of
 * `MessageType` and the rotation's type lists because they are not part of a certificate
 * rotation, and a v1/v1.1 device, which knows only those, ignores them.
 */
export const TrustMessageType = {
  TrustRequest: 'trust_req',
  TrustAck: 'trust_ack',
  TrustError: 'trust_err',
} as const;
export type TrustMessageType = (typeof TrustMessageType)[keyof typeof TrustMessageType];

export const TRUST_CLOUD_TO_DEVICE = [TrustMessageType.TrustRequest] as const;
export const TRUST_DEVICE_TO_CLOUD = [TrustMessageType.TrustAck, TrustMessageType.TrustError] as const;
export type TrustDeviceToCloudType = (typeof TRUST_DEVICE_TO_CLOUD)[number];

const TRUST_TYPES: readonly string[] = Object.values(TrustMessageType);

export function trustTopicFor(thingName: string, type: TrustMessageType): string {
  return `${TOPIC_ROOT}/${thingName}/${type}`;
}

/** Splits a trust-store topic (v1.2) into thing name and message type; undefined for any other topic. */
export function parseTrustTopic(topic: string): { thingName: string; type: TrustMessageType } | undefined {
  const prefix = `${TOPIC_ROOT}/`;
  if (!topic.startsWith(prefix)) return undefined;
  const rest = topic.slice(prefix.length).split('/');
  if (rest.length !== 2) return undefined;
  const [thingName, type] = rest;
  if (!thingName || !TRUST_TYPES.includes(type)) return undefined;
  return { thingName, type: type as TrustMessageType };
}
