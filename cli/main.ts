#!/usr/bin/env node
/** The `fleetscore` command: every subcommand lives in cli/commands/ and is only added here. */
import { Command } from 'commander';
import { commands } from './commands';
import { handleError } from './utils/handle-error';

async function run(): Promise<void> {
  const program = new Command('fleetscore')
    .description('Durable hourly scoring of per-device anomaly models on Temporal')
    .option('--verbose', 'print stack traces on errors')
    .showHelpAfterError()
    .exitOverride((err) => {
      // commander reports usage errors itself; exit 1 without a stack trace, 0 for --help/--version.
      process.exit(err.exitCode === 0 ? 0 : 1);
    });
  for (const command of commands) program.addCommand(command);
  await program.parseAsync(process.argv);
}

run().catch(handleError);
