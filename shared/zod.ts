import { en } from 'zod/locales';
import { config } from 'zod/mini';

/**
 * The one zod every schema of the project is written with: `zod/mini`, whose functions a bundle keeps only
 * as far as they are used (classic `zod` carries all of itself into every Lambda bundle). Import it as a
 * namespace, `import * as z from '#shared/zod.ts'`: esbuild drops what a namespace import leaves unused,
 * not what a re-exported `z` object holds (that keeps all of zod and every locale, ~440 KB).
 *
 * Mini has no messages of its own until a locale is configured: English is set here, once, so errors read
 * as they do with classic zod ("Invalid input: expected string, received undefined"). `en` is imported on
 * its own: `z.locales.en()` would bundle all of zod's locales.
 *
 * @example
 * ```ts
 * import * as z from '#shared/zod.ts';
 * const NameSchema = z.string().check(z.minLength(1));
 * ```
 */
config(en());

export * from 'zod/mini';
