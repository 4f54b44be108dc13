import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import { reportersFor } from './vitest.report.js';

// e2e tests boot real VMs under QEMU (TCG on hosts without working KVM): generous timeouts, two files at a time.
// Much of an e2e file's time is spent waiting (health-check intervals, boots, polls), so a second file fills the
// idle core: on 2 cores the suite took 16.4 min instead of 24.9 min serial (2026-12-03). Each
// file has its own UNIKCTL_HOME, ports and VM names, so files do not share state.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    fileParallelism: true,
    maxWorkers: Math.min(2, availableParallelism()),
    globalSetup: ['test/e2e/global-setup.ts'],
    ...reportersFor('e2e'),
  },
});
