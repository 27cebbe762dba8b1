/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The console's small DOM toolkit: elements built from a tag, attributes and children (`h`, and `s` for
 * SVG), re-rendering that keeps what a person opened or focused, JSON fetching, and the few formats
 * every view shares (times, short commits, durations, status badges).
 */
import { formatDuration } from './model.ts';

/** What `h` and `s` take as children: nodes, text, nothing, or lists of these. */
export type Child = Node | string | null | undefined | false | Child[];
/** Attributes by name; a function is an event listener (`onclick`), `false` or undefined leaves it out. */
export type Attributes = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

/** An HTML element. */
export function h(tag: string, attributes: Attributes = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag);
  setAttributes(element, attributes);
  element.append(...nodes(children));
  return element;
}

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element. */
export function s(tag: string, attributes: Attributes = {}, ...children: Child[]): SVGElement {
  const element = document.createElementNS(SVG, tag);
  setAttributes(element, attributes);
  element.append(...nodes(children));
  return element;
}

function setAttributes(element: Element, attributes: Attributes): void {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') element.addEventListener(name.replace(/^on/, ''), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
}

/** Children flattened, without the empty ones. */
export function nodes(children: Child[]): (Node | string)[] {
  const out: (Node | string)[] = [];
  for (const child of children) {
    if (Array.isArray(child)) out.push(...nodes(child));
    else if (child !== null && child !== undefined && child !== false) out.push(child);
  }
  return out;
}

/**
 * Replaces a container's content, keeping what a person did there: which `<details>` were open and which
 * element had the focus (matched by their `data-key`).
 */
export function rerender(container: Element, ...children: Child[]): void {
  const openKeys = new Map(
    [...container.querySelectorAll<HTMLDetailsElement>('details[data-key]')].map((d) => [
      d.dataset.key,
      d.open,
    ]),
  );
  const focused = document.activeElement?.closest('[data-key]');
  const focusKey = focused && container.contains(focused) ? focused.getAttribute('data-key') : null;
  container.replaceChildren(...nodes(children));
  for (const details of container.querySelectorAll<HTMLDetailsElement>('details[data-key]')) {
    const was = openKeys.get(details.dataset.key);
    if (was !== undefined) details.open = was;
  }
  if (focusKey)
    (container.querySelector(`[data-key="${CSS.escape(focusKey)}"]`) as HTMLElement | null)?.focus();
}

/** GETs a JSON document of the local server's API; throws on a status that is not 2xx. */
export async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { cache: 'no-store' });
  // Not signed in (no control token cookie): the server's message says which URL signs this browser in.
  if (response.status === 401) {
    const body = (await response.json().catch(() => ({}))) as { message?: string };
    const message = body.message ?? 'Not signed in: open the console through the URL `npm start` printed';
    main().replaceChildren(h('p', { class: 'problem', role: 'alert' }, message));
    throw new Error(message);
  }
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return (await response.json()) as T;
}

/** Runs `task` soon, once, however often it is asked for meanwhile; never two at a time. */
export function coalesce(task: () => Promise<void>): () => void {
  let running = false;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await task();
    } catch (error) {
      showProblem((error as Error).message);
    } finally {
      running = false;
      if (again) {
        again = false;
        void run();
      }
    }
  };
  return () => void run();
}

/** Says in the page's header that something went wrong. */
export function showProblem(message: string): void {
  const connection = document.getElementById('connection');
  if (connection) connection.textContent = `problem: ${message}`;
}

/** A time as the browser's locale writes it, short. */
export const time = (iso: string | number | undefined) =>
  iso === undefined
    ? ''
    : new Date(iso).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });

/** A commit's first seven characters. */
export const shortSha = (sha: string | undefined) => sha?.slice(0, 7) ?? '';

/** How long a run took, or has taken so far. */
export const runDuration = (run: { startDate: string; stopDate?: string }) =>
  formatDuration((run.stopDate ? Date.parse(run.stopDate) : Date.now()) - Date.parse(run.startDate));

/** The colour class of a run's or a build's status. */
const STATUS_CLASS: Record<string, string> = {
  RUNNING: 'running',
  SUCCEEDED: 'succeeded',
  FAILED: 'failed',
  TIMED_OUT: 'failed',
  ABORTED: 'stopped',
  INTERRUPTED: 'stopped',
  SUPERSEDED: 'stopped',
  IN_PROGRESS: 'running',
  STOPPED: 'stopped',
  FAULT: 'failed',
  WAITING: 'waiting',
};

/** A run's or a build's status, as a coloured badge. */
export function badge(status: string, label = status.toLowerCase().replaceAll('_', ' ')): HTMLElement {
  return h('span', { class: `badge ${STATUS_CLASS[status] ?? 'not-reached'}`, 'data-status': status }, label);
}

/** The page's main region, where the current view draws. */
export const main = () => document.getElementById('main') as HTMLElement;
