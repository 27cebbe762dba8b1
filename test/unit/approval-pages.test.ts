import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ApprovalLink } from '#shared/approval.ts';
import {
  CONTENT_SECURITY_POLICY,
  confirmationPage,
  decisionPage,
  errorPage,
  escapeHtml,
  layout,
  noLongerWaitingPage,
} from '#shared/approval-pages.ts';

const link: ApprovalLink = {
  taskToken: 'AQCEAAAAKgAAAAMAAAAAAAAAAbXyWHbsecret',
  action: 'approve',
  expiresAt: new Date('2025-01-14T10:00:00Z'),
  executionArn: 'arn:aws:states:eu-west-1:123456789012:execution:stepline-dev-pipeline:run-1',
  environment: 'prod',
  repository: 'octo/app',
  ref: 'refs/heads/main',
  sha: 'b2c3d4e5f60718293a4b5c6d7e8f901234567890',
  message: '<script>alert("x")</script> & more',
};
const now = new Date('2025-01-13T10:00:00Z');

describe('escapeHtml', () => {
  it('escapes the characters that open markup or close attributes', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe(
      '&#60;a href=&#34;x&#34; title=&#39;y&#39;&#62;&#38;&#60;/a&#62;',
    );
  });
});

describe('layout', () => {
  it('allows its own style by hash, and no script', () => {
    const html = layout('Title', '<p>x</p>');
    const style = /<style>(.*)<\/style>/.exec(html)?.[1] ?? '';
    const hash = createHash('sha256').update(style).digest('base64');
    expect(CONTENT_SECURITY_POLICY).toContain(`style-src 'sha256-${hash}'`);
    expect(CONTENT_SECURITY_POLICY).toContain("default-src 'none'");
    expect(CONTENT_SECURITY_POLICY).not.toContain('script-src');
    expect(CONTENT_SECURITY_POLICY).not.toContain('unsafe-inline');
  });
});

describe('confirmationPage', () => {
  it('shows what is being decided and a form that posts to the same URL', () => {
    const page = confirmationPage(link, now);
    expect(page.statusCode).toBe(200);
    for (const text of [
      'octo/app',
      'branch main',
      'b2c3d4e',
      'prod',
      'Approve',
      'Tue, 14 Jan 2025 10:00:00 GMT',
    ]) {
      expect(page.body).toContain(text);
    }
    expect(page.body).toContain('<form method="post">');
    expect(page.body).toContain('name="name"');
    expect(page.body).toContain('name="comment"');
    expect(page.body.match(/<button[^>]*>([^<]*)<\/button>/g)).toEqual([
      '<button type="submit">Approve</button>',
    ]);
  });

  it('labels the button Reject for a reject link', () => {
    const page = confirmationPage({ ...link, action: 'reject' }, now);
    expect(page.body.match(/<button[^>]*>([^<]*)<\/button>/g)).toEqual([
      '<button type="submit">Reject</button>',
    ]);
  });

  it('escapes a commit message holding markup', () => {
    const page = confirmationPage(link, now);
    expect(page.body).not.toContain('<script>');
    expect(page.body).toContain('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; more');
  });

  it('never holds the task token', () => {
    expect(confirmationPage(link, now).body).not.toContain(link.taskToken);
  });

  it('is sent so that caches, referrers and robots keep nothing', () => {
    expect(confirmationPage(link, now).headers).toMatchObject({
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Referrer-Policy': 'no-referrer',
      'X-Robots-Tag': 'noindex, nofollow',
      'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    });
  });

  it('answers a form over its limits with 400, the problem and the entered values, escaped', () => {
    const page = confirmationPage(link, now, {
      form: { approver: '"Ada"', comment: '</textarea><script>' },
      problem: 'The comment is longer than 2000 characters.',
    });
    expect(page.statusCode).toBe(400);
    expect(page.body).toContain('The comment is longer than 2000 characters.');
    expect(page.body).toContain('value="&#34;Ada&#34;"');
    expect(page.body).toContain('&#60;/textarea&#62;&#60;script&#62;</textarea>');
  });
});

describe('decisionPage', () => {
  it('says Approved with what was recorded', () => {
    const page = decisionPage(link, {
      approved: true,
      approver: 'Ada',
      comment: 'ship <it>',
      decidedAt: '2025-01-13T12:00:00.000Z',
      sourceIp: '198.51.100.7',
    });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<h1>Approved</h1>');
    expect(page.body).toContain('Ada');
    expect(page.body).toContain('ship &#60;it&#62;');
  });

  it('says Rejected for a rejection', () => {
    const page = decisionPage(link, {
      approved: false,
      approver: null,
      comment: null,
      decidedAt: '2025-01-13T12:00:00.000Z',
      sourceIp: null,
    });
    expect(page.body).toContain('<h1>Rejected</h1>');
  });
});

describe('noLongerWaitingPage', () => {
  it('says "already decided" for a token that no longer waits', () => {
    for (const reason of ['not-waiting', 'invalid'] as const) {
      const page = noLongerWaitingPage(link, reason);
      expect(page.statusCode).toBe(409);
      expect(page.body).toContain('already decided');
    }
  });

  it('says "expired" for a gate that timed out', () => {
    const page = noLongerWaitingPage(link, 'timed-out');
    expect(page.statusCode).toBe(409);
    expect(page.body).toContain('This approval expired');
  });
});

describe('errorPage', () => {
  it('shows a client error its message, escaped', () => {
    const page = errorPage(403, 'This approval link expired at <soon>');
    expect(page.statusCode).toBe(403);
    expect(page.body).toContain('This approval link expired at &#60;soon&#62;');
  });

  it('shows a server error nothing of its message', () => {
    const page = errorPage(500, 'connect ECONNREFUSED 10.0.0.1:443');
    expect(page.statusCode).toBe(500);
    expect(page.body).not.toContain('ECONNREFUSED');
    expect(page.body).toContain('Something went wrong');
  });
});
