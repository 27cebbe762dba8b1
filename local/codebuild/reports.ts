import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ReportSummary } from './build-result.ts';
import type { Buildspec } from './buildspec.ts';
import { selectFiles } from './file-selection.ts';

export async function summariseReports(
  reports: Buildspec['reports'],
  workDir: string,
): Promise<ReportSummary[]> {
  const summaries: ReportSummary[] = [];
  for (const [name, group] of Object.entries(reports)) {
    const empty = { name, fileFormat: group.fileFormat, tests: 0, failures: 0, errors: 0, skipped: 0 };
    const selected = await selectFiles({ ...group, discardPaths: false }, workDir);
    if ('problem' in selected) {
      summaries.push({ ...empty, files: [], status: 'INCOMPLETE', message: selected.problem });
      continue;
    }
    const files = selected
      .map(({ source }) => path.relative(workDir, source).split(path.sep).join('/'))
      .sort();
    if (files.length === 0) {
      summaries.push({ ...empty, files, status: 'INCOMPLETE', message: 'no report files matched' });
      continue;
    }
    if (group.fileFormat !== 'JUNITXML') {
      summaries.push({
        ...empty,
        files,
        status: 'INCOMPLETE',
        message: `${group.fileFormat} reports are not summarised locally`,
      });
      continue;
    }
    const totals = { tests: 0, failures: 0, errors: 0, skipped: 0 };
    const unreadable: string[] = [];
    for (const file of files) {
      const summary = summariseJUnitXml(await readFile(path.join(workDir, file), 'utf8'));
      if (summary === undefined) {
        unreadable.push(file);
        continue;
      }
      totals.tests += summary.tests;
      totals.failures += summary.failures;
      totals.errors += summary.errors;
      totals.skipped += summary.skipped;
    }
    const status =
      totals.failures + totals.errors > 0
        ? 'FAILED'
        : unreadable.length === files.length
          ? 'INCOMPLETE'
          : 'SUCCEEDED';
    summaries.push({
      ...empty,
      ...totals,
      files,
      status,
      ...(unreadable.length === 0 ? {} : { message: `not JUnit XML: ${unreadable.join(', ')}` }),
    });
  }
  return summaries;
}

export interface JUnitSummary {
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
}

/**
 * Sums the `tests`, `failures`, `errors` and `skipped` attributes of a JUnit XML file's `<testsuite>`
 * elements (or of its `<testsuites>` root, or counts `<testcase>` elements when neither carries them).
 * A scan of start tags is enough for these counts; undefined when the text holds no test suite.
 */
export function summariseJUnitXml(xml: string): JUnitSummary | undefined {
  const text = xml.replace(/<!--[\s\S]*?-->/g, '').replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '');
  const attributesOf = (tag: string) => {
    const attributes: Record<string, number> = {};
    for (const [, name, doubleQuoted, singleQuoted] of tag.matchAll(
      /([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g,
    )) {
      const value = Number(doubleQuoted ?? singleQuoted);
      if (name !== undefined && Number.isFinite(value)) attributes[name] = value;
    }
    return attributes;
  };
  const fromAttributes = (attributes: Record<string, number>): JUnitSummary => ({
    tests: attributes.tests ?? 0,
    failures: attributes.failures ?? 0,
    errors: attributes.errors ?? 0,
    skipped: attributes.skipped ?? attributes.skip ?? 0,
  });
  const suites = [...text.matchAll(/<testsuite(?=[\s>/])([^>]*)>/g)].map((match) =>
    attributesOf(match[1] ?? ''),
  );
  if (suites.length > 0 && suites.every((suite) => suite.tests !== undefined)) {
    return suites.map(fromAttributes).reduce((sum, suite) => ({
      tests: sum.tests + suite.tests,
      failures: sum.failures + suite.failures,
      errors: sum.errors + suite.errors,
      skipped: sum.skipped + suite.skipped,
    }));
  }
  const root = /<testsuites(?=[\s>/])([^>]*)>/.exec(text);
  const rootAttributes = attributesOf(root?.[1] ?? '');
  if (rootAttributes.tests !== undefined) return fromAttributes(rootAttributes);
  const testcases = text.match(/<testcase(?=[\s>/])/g)?.length ?? 0;
  if (testcases === 0 && suites.length === 0 && root === null) return undefined;
  const count = (tag: string) => text.match(new RegExp(`<${tag}(?=[\\s>/])`, 'g'))?.length ?? 0;
  return { tests: testcases, failures: count('failure'), errors: count('error'), skipped: count('skipped') };
}
