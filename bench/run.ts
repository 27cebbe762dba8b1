import { bundles } from './bundles.ts';
import { type Bench, formatSection } from './table.ts';
import { webhookThroughput } from './webhook.ts';

/**
 * `npm run bench`: prints each benchmark's figures. Add a benchmark by writing a module that exports a
 * {@link Bench} and listing it here.
 */
const BENCHES: Bench[] = [bundles, webhookThroughput];

for (const bench of BENCHES) {
  const section = await bench();
  console.log(`\n${formatSection(section)}`);
}
