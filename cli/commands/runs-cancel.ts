/**
 * `fleetscore runs cancel WINDOW [--store URI] | --workflow-id ID`: cancels a window's open runs (or one run) and
 * waits for them to close. A cancelled run commits nothing; its shard attempts stop at their next device.
 */
import { Command } from 'commander';
import { z } from 'zod';
import { cancelRuns, openRuns, type CancelledRun } from '../../lib/temporal/run-cancel';
import { formatTable, output } from '../utils/table';
import { decimalNumber, windowInput, windowOption } from '../utils/options';
import { parseOptions } from '../utils/parse-options';
import { withClient } from '../utils/with-client';

const optionsSchema = z
  .object({
    window: windowOption.optional(),
    store: z.string().min(1).optional(),
    workflowId: z.string().min(1).optional(),
    wait: decimalNumber(0.1),
    json: z.boolean().optional(),
  })
  .refine((o) => (o.window === undefined) !== (o.workflowId === undefined), {
    message: 'give one of the two',
  });

export const cancelCommand = new Command('cancel')
  .description("cancel a window's open runs (on one store with --store) and wait until they have closed")
  .argument('[window]', 'the window, e.g. 2026-11-21T12 or 2026-11-21T00_24h')
  .option('--window <window>', 'the same as WINDOW (an alias)')
  .option('--store <uri>', 'only runs of this store (default: every store)')
  .option('--workflow-id <id>', 'the run with this workflow id')
  .option('--wait <seconds>', 'how long to wait for the runs to close', '60')
  .option('--json', 'machine-readable output')
  .action(async (argument: string | undefined, raw: Record<string, unknown>, command: Command) => {
    const { window, label } = windowInput('fleetscore runs cancel', argument, raw.window);
    const options = parseOptions(
      command,
      optionsSchema,
      { ...raw, window },
      { window: label, '': 'WINDOW or --workflow-id' },
    );
    await withClient(async (client) => {
      const runs = options.workflowId
        ? [
            {
              workflowId: options.workflowId,
              runId: (await client.workflow.getHandle(options.workflowId).describe()).runId,
            },
          ]
        : await openRuns(client, options.window!, options.store);
      if (runs.length === 0)
        throw new Error(`no open run of window ${options.window}${options.store ? ` on ${options.store}` : ''}`);
      const cancelled = await cancelRuns(client, runs, options.wait * 1000);
      output(options.json, cancelled, (r: CancelledRun[]) =>
        formatTable(
          ['workflow id', 'run id', 'status'],
          r.map((c) => [c.workflowId, c.runId, c.status]),
        ),
      );
      if (cancelled.some((c) => c.status !== 'CANCELLED')) process.exitCode = 1;
    });
  });
