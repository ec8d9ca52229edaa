import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { MessageType, Step, WaitFor } from '../domain/index.js';
import type { Clock } from './core/clock.js';
import { publishToDevice } from './core/device-channel.js';
import { once, rotorHandler, taskLogKeys } from './core/handler.js';
import { objectInput, rotationIdField, taskTokenField, thingNameField } from './core/input.js';
import { parkTaskToken, type TableDeps } from './core/rotation-table.js';
import { observability, type Telemetry } from './core/telemetry.js';
import { baseDeps, tracedIotData } from './core/runtime-deps.js';

/** What the 'Request CSR' state sends (lambda:invoke.waitForTaskToken). */
export interface RequestCsrInput {
  thingName: string;
  rotationId: string;
  taskToken: string;
  /** $$.State.RetryCount: 0 for the first csr_req, then one more per timeout. */
  attempt: number;
}

export interface RequestCsrDeps extends TableDeps {
  iotData: IoTDataPlaneClient;
  clock: Clock;
  telemetry: Telemetry;
}

export function parseRequestCsrInput(event: unknown): RequestCsrInput {
  const input = objectInput(event, 'request-csr input');
  const attempt = typeof input.attempt === 'number' && Number.isInteger(input.attempt) && input.attempt >= 0 ? input.attempt : 0;
  return { thingName: thingNameField(input), rotationId: rotationIdField(input), taskToken: taskTokenField(input), attempt };
}

/**
 * Parks the task token first, then asks the device for a CSR: the device may answer within
 * milliseconds, and its answer is only accepted once the token is on the record. A re-sent
 * csr_req (after a timeout) parks the new token and counts the request.
 */
export async function requestCsr(event: unknown, deps: RequestCsrDeps): Promise<{ published: true }> {
  const input = parseRequestCsrInput(event);
  await parkTaskToken(deps, {
    thingName: input.thingName,
    rotationId: input.rotationId,
    taskToken: input.taskToken,
    waitFor: WaitFor.CsrResponse,
    step: Step.RequestCsr,
    now: deps.clock.now(),
    increment: ['csrRequests'],
  });
  await publishToDevice(deps.iotData, input.thingName, { type: MessageType.CsrRequest, body: { rotationId: input.rotationId } });
  deps.telemetry.log.info('csr_req published', { attempt: input.attempt });
  return { published: true };
}

const obs = observability('request-csr');
const runtime = once(
  (): RequestCsrDeps => ({
    ...baseDeps(obs),
    iotData: tracedIotData(obs),
  }),
);

export const handler = rotorHandler({ observability: obs, step: Step.RequestCsr, logKeys: taskLogKeys }, (event: unknown) =>
  requestCsr(event, runtime()),
);
