import { consoleExecutionPath, type ExecutionList } from '../api.js';
import { duration, getJson, h, statusBadge, time } from './dom.js';

const STATUSES = ['', 'RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'];

/** A datetime-local value (local time) as ISO, or '' */
function isoOf(local: string): string {
  return local ? new Date(local).toISOString() : '';
}

/** Executions: ListExecutions with filters on status, thing and start time; each links to its page. */
export async function executionsPage(page: HTMLElement): Promise<void> {
  const query = new URLSearchParams(location.search);
  const status = h('select', { name: 'status', id: 'filter-status' }, ...STATUSES.map((s) => h('option', { value: s, selected: s === (query.get('status') ?? '') }, s || 'any status')));
  const thing = h('input', { name: 'thing', id: 'filter-thing', placeholder: 'thing name', value: query.get('thing') ?? '' });
  const since = h('input', { name: 'since', id: 'filter-since', type: 'datetime-local', step: 1 });
  const until = h('input', { name: 'until', id: 'filter-until', type: 'datetime-local', step: 1 });
  const apply = (): void => {
    const next = new URLSearchParams();
    if (status.value) next.set('status', status.value);
    if (thing.value.trim()) next.set('thing', thing.value.trim());
    if (since.value) next.set('since', isoOf(since.value));
    if (until.value) next.set('until', isoOf(until.value));
    location.search = next.toString();
  };
  const form = h('div', { class: 'filters' }, status, thing, h('label', {}, 'started after ', since), h('label', {}, 'before ', until), h('button', { type: 'button', id: 'filter-apply', onclick: apply }, 'Filter'));
  thing.addEventListener('keydown', (e) => {
    if ((e as KeyboardEvent).key === 'Enter') apply();
  });
  const body = h('tbody');
  const note = h('p', { class: 'muted' });
  page.replaceChildren(
    h('h1', {}, 'Executions'),
    form,
    h('table', { class: 'list', id: 'executions' }, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Status'), h('th', {}, 'Started'), h('th', {}, 'Stopped'), h('th', {}, 'Duration'))), body),
    note,
  );
  const api = new URLSearchParams(query);
  api.set('limit', '500');
  const list = await getJson<ExecutionList>(`/console/api/executions?${api.toString()}`);
  body.replaceChildren(
    ...list.executions.map((e) =>
      h('tr', { 'data-status': e.status }, h('td', {}, h('a', { href: consoleExecutionPath(e.executionArn) }, e.name)), h('td', {}, statusBadge(e.status)), h('td', {}, time(e.startDate)), h('td', {}, time(e.stopDate)), h('td', {}, duration(e.startDate, e.stopDate))),
    ),
  );
  note.textContent = list.executions.length === 0 ? 'no execution matches' : `${list.executions.length} execution(s), newest first${list.truncated ? ' (more match: narrow the filters)' : ''}`;
  page.dataset.loaded = 'true';
}
