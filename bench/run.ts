import { bundles } from './bundles.ts';
import { localConcurrentPushes, localFirstCommand, localOverhead } from './local.ts';
import { startup } from './startup.ts';
import { type Bench, formatSection } from './table.ts';
import { transitionsAndCost } from './transitions.ts';
import { webhookThroughput } from './webhook.ts';

/**
 * `npm run bench`: prints each benchmark's figures. Add a benchmark by writing a module that exports a
 * {@link Bench} and listing it here.
 */
const BENCHES: Bench[] = [
  bundles,
  webhookThroughput,
  transitionsAndCost,
  localFirstCommand,
  localOverhead,
  localConcurrentPushes,
  startup,
];

for (const bench of BENCHES) {
  const section = await bench();
  console.log(`\n${formatSection(section)}`);
}
