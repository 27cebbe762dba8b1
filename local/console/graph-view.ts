/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The run page's drawing of its state machine: laid out by graph.ts (dagre), drawn as SVG, each state
 * coloured by what happened to it in the run.
 */
import { h, s } from './dom.ts';
import { layoutMachine } from './graph.ts';
import {
  type GraphNode,
  type MachineGraph,
  STATUS_LABELS,
  type StateRun,
  type StateStatus,
} from './model.ts';

/** The mark beside a state's name, so its status reads without colour too. */
export const STATUS_MARK: Record<StateStatus, string> = {
  'not-reached': '',
  running: '…',
  waiting: '‖',
  succeeded: '✓',
  retried: '↻',
  caught: '⚠',
  failed: '✗',
  stopped: '■',
};

/** What the colours and marks of the graph mean. */
export function legend(): HTMLElement {
  const shown: StateStatus[] = [
    'not-reached',
    'running',
    'waiting',
    'succeeded',
    'retried',
    'caught',
    'failed',
    'stopped',
  ];
  return h(
    'ul',
    { class: 'legend', 'aria-label': 'What the colours mean' },
    shown.map((status) =>
      h(
        'li',
        {},
        h('span', { class: `swatch ${status}`, 'aria-hidden': 'true' }, STATUS_MARK[status]),
        STATUS_LABELS[status],
      ),
    ),
  );
}

let measureContext: CanvasRenderingContext2D | null | undefined;

function measure(text: string): number {
  measureContext ??= document.createElement('canvas').getContext('2d');
  if (!measureContext) return text.length * 7.5;
  measureContext.font = '600 13px system-ui, sans-serif';
  return Math.ceil(measureContext.measureText(text).width);
}

/**
 * The state machine as an SVG: each state a box coloured and marked by what happened to it in this run
 * (Map iterations named when the input names them), each transition an arrow; a state is selected by
 * click or keyboard.
 */
export function drawGraph(
  model: MachineGraph,
  states: Map<string, StateRun>,
  names: Map<string, string[]>,
  selected: string | undefined,
  select: (state: string) => void,
  runStatus: string,
): SVGElement {
  const itemsLine = (node: GraphNode) =>
    node.kind === 'state' && node.state && names.has(node.state) ? 16 : 0;
  const placed = layoutMachine(model, measure, (node) => (node.kind === 'state' ? 38 + itemsLine(node) : 28));
  const statusOf = (node: GraphNode): StateStatus =>
    node.kind === 'start'
      ? 'succeeded'
      : node.kind === 'end'
        ? runStatus === 'SUCCEEDED'
          ? 'succeeded'
          : runStatus === 'RUNNING'
            ? 'not-reached'
            : 'failed'
        : node.state
          ? (states.get(node.state)?.status ?? 'not-reached')
          : 'not-reached';
  const svg = s(
    'svg',
    {
      class: 'machine',
      viewBox: `0 0 ${Math.ceil(placed.width)} ${Math.ceil(placed.height)}`,
      width: Math.ceil(placed.width),
      height: Math.ceil(placed.height),
      role: 'group',
      'aria-label': 'The state machine, each state coloured by what happened to it in this run',
    },
    s(
      'defs',
      {},
      ['next', 'catch', 'choice'].map((kind) =>
        s(
          'marker',
          {
            id: `arrow-${kind}`,
            viewBox: '0 0 10 10',
            refX: 9,
            refY: 5,
            markerWidth: 7,
            markerHeight: 7,
            orient: 'auto-start-reverse',
          },
          s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: `arrow-${kind}` }),
        ),
      ),
    ),
  );
  // Shrinks to the page's width, never grows past its natural size.
  svg.style.maxWidth = `${Math.ceil(placed.width)}px`;
  for (const group of placed.groups) {
    const b = group.box;
    const status = states.get(group.state)?.status ?? 'not-reached';
    svg.append(
      s(
        'g',
        { class: `group ${status}` },
        s('rect', { x: b.x, y: b.y, width: b.width, height: b.height, rx: 8, class: 'group-box' }),
        s('text', { x: b.x + 8, y: b.y + 13, class: 'group-label' }, group.label),
      ),
    );
  }
  for (const edge of placed.edges) {
    if (edge.points.length < 2) continue;
    const d = edge.points
      .map((p, i) => `${i === 0 ? 'M' : 'L'} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`)
      .join(' ');
    const marker =
      edge.kind === 'catch' ? 'catch' : edge.kind === 'choice' || edge.kind === 'default' ? 'choice' : 'next';
    svg.append(
      s(
        'g',
        { class: `edge ${edge.kind}` },
        s('path', { d, 'marker-end': `url(#arrow-${marker})` }),
        edge.label && edge.labelAt
          ? s(
              'text',
              { x: edge.labelAt.x, y: edge.labelAt.y + 4, 'text-anchor': 'middle', class: 'edge-label' },
              edge.label,
            )
          : null,
      ),
    );
  }
  for (const node of placed.nodes) {
    const status = statusOf(node);
    if (node.kind !== 'state') {
      svg.append(
        s(
          'g',
          { class: `terminal ${node.kind} ${status}`, 'data-terminal': node.id },
          s('rect', {
            x: node.x,
            y: node.y,
            width: node.width,
            height: node.height,
            rx: node.height / 2,
            class: 'terminal-box',
          }),
          s(
            'text',
            {
              x: node.x + node.width / 2,
              y: node.y + node.height / 2 + 4,
              'text-anchor': 'middle',
              class: 'terminal-text',
            },
            node.label,
          ),
        ),
      );
      continue;
    }
    const outcome = node.state ? states.get(node.state) : undefined;
    const items = node.state ? names.get(node.state) : undefined;
    const itemText = items
      ? items
          .map((item, index) => {
            const it = outcome?.iterations.find((o) => o.index === index);
            return `${item} ${it ? STATUS_MARK[it.status] || '·' : '·'}`;
          })
          .join('  ')
      : '';
    const label = `${node.state}: ${node.stateType}, ${STATUS_LABELS[status]}${itemText ? ` (${itemText})` : ''}`;
    const state = node.state ?? '';
    const activate = (event: Event) => {
      if (event instanceof KeyboardEvent && event.key !== 'Enter' && event.key !== ' ') return;
      event.preventDefault();
      select(state);
    };
    svg.append(
      s(
        'g',
        {
          class: `node ${status}${selected === state ? ' selected' : ''}${node.waitsForToken ? ' gate' : ''}`,
          tabindex: 0,
          role: 'button',
          'aria-label': label,
          'aria-pressed': selected === state ? 'true' : 'false',
          'data-key': `node:${state}`,
          'data-state': state,
          'data-status': status,
          onclick: activate,
          onkeydown: activate,
        },
        s('title', {}, label),
        s('rect', {
          x: node.x,
          y: node.y,
          width: node.width,
          height: node.height,
          rx: 6,
          class: 'state-box',
        }),
        s('text', { x: node.x + 12, y: node.y + 23, class: 'state-text' }, node.label),
        s(
          'text',
          { x: node.x + node.width - 12, y: node.y + 23, 'text-anchor': 'end', class: 'state-text mark' },
          STATUS_MARK[status],
        ),
        node.retriers
          ? s(
              'text',
              { x: node.x + node.width - 28, y: node.y + 23, 'text-anchor': 'end', class: 'state-text mark' },
              outcome?.retries ? `↻${outcome.retries}` : '',
            )
          : null,
        itemText ? s('text', { x: node.x + 12, y: node.y + 40, class: 'state-text items' }, itemText) : null,
      ),
    );
  }
  return svg;
}
