import { describe, expect, it } from 'vitest';
import { EXECUTION_NAME_MAX_LENGTH, executionName } from '#shared/execution-name.ts';
import { aPush, aPushTo } from '../helpers/push.ts';

// Step Functions execution names: 1–80 characters; we keep to those CloudWatch Logs also accepts.
const ALLOWED = /^[A-Za-z0-9_-]{1,80}$/;

describe('executionName', () => {
  it('is the same for every delivery of the same push', () => {
    expect(executionName(aPush())).toBe(executionName(structuredClone(aPush())));
  });

  it('reads as repository, ref and short commit', () => {
    expect(executionName(aPush())).toMatch(/^shop-main-2222222-[0-9a-f]{16}$/);
  });

  it('differs by provider, repository, ref and commit', () => {
    const names = new Set([
      executionName(aPush()),
      executionName(aPush({ provider: 'gitlab' })),
      executionName(aPush({ repository: { fullName: 'acme/shop2', cloneUrl: 'x' } })),
      executionName(aPushTo('tag', 'main')),
      executionName(aPush({ after: '3333333333333333333333333333333333333333' })),
    ]);
    expect(names.size).toBe(5);
  });

  it('differs for a push back to a commit that already ran, which moved the ref from elsewhere', () => {
    const forward = aPush();
    const back = aPush({ before: '9999999999999999999999999999999999999999', forced: true });
    expect(forward.after).toBe(back.after);
    expect(executionName(back)).not.toBe(executionName(forward));
    expect(executionName(back)).toMatch(/^shop-main-2222222-[0-9a-f]{16}$/);
  });

  it('stays within 80 allowed characters for very long names', () => {
    const push = aPushTo('branch', `feature/${'x'.repeat(300)}`, {
      repository: { fullName: `org/${'r'.repeat(200)}`, cloneUrl: 'x' },
    });
    const name = executionName(push);
    expect(name.length).toBeLessThanOrEqual(EXECUTION_NAME_MAX_LENGTH);
    expect(name).toMatch(ALLOWED);
  });

  it('stays unique when long names differ only past the cut', () => {
    const a = aPushTo('branch', `feature/${'x'.repeat(100)}-a`);
    const b = aPushTo('branch', `feature/${'x'.repeat(100)}-b`);
    expect(executionName(a)).not.toBe(executionName(b));
  });

  it('keeps only allowed characters and stays unique for unicode and punctuation', () => {
    const names = [
      'fix/ünïcödé',
      'fix/ünïcode',
      'fix/日本語',
      'fix/中文',
      'a b<c>{d}[e]?*"#%\\^|~`$&,;:',
    ].map((ref) => executionName(aPushTo('branch', ref)));
    for (const name of names) expect(name).toMatch(ALLOWED);
    expect(new Set(names).size).toBe(names.length);
  });

  it('names a push whose commit is unknown', () => {
    expect(executionName(aPush({ after: null }))).toMatch(ALLOWED);
  });
});
