import { BarController, BarElement, CategoryScale, Chart, Filler, Legend, LinearScale, LineController, LineElement, PointElement, Title, Tooltip, type ChartConfiguration } from 'chart.js';

/** chart.js, with only the parts the console and the reports draw (bundled by esbuild). */
Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement, Filler, Legend, Title, Tooltip);
Chart.defaults.font.family = 'system-ui, sans-serif';
Chart.defaults.animation = false;

export const COLORS = {
  succeeded: '#2e7d32',
  failed: '#c62828',
  started: '#1565c0',
  inProgress: '#1e88e5',
  neutral: '#607d8b',
  quota: '#ef6c00',
  palette: ['#1565c0', '#2e7d32', '#ef6c00', '#6a1b9a', '#00838f', '#c62828', '#5d4037', '#9e9d24', '#ad1457', '#455a64'],
};

/** A chart in a canvas inside `container`; `update` replaces its data without re-creating it. */
export class ChartBox {
  private chart: Chart | undefined;
  readonly canvas: HTMLCanvasElement;

  readonly box: HTMLElement;

  constructor(container: HTMLElement, readonly id: string) {
    this.box = document.createElement('div');
    this.box.className = 'chart';
    const area = document.createElement('div');
    area.className = 'chart-area';
    this.canvas = document.createElement('canvas');
    this.canvas.id = id;
    area.appendChild(this.canvas);
    this.box.appendChild(area);
    container.appendChild(this.box);
  }

  render(config: ChartConfiguration): void {
    if (this.chart && (this.chart.config as { type?: string }).type === (config as { type?: string }).type) {
      this.chart.data = config.data;
      this.chart.update('none');
      return;
    }
    this.chart?.destroy();
    this.chart = new Chart(this.canvas, { ...config, options: { responsive: true, maintainAspectRatio: false, ...config.options } });
  }
}

export function barConfig(title: string, labels: string[], datasets: { label: string; data: number[]; color?: string }[], options: { stacked?: boolean; horizontal?: boolean; unit?: string } = {}): ChartConfiguration {
  return {
    type: 'bar',
    data: { labels, datasets: datasets.map((d, i) => ({ label: d.label, data: d.data, backgroundColor: d.color ?? COLORS.palette[i % COLORS.palette.length] })) },
    options: {
      indexAxis: options.horizontal ? 'y' : 'x',
      plugins: { title: { display: true, text: title }, legend: { display: datasets.length > 1 } },
      scales: {
        x: { stacked: options.stacked, ticks: { autoSkip: !options.horizontal }, ...(options.horizontal && options.unit ? { title: { display: true, text: options.unit } } : {}) },
        y: { stacked: options.stacked, beginAtZero: true, ticks: { autoSkip: !options.horizontal }, ...(!options.horizontal && options.unit ? { title: { display: true, text: options.unit } } : {}) },
      },
    },
  };
}
