import 'reflect-metadata';
import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import { DeleteCertificateCommand, DescribeCACertificateCommand, UpdateCertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import { Pkcs10CertificateRequestGenerator } from '@peculiar/x509';
import {
  CaRolloverTrigger,
  newCaNotReady,
  noSuccessor,
  noSuccessorMessage,
  oldCaNotFound,
  parseCaReference,
  type CaRolloverInput,
  type CaReference,
  type ResolvedCas,
} from '../domain/ca-rollover.js';
import { InvalidInput } from '../domain/index.js';
import { endEntityTemplateArn, IotCaRegistration } from '../domain/signer.js';
import { GetCertificateAuthorityCertificateCommand, privateCaClient, type PrivateCaClient } from './aws/acm-pca.js';
import { errorMessage, isNamed, RESOURCE_NOT_FOUND } from './aws/errors.js';
import type { Clock } from './core/clock.js';
import { keyFingerprint } from './core/certificates.js';
import { once, rotorHandler } from './core/handler.js';
import { objectInput, optionalStringField, stringField } from './core/input.js';
import { rolloverIdField, rolloverLogKeys } from './core/ca-rollover-input.js';
import { tracedIot } from './core/runtime-deps.js';
import { systemClock } from './core/clock.js';
import { privateCaSigner } from './core/signer-private-ca.js';
import { observability, type Telemetry } from './core/telemetry.js';

export interface VerifyNewCaEvent {
  rollover: CaRolloverInput;
  /** The rollover's execution name: the test certificate's subject and idempotency token. */
  rolloverId: string;
}

export interface VerifyNewCaDeps {
  iot: IoTClient;
  pca: PrivateCaClient;
  clock: Clock;
  telemetry: Telemetry;
}

const TRIGGERS: readonly string[] = Object.values(CaRolloverTrigger);

export function parseVerifyNewCaEvent(event: unknown): VerifyNewCaEvent {
  const input = objectInput(event, 'ca-verify-new input');
  const rollover = objectInput(input.rollover, 'rollover');
  const trigger = stringField(rollover, 'trigger', 16);
  if (!TRIGGERS.includes(trigger)) throw new InvalidInput(`rollover.trigger must be one of ${TRIGGERS.join(', ')}`);
  const auditTaskId = optionalStringField(rollover, 'auditTaskId', 40);
  return {
    rollover: {
      oldCa: stringField(rollover, 'oldCa', 200),
      // Only an audit's start may come without NEW (no successor configured): Verify escalates it.
      ...(trigger === CaRolloverTrigger.Audit && rollover.newCa === undefined ? {} : { newCa: stringField(rollover, 'newCa', 200) }),
      trigger: trigger as CaRolloverTrigger,
      ...(auditTaskId ? { auditTaskId } : {}),
    },
    rolloverId: rolloverIdField(input),
  };
}

/** IoT's CA certificate id is the SHA-256 of the certificate's DER, hex: how a Private CA is matched to its IoT registration. */
export function iotCaCertificateId(certificatePem: string): string {
  return createHash('sha256').update(new X509Certificate(certificatePem).raw).digest('hex');
}

interface IotCa {
  certificateId: string;
  status: string;
  mode: string;
  pem: string;
}

async function describeIotCa(iot: IoTClient, certificateId: string): Promise<IotCa | undefined> {
  try {
    const out = await iot.send(new DescribeCACertificateCommand({ certificateId }));
    const ca = out.certificateDescription;
    return { certificateId, status: ca?.status ?? 'UNKNOWN', mode: ca?.certificateMode ?? IotCaRegistration.Default, pem: ca?.certificatePem ?? '' };
  } catch (error) {
    if (isNamed(error, RESOURCE_NOT_FOUND)) return undefined;
    throw error;
  }
}

async function privateCaCertificate(pca: PrivateCaClient, arn: string): Promise<string | undefined> {
  try {
    return (await pca.send(new GetCertificateAuthorityCertificateCommand({ CertificateAuthorityArn: arn }))).Certificate;
  } catch (error) {
    if (isNamed(error, RESOURCE_NOT_FOUND, 'InvalidStateException')) return undefined;
    throw error;
  }
}

/** OLD as an IoT CA certificate (and its Private CA, when given as one). */
async function resolveOld(deps: VerifyNewCaDeps, ref: CaReference): Promise<{ ca: IotCa; arn?: string }> {
  const id = ref.kind === 'iot' ? ref.caCertificateId : await privateCaCertificate(deps.pca, ref.arn).then((pem) => (pem ? iotCaCertificateId(pem) : undefined));
  if (!id) throw oldCaNotFound(`the old CA ${ref.kind === 'iot' ? ref.caCertificateId : ref.arn} has no CA certificate`);
  const ca = await describeIotCa(deps.iot, id);
  if (!ca) throw oldCaNotFound(`the old CA's certificate ${id} is not registered with AWS IoT: there is nothing to roll over`);
  return { ca, ...(ref.kind === 'private-ca' ? { arn: ref.arn } : {}) };
}

/** A throwaway key and its CSR, for the test certificate. */
async function testCsr(commonName: string): Promise<{ csrPem: string; keyFingerprint: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const csr = await Pkcs10CertificateRequestGenerator.create({ name: [{ CN: [commonName] }], keys, signingAlgorithm: algorithm }, webcrypto);
  const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  return { csrPem: csr.toString('pem'), keyFingerprint: keyFingerprint(spki) };
}

/**
 * Step (a) of the rollover. Resolves OLD and NEW to their IoT CA certificates, then proves NEW
 * can do what the rotations will ask of it: Private CA signs a one-day test certificate, IoT
 * registers it under NEW (RegisterCertificate with NEW's certificate, or without CA for a CA
 * registered SNI_ONLY) ACTIVE, and it is deleted again. Anything refused on the way is
 * NewCaNotReady: no device has been touched, and the rollover escalates and stops.
 */
export async function verifyNewCa(event: unknown, deps: VerifyNewCaDeps): Promise<ResolvedCas> {
  const { rollover, rolloverId } = parseVerifyNewCaEvent(event);
  if (rollover.newCa === undefined) throw noSuccessor(noSuccessorMessage(rollover.oldCa, rollover.auditTaskId));
  const newRef = parseCaReference(rollover.newCa, 'NEW');
  const oldRef = parseCaReference(rollover.oldCa, 'OLD');
  if ('error' in oldRef) throw oldCaNotFound(oldRef.error);
  if ('error' in newRef) throw newCaNotReady(newRef.error);
  if (newRef.kind !== 'private-ca') throw newCaNotReady(`NEW must be the Private CA that will sign device certificates (its ARN); got the IoT CA certificate id ${newRef.caCertificateId}`);

  const newPem = await privateCaCertificate(deps.pca, newRef.arn);
  if (!newPem) throw newCaNotReady(`the Private CA ${newRef.arn} does not exist or has no CA certificate yet`);
  const newCa = await describeIotCa(deps.iot, iotCaCertificateId(newPem));
  if (!newCa) throw newCaNotReady(`the certificate of ${newRef.arn} is not registered with AWS IoT (RegisterCACertificate)`);
  if (newCa.status !== 'ACTIVE') throw newCaNotReady(`the certificate of ${newRef.arn} is registered with AWS IoT as ${newCa.certificateId}, but ${newCa.status}, not ACTIVE`);

  const old = await resolveOld(deps, oldRef);
  if (old.ca.certificateId === newCa.certificateId) throw oldCaNotFound(`OLD and NEW are the same CA (${newCa.certificateId})`);

  const partition = newRef.arn.split(':')[1];
  const signer = privateCaSigner(
    // One day: the certificate lives for seconds. The CA's key decides the algorithm.
    { kind: 'private-ca', caArn: newRef.arn, validity: { value: 1, type: 'DAYS' }, templateArn: endEntityTemplateArn(partition), registration: newCa.mode === IotCaRegistration.SniOnly ? IotCaRegistration.SniOnly : IotCaRegistration.Default },
    { iot: deps.iot, pca: deps.pca, clock: deps.clock },
  );
  const csr = await testCsr(`rotor-ca-verify-${rolloverId}`.slice(0, 64));
  let certificateId: string;
  try {
    certificateId = (await signer.sign({ csrPem: csr.csrPem, rotationId: rolloverId, keyFingerprint: csr.keyFingerprint })).certificateId;
  } catch (error) {
    throw newCaNotReady(`the new CA ${newRef.arn} could not issue a certificate that AWS IoT registers: ${errorMessage(error)}`, error);
  }
  // The test certificate must not outlive the check: INACTIVE, then deleted (it has no attachments).
  await deps.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
  await deps.iot.send(new DeleteCertificateCommand({ certificateId }));
  deps.telemetry.log.info('new CA verified', { newCaCertificateId: newCa.certificateId, oldCaCertificateId: old.ca.certificateId, testCertificateId: certificateId });

  return {
    oldCaCertificateId: old.ca.certificateId,
    ...(old.arn ? { oldPrivateCaArn: old.arn } : {}),
    newCaCertificateId: newCa.certificateId,
    newPrivateCaArn: newRef.arn,
  };
}

const obs = observability('ca-verify-new');
const runtime = once(() => {
  return { iot: tracedIot(obs), pca: privateCaClient(), clock: systemClock, telemetry: obs.telemetry };
});

export const handler = rotorHandler({ observability: obs, step: 'Verify new CA', logKeys: rolloverLogKeys }, (event: unknown) => verifyNewCa(event, runtime()));

