/**
 * Adds the window and shard an activity works on to every log line it writes (the SDK already adds the
 * workflow and run ids, activity type and attempt), so JSON logs can be filtered by run, window, shard and attempt.
 */
import type { ActivityInterceptorsFactory } from '@temporalio/worker';

/** The window and shard of an activity's first argument, when it has them (planRun, scoreShard, commitRun). */
export function shardAttributes(args: readonly unknown[]): Record<string, unknown> {
  const req = args[0];
  if (typeof req !== 'object' || req === null) return {};
  const { window, shard } = req as { window?: unknown; shard?: unknown };
  return {
    ...(typeof window === 'string' ? { window } : {}),
    ...(typeof shard === 'number' ? { shard } : {}),
  };
}

/** The activity interceptor factory to pass in `interceptors.activity`. */
export const activityLogAttributes: ActivityInterceptorsFactory = () => {
  let attributes: Record<string, unknown> = {};
  return {
    inbound: {
      execute(input, next) {
        attributes = shardAttributes(input.args);
        return next(input);
      },
    },
    outbound: {
      getLogAttributes: (input, next) => next({ ...input, ...attributes }),
    },
  };
};
