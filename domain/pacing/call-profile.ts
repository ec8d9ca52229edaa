import { Step } from '../rotation.js';
import { Bucket } from './quotas.js';

/**
 * What each step of a rotation spends: AWS API calls (named as `rotor demo --report` names them
 * in apiCallsByOperation), state transitions, a Lambda invocation, device reconnects. This is
 * the one table the simulator, `rotor plan` and the live pacing read; when a function's calls
 * change, this table changes with it, and `rotor demo --report` is how to measure it
 * (test/e2e/call-profile.test.ts runs a demo and holds the two together).
 *
 * The happy path as measured by `rotor demo --devices 20 --report` after issue 10's API thrift
 * and issue 12's DynamoDB thrift (30 calls per rotation, 11 state transitions): dynamodb:UpdateItem 6, dynamodb:GetItem 5,
 * iotdata:Publish 3, iot:ListPrincipalThings 2, states:SendTaskSuccess 2, and one each of
 * StartExecution, ListThingPrincipals, DescribeCertificate, ListAttachedPolicies,
 * CreateCertificateFromCsr, AttachPolicy, AttachThingPrincipal, UpdateCertificate, DetachPolicy,
 * DetachThingPrincipal, DeleteCertificate, TransactWriteItems; ListAuditFindings and the audit
 * report's UpdateItem once per page of findings. Before the thrift it was 38 calls, with
 * DescribeCertificate 5, ListPrincipalThings 3 and ListAttachedPolicies 2 (docs/design.md).
 * Issue 12 removed device-message's release of a token it answered with success (an UpdateItem
 * after each csr_res and crt_ack, 32 → 30 calls): the next state's own first write removes it
 * (Issue's intent, Retire's finish), and a duplicate answered in between gets TaskTimedOut.
 *
 * A paced step (Issue certificate, Retire old certificate, Roll back) is three transitions in the
 * ASL: the Task, the Choice `<step>: wait for budget?` and the Pass `<step>: done` (plus the Wait
 * and the Task again when its calls are reserved for later). Its reservation on the pacing item
 * (a GetItem and a conditional UpdateItem, more after a lost race) is not in this table: it is
 * DynamoDB, which no quota here limits, and its count depends on contention (test/e2e/pacing.test.ts).
 */

/** Where calls are made: the states of the workflow, plus the audit fan-out and device messages. */
export const CallSite = {
  /** start-rotations, per finding: find the thing (ListPrincipalThings), StartExecution. */
  StartRotation: 'Start rotations',
  ClaimDevice: Step.ClaimDevice,
  /** The Choice after the claim: a transition, nothing called. */
  ResumeOrRotate: Step.ResumeOrRotate,
  /** The first csr_req: with the shared-certificate check (ListThingPrincipals). */
  RequestCsr: Step.RequestCsr,
  /** A csr_req re-sent after a timeout: no check, no 10-TPS call. */
  RequestCsrResent: 'Request CSR (re-sent)',
  /** device-message answering a csr_res. */
  CsrResponse: 'csr_res',
  IssueCertificate: Step.IssueCertificate,
  /** Issue certificate when the CSR breaks a rule: it stops after describing the old certificate (before listing its policies). */
  IssueRejected: 'Issue certificate (CSR rejected)',
  DeliverCertificate: Step.DeliverCertificate,
  /** device-message answering a crt_ack made over the new certificate. */
  CertificateAck: 'crt_ack',
  /** device-message answering a crt_err. */
  CertificateError: 'crt_err',
  /** device-message recording a message it ignores (duplicate, ack over the old certificate, stale). */
  IgnoredMessage: 'ignored message',
  RetireOldCertificate: Step.RetireOldCertificate,
  Rotated: Step.Rotated,
  /** Roll back before any certificate was issued: only the abort. */
  RollBackNothingIssued: 'Roll back (nothing issued)',
  /** Roll back of an issued certificate: checks the old one, takes the new one down. */
  RollBackIssued: 'Roll back (certificate issued)',
  RecordFailure: Step.RecordFailure,
  Escalate: Step.Escalate,
  RotationFailed: Step.RotationFailed,
} as const;
export type CallSite = (typeof CallSite)[keyof typeof CallSite];

export interface SiteProfile {
  /** API calls per `service:Operation`. */
  calls: Readonly<Record<string, number>>;
  /** States entered (Step Functions bills and throttles each, retries included). */
  transitions: number;
  /** The Lambda invocation this site is, with the duration assumed on AWS (warm, 256–512 MB). */
  lambda?: { functionName: string; durationMs: number };
  /** MQTT CONNECTs the device makes because of this site (the reconnect with the new pair). */
  connects: number;
  /**
   * Paced: the site spends a scarce control-plane budget and asks admission before it calls.
   * Device-message sites are not paced: a device decides when they run.
   */
  paced: boolean;
}

/** Per page of ListAuditFindings (start-rotations' page size). */
export const FINDINGS_PER_PAGE = 100;

const site = (calls: Record<string, number>, extra: Partial<SiteProfile> = {}): SiteProfile => ({
  calls,
  transitions: 0,
  connects: 0,
  paced: false,
  ...extra,
});

export const CALL_PROFILE: Readonly<Record<CallSite, SiteProfile>> = {
  [CallSite.StartRotation]: site(
    {
      'iot:ListPrincipalThings': 1,
      'states:StartExecution': 1,
      'iot:ListAuditFindings': 1 / FINDINGS_PER_PAGE,
      'dynamodb:UpdateItem': 1 / FINDINGS_PER_PAGE,
    },
    { paced: true },
  ),
  [CallSite.ClaimDevice]: site({ 'dynamodb:UpdateItem': 1 }, { transitions: 1 }),
  [CallSite.ResumeOrRotate]: site({}, { transitions: 1 }),
  // The first csr_req's shared-certificate check: the thing's certificates (its things came with the input).
  [CallSite.RequestCsr]: site(
    { 'dynamodb:GetItem': 1, 'iot:ListThingPrincipals': 1, 'dynamodb:UpdateItem': 1, 'iotdata:Publish': 1 },
    { transitions: 1, lambda: { functionName: 'request-csr', durationMs: 100 }, paced: true },
  ),
  [CallSite.RequestCsrResent]: site(
    { 'dynamodb:GetItem': 1, 'dynamodb:UpdateItem': 1, 'iotdata:Publish': 1 },
    { transitions: 1, lambda: { functionName: 'request-csr', durationMs: 80 } },
  ),
  // The spent token is left on the record: Issue's intent write removes it.
  [CallSite.CsrResponse]: site(
    { 'dynamodb:GetItem': 1, 'states:SendTaskSuccess': 1 },
    { lambda: { functionName: 'device-message', durationMs: 60 } },
  ),
  [CallSite.IssueCertificate]: site(
    {
      'dynamodb:GetItem': 1,
      'iot:DescribeCertificate': 1,
      'iot:ListAttachedPolicies': 1,
      // The issue intent, then the new certificate's id with what Retire needs of the old one.
      'dynamodb:UpdateItem': 2,
      'iot:CreateCertificateFromCsr': 1,
      'iot:AttachPolicy': 1,
      'iot:AttachThingPrincipal': 1,
    },
    { transitions: 3, lambda: { functionName: 'issue-certificate', durationMs: 400 }, paced: true },
  ),
  [CallSite.IssueRejected]: site(
    { 'dynamodb:GetItem': 1, 'iot:DescribeCertificate': 1 },
    { transitions: 1, lambda: { functionName: 'issue-certificate', durationMs: 120 }, paced: true },
  ),
  [CallSite.DeliverCertificate]: site(
    { 'dynamodb:UpdateItem': 1, 'iotdata:Publish': 1 },
    { transitions: 1, lambda: { functionName: 'deliver-certificate', durationMs: 80 }, connects: 1 },
  ),
  [CallSite.CertificateAck]: site(
    // The ack's certificate recorded, then the token answered; Retire's finish removes the token.
    { 'dynamodb:GetItem': 1, 'dynamodb:UpdateItem': 1, 'states:SendTaskSuccess': 1 },
    { lambda: { functionName: 'device-message', durationMs: 60 } },
  ),
  [CallSite.CertificateError]: site(
    { 'dynamodb:GetItem': 1, 'dynamodb:UpdateItem': 1, 'states:SendTaskFailure': 1 },
    { lambda: { functionName: 'device-message', durationMs: 60 } },
  ),
  [CallSite.IgnoredMessage]: site({ 'dynamodb:GetItem': 1, 'dynamodb:UpdateItem': 1 }, { lambda: { functionName: 'device-message', durationMs: 50 } }),
  [CallSite.RetireOldCertificate]: site(
    {
      // The record (Issue's facts of the old certificate), the fresh shared check, then the
      // take-down: UpdateCertificate's own refusal is the REVOKED check.
      'dynamodb:GetItem': 1,
      'iot:ListPrincipalThings': 1,
      'iot:UpdateCertificate': 1,
      'iot:DetachPolicy': 1,
      'iot:DetachThingPrincipal': 1,
      'iot:DeleteCertificate': 1,
      'iotdata:Publish': 1,
      'dynamodb:TransactWriteItems': 1,
    },
    { transitions: 3, lambda: { functionName: 'retire-certificate', durationMs: 400 }, paced: true },
  ),
  [CallSite.Rotated]: site({}, { transitions: 1 }),
  [CallSite.RollBackNothingIssued]: site(
    { 'dynamodb:GetItem': 1, 'iotdata:Publish': 1 },
    { transitions: 3, lambda: { functionName: 'roll-back', durationMs: 80 } },
  ),
  [CallSite.RollBackIssued]: site(
    {
      'dynamodb:GetItem': 1,
      'iot:DescribeCertificate': 2,
      'iot:UpdateCertificate': 1,
      'iot:ListAttachedPolicies': 1,
      'iot:DetachPolicy': 1,
      'iot:DetachThingPrincipal': 1,
      'iot:DeleteCertificate': 1,
      'iotdata:Publish': 1,
    },
    { transitions: 3, lambda: { functionName: 'roll-back', durationMs: 450 }, paced: true },
  ),
  [CallSite.RecordFailure]: site({ 'dynamodb:TransactWriteItems': 1 }, { transitions: 1, lambda: { functionName: 'record-failure', durationMs: 80 } }),
  [CallSite.Escalate]: site({ 'sns:Publish': 1 }, { transitions: 1 }),
  [CallSite.RotationFailed]: site({}, { transitions: 1 }),
};

/** The sites of a successful rotation, in order. */
export const HAPPY_PATH: readonly CallSite[] = [
  CallSite.StartRotation,
  CallSite.ClaimDevice,
  CallSite.ResumeOrRotate,
  CallSite.RequestCsr,
  CallSite.CsrResponse,
  CallSite.IssueCertificate,
  CallSite.DeliverCertificate,
  CallSite.CertificateAck,
  CallSite.RetireOldCertificate,
  CallSite.Rotated,
];

/** The throttling bucket an operation spends, if AWS throttles it in a way Rotor must plan for. */
export function bucketOf(operation: string): Bucket | undefined {
  switch (operation) {
    case 'states:SendTaskSuccess':
    case 'states:SendTaskFailure':
    case 'states:SendTaskHeartbeat':
      return Bucket.SendTask;
    default:
      return (Object.values(Bucket) as string[]).includes(operation) ? (operation as Bucket) : undefined;
  }
}

/** A site's spend per rate bucket: API calls, transitions and connects (Lambda concurrency aside). */
export function bucketDemand(profile: SiteProfile): Partial<Record<Bucket, number>> {
  const demand: Partial<Record<Bucket, number>> = {};
  const add = (bucket: Bucket, n: number): void => {
    if (n > 0) demand[bucket] = (demand[bucket] ?? 0) + n;
  };
  for (const [operation, n] of Object.entries(profile.calls)) {
    const bucket = bucketOf(operation);
    if (bucket) add(bucket, n);
  }
  add(Bucket.StateTransition, profile.transitions);
  add(Bucket.MqttConnect, profile.connects);
  return demand;
}

/** What one rotation spends along a path: per bucket, and Lambda-seconds (for concurrency). */
export interface PathDemand {
  perBucket: Partial<Record<Bucket, number>>;
  lambdaSeconds: number;
  calls: Record<string, number>;
}

export function pathDemand(path: readonly CallSite[] = HAPPY_PATH): PathDemand {
  const perBucket: Partial<Record<Bucket, number>> = {};
  const calls: Record<string, number> = {};
  let lambdaSeconds = 0;
  for (const name of path) {
    const profile = CALL_PROFILE[name];
    for (const [bucket, n] of Object.entries(bucketDemand(profile)) as [Bucket, number][]) perBucket[bucket] = (perBucket[bucket] ?? 0) + n;
    for (const [operation, n] of Object.entries(profile.calls)) calls[operation] = (calls[operation] ?? 0) + n;
    lambdaSeconds += (profile.lambda?.durationMs ?? 0) / 1000;
  }
  return { perBucket, lambdaSeconds, calls };
}

/**
 * The private-ca signer's Issue certificate (domain/signer.ts): CreateCertificateFromCsr is
 * replaced by Private CA's IssueCertificate, GetCertificate (once when the certificate is
 * ready at the first ask; each RequestInProgressException adds one) and IoT's
 * RegisterCertificate (a CA registered in DEFAULT mode) or RegisterCertificateWithoutCA
 * (SNI_ONLY). It also reads the issuing-CA item (one more GetItem, strongly consistent, at every
 * signature: functions/core/issuing-ca.ts), so that a rotation in flight across a CA rollover's
 * switch signs with the new CA. DescribeCertificateAuthority, when the algorithm is not set, is
 * once per execution environment, not per rotation. The rest of the site is unchanged.
 */
export function privateCaIssueProfile(registration: 'DEFAULT' | 'SNI_ONLY' = 'DEFAULT'): SiteProfile {
  const { 'iot:CreateCertificateFromCsr': _created, ...rest } = CALL_PROFILE[CallSite.IssueCertificate].calls;
  return {
    ...CALL_PROFILE[CallSite.IssueCertificate],
    calls: {
      ...rest,
      'dynamodb:GetItem': (rest['dynamodb:GetItem'] ?? 0) + 1,
      'acm-pca:IssueCertificate': 1,
      'acm-pca:GetCertificate': 1,
      [registration === 'DEFAULT' ? 'iot:RegisterCertificate' : 'iot:RegisterCertificateWithoutCA']: 1,
    },
  };
}
