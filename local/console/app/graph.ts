import type { ExecutionPath, StateGraph } from '../execution-view.js';
import { layoutGraph } from '../graph-layout.js';
import { svg } from './dom.js';

/** Draws the laid-out state graph as SVG, each state coloured by its outcome in this execution. */
export function graphSvg(graph: StateGraph, path: ExecutionPath, onSelect: (state: string) => void): SVGElement {
  const placed = layoutGraph(graph);
  const taken = new Set(path.transitions.map((t) => `${t.from}\u0000${t.to}`));
  const root = svg('svg', { class: 'graph', viewBox: `0 0 ${placed.width} ${placed.height}`, width: placed.width, height: placed.height, role: 'img', 'aria-label': 'state machine graph' });
  root.appendChild(
    svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))),
  );
  for (const edge of placed.edges) {
    if (edge.points.length === 0) continue;
    const d = edge.points.map((p, i) => `${i === 0 ? 'M' : 'L'} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(' ');
    // A state can reach the same next state by its Next and by a Catch: the one taken is the Catch when its error was caught.
    const caught = path.states[edge.from]?.outcome === 'caught';
    const isTaken = taken.has(`${edge.from}\u0000${edge.to}`) && (edge.kind === 'catch') === caught;
    const line = svg('path', { d, class: `edge edge-${edge.kind}${isTaken ? ' taken' : ''}`, 'marker-end': 'url(#arrow)', 'data-from': edge.from, 'data-to': edge.to });
    if (edge.label) line.appendChild(svg('title', {}, `${edge.kind}: ${edge.label}`));
    root.appendChild(line);
  }
  for (const node of placed.nodes) {
    const run = path.states[node.name];
    const outcome = run?.outcome ?? 'not-reached';
    const group = svg('g', {
      class: `state outcome-${outcome} type-${node.type.toLowerCase()}`,
      'data-state': node.name,
      'data-outcome': outcome,
      transform: `translate(${(node.x - node.width / 2).toFixed(1)} ${(node.y - node.height / 2).toFixed(1)})`,
      tabindex: 0,
    });
    const terminal = node.type === 'Succeed' || node.type === 'Fail';
    group.appendChild(svg('rect', { width: node.width, height: node.height, rx: terminal ? node.height / 2 : 6 }));
    group.appendChild(svg('text', { x: node.width / 2, y: node.height / 2 + 4, 'text-anchor': 'middle' }, node.name));
    const notes = [run && run.retries > 0 ? `${run.retries} retr${run.retries === 1 ? 'y' : 'ies'}` : '', run && run.visits > 1 ? `${run.visits} visits` : ''].filter(Boolean).join(', ');
    if (notes) group.appendChild(svg('text', { x: node.width - 4, y: -3, 'text-anchor': 'end', class: 'note' }, notes));
    group.appendChild(svg('title', {}, `${node.name} (${node.type}): ${outcome.replace('-', ' ')}`));
    group.addEventListener('click', () => onSelect(node.name));
    group.addEventListener('keydown', (e) => {
      if ((e as KeyboardEvent).key === 'Enter') onSelect(node.name);
    });
    root.appendChild(group);
  }
  return root;
}

export const OUTCOME_LEGEND: { outcome: string; label: string }[] = [
  { outcome: 'succeeded', label: 'succeeded' },
  { outcome: 'retried', label: 'succeeded after retry' },
  { outcome: 'caught', label: 'failed, caught' },
  { outcome: 'failed', label: 'failed' },
  { outcome: 'in-progress', label: 'in progress' },
  { outcome: 'not-reached', label: 'not reached' },
];
