import type { ChartSpec, ReportSpec } from '../../local/console/report-spec.js';

/**
 * Reads any report Rotor writes — `rotor demo --report`, `npm run bench -- --report`, and
 * `rotor simulate --report` (issue 10: peakRatePerApi against quotas) — into the charts
 * `rotor report` draws. Fields are read defensively: older reports lack the newer ones, and a
 * chart whose data is absent is left out rather than drawn empty.
 */
export class ReportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReportError';
  }
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
function numbers(v: unknown): Record<string, number> {
  if (!isObject(v)) return {};
  return Object.fromEntries(Object.entries(v).flatMap(([k, x]) => (num(x) === undefined ? [] : [[k, x as number]])));
}
const sortedDesc = (record: Record<string, number>): [string, number][] => Object.entries(record).sort(([, a], [, b]) => b - a);
const round = (v: number, digits = 1): number => Math.round(v * 10 ** digits) / 10 ** digits;
const seconds = (ms: number): string => (ms >= 10_000 ? `${round(ms / 1000)} s` : `${Math.round(ms)} ms`);

export type ReportKind = ReportSpec['kind'];

/** Which writer made it, from the fields only it writes. */
export function reportKind(report: unknown): ReportKind {
  if (!isObject(report)) throw new ReportError('the report is not a JSON object');
  if (isObject(report.peakRatePerApi) || num(report.quotaFloorS) !== undefined || num(report.completionS) !== undefined) return 'simulate';
  if (isObject(report.demo) && num(report.cryptoFloorMs) !== undefined) return 'bench';
  if (isObject(report.stepMs) && isObject(report.apiCallsByOperation) && num(report.devices) !== undefined) return 'demo';
  throw new ReportError('not a report Rotor writes: expected the fields of a demo (stepMs, apiCallsByOperation), bench (demo, cryptoFloorMs) or simulate (peakRatePerApi, completionS) report');
}

/** Equal-width bins over the values: labels and counts. */
export function histogram(values: readonly number[], bins = 20): { labels: string[]; counts: number[] } {
  if (values.length === 0) return { labels: [], counts: [] };
  const min = Math.min(...values);
  const max = Math.max(...values);
  const width = Math.max(1, (max - min) / bins);
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - min) / width))] += 1;
  const labels = counts.map((_, i) => seconds(min + (i + 0.5) * width));
  return { labels, counts };
}

/** Cumulative rotated and failed over time, from each execution's stop. */
export function progressSeries(executions: readonly { startMs: number; stopMs?: number; status: string }[], points = 40): { labels: string[]; started: number[]; rotated: number[]; failed: number[] } {
  const end = Math.max(0, ...executions.map((e) => e.stopMs ?? e.startMs));
  const step = Math.max(1, end / points);
  const labels: string[] = [];
  const started: number[] = [];
  const rotated: number[] = [];
  const failed: number[] = [];
  for (let i = 0; i <= points; i += 1) {
    const t = i * step;
    labels.push(`${round(t / 1000)} s`);
    started.push(executions.filter((e) => e.startMs <= t).length);
    rotated.push(executions.filter((e) => e.stopMs !== undefined && e.stopMs <= t && e.status === 'SUCCEEDED').length);
    failed.push(executions.filter((e) => e.stopMs !== undefined && e.stopMs <= t && e.status !== 'SUCCEEDED').length);
  }
  return { labels, started, rotated, failed };
}

function demoCharts(demo: Json): ChartSpec[] {
  const charts: ChartSpec[] = [];
  const executions = Array.isArray(demo.executions)
    ? (demo.executions as unknown[]).flatMap((e) => (isObject(e) && num(e.startMs) !== undefined && typeof e.status === 'string' ? [{ startMs: e.startMs as number, stopMs: num(e.stopMs), status: e.status }] : []))
    : [];
  const durations = executions.flatMap((e) => (e.stopMs === undefined ? [] : [e.stopMs - e.startMs]));
  if (durations.length > 0) {
    const h = histogram(durations);
    charts.push({ id: 'latency', title: 'Rotation latency distribution', kind: 'bar', labels: h.labels, series: [{ label: 'executions', data: h.counts }], unit: 'executions', note: `execution start → stop, ${durations.length} executions in ${h.labels.length} bins` });
  } else if (num(demo.p50Ms) !== undefined) {
    charts.push({ id: 'latency', title: 'Rotation latency', kind: 'bar', labels: ['p50', 'p95', 'max'], series: [{ label: 'ms', data: [num(demo.p50Ms) ?? 0, num(demo.p95Ms) ?? 0, num(demo.maxMs) ?? 0] }], unit: 'ms', note: 'this report has no per-execution times: percentiles only' });
  }
  if (isObject(demo.stepMs)) {
    const steps = Object.entries(demo.stepMs).flatMap(([name, t]) => (isObject(t) ? [[name, num(t.p50) ?? 0, num(t.p95) ?? 0] as const] : []));
    charts.push({ id: 'time-per-state', title: 'Time per state', kind: 'horizontal-bar', labels: steps.map(([n]) => n), series: [{ label: 'p50', data: steps.map(([, p50]) => p50) }, { label: 'p95', data: steps.map(([, , p95]) => p95) }], unit: 'ms', note: 'StateEntered → StateExited over every execution that entered the state' });
  }
  const calls = sortedDesc(numbers(demo.apiCallsByOperation));
  if (calls.length) charts.push({ id: 'calls-per-operation', title: 'AWS API calls per rotation, by operation', kind: 'horizontal-bar', labels: calls.map(([o]) => o), series: [{ label: 'calls per rotation', data: calls.map(([, n]) => round(n, 2)) }], unit: 'calls per rotation' });
  if (executions.length > 0) {
    const p = progressSeries(executions);
    charts.push({
      id: 'progress',
      title: 'Progress over time',
      kind: 'line',
      labels: p.labels,
      series: [
        { label: 'started', data: p.started, role: 'started' },
        { label: 'rotated', data: p.rotated, role: 'succeeded' },
        { label: 'failed', data: p.failed, role: 'failed' },
      ],
      unit: 'executions',
      note: 'cumulative, from the audit\'s start',
    });
  }
  const failed = sortedDesc(numbers(demo.failed));
  if (failed.length) charts.push({ id: 'failures', title: 'Failures by reason', kind: 'horizontal-bar', labels: failed.map(([r]) => r), series: [{ label: 'devices', data: failed.map(([, n]) => n), role: 'failed' }], unit: 'devices' });
  // A run under --quotas: what the local runtime throttled, per quota bucket.
  const throttled = isObject(demo.throttledCalls) ? sortedDesc(numbers(demo.throttledCalls.byApi)) : [];
  if (throttled.length) charts.push({ id: 'throttled-calls', title: 'Throttled calls per API', kind: 'horizontal-bar', labels: throttled.map(([api]) => api), series: [{ label: 'calls', data: throttled.map(([, n]) => n), role: 'failed' }], unit: 'calls', note: `quotas: ${String(demo.quotas)}` });
  return charts;
}

function demoFacts(demo: Json): [string, string][] {
  const failed = Object.values(numbers(demo.failed)).reduce((a, b) => a + b, 0);
  const facts: [string, string][] = [
    ['devices', String(num(demo.devices) ?? '?')],
    ['rotated', String(num(demo.rotated) ?? '?')],
    ['failed', String(failed)],
  ];
  if (typeof demo.faults === 'string' && demo.faults) facts.push(['faults', `${demo.faults} (seed ${num(demo.seed) ?? '?'})`]);
  if (num(demo.unfinished)) facts.push(['unfinished', String(demo.unfinished)]);
  if (num(demo.wallMs) !== undefined) facts.push(['wall time', `${seconds(demo.wallMs as number)} rotating`]);
  if (num(demo.p50Ms) !== undefined) facts.push(['rotation time', `p50 ${seconds(demo.p50Ms as number)}, p95 ${seconds(num(demo.p95Ms) ?? 0)}, max ${seconds(num(demo.maxMs) ?? 0)}`]);
  if (num(demo.timeScale) !== undefined) facts.push(['time scale', String(demo.timeScale)]);
  if (num(demo.stateTransitionsPerRotation) !== undefined) facts.push(['state transitions', `${round(demo.stateTransitionsPerRotation as number)} per rotation`]);
  if (num(demo.apiCallsPerRotation) !== undefined) facts.push(['AWS API calls', `${round(demo.apiCallsPerRotation as number)} per rotation`]);
  if (num(demo.escalations) !== undefined) facts.push(['escalations', String(demo.escalations)]);
  if (typeof demo.quotas === 'string' && demo.quotas !== 'none') {
    facts.push(['quotas', demo.quotas]);
    facts.push(['throttled calls', String((isObject(demo.throttledCalls) ? num(demo.throttledCalls.total) : undefined) ?? 0)]);
    facts.push(['rotations failed by throttling', String(num(demo.throttlingFailures) ?? 0)]);
  }
  return facts;
}

function violations(demo: Json): string[] {
  return Array.isArray(demo.invariantViolations)
    ? (demo.invariantViolations as unknown[]).map((v) => (isObject(v) ? `${String(v.check ?? 'check')}${v.thingName ? ` ${String(v.thingName)}` : ''}: ${String(v.detail ?? '')}` : String(v)))
    : [];
}

function simulateSpec(sim: Json, source: string): ReportSpec {
  const facts: [string, string][] = [];
  for (const key of ['devices', 'rotated', 'escalations', 'throttledCalls', 'throttlingFailures', 'quotaFloorS', 'completionS', 'completionOverFloor', 'peakOpenExecutions', 'peakLambdaConcurrency']) {
    const v = num(sim[key]);
    if (v !== undefined) facts.push([key, String(round(v, 2))]);
  }
  const charts: ChartSpec[] = [];
  const peak = numbers(sim.peakRatePerApi);
  // The quota each API is held to, when the report carries it (under either name).
  const quotas = numbers(isObject(sim.quotaPerApi) ? sim.quotaPerApi : sim.quotas);
  const apis = Object.keys(peak).sort();
  if (apis.length) {
    charts.push({
      id: 'rate-per-api',
      title: 'Peak rate per API against its quota',
      kind: 'bar',
      labels: apis,
      series: [{ label: 'peak rate', data: apis.map((a) => round(peak[a], 2)) }, ...(Object.keys(quotas).length ? [{ label: 'quota', data: apis.map((a) => quotas[a] ?? NaN), role: 'quota' as const }] : [])],
      unit: 'calls per second',
    });
  }
  const failed = sortedDesc(numbers(sim.failed));
  if (failed.length) charts.push({ id: 'failures', title: 'Failures by reason', kind: 'horizontal-bar', labels: failed.map(([r]) => r), series: [{ label: 'devices', data: failed.map(([, n]) => n), role: 'failed' }], unit: 'devices' });
  const calls = sortedDesc(numbers(sim.apiCallsByOperation));
  if (calls.length) charts.push({ id: 'calls-per-operation', title: 'AWS API calls by operation', kind: 'horizontal-bar', labels: calls.map(([o]) => o), series: [{ label: 'calls', data: calls.map(([, n]) => n) }], unit: 'calls' });
  const warnings = num(sim.throttlingFailures) ? [`${sim.throttlingFailures} rotation(s) failed on throttling`] : [];
  return { title: `Rotor simulation: ${num(sim.devices) ?? '?'} devices`, kind: 'simulate', source, facts, charts, warnings };
}

export function reportSpec(report: unknown, source: string): ReportSpec {
  const kind = reportKind(report);
  const r = report as Json;
  if (kind === 'simulate') return simulateSpec(r, source);
  if (kind === 'bench') {
    const demo = r.demo as Json;
    const facts: [string, string][] = [
      ['devices', String(num(r.devices) ?? '?')],
      ['rotated', String(num(r.rotated) ?? '?')],
      ['failed', String(num(r.failed) ?? '?')],
      ['wall time', `${round((num(r.wallMs) ?? 0) / 1000, 2)} s`],
      ['throughput', `${round(num(r.devicesPerSecond) ?? 0)} devices/s`],
      ['crypto floor', `${round((num(r.cryptoFloorMs) ?? 0) / 1000, 2)} s`],
      ['wall / floor', `${round(num(r.wallOverFloor) ?? 0)}×`],
      ['peak RSS', `${num(r.peakRssMiB) ?? '?'} MiB`],
      ['cores', String(num(r.cores) ?? '?')],
    ];
    return { title: `Rotor bench: ${num(r.devices) ?? '?'} devices`, kind, source, facts, charts: demoCharts(demo), warnings: violations(demo) };
  }
  return { title: `Rotor demo: ${num(r.devices) ?? '?'} devices`, kind, source, facts: demoFacts(r), charts: demoCharts(r), warnings: violations(r) };
}
