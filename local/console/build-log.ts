/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import type { RunBuild } from '../runs/read-model.ts';
import { badge, coalesce, h, nodes } from './dom.ts';
import { formatDuration } from './model.ts';

/**
 * One build on the run page: its status, stage and duration, exported variables and test reports, and its
 * log, fetched from where it was left and appended as it grows.
 */
export class BuildLog {
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
      build.attempt
        ? h('span', { class: 'attempt' }, ` attempt ${build.attempt.number} of ${build.attempt.of}`)
        : '',
      ` ${formatDuration((build.endTime ?? Date.now()) - build.startTime)}`,
      h('span', { class: 'build-id' }, ` ${build.id}`),
    );
    const reports = build.reports.map((r) =>
      h(
        'li',
        { 'data-report': r.name },
        badge(r.status),
        ` ${r.name}: ${r.tests - r.failures - r.errors - r.skipped} passed, ${r.failures + r.errors} failed, ${r.skipped} skipped`,
        r.message ? ` — ${r.message}` : '',
        r.failedCases?.length
          ? h(
              'ul',
              { class: 'failed-tests' },
              r.failedCases.map((testCase) =>
                h(
                  'li',
                  { 'data-failed-test': testCase.name },
                  h('strong', {}, [testCase.prefix, testCase.name].filter(Boolean).join(' › ')),
                  testCase.message ? h('pre', {}, testCase.message) : null,
                ),
              ),
            )
          : null,
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
