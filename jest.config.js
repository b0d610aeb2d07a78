/**
 * Two tiers (README "Tests"):
 * - `npm test`: `unit` (pure domain logic), `workflows` (workflow branches against mocked
 *   activities) and `integration` (one real-QEMU end-to-end file per capability).
 * - `npm run test:all`: `heavy` (the simulated fleet, the seeded chaos run, crash tests).
 * One Temporal dev server and one FerretDB serve a run (test/global-setup.ts); every file gets
 * its own Temporal namespace, database and data directory, so files can run side by side.
 */
const shared = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest'] },
};

const tier = (name, folders) => ({
  ...shared,
  displayName: name,
  testMatch: folders.map((f) => `<rootDir>/test/${f}/**/*.test.ts`),
});

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    tier('unit', ['unit']),
    tier('workflows', ['workflows']),
    tier('integration', [
      'foundation',
      'vms',
      'backups',
      'migration',
      'maintenance',
      'recovery',
      'fleet',
      'stack',
      'networks',
      'api',
    ]),
    tier('heavy', ['heavy']),
  ],
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  // Tests drive real QEMU guests under TCG on a 2-core machine: boots take seconds.
  testTimeout: 180_000,
  // Two files at a time, also on 2 cores (jest's default there is one): much of a real-QEMU test
  // is waiting on guests and timers, and files never share hosts, queues or data (see above).
  maxWorkers: 2,
  reporters: ['default', '<rootDir>/test/reporters/suite-times.js'],
};
