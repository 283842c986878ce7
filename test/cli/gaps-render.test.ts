/** `runs gaps` as text: its backfill hint rescores the windows whose runs ended, not those still running. */
import { renderGaps, type GapsReport } from '../../cli/commands/runs-gaps';

const report = (gaps: GapsReport['gaps'], schedule: string | null = 'fleetscore-hourly'): GapsReport => ({
  store: 'file:///data/store',
  ...(schedule ? { schedule } : {}),
  windowHours: 1,
  from: '2026-11-21T00',
  to: '2026-11-21T12',
  gaps,
});

const last = (text: string) => text.split('\n').at(-1);

it('offers a backfill over the windows not committed, from the first to the last', () => {
  const text = renderGaps(
    report([
      { window: '2026-11-21T03', reason: 'missed' },
      { window: '2026-11-21T05', reason: 'failed' },
    ]),
  );
  expect(last(text)).toBe(
    '2 window(s) of schedule fleetscore-hourly in [2026-11-21T00, 2026-11-21T12) not committed; rescore them with: ' +
      'fleetscore backfill --schedule fleetscore-hourly --from 2026-11-21T03 --to 2026-11-21T06',
  );
});

it('leaves running windows out of the backfill, and says they commit when their runs end', () => {
  const gaps: GapsReport['gaps'] = [
    { window: '2026-11-21T03', reason: 'input missing' },
    { window: '2026-11-21T11', reason: 'running', workflowId: 'fleetscore-hourly-2026-11-21T12:05:00Z' },
  ];
  expect(last(renderGaps(report(gaps)))).toBe(
    '2 window(s) of schedule fleetscore-hourly in [2026-11-21T00, 2026-11-21T12) not committed (1 still running: ' +
      'committed when its run ends); rescore the others with: fleetscore backfill --schedule fleetscore-hourly ' +
      '--from 2026-11-21T03 --to 2026-11-21T04',
  );
  const running = renderGaps(report(gaps.slice(1)));
  expect(last(running)).toBe(
    '1 window(s) of schedule fleetscore-hourly in [2026-11-21T00, 2026-11-21T12) not committed (1 still running: ' +
      'committed when its run ends)',
  );
  expect(running).not.toContain('backfill');
});

it('names no backfill without a schedule, and says when there are no gaps', () => {
  expect(last(renderGaps(report([{ window: '2026-11-21T03', reason: 'missed' }], null)))).toBe(
    '1 window(s) of file:///data/store in [2026-11-21T00, 2026-11-21T12) not committed',
  );
  expect(renderGaps(report([]))).toBe(
    'no gaps: every due 1h window of schedule fleetscore-hourly in [2026-11-21T00, 2026-11-21T12) is committed',
  );
});
