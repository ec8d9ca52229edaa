import { ListThingPrincipalsCommand, type IoTClient } from '@aws-sdk/client-iot';
import { SendTaskFailureCommand, SendTaskSuccessCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { decideTrust, isCertificateId, validateTrustDeviceMessage, type TrustDeviceToCloudType, type TrustMessageContext } from '../../domain/index.js';
import { errorMessage, isNamed } from '../aws/errors.js';
import { describeCertificate } from './certificates.js';
import type { Clock } from './clock.js';
import type { TableDeps } from './rotation-table.js';
import { MetricName, type Telemetry } from './telemetry.js';
import { getTrustRecord, recordLateTrustAck, recordTrustIgnored, releaseTrustToken } from './trust-table.js';

/** What device-message does with a trust_ack / trust_err (protocol v1.2). */
export type TrustMessageResult =
  | { action: 'trust-answered'; outcome: 'acked' | 'refused' }
  | { action: 'trust-ignored'; reason: string }
  /** A trust_ack after its update timed out: recorded on the trust record (the device switched), not answered. */
  | { action: 'trust-acked-late' };

export interface TrustMessageDeps extends TableDeps {
  sfn: SFNClient;
  iot: IoTClient;
  clock: Clock;
  telemetry: Telemetry;
}

export interface ReceivedTrustMessage {
  thingName: string;
  type: TrustDeviceToCloudType;
  payload: Uint8Array;
  principal: string;
}

const SPENT_TOKEN_ERRORS = ['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken'] as const;
const CERTIFICATE_ARN = /:cert\/([0-9a-f]{64})$/;

/** Is the connection's certificate ACTIVE and attached to the thing (C4: the device's own ACTIVE certificate)? */
async function principalState(iot: IoTClient, thingName: string, principal: string): Promise<NonNullable<TrustMessageContext['principalState']>> {
  if (!isCertificateId(principal)) return { status: 'NOT_A_CERTIFICATE', attachedToThing: false };
  const certificate = await describeCertificate(iot, principal);
  if (!certificate) return { status: 'GONE', attachedToThing: false };
  let attachedToThing = false;
  let nextToken: string | undefined;
  do {
    const page = await iot.send(new ListThingPrincipalsCommand({ thingName, maxResults: 25, nextToken }));
    attachedToThing ||= (page.principals ?? []).some((arn) => CERTIFICATE_ARN.exec(arn)?.[1] === principal);
    nextToken = page.nextToken;
  } while (nextToken && !attachedToThing);
  return { status: certificate.status, attachedToThing };
}

/**
 * Hands a trust_ack / trust_err to the trust update waiting for it (docs/protocol.md C4, C5),
 * by domain/trust-update.ts decideTrust. As for the rotation's messages, device input never
 * makes it throw: what it cannot act on is logged, counted on the thing's trust record and
 * dropped. AWS errors escape, so the message is received again.
 */
export async function handleTrustMessage(received: ReceivedTrustMessage, deps: TrustMessageDeps): Promise<TrustMessageResult> {
  const { thingName, type } = received;
  const ignore = async (reason: string, detail: string): Promise<TrustMessageResult> => {
    deps.telemetry.log.warn('trust message ignored', { thingName, type, reason, detail });
    deps.telemetry.count(MetricName.TrustMessagesIgnored, 1, { reason });
    await recordTrustIgnored(deps, thingName, { type, reason, at: deps.clock.now().toISOString() });
    return { action: 'trust-ignored', reason };
  };
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(received.payload).toString('utf8'));
  } catch {
    return ignore('MALFORMED', 'payload is not valid JSON');
  }
  const message = validateTrustDeviceMessage(type, json);
  if (!message.ok) return ignore('MALFORMED', message.error);

  /** The device switched, but its update had timed out: recorded so that an operator sees it (rotor trust status). */
  const ackedLate = async (late: { updateId: string; bundleId: string; certificateId: string }, detail: string): Promise<TrustMessageResult> => {
    const recorded = await recordLateTrustAck(deps, { thingName, updateId: late.updateId, bundleId: late.bundleId, certificateId: late.certificateId, now: deps.clock.now() });
    if (!recorded) return ignore('DUPLICATE', `${detail}; another update holds the record now`);
    deps.telemetry.log.warn('trust_ack came after its update timed out: recorded, the device is on the bundle', { thingName, updateId: late.updateId, bundleId: late.bundleId, detail });
    deps.telemetry.count(MetricName.TrustAcksLate);
    return { action: 'trust-acked-late' };
  };

  const record = await getTrustRecord(deps, thingName);
  const context: TrustMessageContext = { principal: received.principal };
  let decision = decideTrust(record, message.value, context);
  if (decision.kind === 'look-up-principal') {
    decision = decideTrust(record, message.value, { ...context, principalState: await principalState(deps.iot, thingName, received.principal) });
  }
  switch (decision.kind) {
    case 'look-up-principal':
      throw new Error('the trust rules asked for the principal twice');
    case 'ignore':
      return ignore(decision.reason, decision.detail);
    case 'acked-late':
      return ackedLate(decision, 'the update had ended NOT_UPDATED');
    case 'acked':
    case 'refused': {
      const { taskToken } = decision;
      try {
        if (decision.kind === 'acked') await deps.sfn.send(new SendTaskSuccessCommand({ taskToken, output: decision.output }));
        else await deps.sfn.send(new SendTaskFailureCommand({ taskToken, error: decision.error, cause: decision.cause }));
      } catch (error) {
        if (!isNamed(error, ...SPENT_TOKEN_ERRORS)) throw error;
        // The task timed out before the answer: an ack still means the device switched.
        if (decision.kind === 'acked') return ackedLate(decision, errorMessage(error));
        return ignore('DUPLICATE', errorMessage(error));
      }
      await releaseTrustToken(deps, thingName, taskToken, deps.clock.now());
      deps.telemetry.log.info('trust message answered the update', { thingName, type, outcome: decision.kind });
      return { action: 'trust-answered', outcome: decision.kind };
    }
  }
}
