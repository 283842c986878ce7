import { ApplicationFailure } from '@temporalio/common';
import type { LogEntry } from '@temporalio/worker';
import { formatTextLogEntry, isDeliberateSdkWarning } from '../../lib/temporal/log-lines';

const entry = (level: LogEntry['level'], message: string, meta?: Record<string, unknown>): LogEntry => ({
  level,
  message,
  meta,
  timestampNanos: BigInt(Date.UTC(2026, 10, 21, 12, 5)) * 1_000_000n,
});

test('a log entry is one line: time, level, message, its own attributes, then the SDK context', () => {
  const line = formatTextLogEntry(
    entry('WARN', 'device failed', {
      workflowId: 'fleetscore-hourly-window-2026-11-21T11',
      taskToken: 'Q2lRd01XRXl',
      namespace: 'default',
      device: 'dev-00003',
      reason: 'bad row 17:\nvalue NaN',
      shard: 0,
    }),
  );
  expect(line).toBe(
    '2026-11-21T12:05:00.000Z WARN device failed device=dev-00003 reason="bad row 17: value NaN" shard=0 ' +
      'workflowId=fleetscore-hourly-window-2026-11-21T11',
  );
});

test('an error is its name, its failure type and message, and its cause, on the same line', () => {
  const cause = Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
  const failure = ApplicationFailure.create({
    message: 'S3 GetObject s3://b/models/index.json failed',
    type: 'S3RequestFailed',
    cause,
  });
  const line = formatTextLogEntry(entry('WARN', 'Activity failed', { error: failure }));
  expect(line).toBe(
    '2026-11-21T12:05:00.000Z WARN Activity failed error="ApplicationFailure [S3RequestFailed]: ' +
      'S3 GetObject s3://b/models/index.json failed (cause TimeoutError: socket hang up)"',
  );
  expect(line).not.toContain('\n');
});

test("the SDK's warning about a worker without workflows is kept out of view above DEBUG", () => {
  const warning = entry('WARN', 'No workflows registered, not polling for workflow tasks');
  expect(isDeliberateSdkWarning(warning, 'WARN')).toBe(true);
  expect(isDeliberateSdkWarning(warning, 'INFO')).toBe(true);
  expect(isDeliberateSdkWarning(warning, 'DEBUG')).toBe(false);
  expect(isDeliberateSdkWarning(entry('WARN', 'Activity failed'), 'WARN')).toBe(false);
});
