import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // Two files at a time. Vitest's default is one worker per core minus one, which is a single
    // worker on a 2-core machine; the files mostly wait (on PostgreSQL, SMTP, bcrypt's thread pool,
    // child processes), and each has its own database, so two run side by side without sharing state.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 90_000,
    // CI must run every test: no focused tests allowed
    allowOnly: false,
    env: { NODE_ENV: 'test' },
  },
});
