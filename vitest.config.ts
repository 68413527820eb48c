import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 90_000,
    // CI must run every test: no focused tests allowed
    allowOnly: false,
    env: { NODE_ENV: 'test' },
  },
});
