/**
 * `value` as one word for a POSIX shell: in single quotes, each `'` written as `'\\''`.
 *
 * @example
 * ```ts
 * shellQuote("it's here"); // 'it'\\''s here'
 * ```
 */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
