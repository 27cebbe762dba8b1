/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import type { RunDetail } from '../runs/read-model.ts';
import { approvalForm } from './approval-form.ts';
import { BuildLog } from './build-log.ts';
import {
  badge,
  type Child,
  coalesce,
  getJson,
  h,
  main,
  rerender,
  runDuration,
  shortSha,
  showProblem,
  time,
} from './dom.ts';
import { drawGraph, legend } from './graph-view.ts';
import {
  iterationNames,
  type MachineGraph,
  machineGraph,
  type StateRun,
  stateRuns,
  webLink,
} from './model.ts';
import {
  failureSection,
  historyTable,
  notificationList,
  outputSection,
  selectedStateView,
  statusList,
} from './run-sections.ts';

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

/**
 * One run: its facts, failures, approval form, state machine graph, builds with their logs, notifications,
 * event history and output, refreshed as the run changes.
 */
export class RunPage {
  readonly name: string;
  readonly #title = h('div');
  readonly #header = h('div', { class: 'run-header' });
  readonly #failure = h('div', { class: 'failure-slot' });
  readonly #approval = h('div', { class: 'approval-slot' });
  readonly #graph = h('div', { class: 'graph-slot' });
  readonly #selected = h('div', { class: 'selected-state', 'aria-live': 'polite' });
  readonly #builds = h('div', { class: 'builds' });
  readonly #notifications = h('div');
  readonly #statuses = h('div');
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
        { 'aria-labelledby': 'statuses-title' },
        h('h2', { id: 'statuses-title' }, 'Commit statuses'),
        this.#statuses,
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
    const definition = await definitionOf(run.stateMachine);
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
    rerender(this.#failure, failureSection(run, this.#states, names));
    this.#renderApproval(run);
    this.#renderGraph(names);
    this.#renderSelected(names);
    this.#renderBuilds(run);
    rerender(this.#statuses, statusList(run.statuses ?? []));
    rerender(this.#notifications, notificationList(run.notifications));
    rerender(this.#history, historyTable(run));
    rerender(this.#output, outputSection(run.output));
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
    if (run.supersededBy)
      facts.push([
        'Superseded by',
        h('a', { href: `#/runs/${encodeURIComponent(run.supersededBy)}` }, run.supersededBy),
      ]);
    if (run.waitingFor) {
      const { environment, heldBy } = run.waitingFor;
      facts.push([
        'Waiting for',
        heldBy
          ? [`${environment}, held by `, h('a', { href: `#/runs/${encodeURIComponent(heldBy)}` }, heldBy)]
          : `${environment}, behind an older run on its way there`,
      ]);
    }
    if (run.redriveCount)
      facts.push([
        'Redriven',
        [
          `${run.redriveCount}×`,
          run.redriveDate ? [', last ', h('time', { datetime: run.redriveDate }, time(run.redriveDate))] : '',
        ],
      ]);
    if (run.restartOf)
      facts.push([
        'Restart of',
        h('a', { href: `#/runs/${encodeURIComponent(run.restartOf)}` }, run.restartOf),
      ]);
    for (const [environment, url] of Object.entries(run.deployments)) {
      const link = webLink(url);
      facts.push([`${environment} answers at`, link ? h('a', { href: link }, url) : h('code', {}, url)]);
    }
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
            // Redrive, as Step Functions': a run that did not succeed goes on from the state that failed,
            // under its name. The server says why when it cannot (its 14 days are over).
            run.status === 'SUCCEEDED'
              ? null
              : h(
                  'button',
                  { type: 'button', 'data-key': 'redrive', onclick: () => void this.#redrive() },
                  'Redrive from the failed state',
                ),
            ' ',
            h(
              'button',
              { type: 'button', 'data-key': 'restart', onclick: () => void this.#restart() },
              'Restart: a new run with the same input',
            ),
          ),
    );
  }

  async #redrive(): Promise<void> {
    const response = await fetch(`/api/runs/${encodeURIComponent(this.name)}/redrive`, { method: 'POST' });
    const body = (await response.json().catch(() => ({}))) as { name?: string; message?: string };
    if (!response.ok) showProblem(body.message ?? `redrive answered ${response.status}`);
  }

  async #restart(): Promise<void> {
    const response = await fetch(`/api/runs/${encodeURIComponent(this.name)}/restart`, { method: 'POST' });
    const body = (await response.json().catch(() => ({}))) as { name?: string; message?: string };
    if (response.ok && body.name) location.hash = `#/runs/${encodeURIComponent(body.name)}`;
    else showProblem(body.message ?? `restart answered ${response.status}`);
  }

  #renderApproval(run: RunDetail): void {
    const approval = run.approval;
    const key = approval?.approve;
    if (approval && key && run.waitsForApproval && !this.#decided.has(key)) {
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
    const node = this.#graphModel?.nodes.find((n) => n.kind === 'state' && n.state === state);
    const outcome = state ? this.#states.get(state) : undefined;
    rerender(this.#selected, ...selectedStateView(state, outcome, node?.stateType, names));
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
}
