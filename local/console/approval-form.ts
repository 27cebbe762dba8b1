/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import type { PendingApproval } from '../runs/read-model.ts';
import { h, time } from './dom.ts';

/**
 * The approval form of a waiting gate: name, comment, approve or reject, sent through the same signed link
 * the approval email carries; what the approval route answers replaces the form (`onDecided` keeps it).
 */
export function approvalForm(
  approval: PendingApproval,
  onDecided: (outcome: HTMLElement) => void,
): HTMLElement {
  const outcome = h('div', { class: 'outcome', role: 'status', 'aria-live': 'polite' });
  const name = h('input', {
    id: 'approver',
    name: 'name',
    autocomplete: 'name',
    required: false,
  }) as HTMLInputElement;
  const comment = h('textarea', { id: 'approval-comment', name: 'comment', rows: 2 }) as HTMLTextAreaElement;
  const approve = h(
    'button',
    { type: 'submit', value: 'approve', class: 'approve' },
    'Approve',
  ) as HTMLButtonElement;
  const reject = h(
    'button',
    { type: 'submit', value: 'reject', class: 'reject' },
    'Reject',
  ) as HTMLButtonElement;
  const section = h(
    'section',
    { class: 'approval', 'aria-labelledby': 'approval-title' },
    h('h2', { id: 'approval-title' }, `${approval.environment} waits for approval`),
    h(
      'p',
      {},
      `Deploying to ${approval.environment} needs a decision by `,
      h('time', { datetime: approval.expiresAt }, time(approval.expiresAt)),
      '. This decides through the same signed link the approval email carries; one decision counts.',
    ),
  );
  const form = h(
    'form',
    {
      class: 'approval-form',
      onsubmit: (event: Event) => {
        event.preventDefault();
        const submitter = (event as SubmitEvent).submitter as HTMLButtonElement | null;
        const action = submitter?.value === 'reject' ? 'reject' : 'approve';
        void decide(action);
      },
    },
    h('label', { for: 'approver' }, 'Your name'),
    name,
    h('label', { for: 'approval-comment' }, 'Comment'),
    comment,
    h('div', { class: 'buttons' }, approve, ' ', reject),
  );
  section.append(form, outcome);

  const decide = async (action: 'approve' | 'reject') => {
    approve.disabled = true;
    reject.disabled = true;
    outcome.textContent = action === 'approve' ? 'Approving…' : 'Rejecting…';
    const link = new URL(action === 'approve' ? approval.approve : approval.reject);
    const body = new URLSearchParams();
    if (name.value.trim()) body.set('name', name.value.trim());
    if (comment.value.trim()) body.set('comment', comment.value.trim());
    let answer: Response;
    try {
      // The link's path on this origin: the console may be open as localhost or 127.0.0.1.
      answer = await fetch(link.pathname, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: body.toString(),
      });
    } catch (error) {
      outcome.textContent = `The decision could not be sent: ${(error as Error).message}`;
      approve.disabled = false;
      reject.disabled = false;
      return;
    }
    const page = new DOMParser().parseFromString(await answer.text(), 'text/html');
    const title = page.querySelector('h1')?.textContent ?? `HTTP ${answer.status}`;
    const problem = page.querySelector('.problem')?.textContent;
    const rows = [...page.querySelectorAll('dl dt')].map((dt) => [
      dt.textContent ?? '',
      dt.nextElementSibling?.textContent ?? '',
    ]);
    const texts = [...page.querySelectorAll('body > p')].map((p) => p.textContent ?? '');
    const result = h(
      'section',
      {
        class: `decision ${answer.ok ? (action === 'approve' ? 'approved' : 'rejected') : 'refused'}`,
        'aria-labelledby': 'decision-title',
      },
      h('h2', { id: 'decision-title', tabindex: -1 }, title),
      problem ? h('p', { class: 'problem' }, problem) : null,
      h(
        'dl',
        { class: 'facts' },
        rows
          .filter(([t]) =>
            ['Decision', 'Decided by', 'Decided at', 'Comment', 'Environment'].includes(t ?? ''),
          )
          .map(([t, v]) => [h('dt', {}, t), h('dd', {}, v)]),
      ),
      texts.filter((t) => t && !t.startsWith('Nothing is decided')).map((t) => h('p', {}, t)),
    );
    if (answer.ok || answer.status === 409) {
      // Decided (here, or already elsewhere): what the approval route answered takes the form's place.
      section.className = 'approval decided';
      section.setAttribute('aria-labelledby', 'decision-title');
      outcome.replaceChildren(result);
      section.replaceChildren(outcome);
      onDecided(section);
      (result.querySelector('h2') as HTMLElement | null)?.focus();
    } else {
      outcome.replaceChildren(result);
      approve.disabled = false;
      reject.disabled = false;
    }
  };
  return section;
}
