import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  APPROVAL_REJECTED_ERROR,
  type ApprovalLink,
  approvalDecision,
  approvalRequestNotification,
  decideApproval,
  decisionFormProblem,
  formatDeadline,
  formatTimeLeft,
  mintApprovalLinks,
  openApprovalLink,
  parseApprovalRequest,
  readDecisionForm,
  redactError,
} from '#shared/approval.ts';
import { ConfigurationError, ForbiddenError, InvalidInputError } from '#shared/errors.ts';
import type { ApprovalRequest } from '#shared/pipeline.ts';
import type { TaskDecider } from '#shared/ports.ts';

const KEY = 'k3y-for-tests-0123456789abcdef';
const BASE_URL = 'https://abc123.execute-api.eu-west-1.amazonaws.com/approvals';
const ENTERED_AT = '2025-01-13T10:00:00.250Z';
const DEADLINE = new Date('2025-01-14T10:00:00.000Z');
const BEFORE_DEADLINE = new Date('2025-01-13T12:00:00.000Z');

/** A task token shaped like Step Functions' (base64 of binary), 1024 characters. */
function taskToken(length = 1024): string {
  return randomBytes(length).toString('base64').slice(0, length);
}

function approvalRequest(overrides: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    taskToken: taskToken(),
    executionArn:
      'arn:aws:states:eu-west-1:123456789012:execution:stepline-dev-pipeline:github-octo-app-b2c3d4e',
    enteredAt: ENTERED_AT,
    timeoutSeconds: 24 * 3600,
    environment: 'prod',
    push: {
      provider: 'github',
      repository: {
        fullName: 'octo/app',
        cloneUrl: 'https://github.com/octo/app.git',
        defaultBranch: 'main',
      },
      ref: 'refs/heads/main',
      refType: 'branch',
      refName: 'main',
      before: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678',
      after: 'b2c3d4e5f60718293a4b5c6d7e8f901234567890',
      created: false,
      deleted: false,
      forced: false,
      pusher: 'octocat',
      headCommitMessage: 'Fix the login redirect\n\nThe redirect lost the query string.',
      changedFiles: ['src/login.ts'],
      commitsTruncated: false,
    },
    passed: ['Infrastructure', 'Image', 'dev: Deploy'],
    imageUri: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:b2c3d4e',
    ...overrides,
  };
}

function segmentOf(url: string): string {
  expect(url.startsWith(`${BASE_URL}/`)).toBe(true);
  return url.slice(BASE_URL.length + 1);
}

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('mintApprovalLinks and openApprovalLink', () => {
  it('round-trips the approve and the reject link with everything the page shows', () => {
    const request = approvalRequest();
    const links = mintApprovalLinks(request, KEY, BASE_URL);

    const approve = openApprovalLink(segmentOf(links.approve), KEY, BEFORE_DEADLINE);
    const reject = openApprovalLink(segmentOf(links.reject), KEY, BEFORE_DEADLINE);

    const expected: Omit<ApprovalLink, 'action'> = {
      taskToken: request.taskToken,
      expiresAt: DEADLINE,
      executionArn: request.executionArn,
      environment: 'prod',
      repository: 'octo/app',
      ref: 'refs/heads/main',
      sha: 'b2c3d4e5f60718293a4b5c6d7e8f901234567890',
      message: 'Fix the login redirect',
    };
    expect(approve).toEqual({ ...expected, action: 'approve' });
    expect(reject).toEqual({ ...expected, action: 'reject' });
    expect(links.expiresAt).toEqual(DEADLINE);
  });

  it('joins the base URL without a double slash', () => {
    const links = mintApprovalLinks(approvalRequest(), KEY, `${BASE_URL}/`);
    expect(links.approve).toMatch(
      /^https:\/\/abc123\.execute-api\.eu-west-1\.amazonaws\.com\/approvals\/[\w-]+$/,
    );
  });

  it('mints a different segment every time, even for the same request', () => {
    const request = approvalRequest();
    const first = mintApprovalLinks(request, KEY, BASE_URL);
    const second = mintApprovalLinks(request, KEY, BASE_URL);
    expect(new Set([first.approve, first.reject, second.approve, second.reject]).size).toBe(4);
  });

  it('refuses a link with any single character changed', () => {
    const segment = segmentOf(mintApprovalLinks(approvalRequest(), KEY, BASE_URL).approve);
    const accepted: number[] = [];
    for (let i = 0; i < segment.length; i++) {
      const original = segment[i] as string;
      const replacement = BASE64URL_ALPHABET[(BASE64URL_ALPHABET.indexOf(original) + 1) % 64] as string;
      const tampered = segment.slice(0, i) + replacement + segment.slice(i + 1);
      try {
        openApprovalLink(tampered, KEY, BEFORE_DEADLINE);
        accepted.push(i);
      } catch (error) {
        expect(error).toBeInstanceOf(ForbiddenError);
        expect((error as Error).message).toBe('This approval link is not valid');
      }
    }
    expect(accepted).toEqual([]);
  });

  it('refuses a link with any single byte changed', () => {
    const bytes = Buffer.from(
      segmentOf(mintApprovalLinks(approvalRequest(), KEY, BASE_URL).reject),
      'base64url',
    );
    const accepted: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const tampered = Buffer.from(bytes);
      tampered[i] = (tampered[i] as number) ^ 0x01;
      try {
        openApprovalLink(tampered.toString('base64url'), KEY, BEFORE_DEADLINE);
        accepted.push(i);
      } catch (error) {
        expect(error).toBeInstanceOf(ForbiddenError);
      }
    }
    expect(accepted).toEqual([]);
  });

  it.each([
    ['empty', () => ''],
    ['truncated', (s: string) => s.slice(0, -1)],
    ['cut to the header', (s: string) => s.slice(0, 20)],
    ['extended', (s: string) => `${s}A`],
    ['holding a character outside base64url', (s: string) => `${s.slice(0, 10)}+${s.slice(11)}`],
    ['padded', (s: string) => `${s}=`],
  ])('refuses a link segment that is %s', (_, change) => {
    const segment = segmentOf(mintApprovalLinks(approvalRequest(), KEY, BASE_URL).approve);
    expect(() => openApprovalLink(change(segment), KEY, BEFORE_DEADLINE)).toThrow(
      new ForbiddenError('This approval link is not valid'),
    );
  });

  it('refuses a link minted with another key', () => {
    const segment = segmentOf(
      mintApprovalLinks(approvalRequest(), 'another-key-0123456789abcdef', BASE_URL).approve,
    );
    expect(() => openApprovalLink(segment, KEY, BEFORE_DEADLINE)).toThrow(
      new ForbiddenError('This approval link is not valid'),
    );
  });

  it('refuses a link from its expiry on, naming the time', () => {
    const segment = segmentOf(mintApprovalLinks(approvalRequest(), KEY, BASE_URL).approve);
    expect(openApprovalLink(segment, KEY, new Date(DEADLINE.getTime() - 1000)).action).toBe('approve');
    for (const now of [DEADLINE, new Date('2025-02-01T00:00:00Z')]) {
      expect(() => openApprovalLink(segment, KEY, now)).toThrow(
        new ForbiddenError('This approval link expired at 2025-01-14T10:00:00.000Z'),
      );
    }
  });

  it('checks the link before its expiry, so a forged link is "not valid" even when late', () => {
    const segment = segmentOf(
      mintApprovalLinks(approvalRequest(), 'another-key-0123456789abcdef', BASE_URL).approve,
    );
    expect(() => openApprovalLink(segment, KEY, new Date('2030-01-01T00:00:00Z'))).toThrow(
      'This approval link is not valid',
    );
  });

  it('keeps a link with a 1024-character task token under 4 KB', () => {
    const links = mintApprovalLinks(approvalRequest({ taskToken: taskToken(1024) }), KEY, BASE_URL);
    expect(links.approve.length).toBeLessThan(4096);
    expect(links.reject.length).toBeLessThan(4096);
  });

  it("keeps a link under 4 KB at Step Functions' longest token and very long push fields", () => {
    const base = approvalRequest();
    const request = approvalRequest({
      taskToken: taskToken(2048),
      executionArn: `arn:aws:states:eu-west-1:123456789012:execution:${'s'.repeat(80)}:${'e'.repeat(80)}`,
      environment: 'e'.repeat(31),
      push: {
        ...base.push,
        repository: { ...base.push.repository, fullName: `${'o'.repeat(100)}/${'r'.repeat(100)}` },
        ref: `refs/heads/${'b'.repeat(250)}`,
        headCommitMessage: 'm'.repeat(5000),
      },
    });
    const links = mintApprovalLinks(request, KEY, BASE_URL);
    expect(links.approve.length).toBeLessThan(4096);
    const link = openApprovalLink(segmentOf(links.approve), KEY, BEFORE_DEADLINE);
    expect(link.taskToken).toBe(request.taskToken);
    expect(link.message).toHaveLength(72);
    expect(link.message.endsWith('…')).toBe(true);
  });

  it('never shows the task token in the link, in plain text or in base64', () => {
    const token = taskToken();
    const links = mintApprovalLinks(approvalRequest({ taskToken: token }), KEY, BASE_URL);
    const tokenBytes = Buffer.from(token);
    // Every alignment of the token's encoding, so a shifted copy would be found too.
    const encodings = [0, 1, 2].flatMap((skip) => [
      tokenBytes.subarray(skip).toString('base64url').slice(4, 40),
      tokenBytes.subarray(skip).toString('base64').slice(4, 40),
    ]);
    for (const link of [links.approve, links.reject]) {
      expect(link).not.toContain(token.slice(0, 32));
      for (const encoded of encodings) expect(link).not.toContain(encoded);
    }
  });

  it('refuses to mint with a key too short to resist guessing', () => {
    expect(() => mintApprovalLinks(approvalRequest(), 'short', BASE_URL)).toThrow(ConfigurationError);
  });

  it('refuses to mint for a request whose enteredAt is not a time', () => {
    expect(() => mintApprovalLinks(approvalRequest({ enteredAt: 'yesterday' }), KEY, BASE_URL)).toThrow(
      InvalidInputError,
    );
  });
});

describe('parseApprovalRequest', () => {
  it('accepts the gate payload and defaults passed to none', () => {
    const { passed: _, ...payload } = approvalRequest();
    expect(parseApprovalRequest(payload).passed).toEqual([]);
  });

  it('throws InvalidInputError naming the wrong field, without the token', () => {
    const token = taskToken();
    const payload = { ...approvalRequest({ taskToken: token }), timeoutSeconds: 'soon' };
    expect(() => parseApprovalRequest(payload)).toThrow(InvalidInputError);
    expect(() => parseApprovalRequest(payload)).toThrow(/timeoutSeconds/);
    try {
      parseApprovalRequest(payload);
    } catch (error) {
      expect((error as Error).message).not.toContain(token);
    }
  });
});

describe('approvalRequestNotification', () => {
  const request = approvalRequest();
  const links = mintApprovalLinks(request, KEY, BASE_URL);
  const notification = approvalRequestNotification(request, links, new Date('2025-01-13T10:00:00Z'));

  it('goes to the approvals topic with a subject naming environment, repository, branch and commit', () => {
    expect(notification.topic).toBe('approvals');
    expect(notification.subject).toBe('Approve prod: octo/app main @ b2c3d4e');
  });

  it('holds what is waiting, the deadline and both links', () => {
    for (const expected of [
      'octo/app',
      'Branch:      main',
      'b2c3d4e',
      'Fix the login redirect',
      'The redirect lost the query string.',
      'Pushed by:   octocat',
      'Passed:      Infrastructure, Image, dev: Deploy',
      'Environment: prod',
      'Image:       123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:b2c3d4e',
      '2025-01-14T10:00:00.000Z',
      'Tue, 14 Jan 2025 10:00:00 GMT (in 1 day)',
      `Approve: ${links.approve}`,
      `Reject:  ${links.reject}`,
    ]) {
      expect(notification.body).toContain(expected);
    }
  });

  it('carries the gate and both links as data too, as the text shows them', () => {
    expect(notification.approval).toEqual({
      executionArn: request.executionArn,
      environment: 'prod',
      approve: links.approve,
      reject: links.reject,
      expiresAt: '2025-01-14T10:00:00.000Z',
    });
  });

  it('says the links act for whoever holds them, and never holds the task token', () => {
    expect(notification.body).toContain('These links act for whoever holds them');
    expect(notification.body).not.toContain(request.taskToken);
    expect(notification.subject).not.toContain(request.taskToken);
  });

  it('names a tag as a tag', () => {
    const tagRequest = approvalRequest({
      push: { ...request.push, ref: 'refs/tags/v1.2.0', refType: 'tag', refName: 'v1.2.0' },
    });
    const tagged = approvalRequestNotification(tagRequest, links, new Date('2025-01-13T10:00:00Z'));
    expect(tagged.subject).toBe('Approve prod: octo/app v1.2.0 @ b2c3d4e');
    expect(tagged.body).toContain('Tag:         v1.2.0');
  });
});

describe('the decision', () => {
  const link = openApprovalLink(
    segmentOf(mintApprovalLinks(approvalRequest(), KEY, BASE_URL).approve),
    KEY,
    BEFORE_DEADLINE,
  );
  const rejectLink: ApprovalLink = { ...link, action: 'reject' };
  const decidedAt = new Date('2025-01-13T12:34:56.000Z');

  it('reads the form trimmed, with empty fields as null', () => {
    expect(readDecisionForm('name=+Ada+Lovelace+&comment=%0Alooks+good%0A')).toEqual({
      approver: 'Ada Lovelace',
      comment: 'looks good',
    });
    expect(readDecisionForm('name=&comment=+++')).toEqual({ approver: null, comment: null });
    expect(readDecisionForm('')).toEqual({ approver: null, comment: null });
  });

  it('names the limit a form is over', () => {
    expect(decisionFormProblem({ approver: 'a'.repeat(200), comment: 'c'.repeat(2000) })).toBeUndefined();
    expect(decisionFormProblem({ approver: 'a'.repeat(201), comment: null })).toContain('200 characters');
    expect(decisionFormProblem({ approver: null, comment: 'c'.repeat(2001) })).toContain('2000 characters');
  });

  it('records approver, comment, time and source address', () => {
    expect(approvalDecision(link, { approver: 'Ada', comment: 'ok' }, '198.51.100.7', decidedAt)).toEqual({
      approved: true,
      approver: 'Ada',
      comment: 'ok',
      decidedAt: '2025-01-13T12:34:56.000Z',
      sourceIp: '198.51.100.7',
    });
    expect(approvalDecision(rejectLink, { approver: null, comment: null }, undefined, decidedAt)).toEqual({
      approved: false,
      approver: null,
      comment: null,
      decidedAt: '2025-01-13T12:34:56.000Z',
      sourceIp: null,
    });
  });

  it('refuses a form over its limits', () => {
    expect(() =>
      approvalDecision(link, { approver: null, comment: 'c'.repeat(2001) }, undefined, decidedAt),
    ).toThrow(InvalidInputError);
  });

  function recordingDecider() {
    const calls: unknown[][] = [];
    const decider: TaskDecider = {
      succeed: async (...args) => void calls.push(['succeed', ...args]),
      fail: async (...args) => void calls.push(['fail', ...args]),
    };
    return { decider, calls };
  }

  it('approves by succeeding the task with the decision as output', async () => {
    const { decider, calls } = recordingDecider();
    const decision = approvalDecision(link, { approver: 'Ada', comment: null }, '198.51.100.7', decidedAt);
    await decideApproval(decider, link, decision);
    expect(calls).toEqual([['succeed', link.taskToken, decision]]);
  });

  it('rejects by failing the task with Approval.Rejected and the decision as cause', async () => {
    const { decider, calls } = recordingDecider();
    const decision = approvalDecision(
      rejectLink,
      { approver: 'Ada', comment: 'not today' },
      undefined,
      decidedAt,
    );
    await decideApproval(decider, rejectLink, decision);
    expect(APPROVAL_REJECTED_ERROR).toBe('Approval.Rejected');
    expect(calls).toEqual([['fail', link.taskToken, 'Approval.Rejected', JSON.stringify(decision)]]);
  });
});

describe('formatting', () => {
  it.each([
    [30_000, 'less than a minute'],
    [60_000, '1 minute'],
    [5 * 60_000, '5 minutes'],
    [3600_000, '1 hour'],
    [(23 * 60 + 59) * 60_000, '23 hours 59 minutes'],
    [24 * 3600_000, '1 day'],
    [(50 * 60 + 10) * 60_000, '2 days 2 hours'],
  ])('writes %i ms as "%s"', (ms, words) => {
    expect(formatTimeLeft(ms)).toBe(words);
  });

  it('says when a deadline has passed', () => {
    expect(formatDeadline(DEADLINE, new Date('2025-01-15T00:00:00Z'))).toBe(
      'Tue, 14 Jan 2025 10:00:00 GMT (passed)',
    );
  });

  it('removes a secret from an error for logging', () => {
    const token = taskToken(64);
    const redacted = redactError(new Error(`Value '${token}' at 'taskToken' failed`), token);
    expect(redacted).toEqual({ name: 'Error', message: "Value '[redacted]' at 'taskToken' failed" });
  });
});
