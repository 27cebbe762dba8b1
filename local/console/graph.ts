import { graphlib, layout } from '@dagrejs/dagre';
import type { GraphEdge, GraphNode, MachineGraph } from './model.ts';

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedGraph {
  width: number;
  height: number;
  nodes: (GraphNode & Box)[];
  groups: { id: string; label: string; state: string; box: Box }[];
  edges: (GraphEdge & { points: { x: number; y: number }[]; labelAt?: { x: number; y: number } })[];
}

/** Space above a group's first node, for the group's title. */
const GROUP_TITLE = 18;

/**
 * Lays a state machine's graph out top to bottom with dagre (compound: Map and Parallel groups hold
 * their states). Box coordinates are the top-left corner; `measure` gives a text's width in pixels.
 */
export function layoutMachine(
  graph: MachineGraph,
  measure: (text: string) => number,
  nodeHeight: (node: GraphNode) => number,
): PlacedGraph {
  const g = new graphlib.Graph({ compound: true, multigraph: true });
  g.setGraph({ rankdir: 'TB', nodesep: 28, ranksep: 34, edgesep: 12, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const group of graph.groups) g.setNode(group.id, { width: 0, height: 0, paddingTop: GROUP_TITLE });
  for (const node of graph.nodes) {
    const width =
      node.kind === 'state'
        ? Math.max(120, measure(node.label) + 44)
        : Math.max(64, measure(node.label) + 24);
    g.setNode(node.id, { width, height: nodeHeight(node) });
  }
  for (const group of graph.groups) if (group.parent) g.setParent(group.id, group.parent);
  for (const node of graph.nodes) if (node.parent) g.setParent(node.id, node.parent);
  graph.edges.forEach((edge, index) => {
    const label = edge.label ? { width: measure(edge.label) + 8, height: 16, labelpos: 'c' as const } : {};
    g.setEdge(edge.from, edge.to, { ...label, minlen: 1 }, String(index));
  });
  layout(g);

  const box = (id: string): Box => {
    const n = g.node(id) as { x: number; y: number; width: number; height: number };
    return { x: n.x - n.width / 2, y: n.y - n.height / 2, width: n.width, height: n.height };
  };
  const nodes = graph.nodes.map((node) => ({ ...node, ...box(node.id) }));
  const groups = graph.groups.map((group) => {
    const b = box(group.id);
    return { id: group.id, label: group.label, state: group.state, box: b };
  });
  const edges = graph.edges.map((edge, index) => {
    const e = g.edge({ v: edge.from, w: edge.to, name: String(index) }) as {
      points?: { x: number; y: number }[];
      x?: number;
      y?: number;
    };
    return {
      ...edge,
      points: e.points ?? [],
      ...(edge.label && e.x !== undefined && e.y !== undefined ? { labelAt: { x: e.x, y: e.y } } : {}),
    };
  });
  const size = g.graph() as { width?: number; height?: number };
  return { width: size.width ?? 0, height: size.height ?? 0, nodes, groups, edges };
}
