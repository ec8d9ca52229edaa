import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoTClient, ListThingsCommand } from '@aws-sdk/client-iot';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { trustPush, type TrustPushDeps } from '../../../cli/trust/push.js';
import { formatTrustStatus, rowOf } from '../../../cli/trust/status.js';
import { TrustStatus, trustUpdateExecutionName, type TrustRecord } from '../../../domain/index.js';
import { awsErrors, clients } from '../../fixtures/aws.js';
import { createCa, issueCertificate, newEcKeyPem } from '../device-sim/pki.js';

const sfn = mockClient(SFNClient);
const iot = mockClient(IoTClient);
const ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:rotor-trust-update';
const dir = mkdtempSync(join(tmpdir(), 'rotor-trust-push-'));
let bundleFile: string;
let leafFile: string;

beforeAll(async () => {
  const ca = await createCa('Rotor Test Server CA 2');
  bundleFile = join(dir, 'bundle.pem');
  writeFileSync(bundleFile, ca.certPem);
  leafFile = join(dir, 'leaf.pem');
  writeFileSync(leafFile, await issueCertificate(ca, newEcKeyPem(), 'server.local', { server: true }));
});

beforeEach(() => {
  sfn.reset();
  iot.reset();
});

function deps(): TrustPushDeps & { slept: number[] } {
  const slept: number[] = [];
  let nowMs = Date.now();
  return {
    sfn: clients.sfn(),
    iot: clients.iot(),
    trustStateMachineArn: ARN,
    now: () => new Date(nowMs),
    sleep: async (ms) => {
      slept.push(ms);
      nowMs += ms;
    },
    slept,
  };
}

describe('rotor trust push (C1, C2)', () => {
  it('refuses a bundle that is not CA certificates, with the reason, and starts nothing', async () => {
    await expect(trustPush({ bundleFile: leafFile, things: ['sensor-1'] }, deps())).rejects.toThrow(/refused, nothing was sent: certificate 1 .* is not a CA certificate/);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it('starts one update per device, named by thing, bundle and push, with the checked bundle', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: 'x' });
    const report = await trustPush({ bundleFile, things: ['sensor-1', 'sensor-2'], pushId: 'p1' }, deps());
    const calls = sfn.commandCalls(StartExecutionCommand).map((call) => call.args[0].input);
    expect(calls.map((c) => c.name)).toEqual(['sensor-1', 'sensor-2'].map((t) => trustUpdateExecutionName(t, report.bundleId, 'p1')));
    expect(JSON.parse(calls[0].input ?? '{}')).toEqual(expect.objectContaining({ thingName: 'sensor-1', bundleId: report.bundleId, pushId: 'p1', bundle: expect.stringContaining('BEGIN CERTIFICATE') }));
    expect(report.started).toEqual(['sensor-1', 'sensor-2']);
  });

  it('counts a repeated push as already started', async () => {
    sfn.on(StartExecutionCommand).rejects(awsErrors.named('ExecutionAlreadyExists'));
    const report = await trustPush({ bundleFile, things: ['sensor-1'], pushId: 'p1' }, deps());
    expect(report.alreadyStarted).toEqual(['sensor-1']);
  });

  it('paces the starts: --max-per-second spaces them, the budgets bound a whole fleet', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: 'x' });
    iot.on(ListThingsCommand).resolves({ things: Array.from({ length: 20 }, (_, i) => ({ thingName: `sensor-${i}` })) });
    const d = deps();
    const report = await trustPush({ bundleFile, all: true, maxPerSecond: 5 }, d);
    expect(report.started).toHaveLength(20);
    // 20 starts at 5 per second: the last one 19 gaps of 200 ms after the first.
    expect(d.slept.reduce((a, b) => a + b, 0)).toBeCloseTo(19 * 200, 0);
  });
});

describe('rotor trust status rows', () => {
  const record = (fields: Partial<TrustRecord>): TrustRecord => ({
    pk: 'thing#t', sk: 'trust', thingName: 't', trustStatus: TrustStatus.InProgress, step: 's', updateId: 'u', executionArn: 'e', pushId: 'p', bundleId: 'b'.repeat(64), startedAt: '', updatedAt: '', ...fields,
  });
  it.each([
    [undefined, 'never-asked'],
    [record({}), 'pending'],
    [record({ trustStatus: TrustStatus.Updated, currentBundleId: 'b'.repeat(64) }), 'updated'],
    [record({ trustStatus: TrustStatus.Refused, reason: 'TRUST_CONNECT_FAILED' }), 'refused'],
    [record({ trustStatus: TrustStatus.NotUpdated, reason: 'NO_ACK' }), 'not-updated'],
    [record({ bundleId: 'a'.repeat(64), trustStatus: TrustStatus.Updated, currentBundleId: 'a'.repeat(64) }), 'on-other-bundle'],
  ])('%#: classifies a record as %s', (rec, state) => {
    expect(rowOf('t', rec, 'b'.repeat(64)).state).toBe(state);
  });

  it('counts a device that acked after its update timed out as updated, and says so', () => {
    // Prepare: the update ended NOT_UPDATED (NO_ACK, escalated), then the device's ack came.
    const late = record({ trustStatus: TrustStatus.NotUpdated, reason: 'NO_ACK', currentBundleId: 'b'.repeat(64), ackedLateAt: '2026-12-01T05:00:09.000Z' });
    const row = rowOf('t', late, 'b'.repeat(64));
    const report = { bundleId: 'b'.repeat(64), counts: { devices: 1, updated: 1, refused: 0, notUpdated: 0, pending: 0, neverAsked: 0, onOtherBundle: 0, ackedLate: 1 }, devices: [row] };
    // Act / Assess
    expect(row).toMatchObject({ state: 'updated', reason: 'NO_ACK', ackedLateAt: '2026-12-01T05:00:09.000Z' });
    expect(formatTrustStatus(report)).toEqual([
      `bundle ${'b'.repeat(64)}`,
      'devices 1: updated 1 (1 acked late), refused 0, not updated 0, pending 0, never asked 0',
      '  t  updated  acked late at 2026-12-01T05:00:09.000Z, after its update timed out (escalated NO_ACK): it is on the bundle',
    ]);
    // A late ack of another bundle is not this one.
    expect(rowOf('t', { ...late, currentBundleId: 'a'.repeat(64) }, 'b'.repeat(64)).state).toBe('not-updated');
  });
});
