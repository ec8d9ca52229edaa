import { graphlib, layout } from '@dagrejs/dagre';
import type { EdgeKind, StateGraph } from './execution-view.js';

/**
 * Places a state graph with dagre (layered, top to bottom, as the Step Functions console draws
 * it). Nothing is placed by hand: a state added to the ASL takes its place from its edges.
 */
export interface PlacedNode {
  name: string;
  type: string;
  /** Centre. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge {
  from: string;
  to: string;
  kind: EdgeKind;
  label?: string;
  points: { x: number; y: number }[];
}

export interface PlacedGraph {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
}

const CHAR_WIDTH = 7.4;
const NODE_HEIGHT = 38;

export function nodeWidth(name: string): number {
  return Math.max(110, Math.ceil(name.length * CHAR_WIDTH) + 32);
}

export function layoutGraph(graph: StateGraph): PlacedGraph {
  const g = new graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'TB', nodesep: 28, ranksep: 46, edgesep: 12, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of graph.nodes) g.setNode(node.name, { width: nodeWidth(node.name), height: NODE_HEIGHT });
  graph.edges.forEach((edge, i) => {
    // Catches pull less: the happy path stays a straight spine, as the AWS console draws it.
    g.setEdge(edge.from, edge.to, { weight: edge.kind === 'catch' ? 1 : 4, minlen: 1 }, `e${i}`);
  });
  layout(g);
  const label = g.graph() as { width?: number; height?: number };
  const types = new Map(graph.nodes.map((n) => [n.name, n.type]));
  return {
    width: Math.ceil(label.width ?? 0),
    height: Math.ceil(label.height ?? 0),
    nodes: g.nodes().map((name: string) => {
      const n = g.node(name) as { x: number; y: number; width: number; height: number };
      return { name, type: types.get(name) ?? '?', x: n.x, y: n.y, width: n.width, height: n.height };
    }),
    edges: graph.edges.map((edge, i) => {
      const e = g.edge(edge.from, edge.to, `e${i}`) as { points?: { x: number; y: number }[] };
      return { ...edge, points: e.points ?? [] };
    }),
  };
}
