/**
 * EventBridge event patterns, as far as stepline's rules use them: a pattern field is an array of allowed
 * values (any one matches) or a nested pattern; array entries may also be `{prefix}`, `{suffix}`,
 * `{exists}`, `{"anything-but"}` or `{"equals-ignore-case"}` content filters. When the event field is an
 * array, the field matches when any element does.
 */
export type EventPattern = { [field: string]: EventPattern | unknown[] };

export function matchesPattern(pattern: EventPattern, event: unknown): boolean {
  if (event === null || typeof event !== 'object') return false;
  const record = event as Record<string, unknown>;
  return Object.entries(pattern).every(([field, rule]) => {
    const value = record[field];
    if (Array.isArray(rule)) return matchesField(rule, value, field in record);
    return matchesPattern(rule as EventPattern, value);
  });
}

function matchesField(rule: unknown[], value: unknown, present: boolean): boolean {
  const values = Array.isArray(value) ? value : [value];
  return rule.some((allowed) => {
    if (allowed !== null && typeof allowed === 'object') {
      return matchesFilter(allowed as Record<string, unknown>, values, present);
    }
    return present && values.some((v) => v === allowed);
  });
}

function matchesFilter(filter: Record<string, unknown>, values: unknown[], present: boolean): boolean {
  if ('exists' in filter) return filter.exists === present;
  if (!present) return false;
  const strings = values.filter((v): v is string => typeof v === 'string');
  if (typeof filter.prefix === 'string') return strings.some((v) => v.startsWith(filter.prefix as string));
  if (typeof filter.suffix === 'string') return strings.some((v) => v.endsWith(filter.suffix as string));
  if (typeof filter['equals-ignore-case'] === 'string') {
    const wanted = (filter['equals-ignore-case'] as string).toLowerCase();
    return strings.some((v) => v.toLowerCase() === wanted);
  }
  if ('anything-but' in filter) {
    const excluded = ([] as unknown[]).concat(filter['anything-but']);
    return values.every((v) => !excluded.includes(v));
  }
  throw new Error(`Unsupported EventBridge content filter ${JSON.stringify(filter)}`);
}
