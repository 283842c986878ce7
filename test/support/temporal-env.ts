/**
 * A real Temporal dev server for integration tests, started from the same CLI binary `npm start` uses, with
 * fleetscore's search attributes registered.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTES } from '../../lib/names';
import { installRuntime, type RuntimeSettings } from '../../lib/temporal/runtime';
import { requireTemporalCli } from '../../lib/temporal/temporal-cli';

/**
 * Starts a local dev server (in-memory) and returns the SDK's test environment around it. `runtime` installs the
 * worker runtime first (once per test file): quiet by default; tests of logs and metrics pass their own.
 */
export function startTemporal(runtime: RuntimeSettings = { quiet: true }): Promise<TestWorkflowEnvironment> {
  installRuntime(runtime);
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: requireTemporalCli() },
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
      extraArgs: ['--log-level', 'error'],
    },
  });
}

/** A task queue name no other test uses. */
export function uniqueTaskQueue(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
