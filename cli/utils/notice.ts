/**
 * A line for the person at the terminal, on stderr so stdout stays the command's output (a table, or JSON that
 * `--json` keeps valid): what was left out and how to see it, a state worth knowing.
 */
export function notice(text: string): void {
  process.stderr.write(`fleetscore: ${text}\n`);
}
