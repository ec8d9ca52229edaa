import { consoleExecutionPath, type ThingView } from '../api.js';
import { getJson, h, statusBadge, time } from './dom.js';

/** Thing: a device's current rotation and its history, each linking to its execution. */
export async function thingPage(page: HTMLElement, thing: string): Promise<void> {
  const view = await getJson<ThingView>(`/console/api/things/${encodeURIComponent(thing)}`);
  const link = (arn: string): Node => (arn ? h('a', { href: consoleExecutionPath(arn) }, 'execution') : document.createTextNode('–'));
  const current = view.current;
  page.replaceChildren(
    h('h1', {}, `Thing ${view.thing}`),
    current
      ? h(
          'dl',
          { class: 'facts', id: 'current' },
          h('dt', {}, 'status'), h('dd', {}, statusBadge(current.status), ` in ${current.step}`),
          ...(current.reason ? [h('dt', {}, 'reason'), h('dd', {}, current.reason, current.cause ? ` — ${current.cause}` : '')] : []),
          h('dt', {}, 'rotation'), h('dd', {}, current.rotationId),
          h('dt', {}, 'started'), h('dd', {}, time(current.startedAt), ' · updated ', time(current.updatedAt), ` · attempts ${current.attempts}`),
          h('dt', {}, 'execution'), h('dd', {}, link(current.executionArn)),
        )
      : h('p', { class: 'muted' }, 'no current record (only history)'),
    h('h2', {}, `History (${view.history.length}, newest first)`),
    h(
      'table',
      { class: 'list', id: 'history' },
      h('thead', {}, h('tr', {}, ...['Started', 'Finished', 'Outcome', 'Step', 'Reason', 'Trigger', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, ...view.history.map((r) => h('tr', {}, h('td', {}, time(r.startedAt)), h('td', {}, time(r.finishedAt)), h('td', {}, statusBadge(r.status)), h('td', {}, r.step), h('td', { title: r.cause ?? '' }, r.reason ?? '–'), h('td', {}, r.trigger ?? '–'), h('td', {}, link(r.executionArn))))),
    ),
  );
  page.dataset.loaded = 'true';
}
