import { DynamoDBDocumentClient, GetCommand, UpdateCommand, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { Readable } from 'node:stream';
import { DescribeCertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import { IssueCertificateCommand, PrivateCaClient } from '../../../../functions/aws/acm-pca.js';
import { AdmissionController, Bucket, CallSite, DEFAULT_PACING, PACING_KEY, parseQuotasFile, type PacingSettings } from '../../../../domain/pacing/index.js';
import { PacingContention, PacingStore } from '../../../../functions/core/pacing-store.js';
import { observeThrottles, pacedStep, throttleObserver, type Pacing } from '../../../../functions/core/pacing.js';
import { awsErrors, clients } from '../../../fixtures/aws.js';
import { fakeClock, type FakeClock } from '../../../fixtures/clock.js';
import { recordingTelemetry } from '../../../fixtures/telemetry.js';

const db = mockClient(DynamoDBDocumentClient);

const CA = 'arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/0f3a8c1e-5b7d-4e2a-9c61-2d8f4b7a6e10';
const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' };

/** Two DescribeCertificate-bound sites at 2 TPS × 0.9: one Issue certificate every 555.6 ms. */
const SETTINGS: PacingSettings = { ...DEFAULT_PACING, quotas: parseQuotasFile('{"quotas":{"iot:DescribeCertificate":{"rate":2}}}') };
const INTERVAL_MS = 1000 / 1.8;

/** The pacing item as DynamoDB would keep it, with UpdateItem's condition enforced. */
let stored: Record<string, unknown> | undefined;
let loseNextRaces: number;
/** False: a refused write does not carry the current item (an implementation without ALL_OLD). */
let returnsOldItem: boolean;

/** A refused write as DynamoDB answers it: with ALL_OLD, the current item in raw attribute values. */
function refused(input: UpdateCommandInput): Error {
  const error = awsErrors.conditionFailed();
  if (returnsOldItem && input.ReturnValuesOnConditionCheckFailure === 'ALL_OLD' && stored) {
    Object.assign(error, { Item: { pk: { S: 'pacing' }, sk: { S: 'budget' }, version: { N: String(stored.version) }, ...(typeof stored.state === 'string' ? { state: { S: stored.state } } : {}) } });
  }
  return error;
}

function fakeTable(): void {
  stored = undefined;
  loseNextRaces = 0;
  returnsOldItem = true;
  db.reset();
  db.on(GetCommand).callsFake(() => ({ Item: stored ? structuredClone(stored) : undefined }));
  db.on(UpdateCommand).callsFake((input: UpdateCommandInput) => {
    const values = input.ExpressionAttributeValues ?? {};
    const holds = input.ConditionExpression === 'attribute_not_exists(version)' ? stored?.version === undefined : stored?.version === values[':read'];
    if (loseNextRaces > 0 || !holds) {
      if (loseNextRaces > 0) {
        loseNextRaces--;
        // Another reserver wrote in between.
        stored = { ...(stored ?? { ...PACING_KEY }), version: (Number(stored?.version ?? 0) || 0) + 1 };
      }
      throw refused(input);
    }
    stored = { ...PACING_KEY, state: values[':state'], version: values[':next'], updatedAt: values[':now'] };
    return {};
  });
}

function store(clock: FakeClock, options = {}): PacingStore {
  return new PacingStore({ db: clients.db(), tableName: 'rotations', clock }, SETTINGS, options);
}

beforeEach(fakeTable);

describe('the pacing store (one versioned item)', () => {
  it('creates the item on the first reservation and spaces the next ones by the rate', async () => {
    // Prepare
    const clock = fakeClock();
    const t0 = clock.now().getTime();
    const pacing = store(clock);
    // Act
    const times = [];
    for (let i = 0; i < 4; i++) times.push((await pacing.reserve(CallSite.IssueCertificate)).atMs - t0);
    // Assess
    expect(times.map(Math.round)).toEqual([0, Math.round(INTERVAL_MS), Math.round(2 * INTERVAL_MS), Math.round(3 * INTERVAL_MS)]);
    expect(stored).toMatchObject({ pk: 'pacing', sk: 'budget', version: 4 });
    expect(stored).not.toHaveProperty('status');
    const first = db.commandCalls(UpdateCommand)[0].args[0].input;
    expect(first.ConditionExpression).toBe('attribute_not_exists(version)');
    // One UpdateItem per reservation: the store decides on the item as it last wrote it.
    expect(db.commandCalls(UpdateCommand)).toHaveLength(4);
    expect(db.commandCalls(GetCommand)).toHaveLength(0);
  });

  it('decides again on the item a lost race returns, without reading it', async () => {
    // Prepare
    const clock = fakeClock();
    const t0 = clock.now().getTime();
    const pacing = store(clock);
    await pacing.reserve(CallSite.IssueCertificate);
    // Act: another reserver writes twice in between.
    loseNextRaces = 2;
    const { atMs } = await pacing.reserve(CallSite.IssueCertificate);
    // Assess
    expect(pacing.lastAttempts).toBe(3);
    expect(db.commandCalls(UpdateCommand)).toHaveLength(4);
    expect(db.commandCalls(GetCommand)).toHaveLength(0);
    expect(db.commandCalls(UpdateCommand).every((call) => call.args[0].input.ReturnValuesOnConditionCheckFailure === 'ALL_OLD')).toBe(true);
    expect(Math.round(atMs - t0)).toBe(Math.round(INTERVAL_MS));
  });

  it('a store that has not seen the item yet learns it from its first, refused, write', async () => {
    // Prepare: another Lambda made three reservations.
    const clock = fakeClock();
    const t0 = clock.now().getTime();
    const other = store(clock);
    for (let i = 0; i < 3; i++) await other.reserve(CallSite.IssueCertificate);
    db.resetHistory();
    // Act
    const fresh = store(clock);
    const { atMs } = await fresh.reserve(CallSite.IssueCertificate);
    // Assess: its slot is after the other's three, at the cost of one refused write and no read.
    expect(Math.round(atMs - t0)).toBe(Math.round(3 * INTERVAL_MS));
    expect(fresh.lastAttempts).toBe(2);
    expect(db.commandCalls(UpdateCommand)).toHaveLength(2);
    expect(db.commandCalls(GetCommand)).toHaveLength(0);
    // And the other store, whose copy is now stale, is refused once and then spaced after it.
    expect(Math.round((await other.reserve(CallSite.IssueCertificate)).atMs - t0)).toBe(Math.round(4 * INTERVAL_MS));
    expect(other.lastAttempts).toBe(2);
  });

  it('reads the item after a lost race whose refusal does not carry it', async () => {
    const clock = fakeClock();
    const pacing = store(clock);
    await pacing.reserve(CallSite.IssueCertificate);
    returnsOldItem = false;
    loseNextRaces = 2;
    await pacing.reserve(CallSite.IssueCertificate);
    expect(pacing.lastAttempts).toBe(3);
    expect(db.commandCalls(GetCommand)).toHaveLength(2);
    expect(db.commandCalls(GetCommand)[0].args[0].input).toMatchObject({ Key: PACING_KEY, ConsistentRead: true });
  });

  it('gives up with PacingContention when every attempt loses', async () => {
    const pacing = store(fakeClock(), { maxAttempts: 3 });
    loseNextRaces = 10;
    await expect(pacing.reserve(CallSite.IssueCertificate)).rejects.toThrow(PacingContention);
  });

  it('passes other DynamoDB errors through', async () => {
    db.on(UpdateCommand).rejects(awsErrors.named('ResourceNotFoundException'));
    await expect(store(fakeClock()).reserve(CallSite.IssueCertificate)).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });

  it('keeps an AIMD cut in the item, so the next Lambda paces at the cut rate', async () => {
    const clock = fakeClock();
    expect(await store(clock).observeThrottle(Bucket.DescribeCertificate)).toBeCloseTo(0.7);
    const state = JSON.parse(String(stored?.state));
    const again = AdmissionController.fromState(SETTINGS, state, clock.now().getTime());
    expect(again.shareOf(Bucket.DescribeCertificate)).toBeCloseTo(0.7);
    expect(again.budget.rate(Bucket.DescribeCertificate)).toBeCloseTo(1.8 * 0.7);
  });

  it('starts over from a damaged item rather than stopping every rotation', async () => {
    stored = { ...PACING_KEY, version: 7, state: '{not json' };
    const clock = fakeClock();
    const { atMs } = await store(clock).reserve(CallSite.IssueCertificate);
    expect(atMs).toBe(clock.now().getTime());
    expect(stored?.version).toBe(8);
  });

  it('admits starts at the start pace and holds them while the budget is queued', async () => {
    const clock = fakeClock();
    const pacing = store(clock);
    const first = await pacing.admitStart();
    const second = await pacing.admitStart();
    expect(first.admission.admitted).toBe(true);
    expect(second.admission).toMatchObject({ admitted: false });
    if (second.admission.admitted) return;
    // Clocks tick in whole milliseconds; the pace is fractional.
    clock.advance(Math.ceil(second.admission.retryAtMs - clock.now().getTime()));
    expect((await pacing.admitStart()).admission.admitted).toBe(true);
  });
});

describe('batch admission', () => {
  it('admits several starts in one write, each at its place in the pace, within the queue horizon', async () => {
    const clock = fakeClock();
    const t0 = clock.now().getTime();
    const pacing = store(clock);
    // Start pace: 2 TPS DescribeCertificate × 0.9, one per rotation: 1.8 rotations/s × 1.25 = one per 444 ms; horizon: maxQueueMs (2 s).
    const first = await pacing.admitStarts(10);
    expect(first.atMs.map((t) => Math.round(t - t0))).toEqual([0, 444, 889, 1333, 1778]);
    expect(db.commandCalls(UpdateCommand)).toHaveLength(1);
    // Nothing more fits until the pace moves on: asked again at once, it says when.
    const second = await pacing.admitStarts(10);
    expect(second.atMs).toEqual([]);
    expect(second.retryAtMs).toBeGreaterThan(t0);
  });
});

describe('a paced step', () => {
  function pacing(clock: FakeClock, timeScale = 1): Pacing {
    return { store: store(clock), timeScale };
  }

  it('runs at once when its calls are due now, and reports the wait and the rate', async () => {
    const clock = fakeClock();
    const telemetry = recordingTelemetry();
    const result = await pacedStep({ pacing: pacing(clock), clock, telemetry }, {}, CallSite.IssueCertificate, async () => 'issued');
    expect(result).toBe('issued');
    expect(clock.sleeps).toEqual([]);
    expect(telemetry.metrics).toContainEqual({ name: 'PacingWaitMs', value: 0 });
    expect(telemetry.metrics).toContainEqual({ name: 'PacingRate', value: 1.8, dimensions: { Bucket: Bucket.DescribeCertificate } });
  });

  it('sleeps in the Lambda when its calls are due within a second', async () => {
    const clock = fakeClock();
    const deps = { pacing: pacing(clock), clock, telemetry: recordingTelemetry() };
    await pacedStep(deps, {}, CallSite.IssueCertificate, async () => 'first');
    const run = jest.fn(async () => 'second');
    expect(await pacedStep(deps, {}, CallSite.IssueCertificate, run)).toBe('second');
    expect(run).toHaveBeenCalledTimes(1);
    expect(clock.sleeps.map(Math.round)).toEqual([Math.round(INTERVAL_MS)]);
  });

  it('returns waitUntil without calling AWS when its calls are due later, and runs without reserving again when sent back', async () => {
    // Prepare: three reservations already queue the budget 3 intervals (1.67 s) ahead.
    const clock = fakeClock();
    const t0 = clock.now().getTime();
    const deps = { pacing: pacing(clock), clock, telemetry: recordingTelemetry() };
    for (let i = 0; i < 3; i++) await deps.pacing.store.reserve(CallSite.IssueCertificate);
    const run = jest.fn(async () => 'later');
    // Act
    const deferred = await pacedStep(deps, {}, CallSite.IssueCertificate, run);
    // Assess
    expect(run).not.toHaveBeenCalled();
    expect(clock.sleeps).toEqual([]);
    const waitUntil = new Date((deferred as { waitUntil: string }).waitUntil).getTime();
    expect(waitUntil - t0).toBe(Math.floor(3 * INTERVAL_MS));
    // The Wait sends it back with its reservation: it runs, and touches the budget no more.
    const writes = db.commandCalls(UpdateCommand).length;
    clock.advance(waitUntil - t0);
    expect(await pacedStep(deps, { pacedUntil: new Date(waitUntil).toISOString() }, CallSite.IssueCertificate, run)).toBe('later');
    expect(db.commandCalls(UpdateCommand)).toHaveLength(writes);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('reserves again when the state machine retries a step that held a reservation (retryCount > 0)', async () => {
    // Prepare: the budget is queued 3 intervals ahead; the step's first attempt ran on the
    // reservation its Wait held, failed, and the ASL's Retry sends the same input back.
    const clock = fakeClock();
    const deps = { pacing: pacing(clock), clock, telemetry: recordingTelemetry() };
    for (let i = 0; i < 3; i++) await deps.pacing.store.reserve(CallSite.IssueCertificate);
    const held = { pacedUntil: clock.now().toISOString() };
    const run = jest.fn(async () => 'ran');
    const writes = db.commandCalls(UpdateCommand).length;
    // Act
    const first = await pacedStep(deps, { ...held, retryCount: 0 }, CallSite.IssueCertificate, run);
    const retried = await pacedStep(deps, { ...held, retryCount: 1 }, CallSite.IssueCertificate, run);
    // Assess: the first attempt spent the reservation without touching the budget; the retry
    // reserves its own and is told to wait for it.
    expect(first).toBe('ran');
    expect(retried).toEqual({ waitUntil: expect.any(String) });
    expect(run).toHaveBeenCalledTimes(1);
    expect(db.commandCalls(UpdateCommand)).toHaveLength(writes + 1);
    await expect(pacedStep(deps, { ...held, retryCount: -1 }, CallSite.IssueCertificate, run)).rejects.toMatchObject({ name: 'InvalidInput' });
  });

  it('stretches the workflow wait by the local time scale', async () => {
    const clock = fakeClock();
    const deps = { pacing: pacing(clock, 0.01), clock, telemetry: recordingTelemetry() };
    // At scale 0.01 the budget is 180/s: 200 reservations put the next ~1.1 s ahead.
    for (let i = 0; i < 200; i++) await deps.pacing.store.reserve(CallSite.IssueCertificate);
    const deferred = (await pacedStep(deps, {}, CallSite.IssueCertificate, async () => 'never')) as { waitUntil: string };
    const aheadMs = new Date(deferred.waitUntil).getTime() - clock.now().getTime();
    expect(aheadMs).toBeGreaterThan(100_000);
  });

  it('runs unpaced, and says so, when the budget item cannot be read', async () => {
    db.on(UpdateCommand).rejects(new Error('table unreachable'));
    const clock = fakeClock();
    const telemetry = recordingTelemetry();
    expect(await pacedStep({ pacing: pacing(clock), clock, telemetry }, {}, CallSite.IssueCertificate, async () => 'ran')).toBe('ran');
    expect(telemetry.lines).toContainEqual(expect.objectContaining({ level: 'error', message: 'pacing budget unavailable; running the step unpaced' }));
  });

  it('runs unpaced when pacing is off, and refuses a pacedUntil that is not a time', async () => {
    const clock = fakeClock();
    expect(await pacedStep({ clock, telemetry: recordingTelemetry() }, {}, CallSite.RetireOldCertificate, async () => 'unpaced')).toBe('unpaced');
    expect(db.commandCalls(GetCommand)).toHaveLength(0);
    expect(db.commandCalls(UpdateCommand)).toHaveLength(0);
    await expect(pacedStep({ clock, telemetry: recordingTelemetry() }, { pacedUntil: 'soon' }, CallSite.RetireOldCertificate, async () => 'x')).rejects.toMatchObject({
      name: 'InvalidInput',
    });
  });
});

describe('the throttle observer', () => {
  it('counts every throttled call and records one cut per bucket per cooldown', async () => {
    const clock = fakeClock();
    const telemetry = recordingTelemetry();
    const observe = throttleObserver({ pacing: { store: store(clock), timeScale: 1 }, clock, telemetry });
    await observe('iot:DescribeCertificate');
    await observe('iot:DescribeCertificate');
    clock.advance(DEFAULT_PACING.aimd.cooldownMs);
    await observe('iot:DescribeCertificate');
    await observe('states:SendTaskSuccess');
    expect(telemetry.metrics.filter((m) => m.name === 'ThrottledCalls').map((m) => m.dimensions?.Api)).toEqual([
      'iot:DescribeCertificate',
      'iot:DescribeCertificate',
      'iot:DescribeCertificate',
      'states:SendTask',
    ]);
    const state = JSON.parse(String(stored?.state));
    expect(state.share[Bucket.DescribeCertificate]).toBeCloseTo(0.49);
    expect(state.share[Bucket.SendTask]).toBeCloseTo(0.7);
  });

  it('cuts a Private CA bucket from the hand-written client exactly as an SDK client\'s throttle cuts an IoT bucket', async () => {
    // Prepare: one observer, as issue-certificate's pacedRuntime builds it, behind both clients;
    // each answers one throttle (HTTP 400 ThrottlingException, as AWS does) and then succeeds.
    const clock = fakeClock();
    const telemetry = recordingTelemetry();
    const onThrottle = throttleObserver({ pacing: { store: store(clock), timeScale: 1 }, clock, telemetry });
    const throttleThen = (ok: unknown): { count: () => number; answer: () => { status: number; body: unknown } } => {
      let calls = 0;
      return { count: () => calls, answer: () => (calls++ === 0 ? { status: 400, body: { __type: 'ThrottlingException', message: 'Rate exceeded' } } : { status: 200, body: ok }) };
    };
    const pcaAnswers = throttleThen({ CertificateArn: `${CA}/certificate/1` });
    const pca = new PrivateCaClient({
      endpoint: 'http://127.0.0.1:1',
      region: 'eu-west-1',
      credentials: CREDENTIALS,
      sleep: async () => undefined,
      onThrottle,
      fetch: async () => {
        const { status, body } = pcaAnswers.answer();
        return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/x-amz-json-1.1' } });
      },
    });
    const iotAnswers = throttleThen({ certificateDescription: { certificateId: 'a'.repeat(64), status: 'ACTIVE' } });
    const iot = observeThrottles(
      new IoTClient({
        region: 'eu-west-1',
        credentials: CREDENTIALS,
        maxAttempts: 2,
        requestHandler: {
          handle: async () => {
            const { status, body } = iotAnswers.answer();
            const headers: Record<string, string> = { 'content-type': 'application/json' };
            if (status !== 200) headers['x-amzn-errortype'] = 'ThrottlingException';
            return { response: { statusCode: status, headers, body: Readable.from([Buffer.from(JSON.stringify(body))]) } };
          },
        } as never,
      }),
      'iot',
      onThrottle,
    );
    // Act
    await pca.send(new IssueCertificateCommand({ CertificateAuthorityArn: CA, Csr: Buffer.from('csr'), SigningAlgorithm: 'SHA256WITHRSA', Validity: { Value: 1, Type: 'DAYS' } }));
    await iot.send(new DescribeCertificateCommand({ certificateId: 'a'.repeat(64) }));
    // Assess
    expect([pcaAnswers.count(), iotAnswers.count()]).toEqual([2, 2]);
    expect(telemetry.metrics.filter((m) => m.name === 'ThrottledCalls').map((m) => m.dimensions?.Api)).toEqual([Bucket.PcaIssueCertificate, Bucket.DescribeCertificate]);
    const state = JSON.parse(String(stored?.state));
    expect(state.share[Bucket.PcaIssueCertificate]).toBeCloseTo(0.7);
    expect(state.share[Bucket.PcaIssueCertificate]).toBe(state.share[Bucket.DescribeCertificate]);
  }, 20_000);

  it('never throws: a store failure is logged', async () => {
    db.on(UpdateCommand).rejects(new Error('table unreachable'));
    const clock = fakeClock();
    const telemetry = recordingTelemetry();
    await throttleObserver({ pacing: { store: store(clock), timeScale: 1 }, clock, telemetry })('iot:UpdateCertificate');
    expect(telemetry.lines.some((line) => line.level === 'error' && /pacing budget/.test(line.message))).toBe(true);
  });
});
