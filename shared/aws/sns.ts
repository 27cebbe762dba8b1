import { PublishCommand, paginateListSubscriptionsByTopic, type SNSClient } from '@aws-sdk/client-sns';
import {
  type Notification,
  type Notifier,
  SUBJECT_MAX_LENGTH,
  type SubscriberCounter,
  type Subscribers,
} from '../ports.ts';
import { oneLine } from '../text.ts';

/** Makes a subject SNS accepts: one line, under 100 characters, ending in an ellipsis when cut. */
export function snsSubject(subject: string): string {
  return oneLine(subject, SUBJECT_MAX_LENGTH);
}

/** Publishes notifications to SNS topics by their role. */
export class SnsNotifier implements Notifier {
  readonly #client: SNSClient;
  readonly #topics: Record<Notification['topic'], string>;

  constructor(client: SNSClient, topics: Record<Notification['topic'], string>) {
    this.#client = client;
    this.#topics = topics;
  }

  async publish(notification: Notification): Promise<void> {
    await this.#client.send(
      new PublishCommand({
        TopicArn: this.#topics[notification.topic],
        Subject: snsSubject(notification.subject),
        Message: notification.body,
      }),
    );
  }
}

/**
 * An unconfirmed subscription is listed with the `SubscriptionArn` `PendingConfirmation`
 * (https://docs.aws.amazon.com/sns/latest/api/API_ListSubscriptionsByTopic.html, and
 * https://docs.aws.amazon.com/sns/latest/dg/SendMessageToHttp.confirm.html): SNS delivers nothing to it.
 */
const PENDING_CONFIRMATION = 'PendingConfirmation';

/** Counts a topic's confirmed and pending subscriptions, every page of them (100 per call). */
export class SnsSubscriberCounter implements SubscriberCounter {
  readonly #client: SNSClient;
  readonly #topicArn: string;

  constructor(client: SNSClient, topicArn: string) {
    this.#client = client;
    this.#topicArn = topicArn;
  }

  async count(): Promise<Subscribers> {
    const counts = { confirmed: 0, pending: 0 };
    for await (const page of paginateListSubscriptionsByTopic(
      { client: this.#client },
      { TopicArn: this.#topicArn },
    )) {
      for (const subscription of page.Subscriptions ?? []) {
        if (subscription.SubscriptionArn === PENDING_CONFIRMATION) counts.pending += 1;
        else if (subscription.SubscriptionArn) counts.confirmed += 1;
      }
    }
    return counts;
  }
}
