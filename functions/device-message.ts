import type { IoTClient } from '@aws-sdk/client-iot';
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { SendTaskFailureCommand, SendTaskSuccessCommand, StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import * as z from 'zod/mini';
import {
  decide,
  DEVICE_TO_CLOUD,
  IgnoredReason,
  MessageType,
  parseDeviceMessage,
  parseTopic,
  parseTrustTopic,
  RotationStatus,
  TRUST_DEVICE_TO_CLOUD,
  type TrustDeviceToCloudType,
  type CertificateState,
  type Decision,
  type DeviceMessage,
  type DeviceToCloudType,
  type MessageContext,
  type RotationRecord,
} from '../domain/index.js';
import { errorMessage, isNamed } from './aws/errors.js';
import { describeCertificate } from './core/certificates.js';
import type { Clock } from './core/clock.js';
import { publishToDevice } from './core/device-channel.js';
import { requiredEnv } from './core/environment.js';
import { once, rotorHandler } from './core/handler.js';
import { getCurrentRecord, recordAck, recordIgnored, releaseTaskToken, type TableDeps } from './core/rotation-table.js';
import { MetricName, observability, type Telemetry } from './core/telemetry.js';
import { handleTrustMessage, type TrustMessageResult } from './core/trust-messages.js';
import { baseDeps, tracedIot, tracedIotData, tracedSfn } from './core/runtime-deps.js';

/**
 * What the IoT rules send (topics.ts ruleSqlFor): the payload base64-encoded, plus who sent it.
 * `principal()` is the id of the certificate the MQTT connection was authenticated with.
 */
export const DeviceMessageEventSchema = z.object({
  payload: z.string().check(z.maxLength(64 * 1024)),
  clientId: z.string().check(z.minLength(1), z.maxLength(128)),
  principal: z.catch(z.string().check(z.maxLength(256)), ''),
  topic: z.string().check(z.minLength(1), z.maxLength(1024)),
  /** timestamp(): epoch milliseconds. */
  receivedAt: z.optional(z.union([z.number(), z.string().check(z.maxLength(64))])),
});
export type DeviceMessageEvent = z.infer<typeof DeviceMessageEventSchema>;

/**
 * What the event source mapping of the device-message queue sends (issue 10 part 4): the IoT
 * rules write each event above to the queue as the message body, and Lambda hands them over in
 * batches. Only the fields read here are checked; SQS sends more.
 */
export const SqsBatchEventSchema = z.object({
  Records: z.array(
    z.object({
      messageId: z.string().check(z.minLength(1)),
      body: z.string(),
      eventSource: z.literal('aws:sqs'),
    }),
  ),
});
export type SqsBatchEvent = z.infer<typeof SqsBatchEventSchema>;

/** ReportBatchItemFailures: the records to receive again; every other one is deleted from the queue. */
export interface SqsBatchResponse {
  batchItemFailures: { itemIdentifier: string }[];
}

export type DeviceMessageResult =
  | { action: 'answered' }
  | { action: 'ignored'; reason: IgnoredReason }
  | { action: 'aborted'; reason: string }
  | { action: 'resumed'; executionName: string }
  | TrustMessageResult;

export interface DeviceMessageDeps extends TableDeps {
  sfn: SFNClient;
  iot: IoTClient;
  iotData: IoTDataPlaneClient;
  /** The rotate-device state machine: a late ack over the new certificate starts a resume execution on it. */
  stateMachineArn: string;
  clock: Clock;
  telemetry: Telemetry;
}

/** Step Functions' answers for a token that was already answered, timed out or never existed. */
const SPENT_TOKEN_ERRORS = ['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken'] as const;

const DEVICE_TYPES: readonly string[] = DEVICE_TO_CLOUD;

interface Received {
  thingName: string;
  type: DeviceToCloudType;
  context: MessageContext;
}

interface IgnoreContext {
  thingName?: string;
  type?: string;
  rotationId?: string;
  detail?: string;
}

function receivedAtIso(value: unknown, fallback: Date): string {
  if (value === undefined) return fallback.toISOString();
  const date = typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value)) ? new Date(Number(value)) : new Date(String(value));
  return Number.isNaN(date.getTime()) ? fallback.toISOString() : date.toISOString();
}

/** The client id of an event that failed its schema, when it has a usable one: the record to count it on. */
function clientIdOf(event: unknown): string | undefined {
  const clientId = typeof event === 'object' && event !== null ? (event as Record<string, unknown>).clientId : undefined;
  return typeof clientId === 'string' && clientId.length > 0 && clientId.length <= 128 ? clientId : undefined;
}

class Dispatcher {
  constructor(private readonly deps: DeviceMessageDeps) {}

  /** Logs, counts and — when the thing has a record — keeps the message that was dropped. */
  async ignore(reason: IgnoredReason, context: IgnoreContext): Promise<DeviceMessageResult> {
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
    const parsed = DeviceMessageEventSchema.safeParse(event);
    if (!parsed.success) {
      const detail = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'event'}: ${issue.message}`).join('; ');
      return this.ignore(IgnoredReason.Malformed, { thingName: clientIdOf(event), detail: `not an IoT rule event: ${detail}` });
    }
    const fields = parsed.data;
    const trustTopic = parseTrustTopic(fields.topic);
    if (trustTopic && fields.clientId === trustTopic.thingName && (TRUST_DEVICE_TO_CLOUD as readonly string[]).includes(trustTopic.type)) {
      // Protocol v1.2: trust_ack / trust_err answer the thing's trust update, not its rotation.
      const type = trustTopic.type as TrustDeviceToCloudType;
      return handleTrustMessage({ thingName: fields.clientId, type, payload: Buffer.from(fields.payload, 'base64'), principal: fields.principal }, this.deps);
    }
    const parsedTopic = parseTopic(fields.topic);
    if (!parsedTopic || !DEVICE_TYPES.includes(parsedTopic.type)) {
      return this.ignore(IgnoredReason.Malformed, { thingName: fields.clientId, detail: `not a device → cloud rotation topic: ${JSON.stringify(fields.topic)}` });
    }
    const type = parsedTopic.type as DeviceToCloudType;
    if (fields.clientId !== parsedTopic.thingName) {
      // Record it on the thing that sent it: the client id is what the device authenticated as.
      return this.ignore(IgnoredReason.TopicMismatch, { thingName: fields.clientId, type, detail: `client ${fields.clientId} published on ${fields.topic}` });
    }
    const received: Received = {
      thingName: fields.clientId,
      type,
      context: { principal: fields.principal, receivedAt: receivedAtIso(fields.receivedAt, this.deps.clock.now()) },
    };

    const message = parseDeviceMessage(type, Buffer.from(fields.payload, 'base64'));
    if (!message.ok) return this.ignore(IgnoredReason.Malformed, { thingName: received.thingName, type, detail: message.error });

    const record = await getCurrentRecord(this.deps, received.thingName);
    let decision = decide(record, message.value, received.context);
    if (decision.kind === 'look-up-certificates' && record) {
      const certificates = await this.certificateStates(record, decision.newCertificateId);
      decision = decide(record, message.value, { ...received.context, certificates });
    }
    return this.act(received, message.value, record, decision);
  }

  private async certificateStates(record: RotationRecord, newCertificateId: string | undefined): Promise<NonNullable<MessageContext['certificates']>> {
    const state = async (certificateId: string): Promise<CertificateState> =>
      ((await describeCertificate(this.deps.iot, certificateId))?.status as CertificateState | undefined) ?? 'GONE';
    const [old, fresh] = await Promise.all([state(record.oldCertificateId), newCertificateId ? state(newCertificateId) : Promise.resolve(undefined)]);
    return fresh === undefined ? { old } : { old, new: fresh };
  }

  private async act(received: Received, message: DeviceMessage, record: RotationRecord | undefined, decision: Decision): Promise<DeviceMessageResult> {
    const { thingName, type } = received;
    const rotationId = message.body.rotationId ?? record?.rotationId;
    const context: IgnoreContext = { thingName, type, ...(rotationId ? { rotationId } : {}) };
    switch (decision.kind) {
      case 'ignore':
        return this.ignore(decision.reason, decision.detail === undefined ? context : { ...context, detail: decision.detail });
      case 'look-up-certificates':
        // decide() had the certificates and still asked: a bug, never device input.
        throw new Error('the device rules asked for certificate statuses twice');
      case 'answer-success': {
        if (decision.ack && record) {
          const recorded = await recordAck(this.deps, { thingName, rotationId: record.rotationId, certificateId: decision.ack.certificateId, status: RotationStatus.InProgress });
          if (!recorded) return this.ignore(IgnoredReason.Unexpected, { ...context, detail: 'the record changed before the ack was recorded' });
        }
        const { taskToken, output } = decision;
        // The spent token stays on the record: the next state's first write clears it (Issue's
        // intent after a csr_res, Retire's finish after a crt_ack), and a duplicate answered
        // meanwhile gets Step Functions' TaskTimedOut, recorded as DUPLICATE: one write fewer per answer.
        return this.answer(received, context, taskToken, () => this.deps.sfn.send(new SendTaskSuccessCommand({ taskToken, output })), { release: false });
      }
      case 'answer-failure': {
        const { taskToken, error, cause } = decision;
        return this.answer(received, context, taskToken, () => this.deps.sfn.send(new SendTaskFailureCommand({ taskToken, error, cause })), { release: true });
      }
      case 'abort': {
        await publishToDevice(this.deps.iotData, thingName, { type: MessageType.Abort, body: { rotationId: decision.rotationId, reason: decision.reasonCode } });
        await this.ignore(IgnoredReason.NoRotationInFlight, { ...context, rotationId: decision.rotationId, detail: 'answered with abort' });
        return { action: 'aborted', reason: decision.reasonCode };
      }
      case 'finish-late-ack':
        return this.resume(received, context, decision);
    }
  }

  /** Cloud rule 10: record the late ack, then start the execution that finishes the rotation. */
  private async resume(received: Received, context: IgnoreContext, decision: Extract<Decision, { kind: 'finish-late-ack' }>): Promise<DeviceMessageResult> {
    const recorded = await recordAck(this.deps, {
      thingName: received.thingName,
      rotationId: decision.rotationId,
      certificateId: decision.newCertificateId,
      status: RotationStatus.Failed,
    });
    if (!recorded) return this.ignore(IgnoredReason.Duplicate, { ...context, detail: 'the failed rotation changed before its late ack was recorded' });
    try {
      await this.deps.sfn.send(
        new StartExecutionCommand({ stateMachineArn: this.deps.stateMachineArn, name: decision.executionName, input: JSON.stringify(decision.input) }),
      );
    } catch (error) {
      if (isNamed(error, 'ExecutionAlreadyExists')) return this.ignore(IgnoredReason.Duplicate, { ...context, detail: `resume execution ${decision.executionName} already exists` });
      throw error;
    }
    this.deps.telemetry.log.info('late crt_ack over the new certificate: resuming the rotation', { rotationId: decision.rotationId, executionName: decision.executionName });
    return { action: 'resumed', executionName: decision.executionName };
  }

  /**
   * Answers the parked token. `release` clears it from the record afterwards (conditional on the
   * token itself); a success answer leaves that to the next state's write, a failure answer (off
   * the happy path, which is left as it was) still clears it at once.
   */
  private async answer(received: Received, context: IgnoreContext, taskToken: string, send: () => Promise<unknown>, { release }: { release: boolean }): Promise<DeviceMessageResult> {
    try {
      await send();
    } catch (error) {
      if (isNamed(error, ...SPENT_TOKEN_ERRORS)) return this.ignore(IgnoredReason.Duplicate, { ...context, detail: errorMessage(error) });
      throw error;
    }
    if (release) await releaseTaskToken(this.deps, received.thingName, taskToken, this.deps.clock.now());
    this.deps.telemetry.log.info('device message answered the rotation', { type: received.type, rotationId: context.rotationId });
    return { action: 'answered' };
  }
}

/**
 * Hands a device's csr_res / crt_ack / crt_err to the rotation waiting for it, by the rules of
 * domain/device-rules.ts. Device input never makes it throw (a throwing rule action only
 * reaches the rule's error action): what it cannot act on is recorded and dropped. AWS errors
 * do escape, so the invocation is retried.
 */
export async function handleDeviceMessage(event: unknown, deps: DeviceMessageDeps): Promise<DeviceMessageResult> {
  return new Dispatcher(deps).handle(event);
}

/** A queue message's body is the rule event as JSON; anything else goes to the schema as is, and is recorded malformed there. */
function ruleEventOf(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return body;
  }
}

/**
 * Handles one batch of the device-message queue. Each record is handled as the rule's event
 * would be: device input is recorded and dropped (the record succeeds, so it is never received
 * again); a record whose handling throws (an AWS error) is returned in batchItemFailures, so
 * that only it comes back after the visibility timeout, and after the queue's maxReceiveCount
 * it moves to the dead-letter queue. The records of one thing run in order, one at a time, as
 * the device sent them; different things run side by side.
 */
export async function handleDeviceMessageBatch(event: SqsBatchEvent, deps: DeviceMessageDeps): Promise<SqsBatchResponse> {
  const byThing = new Map<string, { messageId: string; event: unknown }[]>();
  for (const record of event.Records) {
    const ruleEvent = ruleEventOf(record.body);
    const key = clientIdOf(ruleEvent) ?? `message:${record.messageId}`;
    byThing.set(key, [...(byThing.get(key) ?? []), { messageId: record.messageId, event: ruleEvent }]);
  }
  const failed: string[] = [];
  await Promise.all(
    [...byThing.values()].map(async (records) => {
      for (const record of records) {
        try {
          await handleDeviceMessage(record.event, deps);
        } catch (error) {
          deps.telemetry.log.warn('device message not handled: it will be received again', { messageId: record.messageId, thingName: clientIdOf(record.event), error: errorMessage(error) });
          failed.push(record.messageId);
        }
      }
    }),
  );
  return { batchItemFailures: failed.map((itemIdentifier) => ({ itemIdentifier })) };
}

const obs = observability('device-message');
const runtime = once(
  (): DeviceMessageDeps => ({
    ...baseDeps(obs),
    sfn: tracedSfn(obs),
    iot: tracedIot(obs),
    iotData: tracedIotData(obs),
    stateMachineArn: requiredEnv('STATE_MACHINE_ARN'),
  }),
);

function deviceLogKeys(event: unknown): Record<string, string | undefined> {
  const fields = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  const topic = typeof fields.topic === 'string' && fields.topic.length <= 1024 ? fields.topic : undefined;
  return { thingName: clientIdOf(event), topic };
}

/**
 * The queue's batches (the deployed path), or one rule event invoked directly (a dead letter of
 * an older deployment being replayed, and tests).
 */
export const handler = rotorHandler({ observability: obs, step: 'Device message', logKeys: deviceLogKeys }, (event: unknown): Promise<DeviceMessageResult | SqsBatchResponse> => {
  const batch = SqsBatchEventSchema.safeParse(event);
  return batch.success ? handleDeviceMessageBatch(batch.data, runtime()) : handleDeviceMessage(event, runtime());
});
