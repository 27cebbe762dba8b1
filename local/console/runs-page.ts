/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import type { LineView } from '#shared/release.ts';
import type { RunSummary } from '../runs/read-model.ts';
import {
  badge,
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

/** The runs, newest first, with the approvals that wait; refreshed as runs change. */
export class RunsPage {
  readonly #table = h('tbody');
  readonly #approvals = h('div', { class: 'approvals' });
  readonly #environments = h('div', { class: 'environments' });
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
      this.#environments,
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
    const [runs, lines] = await Promise.all([
      getJson<RunSummary[]>('/api/runs'),
      getJson<LineView[]>('/api/environments'),
    ]);
    rerender(this.#environments, environmentsTable(lines));
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
          h('td', {}, stageText(run)),
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

/** The stage column: where the run is, or by whom it was superseded, or what it waits for. */
function stageText(run: RunSummary): string {
  if (run.supersededBy) return `superseded by ${run.supersededBy}`;
  if (run.waitingFor) {
    const { environment, heldBy } = run.waitingFor;
    return `waiting for ${environment}, ${heldBy ? `held by ${heldBy}` : 'behind an older run'}`;
  }
  return run.stage ?? '';
}

const nameOf = (executionArn: string) => executionArn.slice(executionArn.lastIndexOf(':') + 1);

/** How a deployment a rollback made reads: `↩ rollback from 1a2b3c4 to run-1's deployment`. */
function rollbackLabel(
  rollback: NonNullable<LineView['environments'][number]['current']>['rollback'],
): string {
  if (!rollback) return '';
  const from = rollback.from ? ` from ${shortSha(rollback.from)}` : '';
  return `↩ ${rollback.automatic ? 'automatic rollback' : 'rollback'}${from} to ${nameOf(rollback.of)}'s deployment`;
}

/** Starts the rollback of one environment of a line (its repository), then shows the rollback's run. */
async function rollBack(line: string, environment: string): Promise<void> {
  const repository = line.split(':')[1] ?? '';
  const response = await fetch(
    `/api/environments/${encodeURIComponent(environment)}/rollback?repo=${encodeURIComponent(repository)}`,
    { method: 'POST' },
  );
  const body = (await response.json().catch(() => ({}))) as { name?: string; message?: string };
  if (response.ok && body.name) location.hash = `#/runs/${encodeURIComponent(body.name)}`;
  else showProblem(body.message ?? `rollback answered ${response.status}`);
}

/** Each branch's environments: the commit and run each runs now, who holds it, who waits for it. */
function environmentsTable(lines: LineView[]): HTMLElement | null {
  const rows = lines.flatMap((line) => line.environments.map((e) => ({ line: line.line, ...e })));
  if (rows.length === 0) return null;
  return h(
    'section',
    {},
    h('h2', {}, 'Environments'),
    h(
      'table',
      { class: 'environments' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Branch', 'Environment', 'Runs commit', 'Deployed by', 'Held by', 'Waiting', ''].map((label) =>
            h('th', { scope: 'col', class: 'col' }, label),
          ),
        ),
      ),
      h(
        'tbody',
        {},
        rows.map((row) =>
          h(
            'tr',
            { 'data-environment': `${row.line}/${row.name}` },
            h('td', {}, row.line),
            h('td', {}, row.name),
            h(
              'td',
              { class: 'commit' },
              row.current ? h('code', { title: row.current.commit }, shortSha(row.current.commit)) : '—',
            ),
            h(
              'td',
              {},
              row.current ? `${nameOf(row.current.executionArn)} (push #${row.current.sequence})` : '',
              row.current?.rollback
                ? h('span', { class: 'rollback' }, ` ${rollbackLabel(row.current.rollback)}`)
                : '',
            ),
            h('td', {}, row.holder ? nameOf(row.holder.executionArn) : ''),
            h('td', {}, row.waiting.map((w) => nameOf(w.executionArn)).join(', ')),
            h(
              'td',
              {},
              row.current && !row.holder
                ? h(
                    'button',
                    {
                      type: 'button',
                      'data-key': 'rollback',
                      title: `Redeploy ${row.name}'s previous deployment from its recorded image (after its approval)`,
                      onclick: () => void rollBack(row.line, row.name),
                    },
                    'Roll back',
                  )
                : '',
            ),
          ),
        ),
      ),
    ),
  );
}
