/**
 * docs/cli.md's command reference is what the commands' own `--help` says: regenerate it with `npm run docs:cli`
 * after changing a command, an option or a description.
 */
import { readFileSync } from 'node:fs';
import { CLI_DOC, cliReference, GENERATED_MARKER, withReference } from '../../scripts/cli-reference';

test('docs/cli.md holds the current --help of every command', () => {
  const doc = readFileSync(CLI_DOC, 'utf8');
  expect(doc).toContain(GENERATED_MARKER);
  // A failure here means docs/cli.md is stale: `npm run docs:cli` rewrites it.
  expect(doc).toBe(withReference(doc, cliReference()));
});

test('the reference covers every command and subcommand', () => {
  const reference = cliReference();
  for (const command of [
    'fleetscore up',
    'fleetscore worker',
    'fleetscore autoscale',
    'fleetscore schedules apply',
    'fleetscore schedules list',
    'fleetscore schedules describe',
    'fleetscore backfill',
    'fleetscore runs show',
    'fleetscore runs watch',
    'fleetscore runs cancel',
    'fleetscore runs gaps',
    'fleetscore runs stale',
    'fleetscore runs rescore',
    'fleetscore predictions show',
    'fleetscore predictions prune',
    'fleetscore models register',
    'fleetscore demo seed',
  ])
    expect(reference).toContain(`### \`${command}\`\n\n\`\`\`text\nUsage: ${command}`);
});
