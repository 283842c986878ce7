/**
 * Re-scoring late data on a schedule's own (`rescoreLateWithin`): after a run commits its window, it asks which
 * committed windows of the same length within the horizon before it have input that changed since their run read
 * it, and starts a run for each (a child it does not wait for, with the id every run of that window and store has,
 * so a run of it already open is left to finish). Each new commit replaces its window and names the run it
 * superseded. Deterministic: the activity's answer decides.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { log, ParentClosePolicy, startChild } from '@temporalio/workflow';
import { durationMs } from '../lib/shared/duration';
import { SCORING_WORKFLOW } from '../lib/shared/names';
import type { LateWindow, LateWindowsRequest, ScoringRunInput } from '../lib/shared/run-types';
import { hoursOf, type Window } from '../lib/shared/window';
import type { scoringRun } from './scoring-run';

/** Starts a run for every window with late data within the horizon before `window`; returns their window ids. */
export async function rescoreLate(
  input: ScoringRunInput,
  window: Window,
  findLateWindows: (req: LateWindowsRequest) => Promise<LateWindow[]>,
): Promise<string[]> {
  const horizonMs = durationMs(input.rescoreLateWithin);
  if (!horizonMs || horizonMs <= 0) return [];
  const late = await findLateWindows({
    store: input.store,
    windowHours: hoursOf(window),
    fromMs: window.startMs - horizonMs,
    toMs: window.startMs,
  });
  const started: string[] = [];
  for (const { window: id, workflowId } of late) {
    const { rescoreLateWithin: _r, ...rest } = input;
    try {
      await startChild<typeof scoringRun>(SCORING_WORKFLOW, {
        workflowId,
        args: [{ ...rest, window: id }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        staticSummary: `fleetscore: window ${id} scored again: its input changed after it was committed`,
      });
      started.push(id);
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      log.info(`a run of window ${id} is already open; it scores the late data`, { window: id, workflowId });
    }
  }
  if (started.length > 0) log.warn(`late data: scoring ${started.length} earlier window(s) again`, { started });
  return started;
}
