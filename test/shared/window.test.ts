import { InvalidWindow, WindowNotComplete } from '../../lib/shared/errors';
import {
  assertComplete,
  hourlyIdsOf,
  hoursOf,
  latestScoreableWindow,
  parseWindow,
  windowAt,
  windowBefore,
  windowIdOf,
} from '../../lib/shared/window';

const t = (iso: string) => Date.parse(iso);

describe('window ids', () => {
  it('names an hour by its start and a longer window by its start and length', () => {
    expect(windowIdOf(t('2026-11-21T12:00Z'))).toBe('2026-11-21T12');
    expect(windowAt(t('2026-11-21T00:00Z'), 24).id).toBe('2026-11-21T00_24h');
    expect(windowAt(t('2026-11-21T10:00Z'), 2).id).toBe('2026-11-21T10_2h');
  });

  it('parses the length from the id, and refuses an id whose length disagrees with the run', () => {
    const day = parseWindow('2026-11-21T00_24h');
    expect(day).toEqual({ id: '2026-11-21T00_24h', startMs: t('2026-11-21T00:00Z'), endMs: t('2026-11-22T00:00Z') });
    expect(hoursOf(day)).toBe(24);
    expect(parseWindow('2026-11-21T00_24h', 24)).toEqual(day);
    expect(parseWindow('2026-11-21T00', 24)).toEqual(day);
    expect(() => parseWindow('2026-11-21T00_24h', 2)).toThrow('is 24 hours long, but the run scores 2-hour windows');
    // One name per window: an hour is never also `_1h`, and lengths have no leading zeros.
    expect(() => parseWindow('2026-11-21T12_1h')).toThrow(InvalidWindow);
    expect(() => parseWindow('2026-11-21T12_024h')).toThrow(InvalidWindow);
    expect(() => parseWindow('2026-11-21T12_0h')).toThrow('window length must be');
  });

  it('a window is made of the hourly input folders it spans', () => {
    expect(hourlyIdsOf(parseWindow('2026-11-21T22_3h'))).toEqual(['2026-11-21T22', '2026-11-21T23', '2026-11-22T00']);
    expect(hourlyIdsOf(parseWindow('2026-11-21T12'))).toEqual(['2026-11-21T12']);
  });

  it('a daily schedule firing after midnight scores the day before', () => {
    expect(windowBefore(t('2026-11-22T00:30Z'), 24).id).toBe('2026-11-21T00_24h');
  });

  it('the latest scoreable window is the last one past its settle time', () => {
    const settle = 300_000;
    expect(latestScoreableWindow(t('2026-11-21T13:03Z'), 1, settle).id).toBe('2026-11-21T11');
    expect(latestScoreableWindow(t('2026-11-21T13:05Z'), 1, settle).id).toBe('2026-11-21T12');
    // Whatever it picks passes the run's own completeness check at that moment.
    for (const now of ['2026-11-21T13:00Z', '2026-11-21T13:04:59Z', '2026-11-21T13:05Z', '2026-11-21T13:59Z'])
      expect(() => assertComplete(latestScoreableWindow(t(now), 1, settle), settle, t(now))).not.toThrow();
  });
});

describe('assertComplete', () => {
  const hour = parseWindow('2026-11-21T12');

  it('accepts a window once its end plus the settle time has passed', () => {
    expect(() => assertComplete(hour, 300_000, t('2026-11-21T13:05Z'))).not.toThrow();
  });

  it('refuses a window not complete yet, naming it and when it becomes scoreable', () => {
    const err = (() => {
      try {
        assertComplete(hour, 300_000, t('2026-11-21T13:04Z'));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(WindowNotComplete);
    expect(err).toMatchObject({ window: '2026-11-21T12', scoreableAt: '2026-11-21T13:05:00.000Z', retryable: false });
    expect((err as Error).message).toBe(
      'window 2026-11-21T12 is not complete: it ends at 2026-11-21T13:00:00.000Z and, with a settle time of 5m, ' +
        'becomes scoreable at 2026-11-21T13:05:00.000Z',
    );
    expect(() => assertComplete(parseWindow('2030-01-01T00'), 0, t('2026-11-21T13:04Z'))).toThrow(WindowNotComplete);
  });
});
