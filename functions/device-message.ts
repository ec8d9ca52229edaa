import { SendTaskFailureCommand, SendTaskSuccessCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import {
  DEVICE_TO_CLOUD,
  ErrorName,
  FailureReason,
  IgnoredReason,
  MessageType,
  parseDeviceMessage,
  parseTopic,
  RotationStatus,
  Step,
  WaitFor,
  type DeviceMessage,
  type DeviceToCloudType,
  type RotationRecord,
} from '../domain/index.js';
import { errorMessage, isNamed } from './aws/errors.js';
import type { Clock } from './core/clock.js';
import { publishToDevice } from './core/device-channel.js';
import { once, rotorHandler } from './core/handler.js';
import { getCurrentRecord, recordAck, recordIgnored, releaseTaskToken, type TableDeps } from './core/rotation-table.js';
import { MetricName, observability, type Telemetry } from './core/telemetry.js';
import { baseDeps, tracedIotData, tracedSfn } from './core/runtime-deps.js';

/** What the IoT rules send (topics.ts ruleSqlFor): the payload base64-encoded, plus who sent it. */
export interface DeviceMessageEvent {
  payload: string;
  clientId: string;
  /** The id of the certificate the MQTT connection was authenticated with. */
  principal: string;
  topic: string;
  /** timestamp(): epoch milliseconds. */
  receivedAt: number | string;
}

export type DeviceMessageResult =
  | { action: 'answered' }
  | { action: 'ignored'; reason: IgnoredReason }
  | { action: 'aborted'; reason: string };

export interface DeviceMessageDeps extends TableDeps {
  sfn: SFNClient;
  iotData: IoTDataPlaneClient;
  clock: Clock;
  telemetry: Telemetry;
}

/** Step Functions' answers for a token that was already answered, timed out or never existed. */
const SPENT_TOKEN_ERRORS = ['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken'] as const;

/** Which parked token each device → cloud message may answer. */
const ANSWERS: Readonly<Record<DeviceToCloudType, WaitFor>> = {
  [MessageType.CsrResponse]: WaitFor.CsrResponse,
  [MessageType.CertificateAck]: WaitFor.CertificateAck,
  [MessageType.CertificateError]: WaitFor.CertificateAck,
};

const DEVICE_TYPES: readonly string[] = DEVICE_TO_CLOUD;

interface Received {
  thingName: string;
  type: DeviceToCloudType;
  principal: string;
  receivedAt: string;
}

function text(value: unknown, max = 512): string | undefined {
  return typeof value === 'string' && value.length > 0 && value.length <= max ? value : undefined;
}

function receivedAtIso(value: unknown, fallback: Date): string {
  const date = typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value)) ? new Date(Number(value)) : new Date(String(value));
  return Number.isNaN(date.getTime()) ? fallback.toISOString() : date.toISOString();
}

class Dispatcher {
  constructor(private readonly deps: DeviceMessageDeps) {}

  /** Logs, counts and — when the thing has a record — keeps the message that was dropped. */
  async ignore(reason: IgnoredReason, context: { thingName?: string; type?: string; rotationId?: string; detail?: string }): Promise<DeviceMessageResult> {
    const { telemetry, clock } = this.deps;
    telemetry.log.warn('device message ignored', { reason, ...context });
    telemetry.count(MetricName.IgnoredMessages, 1, { reason });
    if (context.thingName && reason !== IgnoredReason.UnknownThing) {
      await recordIgnored(this.deps, context.thingName, {
        type: context.type ?? 'unknown',
        reason,
        ...(context.rotationId ? { rotationId: context.rotationId } : {}),
        at: clock.now().toISOString(),
      });
    }
    return { action: 'ignored', reason };
  }

  async handle(event: unknown): Promise<DeviceMessageResult> {
    const fields = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
    const topic = text(fields.topic, 1024);
    const parsedTopic = topic ? parseTopic(topic) : undefined;
    const clientId = text(fields.clientId, 128);
    if (!parsedTopic || !DEVICE_TYPES.includes(parsedTopic.type)) {
      return this.ignore(IgnoredReason.Malformed, { thingName: clientId, detail: `not a device → cloud rotation topic: ${JSON.stringify(topic ?? null)}` });
    }
    const type = parsedTopic.type as DeviceToCloudType;
    if (clientId !== parsedTopic.thingName) {
      // Record it on the thing that sent it: the client id is what the device authenticated as.
      return this.ignore(IgnoredReason.TopicMismatch, { thingName: clientId, type, detail: `client ${clientId ?? '(none)'} published on ${topic}` });
    }
    const received: Received = {
      thingName: clientId,
      type,
      principal: text(fields.principal, 256) ?? '',
      receivedAt: receivedAtIso(fields.receivedAt, this.deps.clock.now()),
    };

    const payload = typeof fields.payload === 'string' ? Buffer.from(fields.payload, 'base64') : undefined;
    const message = payload ? parseDeviceMessage(type, payload) : { ok: false as const, error: 'payload is missing' };
    if (!message.ok) return this.ignore(IgnoredReason.Malformed, { thingName: received.thingName, type, detail: message.error });

    const record = await getCurrentRecord(this.deps, received.thingName);
    const rotationId = message.value.body.rotationId;
    if (!record) return this.ignore(IgnoredReason.UnknownThing, { thingName: received.thingName, type, rotationId });
    return this.dispatch(received, message.value, record);
  }

  private async dispatch(received: Received, message: DeviceMessage, record: RotationRecord): Promise<DeviceMessageResult> {
    const { thingName, type } = received;
    const rotationId = message.body.rotationId;
    const context = { thingName, type, rotationId };

    if (record.status !== RotationStatus.InProgress) {
      const forFailedRotation = record.status === RotationStatus.Failed && (rotationId ?? record.rotationId) === record.rotationId;
      if (forFailedRotation && type !== MessageType.CertificateError && this.mayAbort(record)) return this.abortFailed(received, record);
      return this.ignore(IgnoredReason.NoRotationInFlight, context);
    }
    if (rotationId !== undefined && rotationId !== record.rotationId) return this.ignore(IgnoredReason.StaleRotationId, context);
    if (!record.taskToken || record.waitFor !== ANSWERS[type]) {
      return this.ignore(IgnoredReason.Unexpected, { ...context, detail: `waiting for ${record.waitFor ?? 'nothing'}` });
    }

    switch (message.type) {
      case MessageType.CsrResponse: {
        const output = JSON.stringify({ pem: message.body.CSR, receivedAt: received.receivedAt });
        return this.answer(received, record, record.taskToken, (taskToken) => this.deps.sfn.send(new SendTaskSuccessCommand({ taskToken, output })));
      }
      case MessageType.CertificateAck: {
        // PROTOCOL.md cloud rule 2: only an ack made over the new certificate proves the device can use it.
        if (received.principal !== record.newCertificateId) {
          return this.ignore(IgnoredReason.WrongPrincipal, { ...context, detail: `ack over ${received.principal || 'an unknown principal'}` });
        }
        // Retire trusts this record, not the task's output (issue 9 scenario 9).
        await recordAck(this.deps, { thingName, rotationId: record.rotationId, certificateId: received.principal });
        const output = JSON.stringify({ principal: received.principal, ackedAt: received.receivedAt });
        return this.answer(received, record, record.taskToken, (taskToken) => this.deps.sfn.send(new SendTaskSuccessCommand({ taskToken, output })));
      }
      case MessageType.CertificateError:
        return this.answer(received, record, record.taskToken, (taskToken) =>
          this.deps.sfn.send(new SendTaskFailureCommand({ taskToken, error: ErrorName.DeviceReportedError, cause: message.body.error })),
        );
    }
  }

  /**
   * An abort is only safe while the old certificate is untouched. A rotation that failed in
   * 'Retire old certificate' may already have deactivated it: the device's pending (new)
   * pair is then its only way in, and abort would make it throw that pair away.
   */
  private mayAbort(record: RotationRecord): boolean {
    return record.step !== Step.RetireOldCertificate && record.reason !== FailureReason.RetireFailed;
  }

  private async abortFailed(received: Received, record: RotationRecord): Promise<DeviceMessageResult> {
    const reason = 'rotation already failed';
    await publishToDevice(this.deps.iotData, received.thingName, { type: MessageType.Abort, body: { rotationId: record.rotationId, reason } });
    await this.ignore(IgnoredReason.NoRotationInFlight, { thingName: received.thingName, type: received.type, rotationId: record.rotationId, detail: 'answered with abort' });
    return { action: 'aborted', reason };
  }

  private async answer(
    received: Received,
    record: RotationRecord,
    taskToken: string,
    send: (taskToken: string) => Promise<unknown>,
  ): Promise<DeviceMessageResult> {
    const context = { thingName: received.thingName, type: received.type, rotationId: record.rotationId };
    try {
      await send(taskToken);
    } catch (error) {
      if (isNamed(error, ...SPENT_TOKEN_ERRORS)) return this.ignore(IgnoredReason.Duplicate, { ...context, detail: errorMessage(error) });
      throw error;
    }
    await releaseTaskToken(this.deps, received.thingName, taskToken, this.deps.clock.now());
    this.deps.telemetry.log.info('device message answered the rotation', { type: received.type, rotationId: record.rotationId });
    return { action: 'answered' };
  }
}

/**
 * Hands a device's csr_res / crt_ack / crt_err to the rotation waiting for it. Device input
 * never makes it throw (a throwing rule action only reaches the rule's error action): what
 * it cannot act on is recorded and dropped. AWS errors do escape, so the invocation is
 * retried.
 */
export async function handleDeviceMessage(event: unknown, deps: DeviceMessageDeps): Promise<DeviceMessageResult> {
  return new Dispatcher(deps).handle(event);
}

const obs = observability('device-message');
const runtime = once(
  (): DeviceMessageDeps => ({
    ...baseDeps(obs),
    sfn: tracedSfn(obs),
    iotData: tracedIotData(obs),
  }),
);

function deviceLogKeys(event: unknown): Record<string, string | undefined> {
  const fields = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  return { thingName: text(fields.clientId, 128), topic: text(fields.topic, 1024) };
}

export const handler = rotorHandler({ observability: obs, step: 'Device message', logKeys: deviceLogKeys }, (event: unknown) =>
  handleDeviceMessage(event, runtime()),
);
