import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FailedTestCase, ReportSummary } from './build-result.ts';
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
    const failedCases: FailedTestCase[] = [];
    const unreadable: string[] = [];
    for (const file of files) {
      const xml = await readFile(path.join(workDir, file), 'utf8');
      const summary = summariseJUnitXml(xml);
      if (summary === undefined) {
        unreadable.push(file);
        continue;
      }
      failedCases.push(...failedJUnitCases(xml));
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
      failedCases: failedCases.slice(0, MAX_FAILED_CASES),
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

/** How many failed test cases a report keeps (DescribeTestCases' page, as the state machine asks for). */
export const MAX_FAILED_CASES = 20;

/** A tag's attributes, each `name="value"` or `name='value'`, whatever the values hold. */
const ATTRIBUTES = `(?:\\s+[\\w:.-]+\\s*=\\s*(?:"[^"]*"|'[^']*'))*`;

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeXml(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (entity, name: string) => {
    if (name.startsWith('#x') || name.startsWith('#X'))
      return String.fromCodePoint(Number.parseInt(name.slice(2), 16));
    if (name.startsWith('#')) return String.fromCodePoint(Number(name.slice(1)));
    return XML_ENTITIES[name.toLowerCase()] ?? entity;
  });
}

function textAttributes(tag: string): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (const [, name, doubleQuoted, singleQuoted] of tag.matchAll(
    /([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g,
  )) {
    if (name !== undefined) attributes[name] = decodeXml(doubleQuoted ?? singleQuoted ?? '');
  }
  return attributes;
}

/**
 * The failed test cases of a JUnit XML file: each `<testcase>` holding a `<failure>` or an `<error>`, with
 * its name, its class name or else its suite's name (as CodeBuild's test case `prefix`) and the failure's message (its
 * `message` attribute, else the first line of its text).
 *
 * @example
 * ```ts
 * failedJUnitCases('<testcase name="adds" classname="math"><failure message="1 !== 2"/></testcase>');
 * // [{ name: 'adds', prefix: 'math', status: 'FAILED', message: '1 !== 2' }]
 * ```
 */
export function failedJUnitCases(xml: string): FailedTestCase[] {
  const text = xml.replace(/<!--[\s\S]*?-->/g, '');
  const cases: FailedTestCase[] = [];
  // The suite a case sits in, for a case without a class name: the last suite opened before it.
  const suites = [...text.matchAll(new RegExp(`<testsuite(${ATTRIBUTES})\\s*>`, 'g'))].map((match) => ({
    at: match.index,
    name: textAttributes(match[1] ?? '').name,
  }));
  // Attribute values may hold a `>` (Node's reporter leaves it unescaped): tags are matched attribute by attribute.
  for (const match of text.matchAll(
    new RegExp(`<testcase(${ATTRIBUTES})\\s*(\\/>|>([\\s\\S]*?)<\\/testcase>)`, 'g'),
  )) {
    const body = match[3] ?? '';
    const failure = new RegExp(`<(failure|error)(${ATTRIBUTES})\\s*(?:\\/>|>([\\s\\S]*?)<\\/\\1>)`).exec(
      body,
    );
    if (!failure) continue;
    const attributes = textAttributes(match[1] ?? '');
    const details = textAttributes(failure[2] ?? '');
    const prefix = attributes.classname || suites.findLast((suite) => suite.at < match.index)?.name;
    const content = decodeXml((failure[3] ?? '').replace(/^<!\[CDATA\[|\]\]>$/g, '').trim());
    const message = details.message || content.split(/\r?\n/, 1)[0] || undefined;
    cases.push({
      name: attributes.name ?? 'unnamed test',
      ...(prefix ? { prefix } : {}),
      status: failure[1] === 'error' ? 'ERROR' : 'FAILED',
      ...(message ? { message } : {}),
    });
  }
  return cases;
}
