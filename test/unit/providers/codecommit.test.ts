import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '#shared/errors.ts';
import { normalizeCodeCommitEvent, type WebhookOutcome } from '#shared/providers/index.ts';
import { type Push, PushSchema } from '#shared/push.ts';

type Json = Record<string, unknown>;

function fixture(event: string): Json {
  const files: Record<string, string> = {
    referenceCreated: 'awsdocs-codecommit.00.CodeCommit-Repository-State-Change.referenceCreated.json',
    referenceUpdated: 'awsdocs-codecommit.01.CodeCommit-Repository-State-Change.referenceUpdated.json',
    referenceDeleted: 'awsdocs-codecommit.02.CodeCommit-Repository-State-Change.referenceDeleted.json',
    unreferencedMergeCommitCreated:
      'awsdocs-codecommit.03.CodeCommit-Repository-State-Change.unreferencedMergeCommitCreated.json',
  };
  const url = new URL(`../../fixtures/codecommit/${files[event]}`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as Json;
}

function withDetail(event: Json, detail: Json): Json {
  return { ...event, detail: { ...(event.detail as Json), ...detail } };
}

function onlyPush(outcome: WebhookOutcome): Push {
  if (outcome.kind !== 'pushes') {
    throw new Error(`expected pushes, got ${JSON.stringify(outcome)}`);
  }
  expect(outcome.pushes).toHaveLength(1);
  const push = outcome.pushes[0] as Push;
  expect(PushSchema.parse(push)).toEqual(push);
  return push;
}

const myDemoRepo = {
  fullName: 'MyDemoRepo',
  cloneUrl: 'https://git-codecommit.us-east-2.amazonaws.com/v1/repos/MyDemoRepo',
};

describe('normalizeCodeCommitEvent on the documented events', () => {
  it('reads referenceCreated as a created branch, with the EventBridge id as delivery id', () => {
    const outcome = normalizeCodeCommitEvent(fixture('referenceCreated'));

    expect(outcome).toMatchObject({ kind: 'pushes', deliveryId: '01234567-EXAMPLE' });
    expect(onlyPush(outcome)).toEqual({
      provider: 'codecommit',
      repository: myDemoRepo,
      ref: 'refs/heads/myBranch',
      refType: 'branch',
      refName: 'myBranch',
      before: null,
      after: '3e5983DESTINATION',
      created: true,
      deleted: false,
      forced: false,
      changedFiles: [],
      commitsTruncated: true,
    });
  });

  it('reads referenceUpdated (a merge) as an update from oldCommitId to commitId', () => {
    const push = onlyPush(normalizeCodeCommitEvent(fixture('referenceUpdated')));

    expect(push).toEqual({
      provider: 'codecommit',
      repository: myDemoRepo,
      ref: 'refs/heads/myBranch',
      refType: 'branch',
      refName: 'myBranch',
      before: '3e5983DESTINATION',
      after: '7f0103fMERGE',
      created: false,
      deleted: false,
      forced: false,
      changedFiles: [],
      commitsTruncated: true,
    });
  });

  it('reads referenceDeleted as a deleted branch with after null', () => {
    const push = onlyPush(normalizeCodeCommitEvent(fixture('referenceDeleted')));

    expect(push).toEqual({
      provider: 'codecommit',
      repository: myDemoRepo,
      ref: 'refs/heads/myBranch',
      refType: 'branch',
      refName: 'myBranch',
      before: '26a8f2EXAMPLE',
      after: null,
      created: false,
      deleted: true,
      forced: false,
      changedFiles: [],
      commitsTruncated: true,
    });
  });

  it('ignores unreferencedMergeCommitCreated, naming the event', () => {
    expect(normalizeCodeCommitEvent(fixture('unreferencedMergeCommitCreated'))).toEqual({
      kind: 'ignored',
      reason: 'CodeCommit event "unreferencedMergeCommitCreated" is not a push',
    });
  });
});

describe('normalizeCodeCommitEvent on variants of the documented events', () => {
  it('reads a plain push with callerUserArn as its pusher', () => {
    const { baseCommitId, sourceCommitId, destinationCommitId, mergeOption, ...plain } = fixture(
      'referenceUpdated',
    ).detail as Json;
    const event = {
      ...fixture('referenceUpdated'),
      region: 'eu-west-1',
      detail: { ...plain, callerUserArn: 'arn:aws:iam::123456789012:user/Mary_Major' },
    };

    expect(onlyPush(normalizeCodeCommitEvent(event))).toMatchObject({
      repository: {
        fullName: 'MyDemoRepo',
        cloneUrl: 'https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/MyDemoRepo',
      },
      before: '3e5983DESTINATION',
      after: '7f0103fMERGE',
      pusher: 'arn:aws:iam::123456789012:user/Mary_Major',
    });
  });

  it('builds a tag ref from referenceType and referenceName when referenceFullName is absent', () => {
    const event = withDetail(fixture('referenceCreated'), {
      referenceType: 'tag',
      referenceName: 'v1.0',
      referenceFullName: undefined,
    });

    expect(onlyPush(normalizeCodeCommitEvent(event))).toMatchObject({
      ref: 'refs/tags/v1.0',
      refType: 'tag',
      refName: 'v1.0',
    });
  });

  it('reads a deleted reference with after null even when the event also names a commitId', () => {
    const event = withDetail(fixture('referenceDeleted'), { commitId: '26a8f2EXAMPLE' });

    expect(onlyPush(normalizeCodeCommitEvent(event))).toMatchObject({ after: null, deleted: true });
  });

  it('accepts unknown fields', () => {
    const event = withDetail({ ...fixture('referenceCreated'), extra: true }, { repositoryArn: 'arn:x' });

    expect(onlyPush(normalizeCodeCommitEvent(event)).after).toBe('3e5983DESTINATION');
  });
});

describe('normalizeCodeCommitEvent on events it cannot read', () => {
  it('refuses an event of another detail-type', () => {
    const event = {
      ...fixture('referenceCreated'),
      'detail-type': 'CodeBuild Build State Change',
      source: 'aws.codebuild',
    };

    expect(() => normalizeCodeCommitEvent(event)).toThrow(
      new InvalidInputError(
        'CodeCommit event has detail-type "CodeBuild Build State Change" from "aws.codebuild", expected "CodeCommit Repository State Change" from "aws.codecommit"',
      ),
    );
  });

  it.each([
    ['detail.repositoryName', withDetail(fixture('referenceCreated'), { repositoryName: undefined })],
    ['detail.commitId', withDetail(fixture('referenceUpdated'), { commitId: null })],
    ['detail.event', withDetail(fixture('referenceCreated'), { event: undefined })],
    ['region', { ...fixture('referenceCreated'), region: undefined }],
    ['id', { ...fixture('referenceCreated'), id: undefined }],
    ['detail', { ...fixture('referenceCreated'), detail: undefined }],
  ])('names %s when it is missing', (field, event) => {
    expect(() => normalizeCodeCommitEvent(event)).toThrow(
      new InvalidInputError(`CodeCommit event is missing ${field}`),
    );
  });

  it('refuses a reference that is neither a branch nor a tag', () => {
    const event = withDetail(fixture('referenceCreated'), {
      referenceType: 'note',
      referenceFullName: undefined,
    });

    expect(() => normalizeCodeCommitEvent(event)).toThrow(
      new InvalidInputError('CodeCommit event has detail.referenceType "note", not branch or tag'),
    );
  });
});
