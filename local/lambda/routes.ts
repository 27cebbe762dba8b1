import { InvalidInputError } from '#shared/errors.ts';

/**
 * Matches a request path against an HTTP API route template, as API Gateway does: `/approvals/{token}`
 * against `/approvals/abc` → `{ token: 'abc' }`; undefined when the path is not this route's. A path
 * parameter with malformed percent-encoding is the caller's mistake: {@link InvalidInputError} (400).
 */
export function matchRoute(template: string, path: string): Record<string, string> | undefined {
  const want = template.split('/');
  const have = path.split('/');
  if (want.length !== have.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of want.entries()) {
    const value = have[i] ?? '';
    const param = /^\{(\w+)\}$/.exec(part);
    if (param?.[1]) {
      if (value === '') return undefined;
      params[param[1]] = decodePathParameter(value);
    } else if (part !== value) return undefined;
  }
  return params;
}

function decodePathParameter(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch (cause) {
    throw new InvalidInputError('The path has malformed percent-encoding', { cause });
  }
}
