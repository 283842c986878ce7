/**
 * A run's failed devices on the console: the listed ones, and how many more with where to see them all; and why a
 * run's commit was not written.
 */
import { commitLines, failureLines } from '../../cli/utils/table';

const failure = (device: string) => ({ device, reason: 'InvalidAggregates: part-1.arrow: field ts' });

test('lists every failure when the result lists them all', () => {
  expect(failureLines({ window: '2026-11-21T12', failed: 2, failures: [failure('dev-1'), failure('dev-2')] })).toEqual([
    '  dev-1: InvalidAggregates: part-1.arrow: field ts',
    '  dev-2: InvalidAggregates: part-1.arrow: field ts',
  ]);
});

test('says how many more failed than the capped list shows, and where to see them', () => {
  const lines = failureLines({ window: '2026-11-21T12', failed: 200, failures: [failure('dev-1')] });
  expect(lines).toEqual([
    '  dev-1: InvalidAggregates: part-1.arrow: field ts',
    '  … and 199 more: fleetscore runs show 2026-11-21T12',
  ]);
});

test('prints nothing for a run with no failed device', () => {
  expect(failureLines({ window: '2026-11-21T12', failed: 0, failures: [] })).toEqual([]);
});

test('says why a run was not committed and whose predictions the window keeps', () => {
  const window = '2026-11-21T12';
  expect(commitLines({ window, outcome: 'kept', supersededBy: 'run-a' })).toEqual([
    'not committed: every device failed; window 2026-11-21T12 keeps the predictions of run run-a',
  ]);
  expect(commitLines({ window, outcome: 'superseded', supersededBy: 'run-b' })).toEqual([
    'not committed: run run-b, started later, has committed window 2026-11-21T12; its predictions stand',
  ]);
  expect(commitLines({ window, outcome: 'committed' })).toEqual([]);
  expect(commitLines({ window, outcome: 'already-committed' })).toEqual([]);
});
