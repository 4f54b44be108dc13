import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const SCRIPT = resolve(import.meta.dirname, '..', '..', 'scripts', 'test-summary.mjs');
const summary = (dir: string): string => execFileSync(process.execPath, [SCRIPT, dir], { encoding: 'utf8' }).trim();

/** A vitest JSON report: each file is [status, test statuses]. */
function report(files: Array<[string, string[]]>): string {
  const all = files.flatMap(([, t]) => t);
  return JSON.stringify({
    numPassedTests: all.filter((s) => s === 'passed').length,
    numFailedTests: all.filter((s) => s === 'failed').length,
    numPendingTests: all.filter((s) => s === 'skipped' || s === 'pending').length,
    numTodoTests: 0,
    testResults: files.map(([status, tests], i) => ({ name: `f${i}.test.ts`, status, assertionResults: tests.map((s, j) => ({ title: `t${j}`, status: s })) })),
  });
}

describe('scripts/test-summary.mjs: the last line of .ci/run', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'summary-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('adds the reports up', () => {
    writeFileSync(join(dir, 'unit.json'), report([['passed', ['passed', 'passed']], ['failed', ['passed', 'failed']]]));
    writeFileSync(join(dir, 'e2e.json'), report([['passed', ['passed', 'skipped']]]));
    expect(summary(dir)).toBe('tests: 4 passed, 1 failed, 1 skipped');
  });

  it('a file whose beforeAll threw counts the tests it did not run as failed, not skipped', () => {
    // what vitest wrote when the SLO page's set-up failed in CI: the file failed, its tests "skipped", 0 failed
    writeFileSync(join(dir, 'e2e.json'), report([['failed', ['skipped', 'skipped', 'passed']], ['passed', ['passed', 'skipped']]]));
    expect(summary(dir)).toBe('tests: 2 passed, 2 failed, 1 skipped');
  });

  it('a failed file with no test at all (an import error) is one failure; an unreadable report is one failure', () => {
    writeFileSync(join(dir, 'e2e.json'), report([['failed', []]]));
    writeFileSync(join(dir, 'unit.json'), '{ not json');
    expect(summary(dir)).toBe('tests: 0 passed, 2 failed, 0 skipped');
  });
});
