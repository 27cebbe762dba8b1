/**
 * The figures each resilience check reports. A test stores them on its task (`task.meta.resilience`);
 * the summary reporter (summary-reporter.ts) adds them up over the whole suite and prints them.
 */
export interface Figures {
  /** Inputs tried, by door (`webhook/github`, `approval POST`, `eventbridge/buildEvents`, …). */
  cases?: Record<string, number>;
  /** Answers of 500 or more (for an EventBridge handler: an error that is not a client error). */
  serverErrors?: number;
  /** Inputs that were refused (4xx) or invalid, yet started or decided something. */
  invalidEffects?: number;
  /** Accepted deliveries (2xx) whose run or record could not be found afterwards. */
  lost?: number;
  /** Runs or decisions beyond the one expected. */
  duplicated?: number;
  /** Faults injected whose expected recovery was seen. */
  faultsSurvived?: number;
  /** Faults injected in all. */
  faultsInjected?: number;
  /** Places where a secret, a task token or a signature was found in what stepline wrote or answered. */
  secretsFound?: number;
  /** Where each secret found was, for the failure message. */
  secretPlaces?: string[];
  /** IAM roles whose actions were checked against their allow-list. */
  rolesChecked?: number;
  /** Deploys of a commit older (by push order) than the one the environment ran before. */
  environmentRegressions?: number;
  /** Holds (or waiting runs) left in a line once every run of it ended. */
  orphanedHolds?: number;
}

declare module 'vitest' {
  interface TaskMeta {
    resilience?: Figures;
  }
}

/** Adds figures to a test's record (counts add up; door counts add up per door). */
export function record(task: { meta: { resilience?: Figures } }, figures: Figures): void {
  task.meta.resilience = mergeFigures(task.meta.resilience ?? {}, figures);
}

export function mergeFigures(a: Figures, b: Figures): Figures {
  const merged: Figures = { ...a };
  for (const [key, value] of Object.entries(b) as [keyof Figures, Figures[keyof Figures]][]) {
    if (value === undefined) continue;
    if (key === 'cases') {
      const cases = { ...(merged.cases ?? {}) };
      for (const [door, count] of Object.entries(value as Record<string, number>)) {
        cases[door] = (cases[door] ?? 0) + count;
      }
      merged.cases = cases;
    } else if (key === 'secretPlaces') {
      merged.secretPlaces = [...(merged.secretPlaces ?? []), ...(value as string[])];
    } else {
      (merged as Record<string, number>)[key] =
        ((merged as Record<string, number>)[key] ?? 0) + (value as number);
    }
  }
  return merged;
}
