/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The console in the browser: the runs, newest first, and one run at a time (its state machine drawn and
 * coloured from its history, failures, approval, builds and their logs followed live, notifications,
 * event history). Everything comes from the local server's JSON API and its server-sent events.
 */
import { main } from './dom.ts';
import { RunPage } from './run-page.ts';
import { RunsPage } from './runs-page.ts';

// ---- routing ----

type View = { kind: 'runs' } | { kind: 'run'; name: string };

function currentView(): View {
  const match = /^#\/runs\/(.+)$/.exec(location.hash);
  return match?.[1] ? { kind: 'run', name: decodeURIComponent(match[1]) } : { kind: 'runs' };
}

let page: RunsPage | RunPage | undefined;

function route(): void {
  const view = currentView();
  page?.dispose();
  page = view.kind === 'run' ? new RunPage(view.name) : new RunsPage();
  page.refresh();
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
