import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { Milestone, MilestoneEmitter } from '../ports.ts';

/** The `source` of every event stepline puts on its bus. */
export const MILESTONE_SOURCE = 'stepline';

/** Puts milestones on stepline's custom EventBridge bus. A partial failure is an error, not a silent drop. */
export class EventBridgeMilestoneEmitter implements MilestoneEmitter {
  readonly #client: EventBridgeClient;
  readonly #busName: string;

  constructor(client: EventBridgeClient, busName: string) {
    this.#client = client;
    this.#busName = busName;
  }

  async emit(milestone: Milestone): Promise<void> {
    const output = await this.#client.send(
      new PutEventsCommand({
        Entries: [
          {
            EventBusName: this.#busName,
            Source: MILESTONE_SOURCE,
            DetailType: milestone.detailType,
            Detail: JSON.stringify(milestone.detail),
          },
        ],
      }),
    );
    if ((output.FailedEntryCount ?? 0) > 0) {
      const entry = output.Entries?.[0];
      throw new Error(
        `EventBridge refused the milestone: ${entry?.ErrorCode ?? 'unknown'} ${entry?.ErrorMessage ?? ''}`,
      );
    }
  }
}
