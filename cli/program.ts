/** The `fleetscore` program: every subcommand lives in cli/commands/ and is only added here. */
import { Command } from 'commander';
import { commands } from './commands';

/**
 * Gives `command` and its subcommands the CLI's one way to fail on a bad command line: commander's own messages
 * (unknown option, missing argument) prefixed `fleetscore:` like every other error, a pointer to the usage, and
 * exit 1 (0 for --help and --version).
 */
function configureErrors(command: Command, path: string): void {
  command
    .configureOutput({ outputError: (text, write) => write(`fleetscore: ${text.replace(/^error: /, '')}`) })
    .showHelpAfterError(`(\`${path} --help\` shows the usage)`)
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 1));
  for (const sub of command.commands) configureErrors(sub, `${path} ${sub.name()}`);
}

/** The whole program, as `fleetscore --help` and docs/cli.md show it. */
export function createProgram(): Command {
  const program = new Command('fleetscore')
    .description('Durable hourly scoring of per-device anomaly models on Temporal')
    .option('--verbose', 'print stack traces on errors');
  for (const command of commands) program.addCommand(command);
  configureErrors(program, 'fleetscore');
  return program;
}
