import { bundles } from './bundles.ts';
import { localFirstCommand, localFloors, localOverhead } from './local.ts';
import { localConcurrentPushes } from './local-concurrent.ts';
import { releaseControl } from './release.ts';
import { startup } from './startup.ts';
import { type Bench, formatSection } from './table.ts';
import { transitionsAndCost } from './transitions.ts';
import { webhookThroughput } from './webhook.ts';

/**
 * `npm run bench`: prints each benchmark's figures. Add a benchmark by writing a module that exports a
 * {@link Bench} and listing it here. `npm run bench -- local` runs only those whose name holds a word given.
 */
const BENCHES: Bench[] = [
  bundles,
  webhookThroughput,
  transitionsAndCost,
  releaseControl,
  localFloors,
  localFirstCommand,
  localOverhead,
  localConcurrentPushes,
  startup,
];

const words = process.argv.slice(2).map((word) => word.toLowerCase());
const chosen = BENCHES.filter(
  (bench) => words.length === 0 || words.some((word) => bench.name.toLowerCase().includes(word)),
);
for (const bench of chosen) {
  const section = await bench();
  console.log(`\n${formatSection(section)}`);
}
