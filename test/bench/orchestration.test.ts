import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { coveredMs, orchestration, type Interval } from '../../bench/orchestration';

const T0 = Date.parse('2026-12-07T03:00:00.000Z');
const at = (ms: number) => ({ seconds: Math.floor((T0 + ms) / 1000), nanos: ((T0 + ms) % 1000) * 1e6 });
/** An event at `ms` after T0; fromObject takes plain numbers where the protos hold 64-bit integers. */
const event = (ms: number, attrs: Record<string, unknown>) =>
  temporal.api.history.v1.HistoryEvent.fromObject({ eventTime: at(ms), ...attrs });

/**
 * A run as the bench sees one: started at 0, a workflow task at 10 that runs planRun locally for 10..60, two
 * shards started at 100 and 110 and completed at 300 and 320, then completed at 330.
 */
function history(): temporal.api.history.v1.IHistory {
  const marker = defaultPayloadConverter.toPayload({ original_schedule_time: at(10), complete_time: at(60) });
  return {
    events: [
      event(0, { workflowExecutionStartedEventAttributes: {} }),
      event(10, { workflowTaskStartedEventAttributes: {} }),
      event(60, {
        markerRecordedEventAttributes: {
          markerName: 'core_local_activity',
          details: { data: { payloads: [marker] } },
        },
      }),
      event(100, { activityTaskStartedEventAttributes: { scheduledEventId: 5 } }),
      event(110, { activityTaskStartedEventAttributes: { scheduledEventId: 6 } }),
      event(300, { activityTaskCompletedEventAttributes: { scheduledEventId: 5 } }),
      event(320, { activityTaskCompletedEventAttributes: { scheduledEventId: 6 } }),
      event(330, { workflowExecutionCompletedEventAttributes: {} }),
    ],
  };
}

describe('bench orchestration', () => {
  it('counts the time no activity ran, local activities included', () => {
    // Busy 10..60 and 100..320 of 0..330: 0..10, 60..100 and 320..330 idle, 60 ms.
    const { orchestration_s, read_ahead_in_gaps_s } = orchestration(history());
    expect(orchestration_s).toBeCloseTo(0.06, 6);
    expect(read_ahead_in_gaps_s).toBe(0);
  });

  it("counts the worker's read ahead as its own, only where no activity ran and only within the run", () => {
    // 50..120 overlaps the plan (to 60) and the shards (from 100): only 60..100 is new; 400..500 is another run's.
    const readAhead: Interval[] = [
      [T0 + 50, T0 + 120],
      [T0 + 400, T0 + 500],
    ];
    const { orchestration_s, read_ahead_in_gaps_s } = orchestration(history(), readAhead);
    expect(read_ahead_in_gaps_s).toBeCloseTo(0.04, 6);
    expect(orchestration_s).toBeCloseTo(0.02, 6);
  });

  it('merges overlapping intervals and clips them to the run', () => {
    expect(
      coveredMs(
        [
          [5, 20],
          [0, 10],
          [30, 40],
          [35, 38],
          [90, 120],
        ],
        0,
        100,
      ),
    ).toBe(40);
    expect(coveredMs([], 0, 100)).toBe(0);
  });
});
