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

/**
 * A duration as the terminal, the console and notifications show it: `45s`, `3m 5s`, `1h 2m`; with
 * `tenths`, durations under a minute keep one decimal (`3.3s`), as a build's stages are often that short.
 *
 * @example
 * ```ts
 * formatDuration(185_000); // '3m 5s'
 * formatDuration(3_340, { tenths: true }); // '3.3s'
 * ```
 */
export function formatDuration(milliseconds: number, options: { tenths?: boolean } = {}): string {
  const ms = Math.max(0, Number.isFinite(milliseconds) ? milliseconds : 0);
  if (options.tenths && ms < 59_950) return `${(ms / 1000).toFixed(1)}s`;
  const total = Math.round(ms / 1000);
  if (total < 60) return `${total}s`;
  if (total < 3600) return `${Math.floor(total / 60)}m ${total % 60}s`;
  return `${Math.floor(total / 3600)}h ${Math.floor((total % 3600) / 60)}m`;
}

/**
 * Escape sequences a terminal acts on: CSI (`ESC [ … final`, and its one-byte form 0x9B), OSC
 * (`ESC ] … BEL` or `ESC \`, hyperlinks and window titles among them), the string commands DCS, SOS, PM
 * and APC, and two-character escapes.
 */
const ESCAPE_SEQUENCE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
  /\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -~]?)|\x9b[0-?]*[ -/]*[@-~]?/g;

/** C0 controls but tab and line feed, DEL, and C1 controls. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL_CHARACTER = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/**
 * `text` made safe to print to a terminal: escape sequences and control characters removed, line feeds
 * and tabs kept. A commit message, a branch name or a build's output is the pusher's text: printed raw it
 * could clear the screen, retitle the window, rewrite the line above (`\r`) or plant a hyperlink.
 *
 * @example
 * ```ts
 * forTerminal('fix\x1b]8;;https://evil.example\x07 login\x1b[2J\r'); // 'fix login'
 * ```
 */
export function forTerminal(text: string): string {
  return text.replace(ESCAPE_SEQUENCE, '').replace(CONTROL_CHARACTER, '');
}
