/**
 * docs/cli.md's command reference, generated from the commands' own `--help`: every command and subcommand of
 * `fleetscore`, in the order `fleetscore --help` lists them. `npm run docs:cli` rewrites the generated part of
 * docs/cli.md (below the marker, the prose above it is kept); test/cli/cli-reference.test.ts fails while they differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { createProgram } from '../cli/program';

/** docs/cli.md. */
export const CLI_DOC = join(__dirname, '..', 'docs', 'cli.md');

/** The line after which docs/cli.md is generated. */
export const GENERATED_MARKER =
  "<!-- Generated from the commands' --help by `npm run docs:cli`; edit the commands, not this part. -->";

/** Help is wrapped at a fixed width, so the reference does not depend on the terminal it was made in. */
const HELP_WIDTH = 110;

/** The generated reference: a section per command with its `--help` text. */
export function cliReference(): string {
  const sections: string[] = [];
  const walk = (command: Command, path: string) => {
    command.configureHelp({ helpWidth: HELP_WIDTH });
    const help = command.helpInformation().trimEnd();
    sections.push(`### \`${path}\`\n\n\`\`\`text\n${help}\n\`\`\``);
    for (const sub of command.commands) walk(sub, `${path} ${sub.name()}`);
  };
  walk(createProgram(), 'fleetscore');
  return `${GENERATED_MARKER}\n\n## Command reference\n\n${sections.join('\n\n')}\n`;
}

/** docs/cli.md with its generated part replaced by `reference`. */
export function withReference(doc: string, reference: string): string {
  const at = doc.indexOf(GENERATED_MARKER);
  if (at < 0) throw new Error(`${CLI_DOC} has no line "${GENERATED_MARKER}" to generate below`);
  return `${doc.slice(0, at)}${reference}`;
}

if (require.main === module) {
  writeFileSync(CLI_DOC, withReference(readFileSync(CLI_DOC, 'utf8'), cliReference()));
  process.stdout.write(`wrote ${CLI_DOC}\n`);
}
