import { describe, expect, it } from 'vitest';
import { forTerminal, oneLine, shortSha, truncate } from '#shared/text.ts';

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

describe('forTerminal', () => {
  it.each([
    ['an OSC 8 hyperlink', 'fix \x1b]8;;https://evil.example\x07login\x1b]8;;\x07', 'fix login'],
    ['a window title ended by ST', '\x1b]0;owned\x1b\\title', 'title'],
    ['clear screen and cursor moves', '\x1b[2J\x1b[1;1Hdeploy', 'deploy'],
    ['a carriage return that rewrites the line', 'approve me\rall good', 'approve meall good'],
    ['the one-byte CSI', 'red\x9b31m text', 'red text'],
    ['DCS and APC strings', '\x1bPq#0\x1b\\\x1b_payload\x1b\\ok', 'ok'],
    ['a bell, a backspace, DEL and C1 controls', 'a\x07b\x08c\x7fd\x85e', 'abcde'],
    ['a lone ESC at the end', 'tail\x1b', 'tail'],
  ])('removes %s', (_, input, expected) => {
    expect(forTerminal(input)).toBe(expected);
  });

  it('keeps line feeds, tabs and every printable character, Unicode included', () => {
    const text = 'Deploy ✔ to prod\n\tcafé — 日本 🚀 [x] ~!@#$%^&*()';
    expect(forTerminal(text)).toBe(text);
  });
});
