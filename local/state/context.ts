import type { Logger } from '#shared/logger.ts';

/** A change written to the store, as subscribers hear of it. */
export interface StoreChange {
  kind: 'execution' | 'history' | 'outbox' | 'delivery' | 'log';
  /** The execution ARN, the message or delivery id, or the build id. */
  id: string;
}

/** What {@link LocalStore.open} found and fixed. Empty lists and zero after a clean stop. */
export interface RecoveryReport {
  /** Lines of .jsonl files that could not be read (a torn last line, or corruption) and were skipped. */
  skippedLines: number;
  /** Names of the executions marked INTERRUPTED by this open. */
  interrupted: string[];
  /** Files (relative to the store's folder) this open rewrote, cut or rebuilt. */
  repaired: string[];
  /** One sentence per thing found or done, for a person. */
  notes: string[];
}

/** What each part of the store shares: its folder, its clock, its change feed and its recovery report. */
export interface StoreContext {
  readonly dir: string;
  readonly report: RecoveryReport;
  readonly logger: Pick<Logger, 'warn'> | undefined;
  now(): string;
  clock(): Date;
  emit(change: StoreChange): void;
  /** Records a thing found or done on open, for a person. */
  note(note: string): void;
  /** Records a file (relative to the folder) that was rewritten, cut or rebuilt. */
  repaired(path: string): void;
}

/** A journal's read-back problems, told to the recovery report. Returns nothing; counts and notes. */
export function reportJournal(
  context: StoreContext,
  relativePath: string,
  contents: { skipped: { line: number; text: string }[]; torn?: string; repaired?: boolean },
): void {
  for (const { line, text } of contents.skipped) {
    context.note(`${relativePath}: line ${line} is not a JSON object and was skipped: ${preview(text)}`);
  }
  context.report.skippedLines += contents.skipped.length;
  if (contents.torn !== undefined) {
    context.report.skippedLines += 1;
    context.note(
      `${relativePath}: the last line was cut short by a crash and was skipped (kept in ${relativePath}.torn): ${preview(contents.torn)}`,
    );
  } else if (contents.repaired) {
    context.note(`${relativePath}: the last line lacked its newline; added`);
  }
  if (contents.repaired) context.repaired(relativePath);
}

function preview(text: string): string {
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text);
}
