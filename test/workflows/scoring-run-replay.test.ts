/**
 * Replay: histories written by an earlier scoringRun must still replay with today's code, or a worker deployed
 * mid-run would fail the workflow tasks of the runs in flight. Each fixture is one complete run (4 devices, 2
 * shards) recorded with the workflow of its time: `remote-plan-and-commit` before planRun and commitRun became
 * local activities (the `local-plan-and-commit` patch keeps that path for it), `local-plan-and-commit` after, and
 * `time-patches` with the `complete-windows`, `input-readiness` and `rescore-late` patches taken (a run with
 * `rescoreLateWithin`, 4 devices, 3 shards). Replay runs no activity and reads no store. A fixture is a fetched history as protobufjs JSON
 * (`History.toObject(history, { longs: String, enums: String, bytes: String })`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { installRuntime } from '../../lib/temporal/runtime';

jest.setTimeout(120_000);

const HISTORIES = join(__dirname, '..', 'fixtures', 'histories');

function loadHistory(name: string): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(join(HISTORIES, `${name}.json`), 'utf8')));
}

beforeAll(() => installRuntime({ quiet: true }));

test.each(['scoring-run-remote-plan-and-commit', 'scoring-run-local-plan-and-commit', 'scoring-run-time-patches'])(
  'the recorded run %s replays without nondeterminism',
  async (name) => {
    await expect(
      Worker.runReplayHistory(
        { workflowsPath: require.resolve('../../workflows'), replayName: name },
        loadHistory(name),
      ),
    ).resolves.toBeUndefined();
  },
);
