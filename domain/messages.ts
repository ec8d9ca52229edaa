import { MessageType, TrustMessageType, type DeviceToCloudType, type TrustDeviceToCloudType } from './topics.js';
import { isBundleId, MAX_BUNDLE_CHARS } from './trust-bundle.js';

/** PROTOCOL.md: JSON payloads of the rotation topics. `rotationId` is optional from devices. */
export interface CsrRequest {
  rotationId: string;
  /** Protocol v1.1: the id of the certificate being replaced. A v1 device ignores it. */
  certificateId?: string;
}
export interface CsrResponse { rotationId?: string; CSR: string }
export interface CertificateResponse { rotationId: string; certificateId: string; certificatePem: string }
export interface CertificateAck { rotationId?: string }
export interface CertificateError { rotationId?: string; error: string }
export interface RotationDone { rotationId: string }
export interface Abort { rotationId: string; reason: string }

/** A device → cloud message after validation, discriminated on `type`. */
export type DeviceMessage =
  | { type: typeof MessageType.CsrResponse; body: CsrResponse }
  | { type: typeof MessageType.CertificateAck; body: CertificateAck }
  | { type: typeof MessageType.CertificateError; body: CertificateError };

/** A cloud → device message, discriminated on `type`. */
export type CloudMessage =
  | { type: typeof MessageType.CsrRequest; body: CsrRequest }
  | { type: typeof MessageType.CertificateResponse; body: CertificateResponse }
  | { type: typeof MessageType.RotationDone; body: RotationDone }
  | { type: typeof MessageType.Abort; body: Abort };

/**
 * Codes a device puts at the start of a crt_err's `error` text (protocol v1.1), so that the
 * cloud and an operator tell a refusal apart from a failure to use the new certificate.
 */
export const DeviceErrorCode = {
  /** The csr_req named a certificate the device does not hold. */
  CertificateNotHeld: 'CERTIFICATE_NOT_HELD',
} as const;
export type DeviceErrorCode = (typeof DeviceErrorCode)[keyof typeof DeviceErrorCode];

export type Validation<T> = { ok: true; value: T } | { ok: false; error: string };

/** Upper bounds that keep a hostile device from making us store or log megabytes. */
export const MAX_CSR_CHARS = 16_384;
export const MAX_ERROR_CHARS = 1_024;
export const MAX_ROTATION_ID_CHARS = 128;
export const MAX_CERTIFICATE_PEM_CHARS = 16_384;

type Json = Record<string, unknown>;

const CERTIFICATE_ID = /^[0-9a-f]{64}$/;

function asObject(input: unknown): Validation<Json> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, error: 'payload is not a JSON object' };
  }
  return { ok: true, value: input as Json };
}

function optionalRotationId(obj: Json): Validation<string | undefined> {
  const value = obj.rotationId;
  if (value === undefined) return { ok: true, value: undefined };
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ROTATION_ID_CHARS) {
    return { ok: false, error: `rotationId must be a non-empty string of at most ${MAX_ROTATION_ID_CHARS} characters` };
  }
  return { ok: true, value };
}

function requiredString(obj: Json, field: string, max: number): Validation<string> {
  const value = obj[field];
  if (value === undefined) return { ok: false, error: `${field} is missing` };
  if (typeof value !== 'string') return { ok: false, error: `${field} must be a string, got ${typeof value}` };
  if (value.length === 0) return { ok: false, error: `${field} is empty` };
  if (value.length > max) return { ok: false, error: `${field} is longer than ${max} characters` };
  return { ok: true, value };
}

/** Validates the parsed JSON body of a device → cloud message of the given type. */
export function validateDeviceMessage(type: DeviceToCloudType, input: unknown): Validation<DeviceMessage> {
  const obj = asObject(input);
  if (!obj.ok) return obj;
  const rotationId = optionalRotationId(obj.value);
  if (!rotationId.ok) return rotationId;
  const withId = rotationId.value === undefined ? {} : { rotationId: rotationId.value };
  switch (type) {
    case MessageType.CsrResponse: {
      const csr = requiredString(obj.value, 'CSR', MAX_CSR_CHARS);
      if (!csr.ok) return csr;
      return { ok: true, value: { type, body: { ...withId, CSR: csr.value } } };
    }
    case MessageType.CertificateAck:
      return { ok: true, value: { type, body: withId } };
    case MessageType.CertificateError: {
      const error = requiredString(obj.value, 'error', MAX_ERROR_CHARS);
      if (!error.ok) return error;
      return { ok: true, value: { type, body: { ...withId, error: error.value } } };
    }
  }
}

/** Decodes and validates a raw MQTT payload (bytes) of a device → cloud message. */
export function parseDeviceMessage(type: DeviceToCloudType, payload: Uint8Array | string): Validation<DeviceMessage> {
  const text = typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, error: 'payload is not valid JSON' };
  }
  return validateDeviceMessage(type, parsed);
}

/** Validates a cloud → device message; the device simulator uses it on what it receives. */
export function parseCloudMessage(type: string, payload: Uint8Array | string): Validation<CloudMessage> {
  const text = typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, error: 'payload is not valid JSON' };
  }
  const obj = asObject(parsed);
  if (!obj.ok) return obj;
  // Blog-era clouds send `{}`; a device accepts a csr_req without rotationId.
  const rid = obj.value.rotationId;
  if (rid !== undefined && (typeof rid !== 'string' || rid.length === 0)) {
    return { ok: false, error: 'rotationId must be a non-empty string' };
  }
  const rotationId = (rid as string | undefined) ?? '';
  switch (type) {
    case MessageType.CsrRequest: {
      const certificateId = obj.value.certificateId;
      if (certificateId === undefined) return { ok: true, value: { type, body: { rotationId } } };
      if (typeof certificateId !== 'string' || !CERTIFICATE_ID.test(certificateId)) {
        return { ok: false, error: 'certificateId must be 64 lowercase hex characters' };
      }
      return { ok: true, value: { type, body: { rotationId, certificateId } } };
    }
    case MessageType.CertificateResponse: {
      const id = requiredString(obj.value, 'certificateId', 64);
      if (!id.ok) return id;
      if (!CERTIFICATE_ID.test(id.value)) return { ok: false, error: 'certificateId must be 64 lowercase hex characters' };
      const pem = requiredString(obj.value, 'certificatePem', MAX_CERTIFICATE_PEM_CHARS);
      if (!pem.ok) return pem;
      return { ok: true, value: { type, body: { rotationId, certificateId: id.value, certificatePem: pem.value } } };
    }
    case MessageType.RotationDone:
      return { ok: true, value: { type, body: { rotationId } } };
    case MessageType.Abort: {
      const reason = typeof obj.value.reason === 'string' ? obj.value.reason : '';
      return { ok: true, value: { type, body: { rotationId, reason } } };
    }
    default:
      return { ok: false, error: `${type} is not a cloud → device message type` };
  }
}

/** The exact JSON the cloud publishes for a message. */
export function encodeCloudMessage(message: CloudMessage): string {
  return JSON.stringify(message.body);
}

// --- Protocol v1.2: the server trust-store update (opt-in) ---

/** cloud → device: trust this bundle of server CAs instead of the current one. */
export interface TrustRequest {
  rotationId: string;
  /** PEM of one or more CA certificates (domain/trust-bundle.ts). */
  bundle: string;
  /** bundleIdOf the bundle's certificates: the device checks it and acks with it. */
  bundleId: string;
}
/** device → cloud, only over a connection whose server was verified with the new bundle. */
export interface TrustAck { rotationId?: string; bundleId: string }
/** device → cloud: the new bundle was not made current; the old one is still in use. */
export interface TrustError { rotationId?: string; bundleId?: string; code: TrustErrorCode; error: string }

export const TrustErrorCode = {
  /** Not a usable bundle: bad PEM, not CA certificates, expired, or its id does not match `bundleId`. */
  BundleInvalid: 'BUNDLE_INVALID',
  /** The server could not be verified with the new bundle (or not reached with it). */
  ConnectFailed: 'CONNECT_FAILED',
  /** The device could not store the bundle. */
  StorageFailed: 'STORAGE_FAILED',
  /** The device does not take server-CA updates (policy, read-only trust store). */
  Unsupported: 'UNSUPPORTED',
  /** A trust_req arrived while another one was in flight on the device. */
  Busy: 'BUSY',
} as const;
export type TrustErrorCode = (typeof TrustErrorCode)[keyof typeof TrustErrorCode];
const TRUST_ERROR_CODES: readonly string[] = Object.values(TrustErrorCode);

export type TrustDeviceMessage =
  | { type: typeof TrustMessageType.TrustAck; body: TrustAck }
  | { type: typeof TrustMessageType.TrustError; body: TrustError };

/** Parses a trust_req as a device receives it. The bundle itself is checked by parseTrustBundle. */
export function parseTrustRequest(payload: Uint8Array | string): Validation<TrustRequest> {
  const text = typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, error: 'payload is not valid JSON' };
  }
  const obj = asObject(parsed);
  if (!obj.ok) return obj;
  const rotationId = requiredString(obj.value, 'rotationId', MAX_ROTATION_ID_CHARS);
  if (!rotationId.ok) return rotationId;
  const bundleId = requiredString(obj.value, 'bundleId', 64);
  if (!bundleId.ok) return bundleId;
  if (!isBundleId(bundleId.value)) return { ok: false, error: 'bundleId must be 64 lowercase hex characters' };
  const bundle = requiredString(obj.value, 'bundle', MAX_BUNDLE_CHARS);
  if (!bundle.ok) return bundle;
  return { ok: true, value: { rotationId: rotationId.value, bundle: bundle.value, bundleId: bundleId.value } };
}

/** Validates the parsed JSON body of a trust_ack / trust_err (the cloud side of v1.2). */
export function validateTrustDeviceMessage(type: TrustDeviceToCloudType, input: unknown): Validation<TrustDeviceMessage> {
  const obj = asObject(input);
  if (!obj.ok) return obj;
  const rotationId = optionalRotationId(obj.value);
  if (!rotationId.ok) return rotationId;
  const withId = rotationId.value === undefined ? {} : { rotationId: rotationId.value };
  const rawBundleId = obj.value.bundleId;
  if (rawBundleId !== undefined && (typeof rawBundleId !== 'string' || !isBundleId(rawBundleId))) {
    return { ok: false, error: 'bundleId must be 64 lowercase hex characters' };
  }
  switch (type) {
    case TrustMessageType.TrustAck:
      if (rawBundleId === undefined) return { ok: false, error: 'bundleId is missing' };
      return { ok: true, value: { type, body: { ...withId, bundleId: rawBundleId as string } } };
    case TrustMessageType.TrustError: {
      const code = obj.value.code;
      if (typeof code !== 'string' || !TRUST_ERROR_CODES.includes(code)) {
        return { ok: false, error: `code must be one of ${TRUST_ERROR_CODES.join(', ')}` };
      }
      const error = requiredString(obj.value, 'error', MAX_ERROR_CHARS);
      if (!error.ok) return error;
      const withBundle = rawBundleId === undefined ? {} : { bundleId: rawBundleId as string };
      return { ok: true, value: { type, body: { ...withId, ...withBundle, code: code as TrustErrorCode, error: error.value } } };
    }
  }
}
