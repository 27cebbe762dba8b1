import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { inspectRepository } from '#local/git/repositories.ts';
import { CONTROL_TOKEN_FILE, readControlToken } from '#local/http/control-token.ts';
import type { RunDetail, RunSummary } from '#local/runs/read-model.ts';
import { SteplineError } from '#shared/errors.ts';
import { type LineView, type RunPoint, runName } from '#shared/release.ts';
import { forTerminal } from '#shared/text.ts';

/**
 * The commands that talk to a running stepline (`npm start`) over its JSON API: runs, show, logs,
 * approve, reject, redrive, restart, rollback, teardown. They send no Origin header, so the server's cross-origin guard lets
 * them through (see local/http/guards.ts), and they send the control token the running stepline wrote to
 * its state folder (`Authorization: Bearer`, see local/http/control-token.ts), which builds never see.
 */

/** How the client commands print and which stepline they talk to. */
export interface Client {
  /** The running stepline, e.g. `http://127.0.0.1:4700`. */
  apiUrl: string;
  /** The running stepline's state folder, where its control token is. */
  stateDir: string;
  print(line: string): void;
}

/** A running stepline answered with an error, or is not running. */
export class ApiError extends SteplineError {
  override readonly name: string = 'ApiError';
}

/** The `Authorization` header of the stepline running on `stateDir`; fails naming the file when it has none. */
export async function controlHeaders(stateDir: string): Promise<Record<string, string>> {
  const token = await readControlToken(stateDir);
  if (token === undefined)
    throw new ApiError(
      `no control token in ${join(stateDir, CONTROL_TOKEN_FILE)}: start stepline with npm start (or pass the --state-dir it runs on)`,
    );
  return { authorization: `Bearer ${token}` };
}

async function api<T>(client: Client, path: string, init?: RequestInit): Promise<T> {
  const headers = {
    ...(init?.headers as Record<string, string> | undefined),
    ...(await controlHeaders(client.stateDir)),
  };
  let response: Response;
  try {
    response = await fetch(`${client.apiUrl}${path}`, { ...init, headers });
  } catch {
    throw new ApiError(
      `stepline is not running at ${client.apiUrl}: start it with npm start (or pass --port)`,
    );
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError((body as { message?: string }).message ?? `HTTP ${response.status}`);
  return body as T;
}

function plainText(html: string): string {
  return html
    .replace(/<style[\s\S]*?<\/style>/g, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Decides an approval the way a person does: open the link (GET), then confirm (POST), both with the
 * control token (`headers`, from {@link controlHeaders}).
 */
export async function decide(
  client: Pick<Client, 'print'>,
  link: string,
  decision: { name?: string | undefined; comment?: string | undefined },
  headers: Record<string, string>,
): Promise<void> {
  const page = await fetch(link, { headers });
  if (!page.ok)
    throw new ApiError(
      `the approval link answered ${page.status}: ${plainText(await page.text()).slice(0, 300)}`,
    );
  const form = new URLSearchParams();
  if (decision.name) form.set('name', decision.name);
  if (decision.comment) form.set('comment', decision.comment);
  const answer = await fetch(link, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
  });
  const text = plainText(await answer.text());
  if (!answer.ok) throw new ApiError(`the decision was refused (${answer.status}): ${text.slice(0, 300)}`);
  client.print(`  decided: ${text.slice(0, 160)}`);
}

const runPath = (run: string) => `/api/runs/${encodeURIComponent(run)}`;

/** `stepline runs`: one line per run, newest first. */
export async function listRuns(client: Client): Promise<void> {
  const runs = await api<RunSummary[]>(client, '/api/runs');
  if (runs.length === 0) client.print('No runs yet.');
  for (const r of runs) {
    client.print(
      `${r.status.padEnd(11)} ${r.name}  ${r.repository ?? ''} ${r.ref ?? ''} ${r.commit?.slice(0, 7) ?? ''}  ${r.startDate}${releaseNote(r)}`,
    );
  }
}

/** What release control says of a run: by whom it was superseded, or what it waits for. */
export function releaseNote(r: Pick<RunSummary, 'supersededBy' | 'waitingFor'>): string {
  if (r.supersededBy) return `  superseded by ${r.supersededBy}`;
  if (r.waitingFor) {
    const { environment, heldBy } = r.waitingFor;
    return `  waiting for ${environment}, ${heldBy ? `held by ${heldBy}` : 'behind an older run on its way there'}`;
  }
  return '';
}

/** `stepline environments`: each line's environments, the commit and run each runs, who holds and who waits. */
export async function listEnvironments(client: Client): Promise<void> {
  const lines = await api<LineView[]>(client, '/api/environments');
  if (lines.length === 0) client.print('No environment deployed yet.');
  for (const line of lines) {
    client.print(line.line);
    for (const e of line.environments) {
      const current = e.current
        ? `${e.current.commit.slice(0, 7)} ${runName(e.current.executionArn)} (push #${e.current.sequence})${rollbackNote(e.current)}`
        : 'nothing deployed yet';
      const held = e.holder ? `  held by ${runName(e.holder.executionArn)}` : '';
      const waiting =
        e.waiting.length > 0 ? `  waiting: ${e.waiting.map((w) => runName(w.executionArn)).join(', ')}` : '';
      client.print(`  ${e.name.padEnd(10)} ${current}${held}${waiting}`);
    }
  }
}

/** How a deployment made by a rollback reads: `rolled back from 1a2b3c4 (run-2's deployment)`. */
export function rollbackNote(point: RunPoint): string {
  if (!point.rollback) return '';
  const how = point.rollback.automatic ? 'automatic rollback' : 'rollback';
  const from = point.rollback.from ? ` from ${point.rollback.from.slice(0, 7)}` : '';
  return `  ${how}${from} to ${runName(point.rollback.of)}'s deployment`;
}

/**
 * `stepline rollback <env>`: starts the rollback of an environment to its previous deployment (or `to`),
 * from its recorded image. It waits at the environment's approval gate like a run: approve it with
 * `stepline approve <rollback>`.
 */
export async function rollback(
  client: Client,
  environment: string,
  options: { to?: string | undefined; repo?: string | undefined; infrastructure?: boolean },
): Promise<void> {
  const query = new URLSearchParams();
  if (options.to) query.set('to', options.to);
  if (options.repo) query.set('repo', options.repo);
  if (options.infrastructure) query.set('infrastructure', 'true');
  const started = await api<{ name: string }>(
    client,
    `/api/environments/${encodeURIComponent(environment)}/rollback${query.size > 0 ? `?${query}` : ''}`,
    { method: 'POST' },
  );
  client.print(`started ${started.name}`);
}

/** `stepline show <run>`: status, error, pending approval, deployments and builds. */
export async function showRun(client: Client, run: string): Promise<void> {
  const r = await api<RunDetail>(client, runPath(run));
  client.print(
    `${r.name}: ${r.status}  ${r.repository ?? ''} ${r.ref ?? ''} @ ${r.commit?.slice(0, 7) ?? ''}`,
  );
  client.print(`  started ${r.startDate}${r.stopDate ? `, ended ${r.stopDate}` : ''}`);
  if (r.redriveCount) client.print(`  redriven ${r.redriveCount}×, last ${r.redriveDate ?? ''}`);
  if (r.error) client.print(`  ${r.error}: ${r.cause ?? ''}`);
  const note = releaseNote(r);
  if (note) client.print(`  ${note.trim()}`);
  if (r.approval) client.print(`  waiting for approval of ${r.approval.environment}: ${r.approval.approve}`);
  for (const [environment, url] of Object.entries(r.deployments)) client.print(`  ${environment}: ${url}`);
  for (const build of r.builds ?? []) {
    const attempt = build.attempt ? ` (attempt ${build.attempt.number} of ${build.attempt.of})` : '';
    client.print(`  ${build.status.padEnd(11)} ${build.stage}${attempt}  log: ${build.logPath}`);
  }
  for (const status of r.statuses ?? []) {
    const outcome = status.outcome === 'posted' ? '' : `  (${status.outcome}: ${status.reason ?? ''})`;
    client.print(`  status ${status.state.padEnd(7)} ${status.context}  ${status.description}${outcome}`);
  }
}

/** `stepline approve|reject <run>`: decides the approval the run waits for. */
export async function decideRun(
  client: Client,
  run: string,
  decision: { approve: boolean; name?: string | undefined; comment?: string | undefined },
): Promise<void> {
  const r = await api<RunDetail>(client, runPath(run));
  if (!r.approval) throw new ApiError(`${r.name} is not waiting for an approval (status ${r.status})`);
  await decide(
    client,
    decision.approve ? r.approval.approve : r.approval.reject,
    decision,
    await controlHeaders(client.stateDir),
  );
}

/**
 * `stepline redrive <run>`: a run that failed, timed out or was stopped goes on from the state that failed,
 * under the same name; what succeeded is not run again. A run that cannot be redriven is refused with
 * Step Functions' reason (ExecutionNotRedrivable).
 */
export async function redriveRun(client: Client, run: string): Promise<void> {
  const redriven = await api<RunSummary>(client, `${runPath(run)}/redrive`, {
    method: 'POST',
  });
  client.print(`redriven ${redriven.name} (redrive ${redriven.redriveCount ?? 1})`);
}

/** `stepline restart <run>`: starts an interrupted or finished run again under a new name. */
export async function restartRun(client: Client, run: string): Promise<void> {
  const restarted = await api<RunSummary>(client, `${runPath(run)}/restart`, { method: 'POST' });
  client.print(`started ${restarted.name}`);
}

/**
 * `stepline teardown <env> [--repo <path or owner/name>]`: starts the teardown state machine for one
 * environment of one repository (a folder names the repository its runs carry, as `start --repo` names it).
 * Without `--repo`, the running stepline picks the only repository with runs, else the sample app.
 */
export async function teardown(client: Client, environment: string, repo?: string): Promise<void> {
  const repository = repo === undefined ? undefined : await repositoryNamed(repo);
  const query = repository === undefined ? '' : `?${new URLSearchParams({ repository })}`;
  const started = await api<{ name: string }>(
    client,
    `/api/teardown/${encodeURIComponent(environment)}${query}`,
    { method: 'POST' },
  );
  client.print(`started ${started.name}${repository === undefined ? '' : ` (${repository})`}`);
}

/** The full name runs carry for `--repo`: a folder's (its origin's `owner/name`, else `local/<folder>`), or `owner/name` as given. */
async function repositoryNamed(repo: string): Promise<string> {
  const folder = await stat(repo).catch(() => undefined);
  if (folder?.isDirectory()) return (await inspectRepository(repo)).fullName;
  if (/^[\w.-]+(\/[\w.-]+)+$/.test(repo)) return repo;
  throw new SteplineError(`--repo ${repo}: neither a folder nor a repository's owner/name`);
}

/** `stepline logs <run> [--follow]`: each build's log, and with `follow` what they add until the run ends. */
export async function showLogs(client: Client, run: string, options: { follow: boolean }): Promise<void> {
  const offsets = new Map<string, number>();
  let current = await api<RunDetail>(client, runPath(run));
  const headers = await controlHeaders(client.stateDir);
  for (;;) {
    for (const build of current.builds ?? []) {
      const offset = offsets.get(build.id) ?? 0;
      const response = await fetch(
        `${client.apiUrl}/api/builds/${encodeURIComponent(build.id)}/log?offset=${offset}`,
        { headers },
      );
      if (!response.ok) continue;
      const text = await response.text();
      if (offset === 0) client.print(`── ${build.stage} (${build.id})`);
      // A build's output is the pushed code's: printed raw, it could drive the terminal.
      if (text) process.stdout.write(forTerminal(text));
      offsets.set(build.id, offset + Buffer.byteLength(text));
    }
    if (!options.follow || current.status !== 'RUNNING') return;
    // The API offers no log stream to wait on; poll it, as `tail -f` does a file.
    await new Promise((resolve) => setTimeout(resolve, 500));
    current = await api<RunDetail>(client, runPath(run));
  }
}
