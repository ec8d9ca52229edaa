import type { ChartConfiguration } from 'chart.js';
import { REPORT_DATA_ID, type ChartSpec, type ReportSpec } from '../report-spec.js';
import { ChartBox, COLORS } from './charts.js';
import { h } from './dom.js';

/** The page `rotor report` writes: the report's data travels inside it, drawn here with chart.js. */
const ROLE_COLORS: Record<string, string> = { succeeded: COLORS.succeeded, failed: COLORS.failed, started: COLORS.started, quota: COLORS.quota };

function config(spec: ChartSpec): ChartConfiguration {
  const horizontal = spec.kind === 'horizontal-bar';
  const datasets = spec.series.map((s, i) => {
    const color = ROLE_COLORS[s.role ?? ''] ?? COLORS.palette[i % COLORS.palette.length];
    if (s.role === 'quota') {
      // A limit, not a measurement: a wide line marker on each bar's quota, in front of the bars.
      return { type: 'line' as const, label: s.label, data: s.data, borderColor: color, backgroundColor: color, showLine: false, pointStyle: 'line' as const, pointRadius: 28, pointBorderWidth: 3, order: 0 };
    }
    if (spec.kind === 'line') return { type: 'line' as const, label: s.label, data: s.data, borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 2, tension: 0.1 };
    return { type: 'bar' as const, label: s.label, data: s.data, backgroundColor: color, order: 1 };
  });
  return {
    type: spec.kind === 'line' ? 'line' : 'bar',
    data: { labels: spec.labels, datasets } as ChartConfiguration['data'],
    options: {
      indexAxis: horizontal ? 'y' : 'x',
      plugins: { title: { display: true, text: spec.title }, legend: { display: spec.series.length > 1 } },
      scales: {
        x: { stacked: spec.stacked, ticks: { autoSkip: !horizontal }, ...(horizontal ? { title: { display: true, text: spec.unit }, beginAtZero: true } : {}) },
        y: { stacked: spec.stacked, beginAtZero: true, ticks: { autoSkip: !horizontal }, ...(!horizontal ? { title: { display: true, text: spec.unit } } : {}) },
      },
    },
  };
}

document.addEventListener('DOMContentLoaded', () => {
  const page = document.getElementById('page') as HTMLElement;
  const report = JSON.parse(document.getElementById(REPORT_DATA_ID)?.textContent ?? '{}') as ReportSpec;
  document.title = report.title;
  const charts = h('section', { class: 'charts' });
  page.replaceChildren(
    h('h1', {}, report.title),
    h('p', { class: 'muted' }, `${report.kind} report · ${report.source}`),
    ...report.warnings.map((w) => h('p', { class: 'failure' }, w)),
    h('dl', { class: 'facts' }, ...report.facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    charts,
  );
  for (const spec of report.charts) {
    const box = new ChartBox(charts, `chart-${spec.id}`);
    box.render(config(spec));
    if (spec.note) box.box.appendChild(h('p', { class: 'muted note' }, spec.note));
  }
  page.dataset.loaded = 'true';
});
