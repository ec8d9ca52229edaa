import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { histogram, progressSeries, renderReport, ReportError, reportKind, reportSpec } from '../../../cli/report/index';
import { REPORT_DATA_ID } from '../../../local/console/report-spec';

/** A demo report as `rotor demo --report` writes it (fields trimmed to what the charts read). */
function demoReport(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    devices: 3,
    seed: 1,
    faults: 'garbage-csr=1',
    timeScale: 0.01,
    rotated: 2,
    failed: { CSR_REJECTED: 1 },
    unfinished: 0,
    escalations: 1,
    invariantViolations: [],
    wallMs: 12_000,
    p50Ms: 9_000,
    p95Ms: 11_000,
    maxMs: 11_500,
    stepMs: { 'Claim device': { p50: 100, p95: 150, count: 3 }, 'Request CSR': { p50: 2000, p95: 2500, count: 3 } },
    apiCallsByOperation: { 'dynamodb:UpdateItem': 6, 'iot:DescribeCertificate': 3 },
    apiCallsPerRotation: 9,
    stateTransitionsPerRotation: 6,
    executions: [
      { startMs: 100, stopMs: 9_100, status: 'SUCCEEDED' },
      { startMs: 150, stopMs: 11_150, status: 'SUCCEEDED' },
      { startMs: 200, stopMs: 4_200, status: 'FAILED' },
    ],
    outcomes: {},
    ...overrides,
  };
}

describe('reportKind and reportSpec', () => {
  it('draws a demo report: latency distribution, time per state, calls per operation, progress, failures', () => {
    const spec = reportSpec(demoReport(), 'demo.json');
    expect(spec.kind).toBe('demo');
    expect(spec.charts.map((c) => c.id)).toEqual(['latency', 'time-per-state', 'calls-per-operation', 'progress', 'failures']);
    const latency = spec.charts[0];
    expect(latency.series[0].data.reduce((a, b) => a + b, 0)).toBe(3);
    expect(spec.charts[1]).toMatchObject({ labels: ['Claim device', 'Request CSR'], series: [{ label: 'p50', data: [100, 2000] }, { label: 'p95', data: [150, 2500] }] });
    expect(spec.facts).toContainEqual(['failed', '1']);
  });

  it('shows a demo run under --quotas: the quotas, the throttled calls per API and the rotations throttling failed', () => {
    const spec = reportSpec(demoReport({ quotas: 'aws-default', throttledCalls: { total: 7, byApi: { 'iotdata:Publish': 2, 'iot:DescribeCertificate': 5 } }, throttlingFailures: 1 }), 'demo.json');
    expect(spec.charts.find((c) => c.id === 'throttled-calls')).toMatchObject({ labels: ['iot:DescribeCertificate', 'iotdata:Publish'], series: [{ data: [5, 2] }], note: 'quotas: aws-default' });
    expect(spec.facts).toEqual(expect.arrayContaining([['quotas', 'aws-default'], ['throttled calls', '7'], ['rotations failed by throttling', '1']]));
    // Without --quotas (or a report written before it existed), neither.
    expect(reportSpec(demoReport({ quotas: 'none', throttledCalls: { total: 0, byApi: {} } }), 'demo.json').facts.map(([name]) => name)).not.toContain('quotas');
  });

  it('falls back to the percentiles for a report written before per-execution times', () => {
    const { executions: _omitted, ...older } = demoReport();
    const spec = reportSpec(older, 'old.json');
    expect(spec.charts.find((c) => c.id === 'latency')).toMatchObject({ labels: ['p50', 'p95', 'max'], series: [{ data: [9_000, 11_000, 11_500] }] });
    expect(spec.charts.find((c) => c.id === 'progress')).toBeUndefined();
  });

  it('draws a bench report from its demo, with the bench figures as facts and check failures as warnings', () => {
    const demo = demoReport({ invariantViolations: [{ check: 'orphan-certificate', thingName: 'd-1', detail: 'ACTIVE and attached to nothing' }] });
    const spec = reportSpec({ devices: 3, rotated: 2, failed: 1, cryptoFloorMs: 900, wallMs: 12_000, devicesPerSecond: 0.25, wallOverFloor: 13.3, peakRssMiB: 300, cores: 2, demo }, 'bench.json');
    expect(spec.kind).toBe('bench');
    expect(spec.facts).toContainEqual(['wall / floor', '13.3×']);
    expect(spec.warnings).toEqual(['orphan-certificate d-1: ACTIVE and attached to nothing']);
    expect(spec.charts.map((c) => c.id)).toContain('latency');
  });

  it('draws a simulation\'s peak rate per API against its quota line', () => {
    const sim = { devices: 1_000_000, rotated: 999_990, failed: { NO_ACK: 10 }, escalations: 10, throttledCalls: 5, throttlingFailures: 0, quotaFloorS: 100, completionS: 120, completionOverFloor: 1.2, peakRatePerApi: { 'iot:CreateCertificateFromCsr': 9.5, 'states:StartExecution': 1900 }, quotas: { 'iot:CreateCertificateFromCsr': 10, 'states:StartExecution': 2000 }, apiCallsByOperation: { 'iot:CreateCertificateFromCsr': 1_000_000 } };
    expect(reportKind(sim)).toBe('simulate');
    const spec = reportSpec(sim, 'sim.json');
    expect(spec.charts[0]).toMatchObject({
      id: 'rate-per-api',
      labels: ['iot:CreateCertificateFromCsr', 'states:StartExecution'],
      series: [{ label: 'peak rate', data: [9.5, 1900] }, { label: 'quota', data: [10, 2000], role: 'quota' }],
    });
    expect(spec.facts).toContainEqual(['completionOverFloor', '1.2']);
  });

  it('refuses what is not a report Rotor writes, saying what it expected', () => {
    expect(() => reportKind([1, 2])).toThrow(ReportError);
    expect(() => reportKind({ devices: 3 })).toThrow(/demo \(stepMs, apiCallsByOperation\), bench .* or simulate/);
  });
});

describe('histogram and progressSeries', () => {
  it('bins every value once', () => {
    const values = [1000, 1100, 1900, 5000, 9000, 9999];
    const h = histogram(values, 4);
    expect(h.counts).toEqual([3, 1, 0, 2]);
    expect(h.labels).toHaveLength(4);
    expect(histogram([])).toEqual({ labels: [], counts: [] });
  });

  it('counts started, rotated and failed cumulatively, ending at the totals', () => {
    const p = progressSeries([{ startMs: 0, stopMs: 1000, status: 'SUCCEEDED' }, { startMs: 10, stopMs: 2000, status: 'FAILED' }, { startMs: 20, status: 'RUNNING' }], 4);
    expect(p.started.at(-1)).toBe(3);
    expect(p.rotated).toEqual([0, 0, 1, 1, 1]);
    expect(p.failed.at(-1)).toBe(1);
  });
});

describe('renderReport', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-report-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes one self-contained page: the data and the bundled charts inline, nothing loaded from elsewhere', async () => {
    const file = join(dir, 'demo.json');
    writeFileSync(file, JSON.stringify(demoReport({ faults: '</script><script>alert(1)</script>' })));
    const { out } = await renderReport(file, undefined);
    expect(out).toBe(join(dir, 'demo.html'));
    const html = readFileSync(out, 'utf8');
    expect(html).toContain(`<script type="application/json" id="${REPORT_DATA_ID}">`);
    expect(html).toContain("default-src 'none'");
    expect(html).not.toMatch(/<script[^>]*\ssrc=|<link[^>]*href=|https?:\/\/[a-z]/i);
    // The report's own text cannot close the data element.
    expect(html).not.toContain('</script><script>alert(1)');
    const data = html.slice(html.indexOf(`id="${REPORT_DATA_ID}">`) + REPORT_DATA_ID.length + 6);
    expect(JSON.parse(data.slice(0, data.indexOf('</script>'))).charts).toHaveLength(5);
  }, 30_000);

  it('says why a file cannot be rendered', async () => {
    await expect(renderReport(join(dir, 'missing.json'), undefined)).rejects.toThrow('cannot read');
    writeFileSync(join(dir, 'bad.json'), '{');
    await expect(renderReport(join(dir, 'bad.json'), undefined)).rejects.toThrow('is not JSON');
  });
});
