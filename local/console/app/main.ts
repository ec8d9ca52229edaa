import { CONSOLE_PREFIX } from '../api.js';
import { h } from './dom.js';
import { executionPage } from './execution-page.js';
import { executionsPage } from './executions-page.js';
import { fleetPage } from './fleet-page.js';
import { thingPage } from './thing-page.js';

/**
 * The console's pages. Each is a plain page load (links are links); the route is the path:
 * /console/ fleet, /console/executions, /console/executions/<executionArn>, /console/things/<name>.
 */
async function route(page: HTMLElement): Promise<void> {
  const rest = location.pathname.startsWith(CONSOLE_PREFIX) ? location.pathname.slice(CONSOLE_PREFIX.length) : '';
  const [section, ...tail] = rest.split('/');
  const arg = decodeURIComponent(tail.join('/'));
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', (a as HTMLElement).dataset.nav === (section || 'fleet')));
  switch (section) {
    case '':
      document.title = 'Fleet · Rotor console';
      return fleetPage(page);
    case 'executions':
      document.title = arg ? `${arg.split(':').pop()} · Rotor console` : 'Executions · Rotor console';
      return arg ? executionPage(page, arg) : executionsPage(page);
    case 'things':
      document.title = `${arg} · Rotor console`;
      return thingPage(page, arg);
    default:
      page.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, `The console has no page ${location.pathname}.`));
  }
}

document.addEventListener('DOMContentLoaded', () => {
  const page = document.getElementById('page') as HTMLElement;
  route(page).catch((error: unknown) => {
    page.replaceChildren(h('h1', {}, 'Error'), h('p', { class: 'failure', id: 'error' }, error instanceof Error ? error.message : String(error)));
    page.dataset.loaded = 'error';
  });
});
