import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { ClaimLost, isBundleId, InvalidInput, MAX_BUNDLE_CHARS, TrustMessageType, TrustStep } from '../domain/index.js';
import type { Clock } from './core/clock.js';
import { publishTrustToDevice } from './core/device-channel.js';
import { once, rotorHandler } from './core/handler.js';
import { objectInput, rotationIdField, stringField, taskTokenField, thingNameField } from './core/input.js';
import type { TableDeps } from './core/rotation-table.js';
import { observability, type Telemetry } from './core/telemetry.js';
import { parkTrustToken } from './core/trust-table.js';
import { baseDeps, tracedIotData } from './core/runtime-deps.js';

/** What the 'Send trust request' state sends (lambda:invoke.waitForTaskToken). */
export interface TrustRequestInput {
  thingName: string;
  /** The execution name: sent to the device as trust_req's rotationId. */
  updateId: string;
  bundleId: string;
  bundle: string;
  taskToken: string;
  /** $$.State.RetryCount: 0 for the first trust_req, one more per timeout. */
  attempt: number;
}

export interface TrustRequestDeps extends TableDeps {
  iotData: IoTDataPlaneClient;
  clock: Clock;
  telemetry: Telemetry;
}

export function parseTrustRequestInput(event: unknown): TrustRequestInput {
  const input = objectInput(event, 'trust-request input');
  const bundleId = stringField(input, 'bundleId', 64);
  if (!isBundleId(bundleId)) throw new InvalidInput('bundleId must be 64 lowercase hex characters');
  const attempt = typeof input.attempt === 'number' && Number.isInteger(input.attempt) && input.attempt >= 0 ? input.attempt : 0;
  return {
    thingName: thingNameField(input),
    updateId: rotationIdField(input, 'updateId'),
    bundleId,
    bundle: stringField(input, 'bundle', MAX_BUNDLE_CHARS),
    taskToken: taskTokenField(input),
    attempt,
  };
}

/**
 * Parks the task token first, then sends trust_req (docs/protocol.md v1.2, C3): the device may
 * answer within milliseconds, and its answer only counts once the token is on the record. A
 * re-sent trust_req (after a timeout) parks the new token and counts the request; the device
 * ignores a repeat of the bundle it is testing and acks again one it already made current (T5).
 */
export async function requestTrust(event: unknown, deps: TrustRequestDeps): Promise<{ published: true }> {
  const input = parseTrustRequestInput(event);
  const parked = await parkTrustToken(deps, { thingName: input.thingName, updateId: input.updateId, taskToken: input.taskToken, step: TrustStep.SendTrustRequest, now: deps.clock.now() });
  if (!parked) throw new ClaimLost(input.thingName, input.updateId);
  await publishTrustToDevice(deps.iotData, input.thingName, {
    type: TrustMessageType.TrustRequest,
    body: { rotationId: input.updateId, bundle: input.bundle, bundleId: input.bundleId },
  });
  deps.telemetry.log.info('trust_req published', { attempt: input.attempt, bundleId: input.bundleId });
  return { published: true };
}

function trustLogKeys(event: unknown): Record<string, string | undefined> {
  const fields = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
  return { thingName: text(fields.thingName), rotationId: text(fields.updateId) };
}

const obs = observability('trust-request');
const runtime = once((): TrustRequestDeps => ({ ...baseDeps(obs), iotData: tracedIotData(obs) }));

export const handler = rotorHandler({ observability: obs, step: TrustStep.SendTrustRequest, logKeys: trustLogKeys }, (event: unknown) => requestTrust(event, runtime()));
