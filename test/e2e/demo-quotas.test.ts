import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeCertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import { isThrottlingError } from '@smithy/core/retry';
import { DemoError, formatSummary, runDemo, type DemoReport } from '../../cli/demo/index';
import type { DemoIo } from '../../cli/demo/run-demo';
import { HAPPY_PATH, pathDemand } from '../../domain/pacing/index';
import { describeWithBundles as bundlesDescribe } from '../fixtures/bundles.js';

/**
 * `rotor demo --quotas FILE`: 20 devices under an account whose certificate APIs, Publish and
 * SendTask* allow 2 calls a second (time scale 1, so 2 real calls a second), while Rotor is told
 * AWS's defaults. The runtime
 * throttles in AWS's shape while the rotations run, the report counts the throttled calls per
 * API and says which quotas were used, and every device is rotated: the SDK's retries, the state
 * machine's and AIMD absorb every throttle (issue 10 part 7: throttlingFailures 0).
 */
const describeWithBundles = bundlesDescribe('test/e2e/demo-quotas.test.ts');
const QUOTAS = {
  quotas: {
    'iot:DescribeCertificate': { rate: 2 },
    'iot:CreateCertificateFromCsr': { rate: 2 },
    'iot:ListAttachedPolicies': { rate: 2 },
    // A burst of 1: two csr_req within half a second are throttled, and the fleet's 20 start within seconds.
    'iotdata:Publish': { rate: 2, burst: 1 },
    'states:SendTask': { rate: 2, burst: 2 },
  },
};

function captureIo(lines: string[]): DemoIo {
  return { out: (line) => lines.push(line), progressStream: process.stdout, tty: false };
}

describe('rotor demo --quotas input', () => {
  it('refuses a bad quotas file before starting anything, naming the file and the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-demo-quotas-bad-'));
    try {
      const file = join(dir, 'quotas.json');
      writeFileSync(file, JSON.stringify({ quotas: { 'iot:DescribeCertificate': { rate: -1 } } }));
      await expect(runDemo({ devices: 1, quotas: file }, captureIo([]))).rejects.toThrow(DemoError);
      await expect(runDemo({ devices: 1, quotas: file }, captureIo([]))).rejects.toThrow(/quotas\.json: quotas\.iot:DescribeCertificate\.rate must be a number above 0/);
      await expect(runDemo({ devices: 1, quotas: join(dir, 'missing.json') }, captureIo([]))).rejects.toThrow(/"aws-default" or a readable quotas file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeWithBundles('rotor demo --devices 20 --quotas FILE (2 TPS)', () => {
  let dir: string;
  let file: string;
  let report: DemoReport;
  const lines: string[] = [];
  /** A call made while the demo's runtime is still up, once its bucket is spent. */
  let probe: { name: string; status?: number; throttling: boolean; message: string } | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-demo-quotas-'));
    file = join(dir, 'quotas.json');
    writeFileSync(file, JSON.stringify(QUOTAS));
    report = await runDemo(
      {
        devices: 20,
        quotas: file,
        // The account allows 2 TPS while Rotor's functions are told AWS's defaults (10–15 TPS):
        // throttling happens whatever Rotor's pacing does, which is the case AIMD is for.
        pacingFromQuotas: false,
        timeScale: 1,
        reportFile: join(dir, 'report.json'),
        beforeStop: async (_report, consoleUrl) => {
          // The demo's own runtime answers a burst over the bucket as IoT does.
          const iot = new IoTClient({ endpoint: consoleUrl.replace(/\/console\/?$/, ''), region: 'us-east-1', credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' }, maxAttempts: 1 });
          try {
            for (let i = 0; i < 10 && !probe; i++) {
              try {
                await iot.send(new DescribeCertificateCommand({ certificateId: 'b'.repeat(64) }));
              } catch (error) {
                const e = error as Error & { $metadata?: { httpStatusCode?: number } };
                if (e.name !== 'ResourceNotFoundException') probe = { name: e.name, status: e.$metadata?.httpStatusCode, throttling: isThrottlingError(e as never), message: e.message };
              }
            }
          } finally {
            iot.destroy();
          }
        },
      },
      captureIo(lines),
    );
  }, 600_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('throttles the rotations, and counts the throttled calls per API in the report', () => {
    const written = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as DemoReport;
    expect(written.quotas).toBe(file);
    expect(written.throttledCalls?.total).toBeGreaterThan(0);
    expect(written.throttledCalls?.total).toBe(Object.values(written.throttledCalls?.byApi ?? {}).reduce((a, b) => a + b, 0));
    // Only the buckets the file limits can throttle: everything else keeps AWS's defaults, far above this fleet.
    expect(Object.keys(written.throttledCalls?.byApi ?? {}).every((api) => api in QUOTAS.quotas)).toBe(true);
    // Publish (burst 1, three a rotation: csr_req, crt_res, crt_done) is throttled whatever the
    // rotations' timing. Each throttled call reaches the edge and is counted like any other, so its
    // retries show in the call counts, above what the happy path spends per rotation (the call profile).
    const happyPath = pathDemand(HAPPY_PATH).calls;
    expect(written.throttledCalls?.byApi['iotdata:Publish']).toBeGreaterThan(0);
    expect(written.apiCallsByOperation['iotdata:Publish']).toBeGreaterThan(happyPath['iotdata:Publish']);
    // Any other limited API that throttled shows its retries the same way.
    for (const [api, throttled] of Object.entries(written.throttledCalls?.byApi ?? {})) {
      if (throttled > 0 && api in happyPath) expect({ api, perRotation: written.apiCallsByOperation[api] > happyPath[api] }).toEqual({ api, perRotation: true });
    }
  });

  it('answers a throttled call in IoT shape: ThrottlingException, HTTP 400, which the SDK classifies as throttling', () => {
    expect(probe).toEqual({ name: 'ThrottlingException', status: 400, throttling: true, message: 'Rate exceeded' });
  });

  it('rotates every device: nothing failed by throttling, nothing stranded, every check passed', () => {
    expect(report.failed).toEqual({});
    expect(report.rotated).toBe(20);
    expect(report.unfinished).toBe(0);
    expect(report.invariantViolations).toEqual([]);
    expect(report.throttlingFailures).toBe(0);
  });

  it('prints the quotas and the throttled calls in the summary', () => {
    const summary = formatSummary(report).join('\n');
    expect(lines.join('\n')).toContain(`quotas: ${file}, enforced as the account's`);
    expect(summary).toContain(`  quotas                 ${file}`);
    const [mostThrottled] = Object.entries(report.throttledCalls?.byApi ?? {}).sort((a, b) => b[1] - a[1])[0];
    expect(summary).toMatch(new RegExp(`throttled calls +${report.throttledCalls?.total}  \\(.*${mostThrottled.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\d+.*\\); rotations failed by throttling: ${report.throttlingFailures}`));
  });
});
