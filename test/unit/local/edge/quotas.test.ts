import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_QUOTA_SETTINGS, parseQuotasFile, QuotasFileError } from '../../../../domain/pacing/index';
import { AWS_DEFAULT_QUOTAS_NAME, loadLocalQuotas, QuotaEnforcer, type LocalQuotas } from '../../../../local/edge/quotas';

/**
 * The account's quotas as the local runtime enforces them: one token bucket per domain/pacing
 * bucket, as deep as its burst, refilled at rate ÷ time scale; each service's own throttling
 * shape; transitions slowed, never refused; Lambda concurrency throttled or waited for.
 */
function fakeTime(): { now: () => number; advance: (ms: number) => void; sleeps: number[]; sleepMs: (ms: number) => Promise<void> } {
  let t = 1_000_000;
  const sleeps: number[] = [];
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
    sleeps,
    sleepMs: async (ms) => {
      sleeps.push(ms);
      t += ms;
    },
  };
}

const fileQuotas = (json: unknown): LocalQuotas => ({ source: '/tmp/q.json', settings: parseQuotasFile(JSON.stringify(json)) });
const defaults: LocalQuotas = { source: AWS_DEFAULT_QUOTAS_NAME, settings: DEFAULT_QUOTA_SETTINGS };

describe('loadLocalQuotas', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-quotas-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads aws-default as the domain defaults and a file through domain/pacing parseQuotasFile', () => {
    // Prepare
    const file = join(dir, 'tiny.json');
    writeFileSync(file, JSON.stringify({ quotas: { 'iot:DescribeCertificate': { rate: 2 } } }));
    // Act
    const aws = loadLocalQuotas('aws-default');
    const tiny = loadLocalQuotas(file);
    // Assess
    expect(aws).toEqual({ source: 'aws-default', settings: DEFAULT_QUOTA_SETTINGS });
    expect(tiny.source).toBe(file);
    expect(tiny.settings.quotas['iot:DescribeCertificate']).toEqual({ kind: 'rate', rate: 2, burst: 2, source: 'quotas-file' });
    expect(tiny.settings.quotas['iot:UpdateCertificate']).toEqual(DEFAULT_QUOTA_SETTINGS.quotas['iot:UpdateCertificate']);
  });

  it('names the file and the field of a bad quotas file, and a file that is not there', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ quotas: { 'iot:DescribeCertificat': { rate: 2 } } }));
    expect(() => loadLocalQuotas(bad)).toThrow(QuotasFileError);
    expect(() => loadLocalQuotas(bad)).toThrow(/--quotas .*bad\.json: unknown quota "iot:DescribeCertificat"/);
    expect(() => loadLocalQuotas(join(dir, 'missing.json'))).toThrow(/expected "aws-default" or a readable quotas file \(ENOENT\)/);
  });
});

describe('QuotaEnforcer', () => {
  it('lets a bucket burst, throttles the next call in the service shape, and refills at the rate', () => {
    // Prepare: DescribeCertificate 10 TPS, burst 10 (the AWS default), real time.
    const time = fakeTime();
    const quotas = new QuotaEnforcer(defaults, { timeScale: 1, now: time.now });
    // Act
    const burst = Array.from({ length: 10 }, () => quotas.throttle('iot', 'DescribeCertificate'));
    const over = quotas.throttle('iot', 'DescribeCertificate');
    time.advance(99);
    const tooSoon = quotas.throttle('iot', 'DescribeCertificate');
    time.advance(1);
    const refilled = quotas.throttle('iot', 'DescribeCertificate');
    // Assess
    expect(burst.every((answer) => answer === undefined)).toBe(true);
    expect(over).toEqual({ bucket: 'iot:DescribeCertificate', code: 'ThrottlingException', message: 'Rate exceeded', status: 400 });
    expect(tooSoon?.code).toBe('ThrottlingException');
    expect(refilled).toBeUndefined();
    expect(quotas.figures()).toEqual({ quotas: 'aws-default', throttledCalls: { total: 2, byApi: { 'iot:DescribeCertificate': 2 } }, delayedTransitions: 0, delayedAsyncInvocations: 0 });
  });

  it('scales rates by the time scale: at 0.01 a 10 TPS quota refills a call every ms', () => {
    const time = fakeTime();
    const quotas = new QuotaEnforcer(defaults, { timeScale: 0.01, now: time.now });
    for (let i = 0; i < 10; i++) expect(quotas.throttle('iot', 'UpdateCertificate')).toBeUndefined();
    expect(quotas.throttle('iot', 'UpdateCertificate')?.code).toBe('ThrottlingException');
    time.advance(1);
    expect(quotas.throttle('iot', 'UpdateCertificate')).toBeUndefined();
  });

  it('answers each service in its own shape and shares one bucket among SendTask*', () => {
    const time = fakeTime();
    const quotas = new QuotaEnforcer(fileQuotas({ quotas: { 'iotdata:Publish': { rate: 1 }, 'states:StartExecution': { rate: 1, burst: 1 }, 'states:SendTask': { rate: 1, burst: 2 } } }), { timeScale: 1, now: time.now });
    quotas.throttle('iotdata', 'Publish');
    quotas.throttle('states', 'StartExecution');
    quotas.throttle('states', 'SendTaskSuccess');
    quotas.throttle('states', 'SendTaskFailure');
    expect(quotas.throttle('iotdata', 'Publish')).toEqual({ bucket: 'iotdata:Publish', code: 'ThrottlingException', message: 'Rate exceeded', status: 429 });
    expect(quotas.throttle('states', 'StartExecution')).toEqual({ bucket: 'states:StartExecution', code: 'ThrottlingException', message: 'Rate exceeded', status: 400 });
    expect(quotas.throttle('states', 'SendTaskHeartbeat')?.bucket).toBe('states:SendTask');
    expect(quotas.figures().throttledCalls).toEqual({ total: 3, byApi: { 'iotdata:Publish': 1, 'states:SendTask': 1, 'states:StartExecution': 1 } });
  });

  it('never throttles what has no quota bucket: other operations, DynamoDB, SNS, unnamed operations', () => {
    const time = fakeTime();
    const quotas = new QuotaEnforcer(fileQuotas({ quotas: { 'iot:DescribeCertificate': { rate: 0.001, burst: 1 } } }), { timeScale: 1, now: time.now });
    for (let i = 0; i < 50; i++) {
      expect(quotas.throttle('iot', 'ListThings')).toBeUndefined();
      expect(quotas.throttle('dynamodb', 'UpdateItem')).toBeUndefined();
      expect(quotas.throttle('sns', 'Publish')).toBeUndefined();
      expect(quotas.throttle('states', 'DescribeExecution')).toBeUndefined();
      expect(quotas.throttle('iot', undefined)).toBeUndefined();
    }
    expect(quotas.figures().throttledCalls.total).toBe(0);
  });

  it('slows state transitions over the quota instead of refusing them', async () => {
    // Prepare: 2 transitions a second, a burst of 2.
    const time = fakeTime();
    const quotas = new QuotaEnforcer(fileQuotas({ quotas: { 'states:StateTransition': { rate: 2, burst: 2 } } }), { timeScale: 1, now: time.now, sleepMs: time.sleepMs });
    // Act
    for (let i = 0; i < 5; i++) await quotas.transition();
    // Assess: two at once, then one every 500 ms.
    expect(time.sleeps).toEqual([500, 500, 500]);
    expect(quotas.figures().delayedTransitions).toBe(3);
    expect(quotas.figures().throttledCalls.total).toBe(0);
  });

  it('throttles a synchronous invocation at the concurrency and makes an asynchronous one wait with a backoff', async () => {
    // Prepare
    const time = fakeTime();
    const quotas = new QuotaEnforcer(fileQuotas({ quotas: { 'lambda:ConcurrentExecutions': { concurrency: 3 } } }), { timeScale: 0.5, now: time.now, sleepMs: time.sleepMs });
    let running = 3;
    // Act
    const under = quotas.lambdaThrottled(2);
    const at = quotas.lambdaThrottled(3);
    const waited = quotas.waitForLambda(() => (time.sleeps.length >= 3 ? (running = 2) : running));
    await waited;
    // Assess: 1 s, 2 s, 4 s of workflow time at scale 0.5.
    expect(under).toBe(false);
    expect(at).toBe(true);
    expect(time.sleeps).toEqual([500, 1000, 2000]);
    expect(quotas.lambdaConcurrency).toBe(3);
    expect(quotas.figures()).toMatchObject({ throttledCalls: { total: 2, byApi: { 'lambda:ConcurrentExecutions': 2 } }, delayedAsyncInvocations: 1 });
  });

  it('refuses a time scale that is not above 0', () => {
    expect(() => new QuotaEnforcer(defaults, { timeScale: 0 })).toThrow(/time scale must be above 0/);
  });
});
