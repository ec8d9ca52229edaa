import { consoleThingPath, type ExecutionView } from '../api.js';
import type { StateRun, ViewEvent } from '../execution-view.js';
import { duration, getJson, h, pretty, readableCause, statusBadge, time } from './dom.js';
import { graphSvg, OUTCOME_LEGEND } from './graph.js';

const REFRESH_MS = 2_000;

function thingOf(input: string | undefined): string | undefined {
  try {
    const parsed = JSON.parse(input ?? '') as { thingName?: unknown };
    return typeof parsed.thingName === 'string' ? parsed.thingName : undefined;
  } catch {
    return undefined;
  }
}

/** The state an event belongs to: the one entered last before it. */
function eventStates(events: readonly ViewEvent[]): Map<number, string> {
  const out = new Map<number, string>();
  let current = '';
  for (const e of events) {
    if (e.type.endsWith('StateEntered')) current = e.stateEnteredEventDetails?.name ?? '';
    out.set(e.id, e.type.startsWith('Execution') ? '' : current);
    if (e.type.endsWith('StateExited')) current = '';
  }
  return out;
}

/** The error/cause, resource or other short detail of an event, for the table. */
function eventDetail(e: ViewEvent): string {
  for (const [key, value] of Object.entries(e)) {
    if (!key.endsWith('EventDetails') || key === 'stateEnteredEventDetails' || key === 'stateExitedEventDetails' || !value || typeof value !== 'object') continue;
    const d = value as { error?: string; cause?: string; resource?: string; resourceType?: string };
    if (d.error) return `${d.error}${d.cause ? `: ${readableCause(d.cause)}` : ''}`;
    if (d.resource) return `${d.resourceType ?? ''} ${d.resource}`.trim();
  }
  return '';
}

function stateDetails(run: StateRun | undefined, name: string, type: string): HTMLElement {
  if (!run || run.visits === 0) return h('div', { class: 'details', id: 'state-details', 'data-state': name }, h('h3', {}, name), h('p', { class: 'muted' }, `${type} · not reached in this execution`));
  return h(
    'div',
    { class: 'details', id: 'state-details', 'data-state': name },
    h('h3', {}, name),
    h('p', {}, h('span', { class: `badge outcome-${run.outcome}` }, run.outcome.replace('-', ' ')), ` ${type} · entered ${time(run.enteredAt)} · took ${duration(run.enteredAt, run.exitedAt)}${run.visits > 1 ? ` · ${run.visits} visits` : ''}${run.retries ? ` · ${run.retries} retries` : ''}`),
    ...(run.errors.length
      ? [h('h4', {}, 'Errors'), h('ul', { class: 'errors' }, ...run.errors.map((e) => h('li', {}, h('code', {}, e.error), e.cause ? ` ${e.cause}` : '', h('span', { class: 'muted' }, ` (event ${e.eventId})`))))]
      : []),
    h('h4', {}, 'Input'),
    h('pre', { class: 'json', id: 'state-input' }, pretty(run.input) || '–'),
    h('h4', {}, 'Output'),
    h('pre', { class: 'json', id: 'state-output' }, pretty(run.output) || (run.exitedAt ? '–' : '(not exited yet)')),
  );
}

/** Execution: the graph coloured by this execution's path, the selected state's data, the event table. */
export async function executionPage(page: HTMLElement, executionArn: string): Promise<void> {
  let selected: string | undefined;
  const draw = (view: ExecutionView): void => {
    const x = view.execution;
    const thing = thingOf(x.input);
    const types = new Map(view.graph.nodes.map((n) => [n.name, n.type]));
    const events = view.events;
    const lastEntered = [...events].reverse().find((e) => e.type.endsWith('StateEntered'))?.stateEnteredEventDetails?.name;
    selected ??= view.failure?.state ?? lastEntered ?? view.graph.startAt;
    const detailsBox = h('div', { class: 'side' });
    const select = (name: string): void => {
      selected = name;
      detailsBox.replaceChildren(stateDetails(view.path.states[name], name, types.get(name) ?? '?'));
      page.querySelectorAll('.state.selected').forEach((el) => el.classList.remove('selected'));
      page.querySelector(`.state[data-state="${CSS.escape(name)}"]`)?.classList.add('selected');
    };
    const states = eventStates(events);
    const failureBox =
      view.failure || x.error
        ? h(
            'div',
            { class: 'failure', id: 'failure' },
            h('strong', {}, view.failure?.state ? `Failed in ${view.failure.state}: ` : 'Failed: '),
            h('code', {}, view.failure?.error ?? x.error ?? ''),
            h('div', {}, view.failure?.cause ?? x.cause ?? ''),
          )
        : '';
    page.replaceChildren(
      h('p', { class: 'crumbs' }, h('a', { href: '/console/executions' }, 'Executions'), ' / ', x.name),
      h('h1', {}, x.name, ' ', statusBadge(x.status)),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'thing'), h('dd', {}, thing ? h('a', { href: consoleThingPath(thing) }, thing) : '–'),
        h('dt', {}, 'started'), h('dd', {}, time(x.startDate)),
        h('dt', {}, 'stopped'), h('dd', {}, time(x.stopDate), x.stopDate ? ` (${duration(x.startDate, x.stopDate)})` : ''),
        h('dt', {}, 'state machine'), h('dd', {}, view.stateMachine.name ?? view.stateMachine.stateMachineArn),
        h('dt', {}, 'execution ARN'), h('dd', {}, h('code', {}, x.executionArn)),
      ),
      failureBox,
      h('ul', { class: 'legend' }, ...OUTCOME_LEGEND.map((l) => h('li', {}, h('span', { class: `swatch outcome-${l.outcome}` }), l.label))),
      h('section', { class: 'execution' }, h('div', { class: 'graph-box' }, graphSvg(view.graph, view.path, select)), detailsBox),
      h('h2', {}, `Events (${events.length})`),
      h(
        'table',
        { class: 'list events', id: 'events' },
        h('thead', {}, h('tr', {}, ...['ID', 'Type', 'State', 'Time', 'Detail'].map((c) => h('th', {}, c)))),
        h('tbody', {}, ...events.map((e) => h('tr', { class: /Failed|TimedOut|Aborted/.test(e.type) ? 'bad' : '' }, h('td', {}, e.id), h('td', {}, e.type), h('td', {}, states.get(e.id) ?? ''), h('td', {}, time(e.timestamp)), h('td', { class: 'detail' }, eventDetail(e))))),
      ),
      h('h2', {}, 'Execution input'),
      h('pre', { class: 'json', id: 'execution-input' }, pretty(x.input) || '–'),
      ...(x.output ? [h('h2', {}, 'Execution output'), h('pre', { class: 'json' }, pretty(x.output))] : []),
    );
    select(selected);
    page.dataset.loaded = 'true';
    page.dataset.status = x.status;
    if (x.status === 'RUNNING') setTimeout(() => void refresh(), REFRESH_MS);
  };
  const refresh = async (): Promise<void> => draw(await getJson<ExecutionView>(`/console/api/executions/${encodeURIComponent(executionArn)}`));
  await refresh();
}
