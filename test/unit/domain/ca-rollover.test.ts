import { auditRollover, caRolloverExecutionName, caRolloverName, devicesMoved, emptyTally, MAX_LISTED, parseCaReference, passVerdict, rolloverEscalationSubject, tallyDevice, CaRolloverReason, noSuccessorMessage } from '../../../domain/ca-rollover.js';

const device = (n: number) => ({ thingName: `thing-${n}`, certificateId: n.toString(16).padStart(64, '0') });

describe('the rollover verdict after a complete pass', () => {
  it('deactivates only when nothing is left, waits while rotations run and time is left, else escalates', () => {
    expect(passVerdict(emptyTally(), true)).toBe('deactivate');
    const running = tallyDevice(emptyTally(), 'inFlight', device(1));
    expect(passVerdict(running, false)).toBe('wait');
    expect(passVerdict(tallyDevice(emptyTally(), 'started', device(1)), false)).toBe('wait');
    expect(passVerdict(running, true)).toBe('escalate');
    expect(passVerdict(tallyDevice(emptyTally(), 'stuck', device(1)), false)).toBe('escalate');
  });

  it('counts every device left and names at most MAX_LISTED of the stuck ones', () => {
    let tally = emptyTally();
    for (let n = 0; n < MAX_LISTED + 3; n++) tally = tallyDevice(tally, 'stuck', device(n));
    tally = tallyDevice(tally, 'inFlight', device(999));
    expect(tally).toMatchObject({ left: MAX_LISTED + 4, stuck: MAX_LISTED + 3, inFlight: 1 });
    expect(tally.stuckDevices).toHaveLength(MAX_LISTED);
  });

  it('reports devices moved as those under the old CA at the start that are not any more', () => {
    expect(devicesMoved({ devicesAtStart: 10, devicesLeft: 3 })).toBe(7);
    expect(devicesMoved({ devicesAtStart: 2, devicesLeft: 5 })).toBe(0);
    expect(devicesMoved({})).toBe(0);
  });
});

describe('names', () => {
  it('gives each (rollover, thing, certificate) its own execution name, within Step Functions limits', () => {
    const a = caRolloverExecutionName('r1', 'sensor:1', 'a'.repeat(64));
    expect(a).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    expect(caRolloverExecutionName('r1', 'sensor:1', 'a'.repeat(64))).toBe(a);
    expect(caRolloverExecutionName('r2', 'sensor:1', 'a'.repeat(64))).not.toBe(a);
    expect(caRolloverExecutionName('r1', 'sensor:1', 'b'.repeat(64))).not.toBe(a);
    expect(caRolloverExecutionName('r1', 'x'.repeat(128), 'a'.repeat(64)).length).toBeLessThanOrEqual(80);
    expect(caRolloverName('old', 'new', 'task-1')).toMatch(/^ca-rollover-[0-9a-f]{24}$/);
    expect(caRolloverName('old', 'new', 'task-1')).not.toBe(caRolloverName('old', 'new', 'task-2'));
  });

  it('keeps the escalation subject within SNS limits', () => {
    const subject = rolloverEscalationSubject('a'.repeat(64), CaRolloverReason.DevicesLeft);
    expect(subject.length).toBeLessThanOrEqual(100);
    expect(subject).toMatch(/^[\x20-\x7e]+$/);
  });
});

describe('CA references', () => {
  it('takes an IoT CA certificate id or a Private CA ARN, and says what it expects otherwise', () => {
    expect(parseCaReference('a'.repeat(64), 'OLD')).toEqual({ kind: 'iot', caCertificateId: 'a'.repeat(64) });
    const arn = 'arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555';
    expect(parseCaReference(arn, 'NEW')).toEqual({ kind: 'private-ca', arn });
    expect(parseCaReference('CA-1', 'OLD')).toEqual({ error: expect.stringContaining('OLD must be an IoT CA certificate id') });
  });
});

describe('auditRollover', () => {
  const CA = 'a'.repeat(64);
  const NEXT = 'arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/1a2b3c4d-5b7d-4e2a-9c61-2d8f4b7a6e10';

  it('rolls the flagged CA over to the successor, under a name fixed by CA, successor and audit', () => {
    // Act
    const first = auditRollover(CA, 'task-1', NEXT);
    // Assess
    expect(first.input).toEqual({ oldCa: CA, newCa: NEXT, trigger: 'audit', auditTaskId: 'task-1' });
    expect(auditRollover(CA, 'task-1', ` ${NEXT} `).name).toBe(first.name);
    expect(auditRollover(CA, 'task-2', NEXT).name).not.toBe(first.name);
    expect(auditRollover('b'.repeat(64), 'task-1', NEXT).name).not.toBe(first.name);
  });

  it('has no NEW when no successor is configured, and says what to do in its escalation', () => {
    // Act
    const none = auditRollover(CA, 'task-1', '');
    // Assess
    expect(none.input).toEqual({ oldCa: CA, trigger: 'audit', auditTaskId: 'task-1' });
    expect(auditRollover(CA, 'task-1', undefined).name).toBe(none.name);
    expect(noSuccessorMessage(CA, 'task-1')).toMatch(/no successor CA is configured[\s\S]*next_private_ca_arn[\s\S]*rotor ca rollover --from a{64}/);
  });
});
