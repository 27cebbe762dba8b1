import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import {
  buildPhaseMilestone,
  buildStateMilestone,
  describeBuild,
  parseCodeBuildEvent,
} from '#shared/events.ts';
import type { Logger } from '#shared/logger.ts';
import { buildNotification } from '#shared/notifications.ts';
import type { MilestoneEmitter, Notifier } from '#shared/ports.ts';

/** CodeBuild "Build State Change" and "Build Phase Change" events for stepline's projects. */
export interface BuildEventsDeps {
  notifier: Notifier;
  emitter: MilestoneEmitter;
  logger: Logger;
  /** For a log link when an event names the log stream but carries no deep link. */
  region: string;
}

/** Emits a milestone for every build event and notifies people when a build ends. */
export function createBuildEventsHandler(deps: BuildEventsDeps) {
  const { notifier, emitter, logger, region } = deps;

  async function run(event: unknown): Promise<void> {
    const parsed = parseCodeBuildEvent(event);
    logger.appendKeys({ buildId: parsed.detail['build-id'] });

    if (parsed['detail-type'] === 'CodeBuild Build Phase Change') {
      await emitter.emit(buildPhaseMilestone(parsed, region));
      logger.info('Build phase milestone emitted', { phase: parsed.detail['completed-phase'] });
      return;
    }

    const report = describeBuild(parsed, region);
    await Promise.all([
      emitter.emit(buildStateMilestone(report)),
      // Only a finished build is worth an email; IN_PROGRESS is a milestone for integrators.
      report.terminal ? notifier.publish(buildNotification(report)) : undefined,
    ]);
    logger.info('Build state handled', { status: report.status, notified: report.terminal });
  }

  return middy(run).use(injectLambdaContext(logger, { resetKeys: true }));
}
