/**
 * Unit tests run without servers; integration tests start a real Temporal dev server or S3 server; the fault
 * suite kills and restarts real servers and worker processes (`npm run test:faults`, not part of `npm test`).
 */
const transform = { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] };
const setupFiles = ['<rootDir>/test/support/jest-realm.ts'];
// The public schedules API as schedules modules import it (package.json `exports`).
const moduleNameMapper = { '^fleetscore/schedules$': '<rootDir>/schedules/index.ts' };

const faults = process.env.FLEETSCORE_FAULTS === '1';

/** @type {import('jest').Config} */
module.exports = {
  // The fault suite's table (fault, times injected, runs completed, predictions lost / duplicated) after its tests.
  reporters: faults ? ['default', '<rootDir>/test/faults/support/fault-table-reporter.js'] : ['default'],
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      transform,
      setupFiles,
      moduleNameMapper,
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testPathIgnorePatterns: ['\\.it\\.test\\.ts$', '\\.e2e\\.test\\.ts$', '\\.fault\\.test\\.ts$'],
    },
    {
      displayName: 'integration',
      testEnvironment: 'node',
      transform,
      setupFiles,
      moduleNameMapper,
      testMatch: ['<rootDir>/test/**/*.it.test.ts', '<rootDir>/test/**/*.e2e.test.ts'],
    },
    // Fault injection against real processes, only with FLEETSCORE_FAULTS=1 (`npm run test:faults`, in band):
    // a plain `jest` never kills servers under someone's feet.
    ...(faults
      ? [
          {
            displayName: 'faults',
            testEnvironment: 'node',
            transform,
            setupFiles,
            testMatch: ['<rootDir>/test/faults/**/*.fault.test.ts'],
          },
        ]
      : []),
  ],
};
