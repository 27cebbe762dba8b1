import { randomUUID } from 'node:crypto';
import type { BuildEvent } from '../codebuild/service.ts';
import type { ExecutionRecord } from '../state/store.ts';

/** Where an event comes from: the region and account every ARN in it names. */
export interface EventOrigin {
  region: string;
  account: string;
}

/** An EventBridge event as a rule's target receives it. */
export type EventEnvelope = {
  version: '0';
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: unknown;
};

function eventEnvelope(
  detailType: string,
  source: string,
  origin: EventOrigin,
  resources: string[],
  detail: unknown,
): EventEnvelope {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': detailType,
    source,
    account: origin.account,
    time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: origin.region,
    resources,
    detail,
  };
}

/** The "Execution Status Change" event Step Functions sends for a run. */
export function executionEvent(
  record: ExecutionRecord,
  stateMachineArn: string,
  origin: EventOrigin,
): EventEnvelope {
  return eventEnvelope(
    'Step Functions Execution Status Change',
    'aws.states',
    origin,
    [record.executionArn],
    {
      executionArn: record.executionArn,
      stateMachineArn,
      name: record.name,
      // Step Functions knows neither: both are a stopped (ABORTED) execution, with their error and cause.
      status: record.status === 'INTERRUPTED' || record.status === 'SUPERSEDED' ? 'ABORTED' : record.status,
      startDate: Date.parse(record.startDate),
      stopDate: record.stopDate ? Date.parse(record.stopDate) : null,
      input: JSON.stringify(record.input),
      output: record.output === undefined ? null : JSON.stringify(record.output),
      error: record.error ?? null,
      cause: record.cause ?? null,
      redriveCount: record.redriveCount ?? 0,
      redriveDate: record.redriveDate ? Date.parse(record.redriveDate) : null,
    },
  );
}

/** The "Build State Change" / "Build Phase Change" event CodeBuild sends. */
export function codeBuildEvent(event: BuildEvent, origin: EventOrigin): EventEnvelope {
  const b = event.build;
  const info = {
    'build-number': b.BuildNumber,
    'build-start-time': new Date(b.StartTime).toUTCString(),
    'source-version': b.SourceVersion,
    initiator: 'states/stepline',
    environment: {
      'environment-variables': b.Environment.EnvironmentVariables.map((v) => ({
        name: v.Name,
        value: v.Value,
        type: v.Type,
      })),
    },
    logs: { 'group-name': b.Logs.GroupName, 'stream-name': b.Logs.StreamName, 'deep-link': b.Logs.DeepLink },
    phases: b.Phases.map((p) => ({
      'phase-type': p.PhaseType,
      'phase-status': p.PhaseStatus,
      'phase-context': (p.Contexts ?? []).map((c) => `${c.StatusCode}: ${c.Message}`),
      'start-time': new Date(p.StartTime).toUTCString(),
      'end-time': new Date(p.EndTime).toUTCString(),
      'duration-in-seconds': p.DurationInSeconds,
    })),
  };
  const common = {
    'project-name': b.ProjectName,
    'build-id': b.Arn,
    'source-version': b.SourceVersion,
    'additional-information': info,
    version: '1',
  };
  if (event.kind === 'state') {
    return eventEnvelope('CodeBuild Build State Change', 'aws.codebuild', origin, [b.Arn], {
      ...common,
      'build-status': event.status,
      'current-phase': event.status === 'IN_PROGRESS' ? 'SUBMITTED' : 'COMPLETED',
      'current-phase-context': '[]',
    });
  }
  return eventEnvelope('CodeBuild Build Phase Change', 'aws.codebuild', origin, [b.Arn], {
    ...common,
    'completed-phase': event.phase.name,
    'completed-phase-status': event.phase.status,
    'completed-phase-duration-seconds': event.phase.durationSeconds,
    'completed-phase-context': JSON.stringify(event.phase.context ? [event.phase.context.message] : []),
    'completed-phase-start': event.phase.start.toUTCString(),
    'completed-phase-end': event.phase.end.toUTCString(),
  });
}
