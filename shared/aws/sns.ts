import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { type Notification, type Notifier, SUBJECT_MAX_LENGTH } from '../ports.ts';
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
