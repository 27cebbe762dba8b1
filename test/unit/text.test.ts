import { describe, expect, it } from 'vitest';
import { oneLine, shortSha, truncate } from '#shared/text.ts';

describe('text for people', () => {
  it('cuts by code points and marks the cut', () => {
    expect(truncate('abcdef', 6)).toBe('abcdef');
    expect(truncate('abcdef', 4)).toBe('abc…');
    expect(truncate('😀😀😀', 2)).toBe('😀…');
  });

  it('keeps a subject on one line', () => {
    expect(oneLine('Fix\r\n the\tcheckout  ', 99)).toBe('Fix the checkout');
  });

  it('abbreviates commit SHAs only', () => {
    expect(shortSha('2222222222222222222222222222222222222222')).toBe('2222222');
    expect(shortSha('v1.2.0')).toBe('v1.2.0');
    expect(shortSha(null)).toBe('(no commit)');
  });
});
