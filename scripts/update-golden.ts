// Regenerates the translator's golden files (xds/translate/testdata): run
// `tsx scripts/update-golden.ts` after an intended change to the config → Envoy translation, then
// review the diff. CI fails when regeneration would change a committed file.
import { GOLDEN_DIR, updateGolden } from '../xds/translate/golden.ts';

const { written, removed } = updateGolden();
for (const f of written) console.log(`wrote   ${f}`);
for (const f of removed) console.log(`removed ${f}`);
console.log(
  written.length + removed.length === 0 ? `golden files up to date (${GOLDEN_DIR})` : 'golden files updated',
);
