/**
 * Text as people read it in subjects, emails and pages: cut to a length, kept on one line, commits
 * abbreviated. Lengths count code points, so a cut never splits a surrogate pair.
 */

/**
 * Cuts `text` to at most `max` characters, ending in `…` when cut.
 *
 * @example
 * ```ts
 * truncate('release/2026-q4-hotfix', 10); // 'release/2…'
 * ```
 */
export function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/** `text` on one line (runs of white space, line breaks included, become one space), cut to `max`. */
export function oneLine(text: string, max: number): string {
  return truncate(text.replace(/\s+/g, ' ').trim(), max);
}

/**
 * The 7-character form of a commit SHA; other source versions (a tag, a CodePipeline version) as they
 * are; `(no commit)` when there is none.
 */
export function shortSha(version: string | null | undefined): string {
  if (!version) return '(no commit)';
  return /^[0-9a-f]{40}$/i.test(version) ? version.slice(0, 7) : version;
}
