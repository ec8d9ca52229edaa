/**
 * A report as the page draws it: facts and chart descriptions, independent of the charting
 * library. `rotor report` (cli/report) builds it from a demo, bench or simulate JSON file; the
 * page (app/report-main.ts) turns each chart into a chart.js chart.
 */
export interface ChartSeries {
  label: string;
  data: number[];
  /** 'quota': drawn as a line of markers against the bars (a limit, not a measurement). */
  role?: 'value' | 'quota' | 'succeeded' | 'failed' | 'started';
}

export interface ChartSpec {
  id: string;
  title: string;
  kind: 'bar' | 'horizontal-bar' | 'line';
  labels: string[];
  series: ChartSeries[];
  /** Axis title of the values. */
  unit: string;
  stacked?: boolean;
  /** What the chart shows, in one sentence under it. */
  note?: string;
}

export interface ReportSpec {
  title: string;
  kind: 'demo' | 'bench' | 'simulate';
  source: string;
  facts: [string, string][];
  charts: ChartSpec[];
  /** Problems the report itself records (check failures), shown first. */
  warnings: string[];
}

/** The element the data travels in, inside the self-contained page. */
export const REPORT_DATA_ID = 'report-data';
