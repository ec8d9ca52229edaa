import { ListPrincipalThingsCommand, ListThingPrincipalsCommand, type IoTClient } from '@aws-sdk/client-iot';
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { CertificateNotFound, ClaimLost, MessageType, RotationStatus, SharedCertificate, Step, WaitFor, type RotationRecord } from '../domain/index.js';
import { describeCertificate } from './core/certificates.js';
import type { Clock } from './core/clock.js';
import { publishToDevice } from './core/device-channel.js';
import { once, rotorHandler, taskLogKeys } from './core/handler.js';
import { objectInput, rotationIdField, taskTokenField, thingNameField } from './core/input.js';
import { getCurrentRecord, parkTaskToken, type TableDeps } from './core/rotation-table.js';
import { observability, type Telemetry } from './core/telemetry.js';
import { baseDeps, tracedIot, tracedIotData } from './core/runtime-deps.js';

/** What the 'Request CSR' state sends (lambda:invoke.waitForTaskToken). */
export interface RequestCsrInput {
  thingName: string;
  rotationId: string;
  taskToken: string;
  /** $$.State.RetryCount: 0 for the first csr_req, then one more per timeout. */
  attempt: number;
  /** From the execution's input ($$.Execution.Input): the things start-rotations found the certificate attached to. */
  certificateThings?: string[];
}

export interface RequestCsrDeps extends TableDeps {
  iot: IoTClient;
  iotData: IoTDataPlaneClient;
  clock: Clock;
  telemetry: Telemetry;
}

export function parseRequestCsrInput(event: unknown): RequestCsrInput {
  const input = objectInput(event, 'request-csr input');
  const attempt = typeof input.attempt === 'number' && Number.isInteger(input.attempt) && input.attempt >= 0 ? input.attempt : 0;
  return {
    thingName: thingNameField(input),
    rotationId: rotationIdField(input),
    taskToken: taskTokenField(input),
    attempt,
    ...certificateThingsOf(input.execution),
  };
}

/** The execution input's certificateThings, when it is a list of names; anything else is ignored (and listed afresh). */
function certificateThingsOf(execution: unknown): { certificateThings?: string[] } {
  if (typeof execution !== 'object' || execution === null) return {};
  const things = (execution as { certificateThings?: unknown }).certificateThings;
  if (!Array.isArray(things) || things.length === 0 || things.length > 250 || !things.every((t) => typeof t === 'string' && t.length > 0 && t.length <= 128)) return {};
  return { certificateThings: things as string[] };
}

const CERTIFICATE_ARN = /:cert\/([0-9a-f]{64})$/;

async function thingsOf(iot: IoTClient, certificateArn: string): Promise<string[]> {
  const things: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await iot.send(new ListPrincipalThingsCommand({ principal: certificateArn, maxResults: 25, nextToken }));
    things.push(...(page.things ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  return things;
}

async function certificatesOf(iot: IoTClient, thingName: string): Promise<string[]> {
  const ids: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await iot.send(new ListThingPrincipalsCommand({ thingName, maxResults: 25, nextToken }));
    // Only certificates count: a thing may also have other principals (e.g. Cognito identities).
    for (const arn of page.principals ?? []) {
      const id = CERTIFICATE_ARN.exec(arn)?.[1];
      if (id) ids.push(id);
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return ids;
}

/**
 * docs/protocol.md cloud rule 8: a certificate attached to several things, or a thing with
 * several certificates, is not rotated. Retiring a shared certificate cuts the other things
 * off, and the device may be using another certificate than the one flagged. Checked before
 * the first csr_req, so nothing exists yet that would have to be undone.
 *
 * The certificate's things come from start-rotations, which listed them moments ago to start
 * this execution (`certificateThings`): listing them again would spend a second call of a
 * 10-TPS API per rotation. Without them (a retry, a resume, an input from elsewhere) they are
 * described and listed here. The thing's certificates are always listed: nothing else did.
 */
export async function refuseSharedCertificate(iot: IoTClient, record: RotationRecord, certificateThings?: readonly string[]): Promise<void> {
  const listThings = async (): Promise<string[]> => {
    if (certificateThings) return [...certificateThings];
    const certificate = await describeCertificate(iot, record.oldCertificateId);
    if (!certificate) throw new CertificateNotFound(record.oldCertificateId);
    return thingsOf(iot, certificate.certificateArn);
  };
  const [things, certificates] = await Promise.all([listThings(), certificatesOf(iot, record.thingName)]);
  const otherThings = things.filter((thing) => thing !== record.thingName);
  const otherCertificates = certificates.filter((id) => id !== record.oldCertificateId && id !== record.newCertificateId);
  if (otherThings.length || otherCertificates.length) {
    throw new SharedCertificate(record.oldCertificateId, [...new Set([record.thingName, ...things])], otherCertificates);
  }
}

/**
 * Parks the task token first, then asks the device for a CSR: the device may answer within
 * milliseconds, and its answer is only accepted once the token is on the record. A re-sent
 * csr_req (after a timeout) parks the new token and counts the request. Before the first
 * csr_req, a shared certificate is refused. The csr_req names the certificate being replaced
 * (protocol v1.1), so a device that does not hold it answers crt_err instead of rotating.
 */
export async function requestCsr(event: unknown, deps: RequestCsrDeps): Promise<{ published: true }> {
  const input = parseRequestCsrInput(event);
  const record = await getCurrentRecord(deps, input.thingName);
  if (!record || record.rotationId !== input.rotationId || record.status !== RotationStatus.InProgress) throw new ClaimLost(input.thingName, input.rotationId);
  if (!record.csrRequests) await refuseSharedCertificate(deps.iot, record, input.certificateThings);
  await parkTaskToken(deps, {
    thingName: input.thingName,
    rotationId: input.rotationId,
    taskToken: input.taskToken,
    waitFor: WaitFor.CsrResponse,
    step: Step.RequestCsr,
    now: deps.clock.now(),
    increment: ['csrRequests'],
  });
  await publishToDevice(deps.iotData, input.thingName, {
    type: MessageType.CsrRequest,
    body: { rotationId: input.rotationId, certificateId: record.oldCertificateId },
  });
  deps.telemetry.log.info('csr_req published', { attempt: input.attempt });
  return { published: true };
}

const obs = observability('request-csr');
const runtime = once(
  (): RequestCsrDeps => ({
    ...baseDeps(obs),
    iot: tracedIot(obs),
    iotData: tracedIotData(obs),
  }),
);

export const handler = rotorHandler({ observability: obs, step: Step.RequestCsr, logKeys: taskLogKeys }, (event: unknown) =>
  requestCsr(event, runtime()),
);
