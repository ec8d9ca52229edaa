import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { CreateStateMachineCommand, SendTaskSuccessCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { Step } from '../../domain/rotation.js';
import { defaultSettings, exampleDeployment, renderStateMachine } from '../../wiring/index.js';
import { type FakeFunction, type Harness, ROLE, startHarness } from '../unit/local/stepfunctions/sfn-harness.js';

/** Rotor's own rendered ASL on the local engine, with fake functions playing each Lambda and the device. */
describe("Rotor's rotate-device state machine on the local Step Functions", () => {
  let h: Harness;
  let dynamodb: DynamoDBClient;
  let ddb: ReturnType<typeof mockClient>;

  beforeEach(() => {
    dynamodb = new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    ddb = mockClient(dynamodb);
    ddb.on(UpdateItemCommand).resolves({});
  });
  afterEach(async () => {
    // A failed answer is the test's business (its assertions show it); the server must close regardless.
    await Promise.allSettled(answers);
    answers = [];
    await h.close();
    ddb.restore();
    dynamodb.destroy();
  });

  async function deploy(functions: Record<string, FakeFunction>, scale: number): Promise<string> {
    h = await startHarness({ scale, dynamodb, functions });
    const deployment = exampleDeployment('us-east-1', '123456789012', { ...defaultSettings(), csrRequestRetries: 2 });
    const out = await h.sfn.send(new CreateStateMachineCommand({ name: 'rotor-rotate-device', roleArn: ROLE, definition: renderStateMachine(deployment) }));
    return out.stateMachineArn!;
  }

  /** Answers in flight; each test awaits them so no request outlives the server. */
  let answers: Promise<unknown>[] = [];
  /** Answers a task token the way the device-message Lambda does, after the publishing function returns. */
  const answerLater = (h: () => Harness, output: object) => (p: Record<string, unknown>) => {
    answers.push(
      new Promise((resolve) => setTimeout(resolve, 1)).then(() =>
        h().sfn.send(new SendTaskSuccessCommand({ taskToken: String(p.taskToken), output: JSON.stringify(output) })),
      ),
    );
    return { published: true };
  };

  const OLD = 'old'.padEnd(64, '0');
  const NEW = 'new'.padEnd(64, '0');
  const ISSUED = { certificateId: NEW, certificateArn: 'arn:cert/new', certificatePem: 'CERT', notAfter: '2049-12-31T23:59:59.000Z' };

  /**
   * The fake functions of a rotation that succeeds: the device answers csr_req and acks over the
   * new certificate. A test replaces the functions it exercises.
   */
  const rotating = (replaced: Record<string, FakeFunction> = {}): Record<string, FakeFunction> => ({
    'rotor-request-csr': answerLater(() => h, { pem: 'CSR-PEM', receivedAt: '2026-01-01T00:00:00Z' }),
    'rotor-issue-certificate': () => ISSUED,
    'rotor-deliver-certificate': answerLater(() => h, { principal: NEW, ackedAt: '2026-01-01T00:00:01Z' }),
    'rotor-retire-certificate': () => ({ retiredAt: '2026-01-01T00:00:02Z', oldCertificate: 'DELETED' }),
    ...replaced,
  });

  /** Roll back before anything was issued: it aborts, and the old certificate stays ACTIVE. */
  const rolledBackNothing: FakeFunction = () => ({ newCertificateId: null, deleted: false, aborted: true, oldCertificateStatus: 'ACTIVE' });

  /** A device that never answers csr_req, and the roll back that follows. */
  const silent = (replaced: Record<string, FakeFunction> = {}): Record<string, FakeFunction> => ({
    'rotor-request-csr': () => ({ published: true }),
    'rotor-roll-back': rolledBackNothing,
    ...replaced,
  });

  it('rotates on the happy path in eleven states (three Choices, two Passes that file the paced steps\' results)', async () => {
    // Prepare
    const arn = await deploy(rotating({ 'rotor-issue-certificate': (p) => ({ ...ISSUED, certificatePem: `CERT for ${String(p.csrPem)}` }) }), 0.001); // the CSR timeout is 1.8 s of real time: ample for answers over HTTP on a busy machine

    // Act
    const { executionArn } = await h.sfn.send(
      new StartExecutionCommand({ stateMachineArn: arn, name: 'audit-t1', input: JSON.stringify({ thingName: 't1', certificateId: 'old'.padEnd(64, '0'), trigger: 'audit' }) }),
    );
    const result = await h.service.waitForExecution(executionArn!);

    // Assess
    expect(result.status).toBe('SUCCEEDED');
    const output = JSON.parse(result.output!);
    expect(h.service.statesEntered(executionArn!)).toEqual([
      Step.ClaimDevice, Step.ResumeOrRotate, Step.RequestCsr,
      Step.IssueCertificate, Step.IssueCertificatePaced, Step.IssueCertificateDone,
      Step.DeliverCertificate,
      Step.RetireOldCertificate, Step.RetireOldCertificatePaced, Step.RetireOldCertificateDone,
      Step.Rotated,
    ]);
    expect(h.service.stateTransitions(executionArn!)).toBe(11);
    const claim = ddb.commandCalls(UpdateItemCommand)[0].args[0].input;
    expect(claim.Key).toEqual({ pk: { S: 'thing#t1' }, sk: { S: 'current' } });
    expect(claim.ExpressionAttributeValues?.[':rid']).toEqual({ S: 'audit-t1' });
    expect(claim.ExpressionAttributeValues?.[':exec']).toEqual({ S: executionArn });
    expect(h.invoker.callsTo('rotor-issue-certificate')[0]).toMatchObject({ thingName: 't1', rotationId: 'audit-t1', csrPem: 'CSR-PEM', pacedUntil: null });
    expect(output.issued).toEqual({ certificateId: 'new'.padEnd(64, '0'), certificateArn: 'arn:cert/new', certificatePem: 'CERT for CSR-PEM', notAfter: '2049-12-31T23:59:59.000Z' });
    expect(h.invoker.callsTo('rotor-retire-certificate')[0]).toMatchObject({ newCertificateId: 'new'.padEnd(64, '0'), executionArn });
    expect(output.ack).toEqual({ principal: 'new'.padEnd(64, '0'), ackedAt: '2026-01-01T00:00:01Z' });
    expect(output.retired).toEqual({ retiredAt: '2026-01-01T00:00:02Z', oldCertificate: 'DELETED' });
    expect(output.issued.notAfter).toBe('2049-12-31T23:59:59.000Z');
    expect(h.sns.published).toHaveLength(0);
  });

  it('rolls back, records and escalates when the device never sends its CSR', async () => {
    // Prepare
    const arn = await deploy(silent({
      'rotor-record-failure': (p) => ({ subject: 'Rotor: t1 failed', message: `failed at ${String(p.failedStep)}`, error: 'NO_CSR_RESPONSE', cause: 'no csr_res after 3 requests' }),
    }), 0.00001); // three 30-minute CSR timeouts and the backoff between them pass in well under a second

    // Act
    const { executionArn } = await h.sfn.send(
      new StartExecutionCommand({ stateMachineArn: arn, name: 'audit-t2', input: JSON.stringify({ thingName: 't2', certificateId: 'old'.padEnd(64, '0'), trigger: 'audit' }) }),
    );
    const result = await h.service.waitForExecution(executionArn!);

    // Assess
    expect(h.service.statesEntered(executionArn!)).toEqual([
      Step.ClaimDevice, Step.ResumeOrRotate, Step.RequestCsr, Step.RollBack, Step.RollBackPaced, Step.RollBackDone, Step.RecordFailure, Step.Escalate, Step.RotationFailed,
    ]);
    expect(result).toMatchObject({ status: 'FAILED', error: 'NO_CSR_RESPONSE', cause: 'no csr_res after 3 requests' });
    const requests = h.invoker.callsTo('rotor-request-csr');
    expect(requests.map((p) => p.attempt)).toEqual([0, 1, 2]);
    expect(new Set(requests.map((p) => p.taskToken)).size).toBe(3);
    expect(h.invoker.callsTo('rotor-roll-back')[0]).toMatchObject({ failedStep: Step.RequestCsr, rotation: { error: { Error: 'States.Timeout' } } });
    expect(h.invoker.callsTo('rotor-record-failure')[0]).toMatchObject({ failedStep: Step.RequestCsr, rotation: { rollback: { aborted: true } } });
    expect(h.sns.published).toEqual([{ topicArn: 'arn:aws:sns:us-east-1:123456789012:rotor-escalations', subject: 'Rotor: t1 failed', message: 'failed at Request CSR', messageAttributes: undefined }]);
  });

  const failWith = (name: string, message = name) => () => {
    throw Object.assign(new Error(message), { name });
  };
  const recorded = () => ({ subject: 'Rotor: t failed', message: 'escalation', error: 'NO_CSR_RESPONSE', cause: 'no csr_res' });
  async function run(arn: string, name: string, input: Record<string, unknown> = {}) {
    const { executionArn } = await h.sfn.send(
      new StartExecutionCommand({ stateMachineArn: arn, name, input: JSON.stringify({ thingName: name, certificateId: OLD, trigger: 'audit', ...input }) }),
    );
    const result = await h.service.waitForExecution(executionArn!);
    return { executionArn: executionArn!, result, states: h.service.statesEntered(executionArn!) };
  }

  it('takes a resumed rotation (a late ack over the new certificate) straight to Retire', async () => {
    const arn = await deploy(rotating(), 0.001);

    const { result, states } = await run(arn, 'resume-t3', { trigger: 'resume', resume: { newCertificateId: NEW } });

    expect(result.status).toBe('SUCCEEDED');
    expect(states).toEqual([Step.ClaimDevice, Step.ResumeOrRotate, Step.ResumeAfterAck, Step.RetireOldCertificate, Step.RetireOldCertificatePaced, Step.RetireOldCertificateDone, Step.Rotated]);
    expect(h.invoker.callsTo('rotor-retire-certificate')[0]).toMatchObject({ oldCertificateId: OLD, newCertificateId: NEW, trigger: 'resume' });
    expect(h.invoker.callsTo('rotor-request-csr')).toEqual([]);
  });

  it('waits in the workflow when a paced step returns waitUntil, then runs it again with its reservation', async () => {
    // Prepare: Issue's calls are due 40 s on (0.04 s at this scale); Retire's at once.
    let issues = 0;
    const arn = await deploy(rotating({
      'rotor-issue-certificate': () => {
        issues += 1;
        if (issues === 1) return { waitUntil: new Date(Date.now() + 40_000).toISOString() };
        return ISSUED;
      },
    }), 0.001);

    // Act
    const { result, states } = await run(arn, 'paced-t9');

    // Assess
    expect(result.status).toBe('SUCCEEDED');
    expect(states.slice(3, 9)).toEqual([
      Step.IssueCertificate, Step.IssueCertificatePaced, Step.IssueCertificateWait,
      Step.IssueCertificate, Step.IssueCertificatePaced, Step.IssueCertificateDone,
    ]);
    const calls = h.invoker.callsTo('rotor-issue-certificate');
    expect(calls[0].pacedUntil).toBeNull();
    // The second run carries the time its calls were reserved for: it does not reserve twice.
    expect(typeof calls[1].pacedUntil).toBe('string');
    expect(Date.parse(String(calls[1].pacedUntil))).toBeGreaterThan(0);
    // The reservation is the Issue step's alone: Retire (and a Roll back) reserve their own.
    expect(h.invoker.callsTo('rotor-retire-certificate')[0]).toMatchObject({ pacedUntil: null });
    const output = JSON.parse(result.output!);
    expect(output.issued).toEqual({ certificateId: NEW, certificateArn: 'arn:cert/new', certificatePem: 'CERT', notAfter: '2049-12-31T23:59:59.000Z' });
  });

  it('tells a step the Retry ran it again after a wait (retryCount), so it reserves again', async () => {
    // Prepare: Issue waits for its budget, then its Lambda crashes once on the held reservation.
    let issues = 0;
    const arn = await deploy(rotating({
      'rotor-issue-certificate': () => {
        issues += 1;
        if (issues === 1) return { waitUntil: new Date(Date.now() + 5_000).toISOString() };
        if (issues === 2) failWith('Runtime.ExitError', 'the runtime exited')();
        return ISSUED;
      },
    }), 0.001);

    // Act
    const { result } = await run(arn, 'paced-t11');

    // Assess: the attempt after the Wait and its retry carry the same pacedUntil; only the retry says it is one.
    expect(result.status).toBe('SUCCEEDED');
    const calls = h.invoker.callsTo('rotor-issue-certificate');
    expect(calls.map((call) => call.retryCount)).toEqual([0, 0, 1]);
    expect(calls[1].pacedUntil).toEqual(calls[2].pacedUntil);
    expect(typeof calls[2].pacedUntil).toBe('string');
  });

  it('clears a step\'s reservation when it fails after a wait, so Roll back reserves its own', async () => {
    let issues = 0;
    const arn = await deploy(rotating({
      'rotor-issue-certificate': () => {
        issues += 1;
        if (issues === 1) return { waitUntil: new Date(Date.now() + 5_000).toISOString() };
        throw Object.assign(new Error('CSR rejected: weak key'), { name: 'CsrRejected' });
      },
      'rotor-roll-back': rolledBackNothing,
      'rotor-record-failure': () => ({ ...recorded(), error: 'CSR_REJECTED' }),
    }), 0.001);

    const { result } = await run(arn, 'paced-t10');

    expect(result).toMatchObject({ status: 'FAILED', error: 'CSR_REJECTED' });
    expect(h.invoker.callsTo('rotor-roll-back')[0]).toMatchObject({ pacedUntil: null, failedStep: Step.IssueCertificate });
  });

  it('retries a step whose Lambda timed out or crashed (Sandbox.Timedout, Runtime.ExitError)', async () => {
    let issues = 0;
    const arn = await deploy(rotating({
      'rotor-issue-certificate': () => {
        issues += 1;
        if (issues === 1) failWith('Sandbox.Timedout', 'Task timed out after 60.00 seconds')();
        if (issues === 2) failWith('Runtime.ExitError', 'the runtime exited')();
        return ISSUED;
      },
    }), 0.0001);

    const { result } = await run(arn, 'crash-t4');

    expect(result.status).toBe('SUCCEEDED');
    expect(issues).toBe(3);
  });

  it('rolls back (deleting the new certificate) when Retire finds the old certificate revoked', async () => {
    const arn = await deploy({
      'rotor-retire-certificate': failWith('OldCertificateRevoked', 'the old certificate is REVOKED'),
      'rotor-roll-back': () => ({ newCertificateId: NEW, deleted: true, aborted: false, oldCertificateStatus: 'REVOKED' }),
      'rotor-record-failure': () => ({ ...recorded(), error: 'OLD_CERTIFICATE_REVOKED' }),
    }, 0.001);

    const { result, states } = await run(arn, 'revoked-t5', { trigger: 'resume', resume: { newCertificateId: NEW } });

    expect(states.slice(-7)).toEqual([Step.RetireOldCertificate, Step.RollBack, Step.RollBackPaced, Step.RollBackDone, Step.RecordFailure, Step.Escalate, Step.RotationFailed]);
    expect(result).toMatchObject({ status: 'FAILED', error: 'OLD_CERTIFICATE_REVOKED' });
    expect(h.invoker.callsTo('rotor-roll-back')[0]).toMatchObject({ failedStep: Step.RetireOldCertificate, rotation: { error: { Error: 'OldCertificateRevoked' } } });
  });

  it('ends as the success it was when Record failure finds the rotation already SUCCEEDED', async () => {
    const arn = await deploy({
      'rotor-retire-certificate': failWith('DeleteConflictException', 'a timeout after the commit, as far as the machine knows'),
      'rotor-record-failure': failWith('RotationAlreadySucceeded'),
    }, 0.001);

    const { result, states } = await run(arn, 'succeeded-t6', { trigger: 'resume', resume: { newCertificateId: NEW } });

    expect(result.status).toBe('SUCCEEDED');
    expect(states.slice(-3)).toEqual([Step.RetireOldCertificate, Step.RecordFailure, Step.Rotated]);
    expect(h.sns.published).toEqual([]);
  });

  it('retries Record failure on conflicts, and still escalates — saying so — when it cannot record', async () => {
    const arn = await deploy(silent({ 'rotor-record-failure': failWith('TransactionCanceledException', 'Transaction cancelled [TransactionConflict]') }), 0.00001);

    const { result, states } = await run(arn, 'unrecorded-t7');

    expect(states.slice(-6)).toEqual([Step.RollBack, Step.RollBackPaced, Step.RollBackDone, Step.RecordFailure, Step.EscalateUnrecorded, Step.FailureNotRecorded]);
    expect(result).toMatchObject({ status: 'FAILED', error: 'RecordFailureFailed' });
    expect(h.invoker.callsTo('rotor-record-failure').length).toBeGreaterThan(3);
    expect(h.sns.published).toHaveLength(1);
    expect(h.sns.published[0].subject).toBe('Rotor: a failed certificate rotation could not be recorded');
    expect(JSON.parse(h.sns.published[0].message)).toMatchObject({
      thingName: 'unrecorded-t7',
      oldCertificateId: OLD,
      step: Step.RequestCsr,
      recordError: { Error: 'TransactionCanceledException' },
    });
  });

  it('retries Escalate on any error, then ends with EscalationFailed, never looking like an ordinary failure', async () => {
    const arn = await deploy(silent({ 'rotor-record-failure': recorded }), 0.00001);
    let attempts = 0;
    h.sns.publish = async () => {
      attempts += 1;
      throw Object.assign(new Error('User is not authorized to perform kms:GenerateDataKey'), { name: 'KMSAccessDeniedException' });
    };

    const { result, states } = await run(arn, 'escalation-t8');

    expect(states.slice(-2)).toEqual([Step.Escalate, Step.EscalationFailed]);
    expect(result).toMatchObject({ status: 'FAILED', error: 'EscalationFailed' });
    expect(attempts).toBe(7);
  });

  it('releases a claim whose execution ended without recording, then claims again; a running holder means Already rotating', async () => {
    const { ConditionalCheckFailedException } = await import('@aws-sdk/client-dynamodb');
    const held = () => new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
    ddb.on(UpdateItemCommand).rejectsOnce(held()).resolves({});
    const arn = await deploy(rotating({
      'rotor-release-claim': () => ({ released: true, holder: 'crashed-one', holderStatus: 'FAILED', subject: 'Rotor: certificate rotation of stale-t9 failed (EXECUTION_ABANDONED)', message: '{"reason":"EXECUTION_ABANDONED"}' }),
    }), 0.001);

    const released = await run(arn, 'stale-t9', { trigger: 'resume', resume: { newCertificateId: NEW } });
    expect(released.result.status).toBe('SUCCEEDED');
    // The abandoned rotation gets its one escalation before the claim is tried again.
    expect(released.states.slice(0, 5)).toEqual([Step.ClaimDevice, Step.CheckClaimHolder, Step.AbandonedClaimReleased, Step.EscalateAbandonedRotation, Step.ClaimDevice]);
    expect(h.invoker.callsTo('rotor-release-claim')[0]).toEqual({ thingName: 'stale-t9', rotationId: 'stale-t9' });

    ddb.on(UpdateItemCommand).rejects(held());
    h.invoker.calls.splice(0);
    const functions = (h.invoker as unknown as { functions: Record<string, FakeFunction> }).functions;
    functions['rotor-release-claim'] = failWith('ClaimHeld', 'rotation x of t10 is still running');
    const busy = await run(arn, 'busy-t10');
    expect(busy.result.status).toBe('SUCCEEDED');
    expect(busy.states).toEqual([Step.ClaimDevice, Step.CheckClaimHolder, Step.AlreadyRotating]);
  });
});
