import { relative } from 'node:path';
import { runOrigin, stageLabel } from '#local/runs/read-model.ts';
import type { RuntimeEvent } from '#local/runs/runtime-event.ts';
import { formatDuration } from '#shared/text.ts';

function seconds(from: number, to: number): string {
  return formatDuration(to - from, { tenths: true });
}

/**
 * Turns runtime events into the lines the terminal shows: each stage as it starts and ends, with its
 * duration and log; the approval link; each notification in one line; how a run ended.
 */
export function terminalLine(event: RuntimeEvent, cwd: string): string | undefined {
  switch (event.kind) {
    case 'execution': {
      const r = event.record;
      if (r.status === 'RUNNING') {
        const origin = runOrigin(r.input);
        const message = origin.message?.split('\n')[0] ?? '';
        // A redrive is the same run going on, not a new one: said with its own mark.
        const mark = r.redriveCount ? '↻' : '▶';
        const redrive = r.redriveCount ? ` (redrive ${r.redriveCount})` : '';
        return `${mark} ${r.name}${redrive}: ${origin.repository ?? ''} ${origin.ref ?? ''} @ ${origin.commit?.slice(0, 7) ?? ''} ${message}`;
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
      const label = stageLabel(build.build.ProjectName, build.environment.STEPLINE_ENVIRONMENT);
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
    case 'status-skipped':
      return `  ◦ commit statuses to ${event.status.provider} skipped: ${event.status.reason ?? 'no token'} (README, "Commit statuses")`;
    case 'approval':
      return `  ⏸ ${event.approval.environment} waits for approval until ${event.approval.expiresAt}\n    approve: ${event.approval.approve}\n    reject:  ${event.approval.reject}`;
  }
}
