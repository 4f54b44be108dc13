import { defineConfig } from 'vitest/config';
import { reportersFor } from './vitest.report.js';

// e2e tests boot real VMs under QEMU (TCG on hosts without working KVM): few, serial, generous timeouts.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    fileParallelism: false,
    globalSetup: ['test/e2e/global-setup.ts'],
    ...reportersFor('e2e'),
  },
});
