#!/usr/bin/env node
// Prints one line over every vitest JSON report in a directory: `tests: N passed, N failed, N skipped`.
// A suite that never ran (an earlier step failed) contributes nothing; a report that cannot be read counts as one failure.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: test-summary.mjs REPORT_DIR');
  process.exit(2);
}
let passed = 0;
let failed = 0;
let skipped = 0;
let files = [];
try { files = readdirSync(dir).filter((f) => f.endsWith('.json')); } catch { /* no suite ran */ }
for (const f of files) {
  try {
    const r = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    passed += r.numPassedTests ?? 0;
    failed += r.numFailedTests ?? 0;
    skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  } catch {
    failed += 1;
  }
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
