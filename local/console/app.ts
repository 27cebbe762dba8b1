/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The console in the browser: the runs, newest first, and one run at a time (its state machine drawn and
 * coloured from its history, failures, approval, builds and their logs followed live, notifications,
 * event history). Everything comes from the local server's JSON API and its server-sent events.
 */
import { layoutMachine } from './graph.ts';
import {
  causeSummary,
  formatDuration,
  type GraphNode,
  type HistoryEventLike,
  iterationNames,
  type MachineGraph,
  machineGraph,
  STATUS_LABELS,
  type StateRun,
  type StateStatus,
  stateRuns,
} from './model.ts';

interface PendingApproval {
  executionArn: string;
  environment: string;
  approve: string;
  reject: string;
  expiresAt: string;
}

interface RunSummary {
  name: string;
  executionArn: string;
  stateMachine?: string;
  status: string;
  repository?: string;
  ref?: string;
  commit?: string;
  message?: string;
  pusher?: string;
  stage?: string;
  startDate: string;
  stopDate?: string;
  error?: string;
  cause?: string;
  redriveOf?: string;
  approval?: PendingApproval;
  deployments: Record<string, string>;
}

interface RunBuild {
  id: string;
  project: string;
  stage: string;
  environment?: string;
  status: string;
  startTime: number;
  endTime?: number;
  exportedVariables: { Name: string; Value: string }[];
  reports: {
    name: string;
    status: string;
    tests: number;
    failures: number;
    errors: number;
    skipped: number;
    message?: string;
  }[];
}

interface Notification {
  id: string;
  topic: string;
  subject: string;
  body: string;
  createdAt: string;
}

interface RunDetail extends RunSummary {
  input: unknown;
  output?: unknown;
  history: (HistoryEventLike & { id: number })[];
  builds: RunBuild[];
  notifications: Notification[];
}

// ---- small DOM helpers ----

type Child = Node | string | null | undefined | false | Child[];
type Attributes = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

function h(tag: string, attributes: Attributes = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag);
  setAttributes(element, attributes);
  element.append(...nodes(children));
  return element;
}

const SVG = 'http://www.w3.org/2000/svg';

function s(tag: string, attributes: Attributes = {}, ...children: Child[]): SVGElement {
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

function nodes(children: Child[]): (Node | string)[] {
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
function rerender(container: Element, ...children: Child[]): void {
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

async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return (await response.json()) as T;
}

/** Runs `task` soon, once, however often it is asked for meanwhile; never two at a time. */
function coalesce(task: () => Promise<void>): () => void {
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

function showProblem(message: string): void {
  const connection = document.getElementById('connection');
  if (connection) connection.textContent = `problem: ${message}`;
}

const time = (iso: string | number | undefined) =>
  iso === undefined
    ? ''
    : new Date(iso).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });

const shortSha = (sha: string | undefined) => sha?.slice(0, 7) ?? '';

const runDuration = (run: { startDate: string; stopDate?: string }) =>
  formatDuration((run.stopDate ? Date.parse(run.stopDate) : Date.now()) - Date.parse(run.startDate));

const STATUS_CLASS: Record<string, string> = {
  RUNNING: 'running',
  SUCCEEDED: 'succeeded',
  FAILED: 'failed',
  TIMED_OUT: 'failed',
  ABORTED: 'stopped',
  INTERRUPTED: 'stopped',
  IN_PROGRESS: 'running',
  STOPPED: 'stopped',
  FAULT: 'failed',
  WAITING: 'waiting',
};

function badge(status: string, label = status.toLowerCase().replaceAll('_', ' ')): HTMLElement {
  return h('span', { class: `badge ${STATUS_CLASS[status] ?? 'not-reached'}`, 'data-status': status }, label);
}

const main = () => document.getElementById('main') as HTMLElement;

// ---- routing ----

type View = { kind: 'runs' } | { kind: 'run'; name: string };

function currentView(): View {
  const match = /^#\/runs\/(.+)$/.exec(location.hash);
  return match?.[1] ? { kind: 'run', name: decodeURIComponent(match[1]) } : { kind: 'runs' };
}

let view: View = currentView();
let page: RunsPage | RunPage | undefined;

function route(): void {
  view = currentView();
  page?.dispose();
  page = view.kind === 'run' ? new RunPage(view.name) : new RunsPage();
  page.refresh();
}

// ---- the runs list ----

class RunsPage {
  readonly #table = h('tbody');
  readonly #approvals = h('div', { class: 'approvals' });
  readonly #empty = h(
    'p',
    { class: 'empty' },
    'No runs yet. Push to the local git remote (see the terminal) to start one.',
  );
  readonly refresh = coalesce(() => this.#load());
  #runs: RunSummary[] = [];

  constructor() {
    document.title = 'Runs · stepline';
    main().replaceChildren(
      h('h1', {}, 'Runs'),
      this.#approvals,
      h(
        'table',
        { class: 'runs' },
        h('caption', { class: 'visually-hidden' }, 'Runs, newest first'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            [
              'Status',
              'Run',
              'Repository',
              'Branch',
              'Commit',
              'Pushed by',
              'Stage',
              'Started',
              'Duration',
            ].map((label) => h('th', { scope: 'col', class: 'col' }, label)),
          ),
        ),
        this.#table,
      ),
      this.#empty,
    );
  }

  onChange(kind: string): void {
    if (kind === 'execution' || kind === 'history' || kind === 'outbox') this.refresh();
  }

  tick(): void {
    for (const run of this.#runs) {
      if (run.status !== 'RUNNING') continue;
      const cell = this.#table.querySelector(`[data-duration="${CSS.escape(run.name)}"]`);
      if (cell) cell.textContent = runDuration(run);
    }
  }

  dispose(): void {}

  async #load(): Promise<void> {
    const runs = await getJson<RunSummary[]>('/api/runs');
    runs.sort((a, b) => b.startDate.localeCompare(a.startDate));
    this.#runs = runs;
    this.#empty.hidden = runs.length > 0;
    rerender(
      this.#table,
      runs.map((run) =>
        h(
          'tr',
          { 'data-run': run.name, 'data-status': run.status },
          h(
            'td',
            {},
            badge(run.approval ? 'WAITING' : run.status, run.approval ? 'waiting for approval' : undefined),
          ),
          h(
            'td',
            {},
            h(
              'a',
              { href: `#/runs/${encodeURIComponent(run.name)}`, 'data-key': `run:${run.name}` },
              run.name,
            ),
          ),
          h('td', {}, run.repository ?? ''),
          h('td', {}, run.ref ?? ''),
          h(
            'td',
            { class: 'commit' },
            h('code', { title: run.commit ?? '' }, shortSha(run.commit)),
            ' ',
            run.message?.split('\n')[0] ?? '',
          ),
          h('td', {}, run.pusher ?? ''),
          h('td', {}, run.stage ?? ''),
          h('td', {}, h('time', { datetime: run.startDate }, time(run.startDate))),
          h('td', { 'data-duration': run.name }, runDuration(run)),
        ),
      ),
    );
    const waiting = runs.filter((r) => r.approval);
    rerender(
      this.#approvals,
      waiting.length
        ? h(
            'ul',
            { class: 'callout waiting' },
            waiting.map((r) =>
              h(
                'li',
                {},
                `${r.approval?.environment} waits for approval: `,
                h(
                  'a',
                  { href: `#/runs/${encodeURIComponent(r.name)}`, 'data-key': `approval:${r.name}` },
                  r.name,
                ),
              ),
            ),
          )
        : null,
    );
  }
}

// ---- one run ----

const definitions = new Map<string, Promise<Record<string, unknown>>>();

function definitionOf(key: string): Promise<Record<string, unknown>> {
  let definition = definitions.get(key);
  if (!definition) {
    definition = getJson<{ definition: Record<string, unknown> }>(
      `/api/statemachines/${encodeURIComponent(key)}`,
    ).then((m) => m.definition);
    definition.catch(() => definitions.delete(key));
    definitions.set(key, definition);
  }
  return definition;
}

const STATUS_MARK: Record<StateStatus, string> = {
  'not-reached': '',
  running: '…',
  waiting: '‖',
  succeeded: '✓',
  retried: '↻',
  caught: '⚠',
  failed: '✗',
  stopped: '■',
};

class RunPage {
  readonly name: string;
  readonly #title = h('div');
  readonly #header = h('div', { class: 'run-header' });
  readonly #failure = h('div', { class: 'failure-slot' });
  readonly #approval = h('div', { class: 'approval-slot' });
  readonly #graph = h('div', { class: 'graph-slot' });
  readonly #selected = h('div', { class: 'selected-state', 'aria-live': 'polite' });
  readonly #builds = h('div', { class: 'builds' });
  readonly #notifications = h('div');
  readonly #history = h('div');
  readonly #output = h('div');
  readonly refresh = coalesce(() => this.#load());
  readonly #logs = new Map<string, BuildLog>();
  #run: RunDetail | undefined;
  #graphModel: MachineGraph | undefined;
  #states = new Map<string, StateRun>();
  #selectedState: string | undefined;
  #approvalKey: string | undefined;
  #decided = new Map<string, HTMLElement>();
  #disposed = false;

  constructor(name: string) {
    this.name = name;
    document.title = `${name} · stepline`;
    main().replaceChildren(
      h('p', { class: 'back' }, h('a', { href: '#/' }, '← All runs')),
      this.#title,
      h('div', { class: 'run-top' }, this.#header, this.#approval),
      this.#failure,
      h(
        'section',
        { 'aria-labelledby': 'graph-title' },
        h('h2', { id: 'graph-title' }, 'State machine'),
        legend(),
        this.#graph,
        this.#selected,
      ),
      h(
        'section',
        { 'aria-labelledby': 'builds-title' },
        h('h2', { id: 'builds-title' }, 'Builds'),
        this.#builds,
      ),
      h(
        'section',
        { 'aria-labelledby': 'notifications-title' },
        h('h2', { id: 'notifications-title' }, 'Notifications'),
        this.#notifications,
      ),
      h(
        'section',
        { 'aria-labelledby': 'history-title' },
        h('h2', { id: 'history-title' }, 'Event history'),
        this.#history,
      ),
      this.#output,
    );
  }

  onChange(kind: string, id: string): void {
    if (kind === 'log') {
      const log = this.#logs.get(id);
      if (log) log.follow();
      else this.refresh();
      return;
    }
    if (kind === 'outbox' || !this.#run || id === this.#run.executionArn || kind === 'execution')
      this.refresh();
  }

  tick(): void {
    if (this.#run?.status === 'RUNNING') {
      const cell = this.#header.querySelector('[data-duration]');
      if (cell) cell.textContent = runDuration(this.#run);
    }
  }

  dispose(): void {
    this.#disposed = true;
  }

  async #load(): Promise<void> {
    const response = await fetch(`/api/runs/${encodeURIComponent(this.name)}`, { cache: 'no-store' });
    if (response.status === 404) {
      main().replaceChildren(
        h('p', { class: 'back' }, h('a', { href: '#/' }, '← All runs')),
        h('h1', {}, 'No such run'),
        h('p', {}, `There is no run named ${this.name}.`),
      );
      return;
    }
    if (!response.ok) throw new Error(`the run answered ${response.status}`);
    const run = (await response.json()) as RunDetail;
    const definition = await definitionOf(run.stateMachine ?? 'pipeline');
    if (this.#disposed) return;
    this.#run = run;
    this.#graphModel ??= machineGraph(definition);
    const waiting = new Set(this.#graphModel.nodes.filter((n) => n.waitsForToken).map((n) => n.state));
    this.#states = stateRuns(run.history, {
      running: run.status === 'RUNNING',
      waitsForToken: (state) => waiting.has(state),
    });
    const names = iterationNames(definition, run.input);
    this.#renderHeader(run);
    this.#renderFailure(run, names);
    this.#renderApproval(run);
    this.#renderGraph(names);
    this.#renderSelected(names);
    this.#renderBuilds(run);
    this.#renderNotifications(run);
    this.#renderHistory(run);
    rerender(
      this.#output,
      run.output === undefined
        ? null
        : h(
            'section',
            { 'aria-labelledby': 'output-title' },
            h('h2', { id: 'output-title' }, 'Output'),
            h(
              'details',
              { 'data-key': 'output' },
              h('summary', {}, 'The execution output (JSON)'),
              h('pre', {}, JSON.stringify(run.output, null, 2)),
            ),
          ),
    );
  }

  #renderHeader(run: RunDetail): void {
    const facts: [string, Child][] = [
      ['Repository', run.repository],
      ['Branch', run.ref],
      ['Commit', [h('code', {}, shortSha(run.commit)), ' ', run.message?.split('\n')[0] ?? '']],
      ['Pushed by', run.pusher],
      ['Stage', run.stage],
      ['Started', h('time', { datetime: run.startDate }, time(run.startDate))],
      ['Duration', h('span', { 'data-duration': '' }, runDuration(run))],
    ];
    if (run.redriveOf)
      facts.push([
        'Restart of',
        h('a', { href: `#/runs/${encodeURIComponent(run.redriveOf)}` }, run.redriveOf),
      ]);
    for (const [environment, url] of Object.entries(run.deployments))
      facts.push([`${environment} answers at`, h('a', { href: url }, url)]);
    rerender(
      this.#title,
      h(
        'h1',
        {},
        run.name,
        ' ',
        run.approval ? badge('WAITING', 'waiting for approval') : null,
        ' ',
        badge(run.status),
      ),
    );
    rerender(
      this.#header,
      h(
        'dl',
        { class: 'facts' },
        facts
          .filter(([, v]) => v !== undefined && v !== '')
          .map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]),
      ),
      run.status === 'RUNNING'
        ? null
        : h(
            'p',
            {},
            h(
              'button',
              { type: 'button', 'data-key': 'restart', onclick: () => void this.#restart() },
              'Run again with the same input',
            ),
          ),
    );
  }

  async #restart(): Promise<void> {
    const response = await fetch(`/api/runs/${encodeURIComponent(this.name)}/restart`, { method: 'POST' });
    const body = (await response.json().catch(() => ({}))) as { name?: string; message?: string };
    if (response.ok && body.name) location.hash = `#/runs/${encodeURIComponent(body.name)}`;
    else showProblem(body.message ?? `restart answered ${response.status}`);
  }

  #renderFailure(run: RunDetail, names: Map<string, string[]>): void {
    const failures: { key: string; title: string; error?: string; cause?: string; caught: boolean }[] = [];
    for (const [state, outcome] of this.#states) {
      const parts = outcome.iterations.length ? outcome.iterations : [{ index: -1, ...outcome }];
      for (const part of parts) {
        if (part.status !== 'failed' && part.status !== 'caught') continue;
        // A Fail state that ended the run says what the run's own error already says.
        if (part.error === run.error && part.cause === run.cause) continue;
        const label = part.index >= 0 ? ` (${names.get(state)?.[part.index] ?? `#${part.index}`})` : '';
        failures.push({
          key: `${state}#${part.index}`,
          title: `${state}${label}`,
          ...(part.error ? { error: part.error } : {}),
          ...(part.cause ? { cause: part.cause } : {}),
          caught: part.status === 'caught',
        });
      }
    }
    rerender(
      this.#failure,
      failures.length || run.error
        ? h(
            'section',
            { class: 'failure', 'aria-labelledby': 'failure-title' },
            h(
              'h2',
              { id: 'failure-title' },
              run.status === 'FAILED' ? 'Why this run failed' : 'Failures in this run',
            ),
            run.error
              ? h(
                  'p',
                  { class: 'execution-error' },
                  h('strong', {}, run.error),
                  run.cause ? `: ${run.cause}` : '',
                )
              : null,
            h(
              'ul',
              {},
              failures.map((f) =>
                h(
                  'li',
                  { 'data-failed-state': f.title },
                  h('strong', {}, f.title),
                  f.caught ? ' failed, and the state machine caught it' : ' failed',
                  f.error ? [': ', h('code', {}, f.error)] : null,
                  f.cause ? h('p', { class: 'cause' }, causeSummary(f.cause)) : null,
                  f.cause && causeSummary(f.cause) !== f.cause
                    ? h(
                        'details',
                        { 'data-key': `cause:${f.key}` },
                        h('summary', {}, 'Full cause'),
                        h('pre', {}, prettyJson(f.cause)),
                      )
                    : null,
                ),
              ),
            ),
          )
        : null,
    );
  }

  #renderApproval(run: RunDetail): void {
    const approval = run.approval;
    const gateWaits = [...this.#states.values()].some((o) => o.status === 'waiting');
    const key = approval?.approve;
    if (approval && key && gateWaits && !this.#decided.has(key)) {
      if (this.#approvalKey === key) return;
      this.#approvalKey = key;
      this.#approval.replaceChildren(approvalForm(approval, (outcome) => this.#decided.set(key, outcome)));
      return;
    }
    if (this.#approvalKey && this.#decided.has(this.#approvalKey)) {
      const outcome = this.#decided.get(this.#approvalKey);
      if (outcome && !this.#approval.contains(outcome)) this.#approval.replaceChildren(outcome);
      return;
    }
    this.#approvalKey = undefined;
    this.#approval.replaceChildren();
  }

  #renderGraph(names: Map<string, string[]>): void {
    const model = this.#graphModel;
    if (!model) return;
    const select = (state: string) => {
      this.#selectedState = state;
      this.#renderSelected(names);
    };
    rerender(
      this.#graph,
      drawGraph(model, this.#states, names, this.#selectedState, select, this.#run?.status ?? 'RUNNING'),
    );
  }

  #renderSelected(names: Map<string, string[]>): void {
    const state = this.#selectedState;
    if (!state) {
      rerender(
        this.#selected,
        h(
          'p',
          { class: 'hint' },
          'Select a state (click, or Tab to it and press Enter) to see what happened to it.',
        ),
      );
      return;
    }
    const outcome = this.#states.get(state);
    const node = this.#graphModel?.nodes.find((n) => n.kind === 'state' && n.state === state);
    const rows: [string, Child][] = [
      ['Type', node?.stateType],
      ['Status', STATUS_LABELS[outcome?.status ?? 'not-reached']],
    ];
    if (outcome?.enteredAt) rows.push(['Entered', time(outcome.enteredAt)]);
    if (outcome?.exitedAt) rows.push(['Left', time(outcome.exitedAt)]);
    if (outcome?.retries) rows.push(['Retries', String(outcome.retries)]);
    if (outcome?.error) rows.push(['Error', h('code', {}, outcome.error)]);
    if (outcome?.cause) rows.push(['Cause', causeSummary(outcome.cause)]);
    for (const it of outcome?.iterations ?? [])
      rows.push([`Item ${names.get(state)?.[it.index] ?? `#${it.index}`}`, STATUS_LABELS[it.status]]);
    rerender(
      this.#selected,
      h('h3', {}, state),
      h(
        'dl',
        { class: 'facts' },
        rows.filter(([, v]) => v).map(([t, v]) => [h('dt', {}, t), h('dd', {}, v)]),
      ),
    );
  }

  #renderBuilds(run: RunDetail): void {
    if (run.builds.length === 0) {
      rerender(this.#builds, h('p', { class: 'empty' }, 'No builds (yet).'));
      return;
    }
    this.#builds.querySelector(':scope > p.empty')?.remove();
    for (const build of run.builds) {
      let log = this.#logs.get(build.id);
      if (!log) {
        log = new BuildLog(build);
        this.#logs.set(build.id, log);
        this.#builds.append(log.element);
        log.follow();
      }
      log.update(build);
    }
  }

  #renderNotifications(run: RunDetail): void {
    rerender(
      this.#notifications,
      run.notifications.length === 0
        ? h('p', { class: 'empty' }, 'None sent (yet).')
        : h(
            'ul',
            { class: 'notifications' },
            [...run.notifications]
              .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
              .map((n) =>
                h(
                  'li',
                  {},
                  h(
                    'details',
                    { 'data-key': `notification:${n.id}` },
                    h(
                      'summary',
                      {},
                      h('time', { datetime: n.createdAt }, time(n.createdAt)),
                      ' ',
                      h('span', { class: 'topic' }, n.topic),
                      ' ',
                      n.subject,
                    ),
                    h('pre', {}, n.body),
                  ),
                ),
              ),
          ),
    );
  }

  #renderHistory(run: RunDetail): void {
    const start = Date.parse(run.startDate);
    rerender(
      this.#history,
      h(
        'details',
        { 'data-key': 'history' },
        h('summary', {}, `${run.history.length} events`),
        h(
          'table',
          { class: 'history' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['#', 'After', 'Type', 'State', 'Item', 'Detail'].map((t) => h('th', { scope: 'col' }, t)),
            ),
          ),
          h(
            'tbody',
            {},
            run.history.map((e) =>
              h(
                'tr',
                {
                  class: e.type.includes('Failed')
                    ? 'failed-row'
                    : e.type === 'StateCaught'
                      ? 'caught-row'
                      : undefined,
                },
                h('td', {}, String(e.id)),
                h('td', {}, formatDuration(Date.parse(e.timestamp) - start)),
                h('td', {}, e.type),
                h('td', {}, e.state ?? e.parentState ?? ''),
                h('td', {}, e.index === undefined ? '' : String(e.index)),
                h(
                  'td',
                  {},
                  e.error
                    ? `${e.error}: ${causeSummary(e.cause) ?? ''}`
                    : e.attempt
                      ? `attempt ${e.attempt}`
                      : '',
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }
}

function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function legend(): HTMLElement {
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

// ---- the graph ----

let measureContext: CanvasRenderingContext2D | null | undefined;

function measure(text: string): number {
  measureContext ??= document.createElement('canvas').getContext('2d');
  if (!measureContext) return text.length * 7.5;
  measureContext.font = '600 13px system-ui, sans-serif';
  return Math.ceil(measureContext.measureText(text).width);
}

function drawGraph(
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

// ---- builds and their logs ----

class BuildLog {
  readonly element: HTMLElement;
  readonly #summary = h('summary');
  readonly #meta = h('div', { class: 'build-meta' });
  readonly #pre = h('pre', { class: 'log', tabindex: 0 });
  readonly #details: HTMLDetailsElement;
  readonly #decoder = new TextDecoder();
  readonly #id: string;
  readonly follow: () => void;
  #offset = 0;
  #touched = false;
  #status = '';

  constructor(build: RunBuild) {
    this.#id = build.id;
    this.#details = h(
      'details',
      { class: 'build', 'data-build': build.id },
      this.#summary,
      this.#meta,
      h('h4', {}, 'Log'),
      this.#pre,
    ) as HTMLDetailsElement;
    this.#pre.setAttribute('aria-label', `Log of ${build.stage}`);
    this.#summary.addEventListener('click', () => {
      this.#touched = true;
    });
    this.element = this.#details;
    this.follow = coalesce(() => this.#fetch());
  }

  update(build: RunBuild): void {
    const ended = build.status !== 'IN_PROGRESS';
    if (!this.#touched) this.#details.open = build.status !== 'SUCCEEDED';
    this.#details.dataset.status = build.status;
    this.#summary.replaceChildren(
      badge(build.status),
      ' ',
      h('strong', {}, build.stage),
      ` ${formatDuration((build.endTime ?? Date.now()) - build.startTime)}`,
      h('span', { class: 'build-id' }, ` ${build.id}`),
    );
    const reports = build.reports.map((r) =>
      h(
        'li',
        { 'data-report': r.name },
        badge(r.status),
        ` ${r.name}: ${r.tests} tests, ${r.failures} failures, ${r.errors} errors, ${r.skipped} skipped`,
        r.message ? ` — ${r.message}` : '',
      ),
    );
    this.#meta.replaceChildren(
      ...nodes([
        build.exportedVariables.length
          ? h(
              'table',
              { class: 'variables' },
              h('caption', {}, 'Exported variables'),
              h(
                'tbody',
                {},
                build.exportedVariables.map((v) =>
                  h('tr', {}, h('th', { scope: 'row' }, v.Name), h('td', {}, h('code', {}, v.Value))),
                ),
              ),
            )
          : null,
        reports.length ? [h('h4', {}, 'Test reports'), h('ul', { class: 'reports' }, reports)] : null,
      ]),
    );
    if (ended && this.#status !== build.status) this.follow();
    this.#status = build.status;
  }

  async #fetch(): Promise<void> {
    const response = await fetch(`/api/builds/${encodeURIComponent(this.#id)}/log?offset=${this.#offset}`, {
      cache: 'no-store',
    });
    if (response.status === 404) return;
    if (!response.ok) throw new Error(`the log answered ${response.status}`);
    const bytes = await response.arrayBuffer();
    if (bytes.byteLength === 0) return;
    this.#offset += bytes.byteLength;
    const pre = this.#pre;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(this.#decoder.decode(bytes, { stream: true }));
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }
}

// ---- approval ----

function approvalForm(approval: PendingApproval, onDecided: (outcome: HTMLElement) => void): HTMLElement {
  const outcome = h('div', { class: 'outcome', role: 'status', 'aria-live': 'polite' });
  const name = h('input', {
    id: 'approver',
    name: 'name',
    autocomplete: 'name',
    required: false,
  }) as HTMLInputElement;
  const comment = h('textarea', { id: 'approval-comment', name: 'comment', rows: 2 }) as HTMLTextAreaElement;
  const approve = h(
    'button',
    { type: 'submit', value: 'approve', class: 'approve' },
    'Approve',
  ) as HTMLButtonElement;
  const reject = h(
    'button',
    { type: 'submit', value: 'reject', class: 'reject' },
    'Reject',
  ) as HTMLButtonElement;
  const section = h(
    'section',
    { class: 'approval', 'aria-labelledby': 'approval-title' },
    h('h2', { id: 'approval-title' }, `${approval.environment} waits for approval`),
    h(
      'p',
      {},
      `Deploying to ${approval.environment} needs a decision by `,
      h('time', { datetime: approval.expiresAt }, time(approval.expiresAt)),
      '. This decides through the same signed link the approval email carries; one decision counts.',
    ),
  );
  const form = h(
    'form',
    {
      class: 'approval-form',
      onsubmit: (event: Event) => {
        event.preventDefault();
        const submitter = (event as SubmitEvent).submitter as HTMLButtonElement | null;
        const action = submitter?.value === 'reject' ? 'reject' : 'approve';
        void decide(action);
      },
    },
    h('label', { for: 'approver' }, 'Your name'),
    name,
    h('label', { for: 'approval-comment' }, 'Comment'),
    comment,
    h('div', { class: 'buttons' }, approve, ' ', reject),
  );
  section.append(form, outcome);

  const decide = async (action: 'approve' | 'reject') => {
    approve.disabled = true;
    reject.disabled = true;
    outcome.textContent = action === 'approve' ? 'Approving…' : 'Rejecting…';
    const link = new URL(action === 'approve' ? approval.approve : approval.reject);
    const body = new URLSearchParams();
    if (name.value.trim()) body.set('name', name.value.trim());
    if (comment.value.trim()) body.set('comment', comment.value.trim());
    let answer: Response;
    try {
      // The link's path on this origin: the console may be open as localhost or 127.0.0.1.
      answer = await fetch(link.pathname, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: body.toString(),
      });
    } catch (error) {
      outcome.textContent = `The decision could not be sent: ${(error as Error).message}`;
      approve.disabled = false;
      reject.disabled = false;
      return;
    }
    const page = new DOMParser().parseFromString(await answer.text(), 'text/html');
    const title = page.querySelector('h1')?.textContent ?? `HTTP ${answer.status}`;
    const problem = page.querySelector('.problem')?.textContent;
    const rows = [...page.querySelectorAll('dl dt')].map((dt) => [
      dt.textContent ?? '',
      dt.nextElementSibling?.textContent ?? '',
    ]);
    const texts = [...page.querySelectorAll('body > p')].map((p) => p.textContent ?? '');
    const result = h(
      'section',
      {
        class: `decision ${answer.ok ? (action === 'approve' ? 'approved' : 'rejected') : 'refused'}`,
        'aria-labelledby': 'decision-title',
      },
      h('h2', { id: 'decision-title', tabindex: -1 }, title),
      problem ? h('p', { class: 'problem' }, problem) : null,
      h(
        'dl',
        { class: 'facts' },
        rows
          .filter(([t]) =>
            ['Decision', 'Decided by', 'Decided at', 'Comment', 'Environment'].includes(t ?? ''),
          )
          .map(([t, v]) => [h('dt', {}, t), h('dd', {}, v)]),
      ),
      texts.filter((t) => t && !t.startsWith('Nothing is decided')).map((t) => h('p', {}, t)),
    );
    if (answer.ok || answer.status === 409) {
      // Decided (here, or already elsewhere): what the approval route answered takes the form's place.
      section.className = 'approval decided';
      section.setAttribute('aria-labelledby', 'decision-title');
      outcome.replaceChildren(result);
      section.replaceChildren(outcome);
      onDecided(section);
      (result.querySelector('h2') as HTMLElement | null)?.focus();
    } else {
      outcome.replaceChildren(result);
      approve.disabled = false;
      reject.disabled = false;
    }
  };
  return section;
}

// ---- live updates ----

function connect(): void {
  const connection = document.getElementById('connection');
  const source = new EventSource('/api/events');
  source.addEventListener('open', () => {
    if (connection) {
      connection.textContent = 'live';
      connection.dataset.state = 'live';
    }
    // Whatever changed while disconnected.
    page?.refresh();
  });
  source.addEventListener('error', () => {
    if (connection) {
      connection.textContent = 'reconnecting…';
      connection.dataset.state = 'reconnecting';
    }
  });
  for (const kind of ['execution', 'history', 'outbox', 'log']) {
    source.addEventListener(kind, (event) => {
      const change = JSON.parse((event as MessageEvent<string>).data) as { kind: string; id: string };
      page?.onChange(change.kind, change.id);
    });
  }
}

window.addEventListener('hashchange', () => {
  route();
  main().focus();
});
route();
connect();
setInterval(() => page?.tick(), 1000);
