import { DescribeCertificateCommand, IoTClient, ListCertificatesByCACommand, ListPrincipalThingsCommand, type CertificateStatus } from '@aws-sdk/client-iot';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { caRolloverExecutionName, CaRolloverStatus, emptyTally, MAX_LISTED } from '../../../domain/ca-rollover.js';
import { moveDevices, type MoveDevicesDeps } from '../../../functions/ca-move-devices.js';
import { awsErrors, clients } from '../../fixtures/aws.js';
import { fakeClock } from '../../fixtures/clock.js';
import { recordingTelemetry } from '../../fixtures/telemetry.js';

const iot = mockClient(IoTClient);
const sfn = mockClient(SFNClient);
const db = mockClient(DynamoDBDocumentClient);

const OLD = 'a'.repeat(64);
const ROLLOVER = 'ca-rollover-0123456789abcdef01234567';
const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:rotor-rotate-device';
const id = (n: number): string => n.toString(16).padStart(64, '0');
const arn = (certId: string): string => `arn:aws:iot:us-east-1:123456789012:cert/${certId}`;
const cas = { oldCaCertificateId: OLD, newCaCertificateId: 'b'.repeat(64), newPrivateCaArn: 'arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555' };

function event(pass: Record<string, unknown> = {}, startedAt = '2026-03-01T11:00:00.000Z'): Record<string, unknown> {
  return { rolloverId: ROLLOVER, executionArn: 'arn:aws:states:us-east-1:123456789012:execution:rotor-ca-rollover:x', cas, startedAt, maxWaitSeconds: 7200, pass };
}

function deps(overrides: Partial<MoveDevicesDeps> = {}): MoveDevicesDeps {
  return {
    db: clients.db(),
    tableName: 'rotations',
    iot: clients.iot(),
    sfn: clients.sfn(),
    stateMachineArn: STATE_MACHINE,
    clock: fakeClock(),
    telemetry: recordingTelemetry(),
    invocation: { remainingMs: () => 250_000 },
    ...overrides,
  };
}

/** Certificates under the old CA, in pages; certificate n belongs to thing-n. */
function pages(...contents: { n: number; status?: string }[][]): void {
  contents.forEach((page, i) => {
    iot.on(ListCertificatesByCACommand, { caCertificateId: OLD, marker: i === 0 ? undefined : `m-${i}` }).resolves({
      certificates: page.map(({ n, status }) => ({ certificateId: id(n), certificateArn: arn(id(n)), status: (status ?? 'ACTIVE') as CertificateStatus })),
      nextMarker: i < contents.length - 1 ? `m-${i + 1}` : undefined,
    });
    for (const { n, status } of page) {
      iot.on(ListPrincipalThingsCommand, { principal: arn(id(n)) }).resolves({ things: [`thing-${n}`] });
      iot.on(DescribeCertificateCommand, { certificateId: id(n) }).resolves({ certificateDescription: { certificateId: id(n), certificateArn: arn(id(n)), status: (status ?? 'ACTIVE') as CertificateStatus } });
    }
  });
}

/** The device's rotation retires certificate n after the page listed it ACTIVE: INACTIVE, then detached, then deleted. */
function retiredSinceListing(n: number, how: 'inactive' | 'deleted'): void {
  iot.on(ListPrincipalThingsCommand, { principal: arn(id(n)) }).resolves({ things: [] });
  if (how === 'deleted') iot.on(DescribeCertificateCommand, { certificateId: id(n) }).rejects(awsErrors.named('ResourceNotFoundException'));
  else iot.on(DescribeCertificateCommand, { certificateId: id(n) }).resolves({ certificateDescription: { certificateId: id(n), certificateArn: arn(id(n)), status: 'INACTIVE' } });
}

beforeEach(() => {
  iot.reset();
  sfn.reset();
  db.reset();
  db.on(UpdateCommand).resolves({});
  // Started now, by default.
  sfn.on(StartExecutionCommand).callsFake((input: { name: string }) => ({ executionArn: `${STATE_MACHINE}:${input.name}`, startDate: new Date('2026-03-01T12:00:00.000Z') }));
});

describe('Move devices', () => {
  it('starts one rotate-device execution per ACTIVE certificate under the old CA, across pages, and waits while they run', async () => {
    pages([{ n: 1 }, { n: 2, status: 'INACTIVE' }], [{ n: 3 }]);

    const result = await moveDevices(event(), deps());

    expect(result).toMatchObject({ more: false, verdict: 'wait', tally: { left: 2, started: 2, inFlight: 0, stuck: 0 } });
    const starts = sfn.commandCalls(StartExecutionCommand).map((call) => call.args[0].input);
    expect(starts.map((input) => input.name)).toEqual([caRolloverExecutionName(ROLLOVER, 'thing-1', id(1)), caRolloverExecutionName(ROLLOVER, 'thing-3', id(3))]);
    expect(JSON.parse(starts[0].input ?? '{}')).toEqual({ thingName: 'thing-1', certificateId: id(1), trigger: 'ca-rollover', certificateThings: ['thing-1'] });
    // The progress item: devices at the first complete pass, and now; only this rollover's.
    const write = db.commandCalls(UpdateCommand)[0].args[0].input;
    expect(write.ExpressionAttributeValues).toMatchObject({ ':left': 2, ':status': CaRolloverStatus.Moving, ':rid': ROLLOVER });
    expect(write.ConditionExpression).toBe('rolloverId = :rid');
  });

  it('counts a running rotation of an earlier pass as in flight, and one that ended under the old CA as stuck, then escalates once none is running', async () => {
    pages([{ n: 1 }, { n: 2 }]);
    sfn.on(StartExecutionCommand, { name: caRolloverExecutionName(ROLLOVER, 'thing-1', id(1)) }).resolves({ executionArn: 'x', startDate: new Date('2026-03-01T11:05:00.000Z') });
    sfn.on(StartExecutionCommand, { name: caRolloverExecutionName(ROLLOVER, 'thing-2', id(2)) }).rejects(awsErrors.named('ExecutionAlreadyExists'));

    const waiting = await moveDevices(event(), deps());
    expect(waiting).toMatchObject({ verdict: 'wait', tally: { left: 2, started: 0, inFlight: 1, stuck: 1, stuckDevices: [{ thingName: 'thing-2', certificateId: id(2) }] } });

    sfn.on(StartExecutionCommand, { name: caRolloverExecutionName(ROLLOVER, 'thing-1', id(1)) }).rejects(awsErrors.named('ExecutionAlreadyExists'));
    const stuck = await moveDevices(event(), deps());
    expect(stuck.verdict).toBe('escalate');
    expect(stuck.escalation?.subject).toMatch(/^Rotor: CA rollover of aaaaaaaaaaaa.* stopped \(CA_DEVICES_LEFT\)$/);
    expect(stuck.escalation?.message).toContain(`thing-1 ${id(1)}`);
    expect(stuck.escalation?.message).toContain(`thing-2 ${id(2)}`);
    expect(db.commandCalls(UpdateCommand).at(-1)?.args[0].input.ExpressionAttributeValues).toMatchObject({ ':status': CaRolloverStatus.DevicesLeft, ':left': 2 });
  });

  it('says deactivate when nothing ACTIVE is left under the old CA', async () => {
    pages([{ n: 1, status: 'INACTIVE' }, { n: 2, status: 'REVOKED' }]);
    const result = await moveDevices(event(), deps());
    expect(result).toMatchObject({ more: false, verdict: 'deactivate', tally: { left: 0 } });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it('escalates past the deadline even while rotations still run', async () => {
    pages([{ n: 1 }]);
    const result = await moveDevices(event({}, '2026-02-20T00:00:00.000Z'), deps());
    expect(result.verdict).toBe('escalate');
  });

  it('lists a certificate that has no thing: the CA must stay ACTIVE for it', async () => {
    pages([{ n: 1 }]);
    iot.on(ListPrincipalThingsCommand, { principal: arn(id(1)) }).resolves({ things: [] });
    const result = await moveDevices(event(), deps());
    expect(result.tally).toMatchObject({ left: 1, stuck: 1, stuckDevices: [{ thingName: '(no thing)', certificateId: id(1) }] });
  });

  it.each(['inactive', 'deleted'] as const)('does not count a certificate its rotation retired after the listing (%s): the last device to move does not make the rollover escalate', async (how) => {
    // Prepare: the pass lists thing-1's certificate ACTIVE; by the time it looks at its things, Retire has set it INACTIVE and detached it.
    pages([{ n: 1 }]);
    retiredSinceListing(1, how);
    // Act
    const result = await moveDevices(event(), deps());
    // Assess
    expect(result).toMatchObject({ more: false, verdict: 'deactivate', tally: { left: 0, stuck: 0, stuckDevices: [] } });
    expect(result.escalation).toBeUndefined();
    expect(db.commandCalls(UpdateCommand)[0].args[0].input.ExpressionAttributeValues).toMatchObject({ ':left': 0, ':status': CaRolloverStatus.Moving });
  });

  it('does not count as stuck a device whose rotation ended after the listing and retired the certificate', async () => {
    // Prepare: thing-1 still held its certificate when the pass looked, then its rotation retired it and ended (ExecutionAlreadyExists); thing-2 is really stuck.
    pages([{ n: 1 }, { n: 2 }]);
    sfn.on(StartExecutionCommand).rejects(awsErrors.named('ExecutionAlreadyExists'));
    iot.on(DescribeCertificateCommand, { certificateId: id(1) }).resolves({ certificateDescription: { certificateId: id(1), certificateArn: arn(id(1)), status: 'INACTIVE' } });
    // Act
    const result = await moveDevices(event(), deps());
    // Assess
    expect(result).toMatchObject({ verdict: 'escalate', tally: { left: 1, stuck: 1, stuckDevices: [{ thingName: 'thing-2', certificateId: id(2) }] } });
    expect(result.escalation?.message).not.toContain(id(1));
  });

  it('asks no more than the listing while the rotations run', async () => {
    // Prepare
    pages([{ n: 1 }, { n: 2 }]);
    // Act
    await moveDevices(event(), deps());
    // Assess: DescribeCertificate only where a certificate would count as stuck.
    expect(iot.commandCalls(DescribeCertificateCommand)).toHaveLength(0);
  });

  it('hands the rest of the pass to the next invocation when time runs out, and continues from the marker with the tally so far', async () => {
    pages([{ n: 1 }], [{ n: 2 }], [{ n: 3 }]);
    let remaining = 250_000;
    const first = await moveDevices(event(), deps({ invocation: { remainingMs: () => (remaining -= 100_000) } }));
    expect(first).toEqual({ more: true, marker: 'm-2', tally: expect.objectContaining({ left: 2, started: 2 }) });
    expect(db.commandCalls(UpdateCommand)).toHaveLength(0);

    const second = await moveDevices(event(first as unknown as Record<string, unknown>), deps());
    expect(second).toMatchObject({ more: false, verdict: 'wait', tally: { left: 3, started: 3 } });
  });

  it('names at most MAX_LISTED stuck devices and counts the rest', async () => {
    const many = Array.from({ length: MAX_LISTED + 5 }, (_, i) => ({ n: i + 1 }));
    pages(many);
    sfn.on(StartExecutionCommand).rejects(awsErrors.named('ExecutionAlreadyExists'));
    const result = await moveDevices(event(), deps());
    expect(result.tally.stuck).toBe(MAX_LISTED + 5);
    expect(result.tally.stuckDevices).toHaveLength(MAX_LISTED);
    expect(result.escalation?.message).toContain('… and 5 more');
  });

  it('refuses a tally that is not one', async () => {
    await expect(moveDevices(event({ tally: { ...emptyTally(), left: -1 } }), deps())).rejects.toMatchObject({ name: 'InvalidInput' });
  });
});
