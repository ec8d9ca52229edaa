import { createHash } from 'node:crypto';

/**
 * Execution names are the rotation ids. They are deterministic so that a repeated audit
 * notification, or a repeated retry, asks Step Functions for the same name and starts
 * nothing twice (names are unique per state machine for 90 days). Allowed characters and
 * the 80-character limit are Step Functions'.
 */
const MAX_EXECUTION_NAME = 80;
const HASH_CHARS = 20;

function digest(parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, HASH_CHARS);
}

function readablePrefix(thingName: string, room: number): string {
  return thingName.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, room);
}

function compose(thingName: string, tag: string, hash: string): string {
  const room = MAX_EXECUTION_NAME - tag.length - hash.length - 2;
  return `${readablePrefix(thingName, room)}-${tag}${hash}`;
}

/** Name of the execution an audit finding starts. */
export function auditExecutionName(thingName: string, certificateId: string, auditTaskId: string): string {
  return compose(thingName, 'a', digest(['audit', thingName, certificateId, auditTaskId]));
}

/** Name of the execution a manual retry starts after the failed rotation `failedRotationId`. */
export function retryExecutionName(thingName: string, certificateId: string, failedRotationId: string): string {
  return compose(thingName, 'r', digest(['retry', thingName, certificateId, failedRotationId]));
}

/**
 * Name of the execution that finishes a failed rotation after a late crt_ack over its new
 * certificate: one per new certificate, however many acks arrive.
 */
export function resumeExecutionName(thingName: string, newCertificateId: string): string {
  return compose(thingName, 'f', digest(['resume', thingName, newCertificateId]));
}

const CERTIFICATE_ID = /^[0-9a-f]{64}$/;
export function isCertificateId(value: string): boolean {
  return CERTIFICATE_ID.test(value);
}

/** Thing names, as AWS IoT allows them. */
const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;
export function isThingName(value: string): boolean {
  return THING_NAME.test(value);
}

/**
 * The Step Functions console page of one execution; on the local runtime, the page of its own
 * console when one is given (`http://127.0.0.1:4566/console/`).
 */
export function executionConsoleUrl(executionArn: string, localConsole?: string): string {
  if (localConsole) return `${localConsole.replace(/\/$/, '')}/executions/${executionArn}`;
  const region = executionArn.split(':')[3] ?? 'us-east-1';
  return `https://${region}.console.aws.amazon.com/states/home?region=${region}#/v2/executions/details/${executionArn}`;
}

/**
 * Name of the execution that updates one thing's trust store in one push (protocol v1.2): the
 * same push asks for the same name, so a repeated `rotor trust push` starts nothing twice.
 */
export function trustUpdateExecutionName(thingName: string, bundleId: string, pushId: string): string {
  return compose(thingName, 't', digest(['trust', thingName, bundleId, pushId]));
}
