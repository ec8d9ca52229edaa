import type { FleetView } from '../api.js';
import { barConfig, ChartBox, COLORS } from './charts.js';
import { getJson, h, time } from './dom.js';

const STATUS_ORDER = ['IN_PROGRESS', 'SUCCEEDED', 'FAILED'];
const REFRESH_MS = 2_000;

function entries(record: Record<string, number> | undefined): [string, number][] {
  return Object.entries(record ?? {}).sort(([, a], [, b]) => b - a);
}

/** Fleet: the rotation table's counts and the executions over time; refreshes itself every 2 s. */
export async function fleetPage(page: HTMLElement): Promise<void> {
  const counts = h('section', { class: 'cards', id: 'counts' });
  const stamp = h('p', { class: 'muted', id: 'updated' });
  const grid = h('section', { class: 'charts' });
  page.replaceChildren(h('h1', {}, 'Fleet'), stamp, counts, grid);
  const overTime = new ChartBox(grid, 'chart-over-time');
  const byStep = new ChartBox(grid, 'chart-in-flight');
  const byReason = new ChartBox(grid, 'chart-failures');
  const extra = h('section', { class: 'charts' });
  page.appendChild(extra);
  let throttled: ChartBox | undefined;
  let pacing: ChartBox | undefined;

  const draw = (fleet: FleetView): void => {
    const statuses = [...STATUS_ORDER, ...Object.keys(fleet.counts).filter((s) => !STATUS_ORDER.includes(s))];
    counts.replaceChildren(
      h('div', { class: 'card', 'data-status': 'TOTAL' }, h('span', { class: 'count' }, fleet.total), h('span', { class: 'label' }, 'things recorded')),
      ...statuses.map((s) =>
        h('a', { class: `card status-${s.toLowerCase().replace(/_/g, '-')}`, 'data-status': s, href: `/console/executions?status=${s === 'IN_PROGRESS' ? 'RUNNING' : s}` }, h('span', { class: 'count' }, fleet.counts[s] ?? 0), h('span', { class: 'label' }, s.replace(/_/g, ' ').toLowerCase())),
      ),
      h('div', { class: 'card', 'data-status': 'EXECUTIONS' }, h('span', { class: 'count' }, fleet.executions.total), h('span', { class: 'label' }, 'executions')),
    );
    stamp.textContent = `rotation table and executions as of ${time(fleet.generatedAt)} · refreshes every ${REFRESH_MS / 1000} s`;
    const labels = fleet.series.buckets.map((b) => new Date(b.at).toLocaleTimeString(undefined, { hour12: false }));
    overTime.render(
      barConfig(
        `Rotations over time (per ${fleet.series.bucketMs / 1000} s)`,
        labels,
        [
          { label: 'started', data: fleet.series.buckets.map((b) => b.started), color: COLORS.started },
          { label: 'succeeded', data: fleet.series.buckets.map((b) => b.succeeded), color: COLORS.succeeded },
          { label: 'failed', data: fleet.series.buckets.map((b) => b.failed), color: COLORS.failed },
        ],
        { unit: 'executions' },
      ),
    );
    const steps = entries(fleet.inFlightByStep);
    byStep.render(barConfig('In flight, by state', steps.map(([s]) => s), [{ label: 'in flight', data: steps.map(([, n]) => n), color: COLORS.inProgress }], { horizontal: true, unit: 'rotations' }));
    const reasons = entries(fleet.failuresByReason);
    byReason.render(barConfig('Failures, by reason', reasons.map(([r]) => r), [{ label: 'failed', data: reasons.map(([, n]) => n), color: COLORS.failed }], { horizontal: true, unit: 'things' }));
    const throttle = entries(fleet.throttledByOperation);
    if (throttle.length) {
      throttled ??= new ChartBox(extra, 'chart-throttled');
      throttled.render(barConfig('Throttled calls, by API', throttle.map(([o]) => o), [{ label: 'throttled', data: throttle.map(([, n]) => n), color: COLORS.quota }], { horizontal: true, unit: 'calls' }));
    }
    const rates = entries(fleet.pacingRatePerApi);
    if (rates.length) {
      pacing ??= new ChartBox(extra, 'chart-pacing');
      pacing.render(barConfig('Pacing rate, by API', rates.map(([o]) => o), [{ label: 'calls/s', data: rates.map(([, n]) => n), color: COLORS.neutral }], { horizontal: true, unit: 'calls/s' }));
    }
    page.dataset.loaded = 'true';
  };

  const refresh = async (): Promise<void> => {
    try {
      draw(await getJson<FleetView>('/console/api/fleet'));
      stamp.classList.remove('error');
    } catch (error) {
      stamp.textContent = `could not refresh: ${(error as Error).message}`;
      stamp.classList.add('error');
    }
    setTimeout(() => void refresh(), REFRESH_MS);
  };
  await refresh();
}
