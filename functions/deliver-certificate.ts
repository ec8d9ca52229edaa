import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { MessageType, Step, WaitFor } from '../domain/index.js';
import type { Clock } from './core/clock.js';
import { publishToDevice } from './core/device-channel.js';
import { once, rotorHandler, taskLogKeys } from './core/handler.js';
import { certificateIdField, objectInput, pemField, rotationIdField, taskTokenField, thingNameField } from './core/input.js';
import { parkTaskToken, type TableDeps } from './core/rotation-table.js';
import { observability, type Telemetry } from './core/telemetry.js';
import { baseDeps, tracedIotData } from './core/runtime-deps.js';

/** What the 'Deliver certificate' state sends (lambda:invoke.waitForTaskToken). */
export interface DeliverCertificateInput {
  thingName: string;
  rotationId: string;
  taskToken: string;
  certificateId: string;
  certificatePem: string;
}

export interface DeliverCertificateDeps extends TableDeps {
  iotData: IoTDataPlaneClient;
  clock: Clock;
  telemetry: Telemetry;
}

export function parseDeliverCertificateInput(event: unknown): DeliverCertificateInput {
  const input = objectInput(event, 'deliver-certificate input');
  return {
    thingName: thingNameField(input),
    rotationId: rotationIdField(input),
    taskToken: taskTokenField(input),
    certificateId: certificateIdField(input, 'certificateId'),
    certificatePem: pemField(input, 'certificatePem'),
  };
}

/**
 * Parks the token and records which certificate the ack must come over (device-message
 * compares the ack's principal with newCertificateId), then sends the certificate.
 */
export async function deliverCertificate(event: unknown, deps: DeliverCertificateDeps): Promise<{ published: true }> {
  const input = parseDeliverCertificateInput(event);
  await parkTaskToken(deps, {
    thingName: input.thingName,
    rotationId: input.rotationId,
    taskToken: input.taskToken,
    waitFor: WaitFor.CertificateAck,
    step: Step.DeliverCertificate,
    now: deps.clock.now(),
    set: { newCertificateId: input.certificateId },
  });
  await publishToDevice(deps.iotData, input.thingName, {
    type: MessageType.CertificateResponse,
    body: { rotationId: input.rotationId, certificateId: input.certificateId, certificatePem: input.certificatePem },
  });
  deps.telemetry.log.info('crt_res published', { certificateId: input.certificateId });
  return { published: true };
}

const obs = observability('deliver-certificate');
const runtime = once(
  (): DeliverCertificateDeps => ({
    ...baseDeps(obs),
    iotData: tracedIotData(obs),
  }),
);

export const handler = rotorHandler({ observability: obs, step: Step.DeliverCertificate, logKeys: taskLogKeys }, (event: unknown) =>
  deliverCertificate(event, runtime()),
);
