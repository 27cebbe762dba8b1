import { relative } from 'node:path';
import type { BuildEvent } from '#local/codebuild/service.ts';
import type { RuntimeEvent } from '#local/runtime.ts';

/** The stage a build is, as people read it: `Image`, `dev: Deploy`. */
export function stageLabel(event: BuildEvent): string {
  const stage = event.build.ProjectName.split('-').at(-1) ?? event.build.ProjectName;
  const name = stage.charAt(0).toUpperCase() + stage.slice(1);
  const environment = event.environment.STEPLINE_ENVIRONMENT;
  return environment ? `${environment}: ${name}` : name;
}

function seconds(from: number, to: number): string {
  return `${((to - from) / 1000).toFixed(1)}s`;
}

/**
 * Turns runtime events into the lines the terminal shows: each stage as it starts and ends, with its
 * duration and log; the approval link; each notification in one line; how a run ended.
 */
export function terminalLine(event: RuntimeEvent, cwd: string): string | undefined {
  switch (event.kind) {
    case 'execution': {
      const r = event.record;
      const input = r.input as {
        push?: {
          repository?: { fullName?: string };
          refName?: string;
          after?: string;
          headCommitMessage?: string;
        };
      };
      const push = input.push;
      if (r.status === 'RUNNING') {
        const message = push?.headCommitMessage?.split('\n')[0] ?? '';
        return `▶ ${r.name}: ${push?.repository?.fullName ?? ''} ${push?.refName ?? ''} @ ${push?.after?.slice(0, 7) ?? ''} ${message}`;
      }
      const took = r.stopDate ? ` in ${seconds(Date.parse(r.startDate), Date.parse(r.stopDate))}` : '';
      const mark = r.status === 'SUCCEEDED' ? '✔' : '✖';
      const why = r.error
        ? ` — ${r.error}${r.cause ? `: ${r.cause.split('\n')[0]?.slice(0, 200)}` : ''}`
        : '';
      return `${mark} ${r.name} ${r.status}${took}${why}`;
    }
    case 'build': {
      const { event: build } = event;
      if (build.kind !== 'state') return undefined;
      const label = stageLabel(build);
      const log = relative(cwd, event.logPath);
      if (build.status === 'IN_PROGRESS') return `  … ${label} started (log: ${log})`;
      const took = seconds(build.build.StartTime, build.build.EndTime);
      if (build.status === 'SUCCEEDED') {
        const url = build.build.ExportedEnvironmentVariables.find((v) => v.Name === 'SERVICE_URL')?.Value;
        return `  ✔ ${label} succeeded in ${took}${url ? ` — answers at ${url}` : ''}`;
      }
      const failed = build.build.Phases.find((p) => p.PhaseStatus !== 'SUCCEEDED' && p.Contexts?.length);
      const why = failed?.Contexts?.[0] ? ` — ${failed.PhaseType}: ${failed.Contexts[0].Message}` : '';
      return `  ✖ ${label} ${build.status} in ${took}${why} (log: ${log})`;
    }
    case 'notification':
      return `  ✉ [${event.notification.topic}] ${event.notification.subject}`;
    case 'approval':
      return `  ⏸ ${event.approval.environment} waits for approval until ${event.approval.expiresAt}\n    approve: ${event.approval.approve}\n    reject:  ${event.approval.reject}`;
  }
}
