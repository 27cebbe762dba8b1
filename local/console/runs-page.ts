/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import type { RunSummary } from '../runs/read-model.ts';
import { badge, coalesce, getJson, h, main, rerender, runDuration, shortSha, time } from './dom.ts';

/** The runs, newest first, with the approvals that wait; refreshed as runs change. */
export class RunsPage {
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
