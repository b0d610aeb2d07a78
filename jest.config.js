/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  // One Temporal dev server and one FerretDB serve the whole run (test/global-setup.ts).
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  // Tests drive real QEMU guests under TCG on a 2-core machine: boots take seconds.
  testTimeout: 180_000,
  // Files share the two cores with QEMU guests; running them one at a time keeps boots predictable.
  maxWorkers: 1,
};
