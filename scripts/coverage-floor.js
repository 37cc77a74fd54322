#!/usr/bin/env node
// Line-coverage floor for the pure codec (src/codec/): it parses untrusted bytes on every request,
// so it is held to a higher bar than c8's global threshold. Runs after `c8 ava`, which writes
// coverage/coverage-summary.json (json-summary reporter).
//
//   node scripts/coverage-floor.js [path/to/coverage-summary.json]
//
// Keys of the summary are file paths (absolute or relative, source-mapped to src/**/*.ts, or
// dist/src/**/*.js for a file whose source map was not applied). A module counted both ways is
// counted once, from its .ts entry.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const FLOOR = 90;
const LAYER = 'src/codec/';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const summaryPath = path.resolve(process.argv[2] ?? path.join(root, 'coverage', 'coverage-summary.json'));

let summary;
try {
  summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
} catch (err) {
  console.error(`coverage-floor: cannot read ${summaryPath} (${err.message}); run \`c8 ava\` first`);
  process.exit(1);
}

/** @type {Map<string, { lines: { total: number, covered: number }, ts: boolean, key: string }>} */
const modules = new Map();
for (const [key, entry] of Object.entries(summary)) {
  if (key === 'total' || !entry?.lines) continue;
  const normalized = key.replaceAll('\\', '/');
  const at = normalized.lastIndexOf(LAYER);
  if (at === -1 || normalized.endsWith('.d.ts')) continue;
  const ts = normalized.endsWith('.ts');
  if (!ts && !normalized.endsWith('.js')) continue;
  // Relative to the layer: 'message.ts' and 'dist/src/codec/message.js' are the same module.
  const name = normalized.slice(at + LAYER.length).replace(/\.(ts|js)$/, '');
  const seen = modules.get(name);
  if (seen === undefined || (ts && !seen.ts)) modules.set(name, { lines: entry.lines, ts, key });
}

if (modules.size === 0) {
  console.error(`coverage-floor: no ${LAYER} files in ${summaryPath}; is c8 mapping coverage to sources?`);
  process.exit(1);
}

let total = 0;
let covered = 0;
for (const { lines } of modules.values()) {
  total += lines.total;
  covered += lines.covered;
}
const pct = total === 0 ? 100 : (100 * covered) / total;
const figure = `${pct.toFixed(2)}% lines (${covered}/${total}) in ${modules.size} files under ${LAYER}`;

if (pct < FLOOR) {
  console.error(`coverage-floor: FAIL ${figure}, below the ${FLOOR}% floor`);
  const worst = [...modules.entries()]
    .filter(([, m]) => m.lines.total > 0)
    .sort(([, a], [, b]) => a.lines.covered / a.lines.total - b.lines.covered / b.lines.total)
    .slice(0, 5);
  for (const [name, m] of worst) console.error(`  ${name}: ${m.lines.covered}/${m.lines.total}`);
  process.exit(1);
}
console.log(`coverage-floor: ok ${figure} (floor ${FLOOR}%)`);
