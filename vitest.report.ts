/**
 * When UNIKCTL_TEST_REPORT_DIR is set (by .ci/run), each suite also writes vitest's JSON report there, so the CI
 * log can end with one summary line over all suites (scripts/test-summary.mjs).
 */
export function reportersFor(suite: string): { reporters?: string[]; outputFile?: Record<string, string> } {
  const dir = process.env.UNIKCTL_TEST_REPORT_DIR;
  if (!dir) return {};
  return { reporters: ['default', 'json'], outputFile: { json: `${dir}/${suite}.json` } };
}
