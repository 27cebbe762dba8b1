import { createHash } from 'node:crypto';
import {
  APPROVER_MAX_LENGTH,
  type ApprovalLink,
  COMMENT_MAX_LENGTH,
  type DecisionForm,
  describeRef,
  formatDeadline,
  refName,
} from './approval.ts';
import type { ApprovalDecision } from './pipeline.ts';
import { supersedingRun } from './release.ts';
import { shortSha } from './text.ts';

/**
 * The approval route's pages: small, plain HTML, one layout. Everything that came from a push (commit
 * message, branch, repository) is HTML-escaped. Every page is sent with headers that keep it out of
 * caches, referrers and search indexes, and a Content-Security-Policy that allows no script at all.
 */

/** An HTTP response carrying one page (an API Gateway HTTP API structured result). */
export interface HtmlPage {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

const STYLE = [
  'body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}',
  'dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}',
  'label{display:block;margin-top:1rem;font-weight:600}input,textarea{width:100%;box-sizing:border-box;font:inherit}',
  'button{margin-top:1rem;font:inherit;font-weight:600;padding:.5rem 2rem}.problem{color:#a00;font-weight:600}',
].join('');

// The style is allowed by its hash, so the policy needs no 'unsafe-inline'.
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');

/** The Content-Security-Policy of every page: no scripts, no external resources, forms post to itself. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `style-src 'sha256-${STYLE_HASH}'`,
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-store',
  'Referrer-Policy': 'no-referrer',
  'X-Robots-Tag': 'noindex, nofollow',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
};

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/**
 * The one layout: a complete page with the given title and body HTML (already escaped by the caller).
 */
export function layout(title: string, bodyHtml: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>${escapeHtml(title)} · stepline</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
${bodyHtml}
</body>
</html>
`;
}

function page(statusCode: number, title: string, bodyHtml: string): HtmlPage {
  return { statusCode, headers: { ...HEADERS }, body: layout(title, bodyHtml) };
}

function verb(link: ApprovalLink): 'Approve' | 'Reject' {
  return link.action === 'approve' ? 'Approve' : 'Reject';
}

function details(link: ApprovalLink, rows: [string, string][] = []): string {
  const commit = link.message ? `${shortSha(link.sha)} ${link.message}` : shortSha(link.sha);
  const all: [string, string][] = [
    ['Repository', link.repository],
    ['Ref', describeRef(link.ref)],
    ['Commit', commit],
    ['Environment', link.environment],
    ...rows,
  ];
  const items = all.map(([term, value]) => `<dt>${escapeHtml(term)}</dt><dd>${escapeHtml(value)}</dd>`);
  return `<dl>\n${items.join('\n')}\n</dl>`;
}

/**
 * The page a link opens (GET): what is being decided and a form that confirms it (POST to the same URL).
 * Opening it decides nothing. With `problem`, it is the 400 answer to a form over its limits, showing
 * the form again with what was entered.
 */
export function confirmationPage(
  link: ApprovalLink,
  now: Date,
  retry?: { form: DecisionForm; problem: string },
): HtmlPage {
  const action = verb(link);
  const title = `${action} deploying ${link.repository} ${refName(link.ref)} to ${link.environment}?`;
  const body = [
    retry ? `<p class="problem">${escapeHtml(retry.problem)}</p>` : '',
    details(link, [
      ['Decision', action],
      ['Deadline', formatDeadline(link.expiresAt, now)],
    ]),
    `<p>Nothing is decided until you press <strong>${action}</strong>.</p>`,
    '<form method="post">',
    '<label for="name">Your name (optional)</label>',
    `<input id="name" name="name" maxlength="${APPROVER_MAX_LENGTH}" autocomplete="name" value="${escapeHtml(retry?.form.approver ?? '')}">`,
    '<label for="comment">Comment (optional)</label>',
    `<textarea id="comment" name="comment" rows="4" maxlength="${COMMENT_MAX_LENGTH}">${escapeHtml(retry?.form.comment ?? '')}</textarea>`,
    `<button type="submit">${action}</button>`,
    '</form>',
  ];
  return page(retry ? 400 : 200, title, body.filter(Boolean).join('\n'));
}

/** The answer to a decision the execution accepted: "Approved" or "Rejected", with what was recorded. */
export function decisionPage(link: ApprovalLink, decision: ApprovalDecision): HtmlPage {
  const title = decision.approved ? 'Approved' : 'Rejected';
  const rows: [string, string][] = [
    ['Decision', title],
    ['Decided by', decision.approver ?? '(no name given)'],
    ['Decided at', decision.decidedAt],
  ];
  if (decision.comment !== null) rows.push(['Comment', decision.comment]);
  const next = decision.approved
    ? `The run goes on to deploy to ${link.environment}.`
    : `The run stops here; nothing is deployed to ${link.environment}.`;
  return page(200, title, `${details(link, rows)}\n<p>${escapeHtml(next)}</p>`);
}

/**
 * The answer when the gate no longer waits (409): it expired (`timed-out`), or it was already decided or
 * the run ended (`not-waiting`, `invalid`). Nothing was changed.
 */
export function noLongerWaitingPage(
  link: ApprovalLink,
  reason: 'timed-out' | 'not-waiting' | 'invalid',
): HtmlPage {
  const expired = reason === 'timed-out';
  const title = expired ? 'This approval expired' : 'This approval was already decided';
  const text = expired
    ? 'The run stopped waiting for a decision before this one arrived, and failed as expired. Nothing was changed.'
    : 'A decision for this approval was already made (from this link or the other one), or the run has ended. Nothing was changed.';
  return page(409, title, `${details(link)}\n<p>${escapeHtml(text)}</p>`);
}

/**
 * The page of a link whose run a newer run of its branch retired (release control): the decision is not
 * accepted, and the page names the run that goes on instead.
 */
export function supersededPage(link: ApprovalLink, cause: string): HtmlPage {
  return page(
    409,
    `Superseded by ${supersedingRun(cause) ?? 'a newer run'}`,
    `${details(link)}\n<p>${escapeHtml(`This run was retired: ${cause}. A newer push of the same branch goes through the environments in its place, with its own approval. This decision was not accepted; nothing was changed.`)}</p>`,
  );
}

const ERROR_TITLES: Record<number, string> = {
  400: 'Check what you sent',
  403: 'This link cannot be used',
  404: 'Not found',
  405: 'Not allowed',
  409: 'Already decided',
  413: 'Too large',
};

/**
 * A page for an error: for 4xx, `message` is shown (write it for a person to act on); for 5xx a generic
 * text is shown and `message` is ignored, so no internals leak.
 */
export function errorPage(statusCode: number, message: string): HtmlPage {
  if (statusCode >= 500) {
    return page(
      statusCode,
      'Something went wrong',
      '<p>The request could not be handled. Your decision may not have been recorded: open the link again in a minute, and it will tell you if it already was.</p>',
    );
  }
  return page(statusCode, ERROR_TITLES[statusCode] ?? 'Request refused', `<p>${escapeHtml(message)}</p>`);
}
