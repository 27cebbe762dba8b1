import { describe, expect, it } from 'vitest';
import * as z from '#shared/zod.ts';

/**
 * shared/zod.ts sets zod/mini's messages to English: without it every issue reads "Invalid input". This file
 * imports no other zod (test files share nothing: each runs in its own module graph), so what it reads comes
 * from shared/zod.ts alone.
 */
describe('shared/zod.ts', () => {
  it('gives the English messages classic zod gave', () => {
    const Schema = z.object({
      name: z.string().check(z.minLength(1)),
      count: z.number().check(z.int(), z.lte(3)),
      kind: z.enum(['a', 'b']),
    });
    const messages = (value: unknown) => Schema.safeParse(value).error?.issues.map((issue) => issue.message);

    expect(messages({ name: 1, count: 1.5, kind: 'c' })).toEqual([
      'Invalid input: expected string, received number',
      'Invalid input: expected int, received number',
      'Invalid option: expected one of "a"|"b"',
    ]);
    expect(messages({ name: '', count: 4, kind: 'a' })).toEqual([
      'Too small: expected string to have >=1 characters',
      'Too big: expected number to be <=3',
    ]);
  });
});
