import { defineConfig } from 'vitest/config';
import { reportersFor } from './vitest.report.js';

export default defineConfig({
  test: { include: ['src/**/*.test.ts', 'test/unit/**/*.test.ts', 'release/**/*.test.ts'], testTimeout: 20_000, ...reportersFor('unit') },
});
