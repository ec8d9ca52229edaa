import { DescribeCertificateCommand, IoTClient, ListAuditFindingsCommand, ListPrincipalThingsCommand, type AuditFinding } from '@aws-sdk/client-iot';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { auditExecutionName } from '../../../domain/naming.js';
import { caRolloverName } from '../../../domain/ca-rollover.js';
import { DAY_S, DEFAULT_PACING, jitterOf, PACING_KEY, parseQuotasFile } from '../../../domain/pacing/index.js';
import { PacingStore } from '../../../functions/core/pacing-store.js';
import { handler, parseAuditChecks, parseStartEvent, startRotations, type StartRotationsDeps } from '../../../functions/start-rotations.js';
import { awsErrors, clients } from '../../fixtures/aws.js';
import { fakeClock, type FakeClock } from '../../fixtures/clock.js';
import { auditNotification, snsEvent } from '../../fixtures/events.js';
import { FUNCTION_ARN, fakeContext } from '../../fixtures/lambda-context.js';
import { recordingTelemetry, type RecordingTelemetry } from '../../fixtures/telemetry.js';

const iot = mockClient(IoTClient);
const sfn = mockClient(SFNClient);
const lambda = mockClient(LambdaClient);
const db = mockClient(DynamoDBDocumentClient);

const TASK = '4e2270a6d2a7d2b8d8f4ad6d6fe3e29a';
const EXPIRING = 'DEVICE_CERTIFICATE_EXPIRING_CHECK';
const AGE = 'DEVICE_CERTIFICATE_AGE_CHECK';
const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:rotor-rotate-device';
const id = (n: number): string => n.toString(16).padStart(64, '0');
const arn = (certId: string): string => `arn:aws:iot:us-east-1:123456789012:cert/${certId}`;
const finding = (certId?: string): AuditFinding => ({
  taskId: TASK,
  nonCompliantResource: { resourceType: certId ? 'DEVICE_CERTIFICATE' : 'CA_CERTIFICATE', resourceIdentifier: certId ? { deviceCertificateId: certId } : { caCertificateId: 'ca' } },
});

/** A small fleet: certificate n belongs to thing-n unless a test says otherwise. */
const fleet = new Map<string, { status: string; things: string[] }>();
/** Execution names already taken, as Step Functions keeps them. */
let executions: Set<string>;
let inFlight: number;
let maxInFlight: number;

function deps(overrides: Partial<StartRotationsDeps> = {}): StartRotationsDeps & { telemetry: RecordingTelemetry } {
  return {
    db: clients.db(),
    tableName: 'rotations',
    iot: clients.iot(),
    sfn: clients.sfn(),
    lambda: clients.lambda(),
    stateMachineArn: STATE_MACHINE,
    auditChecks: [EXPIRING, AGE],
    clock: fakeClock(),
    telemetry: recordingTelemetry(),
    invocation: { functionArn: FUNCTION_ARN, remainingMs: () => 250_000 },
    ...overrides,
  } as StartRotationsDeps & { telemetry: RecordingTelemetry };
}

/** Lays out the findings of one check as pages of findings. */
function pages(checkName: string, ...contents: AuditFinding[][]): void {
  contents.forEach((findings, i) => {
    const nextToken = i < contents.length - 1 ? `${checkName}-page-${i + 1}` : undefined;
    const match = i === 0 ? { taskId: TASK, checkName, nextToken: undefined } : { taskId: TASK, checkName, nextToken: `${checkName}-page-${i}` };
    iot.on(ListAuditFindingsCommand, match).resolves({ findings, nextToken });
  });
}

beforeEach(() => {
  iot.reset();
  sfn.reset();
  lambda.reset();
  db.reset();
  fleet.clear();
  for (let n = 1; n <= 40; n++) fleet.set(id(n), { status: 'ACTIVE', things: [`thing-${n}`] });
  executions = new Set();
  inFlight = 0;
  maxInFlight = 0;
  iot.on(ListPrincipalThingsCommand).callsFake(async ({ principal }: { principal: string }) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((resolve) => setImmediate(resolve));
    inFlight--;
    const cert = fleet.get(principal.split('/')[1]);
    if (!cert) throw awsErrors.notFound();
    return { things: cert.things };
  });
  sfn.on(StartExecutionCommand).callsFake(({ name }: { name: string }) => {
    if (executions.has(name)) throw awsErrors.named('ExecutionAlreadyExists', `Execution Already Exists: '${name}'`);
    executions.add(name);
    return { executionArn: `${STATE_MACHINE.replace('stateMachine', 'execution')}:${name}`, startDate: new Date('2026-03-01T12:00:00.500Z') };
  });
  lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
  db.on(UpdateCommand).resolves({});
  // The handler reads the pacing item (absent: a fresh budget).
  db.on(GetCommand).resolves({});
});

describe('start-rotations', () => {
  it('pages the findings of the non-compliant checks it acts on and starts one rotation per device', async () => {
    // Prepare: only EXPIRING is non-compliant in the fixture notification. Certificate 2 was
    // deactivated since the audit: start-rotations does not describe it (Issue certificate does).
    fleet.set(id(2), { status: 'INACTIVE', things: ['thing-2'] });
    fleet.delete(id(3));
    fleet.set(id(4), { status: 'ACTIVE', things: [] });
    pages(EXPIRING, [finding(id(1)), finding(id(2)), finding(id(3))], [finding(id(4)), finding(), finding(id(5))]);
    const d = deps();

    // Act
    const report = await startRotations(snsEvent(auditNotification()), d);

    // Assess
    expect(report).toEqual({
      taskId: TASK,
      started: 3,
      skipped: { CERTIFICATE_NOT_FOUND: 1, NO_THING_ATTACHED: 1, NOT_A_DEVICE_CERTIFICATE: 1 },
      continued: false,
    });
    expect(iot.commandCalls(ListAuditFindingsCommand).map((c) => c.args[0].input.checkName)).toEqual([EXPIRING, EXPIRING]);
    const start = sfn.commandCalls(StartExecutionCommand)[0].args[0].input;
    expect(start).toEqual({
      stateMachineArn: STATE_MACHINE,
      name: auditExecutionName('thing-1', id(1), TASK),
      input: JSON.stringify({ thingName: 'thing-1', certificateId: id(1), trigger: 'audit', auditTaskId: TASK, checkName: EXPIRING, certificateThings: ['thing-1'] }),
    });
    // One 10-TPS call per finding: the things of the certificate, by the ARN derived from its id.
    expect(iot.commandCalls(DescribeCertificateCommand)).toEqual([]);
    expect(iot.commandCalls(ListPrincipalThingsCommand).map((c) => c.args[0].input.principal)).toContain(arn(id(1)));
    const writes = db.commandCalls(UpdateCommand).map((c) => c.args[0].input);
    expect(writes).toHaveLength(2);
    expect(writes[0].Key).toEqual({ pk: `audit#${TASK}`, sk: 'report' });
    expect(writes[0].UpdateExpression).toMatch(/ADD pages :one, started :n\d/);
    expect(Object.values(writes[1].ExpressionAttributeNames ?? {})).toEqual(
      expect.arrayContaining(['skipped_NO_THING_ATTACHED', 'skipped_NOT_A_DEVICE_CERTIFICATE']),
    );
    expect(d.telemetry.metrics).toContainEqual({ name: 'RotationsStarted', value: 3 });
    expect(lambda.calls()).toHaveLength(0);
  });

  it('starts nothing twice when the same notification arrives again', async () => {
    // Prepare
    pages(EXPIRING, [finding(id(1)), finding(id(2))]);
    await startRotations(snsEvent(auditNotification()), deps());

    // Act
    const again = await startRotations(snsEvent(auditNotification()), deps());

    // Assess
    expect(again).toMatchObject({ started: 0, skipped: { ALREADY_STARTED: 2 } });
    expect(executions.size).toBe(2);
  });

  it('does not rotate a suppressed finding, and counts it as SUPPRESSED', async () => {
    pages(EXPIRING, [{ ...finding(id(1)), isSuppressed: true }, finding(id(2)), { ...finding(id(3)), isSuppressed: false }]);

    const report = await startRotations(snsEvent(auditNotification()), deps());

    expect(report).toMatchObject({ started: 2, skipped: { SUPPRESSED: 1 } });
    expect(sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.name)).toEqual([
      auditExecutionName('thing-2', id(2), TASK),
      auditExecutionName('thing-3', id(3), TASK),
    ]);
    expect(iot.commandCalls(ListPrincipalThingsCommand).map((c) => c.args[0].input.principal)).not.toContain(arn(id(1)));
  });

  it('starts one execution per thing of a shared certificate, never silently only the first', async () => {
    // Prepare: each execution refuses the shared certificate (SHARED_CERTIFICATE) with its own record and escalation.
    fleet.set(id(1), { status: 'ACTIVE', things: ['thing-1', 'thing-1b'] });
    pages(EXPIRING, [finding(id(1))]);
    const d = deps();

    // Act
    const report = await startRotations(snsEvent(auditNotification()), d);

    // Assess
    expect(report).toMatchObject({ started: 2, skipped: {} });
    const inputs = sfn.commandCalls(StartExecutionCommand).map((c) => JSON.parse(c.args[0].input.input ?? '') as { thingName: string; certificateId: string });
    expect(inputs.map((i) => [i.thingName, i.certificateId])).toEqual([
      ['thing-1', id(1)],
      ['thing-1b', id(1)],
    ]);
    expect(iot.commandCalls(ListPrincipalThingsCommand)[0].args[0].input.maxResults).toBe(10);
    expect(d.telemetry.text()).toContain('attached to several things');
  });

  it('counts an execution Step Functions returns from before this invocation as already started', async () => {
    pages(EXPIRING, [finding(id(1))]);
    sfn.on(StartExecutionCommand).resolves({ executionArn: 'arn:x', startDate: new Date('2026-03-01T11:00:00.000Z') });

    await expect(startRotations(snsEvent(auditNotification()), deps())).resolves.toMatchObject({ started: 0, skipped: { ALREADY_STARTED: 1 } });
  });

  it('goes through both checks, and a certificate flagged by both starts once', async () => {
    // Prepare
    const notification = auditNotification({
      auditDetails: [
        { checkName: EXPIRING, checkRunStatus: 'COMPLETED_NON_COMPLIANT', nonCompliantResourcesCount: 1, totalResourcesCount: 5 },
        { checkName: AGE, checkRunStatus: 'COMPLETED_NON_COMPLIANT', nonCompliantResourcesCount: 2, totalResourcesCount: 5 },
      ],
    });
    pages(EXPIRING, [finding(id(1))]);
    pages(AGE, [finding(id(1)), finding(id(7))]);

    // Act
    const report = await startRotations(snsEvent(notification), deps());

    // Assess
    expect(report).toMatchObject({ started: 2, skipped: { ALREADY_STARTED: 1 } });
    expect(iot.commandCalls(ListAuditFindingsCommand).map((c) => c.args[0].input.checkName)).toEqual([EXPIRING, AGE]);
  });

  it('acts only on the checks it is configured for', async () => {
    const notification = auditNotification({
      auditDetails: [{ checkName: AGE, checkRunStatus: 'COMPLETED_NON_COMPLIANT', nonCompliantResourcesCount: 2, totalResourcesCount: 5 }],
    });

    const report = await startRotations(snsEvent(notification), deps({ auditChecks: [EXPIRING] }));

    expect(report).toMatchObject({ started: 0, ignored: expect.stringContaining('no non-compliant finding') });
    expect(iot.calls()).toHaveLength(0);
  });

  describe('a CA_CERTIFICATE_EXPIRING_CHECK finding', () => {
    const CA_CHECK = 'CA_CERTIFICATE_EXPIRING_CHECK';
    const ROLLOVER = 'arn:aws:states:us-east-1:123456789012:stateMachine:rotor-ca-rollover';
    const SUCCESSOR = 'arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/1a2b3c4d-5b7d-4e2a-9c61-2d8f4b7a6e10';
    const CA = 'c'.repeat(64);
    const caFinding = (caCertificateId: string, isSuppressed = false): AuditFinding => ({ taskId: TASK, checkName: CA_CHECK, isSuppressed, nonCompliantResource: { resourceType: 'CA_CERTIFICATE', resourceIdentifier: { caCertificateId } } });
    const caOnly = (): ReturnType<typeof auditNotification> =>
      auditNotification({ auditDetails: [{ checkName: CA_CHECK, checkRunStatus: 'COMPLETED_NON_COMPLIANT', nonCompliantResourcesCount: 1, totalResourcesCount: 2 }] });

    it('starts the rollover of the flagged CA to the configured successor, named by CA, successor and audit', async () => {
      // Prepare
      pages(CA_CHECK, [caFinding(CA)]);
      // Act
      const report = await startRotations(snsEvent(caOnly()), deps({ caRolloverStateMachineArn: ROLLOVER, nextPrivateCaArn: SUCCESSOR }));
      // Assess
      expect(report).toMatchObject({ started: 0, ignored: expect.stringContaining('no non-compliant finding'), caRollovers: { started: 1, withoutSuccessor: 0, alreadyStarted: 0, suppressed: 0 } });
      const starts = sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
      expect(starts).toEqual([{ stateMachineArn: ROLLOVER, name: caRolloverName(CA, SUCCESSOR, TASK), input: JSON.stringify({ oldCa: CA, newCa: SUCCESSOR, trigger: 'audit', auditTaskId: TASK }) }]);
      // Only the CA check's findings are read; no device is looked at.
      expect(iot.commandCalls(ListAuditFindingsCommand).map((c) => c.args[0].input.checkName)).toEqual([CA_CHECK]);
      expect(iot.commandCalls(ListPrincipalThingsCommand)).toHaveLength(0);
    });

    it('with no successor configured, starts the rollover without NEW, which escalates "no successor configured"', async () => {
      // Prepare
      pages(CA_CHECK, [caFinding(CA)]);
      // Act
      const report = await startRotations(snsEvent(caOnly()), deps({ caRolloverStateMachineArn: ROLLOVER, nextPrivateCaArn: undefined }));
      // Assess
      expect(report.caRollovers).toEqual({ started: 1, withoutSuccessor: 1, alreadyStarted: 0, suppressed: 0 });
      const start = sfn.commandCalls(StartExecutionCommand)[0].args[0].input;
      expect(JSON.parse(start.input as string)).toEqual({ oldCa: CA, trigger: 'audit', auditTaskId: TASK });
      expect(start.name).toBe(caRolloverName(CA, '', TASK));
    });

    it('starts nothing twice when the notification is delivered again', async () => {
      // Prepare: the first delivery's execution has ended under that name.
      pages(CA_CHECK, [caFinding(CA)]);
      sfn.on(StartExecutionCommand, { stateMachineArn: ROLLOVER }).rejects(Object.assign(new Error('exists'), { name: 'ExecutionAlreadyExists' }));
      // Act
      const report = await startRotations(snsEvent(caOnly()), deps({ caRolloverStateMachineArn: ROLLOVER, nextPrivateCaArn: SUCCESSOR }));
      // Assess
      expect(report.caRollovers).toEqual({ started: 0, withoutSuccessor: 0, alreadyStarted: 1, suppressed: 0 });
    });

    it('leaves a suppressed finding alone, and still rotates the devices the same audit flags', async () => {
      // Prepare
      pages(CA_CHECK, [caFinding(CA, true)]);
      pages(EXPIRING, [finding(id(1))]);
      const both = auditNotification({
        auditDetails: [
          { checkName: CA_CHECK, checkRunStatus: 'COMPLETED_NON_COMPLIANT', nonCompliantResourcesCount: 1, totalResourcesCount: 2 },
          { checkName: EXPIRING, checkRunStatus: 'COMPLETED_NON_COMPLIANT', nonCompliantResourcesCount: 1, totalResourcesCount: 40 },
        ],
      });
      // Act
      const report = await startRotations(snsEvent(both), deps({ caRolloverStateMachineArn: ROLLOVER, nextPrivateCaArn: SUCCESSOR }));
      // Assess
      expect(report).toMatchObject({ started: 1, caRollovers: { started: 0, suppressed: 1 } });
      expect(sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.stateMachineArn)).toEqual([STATE_MACHINE]);
    });

    it('is ignored by a deployment without the rollover state machine', async () => {
      // Act
      const report = await startRotations(snsEvent(caOnly()), deps());
      // Assess
      expect(report).toMatchObject({ started: 0, ignored: expect.stringContaining('no non-compliant finding') });
      expect(report).not.toHaveProperty('caRollovers');
      expect(iot.calls()).toHaveLength(0);
    });
  });

  it('keeps at most the configured number of per-finding calls in flight', async () => {
    pages(EXPIRING, Array.from({ length: 40 }, (_, n) => finding(id(n + 1))));

    const report = await startRotations(snsEvent(auditNotification()), deps({ concurrency: 8 }));

    expect(report.started).toBe(40);
    expect(maxInFlight).toBeGreaterThan(1);
    expect(maxInFlight).toBeLessThanOrEqual(8);
  });

  it('continues in an asynchronous invocation of itself when time runs short, and the continuation finishes the audit', async () => {
    // Prepare: three pages; time runs short after the first.
    pages(EXPIRING, [finding(id(1))], [finding(id(2))], [finding(id(3))]);
    let remaining = 250_000;
    const first = deps({ invocation: { functionArn: FUNCTION_ARN, remainingMs: () => remaining } });
    iot.on(ListAuditFindingsCommand, { nextToken: undefined }).callsFake(() => {
      remaining = 30_000;
      return { findings: [finding(id(1))], nextToken: `${EXPIRING}-page-1` };
    });

    // Act
    const report = await startRotations(snsEvent(auditNotification()), first);

    // Assess
    expect(report).toMatchObject({ started: 1, continued: true });
    const invoke = lambda.commandCalls(InvokeCommand)[0].args[0].input;
    expect(invoke.FunctionName).toBe(FUNCTION_ARN);
    expect(invoke.InvocationType).toBe('Event');
    const payload = JSON.parse(Buffer.from(invoke.Payload as Uint8Array).toString('utf8'));
    expect(payload).toEqual({ continuation: { taskId: TASK, checks: [EXPIRING], checkIndex: 0, nextToken: `${EXPIRING}-page-1` } });

    // Act: the continuation, with plenty of time.
    const rest = await startRotations(payload, deps());

    // Assess
    expect(rest).toEqual({ taskId: TASK, started: 2, skipped: {}, continued: false });
    expect(executions.size).toBe(3);
  });

  it('always processes at least one page, so a margin larger than the timeout still progresses', async () => {
    pages(EXPIRING, [finding(id(1))], [finding(id(2))]);

    const report = await startRotations(snsEvent(auditNotification()), deps({ invocation: { functionArn: FUNCTION_ARN, remainingMs: () => 1_000 } }));

    expect(report).toMatchObject({ started: 1, continued: true });
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(1);
  });

  it('lets an AWS error escape (SNS retries; execution names keep the retry harmless)', async () => {
    iot.on(ListAuditFindingsCommand).rejects(awsErrors.throttled());

    await expect(startRotations(snsEvent(auditNotification()), deps())).rejects.toMatchObject({ name: 'ThrottlingException' });
  });

  const badInput: [string, unknown, RegExp][] = [
    ['an SNS message that is not JSON', snsEvent('{"taskId":'), /not JSON/],
    ['an SNS message that is a JSON array', snsEvent('[1,2]'), /not a JSON object/],
    ['a notification that is not an audit notification', snsEvent({ hello: 'world' }), /not a Device Defender audit notification/],
    ['an audit that did not complete', snsEvent(auditNotification({ taskStatus: 'FAILED' })), /is FAILED, not COMPLETED/],
    ['an audit whose task id is malformed', snsEvent(auditNotification({ taskId: 'a b' })), /not a Device Defender audit notification/],
    [
      'an audit where only other checks are non-compliant',
      snsEvent(auditNotification({ auditDetails: [{ checkName: 'CA_CERTIFICATE_EXPIRING_CHECK', checkRunStatus: 'COMPLETED_NON_COMPLIANT', nonCompliantResourcesCount: 1, totalResourcesCount: 1 }] })),
      /no non-compliant finding/,
    ],
    ['an event with no records', { Records: [] }, /neither an SNS event nor a continuation/],
    ['an SNS record without a message', { Records: [{ Sns: {} }] }, /no Message/],
    ['a string', 'hello', /not an object/],
    ['a continuation for an unconfigured check', { continuation: { taskId: TASK, checks: ['IOT_POLICY_OVERLY_PERMISSIVE_CHECK'], checkIndex: 0 } }, /not configured/],
    ['a continuation past its checks', { continuation: { taskId: TASK, checks: [EXPIRING], checkIndex: 1 } }, /checkIndex/],
    ['a continuation with a fractional checkIndex', { continuation: { taskId: TASK, checks: [EXPIRING], checkIndex: 0.5 } }, /no valid checkIndex/],
    ['a continuation with a negative checkIndex', { continuation: { taskId: TASK, checks: [EXPIRING], checkIndex: -1 } }, /no valid checkIndex/],
    ['a continuation whose nextToken is not a string', { continuation: { taskId: TASK, checks: [EXPIRING], checkIndex: 0, nextToken: 7 } }, /invalid nextToken/],
    ['a continuation without a taskId', { continuation: { checks: [EXPIRING], checkIndex: 0 } }, /no valid taskId/],
    ['an SNS record whose Message is not a string', { Records: [{ Sns: { Message: { taskId: TASK } } }] }, /no Message/],
  ];

  it.each(badInput)('reports %s and starts nothing, without throwing', async (_name, event, reason) => {
    // Act
    const report = await startRotations(event, deps());

    // Assess
    expect(report).toMatchObject({ started: 0, skipped: {}, continued: false, ignored: expect.stringMatching(reason) });
    expect(iot.calls()).toHaveLength(0);
    expect(sfn.calls()).toHaveLength(0);
    expect(db.calls()).toHaveLength(0);
  });

  it('reads AUDIT_CHECKS, defaulting to both certificate checks', () => {
    expect(parseAuditChecks(undefined)).toEqual([EXPIRING, AGE]);
    expect(parseAuditChecks(` ${AGE} ,${AGE}`)).toEqual([AGE]);
    expect(() => parseAuditChecks('DEVICE_CERTIFICATE_EXPIRING_CHECK,LOGGING_DISABLED_CHECK')).toThrow(/AUDIT_CHECKS/);
    expect(() => parseAuditChecks(' , ')).toThrow(/AUDIT_CHECKS/);
  });

  it('runs through the handler with its own ARN and remaining time from the context', async () => {
    // Prepare
    process.env.TABLE_NAME = 'rotations';
    process.env.STATE_MACHINE_ARN = STATE_MACHINE;
    process.env.AWS_REGION = 'us-east-1';
    delete process.env.AUDIT_CHECKS;
    pages(EXPIRING, [finding(id(1))], [finding(id(2))]);
    // The handler runs on the system clock: the execution starts now.
    sfn.on(StartExecutionCommand).callsFake(() => ({ executionArn: 'arn:x', startDate: new Date() }));

    // Act
    const report = await handler(snsEvent(auditNotification()), fakeContext({ remainingMs: () => 5_000 }));

    // Assess
    expect(report).toMatchObject({ taskId: TASK, started: 1, continued: true });
    expect(lambda.commandCalls(InvokeCommand)[0].args[0].input.FunctionName).toBe(FUNCTION_ARN);
  });
});

describe('start-rotations admission (pacing)', () => {
  /** 2 TPS DescribeCertificate × 0.9, one call per rotation: 1.8 rotations/s, started at 1.25 × that = one per 444 ms. */
  const SETTINGS = { ...DEFAULT_PACING, quotas: parseQuotasFile('{"quotas":{"iot:DescribeCertificate":{"rate":2}}}') };
  const START_INTERVAL_MS = 1000 / (1.8 * 1.25);
  let stored: Record<string, unknown> | undefined;

  beforeEach(() => {
    stored = undefined;
    db.on(GetCommand).callsFake(() => ({ Item: stored }));
    db.on(UpdateCommand).callsFake((input: { Key: { pk: string }; ExpressionAttributeValues: Record<string, unknown> }) => {
      if (input.Key.pk === 'pacing') stored = { pk: 'pacing', sk: 'budget', state: input.ExpressionAttributeValues[':state'], version: input.ExpressionAttributeValues[':next'] };
      return {};
    });
  });

  function pacedDeps(clock: FakeClock, deadlineMs: number, overrides: Partial<StartRotationsDeps> = {}) {
    const start = clock.now().getTime();
    return deps({
      clock,
      pacing: { store: new PacingStore({ db: clients.db(), tableName: 'rotations', clock }, SETTINGS), timeScale: 1 },
      invocation: { functionArn: FUNCTION_ARN, remainingMs: () => deadlineMs - (clock.now().getTime() - start) },
      ...overrides,
    });
  }

  /** Step Functions as the fake clock sees it: an execution starts when it is started. */
  function startsOn(clock: FakeClock): number[] {
    const startTimes: number[] = [];
    sfn.on(StartExecutionCommand).callsFake(({ name }: { name: string }) => {
      if (executions.has(name)) throw awsErrors.named('ExecutionAlreadyExists', `Execution Already Exists: '${name}'`);
      executions.add(name);
      startTimes.push(clock.now().getTime());
      return { executionArn: `arn:${name}`, startDate: clock.now() };
    });
    return startTimes;
  }

  it('starts each rotation only when admitted: at the start pace, never faster', async () => {
    // Prepare: one start in flight at a time, so the fake clock orders them.
    pages(EXPIRING, [finding(id(1)), finding(id(2)), finding(id(3)), finding(id(4))]);
    const clock = fakeClock();
    const startTimes = startsOn(clock);

    // Act
    const report = await startRotations(snsEvent(auditNotification()), pacedDeps(clock, 250_000, { concurrency: 1 }));

    // Assess
    expect(report).toMatchObject({ started: 4, continued: false });
    const gaps = startTimes.slice(1).map((t, i) => t - startTimes[i]);
    expect(gaps).toHaveLength(3);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(Math.floor(START_INTERVAL_MS));
    expect(report.admissionWaitMs).toBeGreaterThanOrEqual(3 * Math.floor(START_INTERVAL_MS));
    expect(JSON.parse(String(stored?.state)).startTatMs).toBeGreaterThan(0);
  });

  it('hands the rest of a page to another invocation when admission outlasts its time, and starts nothing twice', async () => {
    // Prepare: time for about three starts before the 60 s margin.
    pages(EXPIRING, [finding(id(1)), finding(id(2)), finding(id(3)), finding(id(4)), finding(id(5)), finding(id(6))]);
    const clock = fakeClock();
    startsOn(clock);

    // Act
    const first = await startRotations(snsEvent(auditNotification()), pacedDeps(clock, 60_000 + 1_000));
    const continuation = JSON.parse(new TextDecoder().decode(lambda.commandCalls(InvokeCommand)[0].args[0].input.Payload as Uint8Array));
    const second = await startRotations(continuation, pacedDeps(clock, 250_000));

    // Assess
    expect(first).toMatchObject({ continued: true });
    expect(first.started).toBeGreaterThanOrEqual(1);
    expect(first.started).toBeLessThan(6);
    expect(continuation.continuation).toMatchObject({ taskId: TASK, checkIndex: 0, skip: first.started });
    expect(second).toEqual(expect.objectContaining({ started: 6 - first.started, continued: false, skipped: {} }));
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(6);
    // The half-done page counts once in the audit report.
    const pagesAdded = db.commandCalls(UpdateCommand).filter((c) => c.args[0].input.Key?.pk === `audit#${TASK}` && /pages :one/.test(String(c.args[0].input.UpdateExpression)));
    expect(pagesAdded).toHaveLength(1);
  });

  it('asks no admission for findings it skips without a call', async () => {
    pages(EXPIRING, [finding(), { ...finding(id(1)), isSuppressed: true }, finding(id(2))]);
    const clock = fakeClock();
    const report = await startRotations(snsEvent(auditNotification()), pacedDeps(clock, 250_000));
    expect(report).toMatchObject({ started: 1, skipped: { NOT_A_DEVICE_CERTIFICATE: 1, SUPPRESSED: 1 } });
    expect(clock.sleeps).toEqual([]);
  });

  it('starts unpaced, and says so, when the budget item cannot be read', async () => {
    pages(EXPIRING, [finding(id(1)), finding(id(2))]);
    db.on(GetCommand).rejects(new Error('table unreachable'));
    db.on(UpdateCommand, { Key: PACING_KEY }).rejects(new Error('table unreachable'));
    const clock = fakeClock();
    const d = pacedDeps(clock, 250_000);
    const report = await startRotations(snsEvent(auditNotification()), d);
    expect(report).toMatchObject({ started: 2 });
    expect(d.telemetry.lines).toContainEqual(expect.objectContaining({ level: 'error', message: 'pacing budget unavailable; starting unpaced' }));
  });

  it('refuses a continuation with a bad skip', () => {
    expect(parseStartEvent({ continuation: { taskId: TASK, checks: [EXPIRING], checkIndex: 0, skip: -1 } }, [EXPIRING])).toMatchObject({ ok: false, reason: 'continuation has an invalid skip' });
  });
});

describe('start-rotations on the renewal calendar', () => {
  const SETTINGS = { ...DEFAULT_PACING, quotas: parseQuotasFile('{"quotas":{"iot:DescribeCertificate":{"rate":2}}}') };
  /** Spread over at least 10 days; never deferred within 7 days of expiry; a sweep every 15 min. */
  const CALENDAR = { windowS: 10 * DAY_S, marginS: 7 * DAY_S, sweepS: 900 };
  const DEVICES = 20;
  /** The rotation table as DynamoDB would keep the calendar's items (pk → sk → item). */
  let table: Map<string, Map<string, Record<string, unknown>>>;

  const items = (prefix: string): Record<string, unknown>[] => [...table.entries()].filter(([pk]) => pk.startsWith(prefix)).flatMap(([, rows]) => [...rows.values()]);

  beforeEach(() => {
    table = new Map();
    const put = (item: Record<string, unknown>): void => {
      const rows = table.get(String(item.pk)) ?? new Map();
      rows.set(String(item.sk), item);
      table.set(String(item.pk), rows);
    };
    const get = (key: { pk: string; sk: string }): Record<string, unknown> | undefined => table.get(key.pk)?.get(key.sk);
    db.on(GetCommand).callsFake(({ Key }) => ({ Item: get(Key) }));
    db.on(PutCommand).callsFake(({ Item }) => {
      put(Item);
      return {};
    });
    db.on(DeleteCommand).callsFake(({ Key }) => {
      table.get(Key.pk)?.delete(Key.sk);
      return {};
    });
    db.on(QueryCommand).callsFake(({ ExpressionAttributeValues: v, Limit }) => {
      const rows = [...(table.get(v[':pk'])?.values() ?? [])].filter((row) => v[':until'] === undefined || String(row.sk) <= v[':until']);
      return { Items: rows.sort((a, b) => String(a.sk).localeCompare(String(b.sk))).slice(0, Limit ?? rows.length) };
    });
    db.on(UpdateCommand).callsFake(({ Key, UpdateExpression, ExpressionAttributeValues: v, ConditionExpression }) => {
      const item = get(Key) ?? { ...Key };
      if (Key.pk === 'pacing') Object.assign(item, { state: v[':state'], version: v[':next'] });
      else if (Key.pk === 'calendar' && /ADD #days/.test(UpdateExpression)) item.days = new Set([...((item.days as Set<string>) ?? []), ...(v[':days'] as Set<string>)]);
      else if (Key.pk === 'calendar' && /DELETE #days/.test(UpdateExpression)) item.days = new Set([...((item.days as Set<string>) ?? [])].filter((day) => !(v[':days'] as Set<string>).has(day)));
      else if (Key.pk === 'calendar') {
        if (ConditionExpression && item.sweepUntil !== undefined && !(Number(item.sweepUntil) < v[':now']) && item.sweepLease !== v[':lease']) throw awsErrors.named('ConditionalCheckFailedException', 'The conditional request failed');
        Object.assign(item, { sweepLease: v[':lease'], sweepUntil: v[':until'] });
      } else if (/cohortStartMs/.test(UpdateExpression)) {
        item.cohortStartMs ??= v[':start'];
        item.cohortSpreadS ??= v[':spread'];
        item.cohortDevices ??= v[':devices'];
      }
      put(item);
      return { Attributes: item };
    });
  });

  function calendarDeps(clock: FakeClock, overrides: Partial<StartRotationsDeps> = {}) {
    // Step Functions dates each execution by the fake clock (the default stub's fixed date would read as started before).
    sfn.on(StartExecutionCommand).callsFake(({ name }: { name: string }) => {
      if (executions.has(name)) throw awsErrors.named('ExecutionAlreadyExists', `Execution Already Exists: '${name}'`);
      executions.add(name);
      return { executionArn: `arn:${name}`, startDate: clock.now() };
    });
    return deps({
      clock,
      pacing: { store: new PacingStore({ db: clients.db(), tableName: 'rotations', clock }, SETTINGS), timeScale: 1 },
      calendar: CALENDAR,
      invocation: { functionArn: FUNCTION_ARN, remainingMs: () => 250_000 },
      ...overrides,
    });
  }

  const notification = () => snsEvent(auditNotification({ auditDetails: [{ checkName: EXPIRING, checkRunStatus: 'COMPLETED_NON_COMPLIANT', nonCompliantResourcesCount: DEVICES + 1 }] } as never));

  it('defers what the calendar places after the next sweep, starts what expires within the margin now, and the sweeps start the rest on their day', async () => {
    // Prepare: 20 certificates the audit flagged at once, and one that expires in 3 days.
    const clock = fakeClock();
    const t0 = clock.now().getTime();
    const soon = { ...finding(id(40)), nonCompliantResource: { ...finding(id(40)).nonCompliantResource, additionalInfo: { EXPIRATION_TIME: new Date(t0 + 3 * DAY_S * 1000).toISOString() } } };
    const flagged = Array.from({ length: DEVICES }, (_, i) => finding(id(i + 1)));
    pages(EXPIRING, [...flagged.slice(0, 10), soon], flagged.slice(10));

    // Act: the notification.
    const report = await startRotations(notification(), calendarDeps(clock));

    // Assess: only the expiring one started; the rest wait on their day, in the table.
    expect(report).toMatchObject({ started: 1, skipped: { DEFERRED: DEVICES }, continued: false });
    expect(sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.name)).toEqual([auditExecutionName('thing-40', id(40), TASK)]);
    const deferred = items('deferred#');
    expect(deferred).toHaveLength(DEVICES);
    // Each at its deterministic place in the cohort's 10 days, and no later (no 10-TPS call was spent on them).
    for (const start of deferred) {
      expect(Date.parse(String(start.startAt))).toBe(Math.round(t0 + jitterOf(String(start.certificateId)) * CALENDAR.windowS * 1000));
      expect(start).toMatchObject({ auditTaskId: TASK, checkName: EXPIRING });
    }
    expect(iot.commandCalls(ListPrincipalThingsCommand)).toHaveLength(1);
    const cohort = get(`audit#${TASK}`);
    expect(cohort).toMatchObject({ cohortStartMs: t0, cohortSpreadS: CALENDAR.windowS, cohortDevices: DEVICES + 1 });

    // Act: a redelivered notification changes nothing.
    clock.advance(60_000);
    await startRotations(notification(), calendarDeps(clock));
    expect(items('deferred#')).toHaveLength(DEVICES);
    expect(get(`audit#${TASK}`)).toMatchObject({ cohortStartMs: t0 });

    // Act: the sweep on day 5 starts exactly those due by then (plus the sweep's 15 min).
    clock.advance(5 * DAY_S * 1000 - 60_000);
    const dueByDay5 = deferred.filter((start) => Date.parse(String(start.startAt)) <= clock.now().getTime() + CALENDAR.sweepS * 1000).length;
    const day5 = await startRotations({ sweep: 'calendar' }, calendarDeps(clock));
    expect(day5).toMatchObject({ started: dueByDay5, continued: false });
    expect(items('deferred#')).toHaveLength(DEVICES - dueByDay5);

    // Act: the sweep after the spread starts every other one, and the calendar forgets its days.
    clock.advance(6 * DAY_S * 1000);
    const day11 = await startRotations({ sweep: 'calendar' }, calendarDeps(clock));
    expect(day11).toMatchObject({ started: DEVICES - dueByDay5 });
    expect(items('deferred#')).toEqual([]);
    expect([...((get('calendar') ?? {}).days as Set<string>)]).toEqual([]);
    expect(new Set(sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.name)).size).toBe(DEVICES + 1);
  });

  it('sweeps with one read and no lease when nothing is deferred', async () => {
    const report = await startRotations({ sweep: 'calendar' }, calendarDeps(fakeClock()));
    expect(report).toMatchObject({ started: 0, ignored: 'nothing is deferred' });
    expect(db.commandCalls(GetCommand)).toHaveLength(1);
    expect(db.commandCalls(UpdateCommand)).toHaveLength(0);
  });

  it('lets one sweep at a time hold the lease, and keeps a deferred start whose start failed', async () => {
    const clock = fakeClock();
    pages(EXPIRING, Array.from({ length: 4 }, (_, i) => finding(id(i + 1))));
    await startRotations(notification(), calendarDeps(clock));
    expect(items('deferred#')).toHaveLength(4);
    clock.advance(11 * DAY_S * 1000);

    // Another sweep holds an unexpired lease: this one starts nothing.
    table.set('calendar', new Map([['days', { ...get('calendar'), sweepLease: 'other', sweepUntil: clock.now().getTime() + 60_000 }]]));
    expect(await startRotations({ sweep: 'calendar' }, calendarDeps(clock))).toMatchObject({ started: 0, ignored: 'another sweep is running' });

    // Its lease ran out; StartExecution fails: the sweep fails, the starts stay deferred, the lease is given back.
    clock.advance(120_000);
    const failing = calendarDeps(clock);
    sfn.on(StartExecutionCommand).rejects(awsErrors.named('ServiceUnavailable', 'try again'));
    await expect(startRotations({ sweep: 'calendar' }, failing)).rejects.toThrow('try again');
    expect(items('deferred#')).toHaveLength(4);
    expect(get('calendar')?.sweepUntil).toBe(0);
  });

  function get(pk: string): Record<string, unknown> | undefined {
    return table.get(pk)?.values().next().value;
  }
});
