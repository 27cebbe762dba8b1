/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The parts of the run page drawn from data alone: why the run failed, the selected state, the
 * notifications, the event history and the output. Each returns what the page puts in its slot.
 */

import type { RunDetail, RunStatus } from '../runs/read-model.ts';
import type { OutboxMessage } from '../state/store.ts';
import { type Child, h, time } from './dom.ts';
import { causeSummary, formatDuration, STATUS_LABELS, type StateRun } from './model.ts';

/** The run's error and every state (or Map item) that failed, with its cause; nothing when none did. */
export function failureSection(
  run: RunDetail,
  states: Map<string, StateRun>,
  names: Map<string, string[]>,
): Child {
  const failures: { key: string; title: string; error?: string; cause?: string; caught: boolean }[] = [];
  for (const [state, outcome] of states) {
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
  if (!failures.length && !run.error) return null;
  return h(
    'section',
    { class: 'failure', 'aria-labelledby': 'failure-title' },
    h(
      'h2',
      { id: 'failure-title' },
      run.status === 'FAILED' ? 'Why this run failed' : 'Failures in this run',
    ),
    run.error
      ? h('p', { class: 'execution-error' }, h('strong', {}, run.error), run.cause ? `: ${run.cause}` : '')
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
  );
}

/** What happened to the selected state (its type, status, times, retries, error, items); a hint when none is. */
export function selectedStateView(
  state: string | undefined,
  outcome: StateRun | undefined,
  stateType: string | undefined,
  names: Map<string, string[]>,
): Child[] {
  if (!state) {
    return [
      h(
        'p',
        { class: 'hint' },
        'Select a state (click, or Tab to it and press Enter) to see what happened to it.',
      ),
    ];
  }
  const rows: [string, Child][] = [
    ['Type', stateType],
    ['Status', STATUS_LABELS[outcome?.status ?? 'not-reached']],
  ];
  if (outcome?.enteredAt) rows.push(['Entered', time(outcome.enteredAt)]);
  if (outcome?.exitedAt) rows.push(['Left', time(outcome.exitedAt)]);
  if (outcome?.retries) rows.push(['Retries', String(outcome.retries)]);
  if (outcome?.error) rows.push(['Error', h('code', {}, outcome.error)]);
  if (outcome?.cause) rows.push(['Cause', causeSummary(outcome.cause)]);
  for (const it of outcome?.iterations ?? [])
    rows.push([`Item ${names.get(state)?.[it.index] ?? `#${it.index}`}`, STATUS_LABELS[it.status]]);
  return [
    h('h3', {}, state),
    h(
      'dl',
      { class: 'facts' },
      rows.filter(([, v]) => v).map(([t, v]) => [h('dt', {}, t), h('dd', {}, v)]),
    ),
  ];
}

/** The messages published for the run, oldest first, each opening to its body. */
export function notificationList(notifications: OutboxMessage[]): Child {
  if (notifications.length === 0) return h('p', { class: 'empty' }, 'None sent (yet).');
  return h(
    'ul',
    { class: 'notifications' },
    [...notifications]
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
  );
}

/** The commit statuses reported to the run's forge, the latest per context, and whether the forge took each. */
export function statusList(statuses: RunStatus[]): Child {
  if (statuses.length === 0) {
    return h('p', { class: 'empty' }, 'None reported (yet): a run of a forge repository reports them.');
  }
  return h(
    'ul',
    { class: 'statuses' },
    statuses.map((s) =>
      h(
        'li',
        { 'data-state': s.state },
        h('span', { class: 'state' }, s.state),
        ' ',
        h('code', {}, s.context),
        ' ',
        s.description,
        ' ',
        h(
          'span',
          { class: 'outcome' },
          s.outcome === 'posted'
            ? `posted to ${s.provider}`
            : `${s.outcome}${s.reason ? `: ${s.reason}` : ''}`,
        ),
      ),
    ),
  );
}

/** The run's event history as a table, each event's time counted from the run's start. */
export function historyTable(run: RunDetail): Child {
  const start = Date.parse(run.startDate);
  return h(
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
  );
}

/** The execution's output as JSON, once it has one. */
export function outputSection(output: unknown): Child {
  if (output === undefined) return null;
  return h(
    'section',
    { 'aria-labelledby': 'output-title' },
    h('h2', { id: 'output-title' }, 'Output'),
    h(
      'details',
      { 'data-key': 'output' },
      h('summary', {}, 'The execution output (JSON)'),
      h('pre', {}, JSON.stringify(output, null, 2)),
    ),
  );
}

function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
