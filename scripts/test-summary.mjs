#!/usr/bin/env node
// Prints one line over every vitest JSON report in a directory: `tests: N passed, N failed, N skipped`.
// A suite that never ran (an earlier step failed) contributes nothing; a report that cannot be read counts as one failure.
// A file that failed outside its tests (a beforeAll hook that threw, an import error) has its tests reported as
// skipped and none as failed: the tests it did not run count as failed here, and such a file with none as one failure.
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
    for (const file of r.testResults ?? []) {
      const tests = file.assertionResults ?? [];
      if (file.status !== 'failed' || tests.some((t) => t.status === 'failed')) continue;
      const notRun = tests.filter((t) => t.status !== 'passed').length;
      skipped -= notRun;
      failed += Math.max(notRun, 1);
    }
  } catch {
    failed += 1;
  }
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
