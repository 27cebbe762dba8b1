/** One block of figures: a titled table, with notes that say what was measured and how. */
export interface BenchSection {
  title: string;
  columns: string[];
  rows: string[][];
  notes?: string[];
}

/** A benchmark module: measures, then returns its figures. Never asserts on them. */
export type Bench = () => Promise<BenchSection>;

/** The table as text, columns padded; numbers (and sizes) are right-aligned. */
export function formatSection(section: BenchSection): string {
  const widths = section.columns.map((column, index) =>
    Math.max(column.length, ...section.rows.map((row) => (row[index] ?? '').length)),
  );
  const numeric = section.columns.map((_, index) =>
    section.rows.every((row) => /^[-~<>≤]?\s?[\d.,]+(\s?\S+)?$/.test(row[index] ?? '')),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, index) =>
        numeric[index] ? cell.padStart(widths[index] ?? 0) : cell.padEnd(widths[index] ?? 0),
      )
      .join('  ')
      .trimEnd();
  return [
    section.title,
    '='.repeat(section.title.length),
    line(section.columns),
    line(widths.map((width) => '-'.repeat(width))),
    ...section.rows.map(line),
    ...(section.notes ?? []).map((note) => `* ${note}`),
  ].join('\n');
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? Number.NaN) + (sorted[middle] ?? Number.NaN)) / 2;
}

export function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
}

export const kilobytes = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
export const milliseconds = (ms: number) => `${ms.toFixed(1)} ms`;
